/*
 * Where a run's time goes inside kvmrund: the moments a run request passes
 * on its way from its line to its answer written, and the steps between
 * them that stats' steps_ns adds up (PROTOCOL.md says what each covers).
 * Each thread stamps what it does; the times travel with the job and its
 * completion, which pass between threads under the pool's lock.
 */
#ifndef KVMRUN_STEPS_H
#define KVMRUN_STEPS_H

#include <stdbool.h>
#include <stdint.h>

#include "kvmrun-proto.h"
#include "vm.h"

/* CLOCK_MONOTONIC nanoseconds; 0 is a moment not passed. */
struct steps_times {
	uint64_t line;		/* the loop turned to the complete line */
	uint64_t parser_took;	/* the parser thread took it (0: parsed on the loop) */
	uint64_t parser_posted; /* the parser posted the request it made */
	uint64_t parsed;	/* the loop has the request, parsed or taken */
	uint64_t queued;	/* the loop queues the run for a worker */
	uint64_t worker_took;	/* a worker took the run */
	struct vm_run_times vm; /* inside vm_run */
	uint64_t format_start;	/* the answer line is made, on the worker or the loop */
	uint64_t format_end;
	bool format_on_worker;
	uint64_t loop_took; /* the loop took the completion list holding it */
	uint64_t written;   /* the write handing the socket its last byte returned */
};

uint64_t steps_now(void);

/* Adds one run, through the moments T, to SUMS. */
void steps_add(struct proto_steps *sums, const struct steps_times *t);

#endif
