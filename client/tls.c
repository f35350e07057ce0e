/*
 * TLS over TCP under conn.c's line buffer, with GnuTLS: kvmrund listens on
 * a Unix socket only, and a front such as HAProxy terminates mutual TLS for
 * clients on other hosts.  The socket stays non-blocking like a Unix one;
 * every wait is conn_wait against the caller's deadline.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tls.h"

/* "tls://" HOST ":" PORT: a DNS name is at most 253 bytes, a port 5 digits. */
#define TLS_HOST_MAX 256
#define TLS_PORT_MAX 6

struct tls_session {
	gnutls_session_t session;
	gnutls_certificate_credentials_t cred;
};

bool
tls_is_address(const char *address)
{
	return strncmp(address, TLS_ADDRESS_PREFIX, strlen(TLS_ADDRESS_PREFIX)) == 0;
}

/* Splits tls://HOST:PORT (HOST maybe [IPv6]) into HOST and PORT. */
static int
tls_parse_address(const char *address, char *host, char *port, struct conn_error *err)
{
	const char *p = address + strlen(TLS_ADDRESS_PREFIX), *end, *colon;
	size_t length;

	if (*p == '[') {
		end = strchr(++p, ']');
		colon = end != NULL && end[1] == ':' ? end + 1 : NULL;
	} else {
		colon = strrchr(p, ':');
		end = colon;
	}
	if (colon == NULL || end == p || colon[1] == '\0')
		return conn_fail(err, EINVAL, "%s: not an address tls://HOST:PORT",
				 address);
	length = (size_t)(end - p);
	if (length >= TLS_HOST_MAX || strlen(colon + 1) >= TLS_PORT_MAX)
		return conn_fail(err, ENAMETOOLONG,
				 "%s: a host name of at most %d bytes and a port "
				 "number expected",
				 address, TLS_HOST_MAX - 1);
	memcpy(host, p, length);
	host[length] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

/* Completes a non-blocking connect on FD: 0, or -errno. */
static int
tls_wait_connected(struct conn *conn, int64_t deadline)
{
	socklen_t size = sizeof(int);
	int r, soerr = 0;

	r = conn_wait(conn, POLLOUT, deadline);
	if (r < 0)
		return r;
	if (getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &soerr, &size) == -1)
		return -errno;
	return -soerr;
}

/* Connects CONN->fd to HOST:PORT, trying each of its addresses in turn. */
static int
tls_connect_tcp(struct conn *conn, const char *host, const char *port, int64_t deadline,
		struct conn_error *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *list, *ai;
	int r = -EADDRNOTAVAIL, one = 1, gai;

	gai = getaddrinfo(host, port, &hints, &list);
	if (gai != 0)
		return conn_fail(
			err, EADDRNOTAVAIL, "cannot connect to %s: %s", conn->path,
			gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
	for (ai = list; ai != NULL; ai = ai->ai_next) {
		conn->fd = socket(ai->ai_family,
				  ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				  ai->ai_protocol);
		if (conn->fd == -1) {
			r = -errno;
			continue;
		}
		r = 0;
		if (connect(conn->fd, ai->ai_addr, ai->ai_addrlen) == -1)
			r = errno == EINPROGRESS ? tls_wait_connected(conn, deadline)
						 : -errno;
		if (r == 0)
			break;
		/* Nothing was sent on it, so a failing close loses nothing. */
		(void)close(conn->fd);
		conn->fd = -1;
		if (r == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(list);
	if (r < 0)
		return conn_fail(err, -r, "cannot connect to %s: %s", conn->path,
				 r == -ETIMEDOUT ? "no answer until the timeout"
						 : strerror(-r));
	/* One request, one small segment: Nagle would hold pipelined lines back. */
	if (setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		return conn_fail(err, errno, "%s: TCP_NODELAY: %s", conn->path,
				 strerror(errno));
	return 0;
}

/*
 * A failure of GnuTLS: a transport failure keeps its errno; what TLS
 * itself refused is ECONNABORTED, with the alert the server sent if any
 * (how HAProxy says it wants a certificate it did not get or trust).
 */
static int
tls_fail(struct conn *conn, struct conn_error *err, int gerr, const char *what)
{
	gnutls_session_t s = conn->tls->session;
	int errnum = errno;

	if (gerr == GNUTLS_E_PUSH_ERROR || gerr == GNUTLS_E_PULL_ERROR)
		return conn_fail(err, errnum != 0 ? errnum : EIO, "%s: cannot %s: %s",
				 conn->path, what,
				 strerror(errnum != 0 ? errnum : EIO));
	if (gerr == GNUTLS_E_PREMATURE_TERMINATION)
		return conn_fail(err, ECONNRESET,
				 "%s: cannot %s: the server closed the connection "
				 "(a front with no server up?)",
				 conn->path, what);
	if (gerr == GNUTLS_E_FATAL_ALERT_RECEIVED ||
	    gerr == GNUTLS_E_WARNING_ALERT_RECEIVED)
		return conn_fail(
			err, ECONNABORTED,
			"%s: cannot %s: the server refused the TLS session: %s "
			"(does it trust the client certificate?)",
			conn->path, what, gnutls_alert_get_name(gnutls_alert_get(s)));
	return conn_fail(err, ECONNABORTED, "%s: cannot %s: TLS: %s", conn->path, what,
			 gnutls_strerror(gerr));
}

/* Loads the trusted CAs and the client's certificate into the credentials. */
static int
tls_load_files(struct conn *conn, const struct tls_files *files, struct conn_error *err)
{
	gnutls_certificate_credentials_t cred = conn->tls->cred;
	int r;

	if (files->ca != NULL) {
		r = gnutls_certificate_set_x509_trust_file(cred, files->ca,
							   GNUTLS_X509_FMT_PEM);
		if (r <= 0)
			return conn_fail(err, EINVAL, "%s: CA file %s: %s", conn->path,
					 files->ca,
					 r < 0 ? gnutls_strerror(r)
					       : "no PEM certificate in it");
	} else {
		r = gnutls_certificate_set_x509_system_trust(cred);
		if (r < 0)
			return conn_fail(
				err, EINVAL,
				"%s: the system's trusted CAs: %s (give a CA file)",
				conn->path, gnutls_strerror(r));
	}
	if ((files->cert == NULL) != (files->key == NULL))
		return conn_fail(err, EINVAL,
				 "%s: a client certificate needs its key and a key its "
				 "certificate: give both or neither",
				 conn->path);
	if (files->cert == NULL)
		return 0;
	r = gnutls_certificate_set_x509_key_file(cred, files->cert, files->key,
						 GNUTLS_X509_FMT_PEM);
	if (r < 0)
		return conn_fail(err, EINVAL, "%s: certificate %s with key %s: %s",
				 conn->path, files->cert, files->key,
				 gnutls_strerror(r));
	return 0;
}

/* Says why the server's certificate was refused. */
static int
tls_fail_verify(struct conn *conn, const char *host, struct conn_error *err)
{
	unsigned int status = gnutls_session_get_verify_cert_status(conn->tls->session);
	gnutls_datum_t why = { NULL, 0 };
	int r;

	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why,
							 0) < 0)
		why.data = NULL;
	r = conn_fail(err, ECONNABORTED,
		      "%s: the server's certificate is refused for %s: %s", conn->path,
		      host, why.data != NULL ? (const char *)why.data : "not trusted");
	gnutls_free(why.data);
	return r;
}

/* Sets up the session on the connected socket and does the handshake. */
static int
tls_handshake(struct conn *conn, const char *host, const struct tls_files *files,
	      int64_t deadline, struct conn_error *err)
{
	struct in6_addr ip;
	gnutls_session_t s;
	int r;

	conn->tls = calloc(1, sizeof(*conn->tls));
	if (conn->tls == NULL)
		return conn_fail(err, ENOMEM, "%s: out of memory", conn->path);
	r = gnutls_certificate_allocate_credentials(&conn->tls->cred);
	if (r < 0)
		return conn_fail(err, ENOMEM, "%s: TLS: %s", conn->path,
				 gnutls_strerror(r));
	r = tls_load_files(conn, files, err);
	if (r < 0)
		return r;
	r = gnutls_init(&conn->tls->session,
			GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (r < 0)
		return conn_fail(err, ENOMEM, "%s: TLS: %s", conn->path,
				 gnutls_strerror(r));
	s = conn->tls->session;
	r = gnutls_set_default_priority(s);
	if (r >= 0)
		r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, conn->tls->cred);
	/* A name goes in SNI; an address is only checked against the certificate. */
	if (r >= 0 && inet_pton(AF_INET, host, &ip) != 1 &&
	    inet_pton(AF_INET6, host, &ip) != 1)
		r = gnutls_server_name_set(s, GNUTLS_NAME_DNS, host, strlen(host));
	if (r < 0)
		return conn_fail(err, EINVAL, "%s: TLS: %s", conn->path,
				 gnutls_strerror(r));
	gnutls_session_set_verify_cert(s, host, 0);
	gnutls_transport_set_int(s, conn->fd);
	for (;;) {
		r = gnutls_handshake(s);
		if (r == GNUTLS_E_SUCCESS)
			return 0;
		if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR)
			return tls_fail_verify(conn, host, err);
		if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED)
			return tls_fail(conn, err, r, "do the TLS handshake");
		r = conn_wait(conn, gnutls_record_get_direction(s) ? POLLOUT : POLLIN,
			      deadline);
		if (r == -ETIMEDOUT)
			return conn_fail(err, ETIMEDOUT,
					 "%s: no TLS handshake until the timeout",
					 conn->path);
		if (r < 0)
			return conn_fail(err, -r, "%s: poll: %s", conn->path,
					 strerror(-r));
	}
}

int
tls_open(struct conn *conn, const char *address, const struct tls_files *files,
	 int timeout_ms, size_t max_line, struct conn_error *err)
{
	char host[TLS_HOST_MAX], port[TLS_PORT_MAX];
	int64_t deadline;
	int r;

	conn_init(conn, address, max_line);
	if (strlen(address) >= sizeof(conn->path))
		return conn_fail(err, ENAMETOOLONG, "%s: longer than %zu bytes",
				 address, sizeof(conn->path) - 1);
	r = tls_parse_address(address, host, port, err);
	if (r == 0)
		r = conn_deadline(conn, timeout_ms, &deadline, err);
	if (r == 0)
		r = tls_connect_tcp(conn, host, port, deadline, err);
	if (r == 0)
		r = tls_handshake(conn, host, files, deadline, err);
	if (r < 0)
		conn_close(conn);
	return r;
}

ssize_t
tls_write_some(struct conn *conn, const void *data, size_t length,
	       struct conn_error *err)
{
	ssize_t n;

	/*
	 * After GNUTLS_E_AGAIN GnuTLS wants the same bytes again: conn.c's
	 * callers retry with the unsent rest unchanged, at the same place.
	 */
	do {
		errno = 0;
		n = gnutls_record_send(conn->tls->session, data, length);
	} while (n == GNUTLS_E_INTERRUPTED);
	if (n >= 0)
		return n;
	if (n == GNUTLS_E_AGAIN)
		return 0;
	return tls_fail(conn, err, (int)n, "send");
}

ssize_t
tls_fill(struct conn *conn, struct conn_error *err)
{
	gnutls_session_t s = conn->tls->session;
	ssize_t n, total = 0;
	size_t room;
	char *space;
	int r;

	/*
	 * poll() sees the socket, not what GnuTLS decrypted and holds back
	 * when the buffer was short: take it all now, so a caller that waits
	 * for the socket never waits on bytes already received.
	 */
	do {
		r = conn_reserve(conn, &space, &room, err);
		if (r < 0)
			return r;
		do {
			errno = 0;
			n = gnutls_record_recv(s, space, room);
		} while (n == GNUTLS_E_INTERRUPTED);
		/* A front that drops TCP without close_notify ends the stream all the
		 * same. */
		if (n == GNUTLS_E_PREMATURE_TERMINATION)
			n = 0;
		if (n == GNUTLS_E_AGAIN)
			return total > 0 ? total : -EAGAIN;
		if (n < 0)
			return tls_fail(conn, err, (int)n, "receive");
		conn_commit(conn, (size_t)n);
		total += n;
	} while (n > 0 && gnutls_record_check_pending(s) > 0);
	return total;
}

void
tls_close(struct conn *conn)
{
	struct tls_session *tls = conn->tls;

	if (tls->session != NULL) {
		/* One try at close_notify: the answers are all in, nothing waits on it.
		 */
		if (conn->fd != -1)
			(void)gnutls_bye(tls->session, GNUTLS_SHUT_WR);
		gnutls_deinit(tls->session);
	}
	if (tls->cred != NULL)
		gnutls_certificate_free_credentials(tls->cred);
	free(tls);
	conn->tls = NULL;
}
