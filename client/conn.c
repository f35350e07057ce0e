/*
 * Line I/O on a stream Unix socket with timeouts, for libkvmrun and the
 * benchmark.  The socket is non-blocking once connected and every wait is a
 * poll() against a monotonic deadline, so no call blocks past its timeout.
 * The line buffer also takes bytes that came another way (conn_reserve).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "tls.h"

/* The first read buffer; it doubles up to the longest line allowed. */
#define CONN_BUFFER_INITIAL 65536u

int
conn_fail(struct conn_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;

	err->errnum = errnum;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -errnum;
}

/* Milliseconds on the monotonic clock, or -1 with errno set. */
static int64_t
conn_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return -1;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
conn_deadline(const struct conn *conn, int timeout_ms, int64_t *deadline,
	      struct conn_error *err)
{
	int64_t now;

	*deadline = -1;
	if (timeout_ms < 0)
		return 0;
	now = conn_now();
	if (now < 0)
		return conn_fail(err, errno, "%s: clock_gettime: %s", conn->path,
				 strerror(errno));
	*deadline = now + timeout_ms;
	return 0;
}

int
conn_wait(const struct conn *conn, short events, int64_t deadline)
{
	struct pollfd pfd = {.fd = conn->fd, .events = events};
	int64_t now, left;
	int n;

	for (;;) {
		left = -1;
		if (deadline >= 0) {
			now = conn_now();
			if (now < 0)
				return -errno;
			if (now >= deadline)
				return -ETIMEDOUT;
			left = deadline - now;
		}
		n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		/* An error or a hang-up counts as ready: send or recv tells which. */
		if (n > 0)
			return pfd.revents;
		if (n == -1 && errno != EINTR)
			return -errno;
	}
}

void
conn_init(struct conn *conn, const char *path, size_t max_line)
{
	memset(conn, 0, sizeof(*conn));
	conn->fd = -1;
	conn->max_line = max_line;
	snprintf(conn->path, sizeof(conn->path), "%s", path);
}

int
conn_open(struct conn *conn, const char *path, int timeout_ms, size_t max_line,
	  struct conn_error *err)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t path_length = strlen(path);
	const char *why;
	int fd, flags, errnum;

	conn_init(conn, "", max_line);
	if (path_length >= sizeof(sun.sun_path))
		return conn_fail(err, ENAMETOOLONG, "cannot connect to %s: %s", path,
				 strerror(ENAMETOOLONG));
	memcpy(sun.sun_path, path, path_length + 1);
	memcpy(conn->path, path, path_length + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return conn_fail(err, errno, "cannot connect to %s: socket: %s", path,
				 strerror(errno));
	/*
	 * A blocking connect on a Unix socket waits only while the listener's
	 * backlog is full, for at most the send timeout, and then fails with
	 * EAGAIN.  A zero timeval would mean no limit, hence the 1 ms floor.
	 */
	if (timeout_ms >= 0) {
		struct timeval tv = {
			.tv_sec = timeout_ms / 1000,
			.tv_usec = timeout_ms == 0 ? 1000 : (timeout_ms % 1000) * 1000,
		};

		if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1) {
			errnum = errno;
			conn_fail(err, errnum, "cannot connect to %s: SO_SNDTIMEO: %s",
				  path, strerror(errnum));
			goto out_close;
		}
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		errnum = errno;
		why = strerror(errnum);
		if (errnum == EAGAIN) {
			errnum = ETIMEDOUT;
			why = "backlog full until the timeout";
		}
		conn_fail(err, errnum, "cannot connect to %s: %s", path, why);
		goto out_close;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
		errnum = errno;
		conn_fail(err, errnum, "%s: O_NONBLOCK: %s", path, strerror(errnum));
		goto out_close;
	}
	conn->fd = fd;
	return 0;

out_close:
	/* Nothing was sent on this socket, so a failing close loses nothing. */
	(void)close(fd);
	return -errnum;
}

void
conn_close(struct conn *conn)
{
	if (conn->tls != NULL)
		tls_close(conn);
	/* Every write was waited for, so a failing close loses nothing. */
	if (conn->fd != -1)
		(void)close(conn->fd);
	free(conn->buf);
	conn->buf = NULL;
	conn->fd = -1;
}

int
conn_fd(const struct conn *conn)
{
	return conn->fd;
}

ssize_t
conn_write_some(struct conn *conn, const void *data, size_t length,
		struct conn_error *err)
{
	ssize_t n;

	if (conn->tls != NULL)
		return tls_write_some(conn, data, length, err);
	do
		n = send(conn->fd, data, length, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	return conn_fail(err, errno, "%s: cannot send: %s", conn->path,
			 strerror(errno));
}

/* Whether the buffer can take more bytes without breaking the line bound. */
static bool
conn_has_room(const struct conn *conn)
{
	return conn->end < conn->size || conn->start > 0 || conn->size <= conn->max_line;
}

int
conn_write_all(struct conn *conn, const void *data, size_t length, int timeout_ms,
	       struct conn_error *err)
{
	const char *p = data;
	bool reading = true;
	int64_t deadline;
	ssize_t n;
	int r;

	r = conn_deadline(conn, timeout_ms, &deadline, err);
	if (r < 0)
		return r;
	while (length > 0) {
		n = conn_write_some(conn, p, length, err);
		if (n < 0)
			return (int)n;
		p += n;
		length -= (size_t)n;
		if (n > 0 || length == 0)
			continue;
		/*
		 * While the peer does not take more, take its answers: a peer
		 * that waits for its answers to be read before it reads on
		 * would otherwise wait for ever.  They stay buffered for
		 * conn_next_line.
		 */
		reading = reading && !conn->eof && conn_has_room(conn);
		r = conn_wait(conn, POLLOUT | (reading ? POLLIN : 0), deadline);
		if (r == -ETIMEDOUT)
			return conn_fail(err, ETIMEDOUT, "%s: could not send for %d ms",
					 conn->path, timeout_ms);
		if (r < 0)
			return conn_fail(err, -r, "%s: poll: %s", conn->path,
					 strerror(-r));
		/* A failed receive is left for the reader to find again. */
		if (reading && (r & POLLIN) && !(r & POLLOUT) &&
		    conn_fill(conn, err) < 0 && !conn->eof)
			reading = false;
	}
	return 0;
}

/* Makes room after conn->end: moves the unread bytes down, then grows. */
static int
conn_make_room(struct conn *conn, struct conn_error *err)
{
	size_t size;
	char *buf;

	if (conn->start > 0) {
		memmove(conn->buf, conn->buf + conn->start, conn->end - conn->start);
		conn->end -= conn->start;
		conn->start = 0;
	}
	if (conn->end < conn->size)
		return 0;
	/* A full line and its '\n' must fit, and no more is needed. */
	if (conn->size > conn->max_line)
		return conn_fail(err, EMSGSIZE, "%s: line longer than %zu bytes",
				 conn->path, conn->max_line);
	size = conn->size == 0 ? CONN_BUFFER_INITIAL : conn->size * 2;
	if (size > conn->max_line + 1 || size < conn->size)
		size = conn->max_line + 1;
	buf = realloc(conn->buf, size);
	if (buf == NULL)
		return conn_fail(err, ENOMEM,
				 "%s: no memory for a %zu-byte line buffer", conn->path,
				 size);
	conn->buf = buf;
	conn->size = size;
	return 0;
}

int
conn_reserve(struct conn *conn, char **space, size_t *length, struct conn_error *err)
{
	int r;

	r = conn_make_room(conn, err);
	if (r < 0)
		return r;
	*space = conn->buf + conn->end;
	*length = conn->size - conn->end;
	return 0;
}

void
conn_commit(struct conn *conn, size_t length)
{
	if (length == 0)
		conn->eof = true;
	conn->end += length;
}

ssize_t
conn_fill(struct conn *conn, struct conn_error *err)
{
	size_t room;
	char *space;
	ssize_t n;
	int r;

	if (conn->tls != NULL)
		return tls_fill(conn, err);
	r = conn_reserve(conn, &space, &room, err);
	if (r < 0)
		return r;
	do
		n = recv(conn->fd, space, room, MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n >= 0) {
		conn_commit(conn, (size_t)n);
		return n;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -EAGAIN;
	return conn_fail(err, errno, "%s: cannot receive: %s", conn->path,
			 strerror(errno));
}

bool
conn_has_line(const struct conn *conn)
{
	return conn->end > conn->start &&
	       memchr(conn->buf + conn->start, '\n', conn->end - conn->start) != NULL;
}

int
conn_next_line(struct conn *conn, char **line, size_t *length, struct conn_error *err)
{
	size_t unscanned = conn->end - conn->start - conn->scanned;
	char *nl = NULL;

	if (unscanned > 0)
		nl = memchr(conn->buf + conn->start + conn->scanned, '\n', unscanned);
	if (nl == NULL) {
		conn->scanned += unscanned;
		if (conn->scanned > conn->max_line)
			return conn_fail(err, EMSGSIZE,
					 "%s: line longer than %zu bytes", conn->path,
					 conn->max_line);
		if (conn->eof && conn->scanned > 0)
			return conn_fail(
			    err, EPROTO,
			    "%s: connection closed in the middle of a line",
			    conn->path);
		return 0;
	}
	*nl = '\0';
	*line = conn->buf + conn->start;
	*length = (size_t)(nl - *line);
	if (*length > conn->max_line)
		return conn_fail(err, EMSGSIZE, "%s: line longer than %zu bytes",
				 conn->path, conn->max_line);
	conn->start += *length + 1;
	conn->scanned = 0;
	return 1;
}

int
conn_read_line(struct conn *conn, char **line, size_t *length, int timeout_ms,
	       struct conn_error *err)
{
	int64_t deadline;
	ssize_t n;
	int r;

	r = conn_deadline(conn, timeout_ms, &deadline, err);
	if (r < 0)
		return r;
	for (;;) {
		r = conn_next_line(conn, line, length, err);
		if (r != 0 || conn->eof)
			return r;
		n = conn_fill(conn, err);
		if (n >= 0)
			continue;
		if (n != -EAGAIN)
			return (int)n;
		r = conn_wait(conn, POLLIN, deadline);
		if (r >= 0)
			continue;
		if (r == -ETIMEDOUT)
			return conn_fail(err, ETIMEDOUT, "%s: no answer within %d ms",
					 conn->path, timeout_ms);
		if (r < 0)
			return conn_fail(err, -r, "%s: poll: %s", conn->path,
					 strerror(-r));
	}
}
