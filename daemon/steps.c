/*
 * A run's moments turned into steps.  The steps partition the time from
 * its line to its answer written, so that they add up to the whole: a
 * moment a run did not pass (no parser for a short line, no KVM_RUN for a
 * run cancelled before it) makes its step empty and the next step longer.
 */
#include <time.h>

#include "log.h"
#include "steps.h"

uint64_t
steps_now(void)
{
	struct timespec now;

	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		fatal("steps", "clock_gettime(CLOCK_MONOTONIC)");
	return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

/* The step from *LAST to AT, which becomes *LAST; empty when AT was not passed. */
static uint64_t
steps_to(uint64_t *last, uint64_t at)
{
	uint64_t from = *last;

	if (at == 0 || at < from)
		return 0;
	*last = at;
	return at - from;
}

static uint64_t
steps_less(uint64_t ns, uint64_t part)
{
	return ns > part ? ns - part : 0;
}

void
steps_add(struct proto_steps *sums, const struct steps_times *t)
{
	uint64_t ns[PROTO_STEP_COUNT] = { 0 };
	uint64_t last = t->line, format = 0;

	if (t->parser_took != 0) {
		ns[PROTO_STEP_LOOP_TO_PARSER] = steps_to(&last, t->parser_took);
		ns[PROTO_STEP_PARSE] = steps_to(&last, t->parser_posted);
		ns[PROTO_STEP_PARSER_TO_LOOP] = steps_to(&last, t->parsed);
	} else {
		ns[PROTO_STEP_PARSE] = steps_to(&last, t->parsed);
	}
	ns[PROTO_STEP_DISPATCH] = steps_to(&last, t->queued);
	ns[PROTO_STEP_LOOP_TO_WORKER] = steps_to(&last, t->worker_took);
	ns[PROTO_STEP_VM_GET] = steps_to(&last, t->vm.started);
	ns[PROTO_STEP_IMAGE_COPY] = steps_to(&last, t->vm.copied);
	ns[PROTO_STEP_VCPU_SETUP] = steps_to(&last, t->vm.entered);
	ns[PROTO_STEP_FIRST_ENTRY] = steps_to(&last, t->vm.first_exit);
	ns[PROTO_STEP_RUN] = steps_to(&last, t->vm.ended);
	ns[PROTO_STEP_COLLECT] = steps_to(&last, t->vm.returned);
	/* Formatting falls within the hand-off or the write, by where it ran. */
	if (t->format_start != 0 && t->format_end > t->format_start)
		format = t->format_end - t->format_start;
	ns[PROTO_STEP_FORMAT] = format;
	ns[PROTO_STEP_WORKER_TO_LOOP] = steps_less(steps_to(&last, t->loop_took),
						   t->format_on_worker ? format : 0);
	ns[PROTO_STEP_WRITE] = steps_less(steps_to(&last, t->written),
					  t->format_on_worker ? 0 : format);
	sums->runs++;
	for (int i = 0; i < PROTO_STEP_COUNT; i++)
		sums->ns[i] += ns[i];
}
