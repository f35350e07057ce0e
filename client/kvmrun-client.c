/*
 * kvmrun-client: the command line.  Turns arguments into a request, sends it
 * to kvmrund and maps what comes back to output and an exit status.  The
 * connection and the JSON are libkvmrun's (kvmrun.h), the printing
 * output.c's, ELF images elf.c's.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "code.h"
#include "elf.h"
#include "json-util.h"
#include "kvmrun.h"
#include "output.h"
#include "state-file.h"
#include "vector-run.h"

#define CLIENT_NAME "kvmrun-client"
#define CLIENT_CONNECT_TIMEOUT_MS 5000
/* raw's wait for an answer: the longest guest timeout and 10 s besides. */
#define CLIENT_RAW_TIMEOUT_MS 70000
/* Requests raw has out before it waits for the oldest's answer. */
#define CLIENT_RAW_WINDOW 64u
/* More than any guest memory the daemon allows, so a larger file is a mistake. */
#define CLIENT_FILE_MAX (1u << 30)
/* A --state file: a full xstate and KVM's 256 CPUID entries take ~40 KiB. */
#define CLIENT_STATE_FILE_MAX (1u << 20)
#define CLIENT_READ_CHUNK 65536u
/* --retry's most tries, and the waits between them: doubling, up to the most. */
#define CLIENT_RETRY_MAX 100u
#define CLIENT_RETRY_FIRST_MS 100u
#define CLIENT_RETRY_LONGEST_MS 5000u

#define CLIENT_NELEM(array) (sizeof(array) / sizeof((array)[0]))

enum client_exit {
	CLIENT_EXIT_HALTED = 0,
	CLIENT_EXIT_ENDED = 1,
	CLIENT_EXIT_USAGE = 2,
	CLIENT_EXIT_DAEMON = 3,
	CLIENT_EXIT_UNREACHABLE = 4,
	CLIENT_EXIT_UNAVAILABLE = 5, /* the daemon has no usable KVM */
	CLIENT_EXIT_BUSY = 6,	     /* the daemon had no room: retry later */
};

enum client_command {
	CLIENT_RUN,
	CLIENT_PING,
	CLIENT_STATS,
	CLIENT_RAW,
};

static const char *const client_command_names[] = {
	[CLIENT_RUN] = "run",
	[CLIENT_PING] = "ping",
	[CLIENT_STATS] = "stats",
	[CLIENT_RAW] = "raw",
};
#define CLIENT_COMMAND_COUNT (int)CLIENT_NELEM(client_command_names)

struct client_region {
	uint64_t address;
	const char *path;
};

/* A --dump-file: the spec's dump DUMP goes to PATH, not to the summary. */
struct client_dump_file {
	size_t dump;
	const char *path;
};

struct client {
	enum client_command command;
	const char *socket_path;	/* NULL: libkvmrun's default */
	const char *tls_ca;		/* --ca, --cert, --key; NULL: $KVMRUN_CA... */
	const char *tls_cert;
	const char *tls_key;
	int connect_timeout_ms;
	int response_timeout_ms;	/* -1: libkvmrun's default for the request */
	bool json;
	bool quiet;
	bool verbose;
	bool raw_console;		/* console bytes as they are, even on a terminal */
	enum output_color color;
	bool mode_set;
	bool segs_set; /* --seg given */
	bool load_address_set;
	const char *run_option;		/* the first run-only option given */
	const char *image_path;
	const char *hex;		/* --hex: the image's bytes instead of a file */
	const char *asm_source;		/* --asm: its source instead */
	const char *state_path;		/* --state: read once the mode is known */
	bool summary_stderr;		/* --summary stderr */
	unsigned int retries;		/* --retry: busy answers tried again */
	struct client_dump_file *dump_files; /* --dump-file */
	size_t dump_file_count;
	struct kvmrun_spec spec;
	struct client_region *regions;	/* --region, loaded after the image */
	size_t region_count;
};

/* Bytes of standard input not yet sent by raw. */
struct client_buf {
	char *data;
	size_t start;
	size_t end;
	size_t size;
};

enum {
	OPT_MODE = 256,
	OPT_RING,
	OPT_LOAD_ADDRESS,
	OPT_MEMORY,
	OPT_REG,
	OPT_SEG,
	OPT_REGION,
	OPT_TIMEOUT_MS,
	OPT_TIMEOUT,
	OPT_LOG_PORT,
	OPT_DUMP,
	OPT_DUMP_FILE,
	OPT_HEX,
	OPT_ASM,
	OPT_SUMMARY,
	OPT_RAW_CONSOLE,
	OPT_STATE,
	OPT_RETURN,
	OPT_MAX_INSTRUCTIONS,
	OPT_TRACE,
	OPT_CHANGES,
	OPT_CONNECT_TIMEOUT,
	OPT_RESPONSE_TIMEOUT,
	OPT_RETRY,
	OPT_COLOR,
	OPT_CA,
	OPT_CERT,
	OPT_KEY,
};

/* --mode to --quiet shape a run: client_parse_run_option takes them, run only. */
static const struct option client_options[] = {
	{"mode", required_argument, NULL, OPT_MODE},
	{"ring", required_argument, NULL, OPT_RING},
	{"load-address", required_argument, NULL, OPT_LOAD_ADDRESS},
	{"memory", required_argument, NULL, OPT_MEMORY},
	{"reg", required_argument, NULL, OPT_REG},
	{"seg", required_argument, NULL, OPT_SEG},
	{"region", required_argument, NULL, OPT_REGION},
	{"timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"log-port", required_argument, NULL, OPT_LOG_PORT},
	{"dump", required_argument, NULL, OPT_DUMP},
	{"dump-file", required_argument, NULL, OPT_DUMP_FILE},
	{"hex", required_argument, NULL, OPT_HEX},
	{"asm", required_argument, NULL, OPT_ASM},
	{"summary", required_argument, NULL, OPT_SUMMARY},
	{"raw-console", no_argument, NULL, OPT_RAW_CONSOLE},
	{"state", required_argument, NULL, OPT_STATE},
	{"return", required_argument, NULL, OPT_RETURN},
	{"max-instructions", required_argument, NULL, OPT_MAX_INSTRUCTIONS},
	{"trace", no_argument, NULL, OPT_TRACE},
	{"changes", no_argument, NULL, OPT_CHANGES},
	{"quiet", no_argument, NULL, 'q'},
	{"socket", required_argument, NULL, 's'},
	{"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
	{"response-timeout", required_argument, NULL, OPT_RESPONSE_TIMEOUT},
	{"retry", required_argument, NULL, OPT_RETRY},
	{"ca", required_argument, NULL, OPT_CA},
	{"cert", required_argument, NULL, OPT_CERT},
	{"key", required_argument, NULL, OPT_KEY},
	{"json", no_argument, NULL, 'j'},
	{"color", required_argument, NULL, OPT_COLOR},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

static int client_bad(int opt, const char *value, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static const char client_usage_text[] =
	"Usage: " CLIENT_NAME " [run] [OPTION]... IMAGE\n"
	"       " CLIENT_NAME " [run] [OPTION]... --hex BYTES | --asm SOURCE\n"
	"       " CLIENT_NAME " ping|stats|raw [OPTION]...\n"
	"       " CLIENT_NAME " capture [OPTION]... HEX...\n"
	"       " CLIENT_NAME " replay [OPTION]... FILE...\n"
	"\n"
	"Runs x86 machine code in a fresh KVM virtual machine through kvmrund.\n"
	"\n"
	"Commands:\n"
	"  run    run IMAGE, a flat binary or an ELF executable (- reads stdin);\n"
	"         the default when the first operand is not a command\n"
	"  ping   check that the daemon answers and show its version\n"
	"  stats  show the daemon's counters\n"
	"  raw    send the request lines of stdin, pipelined; print the answers\n"
	"  capture  capture single-instruction test vectors from this CPU\n"
	"           (first argument only; capture --help lists its options)\n"
	"  replay   run test vectors and say which agree (replay --help)\n"
	"\n"
	"Run options:\n"
	"  --mode MODE           real (default; long for a 64-bit ELF IMAGE),\n"
	"                        protected, paged or long\n"
	"  --ring RING           0 (default) or 3, the privilege level to start in\n"
	"  --load-address ADDR   where a flat IMAGE goes (default 0)\n"
	"  --memory SIZE         guest memory, a multiple of 4096, with K, M or G\n"
	"                        (default 2M)\n"
	"  --reg NAME=VALUE      set rax..r15, rip or rflags; repeatable\n"
	"  --seg NAME=SELECTOR   set cs, ds, es, ss, fs or gs (real mode);\n"
	"                        repeatable\n"
	"  --region ADDR:FILE    also load FILE's bytes at ADDR; repeatable\n"
	"  --timeout-ms N        stop the guest after N ms (default 1000)\n"
	"  --timeout DURATION    the same as 500ms, 1.5s or 1m (a bare number is seconds)\n"
	"  --log-port PORT       record the guest's writes to PORT; repeatable\n"
	"  --dump ADDR:LEN       show LEN bytes of memory at ADDR after the run;\n"
	"                        repeatable\n"
	"  --dump-file ADDR:LEN:FILE\n"
	"                        write them to FILE instead, as binary; repeatable\n"
	"  --state FILE          start with the CPU state FILE holds: a JSON object\n"
	"                        of the request's xstate, msrs, cpuid and (real\n"
	"                        mode) segments, as in the protocol\n"
	"  --return PART,...     show the CPU state after the run: xstate, msrs,\n"
	"                        descriptors, cpuid\n"
	"  --max-instructions N  stop the guest after N instructions (exit\n"
	"                        step_limit, status 0)\n"
	"  --trace               with --max-instructions: show where each\n"
	"                        instruction began (rip; cs:ip in real mode)\n"
	"  --changes             show the memory whose bytes the run changed\n"
	"  --hex BYTES           run these bytes instead of an IMAGE, as in\n"
	"                        --hex 'b0 41 e6 e9 f4'\n"
	"  --asm SOURCE          run SOURCE assembled by GNU as (binutils): Intel\n"
	"                        syntax, ';' between instructions, 16-, 32- or\n"
	"                        64-bit code as --mode says, linked at\n"
	"                        --load-address\n"
	"  --summary WHERE       stdout (default) or stderr: where the exit, the\n"
	"                        registers and the dumps go (the console stays\n"
	"                        on stdout; sharing it, they come after a line\n"
	"                        \"-- end of console --\")\n"
	"  --raw-console         send the console's bytes to a terminal as they are\n"
	"                        (there control bytes show as \\x1b by default)\n"
	"  -q, --quiet           print the guest's console output, nothing else\n"
	"                        but, for a guest that did not halt, its exit\n"
	"                        on stderr\n"
	"\n"
	"Other options:\n"
	"  -s, --socket PATH     the daemon's socket (default $KVMRUN_SOCKET, or\n"
	"                        " KVMRUN_DEFAULT_SOCKET "), or tls://HOST:PORT for\n"
	"                        a front terminating TLS (HAProxy)\n"
	"  --ca FILE             for tls://: the CAs (PEM) the server's certificate\n"
	"                        must chain to (default $KVMRUN_CA, or the system's)\n"
	"  --cert FILE           for tls://: this client's certificate (PEM; default\n"
	"                        $KVMRUN_CERT)\n"
	"  --key FILE            for tls://: its private key (PEM; default $KVMRUN_KEY)\n"
	"  --connect-timeout DURATION\n"
	"                        how long a busy daemon may take to accept\n"
	"                        (default 5s)\n"
	"  --response-timeout DURATION\n"
	"                        how long the answer may take (default: the run's\n"
	"                        timeout plus 10s; 10s for ping and stats; for\n"
	"                        raw, 70s without any answer)\n"
	"  --retry N             try again up to N times while the daemon answers\n"
	"                        busy, waiting 0.1s, 0.2s, 0.4s... (at most 5s)\n"
	"                        between tries (default 0)\n"
	"  -j, --json            print the daemon's response line as it is\n"
	"  --color WHEN          auto (default: on a terminal, unless NO_COLOR is\n"
	"                        set or TERM=dumb), always or never\n"
	"  -v, --verbose         say what was chosen for you (the mode of a 64-bit\n"
	"                        ELF IMAGE), show the request sent and the tries\n"
	"                        --retry makes\n"
	"  -h, --help            show this help and exit\n"
	"  -V, --version         show the version and exit\n"
	"\n"
	"Numbers are decimal, or hex with 0x.  An ELF IMAGE is loaded by its\n"
	"PT_LOAD segments and started at its entry point; a 64-bit one runs in\n"
	"long mode unless --mode says otherwise.\n"
	"\n"
	"Exit status:\n"
	"  0  the guest halted or ran its --max-instructions; for ping, stats and\n"
	"     raw: every answer was ok\n"
	"  1  the guest ended another way (exception, io, mmio, timeout...), an\n"
	"     exit reason newer than the client included\n"
	"  2  usage error, unreadable file, unusable ELF image, or output that\n"
	"     could not be written\n"
	"  3  the daemon answered with an error (for raw: any error answer)\n"
	"  4  the daemon could not be reached, or its answer was lost or unreadable\n"
	"  5  the daemon has no usable /dev/kvm (error unavailable): this host\n"
	"     cannot run guests until KVM works there\n"
	"  6  the daemon had no room (error busy): try again later, or with --retry\n";

/* The tables of names arguments are looked up in. */
enum client_names {
	CLIENT_NAMES_COMMAND,
	CLIENT_NAMES_MODE,
	CLIENT_NAMES_REG,
	CLIENT_NAMES_SEG,
	CLIENT_NAMES_COLOR,
};

static const char *
client_name(enum client_names names, int i)
{
	switch (names) {
	case CLIENT_NAMES_COMMAND:
		return i < CLIENT_COMMAND_COUNT ? client_command_names[i] : NULL;
	case CLIENT_NAMES_MODE:
		return kvmrun_mode_name((enum kvmrun_mode)i);
	case CLIENT_NAMES_REG:
		return kvmrun_reg_name((enum kvmrun_reg)i);
	case CLIENT_NAMES_SEG:
		return kvmrun_seg_name((enum kvmrun_seg)i);
	case CLIENT_NAMES_COLOR:
		return output_color_name((enum output_color)i);
	}
	return NULL;
}

/* The index of NAME among the first COUNT of NAMES, or -1. */
static int
client_lookup(enum client_names names, int count, const char *name)
{
	const char *known;

	for (int i = 0; i < count; i++) {
		known = client_name(names, i);
		if (known != NULL && strcmp(known, name) == 0)
			return i;
	}
	return -1;
}

static const char *
client_option_name(int opt)
{
	for (const struct option *o = client_options; o->name != NULL; o++)
		if (o->val == opt)
			return o->name;
	return "?";
}

/* Reports a bad option value as "--OPTION VALUE: why"; returns -1. */
static int
client_bad(int opt, const char *value, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, CLIENT_NAME ": --%s %s: ", client_option_name(opt), value);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

/*
 * Reads a decimal or 0x-prefixed hex number at the start of TEXT, *END
 * after it: 0, -EINVAL with no digits, -ERANGE past 64 bits.  No sign, no
 * space and no octal, so "010" is ten.
 */
static int
client_parse_number(const char *text, uint64_t *value, const char **end)
{
	unsigned int base = 10, digit;
	int hex;
	const char *p = text, *digits;
	uint64_t v = 0;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (digits = p;; p++) {
		hex = jutil_hex_value(*p);
		if (hex < 0 || (unsigned int)hex >= base)
			break;
		digit = (unsigned int)hex;
		if (v > (UINT64_MAX - digit) / base)
			return -ERANGE;
		v = v * base + digit;
	}
	if (p == digits)
		return -EINVAL;
	*value = v;
	*end = p;
	return 0;
}

/*
 * TEXT, a part of ARG (the option's whole value, which messages show), as a
 * whole number no larger than MAX, or a message about OPT.
 */
static int
client_parse_u64(int opt, const char *arg, const char *text, uint64_t max,
		 uint64_t *value)
{
	const char *end;
	int r;

	r = client_parse_number(text, value, &end);
	if (r == -EINVAL || (r == 0 && *end != '\0'))
		return client_bad(opt, arg, "not a number (decimal, or hex with 0x)");
	if (r == -ERANGE || *value > max)
		return client_bad(opt, arg,
				  "out of range (0 to %" PRIu64 ", or 0x%" PRIx64 ")",
				  max, max);
	return 0;
}

/* A byte count with an optional K, M or G (powers of 1024); like client_parse_u64. */
static int
client_parse_size(int opt, const char *arg, const char *text, uint64_t *value)
{
	const char *end;
	unsigned int shift = 0;
	int r;

	r = client_parse_number(text, value, &end);
	if (r == -ERANGE)
		return client_bad(opt, arg,
				  "out of range (at most 0x%" PRIx64 " bytes)",
				  UINT64_MAX);
	if (r < 0)
		return client_bad(opt, arg, "not a size (a number, then K, M or G)");
	if (end[0] != '\0' && end[1] == '\0') {
		switch (*end) {
		case 'K':
		case 'k':
			shift = 10;
			break;
		case 'M':
		case 'm':
			shift = 20;
			break;
		case 'G':
		case 'g':
			shift = 30;
			break;
		}
	}
	if (*end != '\0' && shift == 0)
		return client_bad(opt, arg, "not a size (a number, then K, M or G)");
	if (*value > UINT64_MAX >> shift)
		return client_bad(opt, arg,
				  "out of range (at most 0x%" PRIx64 " bytes)",
				  UINT64_MAX);
	*value <<= shift;
	return 0;
}

/*
 * A duration in milliseconds: a number, with a fraction if need be, and ms,
 * s or m after it (s if none): 500ms, 1.5s, 2, 1m.
 */
static int
client_parse_duration(int opt, const char *text, int *ms)
{
	uint64_t value, scale, fraction = 0, fraction_scale = 1;
	const char *end;

	switch (client_parse_number(text, &value, &end)) {
	case -ERANGE:
		return client_bad(opt, text, "too long (at most %d ms)", INT_MAX);
	case -EINVAL:
		return client_bad(opt, text, "not a duration (500ms, 1.5s, 2s, 1m...)");
	}
	/* A fraction after decimal digits only; digits past 8 add nothing. */
	if (*end == '.' && strncasecmp(text, "0x", 2) != 0) {
		for (end++; *end >= '0' && *end <= '9'; end++) {
			if (fraction_scale < 100000000) {
				fraction = fraction * 10 + (uint64_t)(*end - '0');
				fraction_scale *= 10;
			}
		}
	}
	if (strcmp(end, "ms") == 0)
		scale = 1;
	else if (strcmp(end, "s") == 0 || *end == '\0')
		scale = 1000;
	else if (strcmp(end, "m") == 0)
		scale = 60000;
	else
		return client_bad(opt, text, "not a duration (500ms, 1.5s, 2s, 1m...)");
	if (value > INT_MAX / scale ||
	    value * scale + fraction * scale / fraction_scale > INT_MAX)
		return client_bad(opt, text, "too long (at most %d ms)", INT_MAX);
	*ms = (int)(value * scale + fraction * scale / fraction_scale);
	return 0;
}

/*
 * Splits a copy of TEXT at its first SEP: *LEFT is the copy to free, *RIGHT
 * points into it.  -1 with a message when there is no SEP or a half is empty.
 */
static int
client_split(int opt, const char *text, char sep, const char *form, char **left,
	     char **right)
{
	char *copy = strdup(text), *at;

	if (copy == NULL) {
		client_error("out of memory");
		return -1;
	}
	at = strchr(copy, sep);
	if (at == NULL || at == copy || at[1] == '\0') {
		free(copy);
		return client_bad(opt, text, "expected %s", form);
	}
	*at = '\0';
	*left = copy;
	*right = at + 1;
	return 0;
}

/* --reg NAME=VALUE and --seg NAME=SELECTOR. */
static int
client_parse_register(struct client *c, int opt, const char *text)
{
	bool is_seg = opt == OPT_SEG;
	char *name, *value_text;
	uint64_t value;
	int i, r = -1;

	if (client_split(opt, text, '=', is_seg ? "NAME=SELECTOR" : "NAME=VALUE", &name,
			 &value_text) < 0)
		return -1;
	if (is_seg) {
		i = client_lookup(CLIENT_NAMES_SEG, KVMRUN_SEG_REQUEST_COUNT, name);
		if (i < 0) {
			client_bad(opt, text, "not cs, ds, es, ss, fs or gs");
			goto out;
		}
		if (client_parse_u64(opt, text, value_text, UINT16_MAX, &value) < 0)
			goto out;
		c->spec.segments[i] = (uint16_t)value;
		c->segs_set = true;
	} else {
		i = client_lookup(CLIENT_NAMES_REG, KVMRUN_REG_COUNT, name);
		if (i < 0) {
			client_bad(opt, text, "not rax..r15, rip or rflags");
			goto out;
		}
		if (client_parse_u64(opt, text, value_text, UINT64_MAX, &value) < 0)
			goto out;
		c->spec.regs[i] = value;
		c->spec.regs_set |= 1u << i;
	}
	r = 0;
out:
	free(name);
	return r;
}

/* --region ADDR:FILE, whose file is read once the image is loaded. */
static int
client_parse_region(struct client *c, const char *text)
{
	struct client_region *regions;
	char *address_text, *path;
	uint64_t address;
	int r = -1;

	if (client_split(OPT_REGION, text, ':', "ADDR:FILE", &address_text, &path) < 0)
		return -1;
	if (client_parse_u64(OPT_REGION, text, address_text, UINT64_MAX, &address) < 0)
		goto out;
	regions = reallocarray(c->regions, c->region_count + 1, sizeof(*regions));
	if (regions == NULL) {
		client_error("out of memory");
		goto out;
	}
	c->regions = regions;
	/* The path points into TEXT, an argv string that outlives the run. */
	regions[c->region_count++] = (struct client_region){
		.address = address,
		.path = text + (path - address_text),
	};
	r = 0;
out:
	free(address_text);
	return r;
}

/* --dump ADDR:LEN, and --dump-file ADDR:LEN:FILE (OPT), whose FILE it records. */
static int
client_parse_dump(struct client *c, int opt, const char *text)
{
	struct client_dump_file *files;
	struct kvmrun_range *dumps;
	char *address_text, *length_text, *path = NULL;
	uint64_t address, length;
	int r;

	r = client_split(opt, text, ':', opt == OPT_DUMP ? "ADDR:LEN" : "ADDR:LEN:FILE",
			 &address_text, &length_text);
	if (r < 0)
		return r;
	r = -1;
	if (opt == OPT_DUMP_FILE) {
		path = strchr(length_text, ':');
		if (path == NULL || path == length_text || path[1] == '\0') {
			client_bad(opt, text, "expected ADDR:LEN:FILE");
			goto out;
		}
		*path++ = '\0';
	}
	if (client_parse_u64(opt, text, address_text, UINT64_MAX, &address) < 0 ||
	    client_parse_size(opt, text, length_text, &length) < 0)
		goto out;
	if (length == 0) {
		client_bad(opt, text, "nothing to dump");
		goto out;
	}
	if (path != NULL) {
		files = reallocarray(c->dump_files, c->dump_file_count + 1,
				     sizeof(*files));
		if (files == NULL) {
			client_error("out of memory");
			goto out;
		}
		c->dump_files = files;
		/* The path points into TEXT, an argv string that outlives the run. */
		files[c->dump_file_count++] = (struct client_dump_file){
			.dump = c->spec.dump_count,
			.path = text + (path - address_text),
		};
	}
	dumps = reallocarray(c->spec.dumps, c->spec.dump_count + 1, sizeof(*dumps));
	if (dumps == NULL) {
		client_error("out of memory");
		goto out;
	}
	c->spec.dumps = dumps;
	dumps[c->spec.dump_count++] = (struct kvmrun_range){address, length};
	r = 0;
out:
	free(address_text);
	return r;
}

static int
client_parse_log_port(struct client *c, const char *text)
{
	uint16_t *ports;
	uint64_t port;

	if (client_parse_u64(OPT_LOG_PORT, text, text, UINT16_MAX, &port) < 0)
		return -1;
	ports = c->spec.log_ports;
	ports = reallocarray(ports, c->spec.log_port_count + 1, sizeof(*ports));
	if (ports == NULL) {
		client_error("out of memory");
		return -1;
	}
	c->spec.log_ports = ports;
	ports[c->spec.log_port_count++] = (uint16_t)port;
	return 0;
}

/* --return PART,...: the parts of the CPU state the answer is to carry. */
static int
client_parse_return(struct client *c, const char *arg)
{
	/* In enum kvmrun_state_part's order: part I is bit I. */
	static const char *const parts[] = { "xstate", "msrs", "descriptors", "cpuid" };
	const char *p = arg;
	size_t length;

	for (;;) {
		size_t i = 0;

		length = strcspn(p, ",");
		while (i < CLIENT_NELEM(parts) &&
		       (strlen(parts[i]) != length || strncmp(parts[i], p, length) != 0))
			i++;
		if (i == CLIENT_NELEM(parts))
			return client_bad(OPT_RETURN, arg,
					  "\"%.*s\" is not xstate, msrs, descriptors "
					  "or cpuid",
					  (int)length, p);
		if (c->spec.returns & 1u << i)
			return client_bad(OPT_RETURN, arg, "%s is given twice", parts[i]);
		c->spec.returns |= 1u << i;
		if (p[length] == '\0')
			return 0;
		p += length + 1;
	}
}

/* One option of a run; 0 or -1 with a message. */
static int
client_parse_run_option(struct client *c, int opt, const char *arg)
{
	uint64_t value;
	int ms, i;

	switch (opt) {
	case OPT_MODE:
		i = client_lookup(CLIENT_NAMES_MODE, KVMRUN_MODE_COUNT, arg);
		if (i < 0)
			return client_bad(opt, arg, "not real, protected, paged, long");
		c->spec.mode = (enum kvmrun_mode)i;
		c->mode_set = true;
		return 0;
	case OPT_RING:
		if (strcmp(arg, "0") != 0 && strcmp(arg, "3") != 0)
			return client_bad(opt, arg, "not 0 or 3");
		c->spec.ring = arg[0] == '3' ? 3 : 0;
		return 0;
	case OPT_LOAD_ADDRESS:
		c->load_address_set = true;
		return client_parse_u64(opt, arg, arg, UINT64_MAX, &c->spec.image.address);
	case OPT_MEMORY:
		if (client_parse_size(opt, arg, arg, &value) < 0)
			return -1;
		if (value == 0 || value % KVMRUN_PAGE_SIZE != 0)
			return client_bad(opt, arg, "not a multiple of %u",
					  KVMRUN_PAGE_SIZE);
		c->spec.memory_size = value;
		return 0;
	case OPT_REG:
	case OPT_SEG:
		return client_parse_register(c, opt, arg);
	case OPT_REGION:
		return client_parse_region(c, arg);
	case OPT_TIMEOUT_MS:
		if (client_parse_u64(opt, arg, arg, INT_MAX, &value) < 0)
			return -1;
		if (value == 0)
			return client_bad(opt, arg, "a guest needs at least 1 ms");
		c->spec.timeout_ms = (uint32_t)value;
		return 0;
	case OPT_TIMEOUT:
		if (client_parse_duration(opt, arg, &ms) < 0)
			return -1;
		if (ms == 0)
			return client_bad(opt, arg, "a guest needs at least 1 ms");
		c->spec.timeout_ms = (uint32_t)ms;
		return 0;
	case OPT_LOG_PORT:
		return client_parse_log_port(c, arg);
	case OPT_DUMP:
	case OPT_DUMP_FILE:
		return client_parse_dump(c, opt, arg);
	case OPT_HEX:
	case OPT_ASM:
		if (c->hex != NULL || c->asm_source != NULL)
			return client_bad(opt, arg, "one --hex or --asm is the image");
		*(opt == OPT_HEX ? &c->hex : &c->asm_source) = arg;
		return 0;
	case OPT_SUMMARY:
		if (strcmp(arg, "stdout") != 0 && strcmp(arg, "stderr") != 0)
			return client_bad(opt, arg, "not stdout or stderr");
		c->summary_stderr = arg[3] == 'e';
		return 0;
	case OPT_RAW_CONSOLE:
		c->raw_console = true;
		return 0;
	case OPT_STATE:
		if (c->state_path != NULL)
			return client_bad(opt, arg, "one --state file holds the state");
		c->state_path = arg;
		return 0;
	case OPT_RETURN:
		return client_parse_return(c, arg);
	case OPT_MAX_INSTRUCTIONS:
		if (client_parse_u64(opt, arg, arg, UINT64_MAX, &value) < 0)
			return -1;
		if (value == 0)
			return client_bad(opt, arg, "a run executes at least 1 instruction");
		c->spec.max_instructions = value;
		return 0;
	case OPT_TRACE:
		c->spec.trace = true;
		return 0;
	case OPT_CHANGES:
		c->spec.changes = true;
		return 0;
	case 'q':
		c->quiet = true;
		return 0;
	}
	return -1;
}

/*
 * Says what is wrong with ARG, a long option getopt_long refused: a value
 * given to an option that takes none, an abbreviation of several, or none.
 */
static void
client_bad_long_option(const char *arg)
{
	const char *name = arg + 2;
	size_t length = strcspn(name, "=");
	const struct option *found = NULL;
	int matches = 0, shown = 0;

	for (const struct option *o = client_options; o->name != NULL; o++) {
		if (strncmp(o->name, name, length) != 0)
			continue;
		if (o->name[length] == '\0') {
			found = o;
			matches = 1;
			break;
		}
		found = o;
		matches++;
	}
	if (matches == 1 && name[length] == '=' && found->has_arg == no_argument) {
		client_error("option --%s takes no value, not %s", found->name, arg);
		return;
	}
	if (matches < 2 || length == 0) {
		client_error("unknown option %s", arg);
		return;
	}
	fprintf(stderr, CLIENT_NAME ": option --%.*s is ambiguous: it may be", (int)length,
		name);
	for (const struct option *o = client_options; o->name != NULL; o++)
		if (strncmp(o->name, name, length) == 0)
			fprintf(stderr, "%s --%s", shown++ == 0 ? "" : shown == matches ? " or" : ",",
				o->name);
	fputc('\n', stderr);
}

/* The command, the image and one too many are all the operands there can be. */
struct client_operands {
	const char *list[3];
	size_t count;
};

static int
client_add_operand(struct client_operands *operands, const char *arg)
{
	if (operands->count == CLIENT_NELEM(operands->list)) {
		client_error("unexpected operand %s", arg);
		return -1;
	}
	operands->list[operands->count++] = arg;
	return 0;
}

/* Standard input can be read once: by the image or by one --region. */
static int
client_check_stdin(const struct client *c)
{
	char first[48] = "";

	if (c->image_path != NULL && strcmp(c->image_path, "-") == 0)
		snprintf(first, sizeof(first), "the IMAGE");
	if (c->state_path != NULL && strcmp(c->state_path, "-") == 0) {
		if (first[0] != '\0') {
			client_error("stdin (-) can be read only once, but %s and "
				     "--state - both name it",
				     first);
			return -1;
		}
		snprintf(first, sizeof(first), "--state -");
	}
	for (size_t i = 0; i < c->region_count; i++) {
		if (strcmp(c->regions[i].path, "-") != 0)
			continue;
		if (first[0] != '\0') {
			client_error("stdin (-) can be read only once, but %s and "
				     "--region 0x%" PRIx64 ":- both name it",
				     first, c->regions[i].address);
			return -1;
		}
		snprintf(first, sizeof(first), "--region 0x%" PRIx64 ":-",
			 c->regions[i].address);
	}
	return 0;
}

/*
 * Parses the command line into C.  Returns 0 to go on, 1 when --help or
 * --version has been answered, -1 on a usage error (already reported).
 */
static int
client_parse_args(struct client *c, int argc, char **argv)
{
	struct client_operands operands = {0};
	const char **operand = operands.list;
	int opt, i = -1, *timeout;
	uint64_t value;

	/* '-' hands back operands in place, so options may follow the command. */
	opterr = 0;
	for (;;) {
		opt = getopt_long(argc, argv, "-:s:jqvhV", client_options, NULL);
		if (opt == -1)
			break;
		switch (opt) {
		case 1:
			if (client_add_operand(&operands, optarg) < 0)
				return -1;
			break;
		case 's':
			if (optarg[0] == '\0') {
				client_error("--socket: an empty path names no socket");
				return -1;
			}
			c->socket_path = optarg;
			break;
		case 'v':
			c->verbose = true;
			break;
		case OPT_CA:
			c->tls_ca = optarg;
			break;
		case OPT_CERT:
			c->tls_cert = optarg;
			break;
		case OPT_KEY:
			c->tls_key = optarg;
			break;
		case OPT_COLOR:
			i = client_lookup(CLIENT_NAMES_COLOR, OUTPUT_COLOR_COUNT, optarg);
			if (i < 0)
				return client_bad(opt, optarg, "not auto, always or never");
			c->color = (enum output_color)i;
			i = -1;
			break;
		case OPT_CONNECT_TIMEOUT:
		case OPT_RESPONSE_TIMEOUT:
			timeout = opt == OPT_CONNECT_TIMEOUT ? &c->connect_timeout_ms
							     : &c->response_timeout_ms;
			if (client_parse_duration(opt, optarg, timeout) < 0)
				return -1;
			break;
		case OPT_RETRY:
			if (client_parse_u64(opt, optarg, optarg, CLIENT_RETRY_MAX,
					     &value) < 0)
				return -1;
			c->retries = (unsigned int)value;
			break;
		case 'j':
			c->json = true;
			break;
		case 'h':
			fputs(client_usage_text, stdout);
			return 1;
		case 'V':
			printf(CLIENT_NAME " " PACKAGE_VERSION " (protocol %d)\n",
			       KVMRUN_PROTOCOL_VERSION);
			return 1;
		case ':':
			client_error("option %s needs a value", argv[optind - 1]);
			return -1;
		case '?':
			/* optopt names a bad short option; a long one is in argv. */
			if (optopt != 0 && argv[optind - 1][1] != '-')
				client_error("unknown option -%c", optopt);
			else
				client_bad_long_option(argv[optind - 1]);
			return -1;
		default:
			if (c->run_option == NULL)
				c->run_option = client_option_name(opt);
			if (client_parse_run_option(c, opt, optarg) < 0)
				return -1;
			break;
		}
	}
	/* Whatever follows "--" is operands too. */
	for (; optind < argc; optind++)
		if (client_add_operand(&operands, argv[optind]) < 0)
			return -1;

	if (operands.count > 0)
		i = client_lookup(CLIENT_NAMES_COMMAND, CLIENT_COMMAND_COUNT,
				  operand[0]);
	c->command = i < 0 ? CLIENT_RUN : (enum client_command)i;
	if (i >= 0) {
		operand++;
		operands.count--;
	}
	if (c->command != CLIENT_RUN) {
		if (c->run_option != NULL) {
			client_error("--%s applies to run, not %s", c->run_option,
				     client_command_names[c->command]);
			return -1;
		}
		if (operands.count > 0) {
			client_error("%s takes no operand, not %s",
				     client_command_names[c->command], operand[0]);
			return -1;
		}
		return 0;
	}
	if (c->hex != NULL || c->asm_source != NULL) {
		if (operands.count > 0) {
			client_error("--%s gives the image: no IMAGE %s besides",
				     c->hex != NULL ? "hex" : "asm", operand[0]);
			return -1;
		}
		return client_check_stdin(c);
	}
	if (operands.count == 0) {
		client_error(
			"run needs an IMAGE (a file, or - for stdin), --hex or --asm");
		return -1;
	}
	if (operands.count > 1) {
		client_error("run takes one IMAGE, not %s too", operand[1]);
		return -1;
	}
	c->image_path = operand[0];
	return client_check_stdin(c);
}

/*
 * Reads all of PATH ("-" for standard input): 0, or -errno.  It stops one
 * byte past what can be loaded: FLAT_MAX bytes (-E2BIG), or
 * CLIENT_FILE_MAX for an ELF file (-EFBIG).
 */
static int
client_read_file(const char *path, size_t flat_max, uint8_t **data, size_t *length)
{
	size_t size = 0, used = 0, max = flat_max;
	uint8_t *buf = NULL, *grown;
	int fd = STDIN_FILENO, r = 0;
	ssize_t n;

	if (strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd == -1)
			return -errno;
	}
	for (;;) {
		/* An ELF file holds more than its segments: symbols, debug data. */
		if (max == flat_max && elf_is_elf(buf, used))
			max = CLIENT_FILE_MAX;
		/* One byte past the limit tells a file too large from one at it. */
		if (used > max) {
			r = max == flat_max ? -E2BIG : -EFBIG;
			goto out;
		}
		if (used == size) {
			size = size == 0 ? CLIENT_READ_CHUNK : size * 2;
			if (size > max + 1)
				size = max + 1;
			grown = realloc(buf, size);
			if (grown == NULL) {
				r = -ENOMEM;
				goto out;
			}
			buf = grown;
		}
		n = read(fd, buf + used, size - used);
		if (n == 0)
			break;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = -errno;
			goto out;
		}
		used += (size_t)n;
	}
	*data = buf;
	*length = used;
	buf = NULL;
out:
	free(buf);
	/* Only read from, so a failing close loses nothing. */
	if (fd != STDIN_FILENO)
		(void)close(fd);
	return r;
}

static const char *
client_file_name(const char *path)
{
	return strcmp(path, "-") == 0 ? "stdin" : path;
}

/* The most bytes a flat image or a region can have: all of guest memory. */
static size_t
client_flat_max(const struct client *c)
{
	return c->spec.memory_size < CLIENT_FILE_MAX ? (size_t)c->spec.memory_size
						      : CLIENT_FILE_MAX;
}

/* Why NAME could not be read, -ERRNO from client_read_file. */
static void
client_file_error(const struct client *c, const char *name, int r)
{
	if (r == -E2BIG)
		client_error("%s: larger than guest memory (0x%" PRIx64
			     " bytes): give a larger --memory",
			     name, c->spec.memory_size);
	else if (r == -EFBIG)
		client_error("%s: larger than %u MiB, more than any guest memory", name,
			     CLIENT_FILE_MAX >> 20);
	else
		client_error("%s: %s", name, strerror(-r));
}

/* --hex or --asm as the spec's image; -1 with a message. */
static int
client_load_code(struct client *c)
{
	char why[KVMRUN_ERROR_MESSAGE_MAX];
	uint8_t *data;
	size_t length;
	int r;

	if (c->hex != NULL)
		r = code_from_hex(c->hex, &data, &length, why, sizeof(why));
	else
		r = code_assemble(c->asm_source, c->spec.mode, c->spec.image.address,
				  &data, &length, why, sizeof(why));
	if (r < 0) {
		client_error("--%s: %s", c->hex != NULL ? "hex" : "asm", why);
		return -1;
	}
	if (length > client_flat_max(c)) {
		free(data);
		client_error("--%s: %zu bytes, larger than guest memory (0x%" PRIx64
			     " bytes): give a larger --memory",
			     c->hex != NULL ? "hex" : "asm", length,
			     c->spec.memory_size);
		return -1;
	}
	c->spec.image.data = data;
	c->spec.image.length = length;
	return 0;
}

/* Reads the image file into the spec; -1 with a message. */
static int
client_load_image(struct client *c)
{
	struct kvmrun_error err;
	const char *name;
	uint8_t *data;
	size_t length;
	int r;

	if (c->hex != NULL || c->asm_source != NULL)
		return client_load_code(c);
	name = client_file_name(c->image_path);
	r = client_read_file(c->image_path, client_flat_max(c), &data, &length);
	if (r < 0) {
		client_file_error(c, name, r);
		return -1;
	}
	if (elf_is_elf(data, length)) {
		if (c->load_address_set) {
			free(data);
			client_error("%s: an ELF image has no --load-address", name);
			return -1;
		}
		r = elf_load(name, data, length, &c->spec, &err);
		/* 64-bit code runs in long mode: real mode would run it as 16-bit. */
		if (r == 0 && !c->mode_set && elf_is_64(data, length)) {
			c->spec.mode = KVMRUN_MODE_LONG;
			if (c->verbose)
				client_error("%s: a 64-bit ELF image: --mode long (give "
					     "--mode to choose another)",
					     name);
		}
		free(data);
		if (r < 0) {
			client_error("%s", err.message);
			return -1;
		}
	} else if (length == 0) {
		free(data);
		client_error("%s: empty image", name);
		return -1;
	} else {
		c->spec.image.data = data;
		c->spec.image.length = length;
	}
	return 0;
}

/* Reads the image and the regions into the spec; -1 with a message. */
static int
client_load_files(struct client *c)
{
	struct kvmrun_blob *regions, *blob;
	const char *name;
	uint8_t *data;
	size_t length;
	int r;

	if (client_load_image(c) < 0)
		return -1;
	for (size_t i = 0; i < c->region_count; i++) {
		name = client_file_name(c->regions[i].path);
		r = client_read_file(c->regions[i].path, client_flat_max(c), &data,
				     &length);
		if (r < 0) {
			client_file_error(c, name, r);
			return -1;
		}
		if (length == 0) {
			free(data);
			client_error("%s: empty region", name);
			return -1;
		}
		regions = reallocarray(c->spec.regions, c->spec.region_count + 1,
				       sizeof(*regions));
		if (regions == NULL) {
			free(data);
			client_error("out of memory");
			return -1;
		}
		c->spec.regions = regions;
		blob = &regions[c->spec.region_count++];
		blob->address = c->regions[i].address;
		blob->data = data;
		blob->length = length;
	}
	return 0;
}

/*
 * A connection to the daemon, connected, or NULL after saying why not with
 * a hint where one helps.
 */
static struct kvmrun_conn *
client_connect(const struct client *c)
{
	const struct kvmrun_error *err;
	struct kvmrun_conn *conn;
	const char *hint = "", *path;
	struct stat st;

	conn = kvmrun_open(c->socket_path);
	if (conn == NULL) {
		client_error("out of memory");
		return NULL;
	}
	kvmrun_set_timeouts(conn, c->connect_timeout_ms, c->response_timeout_ms);
	if (kvmrun_set_tls(conn, c->tls_ca != NULL ? c->tls_ca : getenv("KVMRUN_CA"),
			   c->tls_cert != NULL ? c->tls_cert : getenv("KVMRUN_CERT"),
			   c->tls_key != NULL ? c->tls_key : getenv("KVMRUN_KEY")) == 0 &&
	    kvmrun_connect(conn) == 0)
		return conn;
	err = kvmrun_last_error(conn);
	path = kvmrun_socket_path(conn);
	if (err->errnum == ECONNREFUSED && stat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		client_error("cannot connect to %s: not a socket", path);
		kvmrun_close(conn);
		return NULL;
	}
	if (err->errnum == ECONNREFUSED && strncmp(path, "tls://", 6) == 0)
		hint = " (is HAProxy listening there?)";
	else if (err->errnum == ENOENT || err->errnum == ECONNREFUSED)
		hint = " (is kvmrund or kvmrund.socket running?)";
	else if (err->errnum == EACCES)
		hint = " (is this user allowed to use the socket?)";
	client_error("%s%s", err->message, hint);
	kvmrun_close(conn);
	return NULL;
}

/* -v: the line about to be sent, JSON and so free of control bytes. */
static void
client_show_request(const struct kvmrun_conn *conn, enum kvmrun_op op,
		    const struct kvmrun_spec *spec)
{
	size_t length;
	char *line;

	line = kvmrun_request_line(conn, op, spec, &length);
	if (line == NULL) {
		client_error("out of memory");
		return;
	}
	client_error("request: %s", line);
	free(line);
}

static uint64_t
client_now_ns(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail where the client runs at all. */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Sends one request and takes its answer; prints the answer's line as it is
 * under --json, but for a busy answer that will be tried again (not
 * LAST_TRY).  *RTT_NS is the time from the request to its answer.  0 with
 * ANSWER to free, or an exit status after a message.
 */
static int
client_exchange(const struct client *c, enum kvmrun_op op, bool last_try,
		struct kvmrun_answer *answer, uint64_t *rtt_ns)
{
	const struct kvmrun_error *err;
	struct kvmrun_conn *conn;
	int status = CLIENT_EXIT_UNREACHABLE;
	uint64_t start;

	conn = client_connect(c);
	if (conn == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	if (c->verbose)
		client_show_request(conn, op, op == KVMRUN_OP_RUN ? &c->spec : NULL);
	start = client_now_ns();
	if (kvmrun_submit(conn, op, op == KVMRUN_OP_RUN ? &c->spec : NULL) < 0 ||
	    kvmrun_next(conn, answer) < 0) {
		err = kvmrun_last_error(conn);
		client_error("%s", err->message);
		if (err->code == KVMRUN_ERR_NOMEM)
			status = CLIENT_EXIT_USAGE;
		goto out;
	}
	*rtt_ns = client_now_ns() - start;
	if (c->json && (last_try || answer->error.code != KVMRUN_ERR_BUSY))
		printf("%s\n", answer->line);
	/* Unreadable, for another id or of the wrong kind. */
	if (answer->error.code == KVMRUN_ERR_PROTOCOL) {
		client_error("%s", answer->error.message);
		kvmrun_answer_free(answer);
		goto out;
	}
	status = 0;
out:
	kvmrun_close(conn);
	return status;
}

static void
client_sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * client_exchange, tried again after a busy answer up to --retry times, a
 * new connection each time, waiting twice as long before each try.
 */
static int
client_request(const struct client *c, enum kvmrun_op op, struct kvmrun_answer *answer,
	       uint64_t *rtt_ns)
{
	unsigned int wait_ms = CLIENT_RETRY_FIRST_MS;
	int status;

	for (unsigned int try = 0;; try++) {
		status = client_exchange(c, op, try == c->retries, answer, rtt_ns);
		if (status != 0 || answer->error.code != KVMRUN_ERR_BUSY ||
		    try == c->retries)
			return status;
		if (c->verbose)
			client_error("daemon: busy: %s; try %u of %u in %u ms",
				     answer->error.message, try + 2, c->retries + 1,
				     wait_ms);
		kvmrun_answer_free(answer);
		client_sleep_ms(wait_ms);
		wait_ms = wait_ms * 2 < CLIENT_RETRY_LONGEST_MS
				  ? wait_ms * 2
				  : CLIENT_RETRY_LONGEST_MS;
	}
}

/* SIZE as --memory takes it: 256M, 4K, or 0x... bytes. */
static void
client_size_text(uint64_t size, char *text, size_t text_size)
{
	static const char units[] = "GMK";

	for (int i = 0; i < 3; i++) {
		unsigned int shift = 30 - 10 * (unsigned int)i;

		if (size != 0 && size % (UINT64_C(1) << shift) == 0) {
			snprintf(text, text_size, "%" PRIu64 "%c", size >> shift,
				 units[i]);
			return;
		}
	}
	snprintf(text, text_size, "0x%" PRIx64, size);
}

/*
 * A too_large about a field one of the client's options sets ("memory_size:
 * 1073741824 is over the limit of 268435456 (--max-memory)"), said in the
 * option's terms.  False when MESSAGE is no such message.
 */
static bool
client_limit_error(const char *message)
{
	static const struct {
		const char *field;
		const char *option;
		char kind; /* a Size, a duration in Ms or a Count of options */
	} fields[] = {
		{"memory_size", "--memory", 'S'}, {"timeout_ms", "--timeout", 'M'},
		{"regions", "--region", 'C'},	  {"dump", "--dump", 'C'},
		{"log_ports", "--log-port", 'C'},
	};
	char field[32], daemon_option[48], given[32], most[32];
	uint64_t value, limit;

	if (sscanf(message, "%31[a-z_]: %" SCNu64 "%*[^0-9]%" SCNu64 " (%47[^)])",
		   field, &value, &limit, daemon_option) != 4)
		return false;
	for (size_t i = 0; i < CLIENT_NELEM(fields); i++) {
		if (strcmp(field, fields[i].field) != 0)
			continue;
		switch (fields[i].kind) {
		case 'S':
			client_size_text(value, given, sizeof(given));
			client_size_text(limit, most, sizeof(most));
			client_error("%s %s: more than the daemon allows, at most %s "
				     "(its %s)",
				     fields[i].option, given, most, daemon_option);
			break;
		case 'M':
			client_error("%s %" PRIu64
				     "ms: longer than the daemon allows, at most "
				     "%" PRIu64 "ms (its %s)",
				     fields[i].option, value, limit, daemon_option);
			break;
		default:
			client_error("%s given %" PRIu64
				     " times: more than the daemon allows, "
				     "at most %" PRIu64 " (its %s)",
				     fields[i].option, value, limit, daemon_option);
			break;
		}
		return true;
	}
	return false;
}

/* The daemon's error: its code and message, and the exit status they make. */
static int
client_daemon_error(const struct kvmrun_error *err)
{
	if (err->code == KVMRUN_ERR_TOO_LARGE && client_limit_error(err->message))
		return CLIENT_EXIT_DAEMON;
	/* A newer daemon's code leads its message ("new_code: message"). */
	if (err->code == KVMRUN_ERR_UNKNOWN)
		client_error("daemon: %s", err->message);
	else
		client_error("daemon: %s: %s", kvmrun_strerror(err->code), err->message);
	/* Scripts tell "this host cannot run guests" and "retry" from a bad request. */
	switch (err->code) {
	case KVMRUN_ERR_UNAVAILABLE:
		return CLIENT_EXIT_UNAVAILABLE;
	case KVMRUN_ERR_BUSY:
		return CLIENT_EXIT_BUSY;
	default:
		return CLIENT_EXIT_DAEMON;
	}
}

/*
 * Writes each --dump-file's dump to its file and takes it out of RESULT,
 * so that the summary shows the others.  0, or -1 after a message.
 */
static int
client_write_dumps(const struct client *c, struct kvmrun_result *result)
{
	const struct kvmrun_blob *dump;
	size_t kept = 0, done;
	ssize_t n;
	int fd, r = 0;

	for (size_t i = 0; i < c->dump_file_count && r == 0; i++) {
		if (c->dump_files[i].dump >= result->dump_count) {
			client_error("%s: the daemon sent no dump for it",
				     c->dump_files[i].path);
			return -1;
		}
		dump = &result->dumps[c->dump_files[i].dump];
		fd = open(c->dump_files[i].path,
			  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		if (fd == -1) {
			client_error("%s: %s", c->dump_files[i].path, strerror(errno));
			return -1;
		}
		for (done = 0; done < dump->length; done += (size_t)n) {
			n = write(fd, dump->data + done, dump->length - done);
			if (n == -1 && errno == EINTR) {
				n = 0;
				continue;
			}
			if (n == -1)
				break;
		}
		if (done < dump->length || close(fd) == -1) {
			client_error("%s: %s", c->dump_files[i].path, strerror(errno));
			if (done < dump->length)
				(void)close(fd);
			r = -1;
		}
	}
	for (size_t i = 0; i < result->dump_count; i++) {
		bool to_file = false;

		for (size_t k = 0; k < c->dump_file_count; k++)
			to_file = to_file || c->dump_files[k].dump == i;
		if (to_file)
			free(result->dumps[i].data);
		else
			result->dumps[kept++] = result->dumps[i];
	}
	result->dump_count = kept;
	return r;
}

/*
 * --state FILE into the spec, read once the mode is known (a descriptor
 * cache is real mode's); -1 with a message naming the file.
 */
static int
client_load_state(struct client *c)
{
	struct kvmrun_error err;
	const char *name;
	uint8_t *data;
	size_t length;
	int r;

	if (c->state_path == NULL)
		return 0;
	name = client_file_name(c->state_path);
	r = client_read_file(c->state_path, CLIENT_STATE_FILE_MAX, &data, &length);
	if (r == -E2BIG || r == -EFBIG) {
		client_error("--state %s: larger than %u KiB, more than any state",
			     name, CLIENT_STATE_FILE_MAX >> 10);
		return -1;
	}
	if (r < 0) {
		client_error("--state %s: %s", name, strerror(-r));
		return -1;
	}
	r = state_file_parse((const char *)data, length, &c->spec, &err);
	free(data);
	if (r < 0) {
		client_error("--state %s: %s", name, err.message);
		return -1;
	}
	if (r == 1 && c->segs_set) {
		client_error("--state %s: its segments and --seg both set the segments: "
			     "give them in one place",
			     name);
		return -1;
	}
	return 0;
}

/*
 * What the mode, once known (--mode, the ELF class or real mode), rules
 * out, and options that need others: said here in the client's terms, not
 * the daemon's.
 */
static int
client_check_mode(const struct client *c)
{
	const char *mode = kvmrun_mode_name(c->spec.mode);

	if (c->spec.ring == 3 && c->spec.mode == KVMRUN_MODE_REAL) {
		client_error("--ring 3 needs --mode protected, paged or long: %s "
			     "mode has no ring 3", c->mode_set ? "real" : "the default, real,");
		return -1;
	}
	if (c->segs_set && c->spec.mode != KVMRUN_MODE_REAL) {
		client_error("--seg sets real-mode segment selectors; in %s mode the "
			     "engine sets the segments (leave --seg out)", mode);
		return -1;
	}
	if (c->spec.trace && c->spec.max_instructions == 0) {
		client_error("--trace needs --max-instructions: a run is traced by "
			     "stepping it");
		return -1;
	}
	return 0;
}

static int
client_run(struct client *c, const struct output *out)
{
	struct kvmrun_answer answer;
	uint64_t rtt_ns;
	int status;

	if (client_load_files(c) < 0 || client_load_state(c) < 0 ||
	    client_check_mode(c) < 0)
		return CLIENT_EXIT_USAGE;
	status = client_request(c, KVMRUN_OP_RUN, &answer, &rtt_ns);
	if (status != 0)
		return status;
	if (answer.error.code != KVMRUN_OK) {
		status = client_daemon_error(&answer.error);
	} else if (client_write_dumps(c, &answer.result) < 0) {
		status = CLIENT_EXIT_USAGE;
	} else {
		if (!c->json)
			output_result(out, &answer.result);
		/* A run stepped to its --max-instructions ended as asked. */
		status = answer.result.exit.reason == KVMRUN_EXIT_HLT ||
					 answer.result.exit.reason == KVMRUN_EXIT_STEP_LIMIT
				 ? CLIENT_EXIT_HALTED
				 : CLIENT_EXIT_ENDED;
	}
	kvmrun_answer_free(&answer);
	return status;
}

/*
 * The daemon's steps_ns, from the stats answer's line: libkvmrun's struct
 * kvmrun_stats has no room for them, its size being the library's ABI.
 */
static void
client_stats_steps(const struct kvmrun_answer *answer, struct proto_steps *steps)
{
	struct proto_response resp;
	struct kvmrun_error err;

	memset(steps, 0, sizeof(*steps));
	if (answer->line == NULL)
		return;
	if (proto_response_parse(answer->line, answer->line_length, &resp, &err) == 0)
		*steps = resp.steps;
	proto_response_free(&resp);
}

/* ping and stats: one request without a spec, one answer. */
static int
client_query(struct client *c, const struct output *out)
{
	bool ping = c->command == CLIENT_PING;
	struct kvmrun_answer answer;
	struct proto_steps steps;
	uint64_t rtt_ns;
	int status;

	status = client_request(c, ping ? KVMRUN_OP_PING : KVMRUN_OP_STATS, &answer,
				&rtt_ns);
	if (status != 0)
		return status;
	/* Fields this client reads may mean other things in another version. */
	if (ping && answer.error.code == KVMRUN_OK &&
	    answer.ping.protocol != KVMRUN_PROTOCOL_VERSION)
		client_error("warning: the daemon speaks protocol %d, this client %d: "
			     "its answers may be misread (use a client of its version)",
			     answer.ping.protocol, KVMRUN_PROTOCOL_VERSION);
	if (answer.error.code != KVMRUN_OK)
		status = client_daemon_error(&answer.error);
	else if (ping && !c->json)
		output_ping(out, &answer.ping, rtt_ns);
	else if (!c->json) {
		client_stats_steps(&answer, &steps);
		output_stats(out, &answer.stats, &steps);
	}
	kvmrun_answer_free(&answer);
	return status;
}

/* Makes room for LENGTH more bytes at the end of BUF. */
static int
client_buf_reserve(struct client_buf *buf, size_t length)
{
	size_t size;
	char *data;

	if (buf->start > 0) {
		memmove(buf->data, buf->data + buf->start, buf->end - buf->start);
		buf->end -= buf->start;
		buf->start = 0;
	}
	if (buf->size - buf->end >= length)
		return 0;
	size = buf->size == 0 ? CLIENT_READ_CHUNK : buf->size;
	while (size - buf->end < length) {
		if (size > SIZE_MAX / 2)
			return -ENOMEM;
		size *= 2;
	}
	data = realloc(buf->data, size);
	if (data == NULL)
		return -ENOMEM;
	buf->data = data;
	buf->size = size;
	return 0;
}

/* A blank line is no request: raw skips it rather than draw an error answer. */
static bool
client_is_blank(const char *line, size_t length)
{
	for (size_t i = 0; i < length; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			return false;
	return true;
}

/* raw's state: what came back so far. */
struct client_raw {
	struct kvmrun_conn *conn;
	bool failed;	/* an error answer */
	bool garbled;	/* a line that is no answer, or none for a request */
};

/*
 * Takes the oldest answer (waiting for it) and prints it; an error answer
 * makes raw->failed, a line that is no answer raw->garbled.  0, or -1 when
 * none came, after a message.
 */
static int
client_raw_answer(struct client_raw *raw)
{
	const char *path = kvmrun_socket_path(raw->conn);
	const struct kvmrun_error *err;
	struct kvmrun_answer answer;

	if (kvmrun_next(raw->conn, &answer) < 0) {
		err = kvmrun_last_error(raw->conn);
		if (err->code == KVMRUN_ERR_CLOSED || err->errnum == EPIPE ||
		    err->errnum == ECONNRESET)
			client_error("%s: hung up with %u request%s unanswered", path,
				     kvmrun_pending(raw->conn),
				     kvmrun_pending(raw->conn) == 1 ? "" : "s");
		else
			client_error("%s", err->message);
		return -1;
	}
	fwrite(answer.line, 1, answer.line_length, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	if (answer.error.code == KVMRUN_ERR_PROTOCOL) {
		client_error("%s", answer.error.message);
		raw->garbled = true;
	} else if (answer.error.code != KVMRUN_OK) {
		raw->failed = true;
	}
	kvmrun_answer_free(&answer);
	return 0;
}

/*
 * Sends the complete lines of IN (and the last one at end of file), taking
 * answers whenever the window is full.  0, or -1 after a message.
 */
static int
client_raw_send(struct client_raw *raw, struct client_buf *in, bool eof)
{
	char *line, *nl;
	size_t length;

	while (in->start < in->end) {
		line = in->data + in->start;
		nl = memchr(line, '\n', in->end - in->start);
		if (nl == NULL && !eof)
			break;
		length = nl != NULL ? (size_t)(nl - line) : in->end - in->start;
		in->start += length + (nl != NULL);
		if (client_is_blank(line, length))
			continue;
		while (kvmrun_pending(raw->conn) >= CLIENT_RAW_WINDOW)
			if (client_raw_answer(raw) < 0)
				return -1;
		if (kvmrun_submit_line(raw->conn, line, length) < 0) {
			client_error("%s", kvmrun_last_error(raw->conn)->message);
			return -1;
		}
	}
	return 0;
}

/* Reads a chunk of standard input; 0 at end of file. */
static ssize_t
client_raw_read_stdin(struct client_buf *in)
{
	ssize_t n;

	if (client_buf_reserve(in, CLIENT_READ_CHUNK) < 0)
		return -ENOMEM;
	do
		n = read(STDIN_FILENO, in->data + in->end, in->size - in->end);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -errno;
	in->end += (size_t)n;
	return n;
}

/*
 * raw: request lines from standard input go out as they come, up to a
 * window of them unanswered, and answers are printed as they come: one
 * poll() for standard input and the daemon.  libkvmrun reads answers while
 * a request waits to go out, so neither side's buffers fill up for good.
 */
static int
client_raw(struct client *c)
{
	struct client_raw raw = {0};
	struct client_buf in = {0};
	struct pollfd pfds[2];
	bool stdin_open = true;
	int timeout_ms = c->response_timeout_ms;
	int status = CLIENT_EXIT_UNREACHABLE, n;
	unsigned int pending;
	ssize_t got;

	if (timeout_ms < 0)
		timeout_ms = CLIENT_RAW_TIMEOUT_MS;
	raw.conn = client_connect(c);
	if (raw.conn == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	if (kvmrun_set_window(raw.conn, CLIENT_RAW_WINDOW) < 0) {
		client_error("%s", kvmrun_last_error(raw.conn)->message);
		goto out;
	}
	while (stdin_open || kvmrun_pending(raw.conn) > 0) {
		pending = kvmrun_pending(raw.conn);
		if (pending > 0 && kvmrun_answer_ready(raw.conn)) {
			if (client_raw_answer(&raw) < 0)
				goto out;
			continue;
		}
		pfds[0].fd = stdin_open ? STDIN_FILENO : -1;
		pfds[0].events = POLLIN;
		pfds[1].fd = pending > 0 ? kvmrun_fd(raw.conn) : -1;
		pfds[1].events = POLLIN;
		n = poll(pfds, 2, pending > 0 ? timeout_ms : -1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			client_error("poll: %s", strerror(errno));
			goto out;
		}
		if (n == 0) {
			client_error("%s: no answer within %d ms (%u pending)",
				     kvmrun_socket_path(raw.conn), timeout_ms, pending);
			goto out;
		}
		if (pfds[1].revents != 0 && client_raw_answer(&raw) < 0)
			goto out;
		if (pfds[0].fd != -1 && pfds[0].revents != 0) {
			got = client_raw_read_stdin(&in);
			if (got < 0) {
				client_error("stdin: %s", strerror((int)-got));
				goto out;
			}
			stdin_open = got > 0;
			if (client_raw_send(&raw, &in, !stdin_open) < 0)
				goto out;
		}
	}
	status = raw.garbled  ? CLIENT_EXIT_UNREACHABLE
		 : raw.failed ? CLIENT_EXIT_DAEMON
			      : 0;
out:
	kvmrun_close(raw.conn);
	free(in.data);
	return status;
}

int
main(int argc, char **argv)
{
	struct client c = {
		.connect_timeout_ms = CLIENT_CONNECT_TIMEOUT_MS,
		.response_timeout_ms = -1,
	};
	struct output out;
	int status, r;

	/* capture and replay have options of their own (vector-run.h). */
	if (argc > 1 && strcmp(argv[1], "capture") == 0)
		return vector_capture_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "replay") == 0)
		return vector_replay_main(argc - 1, argv + 1);
	kvmrun_spec_init(&c.spec);
	r = client_parse_args(&c, argc, argv);
	if (r != 0) {
		if (r < 0)
			fputs("Try '" CLIENT_NAME " --help'.\n", stderr);
		status = r < 0 ? CLIENT_EXIT_USAGE : 0;
		goto out;
	}
	output_init(&out, stdout, c.summary_stderr ? stderr : stdout, c.quiet, c.color,
		    c.raw_console);

	if (c.command == CLIENT_RUN)
		status = client_run(&c, &out);
	else if (c.command == CLIENT_RAW)
		status = client_raw(&c);
	else
		status = client_query(&c, &out);
out:
	/* Output that did not all get out must not pass for a success. */
	if (fflush(stdout) == EOF) {
		client_error("stdout: %s", strerror(errno));
		status = CLIENT_EXIT_USAGE;
	} else if (ferror(stdout)) {
		client_error("stdout: write error");
		status = CLIENT_EXIT_USAGE;
	}
	kvmrun_spec_free(&c.spec);
	free(c.regions);
	free(c.dump_files);
	return status;
}
