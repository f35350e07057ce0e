/*
 * The CPU state beyond the general registers, set before a run and read
 * back after it: CPUID, XCR0, the XSAVE buffer, MSRs and descriptor caches.
 *
 * KVM's XSAVE buffer (KVM_GET_XSAVE/KVM_SET_XSAVE, or KVM_GET_XSAVE2 and a
 * buffer of KVM_CAP_XSAVE2's size) is the XSAVE standard (non-compacted)
 * format: the FXSAVE legacy region, the header with XSTATE_BV at 512, and
 * each further component at the offset CPUID leaf 0xD gives for it on the
 * host.  KVM fills a component the guest has in its initial state with the
 * initial values; on KVM_SET_XSAVE it loads a component only when its
 * XSTATE_BV bit is set, and refuses MXCSR bits outside MXCSR_MASK (EINVAL).
 *
 * fs_base, gs_base and efer live in the special registers (KVM_SET_SREGS);
 * the other MSRs go through KVM_SET_MSRS, which sets them in order and
 * returns how many it set, and only those in KVM_GET_MSR_INDEX_LIST.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vm-x86-state.h"
#include "vm-x86.h"

#define CR4_OSXSAVE (1ull << 18)
#define CR4_FSGSBASE (1ull << 16)
#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)
#define EFER_CHOSEN (EFER_SCE | EFER_NXE)
#define EFER_MODE (EFER_LME | EFER_LMA)

#define CPUID_1_ECX_XSAVE (1u << 26)
#define CPUID_1_ECX_AVX (1u << 28)
#define CPUID_7_EBX_FSGSBASE (1u << 0)
#define CPUID_7_EBX_AVX512F (1u << 16)
#define CPUID_80000001_EDX_NX (1u << 20)

/* KVM_MAX_CPUID_ENTRIES: the most KVM_SET_CPUID2 takes. */
#define VM_X86_CPUID_MAX 256

#define XFEATURES_HANDLED \
	(VM_X86_XFEATURE_X87 | VM_X86_XFEATURE_SSE | VM_X86_XFEATURE_YMM | VM_X86_XFEATURE_AVX512)

/* The x87 state after FNINIT, and the XSAVE initial state of component 0. */
#define FCW_INIT 0x037f
/* MXCSR_MASK 0 in an FXSAVE image means the default mask. */
#define MXCSR_MASK_DEFAULT 0xffbf

#define SEG_ATTR_G 0x8000u
#define SEG_ATTR_P 0x0080u
#define SEG_ATTR_LIMIT_BITS 0x0f00u	/* where a descriptor keeps limit 16-19 */

/* The allow-listed MSRs' numbers, in enum kvmrun_msr order; 0 for the sregs-backed ones. */
static const uint32_t msr_index[KVMRUN_MSR_COUNT] = {
	[KVMRUN_MSR_FS_BASE] = 0,		/* 0xc0000100, in sregs.fs.base */
	[KVMRUN_MSR_GS_BASE] = 0,		/* 0xc0000101, in sregs.gs.base */
	[KVMRUN_MSR_KERNEL_GS_BASE] = 0xc0000102,
	[KVMRUN_MSR_STAR] = 0xc0000081,
	[KVMRUN_MSR_LSTAR] = 0xc0000082,
	[KVMRUN_MSR_CSTAR] = 0xc0000083,
	[KVMRUN_MSR_SFMASK] = 0xc0000084,
	[KVMRUN_MSR_SYSENTER_CS] = 0x174,
	[KVMRUN_MSR_SYSENTER_ESP] = 0x175,
	[KVMRUN_MSR_SYSENTER_EIP] = 0x176,
	[KVMRUN_MSR_TSC_AUX] = 0xc0000103,
	[KVMRUN_MSR_PAT] = 0x277,
	[KVMRUN_MSR_EFER] = 0,			/* 0xc0000080, in sregs.efer */
};

#define MSRS_IN_SREGS \
	(1u << KVMRUN_MSR_FS_BASE | 1u << KVMRUN_MSR_GS_BASE | 1u << KVMRUN_MSR_EFER)
#define MSRS_CANONICAL \
	(1u << KVMRUN_MSR_FS_BASE | 1u << KVMRUN_MSR_GS_BASE |                      \
	 1u << KVMRUN_MSR_KERNEL_GS_BASE | 1u << KVMRUN_MSR_LSTAR |                 \
	 1u << KVMRUN_MSR_CSTAR | 1u << KVMRUN_MSR_SYSENTER_ESP |                   \
	 1u << KVMRUN_MSR_SYSENTER_EIP)
#define MSRS_ALL ((1u << KVMRUN_MSR_COUNT) - 1)

#define XFIELDS_X87 ((1u << KVMRUN_XF_COUNT) - 1 - (1u << KVMRUN_XF_MXCSR))

static int
ioctl_error(struct kvmrun_error *err, const char *request)
{
	int saved = errno;

	kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "%s: %s", request, strerror(saved));
	return -saved;
}

static const struct kvm_cpuid_entry2 *
cpuid_entry(const struct kvm_cpuid2 *cpuid, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < cpuid->nent; i++)
		if (cpuid->entries[i].function == function && cpuid->entries[i].index == index)
			return &cpuid->entries[i];
	return NULL;
}

/* N bytes at OFFSET of a little-endian buffer (the XSAVE area), as x86 keeps them. */
static uint64_t
load(const uint8_t *buf, size_t offset, size_t n)
{
	uint64_t v = 0;

	memcpy(&v, buf + offset, n);
	return v;
}

static void
store(uint8_t *buf, size_t offset, uint64_t v, size_t n)
{
	memcpy(buf + offset, &v, n);
}

#define get16(buf, offset) ((uint16_t)load(buf, offset, 2))
#define get32(buf, offset) ((uint32_t)load(buf, offset, 4))
#define get64(buf, offset) load(buf, offset, 8)
#define put16(buf, offset, v) store(buf, offset, v, 2)
#define put32(buf, offset, v) store(buf, offset, v, 4)
#define put64(buf, offset, v) store(buf, offset, v, 8)

uint8_t
vm_x86_ftw_abridge(uint16_t ftw)
{
	uint8_t abridged = 0;

	for (int r = 0; r < 8; r++)
		if (((ftw >> (2 * r)) & 3) != 3)
			abridged |= (uint8_t)(1u << r);
	return abridged;
}

uint16_t
vm_x86_ftw_full(uint8_t abridged, uint16_t fsw, const uint8_t *st)
{
	unsigned int top = (fsw >> 11) & 7;
	uint16_t ftw = 0;

	for (unsigned int r = 0; r < 8; r++) {
		const uint8_t *reg = st + 16 * ((r - top) & 7);
		uint64_t mantissa = get64(reg, 0);
		uint16_t exponent = get16(reg, 8) & 0x7fff;
		unsigned int tag;

		if (!(abridged & (1u << r)))
			tag = 3;			/* empty */
		else if (exponent == 0x7fff)
			tag = 2;			/* infinity, NaN */
		else if (exponent == 0)
			tag = mantissa == 0 ? 1 : 2;	/* zero; denormal */
		else
			tag = (mantissa >> 63) ? 0 : 2;	/* valid; unnormal */
		ftw |= (uint16_t)(tag << (2 * r));
	}
	return ftw;
}

void
vm_x86_xsave_layout_init(const struct kvm_cpuid2 *cpuid, struct vm_x86_xsave_layout *layout)
{
	memset(layout, 0, sizeof(*layout));
	for (uint32_t c = 2; c < VM_X86_XSTATE_COMPONENTS; c++) {
		const struct kvm_cpuid_entry2 *e = cpuid_entry(cpuid, 0xd, c);

		if (e != NULL && e->eax != 0) {
			layout->size[c] = e->eax;
			layout->offset[c] = e->ebx;
		}
	}
}

uint64_t
vm_x86_cpuid_xcr0(const struct kvm_cpuid2 *cpuid)
{
	const struct kvm_cpuid_entry2 *leaf1 = cpuid_entry(cpuid, 1, 0);
	const struct kvm_cpuid_entry2 *leaf7 = cpuid_entry(cpuid, 7, 0);
	const struct kvm_cpuid_entry2 *leafd = cpuid_entry(cpuid, 0xd, 0);
	uint64_t xcr0;

	if (leaf1 == NULL || !(leaf1->ecx & CPUID_1_ECX_XSAVE) || leafd == NULL)
		return 0;
	xcr0 = (((uint64_t)leafd->edx << 32 | leafd->eax) & XFEATURES_HANDLED) |
	       VM_X86_XFEATURE_X87;
	/* XCR0 refuses AVX without SSE, and AVX-512 without AVX or in part. */
	if (!(leaf1->ecx & CPUID_1_ECX_AVX) || !(xcr0 & VM_X86_XFEATURE_SSE))
		xcr0 &= ~VM_X86_XFEATURE_YMM;
	if (!(xcr0 & VM_X86_XFEATURE_YMM) || leaf7 == NULL ||
	    !(leaf7->ebx & CPUID_7_EBX_AVX512F) ||
	    (xcr0 & VM_X86_XFEATURE_AVX512) != VM_X86_XFEATURE_AVX512)
		xcr0 &= ~VM_X86_XFEATURE_AVX512;
	return xcr0;
}

void
vm_x86_cpu_init(const struct kvm_cpuid2 *cpuid, struct vm_x86_cpu *cpu)
{
	const struct kvm_cpuid_entry2 *leaf7 = cpuid_entry(cpuid, 7, 0);
	const struct kvm_cpuid_entry2 *ext1 = cpuid_entry(cpuid, 0x80000001, 0);

	cpu->xcr0 = vm_x86_cpuid_xcr0(cpuid);
	cpu->fsgsbase = leaf7 != NULL && (leaf7->ebx & CPUID_7_EBX_FSGSBASE);
	cpu->nx = ext1 != NULL && (ext1->edx & CPUID_80000001_EDX_NX);
}

/* Whether the host's table numbers FUNCTION's entries by index (sub-leaves). */
static bool
cpuid_indexed(const struct kvm_cpuid2 *cpuid, uint32_t function, bool *known)
{
	*known = false;
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		if (cpuid->entries[i].function != function)
			continue;
		*known = true;
		if (cpuid->entries[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX)
			return true;
	}
	return false;
}

int
vm_x86_cpuid_merge(const struct kvm_cpuid2 *host, const struct kvmrun_cpuid_entry *entries,
		   size_t count, struct kvm_cpuid2 **out, struct kvmrun_error *err)
{
	size_t room = host->nent + count;
	struct kvm_cpuid2 *table;

	*out = NULL;
	if (count > VM_X86_CPUID_MAX)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"cpuid: %zu entries, more than KVM's %d", count, VM_X86_CPUID_MAX);
	table = calloc(1, sizeof(*table) + room * sizeof(table->entries[0]));
	if (table == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "CPUID table: %s",
					strerror(errno));
	memcpy(table->entries, host->entries, host->nent * sizeof(table->entries[0]));
	table->nent = host->nent;
	for (size_t i = 0; i < count; i++) {
		const struct kvmrun_cpuid_entry *e = &entries[i];
		struct kvm_cpuid_entry2 *slot = NULL;
		bool known, indexed = cpuid_indexed(host, e->function, &known);

		if (known && !indexed && e->index != 0) {
			free(table);
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"cpuid[%zu]: leaf 0x%x has no sub-leaves, so its index must "
				"be 0, not %u", i, e->function, e->index);
		}
		for (uint32_t j = 0; j < table->nent && slot == NULL; j++)
			if (table->entries[j].function == e->function &&
			    table->entries[j].index == e->index)
				slot = &table->entries[j];
		if (slot == NULL) {
			slot = &table->entries[table->nent++];
			memset(slot, 0, sizeof(*slot));
			slot->function = e->function;
			slot->index = e->index;
			/* A new leaf has sub-leaves as the host's does, or when given one. */
			if (indexed || (!known && e->index != 0))
				slot->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		}
		slot->eax = e->eax;
		slot->ebx = e->ebx;
		slot->ecx = e->ecx;
		slot->edx = e->edx;
	}
	if (table->nent > VM_X86_CPUID_MAX) {
		uint32_t nent = table->nent;

		free(table);
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"cpuid: the host's table with these entries has %u, more than "
			"KVM's %d", nent, VM_X86_CPUID_MAX);
	}
	*out = table;
	return 0;
}

int
vm_x86_efer_check(uint64_t efer, enum kvmrun_mode mode, struct kvmrun_error *err)
{
	uint64_t mode_bits = mode == KVMRUN_MODE_LONG ? EFER_MODE : 0;

	if (efer & ~(EFER_CHOSEN | EFER_MODE))
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"msrs.efer: 0x%llx sets a bit other than SCE (0), LME (8), LMA (10) "
			"and NXE (11); only SCE and NXE may be chosen",
			(unsigned long long)efer);
	/* Paged mode may run as compatibility mode (LMA) or not: the host's choice. */
	if (mode != KVMRUN_MODE_PAGED && (efer & EFER_MODE) != mode_bits)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"msrs.efer: 0x%llx: LME (8) and LMA (10) are the mode's and must "
			"be %s in %s mode; only SCE and NXE may be chosen",
			(unsigned long long)efer, mode_bits ? "set" : "clear",
			kvmrun_mode_names[mode]);
	return 0;
}

/* The XSAVE components X sets registers of. */
static uint64_t
xstate_components(const struct kvmrun_xstate *x)
{
	uint64_t want = 0;

	if (x->st_set || (x->fields_set & XFIELDS_X87))
		want |= VM_X86_XFEATURE_X87;
	if (x->fields_set & (1u << KVMRUN_XF_MXCSR))
		want |= VM_X86_XFEATURE_SSE;
	if (x->k_set)
		want |= VM_X86_XFEATURE_OPMASK;
	for (int n = 0; n < KVMRUN_VEC_COUNT; n++) {
		if (x->vec_bytes[n] == 0)
			continue;
		if (n >= 16) {
			want |= VM_X86_XFEATURE_HI16_ZMM;
			continue;
		}
		want |= VM_X86_XFEATURE_SSE;
		if (x->vec_bytes[n] >= 32)
			want |= VM_X86_XFEATURE_YMM;
		if (x->vec_bytes[n] == 64)
			want |= VM_X86_XFEATURE_ZMM_HI256;
	}
	return want;
}

uint32_t
vm_x86_mxcsr_mask(void)
{
	uint8_t area[512] __attribute__((aligned(16)));

	memset(area, 0, sizeof(area));
	__asm__ volatile("fxsave64 %0" : "=m"(area));
	return get32(area, VM_X86_XSAVE_MXCSR_MASK);
}

static int
check_mxcsr(const struct kvmrun_xstate *x, uint32_t mask, struct kvmrun_error *err)
{
	if (mask == 0)
		mask = MXCSR_MASK_DEFAULT;
	if ((x->fields_set & (1u << KVMRUN_XF_MXCSR)) && (x->mxcsr & ~mask))
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"xstate.mxcsr: 0x%x sets bits this CPU reserves (its MXCSR_MASK is "
			"0x%x)", x->mxcsr, mask);
	return 0;
}

static bool
component_fits(const struct vm_x86_xsave_layout *layout, size_t size, unsigned int c)
{
	return layout->size[c] != 0 && layout->offset[c] >= VM_X86_XSAVE_XSTATE_BV + 64 &&
	       layout->offset[c] <= size && layout->size[c] <= size - layout->offset[c];
}

/* Puts component C in its initial state: FNINIT's x87, all zeros for the others. */
static void
component_init(uint8_t *buf, const struct vm_x86_xsave_layout *layout, unsigned int c)
{
	switch (c) {
	case 0:
		put16(buf, VM_X86_XSAVE_FCW, FCW_INIT);
		put16(buf, VM_X86_XSAVE_FSW, 0);
		put16(buf, VM_X86_XSAVE_FTW, 0);	/* and the reserved byte */
		put16(buf, VM_X86_XSAVE_FOP, 0);
		put64(buf, VM_X86_XSAVE_FIP, 0);
		put64(buf, VM_X86_XSAVE_FDP, 0);
		memset(buf + VM_X86_XSAVE_ST, 0, 8 * 16);
		break;
	case 1:
		memset(buf + VM_X86_XSAVE_XMM, 0, 16 * 16);
		break;
	default:
		memset(buf + layout->offset[c], 0, layout->size[c]);
		break;
	}
}

static void
pack_x87(uint8_t *buf, const struct kvmrun_xstate *x)
{
	uint16_t fsw;

	if (x->fields_set & (1u << KVMRUN_XF_FCW))
		put16(buf, VM_X86_XSAVE_FCW, x->fcw);
	if (x->fields_set & (1u << KVMRUN_XF_FSW))
		put16(buf, VM_X86_XSAVE_FSW, x->fsw);
	if (x->fields_set & (1u << KVMRUN_XF_FOP))
		put16(buf, VM_X86_XSAVE_FOP, x->fop);
	if (x->fields_set & (1u << KVMRUN_XF_FIP))
		put64(buf, VM_X86_XSAVE_FIP, x->fip);
	if (x->fields_set & (1u << KVMRUN_XF_FDP))
		put64(buf, VM_X86_XSAVE_FDP, x->fdp);
	fsw = get16(buf, VM_X86_XSAVE_FSW);
	for (unsigned int n = 0; n < KVMRUN_ST_COUNT; n++) {
		uint8_t *reg = buf + VM_X86_XSAVE_ST + 16 * n;

		if (!(x->st_set & (1u << n)))
			continue;
		memset(reg, 0, 16);
		put64(reg, 0, x->st[n].mantissa);
		put16(reg, 8, x->st[n].sign_exponent);
		/* Without a tag word, a register given is one in use. */
		if (!(x->fields_set & (1u << KVMRUN_XF_FTW)))
			buf[VM_X86_XSAVE_FTW] |= (uint8_t)(1u << ((((fsw >> 11) & 7) + n) & 7));
	}
	if (x->fields_set & (1u << KVMRUN_XF_FTW))
		buf[VM_X86_XSAVE_FTW] = vm_x86_ftw_abridge(x->ftw);
}

int
vm_x86_xsave_pack(uint8_t *buf, size_t size, const struct vm_x86_xsave_layout *layout,
		  uint32_t mask, const struct kvmrun_xstate *x, struct kvmrun_error *err)
{
	uint64_t bv = get64(buf, VM_X86_XSAVE_XSTATE_BV);
	uint64_t want = xstate_components(x);

	if (check_mxcsr(x, mask, err) < 0)
		return -1;
	for (unsigned int c = 2; c < VM_X86_XSTATE_COMPONENTS; c++)
		if ((want & (1ull << c)) && !component_fits(layout, size, c))
			return kvmrun_error_set(err, KVMRUN_ERR_UNSUPPORTED,
				"xstate: KVM's XSAVE buffer has no room for state "
				"component %u", c);
	for (unsigned int c = 0; c < VM_X86_XSTATE_COMPONENTS; c++)
		if ((want & (1ull << c)) && !(bv & (1ull << c)))
			component_init(buf, layout, c);

	pack_x87(buf, x);
	if (x->fields_set & (1u << KVMRUN_XF_MXCSR))
		put32(buf, VM_X86_XSAVE_MXCSR, x->mxcsr);
	for (unsigned int n = 0; n < KVMRUN_K_COUNT; n++)
		if (x->k_set & (1u << n))
			put64(buf, layout->offset[5] + 8 * n, x->k[n]);
	for (unsigned int n = 0; n < KVMRUN_VEC_COUNT; n++) {
		const uint8_t *v = x->vec[n];
		unsigned int bytes = x->vec_bytes[n];

		if (bytes == 0)
			continue;
		if (n >= 16) {
			memcpy(buf + layout->offset[7] + 64 * (n - 16), v, bytes);
			continue;
		}
		memcpy(buf + VM_X86_XSAVE_XMM + 16 * n, v, 16);
		if (bytes >= 32)
			memcpy(buf + layout->offset[2] + 16 * n, v + 16, 16);
		if (bytes == 64)
			memcpy(buf + layout->offset[6] + 32 * n, v + 32, 32);
	}
	put64(buf, VM_X86_XSAVE_XSTATE_BV, bv | want);
	return 0;
}

/* Copies LENGTH bytes of component C at OFFSET into OUT, or its zeros when it is initial. */
static void
unpack_bytes(const uint8_t *buf, size_t size, const struct vm_x86_xsave_layout *layout,
	     uint64_t bv, unsigned int c, size_t offset, uint8_t *out, size_t length)
{
	if ((bv & (1ull << c)) && component_fits(layout, size, c))
		memcpy(out, buf + layout->offset[c] + offset, length);
	else
		memset(out, 0, length);
}

void
vm_x86_xsave_unpack(const uint8_t *buf, size_t size, const struct vm_x86_xsave_layout *layout,
		    uint64_t xcr0, struct kvmrun_xstate *x)
{
	static const uint8_t st_init[8 * 16];
	uint64_t bv = get64(buf, VM_X86_XSAVE_XSTATE_BV);
	bool x87 = bv & VM_X86_XFEATURE_X87, sse = bv & VM_X86_XFEATURE_SSE;
	const uint8_t *st = x87 ? buf + VM_X86_XSAVE_ST : st_init;
	bool avx = xcr0 & VM_X86_XFEATURE_YMM;
	bool avx512 = (xcr0 & VM_X86_XFEATURE_AVX512) == VM_X86_XFEATURE_AVX512;

	memset(x, 0, sizeof(*x));
	x->fields_set = (1u << KVMRUN_XF_COUNT) - 1;
	x->mxcsr = get32(buf, VM_X86_XSAVE_MXCSR);
	x->fcw = x87 ? get16(buf, VM_X86_XSAVE_FCW) : FCW_INIT;
	x->fsw = x87 ? get16(buf, VM_X86_XSAVE_FSW) : 0;
	x->ftw = vm_x86_ftw_full(x87 ? buf[VM_X86_XSAVE_FTW] : 0, x->fsw, st);
	x->fop = x87 ? get16(buf, VM_X86_XSAVE_FOP) : 0;
	x->fip = x87 ? get64(buf, VM_X86_XSAVE_FIP) : 0;
	x->fdp = x87 ? get64(buf, VM_X86_XSAVE_FDP) : 0;
	x->st_set = 0xff;
	for (unsigned int n = 0; n < KVMRUN_ST_COUNT; n++) {
		x->st[n].mantissa = get64(st, 16 * n);
		x->st[n].sign_exponent = get16(st, 16 * n + 8);
	}
	for (unsigned int n = 0; n < 16; n++) {
		uint8_t *v = x->vec[n];

		x->vec_bytes[n] = avx512 ? 64 : avx ? 32 : 16;
		if (sse)
			memcpy(v, buf + VM_X86_XSAVE_XMM + 16 * n, 16);
		if (avx)
			unpack_bytes(buf, size, layout, bv, 2, 16 * n, v + 16, 16);
		if (avx512)
			unpack_bytes(buf, size, layout, bv, 6, 32 * n, v + 32, 32);
	}
	if (!avx512)
		return;
	for (unsigned int n = 16; n < KVMRUN_VEC_COUNT; n++) {
		x->vec_bytes[n] = 64;
		unpack_bytes(buf, size, layout, bv, 7, 64 * (n - 16), x->vec[n], 64);
	}
	x->k_set = 0xff;
	for (unsigned int n = 0; n < KVMRUN_K_COUNT; n++) {
		uint8_t k[8];

		unpack_bytes(buf, size, layout, bv, 5, 8 * n, k, sizeof(k));
		x->k[n] = get64(k, 0);
	}
}

void
vm_x86_descriptor_from(const struct kvm_segment *s, struct kvmrun_descriptor *d)
{
	d->base = s->base;
	d->limit = s->limit;
	/* An unusable segment reads as not present: the protocol has no other word for it. */
	d->attributes = (uint16_t)((s->type & 0xf) | (s->s & 1) << 4 | (s->dpl & 3) << 5 |
				   ((s->present && !s->unusable) ? SEG_ATTR_P : 0) |
				   (s->avl & 1) << 12 | (s->l & 1) << 13 | (s->db & 1) << 14 |
				   (s->g & 1) << 15);
}

void
vm_x86_descriptor_decode(uint64_t raw, struct kvmrun_descriptor *d)
{
	d->base = ((raw >> 16) & 0xffffff) | ((raw >> 56) & 0xff) << 24;
	d->limit = (uint32_t)((raw & 0xffff) | ((raw >> 48) & 0xf) << 16);
	d->attributes = (uint16_t)(((raw >> 40) & 0xff) | ((raw >> 52) & 0xf) << 12);
	if (d->attributes & SEG_ATTR_G)
		d->limit = d->limit << 12 | 0xfff;
}

void
vm_x86_segment_from(const struct kvmrun_descriptor *d, uint16_t selector, struct kvm_segment *s)
{
	uint16_t a = d->attributes;

	*s = (struct kvm_segment){
		.base = d->base,
		.limit = d->limit,
		.selector = selector,
		.type = a & 0xf,
		.s = (a >> 4) & 1,
		.dpl = (a >> 5) & 3,
		.present = (a >> 7) & 1,
		.avl = (a >> 12) & 1,
		.l = (a >> 13) & 1,
		.db = (a >> 14) & 1,
		.g = (a >> 15) & 1,
		.unusable = !((a >> 7) & 1),
	};
}

static bool
xstate_given(const struct kvmrun_spec *spec)
{
	return spec->state != NULL && xstate_components(&spec->state->xstate) != 0;
}

bool
vm_x86_state_uses_xstate(const struct kvmrun_spec *spec)
{
	return (spec->returns & KVMRUN_RETURN_XSTATE) || xstate_given(spec);
}

static bool
is_canonical(uint64_t address)
{
	return (uint64_t)((int64_t)(address << 16) >> 16) == address;
}

/* PAT: eight memory types, each UC, WC, WT, WP, WB or UC- (0, 1, 4, 5, 6, 7). */
static bool
pat_valid(uint64_t pat)
{
	for (int i = 0; i < 8; i++) {
		unsigned int type = (pat >> (8 * i)) & 0xff;

		if (type > 7 || type == 2 || type == 3)
			return false;
	}
	return true;
}

static int
check_msrs(const struct kvmrun_spec *spec, struct kvmrun_error *err)
{
	const struct kvmrun_msrs *m = &spec->state->msrs;

	if (m->set & ~MSRS_ALL)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
					"msrs: unknown MSR bits 0x%x", m->set & ~MSRS_ALL);
	for (int i = 0; i < KVMRUN_MSR_COUNT; i++) {
		uint64_t v = m->value[i];

		if (!(m->set & (1u << i)))
			continue;
		if ((MSRS_CANONICAL & (1u << i)) && !is_canonical(v))
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"msrs.%s: 0x%llx is not a canonical address",
				kvmrun_msr_names[i], (unsigned long long)v);
		if ((i == KVMRUN_MSR_FS_BASE || i == KVMRUN_MSR_GS_BASE) &&
		    spec->mode != KVMRUN_MODE_LONG)
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"msrs.%s: only in long mode; in the other modes the base "
				"comes from the segment (in real mode: segments.%s.base)",
				kvmrun_msr_names[i], i == KVMRUN_MSR_FS_BASE ? "fs" : "gs");
		if (i == KVMRUN_MSR_PAT && !pat_valid(v))
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"msrs.pat: 0x%llx has a memory type other than 0, 1, 4, 5, "
				"6 or 7 in one of its eight bytes", (unsigned long long)v);
		if (i == KVMRUN_MSR_TSC_AUX && v > UINT32_MAX)
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"msrs.tsc_aux: 0x%llx is wider than the MSR's 32 bits",
				(unsigned long long)v);
		if (i == KVMRUN_MSR_EFER && vm_x86_efer_check(v, spec->mode, err) < 0)
			return -1;
	}
	return 0;
}

static int
check_segments(const struct kvmrun_spec *spec, struct kvmrun_error *err)
{
	const struct kvmrun_cpu_state *st = spec->state;

	for (int i = 0; i < KVMRUN_SEG_COUNT; i++) {
		const struct kvmrun_descriptor *d = &st->segments[i];
		const char *name = kvmrun_seg_names[i];

		if (!(st->segments_set & (1u << i)))
			continue;
		if (i >= KVMRUN_SEG_REQUEST_COUNT || spec->mode != KVMRUN_MODE_REAL)
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"segments.%s: a descriptor cache is given only for cs, ds, "
				"es, ss, fs and gs in real mode (the other modes start with "
				"the engine's flat segments)", name);
		if (d->attributes & SEG_ATTR_LIMIT_BITS)
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"segments.%s.attributes: 0x%x sets bits 8-11, where a "
				"descriptor keeps limit bits the limit field holds",
				name, d->attributes);
		if ((d->attributes & SEG_ATTR_G) && (d->limit & 0xfff) != 0xfff)
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"segments.%s.limit: 0x%x with G (attributes bit 15) set must "
				"end in 0xfff", name, d->limit);
		if (!(d->attributes & SEG_ATTR_G) && d->limit > 0xfffff)
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"segments.%s.limit: 0x%x is past 1 MiB, which needs G "
				"(attributes bit 15)", name, d->limit);
	}
	return 0;
}

static int
check_xstate_values(const struct kvmrun_xstate *x, struct kvmrun_error *err)
{
	for (int n = 0; n < KVMRUN_VEC_COUNT; n++) {
		unsigned int b = x->vec_bytes[n];

		if (b != 0 && b != 16 && b != 32 && b != 64)
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"xstate: vector register %d has %u bytes, not 16, 32 or 64",
				n, b);
	}
	if ((x->fields_set & (1u << KVMRUN_XF_MXCSR)) && x->mxcsr > 0xffff)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"xstate.mxcsr: 0x%x sets bits 16-31, which are reserved", x->mxcsr);
	if ((x->fields_set & (1u << KVMRUN_XF_FOP)) && x->fop > 0x7ff)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"xstate.fop: 0x%x is wider than the opcode's 11 bits", x->fop);
	return 0;
}

static const char *
vec_name(unsigned int bytes)
{
	return bytes == 64 ? "zmm" : bytes == 32 ? "ymm" : "xmm";
}

/* The registers X gives that CPU's XCR0 lacks: unsupported, naming the feature. */
static int
check_xstate_features(const struct kvmrun_xstate *x, const struct vm_x86_cpu *cpu,
		      struct kvmrun_error *err)
{
	bool avx512 = (cpu->xcr0 & VM_X86_XFEATURE_AVX512) == VM_X86_XFEATURE_AVX512;

	for (unsigned int n = 0; n < KVMRUN_VEC_COUNT; n++) {
		unsigned int b = x->vec_bytes[n];

		if (b == 0 || (b == 16 && n < 16))
			continue;
		if (b == 32 && n < 16 && !(cpu->xcr0 & VM_X86_XFEATURE_YMM))
			return kvmrun_error_set(err, KVMRUN_ERR_UNSUPPORTED,
				"xstate.ymm%u: needs AVX, which this vCPU's CPUID does not "
				"give (XCR0 0x%llx)", n, (unsigned long long)cpu->xcr0);
		if ((b == 64 || n >= 16) && !avx512)
			return kvmrun_error_set(err, KVMRUN_ERR_UNSUPPORTED,
				"xstate.%s%u: needs AVX-512 (AVX512F), which this vCPU's "
				"CPUID does not give (XCR0 0x%llx)", vec_name(b), n,
				(unsigned long long)cpu->xcr0);
	}
	if (x->k_set && !avx512) {
		unsigned int n = (unsigned int)__builtin_ctz(x->k_set);

		return kvmrun_error_set(err, KVMRUN_ERR_UNSUPPORTED,
			"xstate.k%u: needs AVX-512 (AVX512F), which this vCPU's CPUID does "
			"not give (XCR0 0x%llx)", n, (unsigned long long)cpu->xcr0);
	}
	return 0;
}

/* The vCPU a run of SPEC gets: the host's, or with SPEC's CPUID entries. */
static int
run_cpu(const struct vm_x86_host *x86, const struct kvmrun_spec *spec, struct vm_x86_cpu *cpu,
	struct kvm_cpuid2 **table, struct kvmrun_error *err)
{
	const struct kvmrun_cpu_state *st = spec->state;

	*cpu = x86->state.cpu;
	*table = NULL;
	if (st == NULL || st->cpuid_count == 0)
		return 0;
	if (vm_x86_cpuid_merge(x86->cpuid, st->cpuid, st->cpuid_count, table, err) < 0)
		return -EINVAL;
	vm_x86_cpu_init(*table, cpu);
	/* Never more than the host sets up: KVM refuses an XCR0 beyond it. */
	cpu->xcr0 &= x86->state.cpu.xcr0;
	return 0;
}

int
vm_x86_state_check(const struct vm_x86_host *x86, const struct kvmrun_spec *spec,
		   struct kvmrun_error *err)
{
	const struct kvmrun_cpu_state *st = spec->state;
	const uint32_t parts = KVMRUN_RETURN_XSTATE | KVMRUN_RETURN_MSRS |
			       KVMRUN_RETURN_DESCRIPTORS | KVMRUN_RETURN_CPUID;
	struct kvm_cpuid2 *table;
	struct vm_x86_cpu cpu;
	int rc;

	if (spec->returns & ~parts)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
					"return: unknown parts 0x%x", spec->returns & ~parts);
	if (x86 != NULL && !x86->state.has_xsave && vm_x86_state_uses_xstate(spec))
		return kvmrun_error_set(err, KVMRUN_ERR_UNSUPPORTED,
			"xstate: this host's KVM lacks KVM_CAP_XSAVE");
	if (st == NULL)
		return 0;
	if (check_xstate_values(&st->xstate, err) < 0 || check_msrs(spec, err) < 0 ||
	    check_segments(spec, err) < 0)
		return -EINVAL;
	if (st->cpuid_count > VM_X86_CPUID_MAX)
		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"cpuid: %zu entries, more than KVM's %d", st->cpuid_count,
			VM_X86_CPUID_MAX);
	if (x86 == NULL)
		return 0;
	if (check_mxcsr(&st->xstate, x86->state.mxcsr_mask, err) < 0)
		return -EINVAL;
	if ((rc = run_cpu(x86, spec, &cpu, &table, err)) < 0)
		return rc;
	free(table);
	if (check_xstate_features(&st->xstate, &cpu, err) < 0)
		return -EOPNOTSUPP;
	for (int i = 0; i < KVMRUN_MSR_COUNT; i++)
		if ((st->msrs.set & (1u << i)) && !(x86->state.msrs & (1u << i)))
			return kvmrun_error_set(err, KVMRUN_ERR_UNSUPPORTED,
				"msrs.%s: this host's KVM does not offer MSR 0x%x",
				kvmrun_msr_names[i], msr_index[i]);
	if ((st->msrs.set & (1u << KVMRUN_MSR_EFER)) &&
	    (st->msrs.value[KVMRUN_MSR_EFER] & EFER_NXE) && !cpu.nx)
		return kvmrun_error_set(err, KVMRUN_ERR_UNSUPPORTED,
			"msrs.efer: NXE needs NX, which this vCPU's CPUID does not give");
	return 0;
}

int
vm_x86_state_host_init(struct vm_x86_host *x86, int kvm_fd, struct kvmrun_error *err)
{
	struct vm_x86_state_host *h = &x86->state;
	struct kvm_msr_list probe = { .nmsrs = 0 }, *list;
	int size;

	memset(h, 0, sizeof(*h));
	h->mxcsr_mask = vm_x86_mxcsr_mask();
	h->has_xsave = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
	/*
	 * The size KVM_GET_XSAVE2 fills; on /dev/kvm as on a VM while no
	 * dynamic feature (AMX) is enabled, which the engine never asks for.
	 */
	size = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	h->has_xsave2 = size > 0;
	h->xsave_size = size > VM_X86_XSAVE_MIN ? (size_t)size : VM_X86_XSAVE_MIN;
	vm_x86_xsave_layout_init(x86->cpuid, &h->layout);
	vm_x86_cpu_init(x86->cpuid, &h->cpu);
	if (!x86->has_xcrs)
		h->cpu.xcr0 = 0;
	for (unsigned int c = 2; c < VM_X86_XSTATE_COMPONENTS; c++)
		if (!component_fits(&h->layout, h->xsave_size, c))
			h->cpu.xcr0 &= ~(c == 2 ? VM_X86_XFEATURE_YMM | VM_X86_XFEATURE_AVX512
						: VM_X86_XFEATURE_AVX512);

	h->msrs = MSRS_IN_SREGS;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) == 0 || errno != E2BIG)
		return ioctl_error(err, "KVM_GET_MSR_INDEX_LIST");
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
	if (list == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "MSR list: %s",
					strerror(errno)), -ENOMEM;
	list->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		int rc = ioctl_error(err, "KVM_GET_MSR_INDEX_LIST");

		free(list);
		return rc;
	}
	for (uint32_t i = 0; i < list->nmsrs; i++)
		for (int m = 0; m < KVMRUN_MSR_COUNT; m++)
			if (msr_index[m] != 0 && msr_index[m] == list->indices[i])
				h->msrs |= 1u << m;
	free(list);
	return 0;
}

int
vm_x86_state_cpuid(int vcpu_fd, const struct kvmrun_spec *spec, const struct vm_x86_host *x86,
		   struct vm_x86_cpu *cpu, struct kvmrun_error *err)
{
	struct kvm_cpuid2 *table;
	int rc;

	if ((rc = run_cpu(x86, spec, cpu, &table, err)) < 0 || table == NULL)
		return rc;
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, table) < 0) {
		rc = -errno;
		kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				 "cpuid: KVM refused the CPUID table with these entries: %s",
				 strerror(errno));
	}
	free(table);
	return rc;
}

void
vm_x86_state_sregs(const struct kvmrun_spec *spec, const struct vm_x86_cpu *cpu,
		   struct kvm_sregs *sregs)
{
	const struct kvmrun_cpu_state *st = spec->state;
	struct kvm_segment *segs[KVMRUN_SEG_REQUEST_COUNT] = {
		&sregs->cs, &sregs->ds, &sregs->es, &sregs->ss, &sregs->fs, &sregs->gs,
	};

	/*
	 * rdfsbase and friends exist in 64-bit code only.  Plain runs keep the
	 * CR4 they always had: a nested KVM that refused the bit would
	 * otherwise fail every long-mode run, not just those asking for state.
	 */
	if (spec->mode == KVMRUN_MODE_LONG && cpu->fsgsbase &&
	    (st != NULL || spec->returns != 0))
		sregs->cr4 |= CR4_FSGSBASE;
	/* KVM refuses CR4.OSXSAVE for a vCPU whose CPUID has no XSAVE. */
	if (cpu->xcr0 == 0)
		sregs->cr4 &= ~CR4_OSXSAVE;
	if (st == NULL)
		return;
	for (int i = 0; i < KVMRUN_SEG_REQUEST_COUNT; i++)
		if (st->segments_set & (1u << i))
			vm_x86_segment_from(&st->segments[i], spec->segments[i], segs[i]);
	if (st->msrs.set & (1u << KVMRUN_MSR_FS_BASE))
		sregs->fs.base = st->msrs.value[KVMRUN_MSR_FS_BASE];
	if (st->msrs.set & (1u << KVMRUN_MSR_GS_BASE))
		sregs->gs.base = st->msrs.value[KVMRUN_MSR_GS_BASE];
	if (st->msrs.set & (1u << KVMRUN_MSR_EFER))
		sregs->efer = (sregs->efer & ~EFER_CHOSEN) |
			      (st->msrs.value[KVMRUN_MSR_EFER] & EFER_CHOSEN);
}

/* KVM's XSAVE buffer of the vCPU, in a new buffer of X86's size. */
static int
xsave_get(int vcpu_fd, const struct vm_x86_host *x86, uint8_t **bufp, struct kvmrun_error *err)
{
	uint8_t *buf = calloc(1, x86->state.xsave_size);
	unsigned long request = x86->state.has_xsave2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;

	*bufp = NULL;
	if (buf == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "XSAVE buffer: %s",
					strerror(errno)), -ENOMEM;
	if (ioctl(vcpu_fd, request, buf) < 0) {
		int rc = ioctl_error(err, x86->state.has_xsave2 ? "KVM_GET_XSAVE2"
								  : "KVM_GET_XSAVE");

		free(buf);
		return rc;
	}
	*bufp = buf;
	return 0;
}

static int
set_xstate(int vcpu_fd, const struct kvmrun_xstate *x, const struct vm_x86_host *x86,
	   struct kvmrun_error *err)
{
	uint8_t *buf;
	int rc;

	if ((rc = xsave_get(vcpu_fd, x86, &buf, err)) < 0)
		return rc;
	if (vm_x86_xsave_pack(buf, x86->state.xsave_size, &x86->state.layout,
			      x86->state.mxcsr_mask, x, err) < 0) {
		rc = err->code == KVMRUN_ERR_UNSUPPORTED ? -EOPNOTSUPP : -EINVAL;
	} else if (ioctl(vcpu_fd, KVM_SET_XSAVE, buf) < 0) {
		rc = -errno;
		if (errno == EINVAL)
			kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"xstate: KVM refused the registers given (a reserved bit "
				"set?): %s", strerror(errno));
		else
			ioctl_error(err, "KVM_SET_XSAVE");
	}
	free(buf);
	return rc;
}

/* The MSRs of MASK that go through KVM_GET/SET_MSRS, with their values from VALUE. */
struct msr_batch {
	struct kvm_msrs head;
	struct kvm_msr_entry entries[KVMRUN_MSR_COUNT];
	int which[KVMRUN_MSR_COUNT];
};

static void
msr_batch_init(struct msr_batch *b, uint32_t mask, const uint64_t *value)
{
	memset(b, 0, sizeof(*b));
	for (int i = 0; i < KVMRUN_MSR_COUNT; i++) {
		if (!(mask & (1u << i)) || msr_index[i] == 0)
			continue;
		b->which[b->head.nmsrs] = i;
		b->entries[b->head.nmsrs].index = msr_index[i];
		b->entries[b->head.nmsrs].data = value != NULL ? value[i] : 0;
		b->head.nmsrs++;
	}
}

static int
set_msrs(int vcpu_fd, const struct kvmrun_msrs *m, struct kvmrun_error *err)
{
	struct msr_batch b;
	int n;

	msr_batch_init(&b, m->set, m->value);
	if (b.head.nmsrs == 0)
		return 0;
	n = ioctl(vcpu_fd, KVM_SET_MSRS, &b.head);
	if (n < 0)
		return ioctl_error(err, "KVM_SET_MSRS");
	if ((uint32_t)n < b.head.nmsrs) {
		int i = b.which[n];

		return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
			"msrs.%s: KVM refused 0x%llx for MSR 0x%x", kvmrun_msr_names[i],
			(unsigned long long)m->value[i], msr_index[i]), -EINVAL;
	}
	return 0;
}

int
vm_x86_state_set(int vcpu_fd, const struct kvmrun_spec *spec, const struct vm_x86_host *x86,
		 struct kvmrun_error *err)
{
	int rc;

	if (spec->state == NULL)
		return 0;
	if (xstate_given(spec) && (rc = set_xstate(vcpu_fd, &spec->state->xstate, x86, err)) < 0)
		return rc;
	return set_msrs(vcpu_fd, &spec->state->msrs, err);
}

static int
read_xstate(int vcpu_fd, const struct vm_x86_host *x86, struct kvmrun_xstate *x,
	    struct kvmrun_error *err)
{
	uint64_t xcr0 = VM_X86_XFEATURE_X87 | VM_X86_XFEATURE_SSE;
	bool has_xcr0 = false;
	uint8_t *buf;
	int rc;

	if (x86->has_xcrs) {
		struct kvm_xcrs xcrs;

		memset(&xcrs, 0, sizeof(xcrs));
		if (ioctl(vcpu_fd, KVM_GET_XCRS, &xcrs) < 0)
			return ioctl_error(err, "KVM_GET_XCRS");
		for (uint32_t i = 0; i < xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++) {
			if (xcrs.xcrs[i].xcr == 0) {
				xcr0 = xcrs.xcrs[i].value;
				has_xcr0 = true;
			}
		}
	}
	if ((rc = xsave_get(vcpu_fd, x86, &buf, err)) < 0)
		return rc;
	vm_x86_xsave_unpack(buf, x86->state.xsave_size, &x86->state.layout, xcr0, x);
	free(buf);
	x->has_xcr0 = has_xcr0;
	x->xcr0 = has_xcr0 ? xcr0 : 0;
	return 0;
}

static int
read_msrs(int vcpu_fd, const struct vm_x86_host *x86, const struct kvm_sregs *sregs,
	  struct kvmrun_msrs *m, struct kvmrun_error *err)
{
	struct msr_batch b;

	msr_batch_init(&b, x86->state.msrs, NULL);
	if (b.head.nmsrs > 0) {
		int n = ioctl(vcpu_fd, KVM_GET_MSRS, &b.head);

		if (n < 0)
			return ioctl_error(err, "KVM_GET_MSRS");
		if ((uint32_t)n < b.head.nmsrs)
			return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				"KVM_GET_MSRS: KVM read %d of %u MSRs, stopping at 0x%x", n,
				b.head.nmsrs, b.entries[n].index), -EIO;
	}
	m->set = x86->state.msrs;
	for (uint32_t i = 0; i < b.head.nmsrs; i++)
		m->value[b.which[i]] = b.entries[i].data;
	m->value[KVMRUN_MSR_FS_BASE] = sregs->fs.base;
	m->value[KVMRUN_MSR_GS_BASE] = sregs->gs.base;
	m->value[KVMRUN_MSR_EFER] = sregs->efer;
	return 0;
}

/*
 * The cache a selector of the engine's GDT (in guest memory) loads: what cs
 * and ss held at an exception from ring 3, which the stub runs with its own.
 * A null or LDT selector, or one past the GDT, reads as unusable.
 */
static void
descriptor_from_gdt(const uint8_t *mem, uint64_t memory_size, const struct kvm_sregs *sregs,
		    uint16_t selector, struct kvmrun_descriptor *d)
{
	uint64_t address = sregs->gdt.base + (selector & ~7u), raw;

	memset(d, 0, sizeof(*d));
	if ((selector & ~3u) == 0 || (selector & 4) || (selector | 7u) > sregs->gdt.limit ||
	    address >= memory_size || memory_size - address < 8)
		return;
	memcpy(&raw, mem + address, 8);
	vm_x86_descriptor_decode(raw, d);
}

static void
read_descriptors(const uint8_t *mem, uint64_t memory_size, const struct kvm_sregs *sregs,
		 const struct kvmrun_result *result, struct kvmrun_cpu_state *st)
{
	const struct kvm_segment *segs[KVMRUN_SEG_COUNT] = {
		&sregs->cs, &sregs->ds, &sregs->es, &sregs->ss, &sregs->fs, &sregs->gs,
		&sregs->tr, &sregs->ldt,
	};

	for (int i = 0; i < KVMRUN_SEG_COUNT; i++) {
		uint16_t selector = result->sregs.segments[i].selector;

		/* The exception decode put the frame's cs and ss in the result. */
		if (selector != segs[i]->selector)
			descriptor_from_gdt(mem, memory_size, sregs, selector, &st->segments[i]);
		else
			vm_x86_descriptor_from(segs[i], &st->segments[i]);
	}
	st->segments_set = (1u << KVMRUN_SEG_COUNT) - 1;
	st->gdt = (struct kvmrun_table){ .base = sregs->gdt.base, .limit = sregs->gdt.limit };
	st->idt = (struct kvmrun_table){ .base = sregs->idt.base, .limit = sregs->idt.limit };
}

static int
read_cpuid(int vcpu_fd, struct kvmrun_cpu_state *st, struct kvmrun_error *err)
{
	struct kvm_cpuid2 *table;

	table = calloc(1, sizeof(*table) + VM_X86_CPUID_MAX * sizeof(table->entries[0]));
	if (table == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "CPUID table: %s",
					strerror(errno)), -ENOMEM;
	table->nent = VM_X86_CPUID_MAX;
	if (ioctl(vcpu_fd, KVM_GET_CPUID2, table) < 0) {
		int rc = ioctl_error(err, "KVM_GET_CPUID2");

		free(table);
		return rc;
	}
	st->cpuid = calloc(table->nent ? table->nent : 1, sizeof(*st->cpuid));
	if (st->cpuid == NULL) {
		free(table);
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "CPUID table: %s",
					strerror(errno)), -ENOMEM;
	}
	for (uint32_t i = 0; i < table->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &table->entries[i];

		st->cpuid[i] = (struct kvmrun_cpuid_entry){
			.function = e->function, .index = e->index,
			.eax = e->eax, .ebx = e->ebx, .ecx = e->ecx, .edx = e->edx,
		};
	}
	st->cpuid_count = table->nent;
	free(table);
	return 0;
}

int
vm_x86_state_read(int vcpu_fd, const uint8_t *mem, uint64_t memory_size,
		  const struct kvmrun_spec *spec, const struct vm_x86_host *x86,
		  struct kvmrun_result *result, struct kvmrun_error *err)
{
	struct kvmrun_cpu_state *st;
	struct kvm_sregs sregs;
	int rc;

	if (spec->returns == 0)
		return 0;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "CPU state: %s",
					strerror(errno)), -ENOMEM;
	result->state = st;
	if ((spec->returns & (KVMRUN_RETURN_MSRS | KVMRUN_RETURN_DESCRIPTORS)) &&
	    ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return ioctl_error(err, "KVM_GET_SREGS");
	if ((spec->returns & KVMRUN_RETURN_XSTATE) &&
	    (rc = read_xstate(vcpu_fd, x86, &st->xstate, err)) < 0)
		return rc;
	if ((spec->returns & KVMRUN_RETURN_MSRS) &&
	    (rc = read_msrs(vcpu_fd, x86, &sregs, &st->msrs, err)) < 0)
		return rc;
	if (spec->returns & KVMRUN_RETURN_DESCRIPTORS)
		read_descriptors(mem, memory_size, &sregs, result, st);
	if ((spec->returns & KVMRUN_RETURN_CPUID) && (rc = read_cpuid(vcpu_fd, st, err)) < 0)
		return rc;
	result->returned = spec->returns;
	return 0;
}
