/*
 * The listening socket and the talk with systemd: a socket passed by socket
 * activation or one bound here, and the sd_notify messages.  The only user
 * of libsystemd.
 */
#ifndef KVMRUN_LISTEN_H
#define KVMRUN_LISTEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvmrun-run.h"

struct listen_socket {
	int fd;		/* listening, non-blocking, close-on-exec */
	char *path;	/* where it is bound */
	bool activated; /* passed by systemd */
	bool created;	/* bound here: unlinked again on close */
	dev_t dev;	/* the socket file we made */
	ino_t ino;
	/*
	 * The directory it was bound in (O_PATH) and its name there: it is
	 * removed through them, so the sandbox can allow unlinkat() on that
	 * directory alone.  -1 and NULL for a passed socket.
	 */
	int dir_fd;
	const char *name;
};

/*
 * Takes the socket systemd passed, or when there is none binds PATH with
 * MODE.  Refuses a passed socket that is not one listening Unix stream
 * socket, a PATH where a server already listens and a PATH that is not a
 * socket.  -errno and ERR on failure.
 */
int listen_open(const char *path, mode_t mode, struct listen_socket *lsock,
		struct kvmrun_error *err);
/* Closes the socket and removes the file if it was made here and is still ours. */
void listen_close(struct listen_socket *lsock);

void listen_notify_ready(void);
void listen_notify_stopping(void);
void listen_notify_status(const char *status);
void listen_notify_watchdog(void);
/* The watchdog interval systemd asked for, or 0 when it asked for none. */
uint64_t listen_watchdog_usec(void);

#endif
