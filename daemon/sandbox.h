/*
 * The daemon's in-process defence: after start-up, a seccomp filter that
 * allows only the system calls kvmrund makes and, for ioctl, only the KVM
 * requests the engine issues.  A violation kills the process.
 */
#ifndef KVMRUN_SANDBOX_H
#define KVMRUN_SANDBOX_H

#include <stdbool.h>

#include "kvmrun-run.h"

/*
 * Installs the filter on every thread of the process.  With MAY_OPEN_KVM
 * (a daemon still waiting for KVM), opening a file read-write and
 * close-on-exec, as the engine opens /dev/kvm, stays allowed; any other open
 * fails with EACCES.
 */
int sandbox_enter(bool may_open_kvm, struct kvmrun_error *err);

/*
 * Enters the sandbox, then makes a call it forbids (socket(AF_INET)); the
 * process should die of SIGSYS.  Returns only if it did not.
 */
int sandbox_selftest(struct kvmrun_error *err);

#endif
