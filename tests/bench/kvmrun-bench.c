/*
 * kvmrun-bench: how fast kvmrund serves runs, against what the engine can do
 * in-process and against a fresh process per run, with the daemon's latency,
 * CPU time and memory, and a compute-bound guest against the same loop run
 * natively.  One invocation starts a daemon of its own and prints it all, as
 * a table or as one JSON object to compare across commits.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../client/tls.h"
#include "bench-steps.h"
#include "bench.h"
#include "config.h"
#include "vm.h"

#define BENCH_DEFAULT_RUNS 2000u
#define BENCH_DEFAULT_CONNECTIONS 4u
#define BENCH_DEFAULT_DEPTH 4u
#define BENCH_DEFAULT_GAP_US 2000u
#define BENCH_DEFAULT_ROUNDS 4u
#define BENCH_DEFAULT_SPIN (1000ull * 1000 * 1000)
#define BENCH_DEFAULT_SPIN_RING0 (1000ull * 1000)
#define BENCH_SPIN_REPEAT 3
#define BENCH_NATIVE_MIN (100ull * 1000 * 1000)
#define BENCH_SPIN_TIMEOUT_MS 60000u
#define BENCH_IDLE_TIMEOUT_MS 30000
#define BENCH_START_TIMEOUT_MS 10000
#define BENCH_STOP_TIMEOUT_MS 5000
#define BENCH_POLL_MS 10
#define BENCH_SETTLE_SAMPLES 5
#define BENCH_ROW_PAUSE_MS 100
#define BENCH_MAX_DAEMON_ARGS 32
#define BENCH_IMAGE_MAX (16u << 20)
#define BENCH_KTHREAD_KINDS_SHOWN 4

/* The targets the issues set, as ratios unless said. */
#define TARGET_THROUGHPUT 0.90
#define TARGET_LATENCY 0.25
#define TARGET_LATENCY_IDLE 0.60
#define TARGET_OVERHEAD_US 60.0
#define TARGET_MACHINE_CPU 1.25
#define TARGET_RING3 1.05
#define TARGET_PROCESS 3.0
#define TARGET_KIB_PER_VM 1024.0

static const unsigned int bench_engine_threads[] = { 1, 2, 4 };
#define BENCH_ENGINE_COUNT                                                             \
	(sizeof(bench_engine_threads) / sizeof(bench_engine_threads[0]))

struct bench_options {
	const char *socket_path; /* a running daemon; NULL to start one */
	const char *proxy;	 /* a tls:// front of that daemon, or NULL */
	struct tls_files tls;	 /* the proxy's CA and this client's certificate */
	pid_t daemon_pid;
	char *kvmrund;
	char *once;
	char *guest;
	char *spin_guest;
	const char *kvm_path;
	const char *daemon_args[BENCH_MAX_DAEMON_ARGS];
	size_t daemon_arg_count;
	enum kvmrun_mode mode;
	size_t runs;
	size_t latency_runs;
	unsigned int connections;
	unsigned int depth;
	uint64_t gap_us;
	uint64_t spin;
	uint64_t spin_ring0;
	unsigned int rounds;
	bool json;
	const char *udevd_path;
	bool no_udevd;
};

struct bench_daemon {
	pid_t pid; /* 0 when unknown */
	bool ours;
	unsigned int workers;
	char dir[64];
	char socket_path[128];
	char log_path[128];
};

enum bench_row_id {
	ROW_DAEMON,
	ROW_BACK_TO_BACK,
	ROW_IDLE,
	ROW_PROXY, /* ROW_DAEMON and ROW_BACK_TO_BACK through --via-proxy */
	ROW_PROXY_BACK_TO_BACK,
	ROW_ENGINE, /* one per bench_engine_threads */
	ROW_PROCESS = ROW_ENGINE + BENCH_ENGINE_COUNT,
	ROW_PROCESS_PARALLEL,
	ROW_COUNT
};

enum bench_kind {
	KIND_DAEMON,
	KIND_ENGINE,
	KIND_PROCESS,
};

struct bench_line {
	char key[32];
	char label[64];
	enum bench_kind kind;
	bool through_proxy;	  /* DAEMON, by --via-proxy */
	unsigned int connections; /* DAEMON */
	unsigned int depth;	  /* DAEMON */
	uint64_t gap_ns;	  /* DAEMON */
	unsigned int threads;	  /* ENGINE threads, PROCESS processes at a time */
	size_t runs;		  /* over all rounds */
	struct bench_row row;
	struct bench_summary latency;
	struct bench_summary overhead; /* DAEMON: latency - the guest's run_ns */
	struct machine_cost machine;   /* the whole machine over its windows */
};

struct bench_spin {
	uint64_t count;
	double daemon_ns; /* best round trip */
	double run_ns;	  /* the vCPU time the daemon reported for it */
	double native_ns; /* best native time for the same count */
};

struct bench_memory {
	long unprepared_kib; /* idle daemon with --prepared-vms 0 */
	long idle_kib;
	long after_kib;
	int idle_vms;
	int after_vms;
};

/*
 * The rows measured again once the benchmark's own systemd-udevd is stopped:
 * the in-process loop and the daemon's throughput.
 */
enum { QUIET_ENGINE, QUIET_DAEMON, QUIET_COUNT };

struct bench_udevd {
	struct udevd own; /* one started here, on a machine that runs none */
	pid_t machine;	  /* the machine's own */
	bool ran;	  /* one of them, while the rows ran */
	struct stat kvm;  /* the KVM device before ours started */
	bool kvm_known;
	char state[2 * BENCH_MESSAGE_MAX];
	char quiet_why[160]; /* why the rows without udevd were not measured */
};

struct bench {
	struct bench_options opt;
	struct bench_daemon daemon;
	struct bench_udevd udevd;
	struct machine_sample before, after;
	struct machine_cost machine; /* over every row, for the kernel threads */
	struct bench_line quiet[QUIET_COUNT];
	struct kvmrun_host *host;
	struct kvmrun_spec spec;
	char *once_argv[6]; /* kvmrun-once --quiet --mode MODE GUEST */
	unsigned int cpus;
	struct bench_line lines[ROW_COUNT];
	struct bench_spin ring3, ring0;
	struct bench_memory memory;
	struct bench_steps idle_steps; /* kvmrund's steps_ns over the idle row */
	char failure[2 * BENCH_MESSAGE_MAX]; /* the first failed run */
};

static void
usage(FILE *out)
{
	fprintf(out, "usage: kvmrun-bench [options]\n"
		     "Measures kvmrund against the engine in-process and against a\n"
		     "process per run; see README.md, \"Performance\".\n\n");
	fprintf(out,
		"  --socket PATH\n\tuse the daemon at PATH instead of starting one\n"
		"  --start-daemon\n\tstart kvmrund on a temporary socket (default)\n"
		"  --daemon-arg ARG\n\tpass ARG to the started kvmrund (repeatable)\n"
		"  --daemon-pid PID\n\tthe daemon behind --socket, when SO_PEERCRED\n"
		"\tnames another process (socket activation)\n"
		"  --via-proxy tls://HOST:PORT\n"
		"\talso measure the daemon rows through this front of\n"
		"\tthe --socket daemon (HAProxy with TLS;\n"
		"\ttests/bench/bench-proxy.sh sets one up)\n"
		"  --ca FILE, --cert FILE, --key FILE\n"
		"\tthe front's CA, and this client's certificate and key (PEM)\n"
		"  --kvmrund PATH\n\tthe daemon to start (default: beside this "
		"program)\n"
		"  --once PATH\n\tkvmrun-once (default: tests/kvmrun-once beside "
		"it)\n"
		"  --guest PATH\n\tthe guest (default: tests/guests/hello-real.bin "
		"beside it)\n"
		"  --mode MODE\n\tits CPU mode: real, protected, paged or long "
		"(real)\n");
	fprintf(out, "  --kvm PATH\n\tthe KVM device of the in-process runs (%s)\n",
		KVMRUN_DEFAULT_KVM_PATH);
	fprintf(out, "  --runs N\n\truns of each measurement (%u)\n",
		BENCH_DEFAULT_RUNS);
	fprintf(out,
		"  --latency-runs N\n\truns of the one-client and process-per-run\n"
		"\tmeasurements (runs / 4)\n");
	fprintf(out, "  --connections C\n\tconnections for throughput (%u)\n",
		BENCH_DEFAULT_CONNECTIONS);
	fprintf(out, "  --depth D\n\trequests in flight on each (%u)\n",
		BENCH_DEFAULT_DEPTH);
	fprintf(out,
		"  --gap-us N\n\tidle time before each request to an idle daemon "
		"(%u)\n",
		BENCH_DEFAULT_GAP_US);
	fprintf(out, "  --spin N\n\titerations of the ring-3 loop, 0 to skip (%llu)\n",
		BENCH_DEFAULT_SPIN);
	fprintf(out,
		"  --spin-ring0 N\n\titerations of the ring-0 loop, 0 to skip "
		"(%llu)\n",
		BENCH_DEFAULT_SPIN_RING0);
	fprintf(out, "  --rounds N\n\tmeasure the rows in turn, in N rounds (%u)\n",
		BENCH_DEFAULT_ROUNDS);
	fprintf(out,
		"  --udevd PATH\n\tthe systemd-udevd to start when the machine runs\n"
		"\tnone (%s)\n"
		"  --no-udevd\n\tstart none: measure the machine as it is\n",
		UDEVD_DEFAULT_PATH);
	fprintf(out, "  --json\n\tone JSON object instead of the table\n"
		     "  -h, --help\n\tprint this help and exit\n");
}

static int
bench_parse_u64(const char *option, const char *text, uint64_t min, uint64_t max,
		uint64_t *value)
{
	char *end;

	errno = 0;
	*value = strtoull(text, &end, 0);
	if (errno != 0 || end == text || *end != '\0' || text[0] == '-' ||
	    *value < min || *value > max) {
		fprintf(stderr,
			"kvmrun-bench: --%s %s: not a number from %" PRIu64
			" to %" PRIu64 "\n",
			option, text, min, max);
		return -EINVAL;
	}
	return 0;
}

/* PATH relative to the directory of this program, malloc'ed. */
static char *
bench_beside_self(const char *path)
{
	char self[PATH_MAX], *slash, *joined;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n < 0)
		return NULL;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (slash == NULL)
		return NULL;
	*slash = '\0';
	if (asprintf(&joined, "%s/%s", self, path) < 0)
		return NULL;
	return joined;
}

enum {
	OPT_SOCKET = 256,
	OPT_START_DAEMON,
	OPT_DAEMON_ARG,
	OPT_DAEMON_PID,
	OPT_KVMRUND,
	OPT_ONCE,
	OPT_GUEST,
	OPT_MODE,
	OPT_KVM,
	OPT_RUNS,
	OPT_LATENCY_RUNS,
	OPT_CONNECTIONS,
	OPT_DEPTH,
	OPT_GAP_US,
	OPT_SPIN,
	OPT_SPIN_RING0,
	OPT_ROUNDS,
	OPT_JSON,
	OPT_VIA_PROXY,
	OPT_CA,
	OPT_CERT,
	OPT_KEY,
	OPT_UDEVD,
	OPT_NO_UDEVD,
};

static const struct option bench_long_options[] = {
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "start-daemon", no_argument, NULL, OPT_START_DAEMON },
	{ "daemon-arg", required_argument, NULL, OPT_DAEMON_ARG },
	{ "daemon-pid", required_argument, NULL, OPT_DAEMON_PID },
	{ "kvmrund", required_argument, NULL, OPT_KVMRUND },
	{ "once", required_argument, NULL, OPT_ONCE },
	{ "guest", required_argument, NULL, OPT_GUEST },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "kvm", required_argument, NULL, OPT_KVM },
	{ "runs", required_argument, NULL, OPT_RUNS },
	{ "latency-runs", required_argument, NULL, OPT_LATENCY_RUNS },
	{ "connections", required_argument, NULL, OPT_CONNECTIONS },
	{ "depth", required_argument, NULL, OPT_DEPTH },
	{ "gap-us", required_argument, NULL, OPT_GAP_US },
	{ "spin", required_argument, NULL, OPT_SPIN },
	{ "spin-ring0", required_argument, NULL, OPT_SPIN_RING0 },
	{ "rounds", required_argument, NULL, OPT_ROUNDS },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "via-proxy", required_argument, NULL, OPT_VIA_PROXY },
	{ "ca", required_argument, NULL, OPT_CA },
	{ "cert", required_argument, NULL, OPT_CERT },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "udevd", required_argument, NULL, OPT_UDEVD },
	{ "no-udevd", no_argument, NULL, OPT_NO_UDEVD },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const char *
bench_option_name(int c)
{
	const struct option *o;

	for (o = bench_long_options; o->name != NULL && o->val != c; o++)
		continue;
	return o->name;
}

/* One option with an argument; -EINVAL when it is bad (already said). */
static int
bench_option(struct bench_options *opt, int c, const char *name, char *arg)
{
	uint64_t n;
	int rc = 0, mode;

	switch (c) {
	case OPT_SOCKET:
		opt->socket_path = arg;
		break;
	case OPT_START_DAEMON:
		opt->socket_path = NULL;
		break;
	case OPT_VIA_PROXY:
		if (!tls_is_address(arg)) {
			fprintf(stderr,
				"kvmrun-bench: --via-proxy %s: not tls://HOST:PORT\n",
				arg);
			return -EINVAL;
		}
		opt->proxy = arg;
		break;
	case OPT_CA:
		opt->tls.ca = arg;
		break;
	case OPT_CERT:
		opt->tls.cert = arg;
		break;
	case OPT_KEY:
		opt->tls.key = arg;
		break;
	case OPT_DAEMON_ARG:
		if (opt->daemon_arg_count == BENCH_MAX_DAEMON_ARGS) {
			fprintf(stderr, "kvmrun-bench: more than %d --daemon-arg\n",
				BENCH_MAX_DAEMON_ARGS);
			return -EINVAL;
		}
		opt->daemon_args[opt->daemon_arg_count++] = arg;
		break;
	case OPT_DAEMON_PID:
		rc = bench_parse_u64(name, arg, 1, INT_MAX, &n);
		opt->daemon_pid = (pid_t)n;
		break;
	/* The paths are the options' own, freed by bench_options_free. */
	case OPT_KVMRUND:
		free(opt->kvmrund);
		opt->kvmrund = strdup(arg);
		break;
	case OPT_ONCE:
		free(opt->once);
		opt->once = strdup(arg);
		break;
	case OPT_GUEST:
		free(opt->guest);
		opt->guest = strdup(arg);
		break;
	case OPT_MODE:
		mode = kvmrun_name_lookup(kvmrun_mode_names, KVMRUN_MODE_COUNT, arg);
		if (mode < 0) {
			fprintf(stderr, "kvmrun-bench: --mode %s: unknown mode\n", arg);
			return -EINVAL;
		}
		opt->mode = mode;
		break;
	case OPT_KVM:
		opt->kvm_path = arg;
		break;
	case OPT_RUNS:
		rc = bench_parse_u64(name, arg, 1, 1u << 24, &n);
		opt->runs = (size_t)n;
		break;
	case OPT_LATENCY_RUNS:
		rc = bench_parse_u64(name, arg, 1, 1u << 24, &n);
		opt->latency_runs = (size_t)n;
		break;
	case OPT_CONNECTIONS:
		rc = bench_parse_u64(name, arg, 1, 1024, &n);
		opt->connections = (unsigned int)n;
		break;
	case OPT_DEPTH:
		rc = bench_parse_u64(name, arg, 1, 1024, &n);
		opt->depth = (unsigned int)n;
		break;
	case OPT_GAP_US:
		return bench_parse_u64(name, arg, 0, 10000000, &opt->gap_us);
	case OPT_SPIN:
		return bench_parse_u64(name, arg, 0, 1ull << 40, &opt->spin);
	case OPT_SPIN_RING0:
		return bench_parse_u64(name, arg, 0, 1ull << 32, &opt->spin_ring0);
	case OPT_ROUNDS:
		rc = bench_parse_u64(name, arg, 1, 100, &n);
		opt->rounds = (unsigned int)n;
		break;
	case OPT_JSON:
		opt->json = true;
		break;
	case OPT_UDEVD:
		opt->udevd_path = arg;
		break;
	case OPT_NO_UDEVD:
		opt->no_udevd = true;
		break;
	default:
		return -EINVAL;
	}
	return rc;
}

/* 0 to go on, 1 after --help, -EINVAL for bad usage. */
static int
bench_parse_args(int argc, char **argv, struct bench_options *opt)
{
	int c;

	memset(opt, 0, sizeof(*opt));
	opt->kvm_path = KVMRUN_DEFAULT_KVM_PATH;
	opt->mode = KVMRUN_MODE_REAL;
	opt->runs = BENCH_DEFAULT_RUNS;
	opt->connections = BENCH_DEFAULT_CONNECTIONS;
	opt->depth = BENCH_DEFAULT_DEPTH;
	opt->gap_us = BENCH_DEFAULT_GAP_US;
	opt->spin = BENCH_DEFAULT_SPIN;
	opt->spin_ring0 = BENCH_DEFAULT_SPIN_RING0;
	opt->rounds = BENCH_DEFAULT_ROUNDS;
	opt->udevd_path = UDEVD_DEFAULT_PATH;
	while ((c = getopt_long(argc, argv, "h", bench_long_options, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 1;
		}
		if (c == '?' || bench_option(opt, c, bench_option_name(c), optarg) < 0)
			return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr, "kvmrun-bench: unexpected argument %s\n", argv[optind]);
		return -EINVAL;
	}
	/* A daemon started here has a socket no front was set up for. */
	if (opt->proxy != NULL && opt->socket_path == NULL) {
		fprintf(stderr, "kvmrun-bench: --via-proxy needs --socket, the daemon "
				"behind the front\n");
		return -EINVAL;
	}
	if (opt->latency_runs == 0)
		opt->latency_runs = opt->runs / 4 > 0 ? opt->runs / 4 : 1;
	/* Every round runs every row at least once. */
	if (opt->rounds > opt->latency_runs)
		opt->rounds = (unsigned int)opt->latency_runs;
	if (opt->rounds > opt->runs)
		opt->rounds = (unsigned int)opt->runs;
	if (opt->kvmrund == NULL)
		opt->kvmrund = bench_beside_self("kvmrund");
	if (opt->once == NULL)
		opt->once = bench_beside_self("tests/kvmrun-once");
	if (opt->guest == NULL)
		opt->guest = bench_beside_self("tests/guests/hello-real.bin");
	opt->spin_guest = bench_beside_self("tests/guests/spin-long.bin");
	if (opt->kvmrund == NULL || opt->once == NULL || opt->guest == NULL ||
	    opt->spin_guest == NULL) {
		fprintf(stderr,
			"kvmrun-bench: cannot find the directory of this program\n");
		return -EINVAL;
	}
	return 0;
}

static int
bench_read_file(const char *path, struct kvmrun_blob *blob, struct bench_error *err)
{
	struct stat st;
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bench_fail(err, errno, "%s: %s (built by make check)", path,
				  strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = bench_fail(err, errno, "%s: %s", path, strerror(errno));
		goto out_close;
	}
	if (st.st_size <= 0 || st.st_size > BENCH_IMAGE_MAX) {
		rc = bench_fail(err, EINVAL, "%s: %lld bytes is no guest image", path,
				(long long)st.st_size);
		goto out_close;
	}
	blob->data = malloc((size_t)st.st_size);
	if (blob->data == NULL) {
		rc = bench_fail(err, ENOMEM, "%s: no memory", path);
		goto out_close;
	}
	blob->length = (size_t)st.st_size;
	n = read(fd, blob->data, blob->length);
	if (n != (ssize_t)blob->length)
		rc = bench_fail(err, n < 0 ? errno : EIO, "%s: short read", path);
out_close:
	close(fd);
	return rc;
}

/* The child side of bench_daemon_start: the log as stdout and stderr, then exec. */
static void __attribute__((noreturn))
bench_daemon_exec(const struct bench_daemon *d, char **argv)
{
	int fd = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
		_exit(126);
	execv(argv[0], argv);
	fprintf(stderr, "kvmrun-bench: %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Waits for the started daemon to answer stats; fails if it exits first. */
static int
bench_daemon_wait(struct bench_daemon *d, struct bench_error *err)
{
	uint64_t deadline = bench_now_ns() + BENCH_START_TIMEOUT_MS * 1000000ull;
	int status;
	pid_t pid;

	for (;;) {
		if (drive_daemon_info(d->socket_path, &pid, &d->workers, err) == 0)
			return 0;
		pid = waitpid(d->pid, &status, WNOHANG);
		if (pid == d->pid) {
			d->pid = 0;
			return bench_fail(err, ECHILD,
					  "kvmrund exited (status 0x%x); see %s",
					  (unsigned int)status, d->log_path);
		}
		if (bench_now_ns() > deadline)
			return bench_fail(err, ETIMEDOUT,
					  "kvmrund did not answer in %d ms: %s",
					  BENCH_START_TIMEOUT_MS, err->message);
		bench_sleep_ms(BENCH_POLL_MS);
	}
}

static void bench_daemon_stop(struct bench_daemon *d);

/*
 * Starts kvmrund on a socket in a new temporary directory, with the
 * --daemon-arg options and, when UNPREPARED, --prepared-vms 0 after them.
 */
static int
bench_daemon_start(const struct bench_options *opt, bool unprepared,
		   struct bench_daemon *d, struct bench_error *err)
{
	char *argv[BENCH_MAX_DAEMON_ARGS + 6];
	size_t argc = 0;
	int rc;

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "/tmp/kvmrun-bench.XXXXXX");
	if (mkdtemp(d->dir) == NULL)
		return bench_fail(err, errno, "mkdtemp: %s", strerror(errno));
	snprintf(d->socket_path, sizeof(d->socket_path), "%s/kvmrun.sock", d->dir);
	snprintf(d->log_path, sizeof(d->log_path), "%s/kvmrund.log", d->dir);
	argv[argc++] = opt->kvmrund;
	argv[argc++] = "--socket";
	argv[argc++] = d->socket_path;
	for (size_t i = 0; i < opt->daemon_arg_count; i++)
		argv[argc++] = (char *)opt->daemon_args[i];
	if (unprepared) {
		argv[argc++] = "--prepared-vms";
		argv[argc++] = "0";
	}
	argv[argc] = NULL;
	d->pid = fork();
	if (d->pid < 0) {
		rc = bench_fail(err, errno, "fork: %s", strerror(errno));
		if (rmdir(d->dir) < 0)
			fprintf(stderr, "kvmrun-bench: rmdir %s: %s\n", d->dir,
				strerror(errno));
		return rc;
	}
	d->ours = true;
	if (d->pid == 0)
		bench_daemon_exec(d, argv);
	if ((rc = bench_daemon_wait(d, err)) < 0) {
		bench_daemon_stop(d);
		return rc;
	}
	return 0;
}

/*
 * Stops a daemon we started (its pid stays for the report), and removes its
 * directory unless something went wrong.
 */
static void
bench_daemon_stop(struct bench_daemon *d)
{
	uint64_t deadline = bench_now_ns() + BENCH_STOP_TIMEOUT_MS * 1000000ull;
	bool alive = d->ours && d->pid != 0;
	int status = 0;
	pid_t pid = 0;

	if (!d->ours)
		return;
	d->ours = false;
	if (alive && kill(d->pid, SIGTERM) < 0)
		fprintf(stderr, "kvmrun-bench: kill kvmrund: %s\n", strerror(errno));
	while (alive && (pid = waitpid(d->pid, &status, WNOHANG)) == 0 &&
	       bench_now_ns() < deadline)
		bench_sleep_ms(BENCH_POLL_MS);
	if (alive && pid == 0) {
		fprintf(stderr, "kvmrun-bench: kvmrund did not stop; killing it\n");
		if (kill(d->pid, SIGKILL) == 0)
			pid = waitpid(d->pid, &status, 0);
	}
	if (!alive)
		return; /* it failed to start: keep its log */
	if (pid != d->pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr,
			"kvmrun-bench: kvmrund ended badly (status 0x%x); see %s\n",
			(unsigned int)status, d->log_path);
		return;
	}
	if (unlink(d->log_path) < 0 || rmdir(d->dir) < 0)
		fprintf(stderr, "kvmrun-bench: cannot remove %s: %s\n", d->dir,
			strerror(errno));
}

/*
 * Waits until the daemon holds the same number of VMs for a few samples in a
 * row: the prepared ones made, the used ones torn down.  Returns that count.
 */
static int
bench_daemon_settle(pid_t pid)
{
	int last = -1, same = 0, count;

	for (int i = 0; i < BENCH_START_TIMEOUT_MS / BENCH_POLL_MS; i++) {
		count = proc_vm_count(pid);
		same = count == last ? same + 1 : 0;
		last = count;
		if (count < 0 || same == BENCH_SETTLE_SAMPLES)
			break;
		bench_sleep_ms(BENCH_POLL_MS);
	}
	return last;
}

/* The idle RSS of a daemon with no prepared VMs, -1 when that cannot start. */
static long
bench_unprepared_rss(const struct bench_options *opt)
{
	struct bench_daemon d;
	struct bench_error err;
	long kib;

	if (bench_daemon_start(opt, true, &d, &err) < 0) {
		fprintf(stderr, "kvmrun-bench: a daemon with --prepared-vms 0: %s\n",
			err.message);
		return -1;
	}
	bench_daemon_settle(d.pid);
	kib = proc_rss_kib(d.pid);
	bench_daemon_stop(&d);
	return kib;
}

static void bench_label(struct bench_line *line, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
bench_label(struct bench_line *line, const char *key, const char *fmt, ...)
{
	va_list ap;

	snprintf(line->key, sizeof(line->key), "%s", key);
	va_start(ap, fmt);
	vsnprintf(line->label, sizeof(line->label), fmt, ap);
	va_end(ap);
}

/* What each row measures, and room for all its runs. */
static int
bench_lines_init(struct bench *b, struct bench_error *err)
{
	const struct bench_options *opt = &b->opt;
	struct bench_line *l = b->lines;
	int rc;

	l[ROW_DAEMON] = (struct bench_line){ .kind = KIND_DAEMON,
					     .runs = opt->runs,
					     .connections = opt->connections,
					     .depth = opt->depth };
	bench_label(&l[ROW_DAEMON], "daemon", "daemon, %u conn x depth %u",
		    opt->connections, opt->depth);
	l[ROW_BACK_TO_BACK] = (struct bench_line){ .kind = KIND_DAEMON,
						   .runs = opt->latency_runs,
						   .connections = 1,
						   .depth = 1 };
	bench_label(&l[ROW_BACK_TO_BACK], "daemon_back_to_back",
		    "daemon, 1 conn, back to back");
	l[ROW_IDLE] = l[ROW_BACK_TO_BACK];
	l[ROW_IDLE].gap_ns = opt->gap_us * 1000;
	bench_label(&l[ROW_IDLE], "daemon_idle", "daemon, 1 conn, %" PRIu64 " us apart",
		    opt->gap_us);
	/* Without a front these rows have no runs, and are left out. */
	l[ROW_PROXY] = l[ROW_DAEMON];
	l[ROW_PROXY].through_proxy = true;
	l[ROW_PROXY].runs = opt->proxy != NULL ? opt->runs : 0;
	bench_label(&l[ROW_PROXY], "proxy_tls", "HAProxy+TLS, %u conn x depth %u",
		    opt->connections, opt->depth);
	l[ROW_PROXY_BACK_TO_BACK] = l[ROW_BACK_TO_BACK];
	l[ROW_PROXY_BACK_TO_BACK].through_proxy = true;
	l[ROW_PROXY_BACK_TO_BACK].runs = opt->proxy != NULL ? opt->latency_runs : 0;
	bench_label(&l[ROW_PROXY_BACK_TO_BACK], "proxy_tls_back_to_back",
		    "HAProxy+TLS, 1 conn, back to back");
	for (size_t i = 0; i < BENCH_ENGINE_COUNT; i++) {
		unsigned int threads = bench_engine_threads[i];
		char key[32];

		l[ROW_ENGINE + i] = (struct bench_line){ .kind = KIND_ENGINE,
							 .runs = opt->runs,
							 .threads = threads };
		snprintf(key, sizeof(key), "in_process_%u", threads);
		bench_label(&l[ROW_ENGINE + i], key, "in-process, %u thread%s", threads,
			    threads > 1 ? "s" : "");
	}
	for (unsigned int i = 0; i < 2; i++) {
		unsigned int parallel = i == 0 ? 1 : b->cpus;

		l[ROW_PROCESS + i] = (struct bench_line){ .kind = KIND_PROCESS,
							  .runs = opt->latency_runs,
							  .threads = parallel };
		bench_label(&l[ROW_PROCESS + i],
			    i == 0 ? "process_per_run" : "process_per_run_parallel",
			    "process per run, %u at a time", parallel);
	}
	b->quiet[QUIET_ENGINE] = l[ROW_ENGINE];
	bench_label(&b->quiet[QUIET_ENGINE], "in_process_1", "in-process, 1 thread");
	b->quiet[QUIET_DAEMON] = l[ROW_DAEMON];
	bench_label(&b->quiet[QUIET_DAEMON], "daemon", "daemon, %u conn x depth %u",
		    opt->connections, opt->depth);
	for (int i = 0; i < ROW_COUNT; i++)
		if ((rc = bench_row_init(&l[i].row, l[i].runs, err)) < 0)
			return rc;
	for (int i = 0; i < QUIET_COUNT; i++)
		if ((rc = bench_row_init(&b->quiet[i].row, b->quiet[i].runs, err)) < 0)
			return rc;
	return 0;
}

/* Adds RUNS runs through the daemon to LINE, with the daemon's CPU time. */
static int
bench_drive(struct bench *b, struct bench_line *line, size_t runs,
	    struct bench_error *err)
{
	struct drive_config cfg = {
		.socket_path =
			line->through_proxy ? b->opt.proxy : b->daemon.socket_path,
		.tls = &b->opt.tls,
		.spec = &b->spec,
		.expect = KVMRUN_EXIT_HLT,
		.runs = runs,
		.connections = line->connections,
		.depth = line->depth,
		.gap_ns = line->gap_ns,
		.idle_timeout_ms = BENCH_IDLE_TIMEOUT_MS,
	};
	double before = b->daemon.pid != 0 ? proc_cpu_ns(b->daemon.pid) : -1;
	double after;
	int rc;

	if ((rc = drive_run(&cfg, &line->row, err)) < 0)
		return rc;
	if (before < 0 || line->row.cpu_ns < 0) {
		line->row.cpu_ns = -1;
		return 0;
	}
	/* Each run's teardown follows its answer: let the last ones finish. */
	bench_daemon_settle(b->daemon.pid);
	after = proc_cpu_ns(b->daemon.pid);
	line->row.cpu_ns = after < 0 ? -1 : line->row.cpu_ns + after - before;
	return 0;
}

/* Adds RUNS runs to LINE, the way it measures them. */
static int
bench_line_run(struct bench *b, struct bench_line *line, size_t runs,
	       struct bench_error *err)
{
	switch (line->kind) {
	case KIND_DAEMON:
		return bench_drive(b, line, runs, err);
	case KIND_ENGINE:
		return local_engine_runs(b->host, &b->spec, runs, line->threads,
					 &line->row, err);
	case KIND_PROCESS:
		return local_process_runs(b->once_argv, runs, line->threads, &line->row,
					  err);
	}
	return bench_fail(err, EINVAL, "row %s of no kind", line->key);
}

/*
 * Runs of LINE with what the whole machine spent meanwhile: the window
 * closes once udevd has handled the uevents of the VMs made and destroyed.
 */
static int
bench_line_measure(struct bench *b, struct bench_line *line, size_t runs,
		   struct bench_error *err)
{
	/* Only kvmrund itself has steps_ns: pid 0 is another peer on --socket. */
	bool steps = line == &b->lines[ROW_IDLE] && b->daemon.pid != 0;
	int rc;

	if (steps &&
	    (rc = bench_steps_begin(&b->idle_steps, b->daemon.socket_path, err)) < 0)
		return rc;
	if ((rc = machine_sample_take(&b->before, err)) < 0)
		return rc;
	if ((rc = bench_line_run(b, line, runs, err)) < 0)
		return rc;
	if (b->udevd.own.pid != 0 || b->udevd.machine != 0)
		udevd_settle();
	if ((rc = machine_sample_end(&b->after, err)) < 0)
		return rc;
	machine_cost_add(&line->machine, &b->before, &b->after);
	machine_cost_add(&b->machine, &b->before, &b->after);
	if (steps &&
	    (rc = bench_steps_end(&b->idle_steps, b->daemon.socket_path, err)) < 0)
		return rc;
	return 0;
}

/*
 * Every row in ROUNDS rounds, each round running each row in turn, so that
 * this host's drift in speed touches every row, and both sides of each
 * ratio, alike.
 */
static int
bench_rows(struct bench *b, struct bench_line *lines, int count,
	   struct bench_error *err)
{
	unsigned int rounds = b->opt.rounds;
	int rc;

	for (unsigned int r = 0; r < rounds; r++) {
		for (int i = 0; i < count; i++) {
			struct bench_line *l = &lines[i];
			size_t runs = l->runs / rounds + (r < l->runs % rounds);

			if (runs == 0)
				continue;
			/* Let the kernel finish freeing what the last row left. */
			bench_sleep_ms(BENCH_ROW_PAUSE_MS);
			if ((rc = bench_line_measure(b, l, runs, err)) < 0)
				return rc;
		}
	}
	for (int i = 0; i < count; i++) {
		struct bench_line *l = &lines[i];

		bench_summarize(&l->row.latency, &l->latency);
		bench_summarize(&l->row.overhead, &l->overhead);
		if (l->row.failures > 0 && b->failure[0] == '\0')
			snprintf(b->failure, sizeof(b->failure), "%s: %s", l->label,
				 l->row.failure);
	}
	return 0;
}

/* The loop guest through the daemon and natively, best of a few of each. */
static int
bench_spin(struct bench *b, unsigned int ring, uint64_t count, struct bench_spin *spin,
	   struct bench_error *err)
{
	struct kvmrun_spec spec;
	struct drive_config cfg = {
		.socket_path = b->daemon.socket_path,
		.spec = &spec,
		.expect = KVMRUN_EXIT_HLT,
		.runs = 1,
		.connections = 1,
		.depth = 1,
		.idle_timeout_ms = BENCH_SPIN_TIMEOUT_MS + BENCH_IDLE_TIMEOUT_MS,
	};
	/* Ring 0 is emulated here: one slow run says enough. */
	int repeat = ring == 3 ? BENCH_SPIN_REPEAT : 1;
	/* A loop long enough for the clock: ring 0 gets few iterations. */
	uint64_t native_count = count > BENCH_NATIVE_MIN ? count : BENCH_NATIVE_MIN;
	struct bench_row row;
	int rc = 0;

	memset(spin, 0, sizeof(*spin));
	spin->count = count;
	kvmrun_spec_init(&spec);
	spec.mode = KVMRUN_MODE_LONG;
	spec.ring = ring;
	spec.timeout_ms = BENCH_SPIN_TIMEOUT_MS;
	spec.regs[KVMRUN_REG_RCX] = count;
	spec.regs_set = 1u << KVMRUN_REG_RCX;
	if ((rc = bench_read_file(b->opt.spin_guest, &spec.image, err)) < 0)
		goto out_free;
	for (int i = 0; i < repeat; i++) {
		double native = (double)local_spin_native(native_count) *
				(double)count / (double)native_count;

		if ((rc = bench_row_init(&row, 1, err)) < 0)
			goto out_free;
		rc = drive_run(&cfg, &row, err);
		if (rc == 0 && row.failures > 0)
			rc = bench_fail(err, EIO, "ring-%u loop: %s", ring,
					row.failure);
		if (rc == 0 &&
		    (spin->daemon_ns == 0 || row.latency.ns[0] < spin->daemon_ns)) {
			spin->daemon_ns = (double)row.latency.ns[0];
			spin->run_ns = (double)row.run_ns;
		}
		bench_row_free(&row);
		if (rc < 0)
			goto out_free;
		if (spin->native_ns == 0 || native < spin->native_ns)
			spin->native_ns = native;
	}
out_free:
	kvmrun_spec_free(&spec);
	return rc;
}

static double
bench_rate(const struct bench_line *line)
{
	return line->row.seconds > 0 ? (double)line->row.runs / line->row.seconds : 0;
}

/* The fastest of the rows FIRST..LAST, by runs per second. */
static const struct bench_line *
bench_best(const struct bench *b, int first, int last)
{
	const struct bench_line *best = &b->lines[first];

	for (int i = first + 1; i <= last; i++)
		if (bench_rate(&b->lines[i]) > bench_rate(best))
			best = &b->lines[i];
	return best;
}

struct bench_target {
	const char *key;
	const char *what;
	double value;
	double goal;
	bool at_most;
	bool known;
};

enum {
	TGT_THROUGHPUT,
	TGT_PROCESS,
	TGT_LATENCY_IDLE,
	TGT_OVERHEAD,
	TGT_LATENCY_BACK_TO_BACK,
	TGT_MACHINE_CPU,
	TGT_RING3,
	TGT_MEMORY,
	TGT_COUNT
};

/* NS spent over LINE's runs, per run in microseconds; -1 when unknown. */
static double
bench_per_run_us(const struct bench_line *line, double ns)
{
	if (ns < 0 || line->row.runs == 0)
		return -1;
	return ns / 1000.0 / (double)line->row.runs;
}

static double
bench_ratio(double a, double b, bool *known)
{
	*known = a > 0 && b > 0;
	return *known ? a / b : 0;
}

static void
bench_targets(const struct bench *b, struct bench_target *t)
{
	const struct bench_line *engine = bench_best(b, ROW_ENGINE, ROW_PROCESS - 1);
	const struct bench_line *process = bench_best(b, ROW_PROCESS, ROW_COUNT - 1);
	double cycle = b->lines[ROW_ENGINE].latency.p50;
	double daemon = bench_rate(&b->lines[ROW_DAEMON]);
	const struct bench_memory *m = &b->memory;

	t[TGT_THROUGHPUT] = (struct bench_target){ "throughput",
						   "runs/s: daemon / in-process limit",
						   0,
						   TARGET_THROUGHPUT,
						   false,
						   false };
	t[TGT_THROUGHPUT].value =
		bench_ratio(daemon, bench_rate(engine), &t[TGT_THROUGHPUT].known);
	t[TGT_PROCESS] = (struct bench_target){ "process_per_run",
						"runs/s: daemon / process per run",
						0,
						TARGET_PROCESS,
						false,
						false };
	t[TGT_PROCESS].value =
		bench_ratio(daemon, bench_rate(process), &t[TGT_PROCESS].known);
	t[TGT_LATENCY_IDLE] =
		(struct bench_target){ "latency_idle",
				       "p50: idle daemon / in-process cycle",
				       0,
				       TARGET_LATENCY_IDLE,
				       true,
				       false };
	t[TGT_LATENCY_IDLE].value = bench_ratio(b->lines[ROW_IDLE].latency.p50, cycle,
						&t[TGT_LATENCY_IDLE].known);
	t[TGT_OVERHEAD] = (struct bench_target){ "overhead_idle_us",
						 "p50 us: idle answer - guest run_ns",
						 b->lines[ROW_IDLE].overhead.p50,
						 TARGET_OVERHEAD_US,
						 true,
						 b->lines[ROW_IDLE].row.overhead.count > 0 };
	t[TGT_MACHINE_CPU] = (struct bench_target){
		"machine_cpu", "machine CPU/run: daemon / in-process", 0,
		TARGET_MACHINE_CPU, true, false
	};
	/* The goal is set with udevd running: without it the figure says less. */
	if (b->udevd.ran)
		t[TGT_MACHINE_CPU].value =
			bench_ratio(bench_per_run_us(&b->lines[ROW_DAEMON],
						     b->lines[ROW_DAEMON].machine.busy_ns),
				    bench_per_run_us(engine, engine->machine.busy_ns),
				    &t[TGT_MACHINE_CPU].known);
	t[TGT_LATENCY_BACK_TO_BACK] =
		(struct bench_target){ "latency_back_to_back",
				       "p50: back to back / in-process cycle",
				       0,
				       TARGET_LATENCY,
				       true,
				       false };
	t[TGT_LATENCY_BACK_TO_BACK].value =
		bench_ratio(b->lines[ROW_BACK_TO_BACK].latency.p50, cycle,
			    &t[TGT_LATENCY_BACK_TO_BACK].known);
	t[TGT_RING3] = (struct bench_target){
		"ring3_loop", "ring-3 loop: daemon / native", 0, TARGET_RING3, true,
		false
	};
	t[TGT_RING3].value = bench_ratio(b->ring3.daemon_ns, b->ring3.native_ns,
					 &t[TGT_RING3].known);
	t[TGT_MEMORY] = (struct bench_target){ "kib_per_prepared_vm",
					       "RSS KiB per prepared VM",
					       0,
					       TARGET_KIB_PER_VM,
					       true,
					       false };
	t[TGT_MEMORY].known =
		m->unprepared_kib >= 0 && m->idle_kib >= 0 && m->idle_vms > 0;
	if (t[TGT_MEMORY].known)
		t[TGT_MEMORY].value =
			(double)(m->idle_kib - m->unprepared_kib) / m->idle_vms;
}

static bool
bench_target_met(const struct bench_target *t)
{
	return t->at_most ? t->value <= t->goal : t->value >= t->goal;
}

static void
bench_print_rows_header(void)
{
	printf("%-32s %7s %7s %7s %7s %7s | %6s %7s %6s %6s\n", "", "runs/s",
	       "p50 us", "p90 us", "p99 us", "max us", "own", "machine", "udevd",
	       "kthr");
}

static void
bench_print_us(int width, double us)
{
	if (us < 0)
		printf(" %*s", width, "-");
	else
		printf(" %*.0f", width, us);
}

static void
bench_print_rows(const struct bench_line *lines, int count)
{
	for (int i = 0; i < count; i++) {
		const struct bench_line *l = &lines[i];

		if (l->runs == 0)
			continue;
		printf("%-32s %7.0f %7.0f %7.0f %7.0f %7.0f |", l->label, bench_rate(l),
		       l->latency.p50, l->latency.p90, l->latency.p99, l->latency.max);
		bench_print_us(6, bench_per_run_us(l, l->row.cpu_ns));
		bench_print_us(7, bench_per_run_us(l, l->machine.busy_ns));
		bench_print_us(6, bench_per_run_us(l, l->machine.udevd_ns));
		bench_print_us(6, bench_per_run_us(l, l->machine.kthreads_ns));
		printf("\n");
	}
}

/* Runs over all rows, which the kernel threads' time is shared out over. */
static size_t
bench_all_runs(const struct bench *b)
{
	size_t runs = 0;

	for (int i = 0; i < ROW_COUNT; i++)
		runs += b->lines[i].row.runs;
	return runs;
}

static void
bench_print_machine(const struct bench *b)
{
	const struct machine_cost *m = &b->machine;
	size_t runs = bench_all_runs(b);

	printf("\nCPU us per run: own = kvmrund's (daemon rows), this process's "
	       "(in-process)\nor its children's (process per run); machine = all "
	       "CPUs (/proc/stat);\nudevd = systemd-udevd with its workers; kthr = "
	       "kernel threads.\nsystemd-udevd: %s\n",
	       b->udevd.state);
	printf("kernel threads, us per run over all rows:");
	for (size_t i = 0; i < m->kthread_kinds && i < BENCH_KTHREAD_KINDS_SHOWN; i++)
		printf("%s %s %.1f", i == 0 ? "" : ",", m->kthreads[i].kind,
		       runs > 0 ? m->kthreads[i].ns / 1000.0 / (double)runs : 0);
	printf(m->kthread_kinds == 0 ? " none grew\n" : "\n");
	if (b->udevd.quiet_why[0] != '\0') {
		printf("without systemd-udevd: not measured: %s\n", b->udevd.quiet_why);
		return;
	}
	printf("\nwithout systemd-udevd (the same runs once it was stopped):\n");
	bench_print_rows_header();
	bench_print_rows(b->quiet, QUIET_COUNT);
}

static void
bench_print_table(const struct bench *b, const struct bench_target *t)
{
	const struct bench_memory *m = &b->memory;

	printf("kvmrun-bench %s: %s, %s mode, %zu runs (%zu one-client); %u CPUs;\n"
	       "kvmrund pid %d, %u workers, %d VMs held when idle\n\n",
	       PACKAGE_VERSION, b->opt.guest, kvmrun_mode_names[b->opt.mode],
	       b->opt.runs, b->opt.latency_runs, b->cpus, (int)b->daemon.pid,
	       b->daemon.workers, m->idle_vms);
	bench_print_rows_header();
	bench_print_rows(b->lines, ROW_COUNT);
	bench_print_machine(b);
	if (b->ring3.count > 0)
		printf("\nring-3 loop, %" PRIu64
		       " iterations: daemon %.3f s (vCPU %.3f s), "
		       "native %.3f s\n",
		       b->ring3.count, b->ring3.daemon_ns / 1e9, b->ring3.run_ns / 1e9,
		       b->ring3.native_ns / 1e9);
	if (b->ring0.count > 0)
		printf("ring-0 loop, %" PRIu64
		       " iterations: daemon %.3f s, %.1f ns per "
		       "iteration against %.2f native: %.0fx\n",
		       b->ring0.count, b->ring0.daemon_ns / 1e9,
		       b->ring0.daemon_ns / b->ring0.count,
		       b->ring0.native_ns / b->ring0.count,
		       b->ring0.daemon_ns / b->ring0.native_ns);
	printf("kvmrund RSS: %ld KiB idle (%ld KiB with --prepared-vms 0), %ld KiB "
	       "after "
	       "the runs (%d VMs held)\n\n",
	       m->idle_kib, m->unprepared_kib, m->after_kib, m->after_vms);
	printf("%-40s %9s %9s\n", "target", "measured", "goal");
	for (int i = 0; i < TGT_COUNT; i++) {
		if (!t[i].known) {
			printf("%-40s %9s %s %7.2f  not measured\n", t[i].what, "-",
			       t[i].at_most ? "<=" : ">=", t[i].goal);
			continue;
		}
		printf("%-40s %9.2f %s %7.2f  %s\n", t[i].what, t[i].value,
		       t[i].at_most ? "<=" : ">=", t[i].goal,
		       bench_target_met(&t[i]) ? "ok" : "MISSED");
	}
}

static void
bench_json_string(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void
bench_json_us(double us)
{
	if (us < 0)
		printf("null");
	else
		printf("%.1f", us);
}

/* LINES as the members of a JSON object, by key. */
static void
bench_json_rows(const struct bench_line *lines, int count)
{
	bool first = true;

	for (int i = 0; i < count; i++) {
		const struct bench_line *l = &lines[i];

		if (l->runs == 0)
			continue;
		printf("%s\"%s\":{\"runs\":%zu,\"failures\":%zu,\"seconds\":%.6f,"
		       "\"runs_per_s\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":"
		       "%.1f,\"max_us\":%.1f,\"cpu_us_per_run\":",
		       first ? "" : ",", l->key, l->row.runs, l->row.failures,
		       l->row.seconds, bench_rate(l), l->latency.p50, l->latency.p90,
		       l->latency.p99, l->latency.max);
		bench_json_us(bench_per_run_us(l, l->row.cpu_ns));
		printf(",\"machine_us_per_run\":");
		bench_json_us(bench_per_run_us(l, l->machine.busy_ns));
		printf(",\"udevd_us_per_run\":");
		bench_json_us(bench_per_run_us(l, l->machine.udevd_ns));
		printf(",\"kthreads_us_per_run\":");
		bench_json_us(bench_per_run_us(l, l->machine.kthreads_ns));
		printf(",\"overhead_p50_us\":");
		bench_json_us(l->row.overhead.count > 0 ? l->overhead.p50 : -1);
		printf("}");
		first = false;
	}
}

static void
bench_print_json(const struct bench *b, const struct bench_target *t)
{
	const struct bench_memory *m = &b->memory;
	size_t runs = bench_all_runs(b);

	printf("{\"version\":");
	bench_json_string(PACKAGE_VERSION);
	printf(",\"guest\":");
	bench_json_string(b->opt.guest);
	printf(",\"mode\":\"%s\",\"runs\":%zu,\"latency_runs\":%zu,\"cpus\":%u,"
	       "\"workers\":%u,\"rows\":{",
	       kvmrun_mode_names[b->opt.mode], b->opt.runs, b->opt.latency_runs,
	       b->cpus, b->daemon.workers);
	bench_json_rows(b->lines, ROW_COUNT);
	printf("},\"udevd\":");
	bench_json_string(b->udevd.state);
	printf(",\"without_udevd\":");
	if (b->udevd.quiet_why[0] != '\0') {
		printf("{\"not_measured\":");
		bench_json_string(b->udevd.quiet_why);
	} else {
		printf("{\"rows\":{");
		bench_json_rows(b->quiet, QUIET_COUNT);
		printf("}");
	}
	printf("},\"kthreads_us_per_run\":{");
	for (size_t i = 0; i < b->machine.kthread_kinds; i++) {
		printf("%s", i == 0 ? "" : ",");
		bench_json_string(b->machine.kthreads[i].kind);
		printf(":%.2f", runs > 0 ? b->machine.kthreads[i].ns / 1000.0 / (double)runs
					 : 0);
	}
	printf("},\"ring3_loop\":{\"iterations\":%" PRIu64 ",\"daemon_s\":%.6f,"
	       "\"vcpu_s\":%.6f,\"native_s\":%.6f}",
	       b->ring3.count, b->ring3.daemon_ns / 1e9, b->ring3.run_ns / 1e9,
	       b->ring3.native_ns / 1e9);
	printf(",\"ring0_loop\":{\"iterations\":%" PRIu64 ",\"daemon_s\":%.6f,"
	       "\"vcpu_s\":%.6f,\"native_s\":%.6f}",
	       b->ring0.count, b->ring0.daemon_ns / 1e9, b->ring0.run_ns / 1e9,
	       b->ring0.native_ns / 1e9);
	printf(",\"memory\":{\"unprepared_kib\":%ld,\"idle_kib\":%ld,\"after_kib\":%ld,"
	       "\"idle_vms\":%d,\"after_vms\":%d}",
	       m->unprepared_kib, m->idle_kib, m->after_kib, m->idle_vms, m->after_vms);
	printf(",\"targets\":{");
	for (int i = 0; i < TGT_COUNT; i++) {
		printf("%s\"%s\":{\"value\":", i == 0 ? "" : ",", t[i].key);
		if (t[i].known)
			printf("%.3f", t[i].value);
		else
			printf("null");
		printf(",\"goal\":%.2f,\"met\":%s}", t[i].goal,
		       !t[i].known		 ? "null"
		       : bench_target_met(&t[i]) ? "true"
						 : "false");
	}
	printf("}}\n");
}

/*
 * Stops the udevd started here, and gives the KVM device back the mode and
 * owner it had before: udevd applies its rules' (Debian: root:kvm 0660) on
 * every uevent, and a machine that runs no udevd may have set others.
 */
static int
bench_udevd_stop(struct bench *b, struct bench_error *err)
{
	struct bench_udevd *u = &b->udevd;
	const char *kvm = b->opt.kvm_path;
	struct stat now;
	int rc;

	if (!u->own.ours)
		return 0;
	if ((rc = udevd_stop(&u->own, err)) < 0 || !u->kvm_known)
		return rc;
	if (stat(kvm, &now) < 0)
		return bench_fail(err, errno, "%s: %s", kvm, strerror(errno));
	if (now.st_uid == u->kvm.st_uid && now.st_gid == u->kvm.st_gid &&
	    (now.st_mode & 07777) == (u->kvm.st_mode & 07777))
		return 0;
	if (chown(kvm, u->kvm.st_uid, u->kvm.st_gid) < 0 ||
	    chmod(kvm, u->kvm.st_mode & 07777) < 0)
		return bench_fail(err, errno,
				  "%s: cannot give back mode %04o, owner %d:%d after "
				  "udevd set %04o, %d:%d: %s",
				  kvm, (unsigned int)(u->kvm.st_mode & 07777),
				  (int)u->kvm.st_uid, (int)u->kvm.st_gid,
				  (unsigned int)(now.st_mode & 07777), (int)now.st_uid,
				  (int)now.st_gid, strerror(errno));
	fprintf(stderr,
		"kvmrun-bench: %s: mode %04o, owner %d:%d given back (udevd's rules "
		"had set %04o, %d:%d)\n",
		kvm, (unsigned int)(u->kvm.st_mode & 07777), (int)u->kvm.st_uid,
		(int)u->kvm.st_gid, (unsigned int)(now.st_mode & 07777), (int)now.st_uid,
		(int)now.st_gid);
	return 0;
}

/* Which systemd-udevd handles KVM's uevents while the rows run. */
static void
bench_udevd_open(struct bench *b)
{
	struct bench_udevd *u = &b->udevd;
	struct bench_error err;

	u->machine = udevd_find();
	if (u->machine != 0) {
		snprintf(u->state, sizeof(u->state), "the machine's own (pid %d)",
			 (int)u->machine);
		snprintf(u->quiet_why, sizeof(u->quiet_why),
			 "the machine's own systemd-udevd runs, and kvmrun-bench "
			 "does not stop it");
	} else if (b->opt.no_udevd) {
		snprintf(u->state, sizeof(u->state), "none (--no-udevd)");
		snprintf(u->quiet_why, sizeof(u->quiet_why),
			 "with --no-udevd the rows above ran without it");
	} else if (!(u->kvm_known = stat(b->opt.kvm_path, &u->kvm) == 0) ||
		   udevd_start(b->opt.udevd_path, &u->own, &err) < 0) {
		if (!u->kvm_known)
			bench_fail(&err, errno, "%s: %s", b->opt.kvm_path,
				   strerror(errno));
		snprintf(u->state, sizeof(u->state),
			 "none: the machine runs none, and %s", err.message);
		snprintf(u->quiet_why, sizeof(u->quiet_why),
			 "the rows above ran without it");
	} else {
		snprintf(u->state, sizeof(u->state),
			 "started by kvmrun-bench (pid %d), as the machine runs none",
			 (int)u->own.pid);
	}
	u->ran = u->machine != 0 || u->own.pid != 0;
}

/* Every measurement, with the daemon's memory before and after. */
static int
bench_measure(struct bench *b, struct bench_error *err)
{
	int rc;

	if (b->daemon.pid != 0) {
		b->memory.idle_vms = bench_daemon_settle(b->daemon.pid);
		b->memory.idle_kib = proc_rss_kib(b->daemon.pid);
	}
	if ((rc = bench_rows(b, b->lines, ROW_COUNT, err)) < 0)
		return rc;
	if (b->opt.spin > 0 && (rc = bench_spin(b, 3, b->opt.spin, &b->ring3, err)) < 0)
		return rc;
	if (b->opt.spin_ring0 > 0 &&
	    (rc = bench_spin(b, 0, b->opt.spin_ring0, &b->ring0, err)) < 0)
		return rc;
	if (b->daemon.pid != 0) {
		b->memory.after_vms = bench_daemon_settle(b->daemon.pid);
		b->memory.after_kib = proc_rss_kib(b->daemon.pid);
	}
	/* Last: the same runs once udevd is gone, when it was ours to stop. */
	if (b->udevd.own.pid == 0)
		return 0;
	if ((rc = bench_udevd_stop(b, err)) < 0)
		return rc;
	return bench_rows(b, b->quiet, QUIET_COUNT, err);
}

/* Finds the daemon: started here, or behind --socket. */
static int
bench_daemon_open(struct bench *b, struct bench_error *err)
{
	struct bench_daemon *d = &b->daemon;
	char comm[32] = "";
	FILE *f;
	int rc;

	if (b->opt.socket_path == NULL) {
		b->memory.unprepared_kib = bench_unprepared_rss(&b->opt);
		return bench_daemon_start(&b->opt, false, d, err);
	}
	memset(d, 0, sizeof(*d));
	snprintf(d->socket_path, sizeof(d->socket_path), "%s", b->opt.socket_path);
	if ((rc = drive_daemon_info(d->socket_path, &d->pid, &d->workers, err)) < 0)
		return rc;
	if (b->opt.daemon_pid != 0)
		d->pid = b->opt.daemon_pid;
	/* Its CPU time and memory only when the peer really is kvmrund. */
	snprintf(d->log_path, sizeof(d->log_path), "/proc/%d/comm", (int)d->pid);
	f = fopen(d->log_path, "r");
	if (f == NULL || fgets(comm, sizeof(comm), f) == NULL ||
	    strcmp(comm, "kvmrund\n") != 0) {
		fprintf(stderr,
			"kvmrun-bench: %s is not served by kvmrund itself (pid %d); "
			"no CPU or memory figures (see --daemon-pid)\n",
			d->socket_path, (int)d->pid);
		d->pid = 0;
	}
	if (f != NULL)
		fclose(f);
	d->log_path[0] = '\0';
	return 0;
}

static int
bench_setup(struct bench *b, struct bench_error *err)
{
	struct kvmrun_error kerr;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int rc;

	b->cpus = cpus > 0 ? (unsigned int)cpus : 1;
	b->memory.unprepared_kib = b->memory.idle_kib = b->memory.after_kib = -1;
	kvmrun_spec_init(&b->spec);
	b->spec.mode = b->opt.mode;
	if ((rc = bench_read_file(b->opt.guest, &b->spec.image, err)) < 0)
		return rc;
	if ((rc = vm_host_open(b->opt.kvm_path, &b->host, &kerr)) < 0)
		return bench_fail(err, -rc, "%s", kerr.message);
	if ((rc = vm_check_spec(b->host, &b->spec, &kerr)) < 0)
		return bench_fail(err, -rc, "%s: %s", b->opt.guest, kerr.message);
	b->once_argv[0] = b->opt.once;
	b->once_argv[1] = "--quiet";
	b->once_argv[2] = "--mode";
	b->once_argv[3] = (char *)kvmrun_mode_names[b->opt.mode];
	b->once_argv[4] = b->opt.guest;
	return bench_lines_init(b, err);
}

static void
bench_options_free(struct bench_options *opt)
{
	free(opt->kvmrund);
	free(opt->once);
	free(opt->guest);
	free(opt->spin_guest);
}

int
main(int argc, char **argv)
{
	struct bench_target targets[TGT_COUNT];
	struct bench_error err, uerr;
	struct bench b;
	int rc, status = EXIT_SUCCESS;

	memset(&b, 0, sizeof(b));
	rc = bench_parse_args(argc, argv, &b.opt);
	if (rc != 0) {
		bench_options_free(&b.opt);
		if (rc < 0)
			usage(stderr);
		return rc < 0 ? 2 : EXIT_SUCCESS;
	}
	rc = bench_setup(&b, &err);
	if (rc == 0) {
		bench_udevd_open(&b);
		rc = bench_daemon_open(&b, &err);
	}
	if (rc == 0) {
		rc = bench_measure(&b, &err);
		bench_daemon_stop(&b.daemon);
	}
	if (bench_udevd_stop(&b, &uerr) < 0)
		fprintf(stderr, "kvmrun-bench: %s\n", uerr.message);
	if (rc < 0) {
		fprintf(stderr, "kvmrun-bench: %s\n", err.message);
		status = EXIT_FAILURE;
	} else {
		machine_cost_sort(&b.machine);
		bench_targets(&b, targets);
		if (b.opt.json)
			bench_print_json(&b, targets);
		else {
			bench_print_table(&b, targets);
			bench_steps_print(&b.idle_steps, b.lines[ROW_IDLE].row.runs,
					  b.lines[ROW_IDLE].latency.p50, stdout);
		}
		if (b.failure[0] != '\0') {
			fprintf(stderr, "kvmrun-bench: runs failed; the first: %s\n",
				b.failure);
			status = EXIT_FAILURE;
		}
	}
	for (int i = 0; i < ROW_COUNT; i++)
		bench_row_free(&b.lines[i].row);
	for (int i = 0; i < QUIET_COUNT; i++)
		bench_row_free(&b.quiet[i].row);
	machine_sample_free(&b.before);
	machine_sample_free(&b.after);
	kvmrun_spec_free(&b.spec);
	vm_host_close(b.host);
	bench_options_free(&b.opt);
	return status;
}
