/*
 * What a run may ask to be watched beyond its end state (PROTOCOL.md,
 * "Stepping, trace and changes"): stopping after max_instructions with
 * KVM's single-step, the trace of where each instruction began, and the
 * memory it changed, found with KVM's dirty log.  vm.c calls these at fixed
 * points of a run; a run that asks for none of them pays nothing more.
 */
#ifndef KVMRUN_VM_OBSERVE_H
#define KVMRUN_VM_OBSERVE_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "kvmrun-run.h"

struct kvmrun_host;

#define VM_OBSERVE_REASON_MAX KVMRUN_ERROR_MESSAGE_MAX
/* The trap flag: the engine's while a run is stepped. */
#define VM_OBSERVE_RFLAGS_TF (1ull << 8)

/* Why stepping does not work on this host, per mode and ring (0, 3); "" if it does. */
struct vm_observe_host {
	char step_unsupported[KVMRUN_MODE_COUNT][2][VM_OBSERVE_REASON_MAX];
};

/*
 * Checks KVM_CAP_SET_GUEST_DEBUG on KVM_FD, then steps a probe guest (nop,
 * nop, hlt with max_instructions 2) in every mode HOST runs and at both
 * rings, and notes in OBS why stepping fails where it does: nested KVMs
 * differ, and a run must not go unbounded where its bound cannot hold.
 */
void vm_observe_probe(struct kvmrun_host *host, int kvm_fd,
		      struct vm_observe_host *obs);

/* NULL when SPEC may be stepped on this host, else why not. */
const char *vm_observe_step_unsupported(const struct vm_observe_host *obs,
					const struct kvmrun_spec *spec);

/* One run's watch; lives in the vm, zeroed at its start. */
struct vm_observe {
	const struct kvmrun_spec *spec;
	int vm_fd;
	int vcpu_fd;
	uint8_t *mem;
	uint64_t steps;		  /* instructions completed so far */
	uint64_t *engine_written; /* changes: pages the engine wrote for the guest */
};

/*
 * At the start of the run, registers set: turns on the dirty log for
 * changes, single-step for max_instructions, and notes where the first
 * instruction begins for the trace.
 */
int vm_observe_start(struct vm_observe *obs, int vm_fd, int vcpu_fd, uint8_t *mem,
		     const struct kvmrun_spec *spec, struct kvmrun_result *result,
		     struct kvmrun_error *err);

/*
 * A KVM_EXIT_DEBUG: one instruction done.  True when the run goes on
 * (RESULT->trace has where the next one begins); false when it ended
 * (step_limit, or other for a debug exit that is no single-step) or failed
 * (*RC < 0).
 */
bool vm_observe_debug_exit(struct vm_observe *obs, const struct kvm_run *run,
			   struct kvmrun_result *result, struct kvmrun_error *err,
			   int *rc);

/*
 * Elements of a rep ins/outs the engine may carry out at once: one when
 * stepping, as the CPU traps after each iteration, else MAX.
 */
uint64_t vm_observe_pio_elements(const struct vm_observe *obs, uint64_t max);

/* The engine wrote LENGTH bytes at ADDRESS of guest memory for the guest. */
void vm_observe_written(struct vm_observe *obs, uint64_t address, uint64_t length);

/*
 * The engine carried out the instruction the guest faulted on (its ring-3
 * port I/O), RESULT holding the registers after it: counts it as the CPU
 * would.  True to resume the guest; false when that was the last
 * instruction (step_limit) or on failure (*RC < 0).
 */
bool vm_observe_emulated(struct vm_observe *obs, struct kvmrun_result *result,
			 struct kvmrun_error *err, int *rc);

/* After vm_x86_resume_user: single-step from the new rip on. */
int vm_observe_resumed(struct vm_observe *obs, struct kvmrun_error *err);

/*
 * When the run has ended: drops the trap flag single-step set from the
 * registers a fault's frame gave, and collects the changes.
 */
int vm_observe_finish(struct vm_observe *obs, struct kvmrun_result *result,
		      struct kvmrun_error *err);

/* Frees what the watch holds (not what it handed to the result). */
void vm_observe_free(struct vm_observe *obs);

#endif
