/*
 * kvmrun-bench's /proc accounting, without KVM: the whole machine's busy time
 * and systemd-udevd's share of it, measured around processes of this test
 * that burn known amounts of CPU, and the sums over hand-made samples.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "tap.h"

#define MS 1000000.0
/* /proc counts in ticks of 10 ms; a window may gain or lose one at each end. */
#define TICK_SLACK (25 * MS)

static double
cpu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void
burn(double ms)
{
	double until = cpu_now_ns() + ms * MS;

	while (cpu_now_ns() < until)
		continue;
}

static void
say(int fd)
{
	if (write(fd, "x", 1) != 1)
		_exit(3);
}

static void
hear(int fd)
{
	char c;

	if (read(fd, &c, 1) != 1)
		_exit(3);
}

/*
 * A stand-in for udevd: a process named like it whose worker burns 200 ms,
 * says so on READY, waits for GO, burns 100 ms more and ends; the stand-in
 * reaps it, burns 50 ms, says so on READY and waits for GO to end.
 */
static void __attribute__((noreturn))
fake_udevd(int ready, int go)
{
	pid_t worker;

	prctl(PR_SET_NAME, "systemd-udevd");
	worker = fork();
	if (worker < 0)
		_exit(2);
	if (worker == 0) {
		prctl(PR_SET_NAME, "(udev-worker)");
		burn(200);
		say(ready);
		hear(go);
		burn(100);
		_exit(0);
	}
	if (waitpid(worker, NULL, 0) != worker)
		_exit(2);
	burn(50);
	say(ready);
	hear(go);
	_exit(0);
}

static void
test_machine_busy(void)
{
	struct machine_sample before = { 0 }, after = { 0 };
	struct machine_cost cost = { 0 };
	struct bench_error err;
	pid_t child;
	int ok;

	ok = machine_sample_take(&before, &err) == 0;
	child = fork();
	if (child == 0) {
		burn(300);
		_exit(0);
	}
	ok = ok && child > 0 && waitpid(child, NULL, 0) == child;
	ok = ok && machine_sample_end(&after, &err) == 0;
	if (ok)
		machine_cost_add(&cost, &before, &after);
	tap_ok(ok && cost.busy_ns >= 300 * MS - TICK_SLACK,
	       "a child burning 300 ms shows in the machine's busy time (%.0f ms)",
	       cost.busy_ns / MS);
	tap_ok(ok && before.count > 0 && after.count > 0,
	       "every task is read (%zu, then %zu)", before.count, after.count);
	machine_sample_free(&before);
	machine_sample_free(&after);
}

/*
 * The tasks of S that are PID or its children, so that a real udevd running
 * on the machine meanwhile does not count.
 */
static struct machine_sample
family(const struct machine_sample *s, pid_t pid)
{
	struct machine_sample f = { .busy_ns = s->busy_ns };

	f.tasks = calloc(s->count > 0 ? s->count : 1, sizeof(*f.tasks));
	if (f.tasks == NULL)
		abort();
	for (size_t i = 0; i < s->count; i++)
		if (s->tasks[i].pid == pid || s->tasks[i].ppid == pid)
			f.tasks[f.count++] = s->tasks[i];
	return f;
}

static void
test_udevd_window(void)
{
	struct machine_sample before = { 0 }, after = { 0 };
	struct machine_cost cost = { 0 };
	struct bench_error err;
	int ready[2], go[2], ok;
	pid_t real = udevd_find(), fake, found;
	struct proc_task line;

	if (pipe(ready) < 0 || pipe(go) < 0) {
		tap_ok(0, "pipe: %s", strerror(errno));
		return;
	}
	fake = fork();
	if (fake == 0)
		fake_udevd(ready[1], go[0]);
	ok = fake > 0;
	if (ok)
		hear(ready[0]); /* the worker has burned its first 200 ms */
	ok = ok && machine_sample_take(&before, &err) == 0;
	if (ok) {
		say(go[1]);
		hear(ready[0]); /* the worker is reaped, the stand-in burned 50 ms */
	}
	ok = ok && machine_sample_end(&after, &err) == 0;
	found = udevd_find();
	/* With the machine's own udevd running, either main process will do. */
	tap_ok(ok && (found == fake || (real != 0 && found == real)),
	       "udevd_find names the main process, not its worker (%d; stand-in %d)",
	       (int)found, (int)fake);
	tap_ok(ok && proc_task_read(fake, &line) == 0 && proc_task_is_udevd(&line) &&
		       line.children_ns >= 300 * MS - TICK_SLACK,
	       "the stand-in holds its reaped worker's 300 ms as its children's time");
	if (ok) {
		struct machine_sample b = family(&before, fake), a = family(&after, fake);

		machine_cost_add(&cost, &b, &a);
		machine_sample_free(&b);
		machine_sample_free(&a);
	}
	/* 100 ms of the worker and 50 of the stand-in fell inside the window. */
	tap_ok(ok && cost.udevd_ns >= 150 * MS - TICK_SLACK &&
		       cost.udevd_ns <= 150 * MS + TICK_SLACK,
	       "udevd's window counts a worker that ended in it once, from the "
	       "window's start: %.0f ms of 150",
	       cost.udevd_ns / MS);
	tap_ok(ok && cost.busy_ns >= cost.udevd_ns - TICK_SLACK,
	       "the machine's busy time holds udevd's (%.0f >= %.0f ms)",
	       cost.busy_ns / MS, cost.udevd_ns / MS);
	if (fake > 0) {
		say(go[1]);
		waitpid(fake, NULL, 0);
	}
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
	machine_sample_free(&before);
	machine_sample_free(&after);
}

static struct proc_task
task(pid_t pid, pid_t ppid, const char *comm, bool kthread, double own, double children)
{
	struct proc_task t = { .pid = pid,
			       .ppid = ppid,
			       .flags = kthread ? PROC_PF_KTHREAD : 0,
			       .own_ns = own * MS,
			       .children_ns = children * MS };

	snprintf(t.comm, sizeof(t.comm), "%s", comm);
	return t;
}

/* The sums over two samples made by hand, pid by pid. */
static void
test_cost_sums(void)
{
	struct proc_task then[] = {
		task(10, 2, "kworker/0:1-events", true, 100, 0),
		task(12, 2, "kworker/0:2", true, 500, 0),
		task(13, 2, "ksoftirqd/0", true, 40, 0),
		task(20, 1, "systemd-udevd", false, 50, 10),
		task(21, 20, "(udev-worker)", false, 30, 0),
	};
	struct proc_task now[] = {
		task(10, 2, "kworker/0:1-kvm", true, 150, 0),
		task(11, 2, "kworker/1:0", true, 20, 0),
		task(12, 1, "bash", false, 900, 0), /* pid 12 used again */
		task(13, 2, "ksoftirqd/0", true, 45, 0),
		task(20, 1, "systemd-udevd", false, 60, 45),
		task(30, 1, "kvmrund", false, 400, 0),
	};
	struct machine_sample before = { .busy_ns = 1000 * MS,
					  .tasks = then,
					  .count = sizeof(then) / sizeof(then[0]) };
	struct machine_sample after = { .busy_ns = 1700 * MS,
					 .tasks = now,
					 .count = sizeof(now) / sizeof(now[0]) };
	struct machine_cost cost = { 0 };

	machine_cost_add(&cost, &before, &after);
	machine_cost_add(&cost, &before, &after);
	machine_cost_sort(&cost);
	tap_ok(cost.busy_ns == 1400 * MS, "busy time adds up over windows");
	/* 10 + 5 per window: the worker's last 5 ms came through its parent. */
	tap_ok(cost.udevd_ns == 30 * MS, "udevd: %.0f ms of 30", cost.udevd_ns / MS);
	/* 50 + 20 kworker and 5 ksoftirqd per window; bash on pid 12 is none. */
	tap_ok(cost.kthreads_ns == 150 * MS, "kernel threads: %.0f ms of 150",
	       cost.kthreads_ns / MS);
	tap_ok(cost.kthread_kinds == 2 && strcmp(cost.kthreads[0].kind, "kworker") == 0 &&
		       cost.kthreads[0].ns == 140 * MS &&
		       strcmp(cost.kthreads[1].kind, "ksoftirqd") == 0 &&
		       cost.kthreads[1].ns == 10 * MS,
	       "kernel threads by kind, dearest first: kworker 140, ksoftirqd 10");
}

/* udevd_start and udevd_stop on stand-ins: a real udevd would apply its rules. */
static void
test_udevd_start_stop(void)
{
	char dir[] = "/tmp/test-bench-proc.XXXXXX", path[64];
	struct bench_error err;
	struct udevd u;
	FILE *f;
	int rc;

	rc = udevd_start("/nonexistent/systemd-udevd", &u, &err);
	tap_ok(rc < 0 && strstr(err.message, "/nonexistent/systemd-udevd") != NULL &&
		       strstr(err.message, "udev") != NULL && !u.ours,
	       "a missing udevd is named, with the package: %s", err.message);
	rc = udevd_start("/bin/true", &u, &err);
	tap_ok(rc < 0 && strstr(err.message, "ended at once") != NULL && !u.ours,
	       "a udevd that ends at once is an error: %s", err.message);
	if (mkdtemp(dir) == NULL) {
		tap_ok(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/udevd", dir);
	f = fopen(path, "w");
	if (f == NULL || fputs("#!/bin/sh\nexec sleep 600\n", f) < 0 || fclose(f) != 0 ||
	    chmod(path, 0755) < 0) {
		tap_ok(0, "%s: %s", path, strerror(errno));
		return;
	}
	rc = udevd_start(path, &u, &err);
	tap_ok(rc == 0 && u.ours && u.pid > 0 && kill(u.pid, 0) == 0,
	       "a udevd that stays is started as a child (%d)", (int)u.pid);
	rc = udevd_stop(&u, &err);
	tap_ok(rc == 0 && !u.ours && u.pid == 0 && waitpid(-1, NULL, WNOHANG) < 0,
	       "and stopped and reaped");
	unlink(path);
	rmdir(dir);
}

static void
test_task_read(void)
{
	struct proc_task self;

	tap_ok(proc_task_read(getpid(), &self) == 0 &&
		       strcmp(self.comm, "test-bench-proc") == 0 &&
		       self.ppid == getppid() && (self.flags & PROC_PF_KTHREAD) == 0,
	       "this process's own line: comm %s, parent, no kernel thread",
	       self.comm);
	tap_ok(proc_task_read(0, &self) < 0, "no line for pid 0");
}

int
main(void)
{
	/* The stand-in's pipes must not kill the test if it dies early. */
	signal(SIGPIPE, SIG_IGN);
	test_task_read();
	test_cost_sums();
	test_machine_busy();
	test_udevd_window();
	test_udevd_start_stop();
	return tap_done();
}
