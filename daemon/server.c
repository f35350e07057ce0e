/*
 * The event loop, kvmrund's only libev user.  It owns the listening socket,
 * the clients, their buffers and watchers; workers reach it only through the
 * completion list and an ev_async.
 *
 * Each request gets a slot on its client's answer queue in arrival order.
 * Ping, stats and errors fill their slot at once, a run fills it when its
 * completion arrives; answers go out from the head of the queue only, so a
 * client reads them in the order it asked.  Completions name their client by
 * a serial number that is never reused, so one that arrives after its client
 * left finds nobody and is dropped.
 */
#include <errno.h>
#include <poll.h>
#include <search.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ev.h>

#include "job.h"
#include "listen.h"
#include "log.h"
#include "request.h"
#include "server.h"

/* The read buffer starts this small and doubles up to --max-line + 1. */
#define SERVER_INPUT_INITIAL (64u << 10)
/* Connections taken per accept callback, so one burst cannot starve the rest. */
#define SERVER_ACCEPT_BATCH 32
/* Out of descriptors: wait this long before accepting again. */
#define SERVER_ACCEPT_PAUSE 0.5
/* Answers gathered into one sendmsg. */
#define SERVER_IOV_MAX 64
#define SERVER_STATUS_INTERVAL 5.0
#define SERVER_STATUS_MAX 256

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct server_slot {
	STAILQ_ENTRY(server_slot) entry;
	uint64_t sequence;
	char *line; /* the answer, NULL until it is there */
	size_t length;
	/* A run's result: its moments, counted in stats once it is written. */
	bool timed;
	struct steps_times times;
};

struct server_client {
	LIST_ENTRY(server_client) entry;
	struct server *server;
	uint64_t serial;
	int fd;
	ev_io read_watcher;
	ev_io write_watcher;
	ev_timer read_timer; /* runs while a line is begun but not finished */
	ev_timer write_timer; /* runs while answers wait and none can be written */
	char *in;
	size_t in_length;
	size_t in_capacity;
	size_t in_scanned; /* bytes of in known to hold no '\n' */
	bool reading;	   /* false after EOF or a bad line */
	bool paused;	   /* reading held back: over --max-output unsent */
	bool broken;	   /* to be dropped: write error, out of memory */
	STAILQ_HEAD(, server_slot) slots;
	size_t sent;	/* bytes of the head slot written */
	size_t unsent;	/* bytes of answers made and not written */
	size_t pending; /* runs whose answers are to come */
	uint64_t next_sequence;
};

static const int server_stop_signums[] = { SIGTERM, SIGINT };
static const int server_ignored_signums[] = { SIGHUP, SIGUSR1, SIGUSR2 };

struct server {
	struct ev_loop *loop;
	struct server_config cfg;
	int listen_fd;
	ev_io accept_watcher;
	ev_timer accept_pause;
	ev_async completions;
	ev_signal stop_signals[NELEM(server_stop_signums)];
	ev_signal ignored_signals[NELEM(server_ignored_signums)];
	ev_timer watchdog;
	ev_timer status_timer;
	char status[SERVER_STATUS_MAX];
	struct job_pool *pool;
	struct request_handler *requests;
	LIST_HEAD(, server_client) clients;
	void *client_tree; /* tsearch tree by serial */
	uint64_t last_serial;
	size_t buffered; /* every client's input buffer and unsent answers */
	bool stopping;	 /* draining after the first stop signal */
	bool cancelling; /* after the second: runs cancelled, answers still sent */
};

static unsigned long long
client_id(const struct server_client *c)
{
	return (unsigned long long)c->serial;
}

static int
client_compare(const void *a, const void *b)
{
	const struct server_client *x = a, *y = b;

	return (x->serial > y->serial) - (x->serial < y->serial);
}

static struct server_client *
server_find_client(struct server *s, uint64_t serial)
{
	struct server_client key = { .serial = serial };
	void *node = tfind(&key, &s->client_tree, client_compare);

	return node == NULL ? NULL : *(struct server_client **)node;
}

static void
client_destroy(struct server_client *c)
{
	struct server *s = c->server;
	struct server_slot *slot;

	if (c->pending > 0)
		job_cancel(s->pool, c->serial);
	ev_io_stop(s->loop, &c->read_watcher);
	ev_io_stop(s->loop, &c->write_watcher);
	ev_timer_stop(s->loop, &c->read_timer);
	ev_timer_stop(s->loop, &c->write_timer);
	s->buffered -= c->in_capacity + c->unsent;
	if (close(c->fd) < 0)
		log_warn("server", "client %llu: close", client_id(c));
	while ((slot = STAILQ_FIRST(&c->slots)) != NULL) {
		STAILQ_REMOVE_HEAD(&c->slots, entry);
		free(slot->line);
		free(slot);
	}
	free(c->in);
	tdelete(c, &s->client_tree, client_compare);
	LIST_REMOVE(c, entry);
	request_connection_closed(s->requests);
	log_debug("server", "client %llu disconnected%s", client_id(c),
		  c->pending > 0 ? ", its runs cancelled" : "");
	free(c);
	if (s->stopping && LIST_EMPTY(&s->clients))
		ev_break(s->loop, EVBREAK_ALL);
}

static void
client_free_input(struct server_client *c)
{
	c->server->buffered -= c->in_capacity;
	free(c->in);
	c->in = NULL;
	c->in_length = c->in_capacity = c->in_scanned = 0;
}

/* Takes no more requests from C; what it asked already is still answered. */
static void
client_stop_reading(struct server_client *c)
{
	struct server *s = c->server;

	c->reading = false;
	ev_io_stop(s->loop, &c->read_watcher);
	ev_timer_stop(s->loop, &c->read_timer);
	client_free_input(c);
}

static struct server_slot *
client_add_slot(struct server_client *c)
{
	struct server_slot *slot = calloc(1, sizeof(*slot));

	if (slot == NULL) {
		log_warnx("server", "client %llu: no memory for a request",
			  client_id(c));
		c->broken = true;
		return NULL;
	}
	slot->sequence = c->next_sequence++;
	STAILQ_INSERT_TAIL(&c->slots, slot, entry);
	return slot;
}

static void
client_fill_slot(struct server_client *c, struct server_slot *slot, char *line,
		 size_t length)
{
	slot->line = line;
	slot->length = length;
	c->unsent += length;
	c->server->buffered += length;
}

/* Queues an error answer with a null id, for a line that is no request. */
static void
client_answer_error(struct server_client *c, const struct kvmrun_error *err)
{
	struct server_slot *slot = client_add_slot(c);
	size_t length;
	char *line;

	if (slot == NULL)
		return;
	line = request_format_error(c->server->requests, err, &length);
	if (line == NULL) {
		log_warnx("server", "client %llu: no memory for an answer",
			  client_id(c));
		c->broken = true;
		return;
	}
	client_fill_slot(c, slot, line, length);
}

/* Drops the first N written bytes from the answer queue. */
static void
client_consume(struct server_client *c, size_t n)
{
	struct server_slot *slot;
	uint64_t now = 0;
	size_t left;

	c->unsent -= n;
	c->server->buffered -= n;
	while (n > 0) {
		slot = STAILQ_FIRST(&c->slots);
		left = slot->length - c->sent;
		if (n < left) {
			c->sent += n;
			return;
		}
		n -= left;
		c->sent = 0;
		if (slot->timed) {
			/* The write that took its last byte, once per write. */
			if (now == 0)
				now = steps_now();
			slot->times.written = now;
			request_count_steps(c->server->requests, &slot->times);
		}
		STAILQ_REMOVE_HEAD(&c->slots, entry);
		free(slot->line);
		free(slot);
	}
}

/*
 * Over --max-output of answers unsent, C's requests are not read until it
 * has read its answers down: a client that asks faster than it reads holds
 * back itself, not the daemon's memory.
 */
static void
client_pace_reading(struct server_client *c)
{
	struct server *s = c->server;
	bool over = c->unsent > s->cfg.max_output;

	if (!c->reading || over == c->paused)
		return;
	c->paused = over;
	if (over) {
		log_debug("server",
			  "client %llu: %zu bytes of answers unread, over --max-output "
			  "%zu: reading no more requests until it reads them",
			  client_id(c), c->unsent, s->cfg.max_output);
		ev_io_stop(s->loop, &c->read_watcher);
		ev_timer_stop(s->loop, &c->read_timer);
		return;
	}
	ev_io_start(s->loop, &c->read_watcher);
	/* A begun line gets its whole --read-timeout-ms again. */
	if (c->in_length > 0 && s->cfg.read_timeout_ms > 0)
		ev_timer_again(s->loop, &c->read_timer);
}

/*
 * The write timer runs while C has answers it could read and the socket
 * takes none of them; each write that goes through starts it anew.
 */
static void
client_pace_writing(struct server_client *c, bool waiting, bool progress)
{
	struct server *s = c->server;

	if (!waiting) {
		ev_io_stop(s->loop, &c->write_watcher);
		ev_timer_stop(s->loop, &c->write_timer);
		return;
	}
	ev_io_start(s->loop, &c->write_watcher);
	if (s->cfg.write_timeout_ms > 0 && (progress || !ev_is_active(&c->write_timer)))
		ev_timer_again(s->loop, &c->write_timer);
}

/* Writes the answers at the head of the queue until the socket is full. */
static void
client_flush(struct server_client *c)
{
	struct iovec iov[SERVER_IOV_MAX];
	struct msghdr msg;
	struct server_slot *slot;
	bool progress = false;
	ssize_t n;

	for (;;) {
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = iov;
		slot = STAILQ_FIRST(&c->slots);
		while (slot != NULL && slot->line != NULL &&
		       msg.msg_iovlen < SERVER_IOV_MAX) {
			size_t skip = msg.msg_iovlen == 0 ? c->sent : 0;

			iov[msg.msg_iovlen].iov_base = slot->line + skip;
			iov[msg.msg_iovlen].iov_len = slot->length - skip;
			msg.msg_iovlen++;
			slot = STAILQ_NEXT(slot, entry);
		}
		if (msg.msg_iovlen == 0)
			break;
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			if (errno == EPIPE || errno == ECONNRESET)
				log_debug("server",
					  "client %llu: gone before its answers",
					  client_id(c));
			else
				log_warn("server", "client %llu: write", client_id(c));
			c->broken = true;
			return;
		}
		client_consume(c, (size_t)n);
		progress = true;
	}

	slot = STAILQ_FIRST(&c->slots);
	client_pace_writing(c, slot != NULL && slot->line != NULL, progress);
	client_pace_reading(c);
}

/*
 * Writes what can be written, then drops C if it broke or is done (reads no
 * more and has every answer out).  The last thing a callback does with C.
 */
static void
client_settle(struct server_client *c)
{
	if (!c->broken)
		client_flush(c);
	/* Draining, a client is done once it has every answer it asked for. */
	if (c->broken || ((!c->reading || c->server->stopping) && STAILQ_EMPTY(&c->slots)))
		client_destroy(c);
}

static void
client_handle_line(struct server_client *c, const char *line, size_t length)
{
	struct server *s = c->server;
	struct server_slot *slot = client_add_slot(c);
	size_t answer_length;
	char *answer;
	int rc;

	if (slot == NULL)
		return;
	rc = request_handle_line(s->requests, c->serial, slot->sequence, line, length,
				 steps_now(), &answer, &answer_length);
	if (rc == REQUEST_PENDING) {
		c->pending++;
	} else if (rc == 0) {
		client_fill_slot(c, slot, answer, answer_length);
	} else {
		log_warnx("server", "client %llu: no memory for an answer",
			  client_id(c));
		c->broken = true;
	}
}

/* Handles every complete line in the read buffer and keeps the rest. */
static void
client_take_lines(struct server_client *c)
{
	struct server *s = c->server;
	size_t limit = s->cfg.limits.max_line + 1;
	char *start = c->in, *end = c->in + c->in_length;
	char *newline =
		memchr(c->in + c->in_scanned, '\n', c->in_length - c->in_scanned);
	bool took = false;
	size_t rest;

	while (newline != NULL && !c->broken) {
		client_handle_line(c, start, (size_t)(newline - start));
		took = true;
		start = newline + 1;
		newline = memchr(start, '\n', (size_t)(end - start));
	}
	rest = (size_t)(end - start);
	memmove(c->in, start, rest);
	c->in_length = c->in_scanned = rest;

	if (rest == limit) {
		struct kvmrun_error err;

		kvmrun_error_set(&err, KVMRUN_ERR_TOO_LARGE,
				 "request line longer than %zu bytes (--max-line)",
				 s->cfg.limits.max_line);
		client_answer_error(c, &err);
		client_stop_reading(c);
	} else if (rest == 0) {
		ev_timer_stop(s->loop, &c->read_timer);
		/* Give back what a large line grew. */
		if (c->in_capacity > SERVER_INPUT_INITIAL)
			client_free_input(c);
	} else if (took || !ev_is_active(&c->read_timer)) {
		/* A new line began: it has --read-timeout-ms to finish. */
		ev_timer_again(s->loop, &c->read_timer);
	}
}

/*
 * Makes room to read into, growing the buffer up to --max-line + 1 while
 * all clients' buffers stay within --max-buffers: -ENOBUFS past it.
 */
static int
client_reserve_input(struct server_client *c)
{
	struct server *s = c->server;
	size_t limit = s->cfg.limits.max_line + 1;
	size_t capacity;
	char *in;

	if (c->in_length < c->in_capacity)
		return 0;
	capacity = c->in_capacity == 0 ? SERVER_INPUT_INITIAL : c->in_capacity * 2;
	if (capacity > limit)
		capacity = limit;
	if (s->buffered - c->in_capacity + capacity > s->cfg.max_buffers)
		return -ENOBUFS;
	in = realloc(c->in, capacity);
	if (in == NULL)
		return -ENOMEM;
	s->buffered += capacity - c->in_capacity;
	c->in = in;
	c->in_capacity = capacity;
	return 0;
}

/*
 * The client shut down its writing side.  A line it did not end with '\n' is
 * its last request.  A client that closed outright cannot read answers: it
 * is dropped at once and its runs cancelled.
 */
static void
client_eof(struct server_client *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = 0 };

	if (poll(&pfd, 1, 0) < 0) {
		log_warn("server", "client %llu: poll", client_id(c));
		c->broken = true;
	} else if (pfd.revents & POLLHUP) {
		c->broken = true;
	} else if (c->in_length > 0) {
		client_handle_line(c, c->in, c->in_length);
	}
	client_stop_reading(c);
}

static void
client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct server_client *c = w->data;
	struct kvmrun_error err;
	ssize_t n;
	int rc;

	(void)loop;
	(void)revents;
	rc = client_reserve_input(c);
	if (rc == -ENOBUFS) {
		/* Where the line ends is unknown: answer, then read no more. */
		log_warnx("server",
			  "client %llu: no room for its request line: %zu bytes of "
			  "buffers held (--max-buffers %zu)",
			  client_id(c), c->server->buffered, c->server->cfg.max_buffers);
		kvmrun_error_set(&err, KVMRUN_ERR_BUSY,
				 "request buffers of all clients full: %zu of %zu bytes "
				 "held (--max-buffers); retry later",
				 c->server->buffered, c->server->cfg.max_buffers);
		client_answer_error(c, &err);
		client_stop_reading(c);
		client_settle(c);
		return;
	}
	if (rc < 0) {
		log_warnx("server", "client %llu: no memory for its request",
			  client_id(c));
		client_destroy(c);
		return;
	}
	n = read(c->fd, c->in + c->in_length, c->in_capacity - c->in_length);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		if (errno == ECONNRESET)
			log_debug("server", "client %llu: connection reset",
				  client_id(c));
		else
			log_warn("server", "client %llu: read", client_id(c));
		client_destroy(c);
		return;
	}
	if (n == 0) {
		client_eof(c);
	} else {
		c->in_length += (size_t)n;
		client_take_lines(c);
	}
	client_settle(c);
}

static void
client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	client_settle(w->data);
}

static void
client_read_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server_client *c = w->data;
	struct kvmrun_error err;

	(void)loop;
	(void)revents;
	log_debug("server", "client %llu: request line unfinished after %u ms",
		  client_id(c), c->server->cfg.read_timeout_ms);
	kvmrun_error_set(&err, KVMRUN_ERR_BAD_REQUEST,
			 "request line not finished within %u ms (--read-timeout-ms)",
			 c->server->cfg.read_timeout_ms);
	client_answer_error(c, &err);
	client_stop_reading(c);
	client_settle(c);
}

static void
client_write_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server_client *c = w->data;

	(void)loop;
	(void)revents;
	log_warnx("server",
		  "client %llu: read none of its %zu bytes of answers for %u ms "
		  "(--write-timeout-ms); disconnecting%s",
		  client_id(c), c->unsent, c->server->cfg.write_timeout_ms,
		  c->pending > 0 ? " and cancelling its runs" : "");
	c->broken = true;
	client_settle(c);
}

static void
client_create(struct server *s, int fd, const struct ucred *cred)
{
	struct server_client *c;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto out_close;
	c->server = s;
	c->serial = ++s->last_serial;
	c->fd = fd;
	c->reading = true;
	STAILQ_INIT(&c->slots);
	if (tsearch(c, &s->client_tree, client_compare) == NULL)
		goto out_free;
	LIST_INSERT_HEAD(&s->clients, c, entry);
	request_connection_opened(s->requests);

	ev_io_init(&c->read_watcher, client_read_cb, fd, EV_READ);
	c->read_watcher.data = c;
	ev_io_init(&c->write_watcher, client_write_cb, fd, EV_WRITE);
	c->write_watcher.data = c;
	ev_init(&c->read_timer, client_read_timeout_cb);
	c->read_timer.repeat = s->cfg.read_timeout_ms / 1000.0;
	c->read_timer.data = c;
	ev_init(&c->write_timer, client_write_timeout_cb);
	c->write_timer.repeat = s->cfg.write_timeout_ms / 1000.0;
	c->write_timer.data = c;
	ev_io_start(s->loop, &c->read_watcher);
	log_info("server", "client %llu connected: pid %d uid %u gid %u", client_id(c),
		 (int)cred->pid, (unsigned int)cred->uid, (unsigned int)cred->gid);
	return;

out_free:
	free(c);
out_close:
	log_warnx("server", "no memory for a new client; closing it");
	if (close(fd) < 0)
		log_warn("server", "close");
}

/* A connection turned away: one error answer, then the door. */
static void
server_refuse(struct server *s, int fd, const struct kvmrun_error *err)
{
	size_t length;
	char *line;

	line = request_format_error(s->requests, err, &length);
	/* A fresh socket's buffer takes one short line; nothing to wait for. */
	if (line != NULL && send(fd, line, length, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("server", "refusing a connection: send: %s", strerror(errno));
	free(line);
	if (close(fd) < 0)
		log_warn("server", "close");
}

static bool
id_listed(const id_t *ids, size_t count, id_t id)
{
	for (size_t i = 0; i < count; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/*
 * Whether one of the supplementary groups of the peer on FD is among
 * --allow-group: a group such as kvm is seldom anyone's primary one.
 */
static bool
server_peer_groups_listed(const struct server *s, int fd)
{
	socklen_t length = 0;
	gid_t *groups = NULL;
	bool listed = false;

	/* Asked with no room, the kernel says how much the list needs. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &length) == 0)
		return false;
	if (errno != ERANGE || (groups = malloc(length)) == NULL ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &length) < 0) {
		log_warn("server", "SO_PEERGROUPS");
		free(groups);
		return false;
	}
	for (size_t i = 0; i < length / sizeof(*groups) && !listed; i++)
		listed = id_listed(s->cfg.allow_gids, s->cfg.allow_gid_count,
				   groups[i]);
	free(groups);
	return listed;
}

/*
 * Whether the peer CRED on FD may use the daemon: when --allow-uid or
 * --allow-group was given, its uid, gid or a supplementary group is listed.
 */
static bool
server_peer_allowed(const struct server *s, int fd, const struct ucred *cred)
{
	const struct server_config *cfg = &s->cfg;

	if (cfg->allow_uid_count == 0 && cfg->allow_gid_count == 0)
		return true;
	return id_listed(cfg->allow_uids, cfg->allow_uid_count, cred->uid) ||
	       id_listed(cfg->allow_gids, cfg->allow_gid_count, cred->gid) ||
	       (cfg->allow_gid_count > 0 && server_peer_groups_listed(s, fd));
}

/* Serves the connection just accepted on FD, or turns it away with a line. */
static void
server_admit(struct server *s, int fd)
{
	/* Unknown credentials are nobody's: no list admits them. */
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t length = sizeof(cred);
	struct kvmrun_error err;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) < 0)
		log_warn("server", "SO_PEERCRED of a new connection");
	if (s->stopping) {
		log_debug("server", "refused a connection: stopping");
		kvmrun_error_set(&err, KVMRUN_ERR_BUSY, "kvmrund is shutting down");
		server_refuse(s, fd, &err);
	} else if (!server_peer_allowed(s, fd, &cred)) {
		log_warnx("server",
			  "refused a client: pid %d uid %u gid %u: "
			  "not in --allow-uid or --allow-group",
			  (int)cred.pid, (unsigned int)cred.uid,
			  (unsigned int)cred.gid);
		kvmrun_error_set(&err, KVMRUN_ERR_FORBIDDEN,
				 "uid %u gid %u may not use kvmrund: "
				 "not in --allow-uid or --allow-group",
				 (unsigned int)cred.uid, (unsigned int)cred.gid);
		server_refuse(s, fd, &err);
	} else if (request_connections_open(s->requests) >= s->cfg.max_connections) {
		log_debug("server",
			  "refused a connection: --max-connections %llu reached",
			  (unsigned long long)s->cfg.max_connections);
		kvmrun_error_set(&err, KVMRUN_ERR_BUSY,
				 "too many connections: %llu open (--max-connections); "
				 "retry later",
				 (unsigned long long)s->cfg.max_connections);
		server_refuse(s, fd, &err);
	} else {
		client_create(s, fd, &cred);
	}
}

static void
server_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct server *s = w->data;
	int fd;

	(void)revents;
	for (int i = 0; i < SERVER_ACCEPT_BATCH; i++) {
		fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0 && errno == EAGAIN)
			return;
		if (fd < 0) {
			/* EMFILE and the like: the connection waits in the backlog,
			 * and a level-triggered watcher would spin meanwhile. */
			log_warn("server", "accept (pausing %.1f s)",
				 SERVER_ACCEPT_PAUSE);
			ev_io_stop(loop, &s->accept_watcher);
			/* Set anew: a timer that ran counts from where it stopped. */
			ev_timer_set(&s->accept_pause, SERVER_ACCEPT_PAUSE, 0.);
			ev_timer_start(loop, &s->accept_pause);
			return;
		}
		server_admit(s, fd);
	}
}

static void
server_accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *s = w->data;

	(void)revents;
	ev_io_start(loop, &s->accept_watcher);
}

/*
 * Fills the slot a completion answers: a run's answer, or for a line parsed
 * on a worker, its answer or nothing yet (its run was queued).
 */
static void
client_complete(struct server_client *c, struct job_completion *done)
{
	struct server_slot *slot;
	size_t length;
	char *line;
	int rc = 0;

	for (slot = STAILQ_FIRST(&c->slots); slot != NULL;
	     slot = STAILQ_NEXT(slot, entry))
		if (slot->sequence == done->sequence)
			break;
	if (slot == NULL || slot->line != NULL)
		fatalx("server",
		       "client %llu: an answer to request %llu it is not waiting for",
		       client_id(c), (unsigned long long)done->sequence);
	if (done->parsed)
		rc = request_handle_parsed(c->server->requests, done, &line, &length);
	else
		line = job_completion_line(done, &length);
	if (rc == REQUEST_PENDING)
		return;
	c->pending--;
	if (rc < 0 || line == NULL) {
		c->broken = true;
		return;
	}
	if (!done->parsed && done->ok) {
		slot->timed = true;
		slot->times = done->times;
	}
	client_fill_slot(c, slot, line, length);
}

static void
server_completions_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct server *s = w->data;
	struct job_completion *done, *next;
	struct server_client *c;

	(void)loop;
	(void)revents;
	/* Several sends may have folded into this call: take the whole list. */
	for (done = job_completions_take(s->pool); done != NULL; done = next) {
		next = done->next;
		if (!done->parsed)
			request_count_completion(s->requests, done);
		c = server_find_client(s, done->client);
		if (c != NULL) {
			client_complete(c, done);
			client_settle(c);
		} else {
			log_debug("server",
				  "client %llu left before its run %llu ended",
				  (unsigned long long)done->client,
				  (unsigned long long)done->sequence);
		}
		job_completion_free(done);
	}
}

/*
 * The first stop signal drains: runs queued and running finish and their
 * answers go out; new runs and new connections get busy; a client is closed
 * once it has all its answers (or after --write-timeout-ms without reading
 * them).  The second cancels the runs, which are answered cancelled (running)
 * or busy (queued), and the drain goes on until those answers are out.  A
 * third returns at once.
 */
static void
server_stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct server *s = w->data;
	struct server_client *c, *next;
	struct job_pool_state state;

	(void)revents;
	if (s->cancelling) {
		log_warnx("server", "%s a third time: stopping now",
			  strsignal(w->signum));
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	job_pool_state(s->pool, &state);
	if (s->stopping) {
		log_warnx("server",
			  "%s again: cancelling %zu runs queued and %zu running; "
			  "stopping once their answers are out",
			  strsignal(w->signum), state.queued, state.running);
		s->cancelling = true;
		job_cancel_all(s->pool);
		return;
	}
	s->stopping = true;
	listen_notify_stopping();
	job_pool_close(s->pool);
	log_info("server", "%s: stopping; %zu runs queued and %zu running to finish",
		 strsignal(w->signum), state.queued, state.running);
	for (c = LIST_FIRST(&s->clients); c != NULL; c = next) {
		next = LIST_NEXT(c, entry);
		client_settle(c);
	}
	if (LIST_EMPTY(&s->clients))
		ev_break(loop, EVBREAK_ALL);
}

static void
server_ignore_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	log_info("server", "%s ignored", strsignal(w->signum));
}

static void
server_watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	listen_notify_watchdog();
}

/* Tells systemd what the daemon is doing, when that changed. */
static void
server_status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *s = w->data;
	struct job_pool_state state;
	char status[SERVER_STATUS_MAX];

	(void)loop;
	(void)revents;
	job_pool_state(s->pool, &state);
	snprintf(status, sizeof(status),
		 "%s %s, %u workers, %zu running, %zu queued, %llu runs done",
		 s->stopping ? "stopping on" : "serving on", s->cfg.socket_path,
		 state.workers, state.running, state.queued,
		 (unsigned long long)request_runs_done(s->requests));
	if (strcmp(status, s->status) == 0)
		return;
	memcpy(s->status, status, sizeof(status));
	listen_notify_status(status);
}

/* Called by workers: wakes the loop to take the completions. */
static void
server_notify(void *arg)
{
	struct server *s = arg;

	ev_async_send(s->loop, &s->completions);
}

static void
server_watchers_start(struct server *s)
{
	ev_io_init(&s->accept_watcher, server_accept_cb, s->listen_fd, EV_READ);
	s->accept_watcher.data = s;
	ev_io_start(s->loop, &s->accept_watcher);
	ev_init(&s->accept_pause, server_accept_resume_cb);
	s->accept_pause.data = s;
	ev_async_init(&s->completions, server_completions_cb);
	s->completions.data = s;
	ev_async_start(s->loop, &s->completions);
	for (size_t i = 0; i < NELEM(s->stop_signals); i++) {
		ev_signal_init(&s->stop_signals[i], server_stop_cb,
			       server_stop_signums[i]);
		s->stop_signals[i].data = s;
		ev_signal_start(s->loop, &s->stop_signals[i]);
	}
	for (size_t i = 0; i < NELEM(s->ignored_signals); i++) {
		ev_signal_init(&s->ignored_signals[i], server_ignore_cb,
			       server_ignored_signums[i]);
		ev_signal_start(s->loop, &s->ignored_signals[i]);
	}
	/* systemd wants the ping at least once per interval; go twice. */
	ev_init(&s->watchdog, server_watchdog_cb);
	s->watchdog.repeat = (double)s->cfg.watchdog_usec / 2e6;
	if (s->cfg.watchdog_usec > 0)
		ev_timer_again(s->loop, &s->watchdog);
	ev_timer_init(&s->status_timer, server_status_cb, 0., SERVER_STATUS_INTERVAL);
	s->status_timer.data = s;
	ev_timer_start(s->loop, &s->status_timer);
}

static void
server_watchers_stop(struct server *s)
{
	ev_io_stop(s->loop, &s->accept_watcher);
	ev_timer_stop(s->loop, &s->accept_pause);
	ev_async_stop(s->loop, &s->completions);
	for (size_t i = 0; i < NELEM(s->stop_signals); i++)
		ev_signal_stop(s->loop, &s->stop_signals[i]);
	for (size_t i = 0; i < NELEM(s->ignored_signals); i++)
		ev_signal_stop(s->loop, &s->ignored_signals[i]);
	ev_timer_stop(s->loop, &s->watchdog);
	ev_timer_stop(s->loop, &s->status_timer);
}

int
server_create(const struct server_config *cfg, struct host_watch *hosts, int listen_fd,
	      struct server **serverp, struct kvmrun_error *err)
{
	struct job_pool_config pool_cfg;
	struct sigaction sa;
	struct server *s;
	int rc;

	/* Writes use MSG_NOSIGNAL; this covers anything else on a dead socket. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) < 0) {
		rc = -errno;
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "sigaction(SIGPIPE): %s",
				 strerror(errno));
		return rc;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "no memory for the server");
		return -ENOMEM;
	}
	s->cfg = *cfg;
	s->listen_fd = listen_fd;
	LIST_INIT(&s->clients);
	s->loop = ev_default_loop(EVFLAG_AUTO);
	if (s->loop == NULL) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				 "cannot set up the event loop");
		rc = -ENOMEM;
		goto out_free;
	}
	server_watchers_start(s);
	pool_cfg = (struct job_pool_config){
		.limits = cfg->limits,
		.workers = cfg->workers,
		.queue_max = cfg->queue,
		.prepared = cfg->prepared_vms,
		.max_memory = cfg->max_total_memory,
	};
	rc = job_pool_create(host_watch_current(hosts), &pool_cfg, server_notify, s, &s->pool, err);
	if (rc < 0)
		goto out_stop_watchers;
	rc = request_handler_create(&cfg->limits, cfg->max_total_memory, hosts, s->pool,
				    &s->requests);
	if (rc < 0) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				 "no memory for the request handler");
		goto out_destroy_pool;
	}
	*serverp = s;
	return 0;

out_destroy_pool:
	job_pool_destroy(s->pool);
out_stop_watchers:
	server_watchers_stop(s);
	ev_loop_destroy(s->loop);
out_free:
	free(s);
	return rc;
}

void
server_run(struct server *s)
{
	ev_run(s->loop, 0);
}

void
server_destroy(struct server *s)
{
	/* Clients first: dropping one cancels its jobs, which needs the pool. */
	while (!LIST_EMPTY(&s->clients))
		client_destroy(LIST_FIRST(&s->clients));
	/* Workers still running call server_notify, so the loop outlives them. */
	job_pool_destroy(s->pool);
	request_handler_destroy(s->requests);
	server_watchers_stop(s);
	ev_loop_destroy(s->loop);
	free(s);
}
