/*
 * The daemon's in-process defence: after start-up, a seccomp filter that
 * allows only the system calls kvmrund makes, each narrowed to the
 * arguments it makes them with; a violation kills the process.
 */
#ifndef KVMRUN_SANDBOX_H
#define KVMRUN_SANDBOX_H

#include <stdbool.h>

#include "kvmrun-run.h"

struct sandbox_config {
	/*
	 * The daemon still waits for /dev/kvm: opening a file read-write and
	 * close-on-exec, as the engine opens the device, stays allowed.  Any
	 * other open fails with EACCES.
	 */
	bool may_open_kvm;
	/* The directory the socket is removed from at exit (unlinkat), or -1. */
	int socket_dir_fd;
};

/* Installs the filter on every thread of the process. */
int sandbox_enter(const struct sandbox_config *cfg, struct kvmrun_error *err);

/* The calls --seccomp-selftest can make, NULL-terminated. */
extern const char *const sandbox_selftest_calls[];

/*
 * Enters the sandbox, then makes the forbidden call CALL (one of
 * sandbox_selftest_calls).  A call the filter kills for does not return;
 * one it refuses with an errno returns 0 when it got that errno.  -1 with
 * ERR saying so when the call was let through, or CALL is unknown.
 */
int sandbox_selftest(const char *call, struct kvmrun_error *err);

#endif
