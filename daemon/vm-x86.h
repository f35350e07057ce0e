/*
 * x86 set-up of a fresh vCPU for one of the four CPU modes: the engine's
 * reserved area at the top of guest memory (GDT, IDT, TSS, exception stubs,
 * page tables, handler stack), segment and control registers, CPUID and XCR0,
 * and the reading back of a finished run's registers and exceptions.
 *
 * The layout is documented in README.md ("Guest memory layout").
 */
#ifndef KVMRUN_VM_X86_H
#define KVMRUN_VM_X86_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "kvmrun-run.h"
#include "vm-x86-state.h"

/* The reserved area: 64 KiB, 64 KiB-aligned, at the top of guest memory. */
#define VM_X86_RESERVED_SIZE 0x10000ull
#define VM_X86_RSV_GDT 0x0000
#define VM_X86_RSV_IDT 0x1000
#define VM_X86_RSV_TSS 0x2000
#define VM_X86_RSV_STUBS 0x3000
#define VM_X86_RSV_PML4 0x4000	/* the page directory in 32-bit paged mode */
#define VM_X86_RSV_PDPT 0x5000
#define VM_X86_RSV_PD 0x6000	/* four pages: 4 GiB of 2 MiB pages */
#define VM_X86_RSV_PT 0xa000	/* 4 KiB pages of the region holding the area */
#define VM_X86_RSV_STACK 0xb000 /* exception stack, up to the area's end */

#define VM_X86_STUB_SIZE 8
#define VM_X86_VECTORS 32

/* Largest guest memory the identity map and the engine's layout allow. */
#define VM_X86_MAX_MEMORY (3ull << 30)
#define VM_X86_MIN_MEMORY_PROTECTED (2 * VM_X86_RESERVED_SIZE)

/* Where the reserved area starts; MEMORY_SIZE in real mode, which has none. */
uint64_t vm_x86_reserved_base(enum kvmrun_mode mode, uint64_t memory_size);

/* What the host offers that the set-up uses. */
struct vm_x86_host {
	const struct kvm_cpuid2 *cpuid;
	bool has_xcrs;
	/* How paged mode runs: LEGACY (the default) or COMPAT; the host decides. */
	enum kvmrun_paging paging;
	struct vm_x86_state_host state;	/* vm_x86_state_host_init */
};

void vm_x86_host_init(struct vm_x86_host *x86, const struct kvm_cpuid2 *cpuid, bool has_xcrs);

/* How SPEC's run is paged on X86's host: x86->paging in paged mode, else NONE. */
enum kvmrun_paging vm_x86_paging(const struct kvmrun_spec *spec, const struct vm_x86_host *x86);

/*
 * Checks the registers SPEC sets against what its mode can start with, so a
 * value KVM would refuse is a bad_request naming the register.
 */
int vm_x86_check_regs(const struct kvmrun_spec *spec, struct kvmrun_error *err);

/*
 * Sets up what a fresh vCPU needs whatever it will run: the CPUID table.
 * Done when the VM is created, so a VM made ahead of a request has it.
 */
int vm_x86_vcpu_init(int vcpu_fd, const struct vm_x86_host *x86,
		     struct kvmrun_error *err);

/*
 * Writes the reserved area into MEM and sets the vCPU's CPUID (when SPEC
 * gives entries), XCR0, special and general registers, and SPEC's state
 * (vm-x86-state.h) for SPEC.  Fails with unsupported when KVM does not keep
 * the control registers the mode needs (legacy paging on kvm_pvm).
 */
int vm_x86_setup(int vcpu_fd, uint8_t *mem, const struct kvmrun_spec *spec,
		 const struct vm_x86_host *x86, struct kvmrun_error *err);

/* Reads the registers of a finished run into RESULT. */
int vm_x86_read_state(int vcpu_fd, struct kvmrun_result *result, struct kvmrun_error *err);

/*
 * A HLT at RIP-1 in the engine's exception stubs means the guest took an
 * exception: fills RESULT->exit and puts the guest's registers at the fault
 * (from the exception frame, whose layout RESULT->paging tells in paged
 * mode) into RESULT.  Returns false for any other HLT.
 */
bool vm_x86_decode_exception(const uint8_t *mem, const struct kvmrun_spec *spec,
			     struct kvmrun_result *result);

/* A port I/O instruction, decoded from guest memory. */
struct vm_x86_pio {
	uint16_t port;
	bool is_in;
	uint8_t size;		/* 1, 2 or 4 bytes an element */
	bool string;		/* ins/outs: elements come from or go to memory */
	bool rep;
	uint8_t address_size;	/* string: 2, 4 or 8 bytes of (r/e)si, (r/e)di, (r/e)cx */
	enum kvmrun_seg segment; /* string: es for ins, ds or the override for outs */
	unsigned int length;	/* bytes of the instruction */
};

/*
 * Decodes the instruction a user-mode run took #GP(0) on, when it is port
 * I/O the engine may carry out: RESULT holds the registers and segments at
 * the fault (vm_x86_decode_exception).  Used where a CPU raises #GP for I/O
 * at CPL 3 despite IOPL 3 (kvm_pvm runs 64-bit user code natively, where the
 * host's I/O permissions apply), so the engine carries the access out itself.
 * False for anything else, and for the forms it refuses (see the function).
 */
bool vm_x86_decode_user_pio(const uint8_t *mem, const struct kvmrun_spec *spec,
			    const struct kvmrun_result *result, struct vm_x86_pio *pio);

/* Elements PIO has still to do: (r/e)cx in its address size under rep, else 1. */
uint64_t vm_x86_pio_count(const struct vm_x86_pio *pio, const uint64_t *regs);

/*
 * Where element N of the string I/O PIO (0: the one (r/e)si or (r/e)di
 * points at now, then on in the direction flag's way) lies in guest memory,
 * for a user-mode guest with RESULT's registers and segments.  False when
 * the CPU at CPL 3 would fault on it (segment, limit, page protection), and
 * whenever it is not in guest memory below the reserved area: the engine
 * never touches the reserved area for a guest.
 */
bool vm_x86_pio_element(const struct kvmrun_spec *spec, const struct kvmrun_result *result,
			const struct vm_x86_pio *pio, uint64_t n, uint64_t *gpa);

/* Moves (r/e)si or (r/e)di, and (r/e)cx under rep, past COUNT elements done. */
void vm_x86_pio_advance(const struct vm_x86_pio *pio, uint64_t *regs, uint64_t count);

/*
 * Whether a user-mode run may do port I/O: it asked for IOPL 3 (the default
 * at ring 3).  Code at CPL 3 cannot change IOPL, so the start value holds.
 */
bool vm_x86_user_io_allowed(const struct kvmrun_spec *spec);

/*
 * Resumes the guest in user mode with REGS (taken from an exception frame,
 * then updated): the general registers, rip, rsp, rflags, and the user code
 * and stack segments.
 */
int vm_x86_resume_user(int vcpu_fd, const struct kvmrun_spec *spec, const uint64_t *regs,
		       struct kvmrun_error *err);

#endif
