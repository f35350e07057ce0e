/*
 * stats' steps_ns without KVM (daemon/steps.c): a run's moments become steps
 * that partition the time from its line to its answer written, on each path
 * a run takes (parsed on the loop or the parser thread, its answer formatted
 * on the loop or the worker, cancelled before its first KVM_RUN).
 */
#include <inttypes.h>
#include <string.h>

#include "steps.h"
#include "tap.h"

/* A run parsed on the loop, its answer formatted there: 1 us per step. */
static struct steps_times
loop_times(void)
{
	return (struct steps_times){
		.line = 1000,
		.parsed = 2000,
		.queued = 3000,
		.worker_took = 4000,
		.vm = { .started = 5000,
			.copied = 6000,
			.entered = 7000,
			.first_exit = 8000,
			.ended = 9000,
			.returned = 10000 },
		.loop_took = 11000,
		.format_start = 11500,
		.format_end = 12500,
		.written = 13000,
	};
}

/* Whether SUMS holds one run with NS per step, and prints the difference. */
static bool
steps_are(const struct proto_steps *sums, const uint64_t ns[PROTO_STEP_COUNT])
{
	bool same = sums->runs == 1;

	for (int i = 0; i < PROTO_STEP_COUNT; i++)
		if (sums->ns[i] != ns[i]) {
			tap_diag("%s: %" PRIu64 ", expected %" PRIu64,
				 proto_step_names[i], sums->ns[i], ns[i]);
			same = false;
		}
	return same;
}

static uint64_t
steps_total(const struct proto_steps *sums)
{
	uint64_t total = 0;

	for (int i = 0; i < PROTO_STEP_COUNT; i++)
		total += sums->ns[i];
	return total;
}

static void
test_loop(void)
{
	struct steps_times t = loop_times();
	struct proto_steps sums = { 0 };
	const uint64_t ns[PROTO_STEP_COUNT] = {
		[PROTO_STEP_PARSE] = 1000,	    [PROTO_STEP_DISPATCH] = 1000,
		[PROTO_STEP_LOOP_TO_WORKER] = 1000, [PROTO_STEP_VM_GET] = 1000,
		[PROTO_STEP_IMAGE_COPY] = 1000,	    [PROTO_STEP_VCPU_SETUP] = 1000,
		[PROTO_STEP_FIRST_ENTRY] = 1000,    [PROTO_STEP_RUN] = 1000,
		[PROTO_STEP_COLLECT] = 1000,	    [PROTO_STEP_FORMAT] = 1000,
		[PROTO_STEP_WORKER_TO_LOOP] = 1000, [PROTO_STEP_WRITE] = 1000,
	};

	steps_add(&sums, &t);
	tap_ok(steps_are(&sums, ns), "parsed and formatted on the loop: no parser "
				     "steps, format out of write");
	tap_ok(steps_total(&sums) == t.written - t.line,
	       "the steps add up to the whole");
	steps_add(&sums, &t);
	tap_ok(sums.runs == 2 && sums.ns[PROTO_STEP_WRITE] == 2000 &&
		       steps_total(&sums) == 2 * (t.written - t.line),
	       "a second run adds to the sums");
}

static void
test_parser_worker(void)
{
	struct steps_times t = loop_times();
	struct proto_steps sums = { 0 };
	uint64_t ns[PROTO_STEP_COUNT];

	/* The parser took the line 100 ns after the loop turned to it. */
	t.parser_took = 1100;
	t.parser_posted = 1700;
	/* Formatted on the worker, between vm_run's return and the post. */
	t.format_on_worker = true;
	t.format_start = 10100;
	t.format_end = 10400;
	memset(ns, 0, sizeof(ns));
	for (int i = PROTO_STEP_DISPATCH; i <= PROTO_STEP_COLLECT; i++)
		ns[i] = 1000;
	ns[PROTO_STEP_LOOP_TO_PARSER] = 100;
	ns[PROTO_STEP_PARSE] = 600;
	ns[PROTO_STEP_PARSER_TO_LOOP] = 300;
	ns[PROTO_STEP_FORMAT] = 300;
	ns[PROTO_STEP_WORKER_TO_LOOP] = 700;
	ns[PROTO_STEP_WRITE] = 2000;
	steps_add(&sums, &t);
	tap_ok(steps_are(&sums, ns), "parsed on the parser, formatted on the worker: "
				     "format out of the hand-off");
	tap_ok(steps_total(&sums) == t.written - t.line,
	       "the steps add up to the whole");
}

static void
test_cancelled(void)
{
	struct steps_times t = loop_times();
	struct proto_steps sums = { 0 };

	/* Cancelled before its first KVM_RUN: the engine never entered. */
	t.vm.entered = 0;
	t.vm.first_exit = 0;
	steps_add(&sums, &t);
	tap_ok(sums.ns[PROTO_STEP_VCPU_SETUP] == 0 &&
		       sums.ns[PROTO_STEP_FIRST_ENTRY] == 0 &&
		       sums.ns[PROTO_STEP_RUN] == 3000 &&
		       steps_total(&sums) == t.written - t.line,
	       "no KVM_RUN: its steps are empty, the run step takes their time");
}

static void
test_now(void)
{
	uint64_t a = steps_now(), b = steps_now();

	tap_ok(a > 0 && b >= a, "steps_now: nonzero, does not go back");
}

int
main(void)
{
	test_loop();
	test_parser_worker();
	test_cancelled();
	test_now();
	return tap_done();
}
