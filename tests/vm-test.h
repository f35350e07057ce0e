/*
 * What the engine's KVM tests (test-vm.c, test-state.c) share: loading a
 * test guest the build assembled, and opening the host or skipping.
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

#endif
