/*
 * The runs kvmrun-bench measures the daemon against, all without a socket:
 * the engine called in this process on a few threads (the limit), a fresh
 * kvmrun-once process per run (the one-shot way), and the guest's loop run
 * natively.  Also the shared helpers: errors, clocks and percentiles.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "vm.h"

int
bench_fail(struct bench_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -errnum;
}

static uint64_t
bench_clock_ns(clockid_t clock)
{
	struct timespec ts;

	/* Only an invalid clock id fails, and these are fixed. */
	if (clock_gettime(clock, &ts) < 0)
		abort();
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t
bench_now_ns(void)
{
	return bench_clock_ns(CLOCK_MONOTONIC);
}

void
bench_sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		continue;
}

int
bench_row_init(struct bench_row *row, size_t capacity, struct bench_error *err)
{
	memset(row, 0, sizeof(*row));
	row->latency.ns = calloc(capacity > 0 ? capacity : 1, sizeof(*row->latency.ns));
	row->overhead.ns = calloc(capacity > 0 ? capacity : 1, sizeof(*row->overhead.ns));
	if (row->latency.ns == NULL || row->overhead.ns == NULL) {
		bench_row_free(row);
		return bench_fail(err, ENOMEM, "no memory for %zu samples", capacity);
	}
	row->latency.capacity = row->overhead.capacity = capacity;
	return 0;
}

void
bench_row_free(struct bench_row *row)
{
	free(row->latency.ns);
	free(row->overhead.ns);
	row->latency.ns = row->overhead.ns = NULL;
}

void
bench_row_failure(struct bench_row *row, const char *fmt, ...)
{
	va_list ap;

	if (row->failures++ > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(row->failure, sizeof(row->failure), fmt, ap);
	va_end(ap);
}

int
bench_row_room(const struct bench_row *row, size_t runs, struct bench_error *err)
{
	if (row->latency.capacity - row->latency.count < runs)
		return bench_fail(err, EOVERFLOW,
				  "a row sized for %zu runs given %zu more",
				  row->latency.capacity, runs);
	return 0;
}

static int
bench_compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile P of sorted SAMPLES, in microseconds. */
static double
bench_percentile(const struct bench_samples *samples, unsigned int p)
{
	size_t rank = (samples->count * p + 99) / 100;

	if (samples->count == 0)
		return 0;
	return (double)samples->ns[rank > 0 ? rank - 1 : 0] / 1000.0;
}

void
bench_summarize(struct bench_samples *samples, struct bench_summary *summary)
{
	qsort(samples->ns, samples->count, sizeof(*samples->ns), bench_compare_u64);
	summary->p50 = bench_percentile(samples, 50);
	summary->p90 = bench_percentile(samples, 90);
	summary->p99 = bench_percentile(samples, 99);
	summary->max = bench_percentile(samples, 100);
}

/* One engine thread's share of the runs, and its slice of the samples. */
struct local_thread {
	pthread_t thread;
	struct kvmrun_host *host;
	const struct kvmrun_spec *spec;
	size_t runs;
	uint64_t *ns;
	size_t failures;
	struct kvmrun_error first; /* why the first failure failed */
};

static void *
local_thread_main(void *arg)
{
	struct local_thread *t = arg;

	for (size_t i = 0; i < t->runs; i++) {
		struct kvmrun_result result;
		struct kvmrun_error err;
		uint64_t start = bench_now_ns();
		int rc;

		kvmrun_result_init(&result);
		rc = vm_run_fresh(t->host, t->spec, &result, &err);
		t->ns[i] = bench_now_ns() - start;
		if (rc == 0 && result.exit.reason != KVMRUN_EXIT_HLT)
			kvmrun_error_set(&err, KVMRUN_ERR_INTERNAL,
					 "the run ended as %s",
					 kvmrun_exit_reason_names[result.exit.reason]);
		if ((rc < 0 || result.exit.reason != KVMRUN_EXIT_HLT) &&
		    t->failures++ == 0)
			t->first = err;
		kvmrun_result_free(&result);
	}
	return NULL;
}

int
local_engine_runs(struct kvmrun_host *host, const struct kvmrun_spec *spec, size_t runs,
		  unsigned int threads, struct bench_row *row, struct bench_error *err)
{
	uint64_t *ns = row->latency.ns + row->latency.count;
	uint64_t start, cpu_start;
	struct local_thread *t;
	unsigned int started;
	size_t given = 0;
	int rc;

	if ((rc = bench_row_room(row, runs, err)) < 0)
		return rc;
	t = calloc(threads, sizeof(*t));
	if (t == NULL)
		return bench_fail(err, ENOMEM, "no memory for %u threads", threads);
	start = bench_now_ns();
	cpu_start = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	for (started = 0; started < threads; started++) {
		struct local_thread *lt = &t[started];

		lt->host = host;
		lt->spec = spec;
		lt->runs = runs / threads + (started < runs % threads);
		lt->ns = ns + given;
		rc = pthread_create(&lt->thread, NULL, local_thread_main, lt);
		if (rc != 0) {
			rc = bench_fail(err, rc, "pthread_create: %s", strerror(rc));
			break;
		}
		given += lt->runs;
	}
	for (unsigned int i = 0; i < started; i++) {
		int jrc = pthread_join(t[i].thread, NULL);

		if (jrc != 0) {
			/* A thread we cannot join still writes into the samples. */
			fprintf(stderr, "kvmrun-bench: pthread_join: %s\n",
				strerror(jrc));
			abort();
		}
		if (t[i].failures > 0 && row->failures == 0)
			snprintf(row->failure, sizeof(row->failure),
				 "in-process run: %s", t[i].first.message);
		row->failures += t[i].failures;
	}
	row->seconds += (double)(bench_now_ns() - start) / 1e9;
	row->cpu_ns += (double)(bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu_start);
	row->runs += given;
	row->latency.count += given;
	free(t);
	return rc;
}

static double
local_children_cpu_ns(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_CHILDREN, &ru) < 0)
		return -1;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

/* A child of local_process_runs in flight. */
struct local_child {
	pid_t pid;
	uint64_t start;
};

/* Waits for one child; adds its time to ROW, and a failure unless it halted. */
static int
local_reap(struct local_child *children, unsigned int *running, struct bench_row *row,
	   struct bench_error *err)
{
	int status;
	pid_t pid;

	do
		pid = waitpid(-1, &status, 0);
	while (pid < 0 && errno == EINTR);
	if (pid < 0)
		return bench_fail(err, errno, "waitpid: %s", strerror(errno));
	for (unsigned int i = 0; i < *running; i++) {
		if (children[i].pid != pid)
			continue;
		row->latency.ns[row->latency.count++] =
			bench_now_ns() - children[i].start;
		row->runs++;
		children[i] = children[--*running];
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bench_row_failure(row, "kvmrun-once ended with status 0x%x",
					  (unsigned int)status);
		return 0;
	}
	return 0; /* not one of ours */
}

int
local_process_runs(char *const once_argv[], size_t runs, unsigned int parallel,
		   struct bench_row *row, struct bench_error *err)
{
	struct local_child *children;
	unsigned int running = 0;
	uint64_t start;
	double cpu_start;
	size_t spawned = 0;
	int rc;

	if ((rc = bench_row_room(row, runs, err)) < 0)
		return rc;
	children = calloc(parallel, sizeof(*children));
	if (children == NULL)
		return bench_fail(err, ENOMEM, "no memory for %u children", parallel);
	cpu_start = local_children_cpu_ns();
	start = bench_now_ns();
	while (rc == 0 && (spawned < runs || running > 0)) {
		struct local_child *c;

		if (spawned == runs || running == parallel) {
			rc = local_reap(children, &running, row, err);
			continue;
		}
		c = &children[running];
		c->start = bench_now_ns();
		c->pid = fork();
		if (c->pid < 0) {
			rc = bench_fail(err, errno, "fork: %s", strerror(errno));
			break;
		}
		if (c->pid == 0) {
			execv(once_argv[0], once_argv);
			fprintf(stderr, "kvmrun-bench: %s: %s\n", once_argv[0],
				strerror(errno));
			_exit(127);
		}
		running++;
		spawned++;
	}
	while (running > 0 && local_reap(children, &running, row, err) == 0)
		continue;
	row->seconds += (double)(bench_now_ns() - start) / 1e9;
	if (cpu_start < 0 || row->cpu_ns < 0)
		row->cpu_ns = -1;
	else
		row->cpu_ns += local_children_cpu_ns() - cpu_start;
	free(children);
	return rc;
}

uint64_t
local_spin_native(uint64_t count)
{
	uint64_t start = bench_now_ns();

	/* The two instructions of tests/guests/spin-long.S. */
	__asm__ volatile("1:\n\tdec %%rcx\n\tjnz 1b" : "+c"(count) : : "cc");
	return bench_now_ns() - start;
}
