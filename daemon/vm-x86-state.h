/*
 * The CPU state beyond the general registers (struct kvmrun_cpu_state): the
 * CPUID a run's vCPU gets (the host's, with the request's entries in place of
 * the matching ones), the XCR0 and CR4 bits that follow from it, the x87/SSE/
 * AVX/AVX-512 registers (KVM's XSAVE buffer), the allow-listed MSRs and the
 * real-mode descriptor caches, set before a run and read back after it.
 *
 * The functions that need no vCPU (tag word, XSAVE buffer layout, CPUID
 * merge, the EFER rule) are pure and exported for tests/test-spec.c.
 */
#ifndef KVMRUN_VM_X86_STATE_H
#define KVMRUN_VM_X86_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "kvmrun-run.h"

struct vm_x86_host;

/* XSAVE state components (bits of XCR0 and XSTATE_BV) the engine handles. */
#define VM_X86_XFEATURE_X87 (1ull << 0)
#define VM_X86_XFEATURE_SSE (1ull << 1)
#define VM_X86_XFEATURE_YMM (1ull << 2)
#define VM_X86_XFEATURE_OPMASK (1ull << 5)
#define VM_X86_XFEATURE_ZMM_HI256 (1ull << 6)
#define VM_X86_XFEATURE_HI16_ZMM (1ull << 7)
#define VM_X86_XFEATURE_AVX512 \
	(VM_X86_XFEATURE_OPMASK | VM_X86_XFEATURE_ZMM_HI256 | VM_X86_XFEATURE_HI16_ZMM)
#define VM_X86_XSTATE_COMPONENTS 8

/* The legacy region and header of the XSAVE standard format (KVM's uABI). */
#define VM_X86_XSAVE_FCW 0
#define VM_X86_XSAVE_FSW 2
#define VM_X86_XSAVE_FTW 4	/* abridged: one bit per R0..R7, 1 = not empty */
#define VM_X86_XSAVE_FOP 6
#define VM_X86_XSAVE_FIP 8
#define VM_X86_XSAVE_FDP 16
#define VM_X86_XSAVE_MXCSR 24
#define VM_X86_XSAVE_MXCSR_MASK 28
#define VM_X86_XSAVE_ST 32	/* ST(0)..ST(7), 16 bytes each */
#define VM_X86_XSAVE_XMM 160	/* xmm0..xmm15, 16 bytes each */
#define VM_X86_XSAVE_XSTATE_BV 512
#define VM_X86_XSAVE_MIN 4096	/* struct kvm_xsave */

/* Where the components above 1 lie (CPUID leaf 0xD sub-leaf N: EBX, EAX). */
struct vm_x86_xsave_layout {
	uint32_t offset[VM_X86_XSTATE_COMPONENTS];
	uint32_t size[VM_X86_XSTATE_COMPONENTS];	/* 0: the host has none */
};

/* What a run's vCPU offers, as its CPUID says. */
struct vm_x86_cpu {
	uint64_t xcr0;		/* what the engine sets; 0 without XSAVE */
	bool fsgsbase;		/* CPUID.(7,0):EBX[0]: CR4.FSGSBASE may be set */
	bool nx;		/* CPUID.80000001H:EDX[20]: EFER.NXE may be set */
};

/* What the host's KVM offers for the state, found when it is opened. */
struct vm_x86_state_host {
	bool has_xsave;		/* KVM_CAP_XSAVE */
	bool has_xsave2;	/* KVM_CAP_XSAVE2: KVM_GET_XSAVE2 */
	size_t xsave_size;	/* bytes of the XSAVE buffer, at least 4096 */
	uint32_t mxcsr_mask;	/* vm_x86_mxcsr_mask() */
	uint32_t msrs;		/* bit (1 << enum kvmrun_msr): KVM has it */
	struct vm_x86_xsave_layout layout;
	struct vm_x86_cpu cpu;	/* the vCPU a run without CPUID entries gets */
};

/* Probes the MSR list and XSAVE capabilities on /dev/kvm's KVM_FD. */
int vm_x86_state_host_init(struct vm_x86_host *x86, int kvm_fd, struct kvmrun_error *err);

/*
 * The host- and mode-dependent rules for SPEC->state, after the CPUID
 * entries are merged (ymm needs AVX, zmm, k and xmm16+ AVX-512F, an MSR the
 * host's KVM has, EFER's bits): bad_request or unsupported naming the field.
 * With X86 NULL, only the rules that hold on every host.
 */
int vm_x86_state_check(const struct vm_x86_host *x86, const struct kvmrun_spec *spec,
		       struct kvmrun_error *err);

/*
 * Gives the vCPU its CPUID when SPEC changes it (KVM_SET_CPUID2 before the
 * first KVM_RUN may replace the table vm_x86_vcpu_init set) and fills CPU
 * from the table the vCPU has.
 */
int vm_x86_state_cpuid(int vcpu_fd, const struct kvmrun_spec *spec,
		       const struct vm_x86_host *x86, struct vm_x86_cpu *cpu,
		       struct kvmrun_error *err);

/* Whether the run sets or returns x87/SSE/AVX state (real mode sets XCR0 then). */
bool vm_x86_state_uses_xstate(const struct kvmrun_spec *spec);

/*
 * What SPEC's state puts in the special registers before KVM_SET_SREGS:
 * CR4.FSGSBASE (long mode, where CPU has it), CR4.OSXSAVE only with XSAVE,
 * the real-mode descriptor caches, fs_base, gs_base and EFER's SCE/NXE.
 */
void vm_x86_state_sregs(const struct kvmrun_spec *spec, const struct vm_x86_cpu *cpu,
			struct kvm_sregs *sregs);

/* Sets SPEC's xstate (KVM_SET_XSAVE) and KVM_SET_MSRS MSRs, after the registers. */
int vm_x86_state_set(int vcpu_fd, const struct kvmrun_spec *spec, const struct vm_x86_host *x86,
		     struct kvmrun_error *err);

/*
 * Reads what SPEC->returns asks into RESULT->state after the run: at an
 * exception the engine's stubs caught, the guest's at the fault (the stubs
 * touch no x87/SSE state, MSR or segment but cs and ss, which come from the
 * exception frame's selectors and the engine's GDT in MEM).
 */
int vm_x86_state_read(int vcpu_fd, const uint8_t *mem, uint64_t memory_size,
		      const struct kvmrun_spec *spec, const struct vm_x86_host *x86,
		      struct kvmrun_result *result, struct kvmrun_error *err);

/* Pure parts, tested without KVM. */

/* The abridged (FXSAVE) tag byte of a full tag word: 1 for each register not empty. */
uint8_t vm_x86_ftw_abridge(uint16_t ftw);
/*
 * The full tag word from the abridged byte, as FXSAVE readers rebuild it:
 * each register not empty is classified by its contents (ST, stack order,
 * 16 bytes each as in the XSAVE area; TOP from FSW): valid, zero or special.
 */
uint16_t vm_x86_ftw_full(uint8_t abridged, uint16_t fsw, const uint8_t *st);

/* The layout of components 2, 5, 6 and 7 from CPUID leaf 0xD. */
void vm_x86_xsave_layout_init(const struct kvm_cpuid2 *cpuid, struct vm_x86_xsave_layout *layout);

/*
 * The XCR0 a vCPU with CPUID gets: leaf 0xD's EAX/EDX, less AVX without
 * leaf 1 ECX.AVX, less AVX-512 without leaf 7 EBX.AVX512F or AVX, x87 and
 * SSE always; 0 without leaf 1 ECX.XSAVE.  Only the components the engine
 * handles (x87, SSE, AVX, AVX-512).
 */
uint64_t vm_x86_cpuid_xcr0(const struct kvm_cpuid2 *cpuid);
void vm_x86_cpu_init(const struct kvm_cpuid2 *cpuid, struct vm_x86_cpu *cpu);

/*
 * HOST's table with ENTRIES in place of the matching (function, index)
 * ones, or added: a new table in *OUT (free it).  bad_request naming
 * cpuid[i] for an index on a leaf without sub-leaves or too many entries.
 */
int vm_x86_cpuid_merge(const struct kvm_cpuid2 *host, const struct kvmrun_cpuid_entry *entries,
		       size_t count, struct kvm_cpuid2 **out, struct kvmrun_error *err);

/*
 * The EFER rule: SCE and NXE are the caller's; LME and LMA are the mode's
 * and must be given as it has them (in paged mode, which the host may run
 * as compatibility mode, they are ignored); any other bit is bad_request.
 */
int vm_x86_efer_check(uint64_t efer, enum kvmrun_mode mode, struct kvmrun_error *err);

/*
 * This CPU's MXCSR_MASK (FXSAVE's; 0 means 0xffbf): the kernel refuses, as
 * KVM_SET_XSAVE's EINVAL, an MXCSR with a bit outside the same mask.
 */
uint32_t vm_x86_mxcsr_mask(void);

/*
 * Writes the registers X has into the XSAVE buffer BUF of SIZE bytes and
 * sets their components in XSTATE_BV (a component not yet there is first
 * put in its initial state).  bad_request naming mxcsr when it sets a bit
 * MXCSR_MASK lacks.
 */
int vm_x86_xsave_pack(uint8_t *buf, size_t size, const struct vm_x86_xsave_layout *layout,
		      uint32_t mxcsr_mask, const struct kvmrun_xstate *x,
		      struct kvmrun_error *err);
/* Reads every register of the components in XCR0 from BUF into X. */
void vm_x86_xsave_unpack(const uint8_t *buf, size_t size, const struct vm_x86_xsave_layout *layout,
			 uint64_t xcr0, struct kvmrun_xstate *x);

/* A GDT descriptor (8 bytes, as the CPU reads it) as the cache it loads. */
void vm_x86_descriptor_decode(uint64_t raw, struct kvmrun_descriptor *d);
/* A kvm_segment as the protocol's descriptor cache, and back. */
void vm_x86_descriptor_from(const struct kvm_segment *s, struct kvmrun_descriptor *d);
void vm_x86_segment_from(const struct kvmrun_descriptor *d, uint16_t selector,
			 struct kvm_segment *s);

#endif
