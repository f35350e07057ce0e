/*
 * The line connection of conn.h over TLS on TCP, for an address
 * "tls://HOST:PORT": a front (HAProxy) that terminates mutual TLS in front
 * of kvmrund's Unix socket.  The server's certificate and its name (HOST)
 * are checked; the client shows its own certificate when given one.  The
 * protocol on top is the same line protocol.
 */
#ifndef KVMRUN_TLS_H
#define KVMRUN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "conn.h"

#define TLS_ADDRESS_PREFIX "tls://"

/* PEM files; NULL: the system's trusted CAs, and no client certificate. */
struct tls_files {
	const char *ca;	  /* the CAs that may sign the server's certificate */
	const char *cert; /* the client's certificate (chain) */
	const char *key;  /* its private key */
};

/* Whether ADDRESS is a tls:// address rather than a socket path. */
bool tls_is_address(const char *address);

/*
 * Connects to ADDRESS (tls://HOST:PORT, HOST a name, an IPv4 address or
 * [an IPv6 address]) and completes the TLS handshake, all within TIMEOUT_MS.
 * Then the calls of conn.h work on CONN as on a Unix socket.
 */
int tls_open(struct conn *conn, const char *address, const struct tls_files *files,
	     int timeout_ms, size_t max_line, struct conn_error *err);

/* conn.c's send, receive and close when CONN->tls is set. */
ssize_t tls_write_some(struct conn *conn, const void *data, size_t length,
		       struct conn_error *err);
ssize_t tls_fill(struct conn *conn, struct conn_error *err);
void tls_close(struct conn *conn);

#endif
