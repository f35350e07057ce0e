/*
 * The KVM engine on real /dev/kvm: real guests (GNU as sources in tests/guests, assembled
 * by the build) in every mode, every exit, the limits and ring-3 port I/O
 * (the rules a spec is refused by are in test-spec.c, which needs no KVM).
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
#include "vm-test.h"
#include "vm-x86.h"
#include "vm.h"

static struct kvmrun_host *host;
static const char *guest_dir;

static void
load_guest(const char *name, struct kvmrun_spec *spec)
{
	vm_test_load_guest(guest_dir, name, spec);
}

static void
spec_for(struct kvmrun_spec *spec, const char *guest, enum kvmrun_mode mode)
{
	kvmrun_spec_init(spec);
	spec->mode = mode;
	load_guest(guest, spec);
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

/* What a run in MODE on the host under test answers as its paging. */
static enum kvmrun_paging
paging_of(enum kvmrun_mode mode)
{
	return mode == KVMRUN_MODE_PAGED ? vm_host_paging(host) : KVMRUN_PAGING_NONE;
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
		       strstr(err.message, "dropped CR0.PG") != NULL &&
		       strstr(err.message, "--paged=auto or compat") != NULL,
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
		tap_ok(result.exit.reason == KVMRUN_EXIT_HLT && result.paging == paging_of(mode),
		       "%s: halts (got %s), paging %d", name,
		       kvmrun_exit_reason_names[result.exit.reason], (int)result.paging);
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

/* The seed's own check: a C guest built with gcc -m32 (tests/guests/hello32.c). */
static void
test_hello32(enum kvmrun_mode mode, unsigned int ring)
{
	static const char hello[] = "Hello, world!\n";
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;
	uint32_t stored = 0;
	char name[96];

	snprintf(name, sizeof(name), "hello32 (gcc -m32) in %s mode, ring %u",
		 kvmrun_mode_names[mode], ring);
	if (skip_unsupported(name, mode))
		return;
	spec_for(&spec, "hello32", mode);
	spec.ring = ring;
	add_dump(&spec, 0x400, 4);
	if (run(&spec, &result, &err) && result.dump_count == 1)
		memcpy(&stored, result.dumps[0].data, 4);
	tap_ok(result.exit.reason == KVMRUN_EXIT_HLT && result.paging == paging_of(mode) &&
		       result.console_length == sizeof(hello) - 1 &&
		       memcmp(result.console, hello, sizeof(hello) - 1) == 0 && stored == 42 &&
		       (result.regs[KVMRUN_REG_RAX] & UINT32_MAX) == 42,
	       "%s: Hello, world!, 42 at 0x400, halts with eax 42 (%s, rax 0x%llx, paging %d)",
	       name, kvmrun_exit_reason_names[result.exit.reason],
	       (unsigned long long)result.regs[KVMRUN_REG_RAX], (int)result.paging);
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
		vm_test_set_reg(&spec, order[i], (0x1111111111111111ull * (uint64_t)(i + 1)) ^
						 (order[i] == KVMRUN_REG_RSP ? 0xf : 0));
	vm_test_set_reg(&spec, KVMRUN_REG_RFLAGS, 0x2 | 0x1 | 0x800); /* CF and OF */
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

/* Sizes 2 and 4, a rep string, and an io exit in with a count. */
static void
test_io_widths(void)
{
	static uint8_t abc[] = { 'a', 'b', 'c' };
	struct kvmrun_blob region = { .address = 0x7000, .data = abc, .length = 3 };
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;
	const struct kvmrun_io_record *log;

	spec_for(&spec, "io-widths-real", KVMRUN_MODE_REAL);
	spec.regions = &region;
	spec.region_count = 1;
	run(&spec, &result, &err);
	tap_ok(result.exit.reason == KVMRUN_EXIT_IO && result.exit.u.io.port == 0x80 &&
		       !result.exit.u.io.is_in && result.exit.u.io.size == 2 &&
		       result.exit.u.io.data_length == 2 && result.exit.u.io.data[0] == 0x34 &&
		       result.exit.u.io.data[1] == 0x12,
	       "a 16-bit OUT ends as io of size 2 with its two bytes");
	kvmrun_result_free(&result);

	spec.log_ports = malloc(sizeof(*spec.log_ports));
	spec.log_ports[0] = 0x80;
	spec.log_port_count = 1;
	run(&spec, &result, &err);
	log = result.io_log;
	tap_ok(result.io_log_count == 5 && log[0].size == 2 && log[0].value == 0x1234 &&
		       log[1].size == 4 && log[1].value == 0x89abcdef && log[2].size == 1 &&
		       log[2].value == 'a' && log[3].value == 'b' && log[4].value == 'c',
	       "io_log records of size 2 and 4, and one per byte of a rep outsb");
	tap_ok(result.exit.reason == KVMRUN_EXIT_IO && result.exit.u.io.port == 0x81 &&
		       result.exit.u.io.is_in && result.exit.u.io.size == 1 &&
		       result.exit.u.io.count == 3 && result.exit.u.io.data_length == 0,
	       "a rep insb from another port ends as io, direction in, count 3, no data");
	kvmrun_result_free(&result);
	spec.regions = NULL;
	spec.region_count = 0;
	kvmrun_spec_free(&spec);
}

/* Ring 3 with IOPL 0 in rflags: port I/O takes #GP, as on hardware. */
static void
test_ring3_iopl0(void)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;

	spec_for(&spec, "hello-long", KVMRUN_MODE_LONG);
	spec.ring = 3;
	vm_test_set_reg(&spec, KVMRUN_REG_RFLAGS, 0x2);
	run(&spec, &result, &err);
	tap_ok(result.exit.reason == KVMRUN_EXIT_EXCEPTION &&
		       result.exit.u.exception.vector == 13 && result.console_length == 0,
	       "ring 3 with IOPL 0: the console write takes #GP, nothing is printed");
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
test_isolation(void)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;
	static const uint8_t hlt = 0xf4;
	uint8_t zero[4] = { 0 };

	/* The first run must really leave its checksum in memory. */
	spec_for(&spec, "checksum-long", KVMRUN_MODE_LONG);
	add_dump(&spec, 0x500, 4);
	tap_ok(run(&spec, &result, &err) && result.exit.reason == KVMRUN_EXIT_HLT &&
		       result.dump_count == 1 && memcmp(result.dumps[0].data, zero, 4) != 0,
	       "a first run writes its checksum at 0x500");
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
	vm_test_set_reg(&spec, KVMRUN_REG_RDI, 1000);
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
	{ 9, "a broken stack, then a fault", KVMRUN_EXIT_SHUTDOWN, -1, false, 0, 0, false },
	/* Last: compatibility mode answers it otherwise (compat_own_idt). */
	{ FAULT_OWN_IDT, "a guest handling its own #UD", KVMRUN_EXIT_HLT, -1, false, 0, 0xf4,
	  true },
};

static const struct fault_case protected_ring3[] = {
	{ 0, "divide by zero", EXC(0), false, 0, 0xf7, false },
	{ 1, "ud2", EXC(6), false, 0, 0x0f, false },
	{ 2, "a selector past the GDT", EXC(13), true, 0x1230, 0x8e, false },
	{ 4, "int3", EXC(3), false, 0, 0xcc, true },
	{ 5, "hlt (a #GP at ring 3)", KVMRUN_EXIT_HLT, -1, false, 0, 0xf4, true },
	{ 6, "mov from cr0", EXC(13), true, 0, 0x0f, false },
	/* Last: paged mode answers it otherwise (paged_ring3_reserved). */
	{ FAULT_RESERVED_WRITE, "a write to the engine's GDT", EXC(13), true, 0, 0xc7,
	  false },
};

/* The pages, not the segment limits, keep the area from ring 3: #PF. */
static const struct fault_case paged_ring3_reserved[] = {
	{ FAULT_RESERVED_WRITE, "a write to the engine's GDT", EXC(14), true, 7, 0xc7,
	  false },
};

/*
 * In compatibility mode the CPU reads a guest's 32-bit IDT as 16-byte
 * gates: the #UD's gate is not one, nor then the #GP's and #DF's.
 */
static const struct fault_case compat_own_idt[] = {
	{ FAULT_OWN_IDT, "a guest loading its own 32-bit IDT shuts down at its #UD",
	  KVMRUN_EXIT_SHUTDOWN, -1, false, 0, 0, false },
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
		vm_test_set_reg(&spec, KVMRUN_REG_RDI, fc->id);
		vm_test_set_reg(&spec, KVMRUN_REG_RBX, gdt_target);
		vm_test_set_reg(&spec, KVMRUN_REG_RBP, 0x5a5a5a5a);
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
 * String port I/O at ring 3 (tests/guests/pio-*.S).  Where the host drops
 * IOPL for user code (kvm_pvm's native 64-bit ring 3) every ins and outs
 * takes #GP(0) and the engine carries it out itself; it must do only what
 * the CPU would have allowed (the real address size, segment, direction and
 * page protection) and never touch its reserved area.  Elsewhere the CPU
 * and KVM's emulator decide, and the outcome must be the same.
 */
enum {
	/* pio-protected.S */
	PIO_INS, PIO_OUTS, PIO_INS_A16, PIO_OUTS_CS, PIO_OUTS_FS_NULL, PIO_INS_ES_CODE,
	PIO_INS_FS, PIO_OUTS_DS_CODE64, PIO_READ_DS_CODE64, PIO_OUTS_DOWN,
	/* pio-long.S: PIO_INS and PIO_OUTS, then */
	PIO_INS_A32 = 2, PIO_OUTS_GS, PIO_INS_ES_NULL, PIO_OUTSW_ONCE, PIO_LONG_OUTS_DOWN,
	PIO_OUTS_A32,
};

#define PIO_LOG_PORT 0x80
#define PIO_FILL 0x8000		/* where the ins cases that may write, write */
#define PIO_FILL_COUNT 0x40
#define PIO_AREA_DUMP 0xff00	/* the reserved area but its top, where frames go */
#define PIO_DUMP_AREA 0
#define PIO_DUMP_FILL 1
#define PIO_DUMP_BELOW 2	/* the 16 bytes below the area */

static const char pio_msg[] = "rep outsb ok\n";

struct pio_ctx {
	enum kvmrun_mode mode;
	const char *mode_name;
	uint64_t reserved;
	uint64_t msg;		/* where the guest holds pio_msg */
	uint8_t *area;		/* the area after a run that did no I/O */
};

static void
pio_spec(struct kvmrun_spec *spec, const struct pio_ctx *ctx, unsigned int id,
	 uint64_t address, uint64_t count)
{
	spec_for(spec, ctx->mode == KVMRUN_MODE_LONG ? "pio-long" : "pio-protected", ctx->mode);
	spec->ring = 3;
	vm_test_set_reg(spec, KVMRUN_REG_RBP, id);
	vm_test_set_reg(spec, KVMRUN_REG_RBX, address);
	vm_test_set_reg(spec, KVMRUN_REG_RCX, count);
	spec->log_ports = malloc(sizeof(*spec->log_ports));
	spec->log_ports[0] = PIO_LOG_PORT;
	spec->log_port_count = 1;
	add_dump(spec, ctx->reserved, PIO_AREA_DUMP);
	add_dump(spec, PIO_FILL, KVMRUN_PAGE_SIZE);
	add_dump(spec, ctx->reserved - 0x10, 0x10);
}

static bool
pio_run(const struct pio_ctx *ctx, unsigned int id, uint64_t address, uint64_t count,
	struct kvmrun_spec *spec, struct kvmrun_result *result)
{
	struct kvmrun_error err;

	pio_spec(spec, ctx, id, address, count);
	return run(spec, result, &err) && result->dump_count == 3;
}

static void
pio_done(struct kvmrun_spec *spec, struct kvmrun_result *result)
{
	kvmrun_result_free(result);
	kvmrun_spec_free(spec);
}

/*
 * Whether the run left the reserved area as the run that did no I/O did,
 * but for the bits the CPU sets itself as it uses the tables: the accessed
 * bit of GDT descriptors, the accessed and dirty bits of paging entries.
 */
static bool
pio_area_unchanged(const struct pio_ctx *ctx, const struct kvmrun_result *result)
{
	const uint8_t *got;

	if (ctx->area == NULL || result->dump_count < 1)
		return false;
	got = result->dumps[PIO_DUMP_AREA].data;
	for (size_t o = 0; o < PIO_AREA_DUMP; o++) {
		uint8_t ignore = 0;

		if (o < VM_X86_RSV_IDT && o % 8 == 5)
			ignore = 0x01;
		else if (o >= VM_X86_RSV_PML4 && o < VM_X86_RSV_STACK && o % 4 == 0)
			ignore = 0x60;
		if ((got[o] ^ ctx->area[o]) & ~ignore) {
			tap_diag("reserved area + 0x%zx: 0x%02x, 0x%02x in the run without I/O", o,
				 got[o], ctx->area[o]);
			return false;
		}
	}
	return true;
}

/* The opcode at RIP of the image past its prefixes, or -1. */
static int
pio_opcode(const struct kvmrun_spec *spec, uint64_t rip)
{
	static const uint8_t prefixes[] = { 0x66, 0x67, 0xf2, 0xf3, 0x26, 0x2e, 0x36, 0x3e,
					    0x64, 0x65 };

	for (uint64_t at = rip - spec->image.address; at < spec->image.length; at++)
		if (memchr(prefixes, spec->image.data[at], sizeof(prefixes)) == NULL)
			return spec->image.data[at];
	return -1;
}

/*
 * Whether the run ended at the instruction with opcode OPCODE as the fault
 * the CPU gives when it does not allow it: #GP(0), which the engine leaves
 * as it was when it refuses.  In paged and long mode a host that honours
 * IOPL 3 at ring 3 (not kvm_pvm) exits to KVM for the instruction, whose
 * emulator then raises the #PF of a user access to the supervisor-only area:
 * the same refusal, made by KVM.
 */
static bool
pio_refused(const struct pio_ctx *ctx, const struct kvmrun_spec *spec,
	    const struct kvmrun_result *result, int opcode, bool write)
{
	const struct kvmrun_exit *exit = &result->exit;
	uint64_t rip = exit->u.exception.rip, cr2 = exit->u.exception.cr2;

	if (exit->reason != KVMRUN_EXIT_EXCEPTION || rip != result->regs[KVMRUN_REG_RIP] ||
	    (exit->u.exception.cs & 3) != 3 || pio_opcode(spec, rip) != opcode)
		return false;
	if (exit->u.exception.vector == 13)
		return exit->u.exception.has_error_code && exit->u.exception.error_code == 0;
	return ctx->mode != KVMRUN_MODE_PROTECTED && exit->u.exception.vector == 14 &&
	       (exit->u.exception.error_code & 7) == (write ? 7u : 5u) && cr2 >= ctx->reserved &&
	       cr2 < ctx->reserved + VM_X86_RESERVED_SIZE;
}

static const char *
pio_outcome(const struct kvmrun_result *result, char *buf, size_t size)
{
	const struct kvmrun_exit *exit = &result->exit;

	if (exit->reason != KVMRUN_EXIT_EXCEPTION)
		snprintf(buf, size, "%s, rip 0x%llx", kvmrun_exit_reason_names[exit->reason],
			 (unsigned long long)result->regs[KVMRUN_REG_RIP]);
	else
		snprintf(buf, size, "exception %u error 0x%x rip 0x%llx cr2 0x%llx",
			 exit->u.exception.vector, exit->u.exception.error_code,
			 (unsigned long long)exit->u.exception.rip,
			 (unsigned long long)exit->u.exception.cr2);
	return buf;
}

/*
 * An I/O instruction the CPU would not allow: the run ends as its fault at
 * it, with nothing printed, nothing written at PIO_FILL, the registers as
 * they were and the area as it was.  INDEX is the register holding ADDRESS,
 * or -1.
 */
static void
pio_expect_refused(const struct pio_ctx *ctx, const char *what, unsigned int id,
		   uint64_t address, uint64_t count, int opcode, int index)
{
	bool write = opcode == 0x6c;
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	char outcome[128];
	bool ok = pio_run(ctx, id, address, count, &spec, &result), untouched = ok;

	for (size_t i = 0; untouched && i < KVMRUN_PAGE_SIZE; i++)
		untouched = result.dumps[PIO_DUMP_FILL].data[i] == 0;
	tap_ok(ok && pio_refused(ctx, &spec, &result, opcode, write) && untouched &&
		       pio_area_unchanged(ctx, &result) && result.console_length == 0 &&
		       result.regs[KVMRUN_REG_RCX] == count &&
		       (index < 0 || result.regs[index] == address),
	       "%s mode, ring 3: %s (0x%llx) is refused: %s, nothing printed, area unchanged",
	       ctx->mode_name, what, (unsigned long long)address,
	       pio_outcome(&result, outcome, sizeof(outcome)));
	pio_done(&spec, &result);
}

/* A legitimate outs: it prints WANT and leaves rsi at RSI (low MASK bits). */
static void
pio_expect_prints(const struct pio_ctx *ctx, const char *what, unsigned int id,
		  uint64_t address, uint64_t count, const char *want, uint64_t rsi, uint64_t mask)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	char outcome[128];
	size_t length = strlen(want);
	bool ok = pio_run(ctx, id, address, count, &spec, &result);

	tap_ok(ok && result.exit.reason == KVMRUN_EXIT_HLT && result.console_length == length &&
		       memcmp(result.console, want, length) == 0 &&
		       (result.regs[KVMRUN_REG_RSI] & mask) == rsi &&
		       pio_area_unchanged(ctx, &result),
	       "%s mode, ring 3: %s prints its %zu bytes and halts (%s, %zu bytes printed, "
	       "rsi 0x%llx)", ctx->mode_name, what, length,
	       pio_outcome(&result, outcome, sizeof(outcome)), result.console_length,
	       (unsigned long long)result.regs[KVMRUN_REG_RSI]);
	pio_done(&spec, &result);
}

/*
 * A legitimate ins of PIO_FILL_COUNT bytes that must land at PIO_FILL: 0xff
 * there, nothing past it, rdi and rcx (their low MASK bits) as given.
 */
static void
pio_expect_fills(const struct pio_ctx *ctx, const char *what, unsigned int id,
		 uint64_t address, uint64_t count, uint64_t rdi, uint64_t rcx, uint64_t mask)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	char outcome[128];
	bool ok = pio_run(ctx, id, address, count, &spec, &result), filled = ok;

	for (size_t i = 0; filled && i < KVMRUN_PAGE_SIZE; i++)
		filled = result.dumps[PIO_DUMP_FILL].data[i] == (i < PIO_FILL_COUNT ? 0xff : 0);
	tap_ok(ok && result.exit.reason == KVMRUN_EXIT_HLT && filled &&
		       (result.regs[KVMRUN_REG_RDI] & mask) == rdi &&
		       (result.regs[KVMRUN_REG_RCX] & mask) == rcx &&
		       pio_area_unchanged(ctx, &result),
	       "%s mode, ring 3: %s fills 0x%x bytes at 0x%x with 0xff and halts (%s, rdi 0x%llx, "
	       "rcx 0x%llx)", ctx->mode_name, what, PIO_FILL_COUNT, PIO_FILL,
	       pio_outcome(&result, outcome, sizeof(outcome)),
	       (unsigned long long)result.regs[KVMRUN_REG_RDI],
	       (unsigned long long)result.regs[KVMRUN_REG_RCX]);
	pio_done(&spec, &result);
}

/*
 * rep insb from 16 bytes below the area for 32: the CPU does the 16 that
 * are the guest's, then faults at the area with rcx and rdi saying so.
 */
static void
pio_expect_partial(const struct pio_ctx *ctx)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	char outcome[128];
	bool ok = pio_run(ctx, PIO_INS, ctx->reserved - 0x10, 0x20, &spec, &result), filled = ok;

	for (size_t i = 0; filled && i < 0x10; i++)
		filled = result.dumps[PIO_DUMP_BELOW].data[i] == 0xff;
	tap_ok(ok && pio_refused(ctx, &spec, &result, 0x6c, true) && filled &&
		       result.regs[KVMRUN_REG_RCX] == 0x10 &&
		       result.regs[KVMRUN_REG_RDI] == ctx->reserved &&
		       pio_area_unchanged(ctx, &result),
	       "%s mode, ring 3: rep insb of 0x20 bytes from 0x10 below the area fills those "
	       "0x10, then faults at the area (%s, rcx 0x%llx, rdi 0x%llx)", ctx->mode_name,
	       pio_outcome(&result, outcome, sizeof(outcome)),
	       (unsigned long long)result.regs[KVMRUN_REG_RCX],
	       (unsigned long long)result.regs[KVMRUN_REG_RDI]);
	pio_done(&spec, &result);
}

static const struct {
	const char *name;
	uint64_t offset;
} pio_targets[] = {
	{ "GDT", VM_X86_RSV_GDT },
	{ "IDT", VM_X86_RSV_IDT },
	{ "TSS", VM_X86_RSV_TSS },
	{ "exception stubs", VM_X86_RSV_STUBS },
	{ "PML4 (page directory in paged mode)", VM_X86_RSV_PML4 },
	{ "PDPT", VM_X86_RSV_PDPT },
	{ "page directories", VM_X86_RSV_PD },
	{ "page table of the area", VM_X86_RSV_PT },
	{ "exception stack", VM_X86_RSV_STACK },
};

/* Sets CTX up: the guest's message and the area after a run without I/O. */
static bool
pio_setup(struct pio_ctx *ctx, enum kvmrun_mode mode)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	const uint8_t *at;
	bool ok;

	memset(ctx, 0, sizeof(*ctx));
	ctx->mode = mode;
	ctx->mode_name = kvmrun_mode_names[mode];
	ctx->reserved = vm_x86_reserved_base(mode, KVMRUN_DEFAULT_MEMORY_SIZE);
	/* rep insb with rcx 0 does nothing, then the guest halts. */
	ok = pio_run(ctx, PIO_INS, PIO_FILL, 0, &spec, &result) &&
	     result.exit.reason == KVMRUN_EXIT_HLT;
	at = memmem(spec.image.data, spec.image.length, pio_msg, strlen(pio_msg));
	if (ok && at != NULL) {
		ctx->msg = spec.image.address + (uint64_t)(at - spec.image.data);
		ctx->area = malloc(PIO_AREA_DUMP);
		memcpy(ctx->area, result.dumps[PIO_DUMP_AREA].data, PIO_AREA_DUMP);
	}
	tap_ok(ctx->area != NULL, "%s mode, ring 3: a rep insb with rcx 0 halts (the run the "
	       "others' reserved area is compared with)", ctx->mode_name);
	pio_done(&spec, &result);
	return ctx->area != NULL;
}

static void
pio_reserved_targets(const struct pio_ctx *ctx, unsigned int down)
{
	char what[128];

	for (size_t i = 0; i < sizeof(pio_targets) / sizeof(pio_targets[0]); i++) {
		uint64_t target = ctx->reserved + pio_targets[i].offset;

		snprintf(what, sizeof(what), "rep insb from a log port into the %s",
			 pio_targets[i].name);
		pio_expect_refused(ctx, what, PIO_INS, target, 0x40, 0x6c, KVMRUN_REG_RDI);
		snprintf(what, sizeof(what), "rep outsb of the %s to the console",
			 pio_targets[i].name);
		pio_expect_refused(ctx, what, PIO_OUTS, target, 0x40, 0x6e, KVMRUN_REG_RSI);
	}
	/* Downwards from the IDT's 64th byte: the whole run lies in the area. */
	pio_expect_refused(ctx, "std; rep outsb of the IDT downwards", down,
			   ctx->reserved + VM_X86_RSV_IDT + 0x3f, 0x40, 0x6e, KVMRUN_REG_RSI);
}

static void
pio_reversed(char *out)
{
	size_t n = strlen(pio_msg);

	for (size_t i = 0; i < n; i++)
		out[i] = pio_msg[n - 1 - i];
	out[n] = '\0';
}

/* 32-bit code at ring 3: protected mode (segment limits) or paged mode. */
static void
test_pio_32(enum kvmrun_mode mode)
{
	uint64_t n = strlen(pio_msg), m32 = UINT32_MAX;
	struct pio_ctx ctx;
	char reversed[sizeof(pio_msg)], name[96];

	snprintf(name, sizeof(name), "%s mode, ring 3: string port I/O", kvmrun_mode_names[mode]);
	if (skip_unsupported(name, mode) || !pio_setup(&ctx, mode))
		return;
	pio_reversed(reversed);
	pio_expect_prints(&ctx, "rep outsb of a string in guest memory", PIO_OUTS, ctx.msg, n,
			  pio_msg, ctx.msg + n, m32);
	pio_expect_fills(&ctx, "rep insb from a log port into guest memory", PIO_INS, PIO_FILL,
			 PIO_FILL_COUNT, PIO_FILL + PIO_FILL_COUNT, 0, m32);
	pio_expect_prints(&ctx, "std; rep outsb", PIO_OUTS_DOWN, ctx.msg + n - 1, n, reversed,
			  ctx.msg - 1, m32);
	pio_reserved_targets(&ctx, PIO_OUTS_DOWN);
	pio_expect_partial(&ctx);
	/* 0x67: di and cx.  edi points into the area, di at PIO_FILL. */
	pio_expect_fills(&ctx, "addr16 rep insb with edi in the area, di in guest memory",
			 PIO_INS_A16, ctx.reserved + PIO_FILL, 0xffff0000 | PIO_FILL_COUNT,
			 ctx.reserved + PIO_FILL + PIO_FILL_COUNT, 0xffff0000, m32);
	pio_expect_prints(&ctx, "rep outsb %cs:(%esi)", PIO_OUTS_CS, ctx.msg, n, pio_msg,
			  ctx.msg + n, m32);
	pio_expect_refused(&ctx, "rep outsb %cs:(%esi) of the IDT", PIO_OUTS_CS,
			   ctx.reserved + VM_X86_RSV_IDT, 0x40, 0x6e, KVMRUN_REG_RSI);
	pio_expect_refused(&ctx, "rep outsb through a null fs", PIO_OUTS_FS_NULL, ctx.msg, n,
			   0x6e, KVMRUN_REG_RSI);
	pio_expect_refused(&ctx, "rep insb through es holding the code segment",
			   PIO_INS_ES_CODE, PIO_FILL, PIO_FILL_COUNT, 0x6c, KVMRUN_REG_RDI);
	pio_expect_fills(&ctx, "fs rep insb with a null fs (ins writes through es)", PIO_INS_FS,
			 PIO_FILL, PIO_FILL_COUNT, PIO_FILL + PIO_FILL_COUNT, 0, m32);
	pio_expect_refused(&ctx, "rep outsb of the IDT through ds = 0x33",
			   PIO_OUTS_DS_CODE64, ctx.reserved + VM_X86_RSV_IDT, 0x40, 0x6e,
			   KVMRUN_REG_RSI);
	if (mode == KVMRUN_MODE_PROTECTED)
		pio_expect_refused(&ctx, "a read of the IDT through ds = 0x33 (its limit ends "
				   "below the area)", PIO_READ_DS_CODE64,
				   ctx.reserved + VM_X86_RSV_IDT, 0, 0x8b, -1);
	free(ctx.area);
}

static void
test_pio_long(void)
{
	uint64_t n = strlen(pio_msg), m32 = UINT32_MAX, above = 1ull << 32;
	struct pio_ctx ctx;
	char reversed[sizeof(pio_msg)];

	if (!pio_setup(&ctx, KVMRUN_MODE_LONG))
		return;
	pio_reversed(reversed);
	pio_expect_prints(&ctx, "rep outsb of a string in guest memory", PIO_OUTS, ctx.msg, n,
			  pio_msg, ctx.msg + n, UINT64_MAX);
	pio_expect_fills(&ctx, "rep insb from a log port into guest memory", PIO_INS, PIO_FILL,
			 PIO_FILL_COUNT, PIO_FILL + PIO_FILL_COUNT, 0, UINT64_MAX);
	pio_expect_prints(&ctx, "std; rep outsb", PIO_LONG_OUTS_DOWN, ctx.msg + n - 1, n,
			  reversed, ctx.msg - 1, UINT64_MAX);
	pio_expect_prints(&ctx, "outsw", PIO_OUTSW_ONCE, ctx.msg, 0, "re", ctx.msg + 2,
			  UINT64_MAX);
	pio_reserved_targets(&ctx, PIO_LONG_OUTS_DOWN);
	pio_expect_partial(&ctx);
	/* 0x67: edi, esi and ecx; the upper halves do not count. */
	pio_expect_fills(&ctx, "addr32 rep insb with rdi past 4 GiB, edi in guest memory",
			 PIO_INS_A32, above + PIO_FILL, above | PIO_FILL_COUNT,
			 PIO_FILL + PIO_FILL_COUNT, 0, m32);
	pio_expect_refused(&ctx, "addr32 rep insb with edi at the IDT", PIO_INS_A32,
			   above + ctx.reserved + VM_X86_RSV_IDT, 0x40, 0x6c, KVMRUN_REG_RDI);
	pio_expect_prints(&ctx, "addr32 rep outsb with rsi past 4 GiB, esi in guest memory",
			  PIO_OUTS_A32, above + ctx.msg, n, pio_msg, ctx.msg + n, m32);
	pio_expect_refused(&ctx, "addr32 rep outsb with esi at the IDT", PIO_OUTS_A32,
			   above + ctx.reserved + VM_X86_RSV_IDT, 0x40, 0x6e, KVMRUN_REG_RSI);
	pio_expect_prints(&ctx, "rep outsb %gs:(%rsi)", PIO_OUTS_GS, ctx.msg, n, pio_msg,
			  ctx.msg + n, UINT64_MAX);
	pio_expect_refused(&ctx, "rep outsb %gs:(%rsi) of the GDT", PIO_OUTS_GS,
			   ctx.reserved + VM_X86_RSV_GDT, 0x40, 0x6e, KVMRUN_REG_RSI);
	pio_expect_fills(&ctx, "rep insb through a null es (64-bit code does not check it)",
			 PIO_INS_ES_NULL, PIO_FILL, PIO_FILL_COUNT, PIO_FILL + PIO_FILL_COUNT, 0,
			 UINT64_MAX);
	free(ctx.area);
}

#define FAULTS(guest, mode, ring, cases) \
	test_faults(guest, mode, ring, cases, sizeof(cases) / sizeof(cases[0]))
/* The protected-mode cases but the last, which paged mode answers otherwise. */
#define FAULTS_BUT_LAST(guest, mode, ring, cases) \
	test_faults(guest, mode, ring, cases, sizeof(cases) / sizeof(cases[0]) - 1)

/* Paged mode as the host under test pages it, legacy or compat. */
static void
test_paged_suite(void)
{
	bool compat = vm_host_paging(host) == KVMRUN_PAGING_COMPAT;

	tap_diag("paged mode, paging %s", compat ? "compat" : "legacy");
	test_hello("hello-paged", KVMRUN_MODE_PAGED, 0);
	test_hello("hello-paged", KVMRUN_MODE_PAGED, 3);
	test_hello32(KVMRUN_MODE_PAGED, 0);
	test_hello32(KVMRUN_MODE_PAGED, 3);
	test_checksum("checksum-protected", KVMRUN_MODE_PAGED, 0);
	if (compat) {
		FAULTS_BUT_LAST("faults-protected", KVMRUN_MODE_PAGED, 0, protected_ring0);
		FAULTS("faults-protected", KVMRUN_MODE_PAGED, 0, compat_own_idt);
	} else {
		FAULTS("faults-protected", KVMRUN_MODE_PAGED, 0, protected_ring0);
	}
	FAULTS_BUT_LAST("faults-protected", KVMRUN_MODE_PAGED, 3, protected_ring3);
	FAULTS("faults-protected", KVMRUN_MODE_PAGED, 3, paged_ring3_reserved);
	test_pio_32(KVMRUN_MODE_PAGED);
}

static struct kvmrun_host *
open_paged(enum vm_paged_choice choice)
{
	struct vm_host_options options = { .paged = choice };
	struct kvmrun_host *opened = NULL;
	struct kvmrun_error err;

	if (vm_host_open_with(KVMRUN_DEFAULT_KVM_PATH, &options, &opened, &err) < 0)
		tap_diag("opening the host with paged choice %d: %s", (int)choice, err.message);
	return opened;
}

/*
 * --paged legacy and compat: legacy is refused only where KVM drops CR0.PG,
 * and auto took legacy exactly where the host has it; then paged mode the
 * other way than auto chose (compatibility mode on a host with legacy
 * paging: there is no legacy paging to try on one without).
 */
static void
test_paged_choices(void)
{
	struct kvmrun_host *auto_host = host;
	struct kvmrun_host *legacy = open_paged(VM_PAGED_LEGACY);
	struct kvmrun_host *compat = open_paged(VM_PAGED_COMPAT);

	if (!tap_ok(legacy != NULL && compat != NULL,
		    "the host opens with paged choice legacy and with compat"))
		goto out;
	tap_ok(vm_host_paging(compat) == KVMRUN_PAGING_COMPAT &&
		       vm_host_mode_unsupported(compat, KVMRUN_MODE_PAGED) == NULL,
	       "paged choice compat: paged mode runs in compatibility mode");
	if (vm_host_paging(legacy) == KVMRUN_PAGING_LEGACY) {
		tap_ok(vm_host_paging(auto_host) == KVMRUN_PAGING_LEGACY,
		       "on a host with legacy paging auto uses it");
		tap_skip("paged choice legacy where KVM drops CR0.PG: unsupported",
			 "this host's KVM keeps legacy paging");
	} else {
		tap_skip("on a host with legacy paging auto uses it",
			 "this host's KVM keeps no legacy paging: %s",
			 vm_host_mode_unsupported(legacy, KVMRUN_MODE_PAGED));
		tap_ok(vm_host_paging(auto_host) == KVMRUN_PAGING_COMPAT,
		       "without legacy paging auto pages in compatibility mode");
		host = legacy;
		test_unsupported_mode_refused(KVMRUN_MODE_PAGED);
	}
	if (vm_host_paging(auto_host) != KVMRUN_PAGING_COMPAT) {
		host = compat;
		test_paged_suite();
	}
out:
	host = auto_host;
	vm_host_close(legacy);
	vm_host_close(compat);
}

int
main(void)
{
	guest_dir = vm_test_guest_dir();
	host = vm_test_open_host_or_skip();
	tap_diag("KVM API %d", vm_host_api_version(host));
	/* Paged mode too: auto pages in compatibility mode where legacy is missing. */
	for (int mode = 0; mode < KVMRUN_MODE_COUNT; mode++) {
		const char *why = vm_host_mode_unsupported(host, mode);

		tap_ok(why == NULL, "this host runs %s mode%s%s", kvmrun_mode_names[mode],
		       why != NULL ? ": " : "", why != NULL ? why : "");
	}

	test_hello("hello-real", KVMRUN_MODE_REAL, 0);
	test_hello("hello-protected", KVMRUN_MODE_PROTECTED, 0);
	test_hello("hello-long", KVMRUN_MODE_LONG, 0);
	test_hello("hello-protected", KVMRUN_MODE_PROTECTED, 3);
	test_hello("hello-long", KVMRUN_MODE_LONG, 3);
	test_hello32(KVMRUN_MODE_PROTECTED, 0);
	test_hello32(KVMRUN_MODE_PROTECTED, 3);
	test_checksum("checksum-real", KVMRUN_MODE_REAL, 0);
	test_checksum("checksum-protected", KVMRUN_MODE_PROTECTED, 0);
	test_checksum("checksum-long", KVMRUN_MODE_LONG, 0);
	test_checksum("checksum-long", KVMRUN_MODE_LONG, 3);
	test_regs_round_trip("regs-real", KVMRUN_MODE_REAL, 8, 4);
	test_regs_round_trip("regs-long", KVMRUN_MODE_LONG, 16, 8);
	test_timeout("loop-real", KVMRUN_MODE_REAL);
	test_timeout("loop-long", KVMRUN_MODE_LONG);
	test_mmio();
	test_io();
	test_io_widths();
	test_ring3_iopl0();
	test_triple_fault();
	test_console_bound(0);
	test_console_bound(3);
	test_isolation();
	test_cancel();
	test_compiled_guest(3);
	test_compiled_guest(0);
	FAULTS("faults-long", KVMRUN_MODE_LONG, 0, long_ring0);
	FAULTS("faults-long", KVMRUN_MODE_LONG, 3, long_ring3);
	FAULTS("faults-protected", KVMRUN_MODE_PROTECTED, 0, protected_ring0);
	FAULTS("faults-protected", KVMRUN_MODE_PROTECTED, 3, protected_ring3);
	test_pio_32(KVMRUN_MODE_PROTECTED);
	test_pio_long();
	test_paged_suite();
	test_paged_choices();

	vm_host_close(host);
	return tap_done();
}
