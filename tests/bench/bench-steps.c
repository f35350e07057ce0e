/*
 * The idle row step by step.  kvmrund adds every run it answers with a
 * result to its steps_ns once the answer is written, so the difference of
 * two stats taken around a window, after the window's last answer came, is
 * that window's runs (and those of any other client of the daemon then).
 */
#include <inttypes.h>

#include "bench-steps.h"

int
bench_steps_begin(struct bench_steps *steps, const char *socket_path,
		  struct bench_error *err)
{
	return drive_daemon_steps(socket_path, &steps->before, err);
}

int
bench_steps_end(struct bench_steps *steps, const char *socket_path,
		struct bench_error *err)
{
	struct proto_steps after;
	int rc;

	if ((rc = drive_daemon_steps(socket_path, &after, err)) < 0)
		return rc;
	steps->sum.runs += after.runs - steps->before.runs;
	for (int i = 0; i < PROTO_STEP_COUNT; i++)
		steps->sum.ns[i] += after.ns[i] - steps->before.ns[i];
	steps->windows++;
	return 0;
}

void
bench_steps_print(const struct bench_steps *steps, size_t row_runs, double p50_us,
		  FILE *out)
{
	double runs = (double)steps->sum.runs, total = 0, mean;

	if (steps->windows == 0)
		return;
	if (steps->sum.runs == 0) {
		fprintf(out,
			"\nan idle run, step by step: kvmrund counted no run in its "
			"steps_ns (a version without them, or no run answered)\n");
		return;
	}
	fprintf(out, "\nan idle run, step by step (mean us over %" PRIu64 " runs%s):\n",
		steps->sum.runs,
		steps->sum.runs == row_runs ? "" : ", other clients' among them");
	for (int i = 0; i < PROTO_STEP_COUNT; i++) {
		mean = (double)steps->sum.ns[i] / runs / 1000;
		total += mean;
		fprintf(out, "  %-16s %9.1f\n", proto_step_names[i], mean);
	}
	fprintf(out,
		"  %-16s %9.1f of %.1f p50 latency (%.0f%%); the rest: the client "
		"and the socket\n",
		"daemon, in all", total, p50_us, p50_us > 0 ? 100 * total / p50_us : 0);
}
