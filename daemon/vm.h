/*
 * The KVM engine: runs one guest in a fresh VM and returns a plain result.
 * Blocking; knows nothing of JSON, sockets or libev.  The daemon's workers,
 * the tests and the benchmark all call it the same way.
 *
 *   host = /dev/kvm opened once, checked, probed for what it can do.
 *   vm   = one fresh VM with zeroed memory and one vCPU, run once, destroyed.
 *
 * A vm belongs to the thread that created it (KVM wants vCPU ioctls from
 * that thread): vm_run and vm_destroy must be called there.  vm_cancel may be
 * called from any thread while the vm exists.
 *
 * The engine installs a handler for KVMRUN_KICK_SIGNAL (SIGRTMIN) when the
 * host is opened; it uses that signal to stop a vCPU in KVM_RUN.
 */
#ifndef KVMRUN_VM_H
#define KVMRUN_VM_H

#include <stdbool.h>
#include <stdint.h>

#include "kvmrun-run.h"

struct kvmrun_host;
struct kvmrun_vm;

#define KVMRUN_DEFAULT_KVM_PATH "/dev/kvm"

/* How paged mode's 32-bit code is to be paged (kvmrund --paged). */
enum vm_paged_choice {
	VM_PAGED_AUTO,		/* legacy where KVM keeps CR0.PG, else compat */
	VM_PAGED_LEGACY,	/* 32-bit paging; unsupported where KVM drops CR0.PG */
	VM_PAGED_COMPAT,	/* compatibility mode under long-mode paging */
};

struct vm_host_options {
	enum vm_paged_choice paged;
};

/*
 * Opens PATH, checks KVM_GET_API_VERSION is 12 and the capabilities the
 * engine relies on, reads the supported CPUID, and probes which CPU modes this
 * host can run, paged mode as OPTIONS (NULL: the defaults) choose.  -errno
 * and ERR naming what is missing on failure.
 */
int vm_host_open_with(const char *path, const struct vm_host_options *options,
		      struct kvmrun_host **hostp, struct kvmrun_error *err);
/* vm_host_open_with and the default options. */
int vm_host_open(const char *path, struct kvmrun_host **hostp, struct kvmrun_error *err);
void vm_host_close(struct kvmrun_host *host);
/*
 * Installs the engine's handler for KVMRUN_KICK_SIGNAL (vm_host_open does it
 * too): a process that may open a host later calls it first, so the signal
 * never takes the default action of ending the process.
 */
int vm_install_kick(struct kvmrun_error *err);
int vm_host_api_version(const struct kvmrun_host *host);
/* NULL when MODE works on this host, else a sentence saying why it does not. */
const char *vm_host_mode_unsupported(const struct kvmrun_host *host, enum kvmrun_mode mode);
/* How paged mode runs on this host: LEGACY, COMPAT, or NONE when it does not. */
enum kvmrun_paging vm_host_paging(const struct kvmrun_host *host);

/*
 * Checks SPEC against the engine's rules and this host without creating
 * anything: mode supported, ring valid, memory size, image, regions and dumps
 * inside guest memory and clear of the engine's reserved area, registers,
 * the CPU state (vm_x86_state_check: what the vCPU's CPUID and the host's
 * KVM offer).  With HOST NULL, only the rules that hold on every host (not
 * the mode, not the state's host-dependent ones).
 */
int vm_check_spec(const struct kvmrun_host *host, const struct kvmrun_spec *spec,
		  struct kvmrun_error *err);

/*
 * Creates a VM with MEMORY_SIZE bytes of zeroed memory and one vCPU with the
 * host's CPUID: all that does not depend on the run, so a caller may make it
 * ahead of the request.
 */
int vm_create(struct kvmrun_host *host, uint64_t memory_size, struct kvmrun_vm **vmp,
	      struct kvmrun_error *err);
uint64_t vm_memory_size(const struct kvmrun_vm *vm);

/*
 * Runs SPEC on a vm from vm_create (its memory_size must match) until the
 * guest halts, exits, faults, times out or is cancelled.  A vm runs once.
 * 0 with RESULT filled (even for a guest that faulted; RESULT->state only
 * when SPEC->returns asks), or -errno with ERR when the run could not be
 * carried out.
 */
int vm_run(struct kvmrun_vm *vm, const struct kvmrun_spec *spec, struct kvmrun_result *result,
	   struct kvmrun_error *err);

/*
 * When vm_run passed each of its steps, CLOCK_MONOTONIC nanoseconds, for the
 * daemon's stats; 0 for one it did not reach (no KVM_RUN in a run cancelled
 * before it).
 */
struct vm_run_times {
	uint64_t started;    /* vm_run called */
	uint64_t copied;     /* image and regions in guest memory */
	uint64_t entered;    /* the first KVM_RUN called */
	uint64_t first_exit; /* and returned */
	uint64_t ended;	     /* the guest's run over: where run_ns ends */
	uint64_t returned;   /* vm_run returns, CPU state and dumps read */
};

/* VM's times, once vm_run has returned 0 on it. */
const struct vm_run_times *vm_run_times(const struct kvmrun_vm *vm);

/* Stops the run on VM as soon as possible; it ends as cancelled. Any thread. */
void vm_cancel(struct kvmrun_vm *vm);

void vm_destroy(struct kvmrun_vm *vm);

/* vm_check_spec, vm_create, vm_run and vm_destroy in one call. */
int vm_run_fresh(struct kvmrun_host *host, const struct kvmrun_spec *spec,
		 struct kvmrun_result *result, struct kvmrun_error *err);

#endif
