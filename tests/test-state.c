/*
 * The CPU state in and out on real /dev/kvm (issue 14): ring-3 long-mode
 * guests (tests/guests/state-long.S) run SSE, AVX/FMA and x87 instructions
 * on request-given registers, and the state they return is compared bit for
 * bit with what the same instructions give run here, natively, by this
 * program; the reset values; syscall through lstar/star/sfmask; rdfsbase;
 * unreal mode; a CPUID entry hiding AVX; the refusals that need a host.
 * The parts that need no KVM are tests/test-xstate.c's.  Skips, with the
 * reason, where /dev/kvm cannot be used, and per case where this CPU or the
 * vCPU lacks what the case needs.
 */
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "vm-test.h"
#include "vm-x86.h"
#include "vm.h"

enum op {
	OP_NOTHING, OP_ADDPS, OP_PSHUFB, OP_CVTTSD2SI, OP_FMA, OP_FSQRT, OP_MXCSR,
	OP_SYSCALL, OP_RDFSBASE, OP_CPUID_AVX,
};

#define SYSCALL_ENTRY 0x200	/* state-long.S's .org */
#define F(field) (1u << KVMRUN_XF_##field)

static struct kvmrun_host *host;
static const char *guest_dir;
/* The vCPU's CPUID as a plain run gets it, and this CPU's own. */
static struct kvmrun_cpuid_entry *vcpu_cpuid;
static size_t vcpu_cpuid_count;

static void
load_guest(const char *name, struct kvmrun_spec *spec)
{
	vm_test_load_guest(guest_dir, name, spec);
}

/* A ring-3 long-mode run of state-long.S's OP with a fresh state to fill. */
static struct kvmrun_cpu_state *
spec_op(struct kvmrun_spec *spec, enum op op, uint32_t returns)
{
	kvmrun_spec_init(spec);
	spec->mode = KVMRUN_MODE_LONG;
	spec->ring = 3;
	load_guest("state-long", spec);
	spec->regs[KVMRUN_REG_RDI] = op;
	spec->regs_set = 1u << KVMRUN_REG_RDI;
	spec->returns = returns;
	spec->state = calloc(1, sizeof(*spec->state));
	return spec->state;
}

static bool
run(const struct kvmrun_spec *spec, struct kvmrun_result *result, const char *name)
{
	struct kvmrun_error err;

	kvmrun_result_init(result);
	if (vm_run_fresh(host, spec, result, &err) < 0) {
		tap_ok(0, "%s: run refused: %s: %s", name, kvmrun_errcode_names[err.code],
		       err.message);
		return false;
	}
	return true;
}

/* A run that halted and returned the xstate. */
static bool
run_halts(const struct kvmrun_spec *spec, struct kvmrun_result *result, const char *name)
{
	if (!run(spec, result, name))
		return false;
	if (!tap_ok(result->exit.reason == KVMRUN_EXIT_HLT && result->state != NULL &&
			    (result->returned & spec->returns) == spec->returns,
		    "%s: halts and returns what was asked (exit %s)", name,
		    kvmrun_exit_reason_names[result->exit.reason]))
		return false;
	return true;
}

static const struct kvmrun_cpuid_entry *
vcpu_leaf(uint32_t function, uint32_t index)
{
	for (size_t i = 0; i < vcpu_cpuid_count; i++)
		if (vcpu_cpuid[i].function == function && vcpu_cpuid[i].index == index)
			return &vcpu_cpuid[i];
	return NULL;
}

static bool
vcpu_has(uint32_t function, char reg, unsigned int bit)
{
	const struct kvmrun_cpuid_entry *e = vcpu_leaf(function, 0);
	uint32_t v;

	if (e == NULL)
		return false;
	v = reg == 'b' ? e->ebx : reg == 'c' ? e->ecx : e->edx;
	return (v >> bit) & 1;
}

static bool
native_has(unsigned int function, char reg, unsigned int bit)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid_count(function, 0, &a, &b, &c, &d))
		return false;
	return (((reg == 'b' ? b : reg == 'c' ? c : d)) >> bit) & 1;
}

/* AVX natively: the CPU has it and the OS enabled its state in XCR0. */
static bool
native_avx(void)
{
	uint32_t lo, hi;

	if (!native_has(1, 'c', 28) || !native_has(1, 'c', 27))
		return false;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (lo & 6) == 6;
}

static void
set_xmm(struct kvmrun_xstate *x, int n, const void *bytes, unsigned int length)
{
	x->vec_bytes[n] = (uint8_t)length;
	memcpy(x->vec[n], bytes, length);
}

static void
set_mxcsr(struct kvmrun_xstate *x, uint32_t mxcsr)
{
	x->fields_set |= F(MXCSR);
	x->mxcsr = mxcsr;
}

static void
test_reset_values(void)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	const struct kvmrun_xstate *x;
	bool zero = true;

	spec_op(&spec, OP_NOTHING, KVMRUN_RETURN_XSTATE | KVMRUN_RETURN_CPUID);
	if (run_halts(&spec, &result, "nothing set")) {
		x = &result.state->xstate;
		for (int n = 0; n < KVMRUN_VEC_COUNT; n++)
			for (int i = 0; i < x->vec_bytes[n]; i++)
				zero = zero && x->vec[n][i] == 0;
		for (int n = 0; n < KVMRUN_ST_COUNT; n++)
			zero = zero && x->st[n].mantissa == 0 && x->st[n].sign_exponent == 0;
		for (int n = 0; n < KVMRUN_K_COUNT; n++)
			zero = zero && x->k[n] == 0;
		tap_ok(x->fcw == 0x037f && x->fsw == 0 && x->ftw == 0xffff && x->mxcsr == 0x1f80 &&
			       x->fop == 0 && x->fip == 0 && x->fdp == 0 && zero,
		       "nothing set: the reset values (fcw 0x%04x fsw 0x%04x ftw 0x%04x "
		       "mxcsr 0x%x, every register 0)", x->fcw, x->fsw, x->ftw, x->mxcsr);
		tap_ok(x->has_xcr0 && (x->xcr0 & 3) == 3 &&
			       x->vec_bytes[0] == ((x->xcr0 & 0xe0) == 0xe0 ? 64
						   : (x->xcr0 & 4)	     ? 32
									     : 16),
		       "nothing set: xcr0 0x%llx, vectors as wide as it allows (%u bytes)",
		       (unsigned long long)x->xcr0, x->vec_bytes[0]);
		tap_ok(result.state->cpuid_count > 0, "the vCPU's CPUID comes back (%zu entries)",
		       result.state->cpuid_count);
		vcpu_cpuid = result.state->cpuid;
		vcpu_cpuid_count = result.state->cpuid_count;
		result.state->cpuid = NULL;
	}
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

/* Native: ldmxcsr MXCSR, xmm0 = A, xmm1 = B, the instruction, then xmm0 and MXCSR. */
#define NATIVE_SSE(insn, a, b, out, mxcsr)                                             \
	__asm__ volatile("ldmxcsr %[m]\n\t"                                            \
			 "movdqu %[va], %%xmm0\n\t"                                    \
			 "movdqu %[vb], %%xmm1\n\t" insn "\n\t"                        \
			 "movdqu %%xmm0, %[vo]\n\t"                                    \
			 "stmxcsr %[m]"                                                \
			 : [vo] "=m"(out), [m] "+m"(mxcsr)                             \
			 : [va] "m"(a), [vb] "m"(b)                                    \
			 : "xmm0", "xmm1")

static void
restore_mxcsr(void)
{
	uint32_t mxcsr = 0x1f80;

	__asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
}

static void
compare_sse(const char *name, enum op op, const uint8_t *a, const uint8_t *b, uint32_t mxcsr_in,
	    const uint8_t *native, uint32_t native_mxcsr)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_cpu_state *st = spec_op(&spec, op, KVMRUN_RETURN_XSTATE);

	set_xmm(&st->xstate, 0, a, 16);
	set_xmm(&st->xstate, 1, b, 16);
	set_mxcsr(&st->xstate, mxcsr_in);
	if (run_halts(&spec, &result, name)) {
		const struct kvmrun_xstate *x = &result.state->xstate;

		tap_ok(memcmp(x->vec[0], native, 16) == 0 && memcmp(x->vec[1], b, 16) == 0,
		       "%s: xmm0 as this CPU computes it, xmm1 kept", name);
		tap_ok(x->mxcsr == native_mxcsr, "%s: mxcsr 0x%x as this CPU's 0x%x", name,
		       x->mxcsr, native_mxcsr);
	}
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_addps(void)
{
	const float a[4] = { 1.5f, 2.25f, -3.0f, 3e38f }, b[4] = { 2.5f, 0.1f, 3.0f, 3e38f };
	uint8_t out[16];
	uint32_t mxcsr = 0x1f80;

	NATIVE_SSE("addps %%xmm1, %%xmm0", a, b, out, mxcsr);
	restore_mxcsr();
	compare_sse("addps (inexact and overflow)", OP_ADDPS, (const uint8_t *)a,
		    (const uint8_t *)b, 0x1f80, out, mxcsr);
	/* Round toward zero: the same sums, other bits. */
	mxcsr = 0x7f80;
	NATIVE_SSE("addps %%xmm1, %%xmm0", a, b, out, mxcsr);
	restore_mxcsr();
	compare_sse("addps rounding toward zero", OP_ADDPS, (const uint8_t *)a,
		    (const uint8_t *)b, 0x7f80, out, mxcsr);
}

static void
test_pshufb(void)
{
	const uint8_t a[16] = { 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
				0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f };
	const uint8_t b[16] = { 15, 0x80, 3, 3, 0x8f, 7, 0, 9, 1, 2, 0x7e, 5, 6, 13, 14, 4 };
	uint8_t out[16];
	uint32_t mxcsr = 0x1f80;

	if (!native_has(1, 'c', 9) || !vcpu_has(1, 'c', 9)) {
		tap_skip("pshufb", "SSSE3 missing on this CPU or in the vCPU's CPUID");
		return;
	}
	NATIVE_SSE("pshufb %%xmm1, %%xmm0", a, b, out, mxcsr);
	restore_mxcsr();
	compare_sse("pshufb", OP_PSHUFB, a, b, 0x1f80, out, mxcsr);
}

static void
test_cvttsd2si(void)
{
	const double values[2] = { 1e20, -2.75 };

	for (int i = 0; i < 2; i++) {
		struct kvmrun_spec spec;
		struct kvmrun_result result;
		struct kvmrun_cpu_state *st = spec_op(&spec, OP_CVTTSD2SI, KVMRUN_RETURN_XSTATE);
		uint8_t a[16] = { 0 };
		uint32_t mxcsr = 0x1f80;
		int64_t native;
		char name[64];

		memcpy(a, &values[i], 8);
		__asm__ volatile("ldmxcsr %[m]\n\t"
				 "movdqu %[va], %%xmm0\n\t"
				 "cvttsd2si %%xmm0, %[r]\n\t"
				 "stmxcsr %[m]"
				 : [r] "=r"(native), [m] "+m"(mxcsr)
				 : [va] "m"(a)
				 : "xmm0");
		restore_mxcsr();
		snprintf(name, sizeof(name), "cvttsd2si %g", values[i]);
		set_xmm(&st->xstate, 0, a, 16);
		set_mxcsr(&st->xstate, 0x1f80);
		if (run_halts(&spec, &result, name)) {
			tap_ok(result.regs[KVMRUN_REG_RBX] == (uint64_t)native,
			       "%s: rbx 0x%llx as this CPU's 0x%llx", name,
			       (unsigned long long)result.regs[KVMRUN_REG_RBX],
			       (unsigned long long)native);
			tap_ok(result.state->xstate.mxcsr == mxcsr, "%s: mxcsr 0x%x as this CPU's 0x%x",
			       name, result.state->xstate.mxcsr, mxcsr);
		}
		kvmrun_result_free(&result);
		kvmrun_spec_free(&spec);
	}
}

static void
test_fma(void)
{
	float a[8], b[8], c[8];
	uint8_t out[32];
	uint32_t mxcsr = 0x1f80;
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_cpu_state *st;

	if (!native_avx() || !native_has(1, 'c', 12)) {
		tap_skip("vfmadd231ps", "this CPU (or its OS) lacks AVX or FMA");
		return;
	}
	if (!vcpu_has(1, 'c', 28) || !vcpu_has(1, 'c', 12)) {
		tap_skip("vfmadd231ps", "the vCPU's CPUID lacks AVX or FMA");
		return;
	}
	for (int i = 0; i < 8; i++) {
		a[i] = 1.0f / (float)(i + 3);
		b[i] = (float)(i * 7 + 1) / 3.0f;
		c[i] = -1e-3f * (float)i;
	}
	__asm__ volatile("ldmxcsr %[m]\n\t"
			 "vmovdqu %[va], %%ymm0\n\t"
			 "vmovdqu %[vb], %%ymm1\n\t"
			 "vmovdqu %[vc], %%ymm2\n\t"
			 "vfmadd231ps %%ymm2, %%ymm1, %%ymm0\n\t"
			 "vmovdqu %%ymm0, %[vo]\n\t"
			 "stmxcsr %[m]\n\t"
			 "vzeroupper"
			 : [vo] "=m"(out), [m] "+m"(mxcsr)
			 : [va] "m"(a), [vb] "m"(b), [vc] "m"(c)
			 : "xmm0", "xmm1", "xmm2");
	restore_mxcsr();
	st = spec_op(&spec, OP_FMA, KVMRUN_RETURN_XSTATE);
	set_xmm(&st->xstate, 0, a, 32);
	set_xmm(&st->xstate, 1, b, 32);
	set_xmm(&st->xstate, 2, c, 32);
	set_mxcsr(&st->xstate, 0x1f80);
	if (run_halts(&spec, &result, "vfmadd231ps ymm")) {
		const struct kvmrun_xstate *x = &result.state->xstate;

		tap_ok(x->vec_bytes[0] >= 32 && memcmp(x->vec[0], out, 32) == 0,
		       "vfmadd231ps ymm: ymm0 as this CPU computes it");
		tap_ok(x->mxcsr == mxcsr, "vfmadd231ps ymm: mxcsr 0x%x as this CPU's 0x%x",
		       x->mxcsr, mxcsr);
	}
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

/* fsqrt of 2.0 pushed on an empty stack, natively: the state FXSAVE gives after it. */
static void
test_fsqrt(void)
{
	static const uint8_t two[10] = { 0, 0, 0, 0, 0, 0, 0, 0x80, 0x00, 0x40 };
	uint8_t area[4096] __attribute__((aligned(64)));
	struct kvmrun_xstate native;
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_cpu_state *st;
	uint16_t fcw = 0x037f;

	memset(area, 0, sizeof(area));
	__asm__ volatile("fninit\n\t"
			 "fldcw %[fcw]\n\t"
			 "fldt %[two]\n\t"
			 "fsqrt\n\t"
			 "fxsave64 %[area]\n\t"
			 "fninit"
			 : [area] "=m"(area)
			 : [two] "m"(two), [fcw] "m"(fcw)
			 : "st", "memory");
	vm_test_fxsave_unpack(area, sizeof(area), &native);

	st = spec_op(&spec, OP_FSQRT, KVMRUN_RETURN_XSTATE);
	st->xstate.fields_set = F(FCW) | F(FSW) | F(FTW);
	st->xstate.fcw = fcw;
	st->xstate.fsw = 7u << 11;	/* TOP 7: ST(0) is R7, as after one push */
	st->xstate.ftw = 0x3fff;	/* R7 valid, the rest empty */
	st->xstate.st_set = 1;
	st->xstate.st[0] = (struct kvmrun_x87_reg){ 1ull << 63, 0x4000 };
	if (run_halts(&spec, &result, "fsqrt")) {
		const struct kvmrun_xstate *x = &result.state->xstate;

		tap_ok(x->st[0].mantissa == native.st[0].mantissa &&
			       x->st[0].sign_exponent == native.st[0].sign_exponent,
		       "fsqrt: st0 0x%04x%016llx as this CPU's 0x%04x%016llx",
		       x->st[0].sign_exponent, (unsigned long long)x->st[0].mantissa,
		       native.st[0].sign_exponent, (unsigned long long)native.st[0].mantissa);
		tap_ok(x->fsw == native.fsw && x->ftw == native.ftw && x->fcw == native.fcw &&
			       x->fop == native.fop,
		       "fsqrt: fsw 0x%04x ftw 0x%04x fcw 0x%04x fop 0x%03x as this CPU's "
		       "0x%04x 0x%04x 0x%04x 0x%03x", x->fsw, x->ftw, x->fcw, x->fop,
		       native.fsw, native.ftw, native.fcw, native.fop);
	}
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_mxcsr_round_trip(void)
{
	uint32_t given = 0x3f80, loaded = 0x5fa0, native = 0;
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_cpu_state *st = spec_op(&spec, OP_MXCSR, KVMRUN_RETURN_XSTATE);
	uint8_t *region = malloc(4);

	__asm__ volatile("ldmxcsr %[l]\n\tstmxcsr %[n]" : [n] "=m"(native) : [l] "m"(loaded));
	restore_mxcsr();
	memcpy(region, &loaded, 4);
	spec.regions = calloc(1, sizeof(*spec.regions));
	spec.regions[0] = (struct kvmrun_blob){ .address = 0x804, .data = region, .length = 4 };
	spec.region_count = 1;
	spec.dumps = calloc(1, sizeof(*spec.dumps));
	spec.dumps[0] = (struct kvmrun_range){ 0x800, 4 };
	spec.dump_count = 1;
	set_mxcsr(&st->xstate, given);
	if (run_halts(&spec, &result, "stmxcsr/ldmxcsr")) {
		uint32_t stored;

		memcpy(&stored, result.dumps[0].data, 4);
		tap_ok(stored == given, "stmxcsr stores the mxcsr the request gave (0x%x)", stored);
		tap_ok(result.state->xstate.mxcsr == native,
		       "ldmxcsr: mxcsr 0x%x comes back as this CPU keeps it (0x%x)",
		       result.state->xstate.mxcsr, native);
	}
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_syscall(void)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_cpu_state *st = spec_op(&spec, OP_SYSCALL, KVMRUN_RETURN_MSRS);
	uint64_t lstar = spec.image.address + SYSCALL_ENTRY;
	const uint64_t rflags = 0x3206, sfmask = 0x204;

	st->msrs.set = 1u << KVMRUN_MSR_LSTAR | 1u << KVMRUN_MSR_STAR |
		       1u << KVMRUN_MSR_SFMASK | 1u << KVMRUN_MSR_EFER;
	st->msrs.value[KVMRUN_MSR_LSTAR] = lstar;
	st->msrs.value[KVMRUN_MSR_STAR] = 0x18ull << 32;	/* the engine's 64-bit ring-0 code */
	st->msrs.value[KVMRUN_MSR_SFMASK] = sfmask;
	st->msrs.value[KVMRUN_MSR_EFER] = 0x501;		/* LME, LMA, SCE */
	spec.regs[KVMRUN_REG_RFLAGS] = rflags;
	spec.regs_set |= 1u << KVMRUN_REG_RFLAGS;
	if (run_halts(&spec, &result, "syscall")) {
		tap_ok(result.regs[KVMRUN_REG_RIP] == lstar + 1 &&
			       result.sregs.segments[KVMRUN_SEG_CS].selector == 0x18,
		       "syscall lands at lstar at ring 0 (halted at 0x%llx, cs 0x%x)",
		       (unsigned long long)result.regs[KVMRUN_REG_RIP],
		       result.sregs.segments[KVMRUN_SEG_CS].selector);
		tap_ok(result.regs[KVMRUN_REG_RFLAGS] == (rflags & ~sfmask) &&
			       result.regs[KVMRUN_REG_R11] == rflags &&
			       result.regs[KVMRUN_REG_RCX] == spec.image.address + 0x5a,
		       "syscall: rflags 0x%llx masked by sfmask, r11 and rcx the user's",
		       (unsigned long long)result.regs[KVMRUN_REG_RFLAGS]);
		tap_ok(result.state->msrs.value[KVMRUN_MSR_LSTAR] == lstar &&
			       result.state->msrs.value[KVMRUN_MSR_SFMASK] == sfmask &&
			       (result.state->msrs.value[KVMRUN_MSR_EFER] & 0x501) == 0x501,
		       "syscall: lstar, sfmask and efer come back as given");
	}
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_rdfsbase(void)
{
	const uint64_t base = 0x00007f1234567000ull;
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_cpu_state *st;

	if (!vcpu_has(7, 'b', 0)) {
		tap_skip("rdfsbase", "the vCPU's CPUID lacks FSGSBASE");
		return;
	}
	st = spec_op(&spec, OP_RDFSBASE, KVMRUN_RETURN_MSRS);
	st->msrs.set = 1u << KVMRUN_MSR_FS_BASE;
	st->msrs.value[KVMRUN_MSR_FS_BASE] = base;
	if (run_halts(&spec, &result, "rdfsbase")) {
		tap_ok(result.regs[KVMRUN_REG_RBX] == base &&
			       result.state->msrs.value[KVMRUN_MSR_FS_BASE] == base,
		       "rdfsbase at ring 3 reads the fs_base given (0x%llx)",
		       (unsigned long long)result.regs[KVMRUN_REG_RBX]);
		tap_ok(result.sregs.cr4 & (1ull << 16), "CR4.FSGSBASE is set");
	}
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

/* Gives ST one CPUID entry: the vCPU's LEAF with BIT of its ebx or ecx (REG) clear. */
static void
hide_feature(struct kvmrun_cpu_state *st, const struct kvmrun_cpuid_entry *leaf, char reg,
	     unsigned int bit)
{
	st->cpuid = calloc(1, sizeof(*st->cpuid));
	st->cpuid[0] = *leaf;
	if (reg == 'b')
		st->cpuid[0].ebx &= ~(1u << bit);
	else
		st->cpuid[0].ecx &= ~(1u << bit);
	st->cpuid_count = 1;
}

static void
test_cpuid_hides_avx(void)
{
	const struct kvmrun_cpuid_entry *leaf1 = vcpu_leaf(1, 0);
	const uint8_t marker[16] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4 };
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_cpu_state *st;

	if (leaf1 == NULL) {
		tap_ok(0, "the vCPU's CPUID has leaf 1");
		return;
	}
	st = spec_op(&spec, OP_CPUID_AVX, KVMRUN_RETURN_XSTATE | KVMRUN_RETURN_CPUID |
						  KVMRUN_RETURN_DESCRIPTORS);
	hide_feature(st, leaf1, 'c', 28);
	set_xmm(&st->xstate, 0, marker, 16);
	if (!run(&spec, &result, "CPUID without AVX"))
		goto out;
	tap_ok(!(result.regs[KVMRUN_REG_RCX] & (1u << 28)),
	       "CPUID without AVX: the guest's cpuid says no AVX (ecx 0x%llx)",
	       (unsigned long long)result.regs[KVMRUN_REG_RCX]);
	tap_ok(result.exit.reason == KVMRUN_EXIT_EXCEPTION && result.exit.u.exception.vector == 6 &&
		       result.exit.u.exception.rip == spec.image.address + 0x6a,
	       "CPUID without AVX: vaddps raises #UD (exit %s)",
	       kvmrun_exit_reason_names[result.exit.reason]);
	if (result.state == NULL) {
		tap_ok(0, "CPUID without AVX: the state comes back");
		goto out;
	}
	tap_ok(result.state->xstate.has_xcr0 && !(result.state->xstate.xcr0 & 4) &&
		       result.state->xstate.vec_bytes[0] == 16 &&
		       memcmp(result.state->xstate.vec[0], marker, 16) == 0,
	       "CPUID without AVX: XCR0 0x%llx without AVX, xmm0 as given at the fault",
	       (unsigned long long)result.state->xstate.xcr0);
	for (size_t i = 0; i < result.state->cpuid_count; i++)
		if (result.state->cpuid[i].function == 1)
			tap_ok(!(result.state->cpuid[i].ecx & (1u << 28)),
			       "CPUID without AVX: the vCPU's table comes back without it");
	tap_ok((result.state->segments[KVMRUN_SEG_CS].attributes & 0x2060) == 0x2060 &&
		       result.sregs.segments[KVMRUN_SEG_CS].selector == 0x33,
	       "at the fault, cs's cache is the ring-3 64-bit one (attributes 0x%x)",
	       result.state->segments[KVMRUN_SEG_CS].attributes);
out:
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_unreal(void)
{
	const uint32_t magic = 0x5eca1f00;
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	uint8_t *data = malloc(4);

	kvmrun_spec_init(&spec);
	load_guest("unreal-real", &spec);
	spec.memory_size = 2u << 20;
	memcpy(data, &magic, 4);
	spec.regions = calloc(1, sizeof(*spec.regions));
	spec.regions[0] = (struct kvmrun_blob){ .address = 0x120000, .data = data, .length = 4 };
	spec.region_count = 1;
	spec.returns = KVMRUN_RETURN_DESCRIPTORS;
	spec.state = calloc(1, sizeof(*spec.state));
	spec.state->segments_set = 1u << KVMRUN_SEG_DS;
	spec.state->segments[KVMRUN_SEG_DS] = (struct kvmrun_descriptor){
		.base = 0x100000, .limit = 0xffffffff, .attributes = 0x8093,
	};
	if (run_halts(&spec, &result, "unreal mode")) {
		tap_ok((uint32_t)result.regs[KVMRUN_REG_RAX] == magic,
		       "unreal mode: ds:0x20000 reads 0x120000 (eax 0x%x)",
		       (uint32_t)result.regs[KVMRUN_REG_RAX]);
		tap_ok(result.state->segments[KVMRUN_SEG_DS].base == 0x100000 &&
			       result.state->segments[KVMRUN_SEG_DS].limit == 0xffffffff,
		       "unreal mode: ds's cache comes back as given");
	}
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
expect_refused(struct kvmrun_spec *spec, enum kvmrun_errcode code, const char *words,
	       const char *name)
{
	struct kvmrun_result result;
	struct kvmrun_error err = { .code = KVMRUN_OK };
	int rc;

	kvmrun_result_init(&result);
	rc = vm_run_fresh(host, spec, &result, &err);
	tap_ok(rc < 0 && err.code == code && strstr(err.message, words) != NULL,
	       "%s: refused as %s: %s", name, kvmrun_errcode_names[code],
	       rc < 0 ? err.message : "(ran)");
	kvmrun_result_free(&result);
	kvmrun_spec_free(spec);
}

static void
test_refusals(void)
{
	const struct kvmrun_cpuid_entry *leaf1 = vcpu_leaf(1, 0), *leaf7 = vcpu_leaf(7, 0);
	const uint8_t v[64] = { 1 };
	struct kvmrun_spec spec;
	struct kvmrun_cpu_state *st;

	if (leaf1 != NULL) {
		st = spec_op(&spec, OP_NOTHING, 0);
		hide_feature(st, leaf1, 'c', 28);
		set_xmm(&st->xstate, 3, v, 32);
		expect_refused(&spec, KVMRUN_ERR_UNSUPPORTED, "AVX", "ymm3 with AVX hidden");
	}
	if (leaf7 != NULL) {
		st = spec_op(&spec, OP_NOTHING, 0);
		hide_feature(st, leaf7, 'b', 16);
		set_xmm(&st->xstate, 0, v, 64);
		expect_refused(&spec, KVMRUN_ERR_UNSUPPORTED, "AVX-512", "zmm0 with AVX512F hidden");
	}
	st = spec_op(&spec, OP_NOTHING, 0);
	set_mxcsr(&st->xstate, 0x11f80);
	expect_refused(&spec, KVMRUN_ERR_BAD_REQUEST, "xstate.mxcsr", "mxcsr with bit 16");
	st = spec_op(&spec, OP_NOTHING, 0);
	st->msrs.set = 1u << KVMRUN_MSR_EFER;
	st->msrs.value[KVMRUN_MSR_EFER] = 0x1;
	expect_refused(&spec, KVMRUN_ERR_BAD_REQUEST, "msrs.efer", "efer without long mode's LMA");
}

int
main(void)
{
	guest_dir = vm_test_guest_dir();
	host = vm_test_open_host_or_skip();
	test_reset_values();
	test_addps();
	test_pshufb();
	test_cvttsd2si();
	test_fma();
	test_fsqrt();
	test_mxcsr_round_trip();
	test_syscall();
	test_rdfsbase();
	test_cpuid_hides_avx();
	test_unreal();
	test_refusals();
	free(vcpu_cpuid);
	vm_host_close(host);
	return tap_done();
}
