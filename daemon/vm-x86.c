/*
 * x86 set-up of a fresh vCPU: the engine's reserved area (GDT, IDT, TSS,
 * exception stubs, identity-mapping page tables, handler stack), the segment,
 * control and general registers of each CPU mode and ring, and the decoding
 * of an exception the engine's stubs caught.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vm-x86.h"

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PSE (1ull << 4)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define CR4_OSXSAVE (1ull << 18)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)

#define RFLAGS_FIXED (1ull << 1)
#define RFLAGS_IOPL3 (3ull << 12)
#define RFLAGS_DF (1ull << 10)
/* Bits a guest may not start with set: reserved ones, and VM (virtual-8086). */
#define RFLAGS_FORBIDDEN (~0x3f7fd7ull | (1ull << 17))

#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_PS (1ull << 7)

#define CPUID_1_ECX_XSAVE (1u << 26)

/* GDT selectors; the user ones carry RPL 3. */
enum {
	SEL_KCODE32 = 0x08,
	SEL_KDATA = 0x10,
	SEL_KCODE64 = 0x18,
	SEL_UCODE32 = 0x23,
	SEL_UDATA = 0x2b,
	SEL_UCODE64 = 0x33,
	SEL_TSS = 0x38,
	GDT_LIMIT = 0x47,	/* the 64-bit TSS descriptor takes two slots */
};

/* Descriptor access bytes and the flags nibble (G, D/B, L). */
enum {
	ACC_KCODE = 0x9a,
	ACC_KDATA = 0x92,
	ACC_UCODE = 0xfa,
	ACC_UDATA = 0xf2,
	ACC_TSS_BUSY = 0x8b,
	FLAGS_32 = 0xc,
	FLAGS_64 = 0xa,
	SEG_TYPE_CODE = 11,
	SEG_TYPE_DATA = 3,
	SEG_TYPE_TSS_BUSY = 11,
	TSS_LIMIT = 0x67,
	TSS_IOMAP_OFFSET = 0x66,
	GATE_INTERRUPT = 0x8e,
	GATE_DPL3 = 0x60,
};

static bool
vector_has_error_code(unsigned int vector)
{
	switch (vector) {
	case 8: case 10: case 11: case 12: case 13: case 14: case 17: case 21: case 29:
	case 30:
		return true;
	default:
		return false;
	}
}

uint64_t
vm_x86_reserved_base(enum kvmrun_mode mode, uint64_t memory_size)
{
	if (mode == KVMRUN_MODE_REAL)
		return memory_size;
	return (memory_size - VM_X86_RESERVED_SIZE) & ~(VM_X86_RESERVED_SIZE - 1);
}

static const struct kvm_cpuid_entry2 *
cpuid_find(const struct kvm_cpuid2 *cpuid, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		if (e->function == function && e->index == index)
			return e;
	}
	return NULL;
}

void
vm_x86_host_init(struct vm_x86_host *x86, const struct kvm_cpuid2 *cpuid, bool has_xcrs)
{
	const struct kvm_cpuid_entry2 *leaf1 = cpuid_find(cpuid, 1, 0);
	const struct kvm_cpuid_entry2 *leafd = cpuid_find(cpuid, 0xd, 0);

	x86->cpuid = cpuid;
	x86->paging = KVMRUN_PAGING_LEGACY;
	x86->has_xcrs = has_xcrs && leaf1 != NULL && (leaf1->ecx & CPUID_1_ECX_XSAVE) &&
			leafd != NULL;
}

enum kvmrun_paging
vm_x86_paging(const struct kvmrun_spec *spec, const struct vm_x86_host *x86)
{
	return spec->mode == KVMRUN_MODE_PAGED ? x86->paging : KVMRUN_PAGING_NONE;
}

/*
 * Whether the vCPU runs with EFER.LMA: long mode, and paged mode in
 * compatibility mode.  Then the page tables, IDT, TSS and exception frames
 * are long mode's whatever the code segment; 32-bit code stays 32-bit.
 */
static bool
runs_ia32e(const struct kvmrun_spec *spec, enum kvmrun_paging paging)
{
	return spec->mode == KVMRUN_MODE_LONG || paging == KVMRUN_PAGING_COMPAT;
}

static bool
reg_is_set(const struct kvmrun_spec *spec, enum kvmrun_reg reg)
{
	return (spec->regs_set & (1u << reg)) != 0;
}

static bool
is_canonical(uint64_t address)
{
	return (uint64_t)((int64_t)(address << 16) >> 16) == address;
}

int
vm_x86_check_regs(const struct kvmrun_spec *spec, struct kvmrun_error *err)
{
	bool rip_set = reg_is_set(spec, KVMRUN_REG_RIP);
	uint64_t rip = rip_set ? spec->regs[KVMRUN_REG_RIP] : spec->image.address;
	/* Messages name what set the start address: regs.rip, or else the image's. */
	const char *rip_field = rip_set ? "regs.rip" : "load_address";

	if (reg_is_set(spec, KVMRUN_REG_RFLAGS)) {
		uint64_t rflags = spec->regs[KVMRUN_REG_RFLAGS];

		if (!(rflags & RFLAGS_FIXED) || (rflags & RFLAGS_FORBIDDEN))
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"regs.rflags: 0x%llx sets a reserved bit or VM, or clears bit 1 "
				"(which must be set)", (unsigned long long)rflags);
	}
	switch (spec->mode) {
	case KVMRUN_MODE_REAL:
		if (rip > 0xffff)
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"%s: 0x%llx does not fit real mode's 16-bit IP "
				"(real mode starts at cs:ip; set segments.cs and a "
				"smaller %s)",
				rip_field, (unsigned long long)rip, rip_field);
		break;
	case KVMRUN_MODE_PROTECTED:
	case KVMRUN_MODE_PAGED:
		if (rip > UINT32_MAX)
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"%s: 0x%llx is past 4 GiB, out of reach of 32-bit code",
				rip_field, (unsigned long long)rip);
		break;
	case KVMRUN_MODE_LONG:
		if (!is_canonical(rip))
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"%s: 0x%llx is not a canonical address", rip_field,
				(unsigned long long)rip);
		break;
	case KVMRUN_MODE_COUNT:
		break;
	}
	return 0;
}

static void
gdt_put(uint64_t *gdt, uint16_t selector, uint32_t base, uint32_t limit, uint8_t access,
	uint8_t flags)
{
	gdt[selector >> 3] = (uint64_t)(limit & 0xffff) | (uint64_t)(base & 0xffffff) << 16 |
			     (uint64_t)access << 40 | (uint64_t)((limit >> 16) & 0xf) << 48 |
			     (uint64_t)(flags & 0xf) << 52 | (uint64_t)(base >> 24) << 56;
}

static struct kvm_segment
segment_flat(uint16_t selector, uint8_t type, uint32_t limit, bool long_code)
{
	struct kvm_segment s = {
		.base = 0,
		.limit = limit,
		.selector = selector,
		.type = type,
		.present = 1,
		.dpl = selector & 3,
		.db = !long_code,
		.s = 1,
		.l = long_code,
		.g = 1,
	};

	return s;
}

/*
 * One gate per vector; DPL 3 for #BP and #OF so int3 and into from user mode
 * raise them, as Linux sets up, and DPL 0 for the rest so int N from user
 * mode gives #GP as on hardware.
 */
static void
idt_write(uint8_t *idt, uint64_t stubs, bool long_mode)
{
	for (unsigned int v = 0; v < VM_X86_VECTORS; v++) {
		uint64_t handler = stubs + v * VM_X86_STUB_SIZE;
		uint8_t attr = GATE_INTERRUPT | (v == 3 || v == 4 ? GATE_DPL3 : 0);
		uint16_t cs = long_mode ? SEL_KCODE64 : SEL_KCODE32;
		uint64_t low = (handler & 0xffff) | (uint64_t)cs << 16 | (uint64_t)attr << 40 |
			       ((handler >> 16) & 0xffff) << 48;

		if (long_mode) {
			uint64_t high = handler >> 32;

			memcpy(idt + v * 16, &low, 8);
			memcpy(idt + v * 16 + 8, &high, 8);
		} else {
			memcpy(idt + v * 8, &low, 8);
		}
	}
}

/* Each stub is a HLT the engine recognises by its address; see decode. */
static void
stubs_write(uint8_t *stubs)
{
	static const uint8_t stub[VM_X86_STUB_SIZE] = {
		0xf4,		/* hlt */
		0xeb, 0xfd,	/* jmp back to the hlt, should the vCPU ever resume */
		0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
	};

	for (unsigned int v = 0; v < VM_X86_VECTORS; v++)
		memcpy(stubs + v * VM_X86_STUB_SIZE, stub, sizeof(stub));
}

/*
 * Identity-maps 4 GiB with large pages; the large page holding the reserved
 * area is split so the area alone is supervisor-only.
 */
static void
page_tables_write(uint8_t *mem, uint64_t reserved, uint64_t memory_size, bool long_mode)
{
	uint64_t flags_dir = PTE_P | PTE_RW | PTE_US;
	uint64_t pt_gpa = reserved + VM_X86_RSV_PT;

	if (long_mode) {
		uint64_t *pml4 = (uint64_t *)(mem + reserved + VM_X86_RSV_PML4);
		uint64_t *pdpt = (uint64_t *)(mem + reserved + VM_X86_RSV_PDPT);
		uint64_t *pd = (uint64_t *)(mem + reserved + VM_X86_RSV_PD);
		uint64_t *pt = (uint64_t *)(mem + pt_gpa);
		uint64_t split = reserved >> 21;

		pml4[0] = (reserved + VM_X86_RSV_PDPT) | flags_dir;
		for (uint64_t i = 0; i < 4; i++)
			pdpt[i] = (reserved + VM_X86_RSV_PD + i * 4096) | flags_dir;
		for (uint64_t i = 0; i < 4 * 512; i++)
			pd[i] = (i << 21) | flags_dir | PTE_PS;
		pd[split] = pt_gpa | flags_dir;
		for (uint64_t k = 0; k < 512; k++) {
			uint64_t page = (split << 21) + k * 4096;
			bool engine = page >= reserved && page < memory_size;

			pt[k] = page | PTE_P | PTE_RW | (engine ? 0 : PTE_US);
		}
	} else {
		uint32_t *pd = (uint32_t *)(mem + reserved + VM_X86_RSV_PML4);
		uint32_t *pt = (uint32_t *)(mem + pt_gpa);
		uint64_t split = reserved >> 22;

		for (uint64_t i = 0; i < 1024; i++)
			pd[i] = (uint32_t)((i << 22) | flags_dir | PTE_PS);
		pd[split] = (uint32_t)(pt_gpa | flags_dir);
		for (uint64_t k = 0; k < 1024; k++) {
			uint64_t page = (split << 22) + k * 4096;
			bool engine = page >= reserved && page < memory_size;

			pt[k] = (uint32_t)(page | PTE_P | PTE_RW | (engine ? 0 : PTE_US));
		}
	}
}

/* The TSS gives the ring-0 stack an exception from ring 3 switches to. */
static void
tss_write(uint8_t *tss, uint64_t stack_top, bool long_mode)
{
	uint16_t iomap = TSS_LIMIT + 1;	/* no I/O bitmap: IOPL alone decides */

	memset(tss, 0, TSS_LIMIT + 1);
	if (long_mode) {
		memcpy(tss + 4, &stack_top, 8);	/* rsp0 */
	} else {
		uint32_t esp0 = (uint32_t)stack_top;
		uint32_t ss0 = SEL_KDATA;

		memcpy(tss + 4, &esp0, 4);
		memcpy(tss + 8, &ss0, 4);
	}
	memcpy(tss + TSS_IOMAP_OFFSET, &iomap, 2);
}

/*
 * The limit, in 4 KiB units, of the three user descriptors (ring-3 code 32,
 * data, code 64).  At ring 3 without paging, segment limits alone keep the
 * guest out of the area, so every descriptor a ring-3 guest can load ends
 * below it: the 64-bit code one too, which outside long mode is a readable
 * 16-bit code segment a guest could put in ds.
 */
static uint32_t
user_limit_pages(const struct kvmrun_spec *spec)
{
	uint64_t reserved = vm_x86_reserved_base(spec->mode, spec->memory_size);

	return spec->mode == KVMRUN_MODE_PROTECTED ? (uint32_t)(reserved >> 12) - 1 : 0xfffff;
}

/* The code and data segments a run starts with, for its mode and ring. */
static void
start_segments(const struct kvmrun_spec *spec, struct kvm_segment *cs, struct kvm_segment *data)
{
	bool long_mode = spec->mode == KVMRUN_MODE_LONG;
	bool user = spec->ring == 3;
	uint32_t limit = user ? user_limit_pages(spec) << 12 | 0xfff : 0xffffffff;
	uint16_t code;

	if (long_mode)
		code = user ? SEL_UCODE64 : SEL_KCODE64;
	else
		code = user ? SEL_UCODE32 : SEL_KCODE32;
	*cs = segment_flat(code, SEG_TYPE_CODE, limit, long_mode);
	*data = segment_flat(user ? SEL_UDATA : SEL_KDATA, SEG_TYPE_DATA, limit, false);
}

/*
 * IA32E: long mode's page tables, 64-bit IDT gates (whose handler CS is the
 * 64-bit code segment, as the CPU demands there) and 64-bit TSS, also for
 * paged mode's 32-bit code in compatibility mode.
 */
static void
reserved_area_write(uint8_t *mem, const struct kvmrun_spec *spec, bool ia32e,
		    struct kvm_sregs *sregs)
{
	uint64_t reserved = vm_x86_reserved_base(spec->mode, spec->memory_size);
	uint64_t *gdt = (uint64_t *)(mem + reserved + VM_X86_RSV_GDT);
	uint64_t tss = reserved + VM_X86_RSV_TSS;
	uint32_t user_limit = user_limit_pages(spec);

	gdt_put(gdt, SEL_KCODE32, 0, 0xfffff, ACC_KCODE, FLAGS_32);
	gdt_put(gdt, SEL_KDATA, 0, 0xfffff, ACC_KDATA, FLAGS_32);
	gdt_put(gdt, SEL_KCODE64, 0, 0xfffff, ACC_KCODE, FLAGS_64);
	gdt_put(gdt, SEL_UCODE32, 0, user_limit, ACC_UCODE, FLAGS_32);
	gdt_put(gdt, SEL_UDATA, 0, user_limit, ACC_UDATA, FLAGS_32);
	gdt_put(gdt, SEL_UCODE64, 0, user_limit, ACC_UCODE, FLAGS_64);
	gdt_put(gdt, SEL_TSS, (uint32_t)tss, TSS_LIMIT, ACC_TSS_BUSY, 0);
	gdt[(SEL_TSS >> 3) + 1] = tss >> 32;

	idt_write(mem + reserved + VM_X86_RSV_IDT, reserved + VM_X86_RSV_STUBS, ia32e);
	stubs_write(mem + reserved + VM_X86_RSV_STUBS);
	tss_write(mem + tss, reserved + VM_X86_RESERVED_SIZE, ia32e);
	if (spec->mode != KVMRUN_MODE_PROTECTED)
		page_tables_write(mem, reserved, spec->memory_size, ia32e);

	sregs->gdt.base = reserved + VM_X86_RSV_GDT;
	sregs->gdt.limit = GDT_LIMIT;
	sregs->idt.base = reserved + VM_X86_RSV_IDT;
	sregs->idt.limit = 256 * (ia32e ? 16 : 8) - 1;

	start_segments(spec, &sregs->cs, &sregs->ds);
	sregs->es = sregs->fs = sregs->gs = sregs->ss = sregs->ds;
	sregs->tr = (struct kvm_segment){
		.base = tss, .limit = TSS_LIMIT, .selector = SEL_TSS,
		.type = SEG_TYPE_TSS_BUSY, .present = 1,
	};
}

static void
real_mode_segments(const struct kvmrun_spec *spec, struct kvm_sregs *sregs)
{
	struct kvm_segment *segs[KVMRUN_SEG_REQUEST_COUNT] = {
		&sregs->cs, &sregs->ds, &sregs->es, &sregs->ss, &sregs->fs, &sregs->gs,
	};

	for (int i = 0; i < KVMRUN_SEG_REQUEST_COUNT; i++) {
		segs[i]->selector = spec->segments[i];
		segs[i]->base = (uint64_t)spec->segments[i] << 4;
		segs[i]->limit = 0xffff;
	}
}

static int
ioctl_error(struct kvmrun_error *err, const char *request)
{
	int saved = errno;

	kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "%s: %s", request, strerror(saved));
	return -saved;
}

int
vm_x86_vcpu_init(int vcpu_fd, const struct vm_x86_host *x86, struct kvmrun_error *err)
{
	struct kvm_cpuid2 *cpuid = (struct kvm_cpuid2 *)x86->cpuid;

	/* KVM copies the table in; the cast drops a const its ABI lacks. */
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, cpuid) < 0)
		return ioctl_error(err, "KVM_SET_CPUID2");
	return 0;
}

/*
 * XCR0 follows the vCPU's CPUID (vm_x86_cpuid_xcr0).  Real-mode code cannot
 * see it (no CR4.OSXSAVE), so there it is set only for a run that sets or
 * returns the x87/SSE/AVX state, whose registers it decides.
 */
static int
set_fpu_state(int vcpu_fd, const struct kvmrun_spec *spec, const struct vm_x86_host *x86,
	      const struct vm_x86_cpu *cpu, struct kvmrun_error *err)
{
	if ((spec->mode != KVMRUN_MODE_REAL || vm_x86_state_uses_xstate(spec)) &&
	    x86->has_xcrs && cpu->xcr0 != 0) {
		struct kvm_xcrs xcrs = {
			.nr_xcrs = 1,
			.xcrs = { { .xcr = 0, .value = cpu->xcr0 } },
		};

		if (ioctl(vcpu_fd, KVM_SET_XCRS, &xcrs) < 0)
			return ioctl_error(err, "KVM_SET_XCRS");
	}
	return 0;
}

/*
 * kvm_pvm, for one, quietly drops CR0.PG outside long mode: that alone is a
 * mode this host does not offer (unsupported).  Any other register KVM did
 * not keep is the engine's failure, and says so (internal).
 */
static int
check_sregs_kept(int vcpu_fd, const struct kvmrun_spec *spec, const struct kvm_sregs *want,
		 struct kvmrun_error *err)
{
	const uint64_t cr0_bits = CR0_PE | CR0_PG, cr4_bits = CR4_PAE | CR4_PSE;
	struct kvm_sregs got;
	bool only_pg_dropped;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &got) < 0)
		return ioctl_error(err, "KVM_GET_SREGS");
	if ((got.cr0 & cr0_bits) == (want->cr0 & cr0_bits) &&
	    (got.cr4 & cr4_bits) == (want->cr4 & cr4_bits) &&
	    (got.efer & EFER_LMA) == (want->efer & EFER_LMA))
		return 0;
	only_pg_dropped = spec->mode == KVMRUN_MODE_PAGED && !(want->efer & EFER_LMA) &&
			  (want->cr0 & CR0_PG) &&
			  (got.cr0 & cr0_bits) == (want->cr0 & cr0_bits & ~CR0_PG) &&
			  (got.cr4 & cr4_bits) == (want->cr4 & cr4_bits) &&
			  (got.efer & EFER_LMA) == (want->efer & EFER_LMA);
	kvmrun_error_set(err, only_pg_dropped ? KVMRUN_ERR_UNSUPPORTED : KVMRUN_ERR_INTERNAL,
		"mode %s: this host's KVM does not keep the control registers the "
		"mode needs (asked cr0=0x%llx cr4=0x%llx efer=0x%llx, kept cr0=0x%llx "
		"cr4=0x%llx efer=0x%llx)%s",
		kvmrun_mode_names[spec->mode], (unsigned long long)want->cr0,
		(unsigned long long)want->cr4, (unsigned long long)want->efer,
		(unsigned long long)got.cr0, (unsigned long long)got.cr4,
		(unsigned long long)got.efer,
		only_pg_dropped ? "; it dropped CR0.PG: legacy 32-bit paging is "
				  "unavailable (nested kvm_pvm pages only in long mode): "
				  "run paged mode in compatibility mode (kvmrund "
				  "--paged=auto or compat), or use mode long"
				: "");
	return only_pg_dropped ? -EOPNOTSUPP : -EIO;
}

static int
set_sregs(int vcpu_fd, uint8_t *mem, const struct kvmrun_spec *spec,
	  const struct vm_x86_host *x86, const struct vm_x86_cpu *cpu, struct kvmrun_error *err)
{
	uint64_t reserved = vm_x86_reserved_base(spec->mode, spec->memory_size);
	bool ia32e = runs_ia32e(spec, vm_x86_paging(spec, x86));
	struct kvm_sregs sregs;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return ioctl_error(err, "KVM_GET_SREGS");
	if (spec->mode == KVMRUN_MODE_REAL) {
		real_mode_segments(spec, &sregs);
	} else {
		reserved_area_write(mem, spec, ia32e, &sregs);
		sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE;
		sregs.cr4 = CR4_OSFXSR | CR4_OSXMMEXCPT | (x86->has_xcrs ? CR4_OSXSAVE : 0);
		sregs.efer = 0;
	}
	/*
	 * Compatibility mode is entered as long mode is (KVM's check: LME with
	 * PG needs LMA and PAE); only CS differs, a 32-bit one (L 0, D 1).
	 */
	if (ia32e) {
		sregs.cr0 |= CR0_PG | CR0_WP;
		sregs.cr4 |= CR4_PAE;
		sregs.cr3 = reserved + VM_X86_RSV_PML4;
		sregs.efer = EFER_LME | EFER_LMA;
	} else if (spec->mode == KVMRUN_MODE_PAGED) {
		sregs.cr0 |= CR0_PG | CR0_WP;
		sregs.cr4 |= CR4_PSE;
		sregs.cr3 = reserved + VM_X86_RSV_PML4;
	}
	vm_x86_state_sregs(spec, cpu, &sregs);
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return ioctl_error(err, "KVM_SET_SREGS");
	return check_sregs_kept(vcpu_fd, spec, &sregs, err);
}

static struct kvm_regs
kvm_regs_from(const uint64_t *value)
{
	return (struct kvm_regs){
		.rax = value[KVMRUN_REG_RAX], .rbx = value[KVMRUN_REG_RBX],
		.rcx = value[KVMRUN_REG_RCX], .rdx = value[KVMRUN_REG_RDX],
		.rsi = value[KVMRUN_REG_RSI], .rdi = value[KVMRUN_REG_RDI],
		.rsp = value[KVMRUN_REG_RSP], .rbp = value[KVMRUN_REG_RBP],
		.r8 = value[KVMRUN_REG_R8], .r9 = value[KVMRUN_REG_R9],
		.r10 = value[KVMRUN_REG_R10], .r11 = value[KVMRUN_REG_R11],
		.r12 = value[KVMRUN_REG_R12], .r13 = value[KVMRUN_REG_R13],
		.r14 = value[KVMRUN_REG_R14], .r15 = value[KVMRUN_REG_R15],
		.rip = value[KVMRUN_REG_RIP], .rflags = value[KVMRUN_REG_RFLAGS],
	};
}

static int
set_regs(int vcpu_fd, const struct kvmrun_spec *spec, struct kvmrun_error *err)
{
	uint64_t value[KVMRUN_REG_COUNT] = { 0 };
	struct kvm_regs regs;

	value[KVMRUN_REG_RIP] = spec->image.address;
	value[KVMRUN_REG_RFLAGS] = RFLAGS_FIXED | (spec->ring == 3 ? RFLAGS_IOPL3 : 0);
	if (spec->mode != KVMRUN_MODE_REAL)
		value[KVMRUN_REG_RSP] = vm_x86_reserved_base(spec->mode, spec->memory_size);
	for (int r = 0; r < KVMRUN_REG_COUNT; r++)
		if (reg_is_set(spec, r))
			value[r] = spec->regs[r];

	regs = kvm_regs_from(value);
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0) {
		if (errno == EINVAL)
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				"regs: KVM refused the initial registers (rip=0x%llx "
				"rflags=0x%llx)", (unsigned long long)regs.rip,
				(unsigned long long)regs.rflags), -EINVAL;
		return ioctl_error(err, "KVM_SET_REGS");
	}
	return 0;
}

int
vm_x86_setup(int vcpu_fd, uint8_t *mem, const struct kvmrun_spec *spec,
	     const struct vm_x86_host *x86, struct kvmrun_error *err)
{
	struct vm_x86_cpu cpu;
	int rc;

	if ((rc = vm_x86_state_cpuid(vcpu_fd, spec, x86, &cpu, err)) < 0)
		return rc;
	if ((rc = set_fpu_state(vcpu_fd, spec, x86, &cpu, err)) < 0)
		return rc;
	if ((rc = set_sregs(vcpu_fd, mem, spec, x86, &cpu, err)) < 0)
		return rc;
	if ((rc = set_regs(vcpu_fd, spec, err)) < 0)
		return rc;
	return vm_x86_state_set(vcpu_fd, spec, x86, err);
}

int
vm_x86_read_state(int vcpu_fd, struct kvmrun_result *result, struct kvmrun_error *err)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	const struct kvm_segment *segs[KVMRUN_SEG_COUNT] = {
		&sregs.cs, &sregs.ds, &sregs.es, &sregs.ss, &sregs.fs, &sregs.gs,
		&sregs.tr, &sregs.ldt,
	};

	if (ioctl(vcpu_fd, KVM_GET_REGS, &regs) < 0)
		return ioctl_error(err, "KVM_GET_REGS");
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return ioctl_error(err, "KVM_GET_SREGS");
	{
		const uint64_t value[KVMRUN_REG_COUNT] = {
			regs.rax, regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi,
			regs.rsp, regs.rbp, regs.r8, regs.r9, regs.r10, regs.r11,
			regs.r12, regs.r13, regs.r14, regs.r15, regs.rip, regs.rflags,
		};

		memcpy(result->regs, value, sizeof(value));
	}
	result->sregs.cr0 = sregs.cr0;
	result->sregs.cr2 = sregs.cr2;
	result->sregs.cr3 = sregs.cr3;
	result->sregs.cr4 = sregs.cr4;
	result->sregs.efer = sregs.efer;
	for (int i = 0; i < KVMRUN_SEG_COUNT; i++) {
		result->sregs.segments[i].selector = segs[i]->selector;
		result->sregs.segments[i].base = segs[i]->base;
	}
	return 0;
}

/* Reads an exception frame word; false when it lies outside guest memory. */
static bool
frame_word(const uint8_t *mem, uint64_t memory_size, uint64_t address, unsigned int size,
	   uint64_t *value)
{
	*value = 0;
	if (address >= memory_size || memory_size - address < size)
		return false;
	memcpy(value, mem + address, size);
	return true;
}

bool
vm_x86_decode_exception(const uint8_t *mem, const struct kvmrun_spec *spec,
			struct kvmrun_result *result)
{
	uint64_t reserved = vm_x86_reserved_base(spec->mode, spec->memory_size);
	uint64_t stubs = reserved + VM_X86_RSV_STUBS;
	uint64_t hlt = result->regs[KVMRUN_REG_RIP] - 1;
	/* IA-32e frames are 64-bit, from 32-bit compatibility code too. */
	unsigned int word = runs_ia32e(spec, result->paging) ? 8 : 4;
	uint64_t frame = result->regs[KVMRUN_REG_RSP];
	uint64_t error_code = 0, rip, cs, rflags, rsp, ss;
	unsigned int vector;
	bool has_error_code, from_user;
	struct kvmrun_exit *exit = &result->exit;

	if (spec->mode == KVMRUN_MODE_REAL || hlt < stubs ||
	    hlt >= stubs + VM_X86_VECTORS * VM_X86_STUB_SIZE || (hlt - stubs) % VM_X86_STUB_SIZE)
		return false;
	vector = (unsigned int)((hlt - stubs) / VM_X86_STUB_SIZE);
	has_error_code = vector_has_error_code(vector);
	if (has_error_code) {
		if (!frame_word(mem, spec->memory_size, frame, word, &error_code))
			return false;
		frame += word;
	}
	if (!frame_word(mem, spec->memory_size, frame, word, &rip) ||
	    !frame_word(mem, spec->memory_size, frame + word, word, &cs) ||
	    !frame_word(mem, spec->memory_size, frame + 2 * word, word, &rflags))
		return false;
	from_user = (cs & 3) == 3;
	/* 64-bit frames always hold SS:RSP; 32-bit ones only on a ring change. */
	if (word == 8 || from_user) {
		if (!frame_word(mem, spec->memory_size, frame + 3 * word, word, &rsp) ||
		    !frame_word(mem, spec->memory_size, frame + 4 * word, word, &ss))
			return false;
	} else {
		rsp = frame + 3 * word;
		ss = result->sregs.segments[KVMRUN_SEG_SS].selector;
	}

	result->regs[KVMRUN_REG_RIP] = rip;
	result->regs[KVMRUN_REG_RSP] = rsp;
	result->regs[KVMRUN_REG_RFLAGS] = rflags;
	result->sregs.segments[KVMRUN_SEG_CS].selector = (uint16_t)cs;
	result->sregs.segments[KVMRUN_SEG_SS].selector = (uint16_t)ss;

	/* HLT at CPL 3 raises #GP(0); it means the same as a ring-0 halt. */
	if (vector == 13 && error_code == 0 && from_user && rip < spec->memory_size &&
	    mem[rip] == 0xf4) {
		result->regs[KVMRUN_REG_RIP] = rip + 1;
		exit->reason = KVMRUN_EXIT_HLT;
		return true;
	}
	exit->reason = KVMRUN_EXIT_EXCEPTION;
	exit->u.exception.vector = (uint8_t)vector;
	exit->u.exception.has_error_code = has_error_code;
	exit->u.exception.error_code = (uint32_t)error_code;
	exit->u.exception.rip = rip;
	exit->u.exception.cs = (uint16_t)cs;
	exit->u.exception.cr2 = result->sregs.cr2;
	return true;
}

/*
 * What the engine carries out for a ring-3 guest is only what the CPU
 * itself would allow it, checked here against what such a guest can reach.
 * It runs only at CPL 3 (exceptions go to the engine's stubs, which halt),
 * so it cannot load CR3, the GDTR or an LDT, change IOPL, or write the
 * reserved area: its segment registers hold a null selector or one of the
 * three user descriptors (DPL 0 ones and the TSS cannot be loaded at CPL 3),
 * with the descriptors reserved_area_write put there.  In 32-bit code FS
 * and GS bases come only from those loads (a request gives fs_base and
 * gs_base in long mode only), so they are 0; 64-bit code may start with
 * others and change them (wrfsbase, swapgs), so there the checks take them
 * from the vCPU, as the CPU does.  The page tables are page_tables_write's.
 */

/* A user descriptor of the engine's GDT, as the CPU checks it in 32-bit code. */
struct user_segment {
	uint64_t limit;		/* bytes, expand-up */
	bool writable;		/* data; code ones are readable and not writable */
};

/* False for a selector no user descriptor answers: null, DPL 0, TSS, LDT. */
static bool
user_segment(const struct kvmrun_spec *spec, uint16_t selector, struct user_segment *segment)
{
	switch (selector & ~3) {	/* the RPL does not change the descriptor */
	case SEL_UCODE32 & ~3:
	case SEL_UCODE64 & ~3:
		segment->writable = false;
		break;
	case SEL_UDATA & ~3:
		segment->writable = true;
		break;
	default:
		return false;
	}
	segment->limit = (uint64_t)user_limit_pages(spec) << 12 | 0xfff;
	return true;
}

/*
 * Whether code at CPL 3 may read (or WRITE) LENGTH bytes at linear ADDRESS
 * through the engine's translation, and they are guest memory the engine
 * may hand over.  Without paging linear is physical; paged and long mode
 * identity-map 4 GiB (page_tables_write), user and writable everywhere
 * except the reserved area, which is supervisor-only.  So the answer is the
 * same in every mode: below the reserved area.  Past the end of memory the
 * map is user but unbacked (an mmio exit for the CPU), and past 4 GiB
 * nothing is mapped; the engine carries out neither, so the instruction
 * ends as the #GP it took.  WRITE does not matter: every user page is
 * writable.
 */
static bool
user_linear_ok(const struct kvmrun_spec *spec, uint64_t address, uint64_t length, bool write)
{
	uint64_t reserved = vm_x86_reserved_base(spec->mode, spec->memory_size);

	(void)write;
	return spec->mode != KVMRUN_MODE_REAL && address < reserved && length <= reserved - address;
}

static uint64_t
address_mask(uint8_t address_size)
{
	return address_size == 8 ? UINT64_MAX : (1ull << (8 * address_size)) - 1;
}

/* Writes VALUE to REG as the CPU writes an address-size register. */
static void
address_assign(uint8_t address_size, uint64_t *reg, uint64_t value)
{
	if (address_size == 2)
		*reg = (*reg & ~0xffffull) | (value & 0xffff);
	else
		*reg = value & address_mask(address_size); /* 32 bits zero-extend */
}

/* A segment-override prefix: which segment it names. */
static bool
segment_prefix(uint8_t byte, enum kvmrun_seg *segment)
{
	static const struct {
		uint8_t byte;
		enum kvmrun_seg segment;
	} prefixes[] = {
		{ 0x26, KVMRUN_SEG_ES }, { 0x2e, KVMRUN_SEG_CS }, { 0x36, KVMRUN_SEG_SS },
		{ 0x3e, KVMRUN_SEG_DS }, { 0x64, KVMRUN_SEG_FS }, { 0x65, KVMRUN_SEG_GS },
	};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		if (prefixes[i].byte == byte) {
			*segment = prefixes[i].segment;
			return true;
		}
	}
	return false;
}

/*
 * Decodes in, out, ins and outs with their prefixes (a REX byte changes
 * none of them: REX.W is ignored).  Refused (false, the
 * run ends as the #GP it took), though the CPU may allow them:
 *  - an instruction in another code segment than the run started in (long
 *    mode's 32-bit compatibility code, or the 16-bit one selector 0x33 is in
 *    32-bit mode): the engine resumes a guest in its start segment only;
 *  - more than one segment-override prefix;
 *  - instruction bytes reaching into the reserved area or past memory.
 */
bool
vm_x86_decode_user_pio(const uint8_t *mem, const struct kvmrun_spec *spec,
		       const struct kvmrun_result *result, struct vm_x86_pio *pio)
{
	bool long_mode = spec->mode == KVMRUN_MODE_LONG;
	uint64_t reserved = vm_x86_reserved_base(spec->mode, spec->memory_size);
	uint64_t rip = result->regs[KVMRUN_REG_RIP];
	uint16_t cs = result->sregs.segments[KVMRUN_SEG_CS].selector;
	enum kvmrun_seg segment = KVMRUN_SEG_DS;
	unsigned int i, available, overrides = 0;
	uint8_t insn[KVMRUN_INSN_BYTES_MAX], opcode;

	memset(pio, 0, sizeof(*pio));
	if (spec->mode == KVMRUN_MODE_REAL || spec->ring != 3 ||
	    cs != (long_mode ? SEL_UCODE64 : SEL_UCODE32) || !user_linear_ok(spec, rip, 1, false))
		return false;
	available = reserved - rip < sizeof(insn) ? (unsigned int)(reserved - rip) : sizeof(insn);
	memcpy(insn, mem + rip, available);
	pio->size = 4;
	pio->address_size = long_mode ? 8 : 4;
	for (i = 0; i < available; i++) {
		if (insn[i] == 0x66)
			pio->size = 2;
		else if (insn[i] == 0x67)
			pio->address_size = long_mode ? 4 : 2;
		else if (insn[i] == 0xf3 || insn[i] == 0xf2)
			pio->rep = true;
		else if (segment_prefix(insn[i], &segment))
			overrides++;
		else if (!(long_mode && (insn[i] & 0xf0) == 0x40))
			break;	/* not a prefix nor, in 64-bit code, a REX byte */
	}
	if (i >= available || overrides > 1)
		return false;
	opcode = insn[i];
	pio->length = i + 1;
	pio->port = (uint16_t)result->regs[KVMRUN_REG_RDX];
	pio->is_in = !(opcode & 0x02);
	if (!(opcode & 0x01))
		pio->size = 1;
	switch (opcode) {
	case 0xe4: case 0xe5: case 0xe6: case 0xe7:	/* in/out with an imm8 port */
		if (pio->length >= available)
			return false;
		pio->port = insn[i + 1];
		pio->length++;
		return true;
	case 0xec: case 0xed: case 0xee: case 0xef:	/* in/out with the port in dx */
		return true;
	case 0x6c: case 0x6d: case 0x6e: case 0x6f:	/* ins/outs */
		pio->string = true;
		pio->is_in = opcode < 0x6e;
		/* ins always writes through es; outs reads through ds or the override. */
		pio->segment = pio->is_in ? KVMRUN_SEG_ES : segment;
		return true;
	default:
		return false;
	}
}

uint64_t
vm_x86_pio_count(const struct vm_x86_pio *pio, const uint64_t *regs)
{
	if (!pio->string || !pio->rep)
		return 1;
	return regs[KVMRUN_REG_RCX] & address_mask(pio->address_size);
}

/*
 * The segment checks follow the CPU's.  In 64-bit code there are none
 * (no limits, no types, null selectors allowed) and only FS and GS have a
 * base; in 32-bit code the selector must name a user descriptor, writable
 * for ins, and the element must lie within its limit, else the CPU raises
 * #GP(0).  Refused though the CPU may allow it: an element that straddles
 * the wrap of its address size (a word at di 0xffff under 0x67).
 */
bool
vm_x86_pio_element(const struct kvmrun_spec *spec, const struct kvmrun_result *result,
		   const struct vm_x86_pio *pio, uint64_t n, uint64_t *gpa)
{
	const uint64_t *regs = result->regs;
	uint64_t mask = address_mask(pio->address_size);
	uint64_t step = (uint64_t)pio->size * n, last = pio->size - 1u;
	uint64_t index = regs[pio->is_in ? KVMRUN_REG_RDI : KVMRUN_REG_RSI];
	bool down = regs[KVMRUN_REG_RFLAGS] & RFLAGS_DF;
	uint64_t offset = (down ? index - step : index + step) & mask;
	uint64_t linear;

	if (!pio->string || last > mask - offset)
		return false;
	if (spec->mode == KVMRUN_MODE_LONG) {
		uint64_t base = 0;

		if (pio->segment == KVMRUN_SEG_FS || pio->segment == KVMRUN_SEG_GS)
			base = result->sregs.segments[pio->segment].base;
		linear = base + offset;
		if (!is_canonical(linear) || !is_canonical(linear + last))
			return false;
	} else {
		struct user_segment segment;

		if (!user_segment(spec, result->sregs.segments[pio->segment].selector, &segment) ||
		    (pio->is_in && !segment.writable) || offset > segment.limit ||
		    last > segment.limit - offset)
			return false;
		linear = offset;	/* every user descriptor has base 0 */
	}
	if (!user_linear_ok(spec, linear, pio->size, pio->is_in))
		return false;
	*gpa = linear;		/* the identity map */
	return true;
}

void
vm_x86_pio_advance(const struct vm_x86_pio *pio, uint64_t *regs, uint64_t count)
{
	enum kvmrun_reg index = pio->is_in ? KVMRUN_REG_RDI : KVMRUN_REG_RSI;
	uint64_t bytes = count * pio->size;
	bool down = regs[KVMRUN_REG_RFLAGS] & RFLAGS_DF;

	if (!pio->string)
		return;
	address_assign(pio->address_size, &regs[index],
		       down ? regs[index] - bytes : regs[index] + bytes);
	if (pio->rep)
		address_assign(pio->address_size, &regs[KVMRUN_REG_RCX],
			       regs[KVMRUN_REG_RCX] - count);
}

bool
vm_x86_user_io_allowed(const struct kvmrun_spec *spec)
{
	if (spec->ring != 3)
		return false;
	if (!reg_is_set(spec, KVMRUN_REG_RFLAGS))
		return true;
	return (spec->regs[KVMRUN_REG_RFLAGS] & RFLAGS_IOPL3) == RFLAGS_IOPL3;
}

int
vm_x86_resume_user(int vcpu_fd, const struct kvmrun_spec *spec, const uint64_t *regs,
		   struct kvmrun_error *err)
{
	struct kvm_regs kregs = kvm_regs_from(regs);
	struct kvm_sregs sregs;
	struct kvm_segment data;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return ioctl_error(err, "KVM_GET_SREGS");
	start_segments(spec, &sregs.cs, &data);
	sregs.ss = data;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return ioctl_error(err, "KVM_SET_SREGS");
	if (ioctl(vcpu_fd, KVM_SET_REGS, &kregs) < 0)
		return ioctl_error(err, "KVM_SET_REGS");
	return 0;
}
