/*
 * Drives a running kvmrund: request lines made ahead with the codec, sent
 * over a few connections from one poll() loop with a bounded number in
 * flight on each, and every answer timed from the start of its request to
 * the arrival of its line.  Requests carry their number as the id, so the
 * order answers come in does not matter.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../client/conn.h"
#include "../../client/tls.h"
#include "bench-steps.h"
#include "bench.h"
#include "kvmrun-proto.h"

/* Answers carry registers and the console: far below this. */
#define DRIVE_MAX_LINE (1u << 20)
#define DRIVE_CONNECT_TIMEOUT_MS 5000
#define DRIVE_ID_MAX 24

struct drive_conn {
	struct conn conn;
	unsigned int in_flight;
	size_t sending;	   /* the request being written, or SIZE_MAX */
	size_t sent;	   /* bytes of it written */
	uint64_t ready_ns; /* no new request before this time */
};

struct drive {
	const struct drive_config *cfg;
	struct bench_row *row;
	struct drive_conn *conns;
	char **lines;
	size_t *lengths;
	uint64_t *started; /* per request, 0 until sent */
	bool *answered;
	size_t next; /* the next request to send */
	size_t done;
};

static int
drive_make_lines(struct drive *d, struct bench_error *err)
{
	char id[DRIVE_ID_MAX];

	for (size_t i = 0; i < d->cfg->runs; i++) {
		snprintf(id, sizeof(id), "%zu", i);
		d->lines[i] = proto_format_request(id, KVMRUN_OP_RUN, d->cfg->spec,
						   &d->lengths[i]);
		if (d->lines[i] == NULL)
			return bench_fail(err, ENOMEM, "no memory for request %zu", i);
	}
	return 0;
}

/* Writes what the socket takes of the current request, starting new ones. */
static int
drive_send(struct drive *d, struct drive_conn *c, uint64_t now, struct bench_error *err)
{
	struct conn_error cerr;
	ssize_t n;

	for (;;) {
		if (c->sending == SIZE_MAX) {
			if (d->next == d->cfg->runs || c->in_flight == d->cfg->depth ||
			    now < c->ready_ns)
				return 0;
			c->sending = d->next++;
			c->sent = 0;
			c->in_flight++;
			d->started[c->sending] = bench_now_ns();
		}
		n = conn_write_some(&c->conn, d->lines[c->sending] + c->sent,
				    d->lengths[c->sending] - c->sent, &cerr);
		if (n < 0)
			return bench_fail(err, cerr.errnum, "%s", cerr.message);
		c->sent += (size_t)n;
		if (c->sent < d->lengths[c->sending])
			return 0; /* the socket is full: wait for POLLOUT */
		c->sending = SIZE_MAX;
	}
}

/* Times one answer; a garbled one, or one with an id never sent, is fatal. */
static int
drive_answer(struct drive *d, struct drive_conn *c, const char *line, size_t length,
	     struct bench_error *err)
{
	struct proto_response resp;
	struct kvmrun_error perr;
	unsigned long long id;
	uint64_t latency;
	char *end;
	int rc = 0;

	if (proto_response_parse(line, length, &resp, &perr) < 0) {
		rc = bench_fail(err, EPROTO, "%s: unreadable answer: %s",
				d->cfg->socket_path, perr.message);
		goto out_free;
	}
	errno = 0;
	id = strtoull(resp.id_json, &end, 10);
	if (errno != 0 || *end != '\0' || id >= d->cfg->runs || d->started[id] == 0 ||
	    d->answered[id]) {
		rc = bench_fail(err, EPROTO, "%s: an answer with the unexpected id %s",
				d->cfg->socket_path, resp.id_json);
		goto out_free;
	}
	latency = bench_now_ns() - d->started[id];
	d->row->latency.ns[d->row->latency.count++] = latency;
	d->answered[id] = true;
	d->done++;
	c->in_flight--;
	c->ready_ns = bench_now_ns() + d->cfg->gap_ns;
	if (resp.kind == PROTO_RESPONSE_ERROR)
		bench_row_failure(d->row, "error answer: %s", resp.error.message);
	else if (resp.kind != PROTO_RESPONSE_RESULT)
		bench_row_failure(d->row, "an answer that is not a run result");
	else if (resp.result.exit.reason != d->cfg->expect)
		bench_row_failure(d->row, "a run ended as %s",
				  kvmrun_exit_reason_names[resp.result.exit.reason]);
	else {
		d->row->run_ns += resp.result.run_ns;
		/* What the daemon and the socket added to the guest's own time. */
		d->row->overhead.ns[d->row->overhead.count++] =
			latency > resp.result.run_ns ? latency - resp.result.run_ns : 0;
	}
out_free:
	proto_response_free(&resp);
	return rc;
}

/* Reads what the socket has and handles every complete answer. */
static int
drive_receive(struct drive *d, struct drive_conn *c, struct bench_error *err)
{
	struct conn_error cerr;
	size_t length;
	char *line;
	ssize_t n;
	int r, rc;

	n = conn_fill(&c->conn, &cerr);
	if (n < 0 && n != -EAGAIN)
		return bench_fail(err, cerr.errnum, "%s", cerr.message);
	while ((r = conn_next_line(&c->conn, &line, &length, &cerr)) == 1)
		if ((rc = drive_answer(d, c, line, length, err)) < 0)
			return rc;
	if (r < 0)
		return bench_fail(err, cerr.errnum, "%s", cerr.message);
	if (n == 0 && d->done < d->cfg->runs && c->in_flight > 0)
		return bench_fail(err, EPIPE, "%s: the daemon closed the connection",
				  d->cfg->socket_path);
	return 0;
}

/* How long poll may sleep: until the first paced connection may send. */
static int
drive_poll_timeout(const struct drive *d, uint64_t now)
{
	uint64_t wake = UINT64_MAX;

	if (d->next < d->cfg->runs)
		for (unsigned int i = 0; i < d->cfg->connections; i++) {
			const struct drive_conn *c = &d->conns[i];

			if (c->sending == SIZE_MAX && c->in_flight < d->cfg->depth &&
			    c->ready_ns < wake)
				wake = c->ready_ns;
		}
	if (wake == UINT64_MAX)
		return d->cfg->idle_timeout_ms;
	/* Round up, so the wake-up is not a millisecond early. */
	return wake <= now ? 0 : (int)((wake - now + 999999) / 1000000);
}

static int
drive_loop(struct drive *d, struct pollfd *fds, struct bench_error *err)
{
	unsigned int count = d->cfg->connections;
	int rc, timeout;

	while (d->done < d->cfg->runs) {
		uint64_t now = bench_now_ns();

		for (unsigned int i = 0; i < count; i++) {
			if ((rc = drive_send(d, &d->conns[i], now, err)) < 0)
				return rc;
			fds[i].fd = conn_fd(&d->conns[i].conn);
			fds[i].events = POLLIN;
			if (d->conns[i].sending != SIZE_MAX)
				fds[i].events |= POLLOUT;
		}
		timeout = drive_poll_timeout(d, now);
		rc = poll(fds, count, timeout);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return bench_fail(err, errno, "poll: %s", strerror(errno));
		if (rc == 0 && timeout == d->cfg->idle_timeout_ms)
			return bench_fail(err, ETIMEDOUT,
					  "%s: no answer for %d ms (%zu of %zu done)",
					  d->cfg->socket_path, timeout, d->done,
					  d->cfg->runs);
		for (unsigned int i = 0; i < count; i++)
			if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    (rc = drive_receive(d, &d->conns[i], err)) < 0)
				return rc;
	}
	return 0;
}

int
drive_run(const struct drive_config *cfg, struct bench_row *row,
	  struct bench_error *err)
{
	struct drive d = { .cfg = cfg, .row = row };
	struct pollfd *fds = NULL;
	unsigned int opened = 0;
	struct conn_error cerr;
	uint64_t start;
	int rc = -ENOMEM;

	if ((rc = bench_row_room(row, cfg->runs, err)) < 0)
		return rc;
	d.conns = calloc(cfg->connections, sizeof(*d.conns));
	fds = calloc(cfg->connections, sizeof(*fds));
	d.lines = calloc(cfg->runs, sizeof(*d.lines));
	d.lengths = calloc(cfg->runs, sizeof(*d.lengths));
	d.started = calloc(cfg->runs, sizeof(*d.started));
	d.answered = calloc(cfg->runs, sizeof(*d.answered));
	if (d.conns == NULL || fds == NULL || d.lines == NULL || d.lengths == NULL ||
	    d.started == NULL || d.answered == NULL) {
		bench_fail(err, ENOMEM, "no memory for %zu requests", cfg->runs);
		goto out_free;
	}
	if ((rc = drive_make_lines(&d, err)) < 0)
		goto out_free;
	for (; opened < cfg->connections; opened++) {
		if (tls_is_address(cfg->socket_path))
			rc = tls_open(&d.conns[opened].conn, cfg->socket_path, cfg->tls,
				      DRIVE_CONNECT_TIMEOUT_MS, DRIVE_MAX_LINE, &cerr);
		else
			rc = conn_open(&d.conns[opened].conn, cfg->socket_path,
				       DRIVE_CONNECT_TIMEOUT_MS, DRIVE_MAX_LINE, &cerr);
		if (rc < 0) {
			bench_fail(err, -rc, "%s", cerr.message);
			goto out_close;
		}
		d.conns[opened].sending = SIZE_MAX;
	}
	start = bench_now_ns();
	rc = drive_loop(&d, fds, err);
	row->seconds += (double)(bench_now_ns() - start) / 1e9;
	row->runs += d.done;
out_close:
	while (opened > 0)
		conn_close(&d.conns[--opened].conn);
out_free:
	for (size_t i = 0; d.lines != NULL && i < cfg->runs; i++)
		free(d.lines[i]);
	free(d.answered);
	free(d.started);
	free(d.lengths);
	free(d.lines);
	free(fds);
	free(d.conns);
	return rc;
}

/* Asks for the stats; WORKERS and STEPS (either may be NULL) from the answer. */
static int
drive_stats(struct conn *conn, unsigned int *workers, struct proto_steps *steps,
	    struct bench_error *err)
{
	struct proto_response resp;
	struct kvmrun_error perr;
	struct conn_error cerr;
	size_t length;
	char *line;
	int rc;

	line = proto_format_request("0", KVMRUN_OP_STATS, NULL, &length);
	if (line == NULL)
		return bench_fail(err, ENOMEM, "no memory for a stats request");
	rc = conn_write_all(conn, line, length, DRIVE_CONNECT_TIMEOUT_MS, &cerr);
	free(line);
	if (rc == 0)
		rc = conn_read_line(conn, &line, &length, DRIVE_CONNECT_TIMEOUT_MS,
				    &cerr);
	if (rc == 0)
		return bench_fail(err, EPIPE, "%s: closed before the stats answer",
				  conn->path);
	if (rc < 0)
		return bench_fail(err, cerr.errnum, "%s", cerr.message);
	if (proto_response_parse(line, length, &resp, &perr) < 0 ||
	    resp.kind != PROTO_RESPONSE_STATS) {
		proto_response_free(&resp);
		return bench_fail(err, EPROTO, "%s: unexpected answer to stats",
				  conn->path);
	}
	if (workers != NULL)
		*workers = (unsigned int)resp.stats.workers;
	if (steps != NULL)
		*steps = resp.steps;
	proto_response_free(&resp);
	return 0;
}

/*
 * Asks the daemon behind SOCKET_PATH for its stats on a connection of their
 * own; PID (its process), WORKERS and STEPS may each be NULL.
 */
static int
drive_daemon_stats(const char *socket_path, pid_t *pid, unsigned int *workers,
		   struct proto_steps *steps, struct bench_error *err)
{
	struct ucred cred;
	socklen_t size = sizeof(cred);
	struct conn_error cerr;
	struct conn conn;
	int rc;

	rc = conn_open(&conn, socket_path, DRIVE_CONNECT_TIMEOUT_MS, DRIVE_MAX_LINE,
		       &cerr);
	if (rc < 0)
		return bench_fail(err, -rc, "%s", cerr.message);
	if (pid != NULL &&
	    getsockopt(conn_fd(&conn), SOL_SOCKET, SO_PEERCRED, &cred, &size) < 0) {
		rc = bench_fail(err, errno, "%s: SO_PEERCRED: %s", socket_path,
				strerror(errno));
		goto out_close;
	}
	if (pid != NULL)
		*pid = cred.pid;
	rc = drive_stats(&conn, workers, steps, err);
out_close:
	conn_close(&conn);
	return rc;
}

int
drive_daemon_info(const char *socket_path, pid_t *pid, unsigned int *workers,
		  struct bench_error *err)
{
	return drive_daemon_stats(socket_path, pid, workers, NULL, err);
}

int
drive_daemon_steps(const char *socket_path, struct proto_steps *steps,
		   struct bench_error *err)
{
	return drive_daemon_stats(socket_path, NULL, NULL, steps, err);
}
