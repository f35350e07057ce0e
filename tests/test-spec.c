/*
 * The engine's rules for a run spec (vm_check_spec), checked without a host:
 * every refusal with the code and the words that name what is at fault.
 * Needs no /dev/kvm, so it runs everywhere.
 */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "vm-test.h"
#include "vm-x86.h"
#include "vm.h"

#define MIB (1ull << 20)

static uint8_t hlt = 0xf4;

/* A one-byte HLT image in MODE, the protocol's defaults for the rest. */
static void
spec_for(struct kvmrun_spec *spec, enum kvmrun_mode mode)
{
	kvmrun_spec_init(spec);
	spec->mode = mode;
	spec->image.data = &hlt;
	spec->image.length = 1;
}

static void
expect(const struct kvmrun_spec *spec, enum kvmrun_errcode code, const char *words,
       const char *what)
{
	struct kvmrun_error err = { .code = KVMRUN_OK };
	int rc = vm_check_spec(NULL, spec, &err);

	vm_test_expect(rc, &err, code, words, what);
}

static void
test_memory(void)
{
	struct kvmrun_spec spec;

	spec_for(&spec, KVMRUN_MODE_REAL);
	spec.memory_size = 3000;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "not a multiple of 4096",
	       "memory_size not a multiple of a page");
	spec.memory_size = KVMRUN_PAGE_SIZE;
	expect(&spec, KVMRUN_OK, "", "one page of memory in real mode");
	for (int mode = KVMRUN_MODE_PROTECTED; mode < KVMRUN_MODE_COUNT; mode++) {
		spec_for(&spec, mode);
		spec.memory_size = VM_X86_MIN_MEMORY_PROTECTED - KVMRUN_PAGE_SIZE;
		expect(&spec, KVMRUN_ERR_BAD_REQUEST, "below",
		       kvmrun_mode_names[mode]);
		spec.memory_size = VM_X86_MIN_MEMORY_PROTECTED;
		expect(&spec, KVMRUN_OK, "", kvmrun_mode_names[mode]);
	}
	spec_for(&spec, KVMRUN_MODE_LONG);
	spec.memory_size = VM_X86_MAX_MEMORY + KVMRUN_PAGE_SIZE;
	expect(&spec, KVMRUN_ERR_TOO_LARGE, "engine's limit",
	       "memory_size past what the identity map covers");
	spec.memory_size = VM_X86_MAX_MEMORY;
	expect(&spec, KVMRUN_OK, "", "memory_size at the engine's limit");
	spec_for(&spec, KVMRUN_MODE_REAL);
	spec.timeout_ms = 0;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "timeout_ms", "a timeout of 0 ms");
}

static void
test_ranges(void)
{
	uint64_t reserved = vm_x86_reserved_base(KVMRUN_MODE_PROTECTED, 2 * MIB);
	struct kvmrun_blob region = { .data = &hlt, .length = 1 };
	struct kvmrun_range dump;
	struct kvmrun_spec spec;

	spec_for(&spec, KVMRUN_MODE_PROTECTED);
	spec.image.address = reserved - 1;
	expect(&spec, KVMRUN_OK, "", "an image ending where the reserved area starts");
	spec.image.address = reserved;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "reserved area",
	       "an image in the engine's reserved area");
	spec_for(&spec, KVMRUN_MODE_REAL);
	spec.memory_size = 0x10000;
	spec.image.address = 0xffff;
	expect(&spec, KVMRUN_OK, "", "real mode has no reserved area: the last byte is the guest's");
	spec.memory_size = 2 * MIB;
	spec.image.address = 2 * MIB;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "outside guest memory", "an image past memory");

	spec_for(&spec, KVMRUN_MODE_LONG);
	spec.regions = &region;
	spec.region_count = 1;
	region.address = 2 * MIB;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "regions[0]", "a region outside memory");
	region.address = UINT64_MAX;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "regions[0]",
	       "a region whose end wraps around");
	region.address = vm_x86_reserved_base(KVMRUN_MODE_LONG, 2 * MIB) + 16;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "reserved area",
	       "a region over the reserved area");
	region.address = 0x8000;
	expect(&spec, KVMRUN_OK, "", "a region in guest memory");

	spec_for(&spec, KVMRUN_MODE_LONG);
	spec.dumps = &dump;
	spec.dump_count = 1;
	dump = (struct kvmrun_range){ 2 * MIB - 4, 8 };
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "dump[0]", "a dump past memory");
	dump = (struct kvmrun_range){ reserved, 16 };
	expect(&spec, KVMRUN_OK, "", "a dump of the reserved area (it may be read)");
	dump = (struct kvmrun_range){ 0, 0 };
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "empty", "an empty dump");
}

static void
test_ring_ports_regs(void)
{
	uint16_t ports[] = { 0x80, KVMRUN_CONSOLE_PORT };
	struct kvmrun_spec spec;

	spec_for(&spec, KVMRUN_MODE_REAL);
	spec.ring = 3;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "real mode has no ring 3", "ring 3 in real mode");
	spec_for(&spec, KVMRUN_MODE_LONG);
	spec.ring = 1;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "ring", "ring 1");
	spec.ring = 3;
	expect(&spec, KVMRUN_OK, "", "ring 3 in long mode");

	spec_for(&spec, KVMRUN_MODE_REAL);
	spec.log_ports = ports;
	spec.log_port_count = 2;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "log_ports[1]: 0xe9 is the console port",
	       "log_ports holding the console port");
	spec.log_port_count = 1;
	expect(&spec, KVMRUN_OK, "", "log_ports without the console port");

	spec_for(&spec, KVMRUN_MODE_REAL);
	spec.regs[KVMRUN_REG_RIP] = 0x12345;
	spec.regs_set = 1u << KVMRUN_REG_RIP;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "regs.rip", "a real-mode rip past 0xffff");
	spec_for(&spec, KVMRUN_MODE_PROTECTED);
	spec.regs[KVMRUN_REG_RIP] = 1ull << 32;
	spec.regs_set = 1u << KVMRUN_REG_RIP;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "past 4 GiB", "a 32-bit rip past 4 GiB");
	spec_for(&spec, KVMRUN_MODE_LONG);
	spec.regs[KVMRUN_REG_RIP] = 0x0000800000000000ull;
	spec.regs_set = 1u << KVMRUN_REG_RIP;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "canonical", "a non-canonical rip");
	spec_for(&spec, KVMRUN_MODE_LONG);
	spec.regs_set = 1u << KVMRUN_REG_RFLAGS;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "regs.rflags", "rflags without bit 1");
	spec.regs[KVMRUN_REG_RFLAGS] = 0x2;
	expect(&spec, KVMRUN_OK, "", "rflags with only bit 1 (IOPL 0)");
}

/* A library caller's spec, not only the codec's, is held to trace's rule. */
static void
test_trace_needs_steps(void)
{
	struct kvmrun_spec spec;

	spec_for(&spec, KVMRUN_MODE_LONG);
	spec.trace = true;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "trace: needs max_instructions",
	       "trace without max_instructions");
	spec.max_instructions = 1;
	expect(&spec, KVMRUN_OK, "", "trace with max_instructions");
	spec.changes = true;
	expect(&spec, KVMRUN_OK, "", "changes with the rest");
	spec.regs[KVMRUN_REG_RFLAGS] = 0x102;
	spec.regs_set = 1u << KVMRUN_REG_RFLAGS;
	expect(&spec, KVMRUN_ERR_BAD_REQUEST, "regs.rflags: TF (bit 8)",
	       "rflags with TF while stepping");
	spec.max_instructions = 0;
	spec.trace = false;
	expect(&spec, KVMRUN_OK, "", "rflags with TF, not stepped");
}

int
main(void)
{
	test_memory();
	test_ranges();
	test_ring_ports_regs();
	test_trace_needs_steps();
	return tap_done();
}
