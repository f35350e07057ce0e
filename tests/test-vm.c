/*
 * The KVM engine on real /dev/kvm: real guests (GNU as sources in tests/guests, assembled
 * by the build) in every mode, every exit, the limits and the layout checks.
 * Skips, with the reason, where /dev/kvm cannot be used.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "vm-x86.h"
#include "vm.h"

static struct kvmrun_host *host;
static const char *guest_dir;

static void
load_guest(const char *name, struct kvmrun_spec *spec)
{
	char path[4096];
	FILE *f;
	long size;

	snprintf(path, sizeof(path), "%s/%s.bin", guest_dir, name);
	f = fopen(path, "rb");
	if (f == NULL || fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) <= 0 ||
	    fseek(f, 0, SEEK_SET) < 0) {
		printf("Bail out! guest %s: %s\n", path, strerror(errno));
		exit(99);
	}
	spec->image.data = malloc((size_t)size);
	spec->image.length = (size_t)size;
	if (spec->image.data == NULL || fread(spec->image.data, 1, (size_t)size, f) != (size_t)size) {
		printf("Bail out! guest %s: short read\n", path);
		exit(99);
	}
	fclose(f);
}

static void
spec_for(struct kvmrun_spec *spec, const char *guest, enum kvmrun_mode mode)
{
	kvmrun_spec_init(spec);
	spec->mode = mode;
	load_guest(guest, spec);
}

static void
set_reg(struct kvmrun_spec *spec, enum kvmrun_reg reg, uint64_t value)
{
	spec->regs[reg] = value;
	spec->regs_set |= 1u << reg;
}

static void
add_dump(struct kvmrun_spec *spec, uint64_t address, uint64_t length)
{
	spec->dumps = realloc(spec->dumps, (spec->dump_count + 1) * sizeof(*spec->dumps));
	spec->dumps[spec->dump_count++] = (struct kvmrun_range){ address, length };
}

/* Runs SPEC; false (with a diagnostic) when the engine refused it. */
static bool
run(const struct kvmrun_spec *spec, struct kvmrun_result *result, struct kvmrun_error *err)
{
	kvmrun_result_init(result);
	if (vm_run_fresh(host, spec, result, err) < 0) {
		tap_diag("run refused: %s: %s", kvmrun_errcode_names[err->code], err->message);
		return false;
	}
	return true;
}

static bool
skip_unsupported(const char *name, enum kvmrun_mode mode)
{
	const char *why = vm_host_mode_unsupported(host, mode);

	if (why == NULL)
		return false;
	tap_skip(name, "%s", why);
	return true;
}

static void
test_unsupported_mode_refused(enum kvmrun_mode mode)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;

	spec_for(&spec, "hello-protected", mode);
	/* Only legacy paging may be missing, and only for the dropped CR0.PG. */
	tap_ok(!run(&spec, &result, &err) && err.code == KVMRUN_ERR_UNSUPPORTED &&
		       mode == KVMRUN_MODE_PAGED &&
		       strstr(err.message, kvmrun_mode_names[mode]) != NULL &&
		       strstr(err.message, "dropped CR0.PG") != NULL,
	       "%s mode is refused as unsupported, saying why: %s",
	       kvmrun_mode_names[mode], err.message);
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_hello(const char *guest, enum kvmrun_mode mode, unsigned int ring)
{
	static const char hello[] = "Hello, world!\n";
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;
	char name[96];

	snprintf(name, sizeof(name), "hello world in %s mode, ring %u", kvmrun_mode_names[mode],
		 ring);
	if (skip_unsupported(name, mode)) {
		test_unsupported_mode_refused(mode);
		return;
	}
	spec_for(&spec, guest, mode);
	spec.ring = ring;
	add_dump(&spec, 0x400, 1);
	if (!run(&spec, &result, &err)) {
		tap_ok(0, "%s", name);
	} else {
		tap_ok(result.exit.reason == KVMRUN_EXIT_HLT, "%s: halts (got %s)", name,
		       kvmrun_exit_reason_names[result.exit.reason]);
		tap_ok(result.console_length == sizeof(hello) - 1 &&
			       memcmp(result.console, hello, sizeof(hello) - 1) == 0,
		       "%s: console says Hello, world!", name);
		tap_ok(result.dump_count == 1 && result.dumps[0].data[0] == 42,
		       "%s: 42 stored at 0x400", name);
		tap_ok((result.regs[KVMRUN_REG_RBX] & 0xffff) == 0x4b4f &&
			       result.regs[KVMRUN_REG_RIP] > spec.image.address &&
			       result.regs[KVMRUN_REG_RIP] < spec.image.address + spec.image.length,
		       "%s: rbx=0x%llx and rip=0x%llx inside the image", name,
		       (unsigned long long)result.regs[KVMRUN_REG_RBX],
		       (unsigned long long)result.regs[KVMRUN_REG_RIP]);
	}
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static uint32_t
fnv1a_0_to_255(void)
{
	uint32_t hash = 0x811c9dc5;

	for (unsigned int b = 0; b < 256; b++)
		hash = (hash ^ b) * 0x01000193;
	return hash;
}

static void
test_checksum(const char *guest, enum kvmrun_mode mode, unsigned int ring)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;
	uint32_t want = fnv1a_0_to_255(), stored = 0;
	char name[96];

	snprintf(name, sizeof(name), "FNV-1a checksum in %s mode, ring %u",
		 kvmrun_mode_names[mode], ring);
	if (skip_unsupported(name, mode))
		return;
	spec_for(&spec, guest, mode);
	spec.ring = ring;
	add_dump(&spec, 0x500, 4);
	if (run(&spec, &result, &err) && result.dump_count == 1)
		memcpy(&stored, result.dumps[0].data, 4);
	tap_ok(result.exit.reason == KVMRUN_EXIT_HLT &&
		       (uint32_t)result.regs[KVMRUN_REG_RAX] == want && stored == want,
	       "%s: eax=0x%08x, stored 0x%08x, expected 0x%08x", name,
	       (uint32_t)result.regs[KVMRUN_REG_RAX], stored, want);
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_regs_round_trip(const char *guest, enum kvmrun_mode mode, int stored_regs,
		     unsigned int width)
{
	/* The order regs-*.S stores them in. */
	static const enum kvmrun_reg order[] = {
		KVMRUN_REG_RAX, KVMRUN_REG_RBX, KVMRUN_REG_RCX, KVMRUN_REG_RDX,
		KVMRUN_REG_RSI, KVMRUN_REG_RDI, KVMRUN_REG_RBP, KVMRUN_REG_RSP,
		KVMRUN_REG_R8, KVMRUN_REG_R9, KVMRUN_REG_R10, KVMRUN_REG_R11,
		KVMRUN_REG_R12, KVMRUN_REG_R13, KVMRUN_REG_R14, KVMRUN_REG_R15,
	};
	uint64_t mask = width == 8 ? UINT64_MAX : UINT32_MAX;
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;
	bool seen = true, back = true;

	spec_for(&spec, guest, mode);
	for (int i = 0; i < stored_regs; i++)
		set_reg(&spec, order[i], (0x1111111111111111ull * (uint64_t)(i + 1)) ^
						 (order[i] == KVMRUN_REG_RSP ? 0xf : 0));
	set_reg(&spec, KVMRUN_REG_RFLAGS, 0x2 | 0x1 | 0x800); /* CF and OF */
	add_dump(&spec, 0x600, (uint64_t)stored_regs * width);
	if (run(&spec, &result, &err) && result.dump_count == 1) {
		for (int i = 0; i < stored_regs; i++) {
			uint64_t got = 0;

			memcpy(&got, result.dumps[0].data + i * width, width);
			if (got != (spec.regs[order[i]] & mask)) {
				tap_diag("guest saw %s=0x%llx, asked 0x%llx",
					 kvmrun_reg_names[order[i]], (unsigned long long)got,
					 (unsigned long long)spec.regs[order[i]]);
				seen = false;
			}
			if (result.regs[order[i]] != spec.regs[order[i]]) {
				tap_diag("%s came back 0x%llx", kvmrun_reg_names[order[i]],
					 (unsigned long long)result.regs[order[i]]);
				back = false;
			}
		}
	} else {
		seen = back = false;
	}
	tap_ok(seen, "%s mode: the guest sees every initial register", kvmrun_mode_names[mode]);
	tap_ok(back && (result.regs[KVMRUN_REG_RFLAGS] & 0x801) == 0x801,
	       "%s mode: every register and rflags come back", kvmrun_mode_names[mode]);
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_timeout(const char *guest, enum kvmrun_mode mode)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;

	spec_for(&spec, guest, mode);
	spec.timeout_ms = 100;
	run(&spec, &result, &err);
	tap_ok(result.exit.reason == KVMRUN_EXIT_TIMEOUT && result.run_ns >= 100000000ull &&
		       result.regs[KVMRUN_REG_RIP] >= spec.image.address &&
		       result.regs[KVMRUN_REG_RIP] < spec.image.address + spec.image.length,
	       "%s mode: jmp . with interrupts off ends as timeout (%s after %llu ms) with "
	       "rip=0x%llx in the loop", kvmrun_mode_names[mode],
	       kvmrun_exit_reason_names[result.exit.reason],
	       (unsigned long long)(result.run_ns / 1000000),
	       (unsigned long long)result.regs[KVMRUN_REG_RIP]);
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_mmio(void)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;
	static const uint8_t written[4] = { 0x78, 0x56, 0x34, 0x12 };

	spec_for(&spec, "mmio-protected", KVMRUN_MODE_PROTECTED);
	run(&spec, &result, &err);
	tap_ok(result.exit.reason == KVMRUN_EXIT_MMIO && result.exit.u.mmio.is_write &&
		       result.exit.u.mmio.address == 0x10000000 &&
		       result.exit.u.mmio.length == 4 &&
		       memcmp(result.exit.u.mmio.data, written, 4) == 0,
	       "protected mode: a write past guest memory is an mmio exit with address, "
	       "length and data");
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);

	spec_for(&spec, "mmio-long", KVMRUN_MODE_LONG);
	run(&spec, &result, &err);
	tap_ok(result.exit.reason == KVMRUN_EXIT_MMIO && !result.exit.u.mmio.is_write &&
		       result.exit.u.mmio.address == 0x80000000 && result.exit.u.mmio.length == 8,
	       "long mode: a read past guest memory is an mmio exit");
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_io(void)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;

	spec_for(&spec, "out-port-real", KVMRUN_MODE_REAL);
	run(&spec, &result, &err);
	tap_ok(result.exit.reason == KVMRUN_EXIT_IO && result.exit.u.io.port == 0x80 &&
		       !result.exit.u.io.is_in && result.exit.u.io.size == 1 &&
		       result.exit.u.io.count == 1 && result.exit.u.io.data_length == 1 &&
		       result.exit.u.io.data[0] == 0x42,
	       "an OUT to a port that is neither console nor log ends as io with port, "
	       "direction, size, count and data");
	kvmrun_result_free(&result);

	spec.log_ports = malloc(sizeof(*spec.log_ports));
	spec.log_ports[0] = 0x80;
	spec.log_port_count = 1;
	run(&spec, &result, &err);
	tap_ok(result.exit.reason == KVMRUN_EXIT_HLT && result.io_log_count == 2 &&
		       result.io_log[0].port == 0x80 && result.io_log[0].value == 0x42 &&
		       result.io_log[1].value == 0x43 && result.io_log[1].size == 1 &&
		       (result.regs[KVMRUN_REG_RBX] & 0xff) == 0xff,
	       "a log port records each OUT, reads all-ones, and the run goes on to hlt");
	kvmrun_result_free(&result);

	spec.io_log_max = 1;
	run(&spec, &result, &err);
	tap_ok(result.exit.reason == KVMRUN_EXIT_OUTPUT_LIMIT &&
		       !result.exit.u.output_limit.console && result.io_log_truncated &&
		       result.io_log_count == 1,
	       "a full io log ends the run as output_limit, flagged truncated");
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_triple_fault(void)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;

	spec_for(&spec, "triple-fault-protected", KVMRUN_MODE_PROTECTED);
	run(&spec, &result, &err);
	tap_ok(result.exit.reason == KVMRUN_EXIT_SHUTDOWN,
	       "a guest with an empty IDT of its own that faults ends as shutdown (got %s)",
	       kvmrun_exit_reason_names[result.exit.reason]);
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_console_bound(unsigned int ring)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;

	spec_for(&spec, "console-flood-long", KVMRUN_MODE_LONG);
	spec.ring = ring;
	spec.console_max = 64 << 10;
	spec.timeout_ms = 10000;
	run(&spec, &result, &err);
	tap_ok(result.exit.reason == KVMRUN_EXIT_OUTPUT_LIMIT &&
		       result.exit.u.output_limit.console && result.console_truncated &&
		       result.console_length == spec.console_max,
	       "ring %u: a console flood stops at the bound (%zu bytes) as output_limit",
	       ring, result.console_length);
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
expect_refused(struct kvmrun_spec *spec, enum kvmrun_errcode code, const char *words,
	       const char *name)
{
	struct kvmrun_result result;
	struct kvmrun_error err = { 0 };
	bool refused = !run(spec, &result, &err);

	tap_ok(refused && err.code == code && strstr(err.message, words) != NULL,
	       "%s: %s: %s", name, kvmrun_errcode_names[err.code], err.message);
	kvmrun_result_free(&result);
	kvmrun_spec_free(spec);
}

static void
test_refusals(void)
{
	struct kvmrun_spec spec;
	uint64_t reserved = vm_x86_reserved_base(KVMRUN_MODE_PROTECTED,
						 KVMRUN_DEFAULT_MEMORY_SIZE);

	spec_for(&spec, "hello-protected", KVMRUN_MODE_PROTECTED);
	spec.image.address = reserved - 8;
	expect_refused(&spec, KVMRUN_ERR_BAD_REQUEST, "reserved area",
		       "an image overlapping the engine's tables");

	spec_for(&spec, "hello-real", KVMRUN_MODE_REAL);
	spec.image.address = KVMRUN_DEFAULT_MEMORY_SIZE + 0x1000;
	expect_refused(&spec, KVMRUN_ERR_BAD_REQUEST, "outside guest memory",
		       "a load address past memory");

	spec_for(&spec, "hello-real", KVMRUN_MODE_REAL);
	spec.memory_size = 3000;
	expect_refused(&spec, KVMRUN_ERR_BAD_REQUEST, "not a multiple of 4096",
		       "an unaligned memory size");

	spec_for(&spec, "hello-real", KVMRUN_MODE_REAL);
	spec.ring = 3;
	expect_refused(&spec, KVMRUN_ERR_BAD_REQUEST, "ring", "ring 3 in real mode");

	spec_for(&spec, "hello-real", KVMRUN_MODE_REAL);
	set_reg(&spec, KVMRUN_REG_RIP, 0x12345);
	expect_refused(&spec, KVMRUN_ERR_BAD_REQUEST, "regs.rip", "a real-mode rip past 0xffff");

	spec_for(&spec, "hello-long", KVMRUN_MODE_LONG);
	set_reg(&spec, KVMRUN_REG_RIP, 0x0000800000000000ull);
	expect_refused(&spec, KVMRUN_ERR_BAD_REQUEST, "canonical", "a non-canonical rip");

	spec_for(&spec, "hello-long", KVMRUN_MODE_LONG);
	set_reg(&spec, KVMRUN_REG_RFLAGS, 0);
	expect_refused(&spec, KVMRUN_ERR_BAD_REQUEST, "regs.rflags", "rflags without bit 1");

	spec_for(&spec, "hello-long", KVMRUN_MODE_LONG);
	add_dump(&spec, KVMRUN_DEFAULT_MEMORY_SIZE - 4, 8);
	expect_refused(&spec, KVMRUN_ERR_BAD_REQUEST, "dump[0]", "a dump past memory");
}

static void
test_isolation(void)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;
	static const uint8_t hlt = 0xf4;
	uint8_t zero[4] = { 0 };

	spec_for(&spec, "checksum-long", KVMRUN_MODE_LONG);
	run(&spec, &result, &err);
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);

	kvmrun_spec_init(&spec);
	spec.mode = KVMRUN_MODE_LONG;
	spec.image.data = malloc(1);
	spec.image.data[0] = hlt;
	spec.image.length = 1;
	add_dump(&spec, 0x500, 4);
	tap_ok(run(&spec, &result, &err) && result.dump_count == 1 &&
		       memcmp(result.dumps[0].data, zero, 4) == 0,
	       "a second run sees zeros where the first one wrote its checksum");
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

struct cancel_arg {
	struct kvmrun_vm *vm;
	pthread_mutex_t lock;
	pthread_cond_t ready;
	bool created;
};

static void *
cancel_thread(void *opaque)
{
	struct cancel_arg *arg = opaque;
	struct timespec pause = { 0, 50 * 1000000L };

	pthread_mutex_lock(&arg->lock);
	while (!arg->created)
		pthread_cond_wait(&arg->ready, &arg->lock);
	pthread_mutex_unlock(&arg->lock);
	nanosleep(&pause, NULL);
	vm_cancel(arg->vm);
	return NULL;
}

static void
test_cancel(void)
{
	struct cancel_arg arg = { .lock = PTHREAD_MUTEX_INITIALIZER,
				  .ready = PTHREAD_COND_INITIALIZER };
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;
	pthread_t thread;
	int rc = -1;

	spec_for(&spec, "loop-long", KVMRUN_MODE_LONG);
	spec.timeout_ms = 10000;
	kvmrun_result_init(&result);
	pthread_create(&thread, NULL, cancel_thread, &arg);
	if (vm_create(host, spec.memory_size, &arg.vm, &err) == 0) {
		pthread_mutex_lock(&arg.lock);
		arg.created = true;
		pthread_cond_signal(&arg.ready);
		pthread_mutex_unlock(&arg.lock);
		rc = vm_run(arg.vm, &spec, &result, &err);
		pthread_join(thread, NULL);
		vm_destroy(arg.vm);
	}
	tap_ok(rc == 0 && result.exit.reason == KVMRUN_EXIT_CANCELLED &&
		       result.run_ns < 5000000000ull,
	       "vm_cancel from another thread stops a spinning guest (%s after %llu ms)",
	       kvmrun_exit_reason_names[result.exit.reason],
	       (unsigned long long)(result.run_ns / 1000000));
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

/* The same sum as tests/guests/compute-c.c, computed natively. */
static unsigned long long
basel_scaled(unsigned long long n)
{
	double sum = 0.0;

	for (unsigned long long i = 1; i <= n; i++)
		sum += 1.0 / ((double)i * (double)i);
	return (unsigned long long)(sum * 1e12);
}

/*
 * A guest from the system C compiler uses SSE.  At ring 3 in long mode it
 * runs natively everywhere; at ring 0 a host that emulates ring-0 code
 * (kvm_pvm) cannot run SSE, and the run must then name the instruction.
 */
static void
test_compiled_guest(unsigned int ring)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;
	unsigned long long want = basel_scaled(1000);
	const struct kvmrun_exit *exit = &result.exit;

	spec_for(&spec, "compute-c", KVMRUN_MODE_LONG);
	spec.ring = ring;
	set_reg(&spec, KVMRUN_REG_RDI, 1000);
	run(&spec, &result, &err);
	if (ring == 0 && exit->reason == KVMRUN_EXIT_INTERNAL_ERROR) {
		char bytes[3 * KVMRUN_INSN_BYTES_MAX + 1] = "";

		for (uint32_t i = 0; i < exit->u.internal.insn_length && i < 4; i++)
			sprintf(bytes + 3 * i, "%02x ", exit->u.internal.insn[i]);
		tap_ok(exit->u.internal.suberror == 1 && exit->u.internal.insn_length > 0,
		       "gcc -O2 guest at ring 0: this host cannot emulate its SSE; the run "
		       "ends as internal_error naming the instruction (%s...)", bytes);
	} else {
		tap_ok(exit->reason == KVMRUN_EXIT_HLT && result.regs[KVMRUN_REG_RAX] == want,
		       "gcc -O2 guest (SSE) at ring %u: %s with rax=%llu, natively %llu", ring,
		       kvmrun_exit_reason_names[exit->reason],
		       (unsigned long long)result.regs[KVMRUN_REG_RAX], want);
	}
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

/* A case of tests/guests/faults-*.S: what the engine must report for it. */
struct fault_case {
	unsigned int id;		/* the guest's rdi */
	const char *what;
	enum kvmrun_exit_reason reason;
	int vector;
	bool has_error_code;
	uint32_t error_code;
	uint8_t opcode;			/* the byte at the reported rip (or before it) */
	bool trap;			/* rip is after the instruction */
};

enum { FAULT_PAGE = 3, FAULT_RESERVED_WRITE = 7, FAULT_OWN_IDT = 8 };

#define EXC(v) KVMRUN_EXIT_EXCEPTION, (v)

static const struct fault_case long_ring0[] = {
	{ 0, "divide by zero", EXC(0), false, 0, 0xf7, false },
	{ 1, "ud2", EXC(6), false, 0, 0x0f, false },
	{ 2, "non-canonical access", EXC(13), true, 0, 0x8a, false },
	{ FAULT_PAGE, "access past the identity map", EXC(14), true, 0, 0x8a, false },
	{ 4, "int3", EXC(3), false, 0, 0xcc, true },
	{ 5, "hlt", KVMRUN_EXIT_HLT, -1, false, 0, 0xf4, true },
	{ FAULT_OWN_IDT, "a guest handling its own #UD", KVMRUN_EXIT_HLT, -1, false, 0, 0xf4,
	  true },
	{ 9, "a broken stack, then a fault", KVMRUN_EXIT_SHUTDOWN, -1, false, 0, 0, false },
};

static const struct fault_case long_ring3[] = {
	{ 0, "divide by zero", EXC(0), false, 0, 0xf7, false },
	{ 1, "ud2", EXC(6), false, 0, 0x0f, false },
	{ 2, "non-canonical access", EXC(13), true, 0, 0x8a, false },
	{ FAULT_PAGE, "access past the identity map", EXC(14), true, 4, 0x8a, false },
	{ 4, "int3", EXC(3), false, 0, 0xcc, true },
	{ 5, "hlt (a #GP at ring 3)", KVMRUN_EXIT_HLT, -1, false, 0, 0xf4, true },
	{ 6, "mov from cr0", EXC(13), true, 0, 0x0f, false },
	{ FAULT_RESERVED_WRITE, "a write to the engine's GDT", EXC(14), true, 7, 0xc7,
	  false },
};

static const struct fault_case protected_ring0[] = {
	{ 0, "divide by zero", EXC(0), false, 0, 0xf7, false },
	{ 1, "ud2", EXC(6), false, 0, 0x0f, false },
	{ 2, "a selector past the GDT", EXC(13), true, 0x1230, 0x8e, false },
	{ 4, "int3", EXC(3), false, 0, 0xcc, true },
	{ 5, "hlt", KVMRUN_EXIT_HLT, -1, false, 0, 0xf4, true },
	{ FAULT_OWN_IDT, "a guest handling its own #UD", KVMRUN_EXIT_HLT, -1, false, 0, 0xf4,
	  true },
	{ 9, "a broken stack, then a fault", KVMRUN_EXIT_SHUTDOWN, -1, false, 0, 0, false },
};

static const struct fault_case protected_ring3[] = {
	{ 0, "divide by zero", EXC(0), false, 0, 0xf7, false },
	{ 1, "ud2", EXC(6), false, 0, 0x0f, false },
	{ 2, "a selector past the GDT", EXC(13), true, 0x1230, 0x8e, false },
	{ 4, "int3", EXC(3), false, 0, 0xcc, true },
	{ 5, "hlt (a #GP at ring 3)", KVMRUN_EXIT_HLT, -1, false, 0, 0xf4, true },
	{ 6, "mov from cr0", EXC(13), true, 0, 0x0f, false },
	{ FAULT_RESERVED_WRITE, "a write to the engine's GDT", EXC(13), true, 0, 0xc7,
	  false },
};

static const struct fault_case paged_ring3_reserved[] = {
	{ FAULT_RESERVED_WRITE, "a write to the engine's GDT", EXC(14), true, 7, 0xc7,
	  false },
};

static bool
fault_matches(const struct fault_case *fc, const struct kvmrun_spec *spec,
	      const struct kvmrun_result *result, uint64_t target)
{
	const struct kvmrun_exit *exit = &result->exit;
	uint64_t rip = result->regs[KVMRUN_REG_RIP];
	uint64_t at = fc->trap ? rip - 1 : rip;

	if (exit->reason != fc->reason)
		return false;
	if (fc->reason == KVMRUN_EXIT_SHUTDOWN)
		return true;
	if (at >= spec->image.length || spec->image.data[at] != fc->opcode)
		return false;
	if (fc->reason != KVMRUN_EXIT_EXCEPTION)
		return true;
	return exit->u.exception.vector == fc->vector &&
	       exit->u.exception.has_error_code == fc->has_error_code &&
	       exit->u.exception.error_code == fc->error_code &&
	       exit->u.exception.rip == rip &&
	       (exit->u.exception.cs & 3) == spec->ring &&
	       (fc->vector != 14 || exit->u.exception.cr2 == target) &&
	       result->regs[KVMRUN_REG_RSP] == spec->memory_size - VM_X86_RESERVED_SIZE;
}

/*
 * Ring-0 and 32-bit code is emulated on nested kvm_pvm hosts, and that
 * emulator cannot run int3: an emulation failure naming the instruction at
 * ring 0, #UD at ring 3.  Names that case so the test can skip it.
 */
static const char *
emulator_limit(const struct fault_case *fc, const struct kvmrun_spec *spec,
	       const struct kvmrun_result *result)
{
	const struct kvmrun_exit *exit = &result->exit;
	uint64_t rip = result->regs[KVMRUN_REG_RIP];

	if (fc->opcode != 0xcc)
		return NULL;
	if (exit->reason == KVMRUN_EXIT_INTERNAL_ERROR && exit->u.internal.suberror == 1 &&
	    exit->u.internal.insn_length > 0 && exit->u.internal.insn[0] == 0xcc)
		return "this host's KVM instruction emulator cannot execute int3 "
		       "(emulation failure on the bytes cc ...)";
	if (exit->reason == KVMRUN_EXIT_EXCEPTION && exit->u.exception.vector == 6 &&
	    rip < spec->image.length && spec->image.data[rip] == 0xcc)
		return "this host's KVM instruction emulator raises #UD for int3";
	return NULL;
}

static void
test_faults(const char *guest, enum kvmrun_mode mode, unsigned int ring,
	    const struct fault_case *cases, size_t count)
{
	uint64_t reserved = vm_x86_reserved_base(mode, KVMRUN_DEFAULT_MEMORY_SIZE);
	uint64_t gdt_target = reserved + VM_X86_RSV_GDT + 0x100;

	for (size_t i = 0; i < count; i++) {
		const struct fault_case *fc = &cases[i];
		uint64_t target = fc->id == FAULT_PAGE ? 0x100000000ull : gdt_target;
		struct kvmrun_spec spec;
		struct kvmrun_result result;
		struct kvmrun_error err;
		char name[128];
		uint32_t left = 0;

		snprintf(name, sizeof(name), "%s mode, ring %u: %s", kvmrun_mode_names[mode], ring,
			 fc->what);
		if (skip_unsupported(name, mode))
			continue;
		spec_for(&spec, guest, mode);
		spec.ring = ring;
		set_reg(&spec, KVMRUN_REG_RDI, fc->id);
		set_reg(&spec, KVMRUN_REG_RBX, gdt_target);
		set_reg(&spec, KVMRUN_REG_RBP, 0x5a5a5a5a);
		add_dump(&spec, gdt_target, 4);
		run(&spec, &result, &err);
		if (result.dump_count == 1)
			memcpy(&left, result.dumps[0].data, 4);
		if (emulator_limit(fc, &spec, &result) != NULL) {
			tap_skip(name, "%s", emulator_limit(fc, &spec, &result));
			kvmrun_result_free(&result);
			kvmrun_spec_free(&spec);
			continue;
		}
		tap_ok(fault_matches(fc, &spec, &result, target) &&
			       result.regs[KVMRUN_REG_RBP] == 0x5a5a5a5a &&
			       result.regs[KVMRUN_REG_RBX] == gdt_target && left != 0xdeadbeef &&
			       (fc->id != FAULT_OWN_IDT ||
				(result.console_length == 8 &&
				 memcmp(result.console, "handled\n", 8) == 0)),
		       "%s: %s vector %d error 0x%x rip 0x%llx cs 0x%x cr2 0x%llx rsp 0x%llx",
		       name, kvmrun_exit_reason_names[result.exit.reason],
		       result.exit.reason == KVMRUN_EXIT_EXCEPTION ? result.exit.u.exception.vector
								   : -1,
		       result.exit.u.exception.error_code,
		       (unsigned long long)result.regs[KVMRUN_REG_RIP],
		       result.exit.u.exception.cs, (unsigned long long)result.exit.u.exception.cr2,
		       (unsigned long long)result.regs[KVMRUN_REG_RSP]);
		kvmrun_result_free(&result);
		kvmrun_spec_free(&spec);
	}
}

/*
 * Skips the whole test only where /dev/kvm is missing or cannot be opened;
 * a device that opens but that the engine cannot use is a failure.
 */
static void
open_host_or_skip(void)
{
	struct kvmrun_error err;
	int fd = open(KVMRUN_DEFAULT_KVM_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0 && (errno == ENOENT || errno == ENODEV || errno == ENXIO ||
		       errno == EACCES || errno == EPERM))
		tap_skip_all("needs KVM, %s: %s", KVMRUN_DEFAULT_KVM_PATH, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (vm_host_open(KVMRUN_DEFAULT_KVM_PATH, &host, &err) < 0) {
		printf("Bail out! the engine cannot use this host's KVM: %s: %s\n",
		       kvmrun_errcode_names[err.code], err.message);
		exit(99);
	}
}

#define FAULTS(guest, mode, ring, cases) \
	test_faults(guest, mode, ring, cases, sizeof(cases) / sizeof(cases[0]))

int
main(void)
{
	guest_dir = getenv("GUESTS");
	if (guest_dir == NULL)
		guest_dir = "tests/guests";
	open_host_or_skip();
	tap_diag("KVM API %d", vm_host_api_version(host));
	for (int mode = 0; mode < KVMRUN_MODE_COUNT; mode++)
		if (mode != KVMRUN_MODE_PAGED)
			tap_ok(vm_host_mode_unsupported(host, mode) == NULL,
			       "this host runs %s mode (only legacy paging may be missing)",
			       kvmrun_mode_names[mode]);

	test_hello("hello-real", KVMRUN_MODE_REAL, 0);
	test_hello("hello-protected", KVMRUN_MODE_PROTECTED, 0);
	test_hello("hello-paged", KVMRUN_MODE_PAGED, 0);
	test_hello("hello-long", KVMRUN_MODE_LONG, 0);
	test_hello("hello-protected", KVMRUN_MODE_PROTECTED, 3);
	test_hello("hello-paged", KVMRUN_MODE_PAGED, 3);
	test_hello("hello-long", KVMRUN_MODE_LONG, 3);
	test_checksum("checksum-real", KVMRUN_MODE_REAL, 0);
	test_checksum("checksum-protected", KVMRUN_MODE_PROTECTED, 0);
	test_checksum("checksum-protected", KVMRUN_MODE_PAGED, 0);
	test_checksum("checksum-long", KVMRUN_MODE_LONG, 0);
	test_checksum("checksum-long", KVMRUN_MODE_LONG, 3);
	test_regs_round_trip("regs-real", KVMRUN_MODE_REAL, 8, 4);
	test_regs_round_trip("regs-long", KVMRUN_MODE_LONG, 16, 8);
	test_timeout("loop-real", KVMRUN_MODE_REAL);
	test_timeout("loop-long", KVMRUN_MODE_LONG);
	test_mmio();
	test_io();
	test_triple_fault();
	test_console_bound(0);
	test_console_bound(3);
	test_refusals();
	test_isolation();
	test_cancel();
	test_compiled_guest(3);
	test_compiled_guest(0);
	FAULTS("faults-long", KVMRUN_MODE_LONG, 0, long_ring0);
	FAULTS("faults-long", KVMRUN_MODE_LONG, 3, long_ring3);
	FAULTS("faults-protected", KVMRUN_MODE_PROTECTED, 0, protected_ring0);
	FAULTS("faults-protected", KVMRUN_MODE_PROTECTED, 3, protected_ring3);
	FAULTS("faults-protected", KVMRUN_MODE_PAGED, 0, protected_ring0);
	FAULTS("faults-protected", KVMRUN_MODE_PAGED, 3, protected_ring3);
	FAULTS("faults-protected", KVMRUN_MODE_PAGED, 3, paged_ring3_reserved);

	vm_host_close(host);
	return tap_done();
}
