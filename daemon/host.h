/*
 * The daemon's hold on KVM.  /dev/kvm is opened and probed at start when it
 * can be; while it cannot, kvmrund still serves and keeps the reason, which
 * ping reports and runs are answered with (unavailable).  Asked for the host
 * while it has none, it probes again at most once a second, so a machine that
 * gains KVM after boot serves without a restart.  Event loop thread only.
 */
#ifndef KVMRUN_HOST_H
#define KVMRUN_HOST_H

#include "vm.h"

struct host_watch;

/*
 * Probes PATH once now, and later, with OPTIONS (kept, not copied), and logs
 * the outcome; a missing or unusable device is no failure.  -errno with ERR
 * when the daemon cannot go on (no memory, no signal handler).
 */
int host_watch_create(const char *path, const struct vm_host_options *options,
		      struct host_watch **hwp, struct kvmrun_error *err);
void host_watch_destroy(struct host_watch *hw);

/*
 * The opened host, or NULL while KVM is unusable, after probing again when
 * the last probe is older than HOST_REPROBE_MS.  Once opened, the host stays:
 * its descriptor keeps working whatever happens to the device node later.
 */
struct kvmrun_host *host_watch_get(struct host_watch *hw);

/* The host as the last probe left it, without probing; NULL without KVM. */
struct kvmrun_host *host_watch_current(const struct host_watch *hw);

/* Why there is no host ("/dev/kvm: No such file or directory"). */
const char *host_watch_reason(const struct host_watch *hw);

#define HOST_REPROBE_MS 1000

#endif
