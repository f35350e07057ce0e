/*
 * libkvmrun: connections to kvmrund for C programs (kvmrun.h, libkvmrun(3)).
 * Requests go out and answers come in through a transport: the Unix socket
 * by default (conn.c, blocking within timeouts), or a program's send and
 * receive callbacks.  Answers are taken in the order the requests went out,
 * at most a window of them pending.  JSON is the codec's; every failure is
 * a value kept on the connection, nothing is printed.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "tls.h"
#include "kvmrun-proto.h"
#include "kvmrun.h"

/* An unknown exit's name shares the union with the others: no larger than the largest. */
_Static_assert(sizeof(((struct kvmrun_exit *)NULL)->u.unknown) <=
		       sizeof(((struct kvmrun_exit *)NULL)->u.internal),
	       "struct kvmrun_exit keeps its size");

/* Dumps and console output make answer lines large; this bounds them. */
#define LIB_MAX_LINE (256u << 20)
#define LIB_CONNECT_TIMEOUT_MS 5000
/* What an answer may take beyond the guest's own timeout: queueing, set-up. */
#define LIB_RESPONSE_MARGIN_MS 10000
#define LIB_WINDOW_DEFAULT 16u
#define LIB_WINDOW_MAX 65536u
/* The name messages give a connection over callbacks. */
#define LIB_IO_NAME "kvmrund"

/* A request sent whose answer has not been taken. */
struct lib_pending {
	uint64_t id; /* 0: a line sent as it is, whose id is its own */
	enum kvmrun_op op;
	int timeout_ms;
};

struct kvmrun_conn {
	struct conn line; /* the socket (fd -1 over callbacks) and read buffer */
	char *path;	  /* the socket's path; NULL over callbacks */
	/* For a tls:// path: the CA, certificate and key files (tls.h). */
	char *tls_file[3];
	struct kvmrun_io io;
	void *user_data;
	int connect_timeout_ms;
	int response_timeout_ms;   /* negative: per request */
	struct kvmrun_error error; /* the last failure */
	bool write_failed;	   /* the daemon hung up while a request went out */
	struct conn_error write_error;
	struct lib_pending *pending; /* a ring of WINDOW entries */
	unsigned int window;
	unsigned int head; /* the oldest pending */
	unsigned int count;
	uint64_t next_id;
};

static int lib_fail(struct kvmrun_conn *conn, enum kvmrun_errcode code, int errnum,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Keeps the failure on CONN; returns -1. */
static int
lib_fail(struct kvmrun_conn *conn, enum kvmrun_errcode code, int errnum,
	 const char *fmt, ...)
{
	va_list ap;

	conn->error.code = code;
	conn->error.errnum = errnum;
	va_start(ap, fmt);
	vsnprintf(conn->error.message, sizeof(conn->error.message), fmt, ap);
	va_end(ap);
	return -1;
}

/* A failure of the transport, its code told by its errno. */
static int
lib_fail_io(struct kvmrun_conn *conn, const struct conn_error *cerr)
{
	enum kvmrun_errcode code = KVMRUN_ERR_CONNECTION;

	switch (cerr->errnum) {
	case ETIMEDOUT:
		code = KVMRUN_ERR_TIMEOUT;
		break;
	case EPROTO:
		code = KVMRUN_ERR_CLOSED;
		break;
	case EMSGSIZE:
		code = KVMRUN_ERR_PROTOCOL;
		break;
	case ENOMEM:
		code = KVMRUN_ERR_NOMEM;
		break;
	}
	return lib_fail(conn, code, cerr->errnum, "%s", cerr->message);
}

static struct kvmrun_conn *
lib_new(void)
{
	struct kvmrun_conn *conn = calloc(1, sizeof(*conn));

	if (conn == NULL)
		return NULL;
	conn->window = LIB_WINDOW_DEFAULT;
	conn->pending = calloc(conn->window, sizeof(*conn->pending));
	if (conn->pending == NULL) {
		free(conn);
		return NULL;
	}
	conn->connect_timeout_ms = LIB_CONNECT_TIMEOUT_MS;
	conn->response_timeout_ms = -1;
	conn->next_id = 1;
	return conn;
}

struct kvmrun_conn *
kvmrun_open(const char *path)
{
	struct kvmrun_conn *conn;

	if (path == NULL)
		path = getenv("KVMRUN_SOCKET");
	if (path == NULL || path[0] == '\0')
		path = KVMRUN_DEFAULT_SOCKET;
	conn = lib_new();
	if (conn == NULL)
		return NULL;
	conn->path = strdup(path);
	if (conn->path == NULL) {
		kvmrun_close(conn);
		return NULL;
	}
	conn_init(&conn->line, path, LIB_MAX_LINE);
	if (kvmrun_set_tls(conn, getenv("KVMRUN_CA"), getenv("KVMRUN_CERT"),
			   getenv("KVMRUN_KEY")) < 0) {
		kvmrun_close(conn);
		return NULL;
	}
	return conn;
}

int
kvmrun_set_tls(struct kvmrun_conn *conn, const char *ca, const char *cert,
	       const char *key)
{
	const char *given[3] = { ca, cert, key };
	char *copy[3] = { NULL, NULL, NULL };

	for (int i = 0; i < 3; i++) {
		if (given[i] == NULL || given[i][0] == '\0')
			continue;
		copy[i] = strdup(given[i]);
		if (copy[i] == NULL) {
			free(copy[0]);
			free(copy[1]);
			return lib_fail(conn, KVMRUN_ERR_NOMEM, ENOMEM,
					"out of memory");
		}
	}
	for (int i = 0; i < 3; i++) {
		free(conn->tls_file[i]);
		conn->tls_file[i] = copy[i];
	}
	return 0;
}

struct kvmrun_conn *
kvmrun_open_io(const struct kvmrun_io *io, void *user_data)
{
	struct kvmrun_conn *conn;

	if (io == NULL || io->send == NULL) {
		errno = EINVAL;
		return NULL;
	}
	conn = lib_new();
	if (conn == NULL)
		return NULL;
	conn->io = *io;
	conn->user_data = user_data;
	conn_init(&conn->line, LIB_IO_NAME, LIB_MAX_LINE);
	return conn;
}

void
kvmrun_close(struct kvmrun_conn *conn)
{
	if (conn == NULL)
		return;
	conn_close(&conn->line);
	free(conn->pending);
	free(conn->path);
	for (int i = 0; i < 3; i++)
		free(conn->tls_file[i]);
	free(conn);
}

int
kvmrun_connect(struct kvmrun_conn *conn)
{
	struct conn_error cerr;

	const struct tls_files files = { conn->tls_file[0], conn->tls_file[1],
					 conn->tls_file[2] };
	int r;

	if (conn->path == NULL || conn->line.fd != -1)
		return 0;
	if (tls_is_address(conn->path))
		r = tls_open(&conn->line, conn->path, &files, conn->connect_timeout_ms,
			     LIB_MAX_LINE, &cerr);
	else
		r = conn_open(&conn->line, conn->path, conn->connect_timeout_ms,
			      LIB_MAX_LINE, &cerr);
	if (r < 0)
		return lib_fail(conn, KVMRUN_ERR_CONNECTION, cerr.errnum, "%s",
				cerr.message);
	return 0;
}

const char *
kvmrun_socket_path(const struct kvmrun_conn *conn)
{
	return conn->path != NULL ? conn->path : "";
}

int
kvmrun_fd(const struct kvmrun_conn *conn)
{
	return conn_fd(&conn->line);
}

void
kvmrun_set_timeouts(struct kvmrun_conn *conn, int connect_ms, int response_ms)
{
	conn->connect_timeout_ms = connect_ms;
	conn->response_timeout_ms = response_ms;
}

int
kvmrun_set_window(struct kvmrun_conn *conn, unsigned int window)
{
	struct lib_pending *pending;

	if (window == 0 || window > LIB_WINDOW_MAX || window < conn->count)
		return lib_fail(conn, KVMRUN_ERR_INVALID, EINVAL,
				"window %u: not from 1 to %u, nor below the %u pending",
				window, LIB_WINDOW_MAX, conn->count);
	pending = calloc(window, sizeof(*pending));
	if (pending == NULL)
		return lib_fail(conn, KVMRUN_ERR_NOMEM, ENOMEM, "out of memory");
	for (unsigned int i = 0; i < conn->count; i++)
		pending[i] = conn->pending[(conn->head + i) % conn->window];
	free(conn->pending);
	conn->pending = pending;
	conn->window = window;
	conn->head = 0;
	return 0;
}

unsigned int
kvmrun_pending(const struct kvmrun_conn *conn)
{
	return conn->count;
}

bool
kvmrun_answer_ready(const struct kvmrun_conn *conn)
{
	return conn_has_line(&conn->line);
}

const struct kvmrun_error *
kvmrun_last_error(const struct kvmrun_conn *conn)
{
	return &conn->error;
}

/* How long the answer to a request may take. */
static int
lib_timeout(const struct kvmrun_conn *conn, enum kvmrun_op op,
	    const struct kvmrun_spec *spec, bool raw)
{
	if (conn->response_timeout_ms >= 0)
		return conn->response_timeout_ms;
	if (raw)
		return KVMRUN_DEFAULT_MAX_TIMEOUT_MS + LIB_RESPONSE_MARGIN_MS;
	if (op != KVMRUN_OP_RUN)
		return LIB_RESPONSE_MARGIN_MS;
	if (spec->timeout_ms > INT_MAX - LIB_RESPONSE_MARGIN_MS)
		return INT_MAX;
	return (int)spec->timeout_ms + LIB_RESPONSE_MARGIN_MS;
}

/* Sends DATA through the transport: 0, or -1. */
static int
lib_send(struct kvmrun_conn *conn, const char *data, size_t length, int timeout_ms)
{
	struct conn_error cerr;
	int r;

	/* Once the daemon has hung up, its answers may still be read. */
	if (conn->write_failed)
		return 0;
	if (conn->path == NULL) {
		r = conn->io.send(conn, data, length, conn->user_data);
		if (r < 0)
			return lib_fail(conn, KVMRUN_ERR_CONNECTION, -r,
					"%s: cannot send: %s", LIB_IO_NAME,
					strerror(-r));
		return 0;
	}
	r = conn_write_all(&conn->line, data, length, timeout_ms, &cerr);
	/* A daemon refusing a request may answer and hang up before reading it all. */
	if (r == -EPIPE || r == -ECONNRESET) {
		conn->write_failed = true;
		conn->write_error = cerr;
		return 0;
	}
	return r < 0 ? lib_fail_io(conn, &cerr) : 0;
}

/* Sends the request LINE (with its '\n') and makes it pending. */
static int
lib_submit(struct kvmrun_conn *conn, uint64_t id, enum kvmrun_op op, const char *line,
	   size_t length, int timeout_ms)
{
	struct lib_pending *p;

	if (kvmrun_connect(conn) < 0 || lib_send(conn, line, length, timeout_ms) < 0)
		return -1;
	p = &conn->pending[(conn->head + conn->count) % conn->window];
	p->id = id;
	p->op = op;
	p->timeout_ms = timeout_ms;
	conn->count++;
	return 0;
}

static int
lib_window_full(struct kvmrun_conn *conn)
{
	return lib_fail(conn, KVMRUN_ERR_INVALID, EBUSY,
			"%u requests pending: the window is full, take an answer first",
			conn->count);
}

int
kvmrun_submit(struct kvmrun_conn *conn, enum kvmrun_op op,
	      const struct kvmrun_spec *spec)
{
	char id[24], *request;
	size_t length;
	int r;

	if ((unsigned int)op >= KVMRUN_OP_COUNT ||
	    (op == KVMRUN_OP_RUN) != (spec != NULL))
		return lib_fail(conn, KVMRUN_ERR_INVALID, EINVAL,
				"a run needs a spec, and ping and stats none");
	if (conn->count == conn->window)
		return lib_window_full(conn);
	snprintf(id, sizeof(id), "%llu", (unsigned long long)conn->next_id);
	request = proto_format_request(id, op, spec, &length);
	if (request == NULL)
		return lib_fail(conn, KVMRUN_ERR_NOMEM, ENOMEM, "out of memory");
	r = lib_submit(conn, conn->next_id, op, request, length,
		       lib_timeout(conn, op, spec, false));
	free(request);
	if (r == 0)
		conn->next_id++;
	return r;
}

char *
kvmrun_request_line(const struct kvmrun_conn *conn, enum kvmrun_op op,
		    const struct kvmrun_spec *spec, size_t *length)
{
	char id[24], *line;

	if ((unsigned int)op >= KVMRUN_OP_COUNT || (op == KVMRUN_OP_RUN) != (spec != NULL))
		return NULL;
	snprintf(id, sizeof(id), "%llu", (unsigned long long)conn->next_id);
	line = proto_format_request(id, op, spec, length);
	if (line != NULL)
		line[--*length] = '\0';
	return line;
}

int
kvmrun_submit_line(struct kvmrun_conn *conn, const char *line, size_t length)
{
	char *request;
	int r;

	if (memchr(line, '\n', length) != NULL)
		return lib_fail(conn, KVMRUN_ERR_INVALID, EINVAL,
				"a request line holds no newline");
	if (conn->count == conn->window)
		return lib_window_full(conn);
	request = malloc(length + 1);
	if (request == NULL)
		return lib_fail(conn, KVMRUN_ERR_NOMEM, ENOMEM, "out of memory");
	memcpy(request, line, length);
	request[length] = '\n';
	r = lib_submit(conn, 0, KVMRUN_OP_COUNT, request, length + 1,
		       lib_timeout(conn, KVMRUN_OP_COUNT, NULL, true));
	free(request);
	return r;
}

/* The next line: 1, 0 at end of file, or -1. */
static int
lib_read_line(struct kvmrun_conn *conn, char **line, size_t *length, int timeout_ms)
{
	struct conn_error cerr;
	size_t room;
	char *space;
	ssize_t n;
	int r;

	if (conn->path != NULL) {
		if (conn->line.fd == -1)
			return lib_fail(conn, KVMRUN_ERR_INVALID, ENOTCONN,
					"not connected");
		r = conn_read_line(&conn->line, line, length, timeout_ms, &cerr);
		return r < 0 ? lib_fail_io(conn, &cerr) : r;
	}
	for (;;) {
		r = conn_next_line(&conn->line, line, length, &cerr);
		if (r < 0)
			return lib_fail_io(conn, &cerr);
		if (r > 0 || conn->line.eof)
			return r;
		if (conn->io.recv == NULL)
			return lib_fail(conn, KVMRUN_ERR_WOULDBLOCK, EAGAIN,
					"no whole answer received yet");
		if (conn_reserve(&conn->line, &space, &room, &cerr) < 0)
			return lib_fail_io(conn, &cerr);
		n = conn->io.recv(conn, space, room, conn->user_data);
		if (n == -EAGAIN || n == -EWOULDBLOCK)
			return lib_fail(conn, KVMRUN_ERR_WOULDBLOCK, EAGAIN,
					"no whole answer received yet");
		if (n < 0)
			return lib_fail(conn, KVMRUN_ERR_CONNECTION, (int)-n,
					"%s: cannot receive: %s", LIB_IO_NAME,
					strerror((int)-n));
		conn_commit(&conn->line, (size_t)n > room ? room : (size_t)n);
	}
}

int
kvmrun_feed(struct kvmrun_conn *conn, const void *data, size_t length)
{
	const char *p = data;
	struct conn_error cerr;
	size_t room;
	char *space;

	if (length == 0) {
		conn_commit(&conn->line, 0);
		return 0;
	}
	while (length > 0) {
		if (conn_reserve(&conn->line, &space, &room, &cerr) < 0)
			return lib_fail_io(conn, &cerr);
		if (room > length)
			room = length;
		memcpy(space, p, room);
		conn_commit(&conn->line, room);
		p += room;
		length -= room;
	}
	return 0;
}

static void lib_answer_error(struct kvmrun_answer *answer, enum kvmrun_errcode code,
			     const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
lib_answer_error(struct kvmrun_answer *answer, enum kvmrun_errcode code,
		 const char *fmt, ...)
{
	va_list ap;

	answer->error.code = code;
	answer->error.errnum = 0;
	va_start(ap, fmt);
	vsnprintf(answer->error.message, sizeof(answer->error.message), fmt, ap);
	va_end(ap);
}

static const enum kvmrun_op lib_kind_op[] = {
	[PROTO_RESPONSE_RESULT] = KVMRUN_OP_RUN,
	[PROTO_RESPONSE_ERROR] = KVMRUN_OP_COUNT,
	[PROTO_RESPONSE_PING] = KVMRUN_OP_PING,
	[PROTO_RESPONSE_STATS] = KVMRUN_OP_STATS,
};

/* Moves what RESP says into ANSWER, whose op and error are already set. */
static void
lib_answer_take(struct kvmrun_answer *answer, struct proto_response *resp)
{
	const struct proto_kvm_status *kvm = &resp->kvm;
	struct kvmrun_ping *ping = &answer->ping;

	switch (resp->kind) {
	case PROTO_RESPONSE_ERROR:
		answer->error = resp->error;
		answer->error.errnum = 0;
		break;
	case PROTO_RESPONSE_RESULT:
		answer->result = resp->result;
		kvmrun_result_init(&resp->result);
		break;
	case PROTO_RESPONSE_PING:
		snprintf(ping->version, sizeof(ping->version), "%s",
			 resp->version != NULL ? resp->version : "");
		ping->protocol = resp->protocol;
		ping->kvm_available = kvm->available;
		ping->kvm_api_version = kvm->api_version;
		memcpy(ping->mode_supported, kvm->mode_supported,
		       sizeof(ping->mode_supported));
		snprintf(ping->kvm_reason, sizeof(ping->kvm_reason), "%s", kvm->reason);
		ping->paged = kvm->paged;
		break;
	case PROTO_RESPONSE_STATS:
		answer->stats = resp->stats;
		break;
	}
}

/* Reads LINE, the answer to P (NULL: to no request), into ANSWER. */
static void
lib_answer_parse(struct kvmrun_conn *conn, const struct lib_pending *p,
		 const char *line, size_t length, struct kvmrun_answer *answer)
{
	const char *where = conn->path != NULL ? conn->path : LIB_IO_NAME;
	struct proto_response resp;
	struct kvmrun_error perr;
	char want[24];
	const char *id;

	answer->op = p != NULL ? p->op : KVMRUN_OP_COUNT;
	/* A newer daemon's exit reason or error code is no reason to give up. */
	if (proto_response_parse(line, length, &resp, &perr) < 0 &&
	    perr.code != KVMRUN_ERR_UNKNOWN) {
		lib_answer_error(answer, KVMRUN_ERR_PROTOCOL,
				 "%s: unreadable answer: %s", where, perr.message);
		goto out;
	}
	if (p == NULL) {
		lib_answer_error(answer, KVMRUN_ERR_PROTOCOL,
				 "%s: an answer to no request", where);
		goto out;
	}
	if (p->id == 0) {
		/* A line sent as it is: whatever it asked for is its own business. */
		answer->op = lib_kind_op[resp.kind];
		lib_answer_take(answer, &resp);
		goto out;
	}
	/* An error about a line too long to find its id in carries the id null. */
	id = resp.id_json != NULL ? resp.id_json : "null";
	snprintf(want, sizeof(want), "%llu", (unsigned long long)p->id);
	if (strcmp(id, want) != 0 &&
	    !(resp.kind == PROTO_RESPONSE_ERROR && strcmp(id, "null") == 0))
		lib_answer_error(answer, KVMRUN_ERR_PROTOCOL,
				 "%s: answer for id %s, not %s", where, id, want);
	else if (resp.kind != PROTO_RESPONSE_ERROR && lib_kind_op[resp.kind] != p->op)
		lib_answer_error(answer, KVMRUN_ERR_PROTOCOL,
				 "%s: answer of the wrong kind for %s", where,
				 kvmrun_op_name(p->op));
	else
		lib_answer_take(answer, &resp);
out:
	proto_response_free(&resp);
}

int
kvmrun_next(struct kvmrun_conn *conn, struct kvmrun_answer *answer)
{
	const struct lib_pending *p = NULL;
	size_t length;
	char *line;
	int r;

	memset(answer, 0, sizeof(*answer));
	kvmrun_result_init(&answer->result);
	answer->op = KVMRUN_OP_COUNT;
	if (conn->count > 0)
		p = &conn->pending[conn->head];
	else if (!conn_has_line(&conn->line))
		return lib_fail(conn, KVMRUN_ERR_INVALID, ENOENT, "no request pending");
	r = lib_read_line(conn, &line, &length, p != NULL ? p->timeout_ms : 0);
	if (r < 0 && conn->error.code == KVMRUN_ERR_WOULDBLOCK)
		return -1;
	/* What broke the sending, unless an answer came all the same. */
	if (r <= 0 && conn->write_failed)
		return lib_fail(conn, KVMRUN_ERR_CONNECTION, conn->write_error.errnum,
				"%s", conn->write_error.message);
	if (r == 0)
		return lib_fail(conn, KVMRUN_ERR_CLOSED, 0,
				"%s: hung up without answering",
				conn->path != NULL ? conn->path : LIB_IO_NAME);
	if (r < 0)
		return -1;
	answer->line = malloc(length + 1);
	if (answer->line == NULL)
		return lib_fail(conn, KVMRUN_ERR_NOMEM, ENOMEM, "out of memory");
	memcpy(answer->line, line, length + 1);
	answer->line_length = length;
	lib_answer_parse(conn, p, line, length, answer);
	if (p != NULL) {
		conn->head = (conn->head + 1) % conn->window;
		conn->count--;
	}
	return 0;
}

void
kvmrun_answer_free(struct kvmrun_answer *answer)
{
	kvmrun_result_free(&answer->result);
	free(answer->line);
	answer->line = NULL;
	answer->line_length = 0;
}

/*
 * One request and its answer, for the synchronous calls: all but the run's
 * result is freed.
 */
static int
lib_call(struct kvmrun_conn *conn, enum kvmrun_op op, const struct kvmrun_spec *spec,
	 struct kvmrun_answer *answer)
{
	memset(answer, 0, sizeof(*answer));
	kvmrun_result_init(&answer->result);
	if (conn->count > 0)
		return lib_fail(conn, KVMRUN_ERR_INVALID, EBUSY,
				"%u requests pending: take their answers first",
				conn->count);
	if (kvmrun_submit(conn, op, spec) < 0 || kvmrun_next(conn, answer) < 0)
		return -1;
	free(answer->line);
	answer->line = NULL;
	if (answer->error.code != KVMRUN_OK) {
		conn->error = answer->error;
		kvmrun_answer_free(answer);
		return -1;
	}
	return 0;
}

int
kvmrun_run(struct kvmrun_conn *conn, const struct kvmrun_spec *spec,
	   struct kvmrun_result *result)
{
	struct kvmrun_answer answer;
	int r;

	kvmrun_result_init(result);
	if (spec == NULL)
		return lib_fail(conn, KVMRUN_ERR_INVALID, EINVAL, "a run needs a spec");
	r = lib_call(conn, KVMRUN_OP_RUN, spec, &answer);
	*result = answer.result;
	return r;
}

int
kvmrun_ping(struct kvmrun_conn *conn, struct kvmrun_ping *ping)
{
	struct kvmrun_answer answer;
	int r = lib_call(conn, KVMRUN_OP_PING, NULL, &answer);

	*ping = answer.ping;
	return r;
}

int
kvmrun_stats(struct kvmrun_conn *conn, struct kvmrun_stats *stats)
{
	struct kvmrun_answer answer;
	int r = lib_call(conn, KVMRUN_OP_STATS, NULL, &answer);

	*stats = answer.stats;
	return r;
}
