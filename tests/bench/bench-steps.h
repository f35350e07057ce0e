/*
 * Where an idle daemon's latency goes: kvmrund's stats steps_ns read around
 * each window of a row, and the mean of each step printed against the row's
 * p50 latency.
 */
#ifndef KVMRUN_BENCH_STEPS_H
#define KVMRUN_BENCH_STEPS_H

#include <stdbool.h>
#include <stdio.h>

#include "bench.h"
#include "kvmrun-proto.h"

/* steps_ns of the daemon behind SOCKET_PATH, zero from one without (bench-drive.c). */
int drive_daemon_steps(const char *socket_path, struct proto_steps *steps,
		       struct bench_error *err);

/* What the daemon's steps_ns grew by over the windows of a row. */
struct bench_steps {
	struct proto_steps sum;
	struct proto_steps before; /* at the start of the open window */
	unsigned int windows;
};

/* Around one window of the row: the daemon's steps_ns before and after it. */
int bench_steps_begin(struct bench_steps *steps, const char *socket_path,
		      struct bench_error *err);
int bench_steps_end(struct bench_steps *steps, const char *socket_path,
		    struct bench_error *err);

/*
 * "an idle run, step by step": each step's mean in us, and their sum against
 * P50_US, the row's p50 latency of ROW_RUNS runs.  Nothing when no window was
 * measured.
 */
void bench_steps_print(const struct bench_steps *steps, size_t row_runs, double p50_us,
		       FILE *out);

#endif
