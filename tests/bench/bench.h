/*
 * kvmrun-bench's pieces: driving a daemon over its socket (bench-drive.c),
 * the same runs without one, in-process and a process per run, plus the
 * native loop and the /proc readings (bench-local.c).  kvmrun-bench.c
 * strings them together and prints the figures.
 */
#ifndef KVMRUN_BENCH_H
#define KVMRUN_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvmrun-run.h"

struct kvmrun_host;

#define BENCH_MESSAGE_MAX 512

struct bench_error {
	char message[BENCH_MESSAGE_MAX];
};

/* Fills ERR and returns -ERRNUM. */
int bench_fail(struct bench_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

uint64_t bench_now_ns(void);

/* One time per run, in nanoseconds. */
struct bench_samples {
	uint64_t *ns;
	size_t count;
	size_t capacity;
};

/* What a table row shows of a set of samples, in microseconds. */
struct bench_summary {
	double p50, p90, p99, max;
};

/* Sorts SAMPLES in place. */
void bench_summarize(struct bench_samples *samples, struct bench_summary *summary);

/*
 * One way of carrying out runs, as a row of the table.  The functions below
 * add to a row, so that it can be measured in rounds taken in turn with the
 * other rows: this host's speed drifts, and rounds spread the drift evenly.
 */
struct bench_row {
	size_t runs;
	size_t failures;
	double seconds;			 /* wall clock for all of them */
	struct bench_samples latency;	 /* one per run */
	double cpu_ns;			 /* CPU time they cost, < 0 unknown */
	uint64_t run_ns;		 /* vCPU time the daemon reported */
	char failure[BENCH_MESSAGE_MAX]; /* why the first failed run failed */
};

/* An empty row with room for CAPACITY runs. */
int bench_row_init(struct bench_row *row, size_t capacity, struct bench_error *err);
void bench_row_free(struct bench_row *row);
/* -EOVERFLOW unless ROW has room for RUNS more: a caller's bug. */
int bench_row_room(const struct bench_row *row, size_t runs, struct bench_error *err);

/* Counts a failed run; the first one's reason is kept. */
void bench_row_failure(struct bench_row *row, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Adds to ROW the runs of CFG through a daemon: CFG->runs copies of SPEC over
 * CONNECTIONS connections, each keeping up to DEPTH requests in flight.  With
 * GAP_NS a connection waits that long after an answer before it sends again,
 * so every request meets an idle daemon.  An answer that is an error, or a
 * run that did not end as EXPECT, counts as a failure.
 */
struct tls_files;
struct drive_config {
	const char *socket_path;     /* or a tls:// front of the daemon */
	const struct tls_files *tls; /* for a tls:// address */
	const struct kvmrun_spec *spec;
	enum kvmrun_exit_reason expect;
	size_t runs;
	unsigned int connections;
	unsigned int depth;
	uint64_t gap_ns;
	int idle_timeout_ms; /* no answer for this long fails */
};

int drive_run(const struct drive_config *cfg, struct bench_row *row,
	      struct bench_error *err);

/* The daemon's process behind SOCKET_PATH (SO_PEERCRED), and its workers. */
int drive_daemon_info(const char *socket_path, pid_t *pid, unsigned int *workers,
		      struct bench_error *err);

/*
 * Adds to ROW RUNS fresh create-run-destroy cycles of SPEC through the
 * engine in this process, spread over THREADS threads, and this process's
 * CPU time.
 */
int local_engine_runs(struct kvmrun_host *host, const struct kvmrun_spec *spec,
		      size_t runs, unsigned int threads, struct bench_row *row,
		      struct bench_error *err);

/*
 * Adds to ROW RUNS processes of ONCE_ARGV (an exec of kvmrun-once), PARALLEL
 * at a time, and their CPU time.
 */
int local_process_runs(char *const once_argv[], size_t runs, unsigned int parallel,
		       struct bench_row *row, struct bench_error *err);

/* Nanoseconds for COUNT turns of the guest's loop run natively. */
uint64_t local_spin_native(uint64_t count);

/* /proc/PID figures; each returns -1 when it cannot read them. */
double proc_cpu_ns(pid_t pid);
long proc_rss_kib(pid_t pid);
int proc_vm_count(pid_t pid);

#endif
