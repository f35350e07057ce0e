/*
 * The KVM engine: /dev/kvm opened and probed once, then for every run a
 * fresh VM, zeroed memory and one vCPU, driven with KVM_RUN until the guest
 * halts, exits, faults, times out or is cancelled, and destroyed.
 *
 * Stopping a vCPU: a signal (KVMRUN_KICK_SIGNAL) to the thread in KVM_RUN,
 * whose handler sets that vCPU's immediate_exit.  A signal that lands just
 * before KVM_RUN then still makes KVM_RUN return at once, and the timeout
 * timer repeats every VM_KICK_REPEAT_NS until the run loop has seen it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "vm-x86.h"
#include "vm-observe.h"
#include "vm.h"

#define KVM_API_VERSION_REQUIRED 12
#define VM_KICK_REPEAT_NS 10000000L
#define VM_CPUID_MAX_ENTRIES 256
/* Where Intel's real-mode support without unrestricted guest keeps its TSS:
 * three pages just below 4 GiB, far above any guest memory the engine maps. */
#define VM_TSS_ADDR 0xfffbd000ul
#define VM_UNSUPPORTED_MAX KVMRUN_ERROR_MESSAGE_MAX

/* glibc before 2.41 does not name the thread-id member of struct sigevent. */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

struct kvmrun_host {
	int kvm_fd;
	int api_version;
	size_t run_size;
	bool has_tss_addr;
	bool has_emulation_failure_exit;
	struct kvm_cpuid2 *cpuid;
	struct vm_x86_host x86;
	bool mode_unsupported[KVMRUN_MODE_COUNT];
	char mode_reason[KVMRUN_MODE_COUNT][VM_UNSUPPORTED_MAX];
	struct vm_observe_host observe;
};

struct kvmrun_vm {
	struct kvmrun_host *host;
	int vm_fd;
	int vcpu_fd;
	uint8_t *mem;
	uint64_t memory_size;
	struct kvm_run *run;
	pthread_t thread;
	timer_t timer;
	bool has_timer;
	bool ran;
	atomic_bool cancelled;
	struct vm_observe observe;
	struct vm_run_times times;
};

/* The run area of the vCPU this thread is running, for the kick handler. */
static __thread struct kvm_run *volatile vm_kick_target;

static void
vm_kick_handler(int signo)
{
	struct kvm_run *run = vm_kick_target;

	(void)signo;
	if (run != NULL)
		run->immediate_exit = 1;
}

static int
vm_kick_signal(void)
{
	return SIGRTMIN;
}

static int
errno_error(struct kvmrun_error *err, enum kvmrun_errcode code, const char *what)
{
	int saved = errno;

	kvmrun_error_set(err, code, "%s: %s", what, strerror(saved));
	return -saved;
}

static int
host_check_extensions(struct kvmrun_host *host, struct kvmrun_error *err)
{
	static const struct {
		long cap;
		const char *name;
	} required[] = {
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
		{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
		{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	};

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		int rc = ioctl(host->kvm_fd, KVM_CHECK_EXTENSION, required[i].cap);

		if (rc < 0)
			return errno_error(err, KVMRUN_ERR_INTERNAL, "KVM_CHECK_EXTENSION");
		if (rc == 0) {
			kvmrun_error_set(err, KVMRUN_ERR_UNSUPPORTED,
				"this host's KVM lacks %s, which kvmrun needs",
				required[i].name);
			return -EOPNOTSUPP;
		}
	}
	host->has_tss_addr = ioctl(host->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_TSS_ADDR) > 0;
	host->has_emulation_failure_exit =
		ioctl(host->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_ON_EMULATION_FAILURE) > 0;
	return 0;
}

static int
host_read_cpuid(struct kvmrun_host *host, struct kvmrun_error *err)
{
	struct kvm_cpuid2 *cpuid;
	bool has_xcrs;

	cpuid = calloc(1, sizeof(*cpuid) + VM_CPUID_MAX_ENTRIES * sizeof(cpuid->entries[0]));
	if (cpuid == NULL)
		return errno_error(err, KVMRUN_ERR_INTERNAL, "CPUID table");
	cpuid->nent = VM_CPUID_MAX_ENTRIES;
	if (ioctl(host->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		int rc = errno_error(err, KVMRUN_ERR_INTERNAL, "KVM_GET_SUPPORTED_CPUID");

		free(cpuid);
		return rc;
	}
	host->cpuid = cpuid;
	has_xcrs = ioctl(host->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
	vm_x86_host_init(&host->x86, cpuid, has_xcrs);
	if (vm_x86_state_host_init(&host->x86, host->kvm_fd, err) < 0) {
		free(cpuid);
		host->cpuid = NULL;
		return -EIO;
	}
	return 0;
}

int
vm_install_kick(struct kvmrun_error *err)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = vm_kick_handler;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: KVM_RUN must come back with EINTR. */
	if (sigaction(vm_kick_signal(), &sa, NULL) < 0)
		return errno_error(err, KVMRUN_ERR_INTERNAL, "sigaction(SIGRTMIN)");
	return 0;
}

/* Runs a lone HLT in MODE: 0 when it halted, else -errno with ERR. */
static int
probe_hlt(struct kvmrun_host *host, enum kvmrun_mode mode, struct kvmrun_error *err)
{
	static uint8_t hlt = 0xf4;
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	enum kvmrun_exit_reason reason;
	int rc;

	kvmrun_spec_init(&spec);
	spec.mode = mode;
	spec.image.data = &hlt;
	spec.image.length = 1;
	kvmrun_result_init(&result);
	rc = vm_run_fresh(host, &spec, &result, err);
	reason = result.exit.reason;
	kvmrun_result_free(&result);
	if (rc == 0 && reason != KVMRUN_EXIT_HLT) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
			"a lone HLT ended with %s instead of halting; the engine does not "
			"work on this host", kvmrun_exit_reason_names[reason]);
		return -EIO;
	}
	return rc;
}

/*
 * Runs a lone HLT in each mode, paged mode paged as CHOICE asks.  Legacy
 * paging on a host whose KVM drops CR0.PG (kvm_pvm) is the one thing a host
 * may lack, and check_sregs_kept sees it as the registers are set, before
 * any guest code runs: under auto, paged mode then runs in compatibility
 * mode (long mode's paging).  A paged mode that still does not halt is
 * refused up front with what its probe saw, so a host whose compatibility
 * mode fails keeps serving the other three modes.  Any other mode that
 * does not halt is the engine failing on this host, and opening the host
 * fails with what the probe saw.
 */
static int
host_probe_modes(struct kvmrun_host *host, enum vm_paged_choice choice,
		 struct kvmrun_error *err)
{
	host->x86.paging = KVMRUN_PAGING_LEGACY;
	if (choice == VM_PAGED_COMPAT)
		host->x86.paging = KVMRUN_PAGING_COMPAT;
	for (int mode = 0; mode < KVMRUN_MODE_COUNT; mode++) {
		struct kvmrun_error probe_err;
		int rc = probe_hlt(host, mode, &probe_err);
		bool compat;

		if (rc < 0 && mode == KVMRUN_MODE_PAGED && choice == VM_PAGED_AUTO &&
		    host->x86.paging == KVMRUN_PAGING_LEGACY &&
		    probe_err.code == KVMRUN_ERR_UNSUPPORTED) {
			host->x86.paging = KVMRUN_PAGING_COMPAT;
			rc = probe_hlt(host, mode, &probe_err);
		}
		if (rc == 0)
			continue;
		compat = host->x86.paging == KVMRUN_PAGING_COMPAT;
		if (mode == KVMRUN_MODE_PAGED) {
			host->mode_unsupported[mode] = true;
			snprintf(host->mode_reason[mode], VM_UNSUPPORTED_MAX, "%s%.480s",
				 compat ? "in compatibility mode: " : "", probe_err.message);
			continue;
		}
		kvmrun_error_set(err, probe_err.code, "probing %s mode: %s",
				 kvmrun_mode_names[mode], probe_err.message);
		return rc;
	}
	return 0;
}

int
vm_host_open_with(const char *path, const struct vm_host_options *options,
		  struct kvmrun_host **hostp, struct kvmrun_error *err)
{
	enum vm_paged_choice paged = options != NULL ? options->paged : VM_PAGED_AUTO;
	struct kvmrun_host *host;
	int rc, size;

	host = calloc(1, sizeof(*host));
	if (host == NULL)
		return errno_error(err, KVMRUN_ERR_INTERNAL, "kvm host");
	host->kvm_fd = open(path, O_RDWR | O_CLOEXEC);
	if (host->kvm_fd < 0) {
		rc = errno_error(err, KVMRUN_ERR_UNSUPPORTED, path);
		goto out_free;
	}
	host->api_version = ioctl(host->kvm_fd, KVM_GET_API_VERSION, 0);
	if (host->api_version < 0) {
		/* A file, /dev/null or another device: say so, not just ENOTTY. */
		rc = -errno;
		kvmrun_error_set(err, KVMRUN_ERR_UNSUPPORTED,
				 "%s: not a KVM device (KVM_GET_API_VERSION: %s)", path,
				 strerror(errno));
		goto out_close;
	}
	if (host->api_version != KVM_API_VERSION_REQUIRED) {
		kvmrun_error_set(err, KVMRUN_ERR_UNSUPPORTED,
				 "%s: KVM API version %d, kvmrun needs %d", path,
				 host->api_version, KVM_API_VERSION_REQUIRED);
		rc = -EOPNOTSUPP;
		goto out_close;
	}
	if ((rc = host_check_extensions(host, err)) < 0)
		goto out_close;
	size = ioctl(host->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run)) {
		rc = errno_error(err, KVMRUN_ERR_INTERNAL, "KVM_GET_VCPU_MMAP_SIZE");
		goto out_close;
	}
	host->run_size = (size_t)size;
	if ((rc = host_read_cpuid(host, err)) < 0)
		goto out_close;
	if ((rc = vm_install_kick(err)) < 0)
		goto out_cpuid;
	if ((rc = host_probe_modes(host, paged, err)) < 0)
		goto out_cpuid;
	vm_observe_probe(host, host->kvm_fd, &host->observe);
	*hostp = host;
	return 0;

out_cpuid:
	free(host->cpuid);
out_close:
	close(host->kvm_fd);
out_free:
	free(host);
	return rc;
}

int
vm_host_open(const char *path, struct kvmrun_host **hostp, struct kvmrun_error *err)
{
	return vm_host_open_with(path, NULL, hostp, err);
}

void
vm_host_close(struct kvmrun_host *host)
{
	if (host == NULL)
		return;
	close(host->kvm_fd);
	free(host->cpuid);
	free(host);
}

int
vm_host_api_version(const struct kvmrun_host *host)
{
	return host->api_version;
}

const char *
vm_host_mode_unsupported(const struct kvmrun_host *host, enum kvmrun_mode mode)
{
	return host->mode_unsupported[mode] ? host->mode_reason[mode] : NULL;
}

enum kvmrun_paging
vm_host_paging(const struct kvmrun_host *host)
{
	if (host->mode_unsupported[KVMRUN_MODE_PAGED])
		return KVMRUN_PAGING_NONE;
	return host->x86.paging;
}

/* Checks that [address, address+length) lies in [0, top) of guest memory. */
static int
check_range(const char *what, uint64_t address, uint64_t length, uint64_t top,
	    uint64_t memory_size, const struct kvmrun_spec *spec, struct kvmrun_error *err)
{
	uint64_t end = address + length;

	if (length == 0)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST, "%s: is empty", what);
	if (end < address || end > memory_size)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"%s: 0x%llx..0x%llx lies outside guest memory 0x0..0x%llx "
			"(memory_size %llu)", what, (unsigned long long)address,
			(unsigned long long)end, (unsigned long long)memory_size,
			(unsigned long long)memory_size);
	if (end > top)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"%s: 0x%llx..0x%llx overlaps the engine's reserved area "
			"0x%llx..0x%llx (GDT, IDT, TSS and page tables of %s mode; "
			"see the guest memory layout)", what, (unsigned long long)address,
			(unsigned long long)end, (unsigned long long)top,
			(unsigned long long)memory_size, kvmrun_mode_names[spec->mode]);
	return 0;
}

int
vm_check_spec(const struct kvmrun_host *host, const struct kvmrun_spec *spec,
	      struct kvmrun_error *err)
{
	uint64_t memory_size = spec->memory_size;
	uint64_t minimum = spec->mode == KVMRUN_MODE_REAL ? KVMRUN_PAGE_SIZE
							  : VM_X86_MIN_MEMORY_PROTECTED;
	uint64_t top;
	char what[64];

	if (spec->mode >= KVMRUN_MODE_COUNT)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST, "mode: unknown mode %d",
					(int)spec->mode);
	if (host != NULL && host->mode_unsupported[spec->mode])
		return kvmrun_error_set(err, KVMRUN_ERR_UNSUPPORTED, "%s",
					host->mode_reason[spec->mode]);
	if (host != NULL && vm_observe_step_unsupported(&host->observe, spec) != NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_UNSUPPORTED, "max_instructions: %s",
					vm_observe_step_unsupported(&host->observe, spec));
	if (spec->trace && spec->max_instructions == 0)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"trace: needs max_instructions: a run is traced by stepping it");
	if (spec->max_instructions != 0 && (spec->regs_set & 1u << KVMRUN_REG_RFLAGS) &&
	    (spec->regs[KVMRUN_REG_RFLAGS] & VM_OBSERVE_RFLAGS_TF))
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"regs.rflags: TF (bit 8) cannot be set with max_instructions: "
			"single-stepping uses it");
	if (spec->ring != 0 && spec->ring != 3)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
					"ring: %u is not 0 or 3", spec->ring);
	if (spec->ring == 3 && spec->mode == KVMRUN_MODE_REAL)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"ring: real mode has no ring 3; use protected, paged or long mode");
	if (memory_size % KVMRUN_PAGE_SIZE != 0)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"memory_size: %llu is not a multiple of 4096",
			(unsigned long long)memory_size);
	if (memory_size < minimum)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"memory_size: %llu is below the %llu bytes %s mode needs",
			(unsigned long long)memory_size, (unsigned long long)minimum,
			kvmrun_mode_names[spec->mode]);
	if (memory_size > VM_X86_MAX_MEMORY)
		return kvmrun_error_set(err, KVMRUN_ERR_TOO_LARGE,
			"memory_size: %llu is over the engine's limit of %llu (the "
			"identity map covers 4 GiB)", (unsigned long long)memory_size,
			VM_X86_MAX_MEMORY);
	if (spec->timeout_ms == 0)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
					"timeout_ms: must be at least 1");
	top = vm_x86_reserved_base(spec->mode, memory_size);
	if (check_range("image", spec->image.address, spec->image.length, top, memory_size,
			spec, err) < 0)
		return -EINVAL;
	for (size_t i = 0; i < spec->region_count; i++) {
		snprintf(what, sizeof(what), "regions[%zu]", i);
		if (check_range(what, spec->regions[i].address, spec->regions[i].length, top,
				memory_size, spec, err) < 0)
			return -EINVAL;
	}
	for (size_t i = 0; i < spec->dump_count; i++) {
		snprintf(what, sizeof(what), "dump[%zu]", i);
		if (check_range(what, spec->dumps[i].address, spec->dumps[i].length,
				memory_size, memory_size, spec, err) < 0)
			return -EINVAL;
	}
	for (size_t i = 0; i < spec->log_port_count; i++)
		if (spec->log_ports[i] == KVMRUN_CONSOLE_PORT)
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"log_ports[%zu]: 0x%x is the console port", i,
				KVMRUN_CONSOLE_PORT);
	if (vm_x86_check_regs(spec, err) < 0)
		return -EINVAL;
	if (vm_x86_state_check(host != NULL ? &host->x86 : NULL, spec, err) < 0)
		return err->code == KVMRUN_ERR_UNSUPPORTED ? -EOPNOTSUPP : -EINVAL;
	return 0;
}

static int
vm_create_timer(struct kvmrun_vm *vm, struct kvmrun_error *err)
{
	struct sigevent sev;
	sigset_t kick;

	/* The worker may block signals; the kick must still reach it. */
	sigemptyset(&kick);
	sigaddset(&kick, vm_kick_signal());
	if ((errno = pthread_sigmask(SIG_UNBLOCK, &kick, NULL)) != 0)
		return errno_error(err, KVMRUN_ERR_INTERNAL, "pthread_sigmask");
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = vm_kick_signal();
	sev.sigev_notify_thread_id = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &vm->timer) < 0)
		return errno_error(err, KVMRUN_ERR_INTERNAL, "timer_create");
	vm->has_timer = true;
	return 0;
}

int
vm_create(struct kvmrun_host *host, uint64_t memory_size, struct kvmrun_vm **vmp,
	  struct kvmrun_error *err)
{
	struct kvm_userspace_memory_region region;
	struct kvmrun_vm *vm;
	int rc;

	vm = calloc(1, sizeof(*vm));
	if (vm == NULL)
		return errno_error(err, KVMRUN_ERR_INTERNAL, "vm");
	vm->host = host;
	vm->memory_size = memory_size;
	vm->thread = pthread_self();
	vm->vcpu_fd = -1;
	atomic_init(&vm->cancelled, false);

	vm->vm_fd = ioctl(host->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		rc = errno_error(err, KVMRUN_ERR_INTERNAL, "KVM_CREATE_VM");
		goto out_free;
	}
	if (host->has_tss_addr && ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, VM_TSS_ADDR) < 0) {
		rc = errno_error(err, KVMRUN_ERR_INTERNAL, "KVM_SET_TSS_ADDR");
		goto out_close_vm;
	}
	if (host->has_emulation_failure_exit) {
		struct kvm_enable_cap cap = {
			.cap = KVM_CAP_EXIT_ON_EMULATION_FAILURE,
			.args = { 1 },
		};

		if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
			rc = errno_error(err, KVMRUN_ERR_INTERNAL,
					 "KVM_ENABLE_CAP(EXIT_ON_EMULATION_FAILURE)");
			goto out_close_vm;
		}
	}
	/* NORESERVE: untouched guest pages cost nothing. */
	vm->mem = mmap(NULL, memory_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->mem == MAP_FAILED) {
		rc = errno_error(err, errno == ENOMEM ? KVMRUN_ERR_BUSY : KVMRUN_ERR_INTERNAL,
				 "guest memory mmap");
		goto out_close_vm;
	}
	region = (struct kvm_userspace_memory_region){
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = memory_size,
		.userspace_addr = (uintptr_t)vm->mem,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		rc = errno_error(err, KVMRUN_ERR_INTERNAL, "KVM_SET_USER_MEMORY_REGION");
		goto out_unmap;
	}
	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0) {
		rc = errno_error(err, KVMRUN_ERR_INTERNAL, "KVM_CREATE_VCPU");
		goto out_unmap;
	}
	vm->run = mmap(NULL, host->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED) {
		rc = errno_error(err, KVMRUN_ERR_INTERNAL, "vCPU run area mmap");
		goto out_close_vcpu;
	}
	if ((rc = vm_x86_vcpu_init(vm->vcpu_fd, &host->x86, err)) < 0)
		goto out_unmap_run;
	if ((rc = vm_create_timer(vm, err)) < 0)
		goto out_unmap_run;
	*vmp = vm;
	return 0;

out_unmap_run:
	munmap(vm->run, host->run_size);
out_close_vcpu:
	close(vm->vcpu_fd);
out_unmap:
	munmap(vm->mem, memory_size);
out_close_vm:
	close(vm->vm_fd);
out_free:
	free(vm);
	return rc;
}

uint64_t
vm_memory_size(const struct kvmrun_vm *vm)
{
	return vm->memory_size;
}

void
vm_destroy(struct kvmrun_vm *vm)
{
	if (vm == NULL)
		return;
	if (vm->has_timer)
		timer_delete(vm->timer);
	munmap(vm->run, vm->host->run_size);
	close(vm->vcpu_fd);
	munmap(vm->mem, vm->memory_size);
	close(vm->vm_fd);
	free(vm);
}

void
vm_cancel(struct kvmrun_vm *vm)
{
	atomic_store(&vm->cancelled, true);
	/* The handler's immediate_exit covers a kick that lands outside KVM_RUN. */
	pthread_kill(vm->thread, vm_kick_signal());
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
arm_timer(struct kvmrun_vm *vm, uint32_t timeout_ms, struct kvmrun_error *err)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = timeout_ms / 1000,
			      .tv_nsec = (long)(timeout_ms % 1000) * 1000000L },
		.it_interval = { .tv_sec = 0, .tv_nsec = VM_KICK_REPEAT_NS },
	};

	if (timer_settime(vm->timer, 0, &its, NULL) < 0)
		return errno_error(err, KVMRUN_ERR_INTERNAL, "timer_settime");
	return 0;
}

static void
disarm_timer(struct kvmrun_vm *vm)
{
	struct itimerspec off;

	memset(&off, 0, sizeof(off));
	timer_settime(vm->timer, 0, &off, NULL);
}

static void
copy_blob(struct kvmrun_vm *vm, const struct kvmrun_blob *blob)
{
	memcpy(vm->mem + blob->address, blob->data, blob->length);
}

static bool
is_log_port(const struct kvmrun_spec *spec, uint16_t port)
{
	for (size_t i = 0; i < spec->log_port_count; i++)
		if (spec->log_ports[i] == port)
			return true;
	return false;
}

/* Appends to the console; false when the bound was reached. */
static bool
console_append(struct kvmrun_result *result, size_t console_max, const uint8_t *bytes,
	       size_t length, struct kvmrun_error *err, int *rc)
{
	size_t room = console_max - result->console_length;
	size_t take = length < room ? length : room;
	uint8_t *grown;

	if (take > 0) {
		grown = realloc(result->console, result->console_length + take);
		if (grown == NULL) {
			*rc = errno_error(err, KVMRUN_ERR_INTERNAL, "console buffer");
			return false;
		}
		memcpy(grown + result->console_length, bytes, take);
		result->console = grown;
		result->console_length += take;
	}
	if (take < length) {
		result->console_truncated = true;
		return false;
	}
	return true;
}

static bool
io_log_append(struct kvmrun_result *result, size_t io_log_max, uint16_t port, uint8_t size,
	      const uint8_t *data, uint32_t count, struct kvmrun_error *err, int *rc)
{
	for (uint32_t i = 0; i < count; i++) {
		struct kvmrun_io_record *grown;
		uint32_t value = 0;

		if (result->io_log_count >= io_log_max) {
			result->io_log_truncated = true;
			return false;
		}
		grown = realloc(result->io_log, (result->io_log_count + 1) * sizeof(*grown));
		if (grown == NULL) {
			*rc = errno_error(err, KVMRUN_ERR_INTERNAL, "io log buffer");
			return false;
		}
		memcpy(&value, data + (size_t)i * size, size);
		grown[result->io_log_count++] = (struct kvmrun_io_record){
			.port = port, .size = size, .value = value,
		};
		result->io_log = grown;
	}
	return true;
}

/* One port access of the guest; DATA holds size * count bytes, filled for IN. */
struct port_access {
	uint16_t port;
	bool is_in;
	uint8_t size;
	uint32_t count;
	uint8_t *data;
};

/*
 * Carries out a port access: the console and log ports are served and the
 * run goes on (true); any other port ends the run as an io exit (false), as
 * does a full console or io log.  *RC is set on a host-side failure.
 */
static bool
port_access(const struct kvmrun_spec *spec, const struct port_access *io,
	    struct kvmrun_result *result, struct kvmrun_error *err, int *rc)
{
	size_t bytes = (size_t)io->size * io->count;
	struct kvmrun_exit *exit = &result->exit;

	if (!io->is_in && io->port == KVMRUN_CONSOLE_PORT) {
		if (console_append(result, spec->console_max, io->data, bytes, err, rc))
			return true;
		exit->reason = KVMRUN_EXIT_OUTPUT_LIMIT;
		exit->u.output_limit.console = true;
		return false;
	}
	if (is_log_port(spec, io->port)) {
		if (io->is_in) {
			memset(io->data, 0xff, bytes);
			return true;
		}
		if (io_log_append(result, spec->io_log_max, io->port, io->size, io->data,
				  io->count, err, rc))
			return true;
		exit->reason = KVMRUN_EXIT_OUTPUT_LIMIT;
		exit->u.output_limit.console = false;
		return false;
	}
	exit->reason = KVMRUN_EXIT_IO;
	exit->u.io.port = io->port;
	exit->u.io.is_in = io->is_in;
	exit->u.io.size = io->size;
	exit->u.io.count = io->count;
	exit->u.io.data_length = 0;
	if (!io->is_in) {
		exit->u.io.data_length = (uint32_t)(bytes < KVMRUN_IO_DATA_MAX ? bytes
									   : KVMRUN_IO_DATA_MAX);
		memcpy(exit->u.io.data, io->data, exit->u.io.data_length);
	}
	return false;
}

static bool
handle_io(struct kvmrun_vm *vm, const struct kvmrun_spec *spec, struct kvmrun_result *result,
	  struct kvmrun_error *err, int *rc)
{
	struct kvm_run *run = vm->run;
	struct port_access io = {
		.port = run->io.port,
		.is_in = run->io.direction == KVM_EXIT_IO_IN,
		.size = run->io.size,
		.count = run->io.count,
		.data = (uint8_t *)run + run->io.data_offset,
	};

	return port_access(spec, &io, result, err, rc);
}

static void
record_internal_error(const struct kvm_run *run, struct kvmrun_exit *exit)
{
	uint32_t ndata = run->internal.ndata;

	exit->reason = KVMRUN_EXIT_INTERNAL_ERROR;
	exit->u.internal.suberror = run->internal.suberror;
	if (ndata > KVMRUN_INTERNAL_DATA_MAX)
		ndata = KVMRUN_INTERNAL_DATA_MAX;
	exit->u.internal.data_count = ndata;
	memcpy(exit->u.internal.data, run->internal.data, ndata * sizeof(uint64_t));
	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		uint32_t size = run->emulation_failure.insn_size;

		if (size > KVMRUN_INSN_BYTES_MAX)
			size = KVMRUN_INSN_BYTES_MAX;
		exit->u.internal.insn_length = size;
		memcpy(exit->u.internal.insn, run->emulation_failure.insn_bytes, size);
	}
}

/*
 * Handles one exit of KVM_RUN.  True when the run goes on; false when it
 * ended (RESULT->exit set) or failed (*RC < 0).
 */
static bool
handle_exit(struct kvmrun_vm *vm, const struct kvmrun_spec *spec, struct kvmrun_result *result,
	    struct kvmrun_error *err, int *rc)
{
	struct kvm_run *run = vm->run;
	struct kvmrun_exit *exit = &result->exit;

	switch (run->exit_reason) {
	case KVM_EXIT_HLT:
		exit->reason = KVMRUN_EXIT_HLT;
		return false;
	case KVM_EXIT_IO:
		return handle_io(vm, spec, result, err, rc);
	case KVM_EXIT_MMIO:
		exit->reason = KVMRUN_EXIT_MMIO;
		exit->u.mmio.address = run->mmio.phys_addr;
		exit->u.mmio.is_write = run->mmio.is_write;
		exit->u.mmio.length = run->mmio.len;
		if (run->mmio.is_write)
			memcpy(exit->u.mmio.data, run->mmio.data, sizeof(exit->u.mmio.data));
		return false;
	case KVM_EXIT_SHUTDOWN:
		exit->reason = KVMRUN_EXIT_SHUTDOWN;
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		exit->reason = KVMRUN_EXIT_FAIL_ENTRY;
		exit->u.fail_entry.hardware_reason =
			run->fail_entry.hardware_entry_failure_reason;
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		record_internal_error(run, exit);
		return false;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_DEBUG:
		return vm_observe_debug_exit(&vm->observe, run, result, err, rc);
	default:
		exit->reason = KVMRUN_EXIT_OTHER;
		exit->u.other.kvm_exit_reason = run->exit_reason;
		return false;
	}
}

static int
collect_dumps(struct kvmrun_vm *vm, const struct kvmrun_spec *spec, struct kvmrun_result *result,
	      struct kvmrun_error *err)
{
	if (spec->dump_count == 0)
		return 0;
	result->dumps = calloc(spec->dump_count, sizeof(*result->dumps));
	if (result->dumps == NULL)
		return errno_error(err, KVMRUN_ERR_INTERNAL, "dump buffers");
	result->dump_count = spec->dump_count;
	for (size_t i = 0; i < spec->dump_count; i++) {
		struct kvmrun_blob *dump = &result->dumps[i];

		dump->address = spec->dumps[i].address;
		dump->length = spec->dumps[i].length;
		dump->data = malloc(dump->length);
		if (dump->data == NULL)
			return errno_error(err, KVMRUN_ERR_INTERNAL, "dump buffer");
		memcpy(dump->data, vm->mem + dump->address, dump->length);
	}
	return 0;
}

/* Drives KVM_RUN until the run ends; the kick target is set meanwhile. */
static int
run_loop(struct kvmrun_vm *vm, const struct kvmrun_spec *spec, uint64_t deadline,
	 struct kvmrun_result *result, struct kvmrun_error *err)
{
	bool failed;
	int rc = 0, saved;

	for (;;) {
		if (atomic_load(&vm->cancelled)) {
			result->exit.reason = KVMRUN_EXIT_CANCELLED;
			return 0;
		}
		if (now_ns() >= deadline) {
			result->exit.reason = KVMRUN_EXIT_TIMEOUT;
			return 0;
		}
		/* The first entry into a fresh VM costs most: timed on its own. */
		if (vm->times.entered == 0)
			vm->times.entered = now_ns();
		failed = ioctl(vm->vcpu_fd, KVM_RUN, 0) < 0;
		saved = errno;
		if (vm->times.first_exit == 0)
			vm->times.first_exit = now_ns();
		if (failed) {
			if (saved == EINTR) {
				vm->run->immediate_exit = 0;
				continue;
			}
			errno = saved;
			return errno_error(err, KVMRUN_ERR_INTERNAL, "KVM_RUN");
		}
		result->exits++;
		if (!handle_exit(vm, spec, result, err, &rc))
			return rc;
	}
}

/*
 * Carries out the port I/O instruction a user-mode guest took #GP(0) on
 * though it runs with IOPL 3 (kvm_pvm drops IOPL in user mode), at most a
 * page of a rep string at a time (the instruction runs again for the rest).
 * A string instruction does only the elements the CPU itself would have
 * allowed the guest (vm_x86_pio_element: its address size, segment,
 * direction, the page protection, never the reserved area), up to the first
 * it would fault on; when that is the first, nothing is done and the run
 * ends as the #GP it was.  True when the guest is to be resumed.
 */
static bool
emulate_user_pio(struct kvmrun_vm *vm, const struct kvmrun_spec *spec,
		 const struct vm_x86_pio *pio, struct kvmrun_result *result,
		 struct kvmrun_error *err, int *rc)
{
	uint64_t *regs = result->regs;
	uint64_t count = 1, gpa, n;
	uint8_t buffer[KVMRUN_PAGE_SIZE];
	struct port_access io = {
		.port = pio->port, .is_in = pio->is_in, .size = pio->size, .data = buffer,
	};

	if (pio->string) {
		count = vm_x86_pio_count(pio, regs);
		if (count == 0)
			goto advance;	/* a rep with nothing to do touches no memory */
		count = vm_observe_pio_elements(&vm->observe, count);
		if (count > sizeof(buffer) / pio->size)
			count = sizeof(buffer) / pio->size;
		for (n = 0; n < count && vm_x86_pio_element(spec, result, pio, n, &gpa); n++)
			if (!pio->is_in)
				memcpy(buffer + n * pio->size, vm->mem + gpa, pio->size);
		if (n == 0)
			return false;	/* leave it reported as the #GP it was */
		count = n;	/* the next run of the instruction faults where the CPU would */
	} else if (!pio->is_in) {
		memcpy(buffer, &regs[KVMRUN_REG_RAX], pio->size);
	}
	io.count = (uint32_t)count;
	if (!port_access(spec, &io, result, err, rc)) {
		if (*rc == 0)
			regs[KVMRUN_REG_RIP] += pio->length;
		return false;
	}
	if (pio->string) {
		/* The same elements as above: nothing they depend on has changed. */
		for (n = 0; pio->is_in && n < count; n++)
			if (vm_x86_pio_element(spec, result, pio, n, &gpa)) {
				memcpy(vm->mem + gpa, buffer + n * pio->size, pio->size);
				vm_observe_written(&vm->observe, gpa, pio->size);
			}
		vm_x86_pio_advance(pio, regs, count);
		if (pio->rep && vm_x86_pio_count(pio, regs) != 0)
			return true;	/* rip stays: the rest on the next #GP */
	} else if (pio->is_in) {
		if (pio->size == 4)
			regs[KVMRUN_REG_RAX] = 0;	/* 32-bit writes zero-extend */
		memcpy(&regs[KVMRUN_REG_RAX], buffer, pio->size);
	}
advance:
	regs[KVMRUN_REG_RIP] += pio->length;
	return true;
}

/* True when the run ended at a user-mode I/O the engine is to carry out. */
static bool
is_user_pio_fault(const struct kvmrun_vm *vm, const struct kvmrun_spec *spec,
		  const struct kvmrun_result *result, struct vm_x86_pio *pio)
{
	const struct kvmrun_exit *exit = &result->exit;

	return exit->reason == KVMRUN_EXIT_EXCEPTION && exit->u.exception.vector == 13 &&
	       exit->u.exception.error_code == 0 && vm_x86_user_io_allowed(spec) &&
	       (exit->u.exception.cs & 3) == 3 &&
	       vm_x86_decode_user_pio(vm->mem, spec, result, pio);
}

int
vm_run(struct kvmrun_vm *vm, const struct kvmrun_spec *spec, struct kvmrun_result *result,
       struct kvmrun_error *err)
{
	uint64_t start, deadline;
	struct vm_x86_pio pio;
	int rc;

	if (vm->ran || vm->memory_size != spec->memory_size || !pthread_equal(vm->thread,
									     pthread_self()))
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
			"vm_run: the VM was used before, has another memory size, or "
			"belongs to another thread"), -EINVAL;
	vm->ran = true;
	vm->times.started = now_ns();
	result->paging = vm_x86_paging(spec, &vm->host->x86);
	copy_blob(vm, &spec->image);
	for (size_t i = 0; i < spec->region_count; i++)
		copy_blob(vm, &spec->regions[i]);
	vm->times.copied = now_ns();
	if ((rc = vm_x86_setup(vm->vcpu_fd, vm->mem, spec, &vm->host->x86, err)) < 0)
		return rc;
	if ((rc = vm_observe_start(&vm->observe, vm->vm_fd, vm->vcpu_fd, vm->mem, spec, result,
				   err)) < 0)
		goto out_observe;

	start = now_ns();
	deadline = start + (uint64_t)spec->timeout_ms * 1000000ull;
	vm_kick_target = vm->run;
	if ((rc = arm_timer(vm, spec->timeout_ms, err)) < 0)
		goto out_disarm;
	for (;;) {
		if ((rc = run_loop(vm, spec, deadline, result, err)) < 0)
			break;
		if ((rc = vm_x86_read_state(vm->vcpu_fd, result, err)) < 0)
			break;
		if (result->exit.reason != KVMRUN_EXIT_HLT ||
		    !vm_x86_decode_exception(vm->mem, spec, result) ||
		    !is_user_pio_fault(vm, spec, result, &pio))
			break;
		if (!emulate_user_pio(vm, spec, &pio, result, err, &rc) ||
		    !vm_observe_emulated(&vm->observe, result, err, &rc))
			break;
		if ((rc = vm_x86_resume_user(vm->vcpu_fd, spec, result->regs, err)) < 0 ||
		    (rc = vm_observe_resumed(&vm->observe, err)) < 0)
			break;
	}
out_disarm:
	disarm_timer(vm);
	vm_kick_target = NULL;
	vm->run->immediate_exit = 0;
	vm->times.ended = now_ns();
	result->run_ns = vm->times.ended - start;
	if (rc == 0)
		rc = vm_observe_finish(&vm->observe, result, err);
out_observe:
	vm_observe_free(&vm->observe);
	if (rc < 0)
		return rc;
	if ((rc = vm_x86_state_read(vm->vcpu_fd, vm->mem, vm->memory_size, spec, &vm->host->x86,
				    result, err)) < 0)
		return rc;
	rc = collect_dumps(vm, spec, result, err);
	vm->times.returned = now_ns();
	return rc;
}

const struct vm_run_times *
vm_run_times(const struct kvmrun_vm *vm)
{
	return &vm->times;
}

int
vm_run_fresh(struct kvmrun_host *host, const struct kvmrun_spec *spec,
	     struct kvmrun_result *result, struct kvmrun_error *err)
{
	struct kvmrun_vm *vm;
	int rc;

	if ((rc = vm_check_spec(host, spec, err)) < 0)
		return rc;
	if ((rc = vm_create(host, spec->memory_size, &vm, err)) < 0)
		return rc;
	rc = vm_run(vm, spec, result, err);
	vm_destroy(vm);
	return rc;
}
