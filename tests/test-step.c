/*
 * max_instructions, trace and changes on real /dev/kvm (PROTOCOL.md,
 * "Stepping, trace and changes"): one instruction of each kind stepped at
 * ring 3 in long mode (where the CI host runs guest code natively), the
 * rep string counted per iteration, a traced loop, and the bytes a guest
 * wrote.  Skips, with the reason, without /dev/kvm; each stepping case skips
 * with the host's reason where its KVM cannot single-step.
 */
#include "vm-test.h"

#define STEP_JMP 0x000
#define STEP_CALL 0x100
#define STEP_REP 0x200
#define STEP_DIV 0x300
#define STEP_HLT 0x400
#define STEP_LOOP 0x500
#define STEP_MOV_SS 0x600
#define STEP_STI 0x700
#define USER_DATA 0x2b
#define SRC 0x1000
#define DST 0x2000

static struct kvmrun_host *host;
static const char *guest_dir;
static uint8_t hello[] = "hello";

/* step-long at ring 3 from OFFSET, stopped after MAX instructions. */
static void
step_spec(struct kvmrun_spec *spec, uint64_t offset, uint64_t max)
{
	kvmrun_spec_init(spec);
	spec->mode = KVMRUN_MODE_LONG;
	spec->ring = 3;
	vm_test_load_guest(guest_dir, "step-long", spec);
	vm_test_set_reg(spec, KVMRUN_REG_RIP, offset);
	spec->max_instructions = max;
	spec->trace = true;
	spec->changes = true;
}

/* Runs SPEC: false after a skip (the host cannot step) or a failed check. */
static bool
step_run(const char *name, const struct kvmrun_spec *spec, struct kvmrun_result *result)
{
	struct kvmrun_error err;

	kvmrun_result_init(result);
	if (vm_run_fresh(host, spec, result, &err) == 0)
		return true;
	if (err.code == KVMRUN_ERR_UNSUPPORTED &&
	    strncmp(err.message, "max_instructions:", 17) == 0)
		tap_skip(name, "%s", err.message);
	else
		tap_ok(0, "%s: refused: %s: %s", name, kvmrun_errcode_names[err.code],
		       err.message);
	return false;
}

static bool
traced(const struct kvmrun_result *result, const uint64_t *rips, size_t count)
{
	if (result->trace == NULL || result->trace_count != count ||
	    result->trace_truncated)
		return false;
	for (size_t i = 0; i < count; i++)
		if (result->trace[i].rip != rips[i] || result->trace[i].cs != 0x33)
			return false;
	return true;
}

static bool
no_changes(const struct kvmrun_result *result)
{
	return result->changes != NULL && result->change_count == 0 &&
	       !result->changes_truncated;
}

static const char *
reason(const struct kvmrun_result *result)
{
	return kvmrun_exit_reason_name(result->exit.reason);
}

static void
test_jmp(void)
{
	static const uint64_t rips[] = { STEP_JMP };
	const char *name = "max_instructions 1 on a jmp";
	struct kvmrun_spec spec;
	struct kvmrun_result result;

	step_spec(&spec, STEP_JMP, 1);
	if (step_run(name, &spec, &result))
		tap_ok(result.exit.reason == KVMRUN_EXIT_STEP_LIMIT &&
			       result.regs[KVMRUN_REG_RIP] == 0x10 &&
			       traced(&result, rips, 1) && no_changes(&result) &&
			       !(result.regs[KVMRUN_REG_RFLAGS] & (1u << 8)),
		       "%s: step_limit at its target 0x10, trace [0x0], no changes, no "
		       "TF "
		       "(got %s at 0x%llx)",
		       name, reason(&result),
		       (unsigned long long)result.regs[KVMRUN_REG_RIP]);
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_call(void)
{
	static const uint64_t rips[] = { STEP_CALL };
	const char *name = "max_instructions 1 on a call";
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	uint64_t top, pushed = 0;

	step_spec(&spec, STEP_CALL, 1);
	top = spec.memory_size - 0x10000; /* rsp starts at the reserved area */
	if (step_run(name, &spec, &result)) {
		if (result.change_count == 1 && result.changes[0].length == 8)
			memcpy(&pushed, result.changes[0].data, 8);
		tap_ok(result.exit.reason == KVMRUN_EXIT_STEP_LIMIT &&
			       result.regs[KVMRUN_REG_RIP] == STEP_CALL + 6 &&
			       result.regs[KVMRUN_REG_RSP] == top - 8 &&
			       traced(&result, rips, 1),
		       "%s: step_limit in the callee 0x106 with rsp 8 lower (got %s at "
		       "0x%llx)",
		       name, reason(&result),
		       (unsigned long long)result.regs[KVMRUN_REG_RIP]);
		tap_ok(result.change_count == 1 &&
			       result.changes[0].address == top - 8 &&
			       pushed == STEP_CALL + 5,
		       "%s: the one change is the return address 0x105 pushed below "
		       "the "
		       "stack top (%zu changes)",
		       name, result.change_count);
	}
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

/* rep movsb of "hello" from SRC to DST, rcx = 5, stopped after MAX steps. */
static void
test_rep(uint64_t max)
{
	static const uint64_t rips[] = { STEP_REP, STEP_REP, STEP_REP, STEP_REP,
					 STEP_REP };
	struct kvmrun_blob region = { SRC, hello, 5 };
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	char name[96];
	bool done = max == 5;

	snprintf(name, sizeof(name), "max_instructions %llu on a rep movsb with rcx 5",
		 (unsigned long long)max);
	step_spec(&spec, STEP_REP, max);
	spec.regions = &region;
	spec.region_count = 1;
	vm_test_set_reg(&spec, KVMRUN_REG_RSI, SRC);
	vm_test_set_reg(&spec, KVMRUN_REG_RDI, DST);
	vm_test_set_reg(&spec, KVMRUN_REG_RCX, 5);
	if (step_run(name, &spec, &result))
		tap_ok(result.exit.reason == KVMRUN_EXIT_STEP_LIMIT &&
			       result.regs[KVMRUN_REG_RCX] == 5 - max &&
			       result.regs[KVMRUN_REG_RSI] == SRC + max &&
			       result.regs[KVMRUN_REG_RDI] == DST + max &&
			       result.regs[KVMRUN_REG_RIP] ==
				       (done ? STEP_REP + 2 : STEP_REP) &&
			       traced(&result, rips, max) && result.change_count == 1 &&
			       result.changes[0].address == DST &&
			       result.changes[0].length == max &&
			       memcmp(result.changes[0].data, hello, max) == 0,
		       "%s: one iteration per step: rcx %llu, rip %s, %llu bytes "
		       "copied, "
		       "the trace at the rep %llu times (got %s, rcx %llu, rip 0x%llx)",
		       name, (unsigned long long)(5 - max),
		       done ? "past it" : "still at it", (unsigned long long)max,
		       (unsigned long long)max, reason(&result),
		       (unsigned long long)result.regs[KVMRUN_REG_RCX],
		       (unsigned long long)result.regs[KVMRUN_REG_RIP]);
	spec.regions = NULL;
	spec.region_count = 0;
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_div(void)
{
	static const uint64_t rips[] = { STEP_DIV };
	const char *name = "max_instructions 1 on a faulting div";
	struct kvmrun_spec spec;
	struct kvmrun_result result;

	step_spec(&spec, STEP_DIV, 1);
	vm_test_set_reg(&spec, KVMRUN_REG_RCX, 0);
	if (step_run(name, &spec, &result))
		tap_ok(result.exit.reason == KVMRUN_EXIT_EXCEPTION &&
			       result.exit.u.exception.vector == 0 &&
			       result.exit.u.exception.rip == STEP_DIV &&
			       result.regs[KVMRUN_REG_RIP] == STEP_DIV &&
			       traced(&result, rips, 1) && no_changes(&result) &&
			       !(result.regs[KVMRUN_REG_RFLAGS] & (1u << 8)),
		       "%s: ends as the #DE at 0x300, as unstepped, with no TF, no "
		       "stub "
		       "traced and no change (the frame is in the reserved area) (got "
		       "%s)",
		       name, reason(&result));
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_hlt(void)
{
	static const uint64_t rips[] = { STEP_HLT };
	const char *name = "max_instructions 1 on a hlt";
	struct kvmrun_spec spec;
	struct kvmrun_result result;

	step_spec(&spec, STEP_HLT, 1);
	if (step_run(name, &spec, &result))
		tap_ok(result.exit.reason == KVMRUN_EXIT_HLT &&
			       result.regs[KVMRUN_REG_RIP] == STEP_HLT + 1 &&
			       traced(&result, rips, 1) && no_changes(&result),
		       "%s: ends as hlt past it, not step_limit (got %s)", name,
		       reason(&result));
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_loop(uint64_t max)
{
	static const uint64_t rips[] = { 0x500, 0x505, 0x508, 0x50a, 0x505, 0x508,
					 0x50a, 0x505, 0x508, 0x50a, 0x50c };
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	char name[64];
	bool halts = max > 10;

	snprintf(name, sizeof(name),
		 "a traced 10-instruction loop, max_instructions %llu",
		 (unsigned long long)max);
	step_spec(&spec, STEP_LOOP, max);
	if (step_run(name, &spec, &result))
		tap_ok(result.exit.reason == (halts ? KVMRUN_EXIT_HLT
						    : KVMRUN_EXIT_STEP_LIMIT) &&
			       result.regs[KVMRUN_REG_RAX] == 3 &&
			       result.regs[KVMRUN_REG_RIP] == (halts ? 0x50d : 0x50c) &&
			       traced(&result, rips, halts ? 11 : 10),
		       "%s: %s, the trace lists the %s rips (got %s, %zu entries)",
		       name, halts ? "halts" : "step_limit at the hlt",
		       halts ? "10 and the hlt's" : "10", reason(&result),
		       result.trace_count);
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

/*
 * One step from a mov ss (which holds the trap back past the next
 * instruction) or an sti (whose shadow blocks interrupts only): where it
 * stops.
 */
static void
test_shadow(const char *what, uint64_t offset, uint64_t stop)
{
	const uint64_t rips[] = { offset };
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	char name[64];

	snprintf(name, sizeof(name), "max_instructions 1 on %s", what);
	step_spec(&spec, offset, 1);
	vm_test_set_reg(&spec, KVMRUN_REG_RAX, USER_DATA);
	if (step_run(name, &spec, &result))
		tap_ok(result.exit.reason == KVMRUN_EXIT_STEP_LIMIT &&
			       result.regs[KVMRUN_REG_RIP] == stop &&
			       traced(&result, rips, 1),
		       "%s: step_limit at 0x%llx, one trace entry (got %s at 0x%llx)",
		       name, (unsigned long long)stop, reason(&result),
		       (unsigned long long)result.regs[KVMRUN_REG_RIP]);
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static void
test_trace_bound(void)
{
	const char *name = "a trace past trace_max";
	struct kvmrun_spec spec;
	struct kvmrun_result result;

	step_spec(&spec, STEP_LOOP, 10);
	spec.trace_max = 4;
	if (step_run(name, &spec, &result))
		tap_ok(result.exit.reason == KVMRUN_EXIT_STEP_LIMIT &&
			       result.trace_count == 4 && result.trace_truncated &&
			       result.trace[3].rip == 0x50a,
		       "%s: the run goes on to step_limit, 4 entries kept, "
		       "trace_truncated",
		       name);
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

static bool
change_is(const struct kvmrun_result *result, size_t i, uint64_t address, size_t length,
	  uint8_t byte)
{
	if (i >= result->change_count || result->changes[i].address != address ||
	    result->changes[i].length != length)
		return false;
	for (size_t k = 0; k < length; k++)
		if (result->changes[i].data[k] != byte)
			return false;
	return true;
}

/* CHANGES_MAX 0 for the default bound. */
static void
test_changes(unsigned int ring, uint64_t changes_max)
{
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;
	uint64_t top;
	bool below = true;

	kvmrun_spec_init(&spec);
	spec.mode = KVMRUN_MODE_LONG;
	spec.ring = ring;
	spec.changes = true;
	if (changes_max != 0)
		spec.changes_max = changes_max;
	vm_test_load_guest(guest_dir, "changes-long", &spec);
	top = spec.memory_size - 0x10000;
	kvmrun_result_init(&result);
	if (vm_run_fresh(host, &spec, &result, &err) < 0) {
		tap_ok(0, "changes at ring %u: refused: %s", ring, err.message);
	} else if (changes_max == 0) {
		for (size_t i = 0; i < result.change_count; i++)
			below &= result.changes[i].address + result.changes[i].length <=
				 top;
		tap_ok(result.exit.reason == KVMRUN_EXIT_HLT &&
			       result.change_count == 4 &&
			       change_is(&result, 0, 0x3000, 1, 0x11) &&
			       change_is(&result, 1, 0x5123, 1, 0x22) &&
			       change_is(&result, 2, 0x9fff, 1, 0x33) &&
			       change_is(&result, 3, 0x10f00, 5000, 0xab) &&
			       !result.changes_truncated && below,
		       "changes at ring %u: exactly the 3 bytes and the 5000-byte "
		       "block, "
		       "nothing from the reserved area (got %zu)",
		       ring, result.change_count);
	} else {
		tap_ok(result.exit.reason == KVMRUN_EXIT_HLT &&
			       result.change_count == 4 &&
			       change_is(&result, 3, 0x10f00, 100, 0xab) &&
			       result.changes_truncated,
		       "changes over their bound: the run still halts, the block is "
		       "cut "
		       "and changes_truncated is set (got %zu)",
		       result.change_count);
	}
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
}

int
main(void)
{
	guest_dir = vm_test_guest_dir();
	host = vm_test_open_host_or_skip();
	test_jmp();
	test_call();
	test_rep(1);
	test_rep(3);
	test_rep(5);
	test_div();
	test_hlt();
	test_loop(10);
	test_loop(100);
	test_shadow("mov ss: the nop after it goes too", STEP_MOV_SS, STEP_MOV_SS + 3);
	test_shadow("sti: it alone", STEP_STI, STEP_STI + 1);
	test_trace_bound();
	test_changes(3, 0);
	test_changes(0, 0);
	test_changes(3, 4 * KVMRUN_CHANGE_COST + 3 + 100);
	vm_host_close(host);
	return tap_done();
}
