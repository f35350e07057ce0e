/*
 * The engine's CPU-state parts that need no KVM: the x87 tag word, the
 * XSAVE buffer packed and unpacked (checked against this CPU's own
 * FXSAVE/FXRSTOR and FNSTENV), XCR0 from a CPUID table, the CPUID merge,
 * the EFER rule, descriptor caches and vm_x86_state_check's refusals, with
 * and without a (made-up) host.  Runs everywhere; the runs themselves are
 * tests/test-state.c's.
 */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "vm-test.h"
#include "vm-x86.h"
#include "vm.h"

#define XSAVE_SIZE 4096
#define F(field) (1u << KVMRUN_XF_##field)

/* The standard-format offsets every AVX-512 CPU reports in leaf 0xD. */
static const struct {
	uint32_t c, size, offset;
} std_layout[] = { { 2, 256, 576 }, { 5, 64, 1088 }, { 6, 512, 1152 }, { 7, 1024, 1664 } };

struct table {
	struct kvm_cpuid2 head;
	struct kvm_cpuid_entry2 entries[16];
};

static void
table_add(struct table *t, uint32_t function, uint32_t index, uint32_t flags, uint32_t eax,
	  uint32_t ebx, uint32_t ecx, uint32_t edx)
{
	t->entries[t->head.nent++] = (struct kvm_cpuid_entry2){
		.function = function, .index = index, .flags = flags,
		.eax = eax, .ebx = ebx, .ecx = ecx, .edx = edx,
	};
}

/*
 * A host with XSAVE, AVX, AVX-512F, FSGSBASE and NX, leaf 0xD offering
 * x87..Hi16_ZMM and PKRU (bit 9, which the engine leaves out); LEAF1_ECX
 * and LEAF7_EBX replace leaf 1's ECX and leaf 7's EBX.
 */
static void
table_host(struct table *t, uint32_t leaf1_ecx, uint32_t leaf7_ebx)
{
	memset(t, 0, sizeof(*t));
	table_add(t, 0, 0, 0, 0xd, 0, 0, 0);
	table_add(t, 1, 0, 0, 0, 0, leaf1_ecx, 0);
	table_add(t, 7, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 1, leaf7_ebx, 0, 0);
	table_add(t, 7, 1, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 0, 0, 0, 0);
	table_add(t, 0xd, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 0x2e7, 0, 0, 0);
	for (size_t i = 0; i < sizeof(std_layout) / sizeof(std_layout[0]); i++)
		table_add(t, 0xd, std_layout[i].c, KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
			  std_layout[i].size, std_layout[i].offset, 0, 0);
	table_add(t, 0x80000001, 0, 0, 0, 0, 0, 1u << 20);
}

#define ECX_XSAVE_AVX ((1u << 26) | (1u << 28))
#define EBX_FSGSBASE_AVX512F ((1u << 0) | (1u << 16))

static void
test_tag_word(void)
{
	uint8_t st[8 * 16];
	uint64_t one = 1ull << 63;

	tap_ok(vm_x86_ftw_abridge(0xffff) == 0x00, "tag word: all empty abridges to 0x00");
	tap_ok(vm_x86_ftw_abridge(0x0000) == 0xff, "tag word: all valid abridges to 0xff");
	tap_ok(vm_x86_ftw_abridge(0x3fff) == 0x80 && vm_x86_ftw_abridge(0xbfff) == 0x80 &&
		       vm_x86_ftw_abridge(0x7ffc) == 0x81,
	       "tag word: valid, zero and special registers all abridge to 1");

	memset(st, 0, sizeof(st));
	tap_ok(vm_x86_ftw_full(0x00, 0, st) == 0xffff, "full tag: abridged 0 is all empty");
	/* TOP 6: ST(0) is R6 (1.0), ST(1) is R7 (0.0). */
	memcpy(st, &one, 8);
	st[8] = 0xff;
	st[9] = 0x3f;
	tap_ok(vm_x86_ftw_full(0xc0, 6u << 11, st) == 0x4fff,
	       "full tag: R6 = 1.0 valid, R7 = 0.0 zero, the rest empty (got 0x%04x)",
	       vm_x86_ftw_full(0xc0, 6u << 11, st));
	/* Infinity, a denormal and an unnormal are special. */
	memset(st, 0, sizeof(st));
	memcpy(st, &one, 8);
	st[8] = 0xff;
	st[9] = 0x7f;
	st[16] = 1;
	st[32 + 7] = 0x40;	/* mantissa without the integer bit */
	st[32 + 8] = 0x01;
	tap_ok(vm_x86_ftw_full(0x07, 0, st) == 0xffea,
	       "full tag: infinity, a denormal and an unnormal are special (got 0x%04x)",
	       vm_x86_ftw_full(0x07, 0, st));
}

/*
 * This CPU's own answer: FNSTENV's full tag word against FXSAVE's abridged
 * one as vm_x86_xsave_unpack rebuilds it, for a stack holding a valid
 * value, a zero, infinity and a denormal.
 */
static void
test_tag_word_native(void)
{
	static const uint8_t denormal[10] = { 1 }, infinity[10] = { 0, 0, 0, 0, 0, 0, 0, 0x80,
								     0xff, 0x7f };
	uint8_t area[XSAVE_SIZE] __attribute__((aligned(64)));
	uint16_t env[14];	/* 32-bit FNSTENV: fcw, fsw, ftw at words 0, 2, 4 */
	struct kvmrun_xstate x;

	memset(area, 0, sizeof(area));
	__asm__ volatile("fninit\n\t"
			 "fldt %[den]\n\t"
			 "fldt %[inf]\n\t"
			 "fldz\n\t"
			 "fld1\n\t"
			 "fxsave64 %[area]\n\t"
			 "fnstenv %[env]\n\t"
			 "fninit"
			 : [area] "=m"(area), [env] "=m"(env)
			 : [den] "m"(denormal), [inf] "m"(infinity)
			 : "st", "st(1)", "st(2)", "st(3)", "memory");
	vm_test_fxsave_unpack(area, sizeof(area), &x);
	tap_ok(x.ftw == env[4] && x.fsw == env[2] && x.fcw == env[0],
	       "x87 from this CPU's FXSAVE: tag word 0x%04x as FNSTENV's 0x%04x, fsw 0x%04x "
	       "as 0x%04x", x.ftw, env[4], x.fsw, env[2]);
	tap_ok(x.st[0].mantissa == 1ull << 63 && x.st[0].sign_exponent == 0x3fff &&
		       x.st[1].mantissa == 0 && x.st[3].mantissa == 1 &&
		       x.st[3].sign_exponent == 0,
	       "x87 from this CPU's FXSAVE: st0 = 1.0, st1 = 0, st3 the denormal (stack order)");
}

static void
layout_std(struct vm_x86_xsave_layout *layout)
{
	struct table t;

	table_host(&t, ECX_XSAVE_AVX, EBX_FSGSBASE_AVX512F);
	vm_x86_xsave_layout_init(&t.head, layout);
}

static void
test_layout_xcr0(void)
{
	struct vm_x86_xsave_layout layout;
	struct table t;
	bool ok = true;

	layout_std(&layout);
	for (size_t i = 0; i < sizeof(std_layout) / sizeof(std_layout[0]); i++)
		ok = ok && layout.offset[std_layout[i].c] == std_layout[i].offset &&
		     layout.size[std_layout[i].c] == std_layout[i].size;
	tap_ok(ok && layout.size[3] == 0, "XSAVE layout from leaf 0xD sub-leaves 2, 5, 6, 7");

	table_host(&t, ECX_XSAVE_AVX, EBX_FSGSBASE_AVX512F);
	tap_ok(vm_x86_cpuid_xcr0(&t.head) == 0xe7,
	       "XCR0: x87, SSE, AVX and AVX-512, not PKRU (got 0x%llx)",
	       (unsigned long long)vm_x86_cpuid_xcr0(&t.head));
	table_host(&t, 1u << 26, EBX_FSGSBASE_AVX512F);
	tap_ok(vm_x86_cpuid_xcr0(&t.head) == 0x3,
	       "XCR0: without leaf 1 AVX, neither AVX nor AVX-512 (got 0x%llx)",
	       (unsigned long long)vm_x86_cpuid_xcr0(&t.head));
	table_host(&t, ECX_XSAVE_AVX, 1u << 0);
	tap_ok(vm_x86_cpuid_xcr0(&t.head) == 0x7,
	       "XCR0: without leaf 7 AVX512F, no AVX-512 (got 0x%llx)",
	       (unsigned long long)vm_x86_cpuid_xcr0(&t.head));
	table_host(&t, 1u << 28, EBX_FSGSBASE_AVX512F);
	tap_ok(vm_x86_cpuid_xcr0(&t.head) == 0, "XCR0: none without leaf 1 XSAVE");
	table_host(&t, ECX_XSAVE_AVX, EBX_FSGSBASE_AVX512F);
	t.entries[4].eax = 0x67;	/* opmask and ZMM_Hi256 without Hi16_ZMM */
	tap_ok(vm_x86_cpuid_xcr0(&t.head) == 0x7,
	       "XCR0: AVX-512 only whole (got 0x%llx)",
	       (unsigned long long)vm_x86_cpuid_xcr0(&t.head));
}

static void
test_cpuid_merge(void)
{
	struct kvmrun_cpuid_entry e[3] = {
		{ .function = 1, .index = 0, .ecx = 1u << 26 },
		{ .function = 7, .index = 2, .edx = 5 },
		{ .function = 0x40000100, .index = 0, .eax = 9 },
	};
	struct kvmrun_error err = { .code = KVMRUN_OK };
	struct kvm_cpuid2 *out;
	struct table t;
	struct kvmrun_cpuid_entry *many;

	table_host(&t, ECX_XSAVE_AVX, EBX_FSGSBASE_AVX512F);
	if (!tap_ok(vm_x86_cpuid_merge(&t.head, e, 3, &out, &err) == 0, "CPUID merge accepted")) {
		tap_diag("%s", err.message);
		return;
	}
	tap_ok(out->nent == t.head.nent + 2 && out->entries[1].function == 1 &&
		       out->entries[1].ecx == 1u << 26 && out->entries[1].eax == 0,
	       "CPUID merge: leaf 1 replaced in place, whole");
	tap_ok(out->entries[t.head.nent].function == 7 && out->entries[t.head.nent].index == 2 &&
		       out->entries[t.head.nent].flags == KVM_CPUID_FLAG_SIGNIFCANT_INDEX &&
		       out->entries[t.head.nent + 1].function == 0x40000100 &&
		       out->entries[t.head.nent + 1].flags == 0,
	       "CPUID merge: a new sub-leaf of leaf 7 is indexed, a new leaf is not");
	tap_ok(vm_x86_cpuid_xcr0(out) == 0x3, "CPUID merge: XCR0 follows leaf 1 without AVX");
	free(out);

	e[0].index = 3;
	tap_ok(vm_x86_cpuid_merge(&t.head, e, 1, &out, &err) < 0 &&
		       err.code == KVMRUN_ERR_BAD_REQUEST && strstr(err.message, "cpuid[0]") &&
		       strstr(err.message, "no sub-leaves") && out == NULL,
	       "CPUID merge: an index on leaf 1 is refused: %s", err.message);
	many = calloc(250, sizeof(*many));
	for (uint32_t i = 0; i < 250; i++)
		many[i].function = 0x40000000 + i;
	tap_ok(vm_x86_cpuid_merge(&t.head, many, 250, &out, &err) < 0 &&
		       err.code == KVMRUN_ERR_BAD_REQUEST && strstr(err.message, "256"),
	       "CPUID merge: more than 256 entries in all is refused: %s", err.message);
	free(many);
}

static void
test_efer(void)
{
	struct kvmrun_error err;

	tap_ok(vm_x86_efer_check(0xd01, KVMRUN_MODE_LONG, &err) == 0,
	       "efer: SCE, NXE with long mode's LME and LMA");
	tap_ok(vm_x86_efer_check(0x1, KVMRUN_MODE_LONG, &err) < 0 &&
		       strstr(err.message, "msrs.efer") && strstr(err.message, "must be set"),
	       "efer: long mode without LME/LMA refused: %s", err.message);
	tap_ok(vm_x86_efer_check(0x500, KVMRUN_MODE_PROTECTED, &err) < 0 &&
		       strstr(err.message, "must be clear"),
	       "efer: LME/LMA in protected mode refused: %s", err.message);
	tap_ok(vm_x86_efer_check(0x801, KVMRUN_MODE_REAL, &err) == 0,
	       "efer: SCE and NXE in real mode");
	tap_ok(vm_x86_efer_check(0x500, KVMRUN_MODE_PAGED, &err) == 0 &&
		       vm_x86_efer_check(0x1, KVMRUN_MODE_PAGED, &err) == 0,
	       "efer: paged mode's LME/LMA are the host's paging, either way");
	tap_ok(vm_x86_efer_check(0xd00 | (1u << 12), KVMRUN_MODE_LONG, &err) < 0 &&
		       err.code == KVMRUN_ERR_BAD_REQUEST && strstr(err.message, "other than"),
	       "efer: SVME (bit 12) refused: %s", err.message);
}

/* A buffer as KVM gives it for a fresh vCPU: everything initial, MXCSR 0x1f80. */
static void
buffer_reset(uint8_t *buf)
{
	uint32_t mxcsr = 0x1f80;

	memset(buf, 0, XSAVE_SIZE);
	memcpy(buf + VM_X86_XSAVE_MXCSR, &mxcsr, 4);
}

static void
fill(uint8_t *v, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		v[i] = (uint8_t)(seed + i * 7);
}

static void
test_xsave_pack(void)
{
	static uint8_t buf[XSAVE_SIZE];
	struct vm_x86_xsave_layout layout;
	struct kvmrun_xstate in, out;
	struct kvmrun_error err = { .code = KVMRUN_OK };
	uint64_t bv;
	int rc;

	layout_std(&layout);
	buffer_reset(buf);
	vm_x86_xsave_unpack(buf, sizeof(buf), &layout, 0xe7, &out);
	tap_ok(out.fcw == 0x37f && out.fsw == 0 && out.ftw == 0xffff && out.mxcsr == 0x1f80 &&
		       out.fop == 0 && out.fip == 0 && out.fdp == 0 && out.vec_bytes[0] == 64 &&
		       out.vec_bytes[31] == 64 && out.k_set == 0xff && out.st_set == 0xff,
	       "unpack of a fresh vCPU: the reset values, every register of XCR0 0xe7");
	vm_x86_xsave_unpack(buf, sizeof(buf), &layout, 0x7, &out);
	tap_ok(out.vec_bytes[0] == 32 && out.vec_bytes[16] == 0 && out.k_set == 0,
	       "unpack with XCR0 0x7: ymm0..15 only, no k");
	vm_x86_xsave_unpack(buf, sizeof(buf), &layout, 0, &out);
	tap_ok(out.vec_bytes[15] == 16 && out.vec_bytes[16] == 0,
	       "unpack without XSAVE: xmm0..15");

	memset(&in, 0, sizeof(in));
	in.vec_bytes[3] = 16;
	fill(in.vec[3], 16, 3);
	in.vec_bytes[4] = 32;
	fill(in.vec[4], 32, 4);
	in.vec_bytes[5] = 64;
	fill(in.vec[5], 64, 5);
	in.vec_bytes[20] = 64;
	fill(in.vec[20], 64, 20);
	in.k_set = 1u << 2;
	in.k[2] = 0x1122334455667788ull;
	in.st_set = 1u << 1;
	in.st[1] = (struct kvmrun_x87_reg){ 1ull << 63, 0x4000 };
	in.fields_set = F(MXCSR) | F(FSW) | F(FOP) | F(FIP) | F(FDP);
	in.mxcsr = 0x7f80;
	in.fsw = 6u << 11;	/* TOP 6: ST(1) is R7 */
	in.fop = 0x1fa;
	in.fip = 0x401000;
	in.fdp = 0x602000;
	rc = vm_x86_xsave_pack(buf, sizeof(buf), &layout, 0xffff, &in, &err);
	memcpy(&bv, buf + VM_X86_XSAVE_XSTATE_BV, 8);
	tap_ok(rc == 0 && bv == 0xe7, "pack sets XSTATE_BV for x87, SSE, AVX, opmask, ZMM (0x%llx)",
	       (unsigned long long)bv);
	tap_ok(memcmp(buf + 160 + 3 * 16, in.vec[3], 16) == 0 &&
		       memcmp(buf + 576 + 4 * 16, in.vec[4] + 16, 16) == 0 &&
		       memcmp(buf + 1152 + 5 * 32, in.vec[5] + 32, 32) == 0 &&
		       memcmp(buf + 1664 + 4 * 64, in.vec[20], 64) == 0 &&
		       memcmp(buf + 1088 + 16, &in.k[2], 8) == 0,
	       "pack puts xmm3, ymm4's high half, zmm5's top, zmm20 and k2 at their offsets");
	tap_ok(buf[VM_X86_XSAVE_FTW] == 0x80 && buf[VM_X86_XSAVE_FCW] == 0x7f &&
		       buf[VM_X86_XSAVE_FCW + 1] == 0x03 && buf[32 + 16 + 9] == 0x40,
	       "pack: st1 given without ftw is R7 in use; fcw initial (0x037f)");
	vm_x86_xsave_unpack(buf, sizeof(buf), &layout, 0xe7, &out);
	tap_ok(memcmp(out.vec[3], in.vec[3], 16) == 0 && memcmp(out.vec[4], in.vec[4], 32) == 0 &&
		       memcmp(out.vec[5], in.vec[5], 64) == 0 &&
		       memcmp(out.vec[20], in.vec[20], 64) == 0 && out.k[2] == in.k[2] &&
		       out.mxcsr == 0x7f80 && out.fop == 0x1fa && out.fip == 0x401000 &&
		       out.fdp == 0x602000 && out.st[1].sign_exponent == 0x4000 &&
		       out.ftw == 0x3fff,
	       "unpack gives back what pack put, ftw 0x3fff (R7 valid): got 0x%04x", out.ftw);

	in.fields_set = F(FTW);
	in.ftw = 0xffff;
	in.st_set = 0;
	in.vec_bytes[3] = in.vec_bytes[4] = in.vec_bytes[5] = in.vec_bytes[20] = 0;
	in.k_set = 0;
	vm_x86_xsave_pack(buf, sizeof(buf), &layout, 0xffff, &in, &err);
	tap_ok(buf[VM_X86_XSAVE_FTW] == 0, "pack: ftw 0xffff empties every register");

	buffer_reset(buf);
	memset(&in, 0, sizeof(in));
	in.fields_set = F(MXCSR);
	in.mxcsr = 0x1fc0;	/* DAZ, outside the default mask 0xffbf */
	rc = vm_x86_xsave_pack(buf, sizeof(buf), &layout, 0, &in, &err);
	tap_ok(rc < 0 && err.code == KVMRUN_ERR_BAD_REQUEST && strstr(err.message, "xstate.mxcsr") &&
		       strstr(err.message, "0xffbf"),
	       "pack: an MXCSR bit outside MXCSR_MASK (0 means 0xffbf) is refused: %s",
	       err.message);
}

/* Packs as the engine does, then loads the legacy region into this CPU with FXRSTOR. */
static void
test_xsave_pack_native(void)
{
	static uint8_t buf[XSAVE_SIZE] __attribute__((aligned(64)));
	uint8_t area[512] __attribute__((aligned(16)));
	struct vm_x86_xsave_layout layout;
	struct kvmrun_xstate in;
	struct kvmrun_error err;
	uint16_t env[14];
	uint8_t xmm7[16], want[16];
	uint32_t mxcsr, mask = vm_x86_mxcsr_mask();

	tap_ok(mask == 0 || (mask & 0xffbf) == 0xffbf,
	       "this CPU's MXCSR_MASK 0x%x has every bit but DAZ's at least", mask);
	layout_std(&layout);
	buffer_reset(buf);
	memset(&in, 0, sizeof(in));
	in.st_set = 1u << 0 | 1u << 1;
	in.st[0] = (struct kvmrun_x87_reg){ 1ull << 63, 0x3fff };	/* 1.0 */
	in.st[1] = (struct kvmrun_x87_reg){ 0, 0 };			/* 0.0 */
	in.fields_set = F(FSW) | F(FCW) | F(MXCSR);
	in.fsw = 6u << 11;
	in.fcw = 0x27f;
	in.mxcsr = 0x9fa0;	/* FZ, every exception masked, PE */
	in.vec_bytes[7] = 16;
	fill(in.vec[7], 16, 77);
	memcpy(want, in.vec[7], 16);
	if (vm_x86_xsave_pack(buf, sizeof(buf), &layout, mask, &in, &err) < 0) {
		tap_ok(0, "pack for FXRSTOR: %s", err.message);
		return;
	}
	memcpy(area, buf, sizeof(area));
	__asm__ volatile("fxsave64 %[save]\n\t"
			 "fxrstor64 %[area]\n\t"
			 "fnstenv %[env]\n\t"
			 "stmxcsr %[mxcsr]\n\t"
			 "movdqu %%xmm7, %[xmm7]\n\t"
			 "fxrstor64 %[save]"
			 : [env] "=m"(env), [mxcsr] "=m"(mxcsr), [xmm7] "=m"(xmm7),
			   [save] "=m"(*(uint8_t(*)[512])buf)
			 : [area] "m"(area)
			 : "memory");
	tap_ok(env[4] == 0x4fff && env[0] == 0x27f && (env[2] & 0x3800) == 0x3000,
	       "this CPU loads the packed x87 state: tag word 0x%04x (want 0x4fff: R6 valid, "
	       "R7 zero), fcw 0x%04x, TOP %u", env[4], env[0], (env[2] >> 11) & 7);
	tap_ok(mxcsr == 0x9fa0 && memcmp(xmm7, want, 16) == 0,
	       "this CPU loads the packed SSE state: mxcsr 0x%x, xmm7", mxcsr);
}

static void
test_descriptors(void)
{
	struct kvmrun_descriptor d = { .base = 0x100000, .limit = 0xffffffff, .attributes = 0x8093 };
	struct kvmrun_descriptor back;
	struct kvm_segment s;

	vm_x86_segment_from(&d, 0x10, &s);
	tap_ok(s.base == 0x100000 && s.limit == 0xffffffff && s.selector == 0x10 && s.type == 3 &&
		       s.s == 1 && s.dpl == 0 && s.present == 1 && s.g == 1 && s.db == 0 &&
		       s.l == 0 && !s.unusable,
	       "descriptor cache 0x8093 into kvm_segment");
	vm_x86_descriptor_from(&s, &back);
	tap_ok(back.attributes == 0x8093 && back.base == d.base && back.limit == d.limit,
	       "and back");
	s.unusable = 1;
	vm_x86_descriptor_from(&s, &back);
	tap_ok(back.attributes == 0x8013, "an unusable segment reads as not present (P clear)");
	/* The engine's 0x33: base 0, limit 0xfffff pages, access 0xfa, flags L and G. */
	vm_x86_descriptor_decode(0x00affa000000ffffull, &back);
	tap_ok(back.base == 0 && back.limit == 0xffffffff && back.attributes == 0xa0fa,
	       "a GDT descriptor decodes to its cache (attributes 0x%x)", back.attributes);
	vm_x86_descriptor_decode(0x12cf92345678ffffull, &back);
	tap_ok(back.base == 0x12345678 && back.attributes == 0xc092,
	       "a GDT descriptor's base comes from its three parts (0x%llx)",
	       (unsigned long long)back.base);
	d.attributes = 0x70fb;	/* present, DPL 3, code, AVL, L, D/B, no G */
	d.limit = 0xfffff;
	vm_x86_segment_from(&d, 0x33, &s);
	vm_x86_descriptor_from(&s, &back);
	tap_ok(back.attributes == 0x70fb && s.l == 1 && s.db == 1 && s.avl == 1 && s.dpl == 3 &&
		       s.g == 0 && s.type == 0xb,
	       "attributes: DPL in bits 5-6, AVL, L and D/B in bits 12-14");
}

static struct kvmrun_cpu_state state;

static void
spec_with_state(struct kvmrun_spec *spec, enum kvmrun_mode mode)
{
	static uint8_t hlt = 0xf4;

	kvmrun_spec_init(spec);
	spec->mode = mode;
	spec->image.data = &hlt;
	spec->image.length = 1;
	memset(&state, 0, sizeof(state));
	spec->state = &state;
}

static void
expect(const struct vm_x86_host *x86, const struct kvmrun_spec *spec, enum kvmrun_errcode code,
       const char *words, const char *what)
{
	struct kvmrun_error err = { .code = KVMRUN_OK };
	int rc = vm_x86_state_check(x86, spec, &err);

	vm_test_expect(rc, &err, code, words, what);
}

static void
test_check_any_host(void)
{
	struct kvmrun_spec spec;

	spec_with_state(&spec, KVMRUN_MODE_PROTECTED);
	state.segments_set = 1u << KVMRUN_SEG_DS;
	state.segments[KVMRUN_SEG_DS] = (struct kvmrun_descriptor){ 0, 0xffff, 0x93 };
	expect(NULL, &spec, KVMRUN_ERR_BAD_REQUEST, "segments.ds", "a ds cache in protected mode");
	spec.mode = KVMRUN_MODE_REAL;
	expect(NULL, &spec, KVMRUN_OK, "", "a ds cache in real mode");
	state.segments[KVMRUN_SEG_DS].limit = 0xffffffff;
	expect(NULL, &spec, KVMRUN_ERR_BAD_REQUEST, "segments.ds.limit", "limit past 1 MiB without G");
	state.segments[KVMRUN_SEG_DS].attributes = 0x8093;
	state.segments[KVMRUN_SEG_DS].limit = 0xfffff000;
	expect(NULL, &spec, KVMRUN_ERR_BAD_REQUEST, "end in 0xfff", "G with a limit not ending in 0xfff");
	state.segments[KVMRUN_SEG_DS].limit = 0xffffffff;
	expect(NULL, &spec, KVMRUN_OK, "", "unreal mode's ds (base 0, 4 GiB, G)");
	state.segments[KVMRUN_SEG_DS].attributes = 0x8f93;
	expect(NULL, &spec, KVMRUN_ERR_BAD_REQUEST, "bits 8-11", "attributes with limit bits");

	spec_with_state(&spec, KVMRUN_MODE_LONG);
	state.xstate.fields_set = F(MXCSR);
	state.xstate.mxcsr = 0x11f80;
	expect(NULL, &spec, KVMRUN_ERR_BAD_REQUEST, "xstate.mxcsr", "mxcsr bit 16");
	state.xstate.mxcsr = 0x1f80;
	state.xstate.vec_bytes[2] = 8;
	expect(NULL, &spec, KVMRUN_ERR_BAD_REQUEST, "8 bytes", "a vector of 8 bytes");

	spec_with_state(&spec, KVMRUN_MODE_LONG);
	state.msrs.set = 1u << KVMRUN_MSR_LSTAR;
	state.msrs.value[KVMRUN_MSR_LSTAR] = 0x0000800000000000ull;
	expect(NULL, &spec, KVMRUN_ERR_BAD_REQUEST, "msrs.lstar", "a non-canonical lstar");
	state.msrs.set = 1u << KVMRUN_MSR_PAT;
	state.msrs.value[KVMRUN_MSR_PAT] = 0x0007040600070402ull;
	expect(NULL, &spec, KVMRUN_ERR_BAD_REQUEST, "msrs.pat", "a PAT with type 2");
	state.msrs.value[KVMRUN_MSR_PAT] = 0x0007040600070406ull;
	expect(NULL, &spec, KVMRUN_OK, "", "the reset PAT");
	state.msrs.set = 1u << KVMRUN_MSR_EFER;
	state.msrs.value[KVMRUN_MSR_EFER] = 0x1;
	expect(NULL, &spec, KVMRUN_ERR_BAD_REQUEST, "msrs.efer", "efer without LME in long mode");
	state.msrs.set = 1u << KVMRUN_MSR_TSC_AUX;
	state.msrs.value[KVMRUN_MSR_TSC_AUX] = 1ull << 32;
	expect(NULL, &spec, KVMRUN_ERR_BAD_REQUEST, "msrs.tsc_aux", "tsc_aux past 32 bits");
	spec.mode = KVMRUN_MODE_PROTECTED;
	state.msrs.set = 1u << KVMRUN_MSR_FS_BASE;
	state.msrs.value[KVMRUN_MSR_FS_BASE] = 0x1000;
	expect(NULL, &spec, KVMRUN_ERR_BAD_REQUEST, "only in long mode", "fs_base in protected mode");
	spec.mode = KVMRUN_MODE_LONG;
	expect(NULL, &spec, KVMRUN_OK, "", "fs_base in long mode");
	spec.returns = 1u << 7;
	expect(NULL, &spec, KVMRUN_ERR_BAD_REQUEST, "return", "an unknown part to return");
}

/* A host as vm_x86_state_host_init would leave it for TABLE, with MSRS. */
static void
host_for(struct vm_x86_host *x86, const struct kvm_cpuid2 *table, uint32_t msrs)
{
	memset(x86, 0, sizeof(*x86));
	x86->cpuid = table;
	x86->has_xcrs = true;
	x86->state.has_xsave = true;
	x86->state.xsave_size = XSAVE_SIZE;
	x86->state.msrs = msrs;
	vm_x86_xsave_layout_init(table, &x86->state.layout);
	vm_x86_cpu_init(table, &x86->state.cpu);
}

static void
test_check_host(void)
{
	struct kvmrun_cpuid_entry no_avx = { .function = 1, .ecx = 1u << 26 };
	uint32_t all_msrs = (1u << KVMRUN_MSR_COUNT) - 1;
	struct vm_x86_host avx512, avx, plain;
	struct table t512, tavx, tplain;
	struct kvmrun_spec spec;

	table_host(&t512, ECX_XSAVE_AVX, EBX_FSGSBASE_AVX512F);
	table_host(&tavx, ECX_XSAVE_AVX, 0);
	table_host(&tplain, 1u << 26, 0);
	tplain.entries[tplain.head.nent - 1].edx = 0;	/* no NX */
	host_for(&avx512, &t512.head, all_msrs);
	host_for(&avx, &tavx.head, all_msrs & ~(1u << KVMRUN_MSR_TSC_AUX));
	host_for(&plain, &tplain.head, all_msrs);

	spec_with_state(&spec, KVMRUN_MODE_LONG);
	state.xstate.vec_bytes[3] = 32;
	expect(&avx512, &spec, KVMRUN_OK, "", "ymm3 on an AVX host");
	expect(&plain, &spec, KVMRUN_ERR_UNSUPPORTED, "xstate.ymm3: needs AVX", "ymm3 without AVX");
	state.cpuid = &no_avx;
	state.cpuid_count = 1;
	expect(&avx512, &spec, KVMRUN_ERR_UNSUPPORTED, "needs AVX",
	       "ymm3 with a CPUID entry clearing AVX");
	state.cpuid_count = 0;
	state.xstate.vec_bytes[3] = 64;
	expect(&avx512, &spec, KVMRUN_OK, "", "zmm3 on an AVX-512 host");
	expect(&avx, &spec, KVMRUN_ERR_UNSUPPORTED, "xstate.zmm3: needs AVX-512", "zmm3 on AVX only");
	state.xstate.vec_bytes[3] = 0;
	state.xstate.vec_bytes[17] = 16;
	expect(&avx, &spec, KVMRUN_ERR_UNSUPPORTED, "xstate.xmm17: needs AVX-512", "xmm17 on AVX only");
	state.xstate.vec_bytes[17] = 0;
	state.xstate.k_set = 1u << 4;
	expect(&avx, &spec, KVMRUN_ERR_UNSUPPORTED, "xstate.k4: needs AVX-512", "k4 on AVX only");
	expect(&avx512, &spec, KVMRUN_OK, "", "k4 on an AVX-512 host");

	spec_with_state(&spec, KVMRUN_MODE_LONG);
	state.xstate.fields_set = F(MXCSR);
	state.xstate.mxcsr = 0x1fc0;
	expect(&avx512, &spec, KVMRUN_ERR_BAD_REQUEST, "xstate.mxcsr",
	       "mxcsr DAZ where MXCSR_MASK is 0 (0xffbf)");
	avx512.state.mxcsr_mask = 0xffff;
	expect(&avx512, &spec, KVMRUN_OK, "", "mxcsr DAZ where MXCSR_MASK has it");

	spec_with_state(&spec, KVMRUN_MODE_LONG);
	state.msrs.set = 1u << KVMRUN_MSR_TSC_AUX;
	expect(&avx, &spec, KVMRUN_ERR_UNSUPPORTED, "msrs.tsc_aux", "an MSR the host's KVM lacks");
	expect(&avx512, &spec, KVMRUN_OK, "", "tsc_aux where KVM has it");
	state.msrs.set = 1u << KVMRUN_MSR_EFER;
	state.msrs.value[KVMRUN_MSR_EFER] = 0xd01;
	expect(&avx512, &spec, KVMRUN_OK, "", "efer NXE with NX");
	expect(&plain, &spec, KVMRUN_ERR_UNSUPPORTED, "NXE needs NX", "efer NXE without NX");
	state.msrs.set = 0;
	state.cpuid = &no_avx;
	state.cpuid_count = 1;
	no_avx.index = 1;
	expect(&avx512, &spec, KVMRUN_ERR_BAD_REQUEST, "cpuid[0]", "an index on leaf 1");
	no_avx.index = 0;
}

int
main(void)
{
	test_tag_word();
	test_tag_word_native();
	test_layout_xcr0();
	test_cpuid_merge();
	test_efer();
	test_xsave_pack();
	test_xsave_pack_native();
	test_descriptors();
	test_check_any_host();
	test_check_host();
	return tap_done();
}
