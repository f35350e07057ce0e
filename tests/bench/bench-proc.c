/*
 * What kvmrun-bench reads in /proc: one process's CPU time, memory and VMs;
 * the whole machine's CPU time and which tasks spent it (systemd-udevd, kernel
 * threads); and a systemd-udevd of the benchmark's own, for machines that
 * run none.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* Reads PATH into BUF as a string; its length, or -1 with errno set. */
static ssize_t
proc_read_path(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, size - 1, f);
	if (ferror(f)) {
		fclose(f);
		errno = EIO;
		return -1;
	}
	fclose(f);
	buf[n] = '\0';
	return (ssize_t)n;
}

/* Reads /proc/PID/NAME into BUF as a string; its length or -1. */
static ssize_t
proc_read(pid_t pid, const char *name, char *buf, size_t size)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	return proc_read_path(path, buf, size);
}

int
proc_task_read(pid_t pid, struct proc_task *task)
{
	unsigned long long utime, stime, cutime, cstime;
	long ticks = sysconf(_SC_CLK_TCK);
	const char *open, *close;
	char buf[1024];
	size_t length;
	int ppid;

	if (ticks <= 0 || proc_read(pid, "stat", buf, sizeof(buf)) < 0)
		return -1;
	/* The command name may hold spaces and parentheses: it ends at the last ')'. */
	open = strchr(buf, '(');
	close = strrchr(buf, ')');
	if (open == NULL || close == NULL || close < open ||
	    sscanf(close + 1,
		   " %*c %d %*d %*d %*d %*d %lu %*u %*u %*u %*u %llu %llu %llu %llu",
		   &ppid, &task->flags, &utime, &stime, &cutime, &cstime) != 6)
		return -1;
	length = (size_t)(close - open - 1);
	if (length >= sizeof(task->comm))
		length = sizeof(task->comm) - 1;
	memcpy(task->comm, open + 1, length);
	task->comm[length] = '\0';
	task->pid = pid;
	task->ppid = ppid;
	task->own_ns = (double)(utime + stime) * 1e9 / (double)ticks;
	task->children_ns = (double)(cutime + cstime) * 1e9 / (double)ticks;
	return 0;
}

double
proc_cpu_ns(pid_t pid)
{
	struct proc_task task;

	return proc_task_read(pid, &task) < 0 ? -1 : task.own_ns;
}

long
proc_rss_kib(pid_t pid)
{
	char buf[4096];
	const char *p;
	long kib;

	if (proc_read(pid, "status", buf, sizeof(buf)) < 0)
		return -1;
	p = strstr(buf, "\nVmRSS:");
	if (p == NULL || sscanf(p, "\nVmRSS: %ld kB", &kib) != 1)
		return -1;
	return kib;
}

int
proc_vm_count(pid_t pid)
{
	char dir_path[64], link_path[320], target[64];
	struct dirent *de;
	int count = 0;
	DIR *dir;

	snprintf(dir_path, sizeof(dir_path), "/proc/%d/fd", (int)pid);
	dir = opendir(dir_path);
	if (dir == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL) {
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(link_path, sizeof(link_path), "%s/%s", dir_path, de->d_name);
		n = readlink(link_path, target, sizeof(target) - 1);
		if (n < 0)
			continue; /* closed since readdir saw it */
		target[n] = '\0';
		if (strcmp(target, "anon_inode:kvm-vm") == 0)
			count++;
	}
	closedir(dir);
	return count;
}

/*
 * Busy time of all CPUs since boot, from the first line of /proc/stat: user,
 * nice, system, irq, softirq and steal (guest time is already in user).
 */
static int
machine_busy_ns(double *ns, struct bench_error *err)
{
	unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;
	long ticks = sysconf(_SC_CLK_TCK);
	char buf[512];

	if (ticks <= 0)
		return bench_fail(err, EINVAL, "sysconf(_SC_CLK_TCK): no clock tick");
	if (proc_read_path("/proc/stat", buf, sizeof(buf)) < 0)
		return bench_fail(err, errno, "/proc/stat: %s", strerror(errno));
	if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice,
		   &system, &idle, &iowait, &irq, &softirq, &steal) != 8)
		return bench_fail(err, EPROTO, "/proc/stat: no 'cpu' line of 8 fields");
	*ns = (double)(user + nice + system + irq + softirq + steal) * 1e9 /
	      (double)ticks;
	return 0;
}

static int
task_by_pid(const void *a, const void *b)
{
	const struct proc_task *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

/* Every task now in /proc, sorted by pid. */
static int
machine_tasks(struct machine_sample *s, struct bench_error *err)
{
	struct dirent *de;
	DIR *dir = opendir("/proc");
	int rc = 0;

	if (dir == NULL)
		return bench_fail(err, errno, "/proc: %s", strerror(errno));
	while ((de = readdir(dir)) != NULL) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end != '\0' || pid <= 0)
			continue;
		if (s->count == s->capacity) {
			size_t capacity = s->capacity > 0 ? 2 * s->capacity : 256;
			struct proc_task *tasks =
				realloc(s->tasks, capacity * sizeof(*tasks));

			if (tasks == NULL) {
				rc = bench_fail(err, ENOMEM, "no memory for %zu tasks",
						capacity);
				break;
			}
			s->tasks = tasks;
			s->capacity = capacity;
		}
		/* A task that ended since readdir saw it spent nothing here. */
		if (proc_task_read((pid_t)pid, &s->tasks[s->count]) == 0)
			s->count++;
	}
	closedir(dir);
	if (s->count > 1)
		qsort(s->tasks, s->count, sizeof(*s->tasks), task_by_pid);
	return rc;
}

int
machine_sample_take(struct machine_sample *s, struct bench_error *err)
{
	int rc;

	s->count = 0;
	if ((rc = machine_tasks(s, err)) < 0)
		return rc;
	/* Last, so that the scan above falls outside a window starting here. */
	return machine_busy_ns(&s->busy_ns, err);
}

int
machine_sample_end(struct machine_sample *s, struct bench_error *err)
{
	int rc;

	/* First, so that the scan below falls outside the window ending here. */
	if ((rc = machine_busy_ns(&s->busy_ns, err)) < 0)
		return rc;
	s->count = 0;
	return machine_tasks(s, err);
}

void
machine_sample_free(struct machine_sample *s)
{
	free(s->tasks);
	memset(s, 0, sizeof(*s));
}

bool
proc_task_is_udevd(const struct proc_task *task)
{
	/* systemd 252 renames its workers; older ones keep the daemon's name. */
	return strcmp(task->comm, "systemd-udevd") == 0 ||
	       strcmp(task->comm, "(udev-worker)") == 0;
}

static bool
proc_task_is_kthread(const struct proc_task *task)
{
	return (task->flags & PROC_PF_KTHREAD) != 0;
}

/* "kworker" of "kworker/u4:2-events": a kind of kernel thread, one per CPU or pool. */
static void
kthread_kind(const char *comm, char *kind, size_t size)
{
	size_t length = strcspn(comm, "/");

	if (length >= size)
		length = size - 1;
	memcpy(kind, comm, length);
	kind[length] = '\0';
}

static void
machine_cost_kthread(struct machine_cost *cost, const char *comm, double ns)
{
	char kind[sizeof(cost->kthreads[0].kind)];
	size_t i;

	kthread_kind(comm, kind, sizeof(kind));
	for (i = 0; i < cost->kthread_kinds; i++)
		if (strcmp(cost->kthreads[i].kind, kind) == 0)
			break;
	if (i == cost->kthread_kinds) {
		if (i == MACHINE_KTHREAD_KINDS) {
			cost->kthreads_unnamed_ns += ns;
			return;
		}
		snprintf(cost->kthreads[i].kind, sizeof(cost->kthreads[i].kind), "%s",
			 kind);
		cost->kthreads[i].ns = 0;
		cost->kthread_kinds++;
	}
	cost->kthreads[i].ns += ns;
}

/*
 * A udevd task counts with the children it reaped, so that a worker that
 * ends inside the window is neither lost nor counted twice: its time moves
 * from its own line to its parent's children's time.
 */
static void
machine_cost_task(struct machine_cost *cost, const struct proc_task *before,
		  const struct proc_task *after)
{
	const struct proc_task *task = after != NULL ? after : before;
	double then = 0, now = 0;

	if (task == NULL)
		return;
	if (proc_task_is_udevd(task)) {
		if (before != NULL)
			then = before->own_ns + before->children_ns;
		if (after != NULL)
			now = after->own_ns + after->children_ns;
		cost->udevd_ns += now - then;
		return;
	}
	/* A kernel thread that ended inside the window is not seen (rare). */
	if (after == NULL || !proc_task_is_kthread(after))
		return;
	/* A kworker's name changes with its work: the pid tells it is the same. */
	if (before != NULL && proc_task_is_kthread(before))
		then = before->own_ns;
	if (after->own_ns > then) {
		cost->kthreads_ns += after->own_ns - then;
		machine_cost_kthread(cost, after->comm, after->own_ns - then);
	}
}

void
machine_cost_add(struct machine_cost *cost, const struct machine_sample *before,
		 const struct machine_sample *after)
{
	size_t i = 0, j = 0;

	cost->busy_ns += after->busy_ns - before->busy_ns;
	while (i < before->count || j < after->count) {
		const struct proc_task *b = i < before->count ? &before->tasks[i] : NULL;
		const struct proc_task *a = j < after->count ? &after->tasks[j] : NULL;

		if (a == NULL || (b != NULL && b->pid < a->pid)) {
			machine_cost_task(cost, b, NULL);
			i++;
		} else if (b == NULL || a->pid < b->pid) {
			machine_cost_task(cost, NULL, a);
			j++;
		} else {
			machine_cost_task(cost, b, a);
			i++;
			j++;
		}
	}
}

static int
kthread_by_cost(const void *a, const void *b)
{
	const struct machine_kthread *x = a, *y = b;

	return (x->ns < y->ns) - (x->ns > y->ns);
}

void
machine_cost_sort(struct machine_cost *cost)
{
	qsort(cost->kthreads, cost->kthread_kinds, sizeof(cost->kthreads[0]),
	      kthread_by_cost);
}

/* The main process of a running systemd-udevd, 0 when none runs. */
pid_t
udevd_find(void)
{
	struct machine_sample s = { 0 };
	struct bench_error err;
	pid_t found = 0;

	if (machine_tasks(&s, &err) < 0) {
		machine_sample_free(&s);
		return 0;
	}
	for (size_t i = 0; i < s.count && found == 0; i++) {
		const struct proc_task *t = &s.tasks[i], *parent = NULL;
		struct proc_task key = { .pid = t->ppid };

		if (strcmp(t->comm, "systemd-udevd") != 0)
			continue;
		parent = bsearch(&key, s.tasks, s.count, sizeof(key), task_by_pid);
		if (parent == NULL || !proc_task_is_udevd(parent))
			found = t->pid;
	}
	machine_sample_free(&s);
	return found;
}

/* The CPU time of udevd and all its workers so far, -1 when unreadable. */
static double
udevd_cpu_ns(void)
{
	struct machine_sample s = { 0 };
	struct bench_error err;
	double ns = 0;

	if (machine_tasks(&s, &err) < 0) {
		machine_sample_free(&s);
		return -1;
	}
	for (size_t i = 0; i < s.count; i++)
		if (proc_task_is_udevd(&s.tasks[i]))
			ns += s.tasks[i].own_ns + s.tasks[i].children_ns;
	machine_sample_free(&s);
	return ns;
}

void
udevd_settle(void)
{
	double last = -1, now;
	int still = 0;

	for (int i = 0; i < UDEVD_SETTLE_MS / UDEVD_POLL_MS && still < UDEVD_STILL; i++) {
		bench_sleep_ms(UDEVD_POLL_MS);
		/* udevd keeps this file while it has events queued. */
		if (access(UDEVD_QUEUE_FILE, F_OK) == 0) {
			still = 0;
			continue;
		}
		now = udevd_cpu_ns();
		still = now == last ? still + 1 : 0;
		last = now;
	}
}

int
udevd_start(const char *path, struct udevd *u, struct bench_error *err)
{
	int status;

	memset(u, 0, sizeof(*u));
	if (access(path, X_OK) < 0)
		return bench_fail(err, errno, "%s: %s (Debian's package udev)", path,
				  strerror(errno));
	u->pid = fork();
	if (u->pid < 0)
		return bench_fail(err, errno, "fork: %s", strerror(errno));
	if (u->pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

		/* In the foreground, so that it stays this program's child. */
		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(126);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	u->ours = true;
	bench_sleep_ms(UDEVD_START_MS);
	if (waitpid(u->pid, &status, WNOHANG) == u->pid) {
		u->pid = 0;
		u->ours = false;
		return bench_fail(err, ECHILD,
				  "%s ended at once (status 0x%x); try it by hand", path,
				  (unsigned int)status);
	}
	udevd_settle();
	return 0;
}

int
udevd_stop(struct udevd *u, struct bench_error *err)
{
	int status, rc = 0;
	pid_t pid = 0;

	if (!u->ours)
		return 0;
	u->ours = false;
	if (kill(u->pid, SIGTERM) < 0)
		return bench_fail(err, errno, "kill systemd-udevd %d: %s", (int)u->pid,
				  strerror(errno));
	for (int i = 0; i < UDEVD_STOP_MS / UDEVD_POLL_MS; i++) {
		pid = waitpid(u->pid, &status, WNOHANG);
		if (pid != 0)
			break;
		bench_sleep_ms(UDEVD_POLL_MS);
	}
	if (pid == 0) {
		rc = bench_fail(err, ETIMEDOUT,
				"systemd-udevd %d did not stop in %d ms; killed it",
				(int)u->pid, UDEVD_STOP_MS);
		if (kill(u->pid, SIGKILL) == 0)
			waitpid(u->pid, &status, 0);
	}
	u->pid = 0;
	return rc;
}
