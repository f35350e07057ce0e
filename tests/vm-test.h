/*
 * What the engine's tests share: loading a test guest the build assembled,
 * opening the host or skipping (test-vm.c, test-state.c, test-step.c), a
 * check's refusal as a case (test-spec.c, test-xstate.c) and this CPU's own
 * FXSAVE read as the engine reads a vCPU's (test-state.c, test-xstate.c).
 */
#ifndef KVMRUN_VM_TEST_H
#define KVMRUN_VM_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "vm-x86.h"
#include "vm.h"

/* $GUESTS, where make put the guests; tests/guests from the build directory. */
static inline const char *
vm_test_guest_dir(void)
{
	const char *dir = getenv("GUESTS");

	return dir != NULL ? dir : "tests/guests";
}

/* Loads DIR/NAME.bin as SPEC's image; bails out when it cannot. */
static inline void
vm_test_load_guest(const char *dir, const char *name, struct kvmrun_spec *spec)
{
	char path[4096];
	FILE *f;
	long size;

	snprintf(path, sizeof(path), "%s/%s.bin", dir, name);
	f = fopen(path, "rb");
	if (f == NULL || fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) <= 0 ||
	    fseek(f, 0, SEEK_SET) < 0) {
		printf("Bail out! guest %s: %s\n", path, strerror(errno));
		exit(99);
	}
	spec->image.data = malloc((size_t)size);
	spec->image.length = (size_t)size;
	if (spec->image.data == NULL || fread(spec->image.data, 1, (size_t)size, f) != (size_t)size) {
		printf("Bail out! guest %s: short read\n", path);
		exit(99);
	}
	fclose(f);
}

static inline void
vm_test_set_reg(struct kvmrun_spec *spec, enum kvmrun_reg reg, uint64_t value)
{
	spec->regs[reg] = value;
	spec->regs_set |= 1u << reg;
}

/*
 * Skips the whole test only where /dev/kvm is missing or cannot be opened;
 * a device that opens but that the engine cannot use is a failure.
 */
static inline struct kvmrun_host *
vm_test_open_host_or_skip(void)
{
	struct kvmrun_host *host;
	struct kvmrun_error err;
	int fd = open(KVMRUN_DEFAULT_KVM_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0 && (errno == ENOENT || errno == ENODEV || errno == ENXIO ||
		       errno == EACCES || errno == EPERM))
		tap_skip_all("needs KVM, %s: %s", KVMRUN_DEFAULT_KVM_PATH, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (vm_host_open(KVMRUN_DEFAULT_KVM_PATH, &host, &err) < 0) {
		printf("Bail out! the engine cannot use this host's KVM: %s: %s\n",
		       kvmrun_errcode_names[err.code], err.message);
		exit(99);
	}
	return host;
}

/*
 * One case for an engine check that returned RC and ERR: with CODE
 * KVMRUN_OK, that it accepted; else that it refused as CODE with WORDS in
 * its message.  WHAT names the case.
 */
static inline void
vm_test_expect(int rc, const struct kvmrun_error *err, enum kvmrun_errcode code,
	       const char *words, const char *what)
{
	if (code == KVMRUN_OK) {
		if (!tap_ok(rc == 0, "accepted: %s", what))
			tap_diag("refused: %s", err->message);
		return;
	}
	if (!tap_ok(rc < 0 && err->code == code && strstr(err->message, words) != NULL,
		    "refused as %s: %s", kvmrun_errcode_names[code], what))
		tap_diag("got %s: %s", rc < 0 ? kvmrun_errcode_names[err->code] : "accepted",
			 rc < 0 ? err->message : "");
}

/*
 * AREA (SIZE bytes, zeroed before FXSAVE64 filled it here, natively) read
 * into X the way the engine reads a vCPU's XSAVE buffer.  FXSAVE writes no
 * XSAVE header, so AREA is given one saying x87 and SSE are there.
 */
static inline void
vm_test_fxsave_unpack(uint8_t *area, size_t size, struct kvmrun_xstate *x)
{
	uint64_t bv = VM_X86_XFEATURE_X87 | VM_X86_XFEATURE_SSE;
	struct vm_x86_xsave_layout legacy_only;

	memset(&legacy_only, 0, sizeof(legacy_only));
	memcpy(area + VM_X86_XSAVE_XSTATE_BV, &bv, sizeof(bv));
	vm_x86_xsave_unpack(area, size, &legacy_only, bv, x);
}

#endif
