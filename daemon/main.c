/*
 * kvmrund: reads the options, opens /dev/kvm and the socket, runs the event
 * loop until told to stop, and turns the outcome into an exit status:
 * 0 after a stop by signal, 1 when it could not start, 2 for bad usage.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "host.h"
#include "kvmrun-proto.h"
#include "job.h"
#include "listen.h"
#include "log.h"
#include "sandbox.h"
#include "server.h"
#include "vm.h"

#define EXIT_USAGE 2

#define DEFAULT_QUEUE 64u
#define DEFAULT_PREPARED_VMS 1u
#define DEFAULT_MAX_CONNECTIONS 256u
#define DEFAULT_MAX_TOTAL_MEMORY (1ull << 30)
#define DEFAULT_MAX_OUTPUT (64ull << 20)
#define DEFAULT_READ_TIMEOUT_MS 30000u
#define DEFAULT_WRITE_TIMEOUT_MS 30000u
#define DEFAULT_MAX_BUFFERS (1ull << 30)
#define DEFAULT_SOCKET_MODE 0660

#define MAX_WORKERS 1024u
#define MAX_PREPARED_VMS 64u
#define MAX_QUEUE (1u << 20)
#define MAX_CONNECTIONS (1u << 20)
#define MAX_MS (24u * 3600 * 1000) /* a day */
#define MAX_BYTES (1ull << 40)
#define MIN_MAX_LINE 256u
#define MIN_MAX_OUTPUT 4096u
/*
 * LeakSanitizer checks for leaks at exit from a tracer thread that the
 * seccomp filter stops, leaving the daemon spinning: sanitizer builds run
 * without the filter unless asked (--seccomp-selftest still tests it).
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_RUNTIME true
#else
#define SANITIZER_RUNTIME false
#endif

/* Lists a request may carry: each entry costs parsing on the event loop. */
#define MAX_LIST_ENTRIES 4096u

/* A run's console and io log live in the worker until the answer is sent. */
#define MAX_OUTPUT_BOUND (64u << 20)
/* A trace entry is 40 bytes of answer: a million is 40 MB. */
#define MAX_TRACE_BOUND (1u << 20)
/* Stepped instructions cost an exit each: more cannot finish in MAX_MS anyway. */
#define MAX_INSTRUCTIONS_BOUND (1ull << 40)
#define SIZE_TEXT_MAX 24 /* "18446744073709551615" and a unit */
#define ID_TEXT_MAX 256	 /* a list of uids or gids in the log, cut short */

struct options {
	const char *socket_path;
	const char *kvm_path;
	struct vm_host_options host;
	mode_t socket_mode;
	int verbosity;
	bool seccomp;
	const char *seccomp_selftest; /* the call to try, or NULL */
	struct server_config server;
};

enum {
	OPT_SOCKET = 256,
	OPT_WORKERS,
	OPT_PREPARED_VMS,
	OPT_QUEUE,
	OPT_MAX_CONNECTIONS,
	OPT_MAX_LINE,
	OPT_MAX_MEMORY,
	OPT_MAX_TOTAL_MEMORY,
	OPT_MAX_TIMEOUT_MS,
	OPT_MAX_OUTPUT,
	OPT_READ_TIMEOUT_MS,
	OPT_WRITE_TIMEOUT_MS,
	OPT_MAX_BUFFERS,
	OPT_SOCKET_MODE,
	OPT_KVM,
	OPT_VERSION,
	OPT_MAX_CONSOLE,
	OPT_MAX_IO_LOG,
	OPT_MAX_INSTRUCTIONS,
	OPT_MAX_TRACE,
	OPT_MAX_REGIONS,
	OPT_MAX_DUMPS,
	OPT_MAX_DUMP_BYTES,
	OPT_MAX_LOG_PORTS,
	OPT_MAX_CPUID_ENTRIES,
	OPT_NO_SECCOMP,
	OPT_SECCOMP_SELFTEST,
	OPT_ALLOW_UID,
	OPT_ALLOW_GROUP,
	OPT_PAGED,
};

static const struct option long_options[] = {
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "prepared-vms", required_argument, NULL, OPT_PREPARED_VMS },
	{ "queue", required_argument, NULL, OPT_QUEUE },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
	{ "max-line", required_argument, NULL, OPT_MAX_LINE },
	{ "max-memory", required_argument, NULL, OPT_MAX_MEMORY },
	{ "max-total-memory", required_argument, NULL, OPT_MAX_TOTAL_MEMORY },
	{ "max-timeout-ms", required_argument, NULL, OPT_MAX_TIMEOUT_MS },
	{ "max-output", required_argument, NULL, OPT_MAX_OUTPUT },
	{ "read-timeout-ms", required_argument, NULL, OPT_READ_TIMEOUT_MS },
	{ "write-timeout-ms", required_argument, NULL, OPT_WRITE_TIMEOUT_MS },
	{ "max-buffers", required_argument, NULL, OPT_MAX_BUFFERS },
	{ "max-console", required_argument, NULL, OPT_MAX_CONSOLE },
	{ "max-io-log", required_argument, NULL, OPT_MAX_IO_LOG },
	{ "max-instructions", required_argument, NULL, OPT_MAX_INSTRUCTIONS },
	{ "max-trace", required_argument, NULL, OPT_MAX_TRACE },
	{ "max-regions", required_argument, NULL, OPT_MAX_REGIONS },
	{ "max-dumps", required_argument, NULL, OPT_MAX_DUMPS },
	{ "max-dump-bytes", required_argument, NULL, OPT_MAX_DUMP_BYTES },
	{ "max-log-ports", required_argument, NULL, OPT_MAX_LOG_PORTS },
	{ "max-cpuid-entries", required_argument, NULL, OPT_MAX_CPUID_ENTRIES },
	{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
	{ "seccomp-selftest", optional_argument, NULL, OPT_SECCOMP_SELFTEST },
	{ "allow-uid", required_argument, NULL, OPT_ALLOW_UID },
	{ "allow-group", required_argument, NULL, OPT_ALLOW_GROUP },
	{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
	{ "kvm", required_argument, NULL, OPT_KVM },
	{ "paged", required_argument, NULL, OPT_PAGED },
	{ "verbose", no_argument, NULL, 'v' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Bytes as the options take them: "24M" when it divides evenly. */
static const char *
size_text(uint64_t bytes, char *buf, size_t size)
{
	static const char units[] = "KMG";
	int unit = -1;

	while (unit < 2 && bytes != 0 && bytes % 1024 == 0) {
		bytes /= 1024;
		unit++;
	}
	if (unit < 0)
		snprintf(buf, size, "%" PRIu64, bytes);
	else
		snprintf(buf, size, "%" PRIu64 "%c", bytes, units[unit]);
	return buf;
}

/*
 * One CPU fewer than there are: the event loop and the clients need one, and
 * a worker more only slows short runs down where creating and destroying VMs
 * does not scale (kvmrun-bench measured 1 worker ahead of 2 on 2 CPUs).
 */
static unsigned int
default_workers(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cpus < 2)
		return 1;
	return cpus - 1 > MAX_WORKERS ? MAX_WORKERS : (unsigned int)(cpus - 1);
}

static void
options_default(struct options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->socket_path = KVMRUN_DEFAULT_SOCKET;
	opt->kvm_path = KVMRUN_DEFAULT_KVM_PATH;
	opt->socket_mode = DEFAULT_SOCKET_MODE;
	opt->server.workers = default_workers();
	opt->server.prepared_vms = DEFAULT_PREPARED_VMS;
	opt->server.queue = DEFAULT_QUEUE;
	opt->server.max_connections = DEFAULT_MAX_CONNECTIONS;
	opt->server.max_total_memory = DEFAULT_MAX_TOTAL_MEMORY;
	opt->server.max_output = DEFAULT_MAX_OUTPUT;
	opt->server.read_timeout_ms = DEFAULT_READ_TIMEOUT_MS;
	opt->server.write_timeout_ms = DEFAULT_WRITE_TIMEOUT_MS;
	opt->server.max_buffers = DEFAULT_MAX_BUFFERS;
	opt->seccomp = !SANITIZER_RUNTIME;
	proto_limits_default(&opt->server.limits);
}

static void
usage(FILE *out)
{
	struct options def;
	char text[SIZE_TEXT_MAX];

	options_default(&def);
	fprintf(out, "usage: kvmrund [options]\n"
		     "Runs untrusted x86 code in fresh KVM virtual machines for the\n"
		     "clients of a Unix socket speaking JSON lines.\n\n");
	fprintf(out,
		"  --socket PATH\n\tlisten on PATH (default %s);\n"
		"\tignored when systemd passes the socket\n",
		KVMRUN_DEFAULT_SOCKET);
	fprintf(out,
		"  --socket-mode OCTAL\n\tpermissions of the socket (default %04o)\n",
		DEFAULT_SOCKET_MODE);
	fprintf(out, "  --kvm PATH\n\tthe KVM device (default %s)\n",
		KVMRUN_DEFAULT_KVM_PATH);
	fprintf(out, "  --paged auto|legacy|compat\n\thow paged mode's 32-bit code "
		     "is paged: legacy 32-bit paging,\n\tcompatibility mode under "
		     "long-mode paging, or auto: legacy where\n\tKVM keeps CR0.PG "
		     "outside long mode, else compat (default auto)\n");
	fprintf(out, "  --workers N\n\truns at the same time (default %u: CPUs - 1)\n",
		def.server.workers);
	fprintf(out,
		"  --prepared-vms N\n\tVMs of %s each worker makes ahead of demand, "
		"0 for none;\n\tthey count against --max-total-memory (default %u)\n",
		size_text(JOB_PREPARED_MEMORY, text, sizeof(text)),
		def.server.prepared_vms);
	fprintf(out, "  --queue N\n\truns waiting for a worker (default %zu)\n",
		def.server.queue);
	fprintf(out,
		"  --max-connections N\n\tclients at the same time (default %" PRIu64
		")\n",
		def.server.max_connections);
	fprintf(out, "  --max-line BYTES\n\tlongest request line (default %s)\n",
		size_text(def.server.limits.max_line, text, sizeof(text)));
	fprintf(out,
		"  --max-memory BYTES\n\tlargest memory_size of a run (default %s)\n",
		size_text(def.server.limits.max_memory, text, sizeof(text)));
	fprintf(out,
		"  --max-total-memory BYTES\n\tmemory_size of all queued and running "
		"runs together (default %s)\n",
		size_text(def.server.max_total_memory, text, sizeof(text)));
	fprintf(out,
		"  --max-timeout-ms N\n\tlargest timeout_ms of a run (default %" PRIu32
		")\n",
		def.server.limits.max_timeout_ms);
	fprintf(out,
		"  --max-output BYTES\n\tunread answers of a client past which its "
		"requests are not read\n\tuntil it reads them (default %s)\n",
		size_text(def.server.max_output, text, sizeof(text)));
	fprintf(out,
		"  --max-buffers BYTES\n\trequest buffers and unread answers of all "
		"clients together;\n\ta line that needs more is answered busy "
		"(default %s)\n",
		size_text(def.server.max_buffers, text, sizeof(text)));
	fprintf(out,
		"  --read-timeout-ms N\n\ttime to finish a begun request line, 0 for "
		"none (default %" PRIu32 ")\n",
		def.server.read_timeout_ms);
	fprintf(out,
		"  --write-timeout-ms N\n\ttime a client may leave its answers "
		"unread before it is dropped,\n\t0 for none (default %" PRIu32 ")\n",
		def.server.write_timeout_ms);
	fprintf(out,
		"  --max-console BYTES\n\tconsole output a run may make before it "
		"ends as output_limit (default %s)\n",
		size_text(def.server.limits.max_console, text, sizeof(text)));
	fprintf(out,
		"  --max-io-log N\n\tlog-port writes a run may make before it ends "
		"as output_limit (default %zu)\n",
		def.server.limits.max_io_log);
	fprintf(out,
		"  --max-instructions N\n\ta request's max_instructions, the "
		"instructions a run\n\tsingle-steps (default %" PRIu64 ")\n"
		"  --max-trace N\n\ttrace entries a run returns before "
		"trace_truncated (default %zu)\n",
		def.server.limits.max_instructions, def.server.limits.max_trace);
	fprintf(out, "  --allow-uid USER\n\tonly this user (uid or name) and the "
		     "--allow-group members may connect;\n\trepeatable (default: "
		     "whoever may open the socket)\n"
		     "  --allow-group GROUP\n\tonly members of this group (gid or "
		     "name; primary or supplementary)\n\tand the --allow-uid users "
		     "may connect; repeatable\n");
	fprintf(out,
		"  --max-regions N\n\tentries in a request's regions (default %zu)\n"
		"  --max-dumps N\n\tentries in a request's dump (default %zu)\n"
		"  --max-dump-bytes BYTES\n\tdump lengths of one request together "
		"(default %s)\n"
		"  --max-log-ports N\n\tentries in a request's log_ports (default %zu)\n",
		def.server.limits.max_regions, def.server.limits.max_dumps,
		size_text(def.server.limits.max_dump_bytes, text, sizeof(text)),
		def.server.limits.max_log_ports);
	fprintf(out,
		"  --max-cpuid-entries N\n\tentries in a request's cpuid, at most %u "
		"(default %zu)\n",
		KVMRUN_CPUID_ENTRIES_MAX, def.server.limits.max_cpuid_entries);
	fprintf(out, "  --no-seccomp\n\tdo not install the seccomp filter (for "
		     "debuggers and valgrind)\n"
		     "  --seccomp-selftest[=CALL]\n\tinstall the filter and make the "
		     "forbidden CALL: die of SIGSYS, or exit 0\n\tfor one refused "
		     "with an errno (clone3, open); CALL is one of\n\t");
	for (const char *const *call = sandbox_selftest_calls; *call != NULL; call++)
		fprintf(out, "%s%s", *call, call[1] != NULL ? ", " : " (default socket-inet)\n");
	fprintf(out, "  -v, --verbose\n\tlog debug messages too\n"
		     "  --version\n\tprint the version and exit\n"
		     "  -h, --help\n\tprint this help and exit\n\n"
		     "BYTES take a K, M or G suffix (powers of 1024).\n");
}

static int
option_bad(const char *name, const char *arg, const char *why)
{
	fprintf(stderr, "kvmrund: --%s %s: %s\n", name, arg, why);
	return -EINVAL;
}

static int
option_paged(const char *name, const char *arg, enum vm_paged_choice *choice)
{
	static const char *const names[] = {
		[VM_PAGED_AUTO] = "auto",
		[VM_PAGED_LEGACY] = "legacy",
		[VM_PAGED_COMPAT] = "compat",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(arg, names[i]) == 0) {
			*choice = (enum vm_paged_choice)i;
			return 0;
		}
	}
	return option_bad(name, arg, "not one of auto, legacy, compat");
}

/* A number in [MIN, MAX]; with SIZED, a K, M or G suffix multiplies it. */
static int
option_number(const char *name, const char *arg, bool sized, uint64_t min, uint64_t max,
	      uint64_t *value)
{
	static const char units[] = "KMG";
	char low[SIZE_TEXT_MAX], high[SIZE_TEXT_MAX], why[96];
	unsigned long long n;
	unsigned int shift = 0;
	char *end;

	errno = 0;
	n = strtoull(arg, &end, 10);
	/* Out of range is reported with the range below. */
	if (errno == ERANGE)
		n = ULLONG_MAX;
	if (end == arg || arg[0] == '-')
		return option_bad(name, arg,
				  sized ? "not a size (bytes, or with K, M or G)"
					: "not a number");
	if (sized && *end != '\0' && end[1] == '\0') {
		const char *unit = strchr(units, toupper((unsigned char)*end));

		if (unit != NULL) {
			shift = 10 * (unsigned int)(unit - units + 1);
			end++;
		}
	}
	if (*end != '\0')
		return option_bad(name, arg,
				  sized ? "not a size (bytes, or with K, M or G)"
					: "not a number");
	if (n > (max >> shift) || (n << shift) < min) {
		if (sized)
			snprintf(why, sizeof(why), "must be between %s and %s",
				 size_text(min, low, sizeof(low)),
				 size_text(max, high, sizeof(high)));
		else
			snprintf(why, sizeof(why),
				 "must be between %" PRIu64 " and %" PRIu64, min, max);
		return option_bad(name, arg, why);
	}
	*value = (uint64_t)n << shift;
	return 0;
}

static int
option_mode(const char *arg, mode_t *mode)
{
	unsigned long n;
	char *end;

	errno = 0;
	n = strtoul(arg, &end, 8);
	if (end == arg || *end != '\0' || errno != 0 || n > 0777)
		return option_bad("socket-mode", arg,
				  "not an octal mode from 0 to 0777");
	*mode = (mode_t)n;
	return 0;
}

/*
 * Adds a user, or with GROUP a group, to an --allow list: a number, or a
 * name looked up now, before the sandbox closes /etc.
 */
static int
option_id(const char *name, const char *arg, bool group, id_t **ids, size_t *count)
{
	unsigned long long n;
	id_t id, *grown;

	if (arg[0] != '\0' && strspn(arg, "0123456789") == strlen(arg)) {
		errno = 0;
		n = strtoull(arg, NULL, 10);
		/* (id_t)-1 means "no id" to the kernel. */
		if (errno != 0 || n >= (id_t)-1)
			return option_bad(name, arg, "out of range");
		id = (id_t)n;
	} else if (group) {
		struct group *gr = getgrnam(arg);

		if (gr == NULL)
			return option_bad(name, arg, "no such group");
		id = gr->gr_gid;
	} else {
		struct passwd *pw = getpwnam(arg);

		if (pw == NULL)
			return option_bad(name, arg, "no such user");
		id = pw->pw_uid;
	}
	grown = realloc(*ids, (*count + 1) * sizeof(*grown));
	if (grown == NULL)
		return option_bad(name, arg, strerror(errno));
	grown[(*count)++] = id;
	*ids = grown;
	return 0;
}

static const char *
option_name(int c)
{
	const struct option *o;

	for (o = long_options; o->name != NULL && o->val != c; o++)
		continue;
	return o->name;
}

static int
option_set(struct options *opt, int c, const char *arg)
{
	struct server_config *cfg = &opt->server;
	const char *name = option_name(c);
	uint64_t n;
	int rc;

	switch (c) {
	case OPT_SOCKET:
		opt->socket_path = arg;
		return 0;
	case OPT_KVM:
		opt->kvm_path = arg;
		return 0;
	case OPT_PAGED:
		return option_paged(name, arg, &opt->host.paged);
	case OPT_SOCKET_MODE:
		return option_mode(arg, &opt->socket_mode);
	case OPT_WORKERS:
		rc = option_number(name, arg, false, 1, MAX_WORKERS, &n);
		cfg->workers = (unsigned int)n;
		return rc;
	case OPT_PREPARED_VMS:
		rc = option_number(name, arg, false, 0, MAX_PREPARED_VMS, &n);
		cfg->prepared_vms = (unsigned int)n;
		return rc;
	case OPT_QUEUE:
		rc = option_number(name, arg, false, 1, MAX_QUEUE, &n);
		cfg->queue = (size_t)n;
		return rc;
	case OPT_MAX_CONNECTIONS:
		return option_number(name, arg, false, 1, MAX_CONNECTIONS,
				     &cfg->max_connections);
	case OPT_MAX_LINE:
		rc = option_number(name, arg, true, MIN_MAX_LINE, 1ull << 30, &n);
		cfg->limits.max_line = (size_t)n;
		return rc;
	case OPT_MAX_MEMORY:
		return option_number(name, arg, true, KVMRUN_PAGE_SIZE, MAX_BYTES,
				     &cfg->limits.max_memory);
	case OPT_MAX_TOTAL_MEMORY:
		return option_number(name, arg, true, KVMRUN_PAGE_SIZE, MAX_BYTES,
				     &cfg->max_total_memory);
	case OPT_MAX_TIMEOUT_MS:
		rc = option_number(name, arg, false, 1, MAX_MS, &n);
		cfg->limits.max_timeout_ms = (uint32_t)n;
		return rc;
	case OPT_MAX_OUTPUT:
		rc = option_number(name, arg, true, MIN_MAX_OUTPUT, MAX_BYTES, &n);
		cfg->max_output = (size_t)n;
		return rc;
	case OPT_READ_TIMEOUT_MS:
		rc = option_number(name, arg, false, 0, MAX_MS, &n);
		cfg->read_timeout_ms = (uint32_t)n;
		return rc;
	case OPT_WRITE_TIMEOUT_MS:
		rc = option_number(name, arg, false, 0, MAX_MS, &n);
		cfg->write_timeout_ms = (uint32_t)n;
		return rc;
	case OPT_MAX_BUFFERS:
		rc = option_number(name, arg, true, MIN_MAX_OUTPUT, MAX_BYTES, &n);
		cfg->max_buffers = (size_t)n;
		return rc;
	case OPT_MAX_CONSOLE:
		rc = option_number(name, arg, true, 1, MAX_OUTPUT_BOUND, &n);
		cfg->limits.max_console = (size_t)n;
		return rc;
	case OPT_MAX_IO_LOG:
		rc = option_number(name, arg, false, 1, MAX_OUTPUT_BOUND, &n);
		cfg->limits.max_io_log = (size_t)n;
		return rc;
	case OPT_MAX_INSTRUCTIONS:
		return option_number(name, arg, false, 1, MAX_INSTRUCTIONS_BOUND,
				     &cfg->limits.max_instructions);
	case OPT_MAX_TRACE:
		rc = option_number(name, arg, false, 1, MAX_TRACE_BOUND, &n);
		cfg->limits.max_trace = (size_t)n;
		return rc;
	case OPT_MAX_REGIONS:
		rc = option_number(name, arg, false, 0, MAX_LIST_ENTRIES, &n);
		cfg->limits.max_regions = (size_t)n;
		return rc;
	case OPT_MAX_DUMPS:
		rc = option_number(name, arg, false, 0, MAX_LIST_ENTRIES, &n);
		cfg->limits.max_dumps = (size_t)n;
		return rc;
	case OPT_MAX_DUMP_BYTES:
		return option_number(name, arg, true, 1, MAX_OUTPUT_BOUND,
				     &cfg->limits.max_dump_bytes);
	case OPT_MAX_LOG_PORTS:
		rc = option_number(name, arg, false, 0, MAX_LIST_ENTRIES, &n);
		cfg->limits.max_log_ports = (size_t)n;
		return rc;
	case OPT_MAX_CPUID_ENTRIES:
		/* KVM takes no larger table: more could only fail later. */
		rc = option_number(name, arg, false, 0, KVMRUN_CPUID_ENTRIES_MAX, &n);
		cfg->limits.max_cpuid_entries = (size_t)n;
		return rc;
	case OPT_NO_SECCOMP:
		opt->seccomp = false;
		return 0;
	case OPT_SECCOMP_SELFTEST:
		opt->seccomp_selftest = arg != NULL ? arg : "socket-inet";
		return 0;
	case OPT_ALLOW_UID:
		return option_id(name, arg, false, &cfg->allow_uids,
				 &cfg->allow_uid_count);
	case OPT_ALLOW_GROUP:
		return option_id(name, arg, true, &cfg->allow_gids,
				 &cfg->allow_gid_count);
	default:
		return -EINVAL;
	}
}

static void
options_free(struct options *opt)
{
	free(opt->server.allow_uids);
	free(opt->server.allow_gids);
}

/* Option sets under which a legal request or answer could never get through. */
static int
options_check(const struct options *opt)
{
	const struct server_config *cfg = &opt->server;
	uint64_t answer = proto_result_max_length(&cfg->limits);
	char a[SIZE_TEXT_MAX], b[SIZE_TEXT_MAX];

	if (cfg->max_total_memory < cfg->limits.max_memory) {
		fprintf(stderr, "kvmrund: --max-total-memory %s is less than --max-memory %s\n",
			size_text(cfg->max_total_memory, a, sizeof(a)),
			size_text(cfg->limits.max_memory, b, sizeof(b)));
		return -EINVAL;
	}
	if (answer > cfg->max_output) {
		fprintf(stderr,
			"kvmrund: --max-output %s is less than the longest answer a run "
			"may have, %s (an id as long as --max-line, --max-console, "
			"--max-io-log, --max-trace and --max-dump-bytes at their "
			"bounds); raise "
			"--max-output or lower those\n",
			size_text(cfg->max_output, a, sizeof(a)), size_text(answer, b, sizeof(b)));
		return -EINVAL;
	}
	if (cfg->max_buffers < cfg->limits.max_line + 1 + cfg->max_output) {
		fprintf(stderr,
			"kvmrund: --max-buffers %s cannot hold one request line "
			"(--max-line) and one client's answers (--max-output): it "
			"needs at least %s\n",
			size_text(cfg->max_buffers, a, sizeof(a)),
			size_text(cfg->limits.max_line + 1 + cfg->max_output, b, sizeof(b)));
		return -EINVAL;
	}
	return 0;
}

/*
 * Fills OPT from the command line.  0 to go on, 1 when --help or --version
 * was answered, -EINVAL for bad usage (already reported).  Either way
 * options_free releases it.
 */
static int
options_parse(int argc, char **argv, struct options *opt)
{
	int c;

	options_default(opt);
	while ((c = getopt_long(argc, argv, "hv", long_options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 1;
		case 'v':
			opt->verbosity++;
			break;
		case OPT_VERSION:
			printf("kvmrund %s (protocol %d)\n", PACKAGE_VERSION,
			       KVMRUN_PROTOCOL_VERSION);
			return 1;
		case '?':
			return -EINVAL;
		default:
			if (option_set(opt, c, optarg) < 0)
				return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kvmrund: unexpected argument %s\n", argv[optind]);
		return -EINVAL;
	}
	return options_check(opt);
}

/* IDS as "0,65534", or "none", for the log. */
static const char *
ids_text(const id_t *ids, size_t count, char *buf, size_t size)
{
	size_t used = 0;

	snprintf(buf, size, "none");
	for (size_t i = 0; i < count && used < size; i++) {
		int n = snprintf(buf + used, size - used, "%s%u", i > 0 ? "," : "",
				 (unsigned int)ids[i]);

		if (n < 0)
			break;
		used += (size_t)n;
	}
	return buf;
}

static void
log_settings(const struct options *opt, const struct listen_socket *lsock,
	     const struct kvmrun_host *host)
{
	char kvm[SIZE_TEXT_MAX + 16];
	const struct server_config *cfg = &opt->server;
	char line[SIZE_TEXT_MAX], memory[SIZE_TEXT_MAX], total[SIZE_TEXT_MAX],
		output[SIZE_TEXT_MAX], buffers[SIZE_TEXT_MAX];

	if (host != NULL)
		snprintf(kvm, sizeof(kvm), "kvm api %d", vm_host_api_version(host));
	else
		snprintf(kvm, sizeof(kvm), "no kvm");
	log_info("main",
		 "kvmrund %s on %s%s: %s, %u workers, prepared-vms %u, "
		 "queue %zu, max-connections %" PRIu64 ", max-line %s, max-memory %s, "
		 "max-total-memory %s, max-timeout-ms %" PRIu32 ", max-output %s, "
		 "max-buffers %s, read-timeout-ms %" PRIu32 ", write-timeout-ms %" PRIu32,
		 PACKAGE_VERSION, lsock->path,
		 lsock->activated ? " (from systemd)" : "", kvm,
		 cfg->workers, cfg->prepared_vms, cfg->queue, cfg->max_connections,
		 size_text(cfg->limits.max_line, line, sizeof(line)),
		 size_text(cfg->limits.max_memory, memory, sizeof(memory)),
		 size_text(cfg->max_total_memory, total, sizeof(total)),
		 cfg->limits.max_timeout_ms,
		 size_text(cfg->max_output, output, sizeof(output)),
		 size_text(cfg->max_buffers, buffers, sizeof(buffers)), cfg->read_timeout_ms,
		 cfg->write_timeout_ms);
	if (cfg->allow_uid_count > 0 || cfg->allow_gid_count > 0) {
		char uids[ID_TEXT_MAX], gids[ID_TEXT_MAX];

		ids_text(cfg->allow_uids, cfg->allow_uid_count, uids, sizeof(uids));
		ids_text(cfg->allow_gids, cfg->allow_gid_count, gids, sizeof(gids));
		log_info("main",
			 "only uids %s and members of groups %s may connect "
			 "(--allow-uid, --allow-group)", uids, gids);
	}
}

/*
 * Signals the event loop logs and ignores, and SIGPIPE, ignored from the
 * start: one sent while the daemon starts (its socket may already accept)
 * must not end it.  The loop takes them over once it runs.
 */
static int
ignore_stray_signals(void)
{
	static const int signums[] = { SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	for (size_t i = 0; i < sizeof(signums) / sizeof(signums[0]); i++)
		if (sigaction(signums[i], &sa, NULL) < 0)
			return -errno;
	return 0;
}

int
main(int argc, char **argv)
{
	struct options opt;
	struct sandbox_config sandbox_cfg;
	struct host_watch *hosts;
	struct listen_socket lsock;
	struct server *server;
	struct kvmrun_error err;
	int rc;

	rc = options_parse(argc, argv, &opt);
	if (rc != 0) {
		options_free(&opt);
		if (rc > 0)
			return EXIT_SUCCESS;
		fprintf(stderr, "Try 'kvmrund --help'.\n");
		return EXIT_USAGE;
	}
	log_init(opt.verbosity);
	if ((rc = ignore_stray_signals()) < 0) {
		log_errx("main", "sigaction: %s", strerror(-rc));
		goto out_free_options;
	}
	if (opt.seccomp_selftest != NULL) {
		/* Returns only for a call refused with an errno, or one let by. */
		if (sandbox_selftest(opt.seccomp_selftest, &err) == 0) {
			log_info("main", "%s", err.message);
			/* Under the filter: no exit handlers (LeakSanitizer's trips it). */
			_exit(EXIT_SUCCESS);
		}
		log_errx("main", "%s", err.message);
		goto out_free_options;
	}

	/* Without KVM the daemon serves all the same and says why runs fail. */
	if (host_watch_create(opt.kvm_path, &opt.host, &hosts, &err) < 0) {
		log_errx("main", "%s", err.message);
		goto out_free_options;
	}
	if (listen_open(opt.socket_path, opt.socket_mode, &lsock, &err) < 0) {
		log_errx("main", "%s", err.message);
		goto out_close_host;
	}
	opt.server.socket_path = lsock.path;
	opt.server.watchdog_usec = listen_watchdog_usec();
	if (server_create(&opt.server, hosts, lsock.fd, &server, &err) < 0) {
		log_errx("main", "%s", err.message);
		goto out_close_socket;
	}
	log_settings(&opt, &lsock, host_watch_current(hosts));
	/* Last: everything opened, every worker started, under the filter. */
	sandbox_cfg = (struct sandbox_config){
		.may_open_kvm = host_watch_current(hosts) == NULL,
		.socket_dir_fd = lsock.dir_fd,
	};
	if (opt.seccomp && sandbox_enter(&sandbox_cfg, &err) < 0) {
		log_errx("main", "%s", err.message);
		goto out_destroy_server;
	}
	log_info("main", "%s",
		 opt.seccomp ? "seccomp filter installed"
		 : SANITIZER_RUNTIME
			 ? "seccomp filter NOT installed (sanitizer build: LeakSanitizer's "
			   "exit-time tracer cannot run under it)"
			 : "seccomp filter NOT installed (--no-seccomp)");
	listen_notify_ready();

	server_run(server);

	server_destroy(server);
	listen_close(&lsock);
	host_watch_destroy(hosts);
	options_free(&opt);
	log_info("main", "stopped");
	return EXIT_SUCCESS;

out_destroy_server:
	server_destroy(server);
out_close_socket:
	listen_close(&lsock);
out_close_host:
	host_watch_destroy(hosts);
out_free_options:
	options_free(&opt);
	return EXIT_FAILURE;
}
