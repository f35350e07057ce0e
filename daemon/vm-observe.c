/*
 * Stepping, trace and changes of a run (see vm-observe.h).
 *
 * Single-step is KVM_GUESTDBG_SINGLESTEP: KVM sets the guest's trap flag
 * and turns the #DB after each instruction into KVM_EXIT_DEBUG (with DR6.BS),
 * also after an instruction KVM emulated.  KVM adds TF to the guest's RFLAGS
 * only while rip is where KVM_SET_GUEST_DEBUG found it, so every
 * KVM_SET_REGS that moves rip (the engine resuming a guest after its port
 * I/O) is followed by KVM_SET_GUEST_DEBUG again.  An exception's delivery
 * clears TF, so the engine's stubs run unstepped: the instruction that
 * faults ends the run and is not counted, and no stub is traced.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vm-changes.h"
#include "vm-observe.h"
#include "vm-x86.h"
#include "vm.h"

#define DR6_BS (1ull << 14)
#define PAGE_SIZE KVMRUN_PAGE_SIZE
#define BITS_PER_WORD 64u

static int
ioctl_error(struct kvmrun_error *err, const char *request)
{
	int saved = errno;

	kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "%s: %s", request, strerror(saved));
	return -saved;
}

static unsigned int
ring_index(unsigned int ring)
{
	return ring == 3 ? 1 : 0;
}

/* Steps nop, nop, hlt twice in MODE at RING; REASON says what went wrong, if anything. */
static void
probe_one(struct kvmrun_host *host, enum kvmrun_mode mode, unsigned int ring,
	  char *reason)
{
	static uint8_t code[] = { 0x90, 0x90, 0xf4 };
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;

	kvmrun_spec_init(&spec);
	spec.mode = mode;
	spec.ring = ring;
	spec.image.data = code;
	spec.image.length = sizeof(code);
	spec.max_instructions = 2;
	spec.trace = true;
	/*
	 * Three instructions take microseconds even emulated; a host whose
	 * stepping never returns must not hold up the daemon's start for long.
	 */
	spec.timeout_ms = 100;
	kvmrun_result_init(&result);
	if (vm_run_fresh(host, &spec, &result, &err) < 0) {
		snprintf(reason, VM_OBSERVE_REASON_MAX,
			 "single-stepping fails in %s mode at ring %u: %.400s",
			 kvmrun_mode_names[mode], ring, err.message);
	} else if (result.exit.reason != KVMRUN_EXIT_STEP_LIMIT ||
		   result.regs[KVMRUN_REG_RIP] != 2 || result.trace_count != 2 ||
		   result.trace[0].rip != 0 || result.trace[1].rip != 1) {
		snprintf(reason, VM_OBSERVE_REASON_MAX,
			 "this host's KVM does not single-step guests in %s mode at "
			 "ring %u: a probe of nop, nop, hlt stepped twice ended with "
			 "%s at rip 0x%llx after %zu traced instructions, not "
			 "step_limit at 0x2 after 2",
			 kvmrun_mode_names[mode], ring,
			 kvmrun_exit_reason_name(result.exit.reason),
			 (unsigned long long)result.regs[KVMRUN_REG_RIP],
			 result.trace_count);
	}
	kvmrun_result_free(&result);
}

void
vm_observe_probe(struct kvmrun_host *host, int kvm_fd, struct vm_observe_host *obs)
{
	bool has_debug =
		ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_GUEST_DEBUG) > 0;

	memset(obs, 0, sizeof(*obs));
	for (int mode = 0; mode < KVMRUN_MODE_COUNT; mode++) {
		for (unsigned int ring = 0; ring <= 3; ring += 3) {
			char *reason = obs->step_unsupported[mode][ring_index(ring)];
			const char *why = vm_host_mode_unsupported(host, mode);

			if (ring == 3 && mode == KVMRUN_MODE_REAL)
				continue; /* refused as a bad request anyway */
			if (!has_debug)
				snprintf(reason, VM_OBSERVE_REASON_MAX,
					 "this host's KVM lacks "
					 "KVM_CAP_SET_GUEST_DEBUG, "
					 "which single-stepping needs");
			else if (why != NULL)
				snprintf(reason, VM_OBSERVE_REASON_MAX, "%s", why);
			else
				probe_one(host, mode, ring, reason);
		}
	}
}

const char *
vm_observe_step_unsupported(const struct vm_observe_host *obs,
			    const struct kvmrun_spec *spec)
{
	const char *reason;

	if (spec->max_instructions == 0 || spec->mode >= KVMRUN_MODE_COUNT)
		return NULL;
	reason = obs->step_unsupported[spec->mode][ring_index(spec->ring)];
	return reason[0] != '\0' ? reason : NULL;
}

static int
set_single_step(const struct vm_observe *obs, struct kvmrun_error *err)
{
	struct kvm_guest_debug debug;

	memset(&debug, 0, sizeof(debug));
	debug.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
	if (ioctl(obs->vcpu_fd, KVM_SET_GUEST_DEBUG, &debug) < 0)
		return ioctl_error(err, "KVM_SET_GUEST_DEBUG");
	return 0;
}

/* Notes where an instruction begins; past trace_max only trace_truncated. */
static int
trace_add(struct kvmrun_result *result, const struct kvmrun_spec *spec, uint64_t rip,
	  uint16_t cs, struct kvmrun_error *err)
{
	size_t count = result->trace_count;

	if (count >= spec->trace_max) {
		result->trace_truncated = true;
		return 0;
	}
	/* The array doubles from 16 entries: it is full when COUNT is a power of two.
	 */
	if (count == 0 || (count >= 16 && (count & (count - 1)) == 0)) {
		size_t capacity = count == 0 ? 16 : 2 * count;
		struct kvmrun_trace_entry *grown;

		grown = realloc(result->trace, capacity * sizeof(*grown));
		if (grown == NULL)
			return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
						"trace buffer: %s", strerror(ENOMEM)),
			       -ENOMEM;
		result->trace = grown;
	}
	result->trace[count] = (struct kvmrun_trace_entry){ .rip = rip, .cs = cs };
	result->trace_count = count + 1;
	return 0;
}

/* Traces the instruction the vCPU is about to run. */
static int
trace_vcpu(const struct vm_observe *obs, struct kvmrun_result *result,
	   struct kvmrun_error *err)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	if (ioctl(obs->vcpu_fd, KVM_GET_REGS, &regs) < 0)
		return ioctl_error(err, "KVM_GET_REGS");
	if (ioctl(obs->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return ioctl_error(err, "KVM_GET_SREGS");
	return trace_add(result, obs->spec, regs.rip, sregs.cs.selector, err);
}

static int
set_dirty_log(const struct vm_observe *obs, struct kvmrun_error *err)
{
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = 0,
		.memory_size = obs->spec->memory_size,
		.userspace_addr = (uintptr_t)obs->mem,
	};

	if (ioctl(obs->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return ioctl_error(err, "KVM_SET_USER_MEMORY_REGION (dirty log)");
	return 0;
}

/* A bitmap of the memory's pages, in 64-bit words as KVM_GET_DIRTY_LOG fills it. */
static uint64_t *
page_bitmap(const struct kvmrun_spec *spec)
{
	uint64_t pages = spec->memory_size / PAGE_SIZE;

	return calloc((pages + BITS_PER_WORD - 1) / BITS_PER_WORD, sizeof(uint64_t));
}

int
vm_observe_start(struct vm_observe *obs, int vm_fd, int vcpu_fd, uint8_t *mem,
		 const struct kvmrun_spec *spec, struct kvmrun_result *result,
		 struct kvmrun_error *err)
{
	int rc;

	*obs = (struct vm_observe){
		.spec = spec,
		.vm_fd = vm_fd,
		.vcpu_fd = vcpu_fd,
		.mem = mem,
	};
	if (spec->changes) {
		obs->engine_written = page_bitmap(spec);
		if (obs->engine_written == NULL)
			return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
						"page bitmap: %s", strerror(ENOMEM)),
			       -ENOMEM;
		if ((rc = set_dirty_log(obs, err)) < 0)
			return rc;
	}
	if (spec->max_instructions == 0)
		return 0;
	if ((rc = set_single_step(obs, err)) < 0)
		return rc;
	return spec->trace ? trace_vcpu(obs, result, err) : 0;
}

static void
end_at_step_limit(struct kvmrun_result *result)
{
	memset(&result->exit, 0, sizeof(result->exit));
	result->exit.reason = KVMRUN_EXIT_STEP_LIMIT;
}

bool
vm_observe_debug_exit(struct vm_observe *obs, const struct kvm_run *run,
		      struct kvmrun_result *result, struct kvmrun_error *err, int *rc)
{
	/* Only a single-step trap is ours; any other #DB is the guest's own. */
	if (obs->spec->max_instructions == 0 ||
	    run->debug.arch.exception != DB_VECTOR || !(run->debug.arch.dr6 & DR6_BS)) {
		result->exit.reason = KVMRUN_EXIT_OTHER;
		result->exit.u.other.kvm_exit_reason = KVM_EXIT_DEBUG;
		return false;
	}
	if (++obs->steps >= obs->spec->max_instructions) {
		end_at_step_limit(result);
		return false;
	}
	if (obs->spec->trace && (*rc = trace_vcpu(obs, result, err)) < 0)
		return false;
	return true;
}

uint64_t
vm_observe_pio_elements(const struct vm_observe *obs, uint64_t max)
{
	return obs->spec->max_instructions != 0 ? 1 : max;
}

void
vm_observe_written(struct vm_observe *obs, uint64_t address, uint64_t length)
{
	if (obs->engine_written == NULL || length == 0)
		return;
	for (uint64_t page = address / PAGE_SIZE;
	     page <= (address + length - 1) / PAGE_SIZE; page++)
		obs->engine_written[page / BITS_PER_WORD] |= 1ull
							     << (page % BITS_PER_WORD);
}

bool
vm_observe_emulated(struct vm_observe *obs, struct kvmrun_result *result,
		    struct kvmrun_error *err, int *rc)
{
	if (obs->spec->max_instructions == 0)
		return true;
	/* The frame's RFLAGS has the TF single-step set; the guest resumes without. */
	result->regs[KVMRUN_REG_RFLAGS] &= ~VM_OBSERVE_RFLAGS_TF;
	if (++obs->steps >= obs->spec->max_instructions) {
		end_at_step_limit(result);
		return false;
	}
	if (obs->spec->trace &&
	    (*rc = trace_add(result, obs->spec, result->regs[KVMRUN_REG_RIP],
			     result->sregs.segments[KVMRUN_SEG_CS].selector, err)) < 0)
		return false;
	return true;
}

int
vm_observe_resumed(struct vm_observe *obs, struct kvmrun_error *err)
{
	return obs->spec->max_instructions != 0 ? set_single_step(obs, err) : 0;
}

/*
 * Compares the pages KVM logged dirty, and those the engine wrote, with the
 * run's initial bytes, below the reserved area: the engine's own writes
 * there (exception frames, accessed bits of its page tables) are not the
 * guest's.
 */
static int
collect_changes(struct vm_observe *obs, struct kvmrun_result *result,
		struct kvmrun_error *err)
{
	const struct kvmrun_spec *spec = obs->spec;
	uint64_t top = vm_x86_reserved_base(spec->mode, spec->memory_size);
	uint64_t pages = top / PAGE_SIZE;
	uint64_t *dirty = page_bitmap(spec);
	struct kvm_dirty_log log;
	struct vm_changes changes;
	uint8_t initial[PAGE_SIZE];
	int rc = 0;

	if (dirty == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "page bitmap: %s",
					strerror(ENOMEM)),
		       -ENOMEM;
	memset(&log, 0, sizeof(log));
	log.slot = 0;
	log.dirty_bitmap = dirty;
	if (ioctl(obs->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
		rc = ioctl_error(err, "KVM_GET_DIRTY_LOG");
		goto out;
	}
	vm_changes_init(&changes, spec->changes_max);
	for (uint64_t page = 0; page < pages && rc == 0; page++) {
		uint64_t bit = 1ull << (page % BITS_PER_WORD);
		uint64_t address = page * PAGE_SIZE;

		if (!((dirty[page / BITS_PER_WORD] |
		       obs->engine_written[page / BITS_PER_WORD]) &
		      bit))
			continue;
		vm_changes_initial(spec, address, initial, PAGE_SIZE);
		rc = vm_changes_add(&changes, address, initial, obs->mem + address,
				    PAGE_SIZE);
	}
	if (rc == 0)
		rc = vm_changes_take(&changes, result);
	vm_changes_free(&changes);
	if (rc < 0)
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "changes: %s",
				 strerror(-rc));
out:
	free(dirty);
	return rc;
}

int
vm_observe_finish(struct vm_observe *obs, struct kvmrun_result *result,
		  struct kvmrun_error *err)
{
	if (obs->spec->max_instructions != 0)
		result->regs[KVMRUN_REG_RFLAGS] &= ~VM_OBSERVE_RFLAGS_TF;
	return obs->spec->changes ? collect_changes(obs, result, err) : 0;
}

void
vm_observe_free(struct vm_observe *obs)
{
	free(obs->engine_written);
	obs->engine_written = NULL;
}
