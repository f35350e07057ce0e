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
/* Sleeps MS milliseconds, signals or not. */
void bench_sleep_ms(unsigned int ms);

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
	struct bench_samples overhead;	 /* through a daemon: latency - run_ns */
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

/* One task's line of /proc/PID/stat. */
#define PROC_PF_KTHREAD 0x00200000ul /* in flags: a kernel thread */
struct proc_task {
	pid_t pid, ppid;
	char comm[17];
	unsigned long flags;
	double own_ns;	    /* user + system time */
	double children_ns; /* the same of the children it has reaped */
};

/* 0, or -1 when the task is gone or its line unreadable. */
int proc_task_read(pid_t pid, struct proc_task *task);
/* systemd-udevd or one of its workers. */
bool proc_task_is_udevd(const struct proc_task *task);

/*
 * The whole machine at one moment: the busy time of all its CPUs and every
 * task's times.  A window is measured from machine_sample_take to
 * machine_sample_end, which read /proc/stat last and first, so that their
 * scans of /proc fall outside it.
 */
struct machine_sample {
	double busy_ns;
	struct proc_task *tasks; /* sorted by pid */
	size_t count, capacity;
};

int machine_sample_take(struct machine_sample *s, struct bench_error *err);
int machine_sample_end(struct machine_sample *s, struct bench_error *err);
void machine_sample_free(struct machine_sample *s);

#define MACHINE_KTHREAD_KINDS 64

/* What a kind of kernel thread ("kworker", "ksoftirqd") spent. */
struct machine_kthread {
	char kind[17];
	double ns;
};

/*
 * What the machine spent over windows, added up: all of it, systemd-udevd
 * with its workers, and kernel threads by kind.
 */
struct machine_cost {
	double busy_ns;
	double udevd_ns;
	double kthreads_ns;
	struct machine_kthread kthreads[MACHINE_KTHREAD_KINDS];
	size_t kthread_kinds;
	double kthreads_unnamed_ns; /* kinds past MACHINE_KTHREAD_KINDS */
};

void machine_cost_add(struct machine_cost *cost, const struct machine_sample *before,
		      const struct machine_sample *after);
/* The dearest kinds of kernel thread first. */
void machine_cost_sort(struct machine_cost *cost);

/*
 * systemd-udevd: KVM sends it a uevent for every VM made and destroyed.  The
 * benchmark starts one of its own on a machine that runs none.
 */
#define UDEVD_DEFAULT_PATH "/lib/systemd/systemd-udevd"
#define UDEVD_QUEUE_FILE "/run/udev/queue"
#define UDEVD_START_MS 300
#define UDEVD_STOP_MS 5000
#define UDEVD_SETTLE_MS 10000
#define UDEVD_POLL_MS 20
#define UDEVD_STILL 3 /* polls in a row with no CPU time spent: idle */

struct udevd {
	pid_t pid;
	bool ours; /* started by udevd_start, stopped by udevd_stop */
};

/* The main process of a running systemd-udevd, 0 when none runs. */
pid_t udevd_find(void);
/* Starts PATH in the foreground as a child, and waits until it is idle. */
int udevd_start(const char *path, struct udevd *u, struct bench_error *err);
int udevd_stop(struct udevd *u, struct bench_error *err);
/* Waits, up to UDEVD_SETTLE_MS, until udevd has handled what it was sent. */
void udevd_settle(void);

#endif
