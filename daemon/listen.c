/*
 * The listening socket: taken from systemd's socket activation when it
 * passes one, else bound here with care not to steal a live server's socket
 * or remove anything that is not a stale socket.  Also the sd_notify calls.
 * The only user of libsystemd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "listen.h"
#include "log.h"

#define LISTEN_STATUS_MAX 512

static int
listen_errno(struct kvmrun_error *err, const char *what, const char *path)
{
	int rc = -errno;

	kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "%s %s: %s", what, path,
			 strerror(errno));
	return rc;
}

/* The path a socket is bound to, "@name" for an abstract one. */
static char *
listen_bound_path(int fd)
{
	struct sockaddr_un sun;
	socklen_t length = sizeof(sun);
	size_t path_length;

	memset(&sun, 0, sizeof(sun));
	if (getsockname(fd, (struct sockaddr *)&sun, &length) < 0 ||
	    length <= offsetof(struct sockaddr_un, sun_path))
		return strdup("(unnamed)");
	path_length = length - offsetof(struct sockaddr_un, sun_path);
	if (sun.sun_path[0] == '\0') {
		sun.sun_path[0] = '@';
		return strndup(sun.sun_path, path_length);
	}
	return strndup(sun.sun_path, strnlen(sun.sun_path, path_length));
}

static int
listen_activated(int count, struct listen_socket *lsock, struct kvmrun_error *err)
{
	int fd = SD_LISTEN_FDS_START;
	int flags, rc;

	if (count > 1) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				 "expected one socket from systemd, got %d", count);
		return -E2BIG;
	}
	rc = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
	if (rc < 0) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				 "cannot check the socket systemd passed: %s",
				 strerror(-rc));
		return rc;
	}
	if (rc == 0) {
		kvmrun_error_set(
			err, KVMRUN_ERR_INTERNAL,
			"the socket systemd passed is not a listening Unix stream "
			"socket (check ListenStream= in kvmrund.socket)");
		return -ENOTSOCK;
	}
	/* accept4 runs until EAGAIN, so the socket must not block. */
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return listen_errno(err, "fcntl on the socket systemd passed",
				    "(fd 3)");
	lsock->fd = fd;
	lsock->activated = true;
	lsock->path = listen_bound_path(fd);
	if (lsock->path == NULL) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "no memory");
		return -ENOMEM;
	}
	return 0;
}

static int
listen_make_parent(const char *path, struct kvmrun_error *err)
{
	char *dir, *slash;
	int rc = 0;

	dir = strdup(path);
	if (dir == NULL) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "no memory");
		return -ENOMEM;
	}
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) == 0)
			log_info("listen", "created %s", dir);
		else if (errno != EEXIST)
			rc = listen_errno(err, "cannot create the directory", dir);
	}
	free(dir);
	return rc;
}

/*
 * Makes way for binding PATH: nothing there is fine, a socket nobody
 * listens on is stale and removed; a live socket or any other file is
 * refused.
 */
static int
listen_clear_stale(const char *path, const struct sockaddr_un *sun,
		   struct kvmrun_error *err)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return listen_errno(err, "cannot stat", path);
	}
	if (!S_ISSOCK(st.st_mode)) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				 "%s exists and is not a socket; not touching it",
				 path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return listen_errno(err, "cannot make a socket to check", path);
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	/* EAGAIN: a full backlog, so someone listens. */
	if (rc == 0 || errno == EAGAIN) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				 "%s is already in use: another server listens on it",
				 path);
		rc = -EADDRINUSE;
	} else if (errno != ECONNREFUSED) {
		rc = listen_errno(err, "cannot check who listens on", path);
	} else if (unlink(path) < 0) {
		rc = listen_errno(err, "cannot remove the stale socket", path);
	} else {
		log_info("listen", "removed the stale socket %s", path);
		rc = 0;
	}
	close(fd);
	return rc;
}

/* Opens the directory of lsock->path, by which the socket is removed later. */
static int
listen_open_dir(struct listen_socket *lsock, struct kvmrun_error *err)
{
	char *slash = strrchr(lsock->path, '/');
	char *dir;

	if (slash == NULL) {
		dir = strdup(".");
		lsock->name = lsock->path;
	} else {
		dir = slash == lsock->path ? strdup("/")
					   : strndup(lsock->path, (size_t)(slash - lsock->path));
		lsock->name = slash + 1;
	}
	if (dir == NULL) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "no memory");
		return -ENOMEM;
	}
	lsock->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (lsock->dir_fd < 0) {
		int rc = listen_errno(err, "cannot open the directory", dir);

		free(dir);
		return rc;
	}
	free(dir);
	return 0;
}

static int
listen_bind(const char *path, mode_t mode, struct listen_socket *lsock,
	    struct kvmrun_error *err)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t saved_umask;
	int fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				 "socket path %s is too long (at most %zu bytes)", path,
				 sizeof(sun.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sun.sun_path, path);

	rc = listen_make_parent(path, err);
	if (rc < 0)
		return rc;
	rc = listen_clear_stale(path, &sun, err);
	if (rc < 0)
		return rc;
	lsock->path = strdup(path);
	if (lsock->path == NULL) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "no memory");
		return -ENOMEM;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = listen_errno(err, "cannot make the socket for", path);
		goto out_free_path;
	}
	/* Born owner-only, so nobody connects before the chmod below. */
	saved_umask = umask(0177);
	rc = bind(fd, (const struct sockaddr *)&sun, sizeof(sun));
	umask(saved_umask);
	if (rc < 0) {
		rc = listen_errno(err, "cannot bind", path);
		goto out_close;
	}
	if (chmod(path, mode) < 0) {
		rc = listen_errno(err, "cannot chmod", path);
		goto out_unlink;
	}
	if (stat(path, &st) < 0) {
		rc = listen_errno(err, "cannot stat", path);
		goto out_unlink;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		rc = listen_errno(err, "cannot listen on", path);
		goto out_unlink;
	}
	rc = listen_open_dir(lsock, err);
	if (rc < 0)
		goto out_unlink;
	lsock->fd = fd;
	lsock->created = true;
	lsock->dev = st.st_dev;
	lsock->ino = st.st_ino;
	return 0;

out_unlink:
	unlink(path);
out_close:
	close(fd);
out_free_path:
	free(lsock->path);
	lsock->path = NULL;
	return rc;
}

int
listen_open(const char *path, mode_t mode, struct listen_socket *lsock,
	    struct kvmrun_error *err)
{
	int count;

	memset(lsock, 0, sizeof(*lsock));
	lsock->fd = -1;
	lsock->dir_fd = -1;
	count = sd_listen_fds(1);
	if (count < 0) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				 "cannot read the sockets systemd passed: %s",
				 strerror(-count));
		return count;
	}
	if (count > 0)
		return listen_activated(count, lsock, err);
	return listen_bind(path, mode, lsock, err);
}

void
listen_close(struct listen_socket *lsock)
{
	struct stat st;

	if (lsock->fd >= 0 && close(lsock->fd) < 0)
		log_warn("listen", "close %s", lsock->path);
	/* Someone may have replaced it meanwhile; only remove our own. */
	if (lsock->created &&
	    fstatat(lsock->dir_fd, lsock->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_dev == lsock->dev && st.st_ino == lsock->ino &&
	    unlinkat(lsock->dir_fd, lsock->name, 0) < 0)
		log_warn("listen", "cannot remove %s", lsock->path);
	if (lsock->dir_fd >= 0)
		close(lsock->dir_fd);
	free(lsock->path);
	memset(lsock, 0, sizeof(*lsock));
	lsock->fd = -1;
	lsock->dir_fd = -1;
}

/* Called from the event loop's thread only. */
static void
listen_notify(const char *state)
{
	/* The watchdog notifies often: say once that systemd cannot be told. */
	static bool warned;
	int rc = sd_notify(0, state);

	if (rc < 0 && !warned) {
		log_warnx("listen", "sd_notify %s: %s (further failures not logged)",
			  state, strerror(-rc));
		warned = true;
	}
}

void
listen_notify_ready(void)
{
	listen_notify("READY=1");
}

void
listen_notify_stopping(void)
{
	listen_notify("STOPPING=1");
}

void
listen_notify_watchdog(void)
{
	listen_notify("WATCHDOG=1");
}

void
listen_notify_status(const char *status)
{
	char state[LISTEN_STATUS_MAX];

	snprintf(state, sizeof(state), "STATUS=%s", status);
	listen_notify(state);
}

uint64_t
listen_watchdog_usec(void)
{
	uint64_t usec = 0;
	int rc = sd_watchdog_enabled(0, &usec);

	if (rc < 0) {
		log_warnx("listen", "ignoring a bad WATCHDOG_USEC: %s", strerror(-rc));
		return 0;
	}
	return rc > 0 ? usec : 0;
}
