/*
 * Opens the KVM host for the daemon, or remembers why it cannot, and tries
 * again on demand; every change is logged with what a person can do.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"
#include "log.h"

struct host_watch {
	const char *path;
	const struct vm_host_options *options;
	struct kvmrun_host *host;
	int last_errno; /* of the failed probe, so a change is logged once */
	struct kvmrun_error reason;
	uint64_t probed_ms;
};

static uint64_t
host_now_ms(void)
{
	struct timespec now;

	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		fatal("host", "clock_gettime(CLOCK_MONOTONIC)");
	return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

/* What a person can do about a probe that failed with ERRNUM. */
static const char *
host_remedy(int errnum)
{
	switch (errnum) {
	case ENOENT:
	case ENODEV:
	case ENXIO:
		return "load kvm_intel or kvm_amd (modprobe), enable virtualization in "
		       "the firmware, or nested virtualization where this machine is "
		       "itself a VM; a container needs the device passed in";
	case EACCES:
	case EPERM:
		return "give kvmrund's user read-write access to the device (the kvm "
		       "group), and under systemd a DeviceAllow= for it";
	default:
		return "check that it is KVM's device and that the kernel's KVM works "
		       "(dmesg)";
	}
}

static void
host_probe(struct host_watch *hw)
{
	struct kvmrun_error err;
	int rc;

	hw->probed_ms = host_now_ms();
	rc = vm_host_open_with(hw->path, hw->options, &hw->host, &err);
	if (rc == 0) {
		log_info("host", "KVM available: %s, API version %d", hw->path,
			 vm_host_api_version(hw->host));
		if (vm_host_paging(hw->host) == KVMRUN_PAGING_COMPAT)
			log_info("host", "paged mode runs in compatibility mode (long-mode "
				 "page tables and IDT, 32-bit code segments)");
		for (int mode = 0; mode < KVMRUN_MODE_COUNT; mode++) {
			const char *why = vm_host_mode_unsupported(hw->host, mode);

			if (why != NULL)
				log_info("host", "%s mode is refused as unsupported: %s",
					 kvmrun_mode_names[mode], why);
		}
		return;
	}
	hw->host = NULL;
	/* Out of descriptors or memory says nothing of KVM: keep the reason. */
	if ((rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM) &&
	    hw->reason.message[0] != '\0') {
		log_debug("host", "probing KVM again: %s", err.message);
		return;
	}
	/* A probe that fails the same way again says nothing new. */
	if (-rc == hw->last_errno && strcmp(err.message, hw->reason.message) == 0)
		return;
	hw->last_errno = -rc;
	hw->reason = err;
	log_warnx("host",
		  "KVM unavailable: %s; runs are answered 'unavailable' until it "
		  "works (probed again at most every %d ms). To fix: %s",
		  err.message, HOST_REPROBE_MS, host_remedy(-rc));
}

int
host_watch_create(const char *path, const struct vm_host_options *options,
		  struct host_watch **hwp, struct kvmrun_error *err)
{
	struct host_watch *hw;
	int rc;

	/* A stray kick signal must not end a daemon that has no host yet. */
	if ((rc = vm_install_kick(err)) < 0)
		return rc;
	hw = calloc(1, sizeof(*hw));
	if (hw == NULL) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "no memory to start");
		return -ENOMEM;
	}
	hw->path = path;
	hw->options = options;
	host_probe(hw);
	*hwp = hw;
	return 0;
}

void
host_watch_destroy(struct host_watch *hw)
{
	if (hw == NULL)
		return;
	vm_host_close(hw->host);
	free(hw);
}

struct kvmrun_host *
host_watch_get(struct host_watch *hw)
{
	if (hw->host == NULL && host_now_ms() - hw->probed_ms >= HOST_REPROBE_MS)
		host_probe(hw);
	return hw->host;
}

struct kvmrun_host *
host_watch_current(const struct host_watch *hw)
{
	return hw->host;
}

const char *
host_watch_reason(const struct host_watch *hw)
{
	return hw->reason.message;
}
