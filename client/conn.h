/*
 * Line I/O on a stream Unix socket, with timeouts: connect, write a whole
 * buffer, read newline-terminated lines through a buffer; or the same over
 * TLS on TCP, once tls_open (tls.h) has connected it.  It knows nothing
 * of the protocol beyond "one message per line", so libkvmrun and the
 * benchmark share it; libkvmrun also fills the buffer from its callbacks.
 *
 * Every call returns 0 (or a count) on success and -errno on failure, with
 * ERR holding a message that names the socket path.  Timeouts are in
 * milliseconds; a negative timeout waits for ever.
 */
#ifndef KVMRUN_CONN_H
#define KVMRUN_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#define CONN_MESSAGE_MAX 512

struct conn_error {
	int errnum; /* the errno value the call returned negated */
	char message[CONN_MESSAGE_MAX];
};

struct conn {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *buf;	/* bytes received and not yet returned */
	size_t start;	/* the first of them */
	size_t end;	/* one past the last */
	size_t scanned; /* bytes after start known to hold no '\n' */
	size_t size;
	size_t max_line; /* longest line accepted, without its '\n' */
	bool eof;	 /* the peer closed its side */
	/* TLS over TCP (tls.h); NULL on a Unix socket. */
	struct tls_session *tls;
};

/* A line buffer with no socket yet, named PATH in messages. */
void conn_init(struct conn *conn, const char *path, size_t max_line);

/*
 * Connects to the socket at PATH, waiting at most TIMEOUT_MS for a daemon
 * whose listen backlog is full.  MAX_LINE bounds the lines conn_read_line
 * and conn_next_line will buffer.  The socket is left non-blocking.
 */
int conn_open(struct conn *conn, const char *path, int timeout_ms, size_t max_line,
	      struct conn_error *err);
void conn_close(struct conn *conn);

/*
 * Writes all of DATA, waiting at most TIMEOUT_MS in total.  While the socket
 * takes no more, what the peer sends is read into the buffer, so a peer that
 * answers before it reads on cannot deadlock the two.
 */
int conn_write_all(struct conn *conn, const void *data, size_t length, int timeout_ms,
		   struct conn_error *err);

/*
 * Reads the next line, waiting at most TIMEOUT_MS in total.  Returns 1 with
 * *LINE pointing at it inside the connection's buffer (its '\n' replaced by
 * a NUL; valid until the next read), 0 when the peer closed the connection
 * between lines, or -errno (-ETIMEDOUT, -EMSGSIZE, -EPROTO for a connection
 * closed in the middle of a line, ...).
 */
int conn_read_line(struct conn *conn, char **line, size_t *length, int timeout_ms,
		   struct conn_error *err);

/*
 * The non-blocking pieces of the above, for callers that poll the socket
 * themselves along with other descriptors (pipelining, benchmarks).
 */
int conn_fd(const struct conn *conn);
/* Writes what the socket takes now: a count (maybe 0), or -errno. */
ssize_t conn_write_some(struct conn *conn, const void *data, size_t length,
			struct conn_error *err);
/* Reads what the socket has now: a count, 0 at end of file, -EAGAIN, -errno. */
ssize_t conn_fill(struct conn *conn, struct conn_error *err);
/*
 * Bytes from elsewhere (a callback): conn_reserve gives the free space after
 * the buffered bytes (0, or -EMSGSIZE / -ENOMEM), conn_commit adds the
 * LENGTH bytes stored there, 0 meaning end of file.
 */
int conn_reserve(struct conn *conn, char **space, size_t *length, struct conn_error *err);
void conn_commit(struct conn *conn, size_t length);
/* Whether a whole line is buffered. */
bool conn_has_line(const struct conn *conn);
/* A buffered line as conn_read_line gives it: 1, or 0 when none is complete. */
int conn_next_line(struct conn *conn, char **line, size_t *length,
		   struct conn_error *err);

/* For tls.c, which connects, sends and receives its own way. */
int conn_fail(struct conn_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The deadline TIMEOUT_MS from now (-1: none): 0, or -errno. */
int conn_deadline(const struct conn *conn, int timeout_ms, int64_t *deadline,
		  struct conn_error *err);
/* Waits until the socket is ready for EVENTS: its revents, -ETIMEDOUT or -errno. */
int conn_wait(const struct conn *conn, short events, int64_t deadline);

#endif
