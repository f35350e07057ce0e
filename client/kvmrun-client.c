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
#include <unistd.h>

#include "elf.h"
#include "kvmrun.h"
#include "output.h"

#define CLIENT_NAME "kvmrun-client"
#define CLIENT_CONNECT_TIMEOUT_MS 5000
/* raw's wait for an answer: the longest guest timeout and 10 s besides. */
#define CLIENT_RAW_TIMEOUT_MS 70000
/* Requests raw has out before it waits for the oldest's answer. */
#define CLIENT_RAW_WINDOW 64u
/* More than any guest memory the daemon allows, so a larger file is a mistake. */
#define CLIENT_FILE_MAX (1u << 30)
#define CLIENT_READ_CHUNK 65536u

#define CLIENT_NELEM(array) (sizeof(array) / sizeof((array)[0]))

enum client_exit {
	CLIENT_EXIT_HALTED = 0,
	CLIENT_EXIT_ENDED = 1,
	CLIENT_EXIT_USAGE = 2,
	CLIENT_EXIT_DAEMON = 3,
	CLIENT_EXIT_UNREACHABLE = 4,
	CLIENT_EXIT_UNAVAILABLE = 5, /* the daemon has no usable KVM */
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

struct client {
	enum client_command command;
	const char *socket_path;	/* NULL: libkvmrun's default */
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
	OPT_RAW_CONSOLE,
	OPT_CONNECT_TIMEOUT,
	OPT_RESPONSE_TIMEOUT,
	OPT_COLOR,
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
	{"raw-console", no_argument, NULL, OPT_RAW_CONSOLE},
	{"quiet", no_argument, NULL, 'q'},
	{"socket", required_argument, NULL, 's'},
	{"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
	{"response-timeout", required_argument, NULL, OPT_RESPONSE_TIMEOUT},
	{"json", no_argument, NULL, 'j'},
	{"color", required_argument, NULL, OPT_COLOR},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

static void client_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int client_bad(int opt, const char *value, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
client_error(const char *fmt, ...)
{
	va_list ap;

	fputs(CLIENT_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const char client_usage_text[] =
	"Usage: " CLIENT_NAME " [run] [OPTION]... IMAGE\n"
	"       " CLIENT_NAME " ping|stats|raw [OPTION]...\n"
	"\n"
	"Runs x86 machine code in a fresh KVM virtual machine through kvmrund.\n"
	"\n"
	"Commands:\n"
	"  run    run IMAGE, a flat binary or an ELF executable (- reads stdin);\n"
	"         the default when the first operand is not a command\n"
	"  ping   check that the daemon answers and show its version\n"
	"  stats  show the daemon's counters\n"
	"  raw    send the request lines of stdin, pipelined; print the answers\n"
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
	"  --raw-console         send the console's bytes to a terminal as they are\n"
	"                        (there control bytes show as \\x1b by default)\n"
	"  -q, --quiet           print the guest's console output, nothing else\n"
	"\n"
	"Other options:\n"
	"  -s, --socket PATH     the daemon's socket (default $KVMRUN_SOCKET, or\n"
	"                        " KVMRUN_DEFAULT_SOCKET ")\n"
	"  --connect-timeout DURATION\n"
	"                        how long a busy daemon may take to accept\n"
	"                        (default 5s)\n"
	"  --response-timeout DURATION\n"
	"                        how long the answer may take (default: the run's\n"
	"                        timeout plus 10s; 10s for ping and stats; for\n"
	"                        raw, 70s without any answer)\n"
	"  -j, --json            print the daemon's response line as it is\n"
	"  --color WHEN          auto (default: on a terminal, unless NO_COLOR is\n"
	"                        set or TERM=dumb), always or never\n"
	"  -v, --verbose         say what was chosen for you (the mode of a 64-bit\n"
	"                        ELF IMAGE)\n"
	"  -h, --help            show this help and exit\n"
	"  -V, --version         show the version and exit\n"
	"\n"
	"Numbers are decimal, or hex with 0x.  An ELF IMAGE is loaded by its\n"
	"PT_LOAD segments and started at its entry point; a 64-bit one runs in\n"
	"long mode unless --mode says otherwise.\n"
	"\n"
	"Exit status:\n"
	"  0  the guest halted; for ping, stats and raw: every answer was ok\n"
	"  1  the guest ended another way (exception, io, mmio, timeout...)\n"
	"  2  usage error, unreadable file or unusable ELF image\n"
	"  3  the daemon answered with an error\n"
	"  4  the daemon could not be reached, or its answer was lost or unreadable\n"
	"  5  the daemon has no usable /dev/kvm (error unavailable): this host\n"
	"     cannot run guests until KVM works there\n";

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
	const char *p = text, *digits;
	uint64_t v = 0;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (digits = p;; p++) {
		if (*p >= '0' && *p <= '9')
			digit = (unsigned int)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			digit = (unsigned int)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			digit = (unsigned int)(*p - 'A' + 10);
		else
			break;
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

static int
client_parse_dump(struct client *c, const char *text)
{
	struct kvmrun_range *dumps;
	char *address_text, *length_text;
	uint64_t address, length;
	int r;

	r = client_split(OPT_DUMP, text, ':', "ADDR:LEN", &address_text, &length_text);
	if (r < 0)
		return r;
	r = -1;
	if (client_parse_u64(OPT_DUMP, text, address_text, UINT64_MAX, &address) < 0 ||
	    client_parse_size(OPT_DUMP, text, length_text, &length) < 0)
		goto out;
	if (length == 0) {
		client_bad(OPT_DUMP, text, "nothing to dump");
		goto out;
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
		return client_parse_dump(c, arg);
	case OPT_RAW_CONSOLE:
		c->raw_console = true;
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
	int matches = 0;

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
			fprintf(stderr, "%s --%s", --matches > 0 ? "" : " or", o->name);
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

	if (strcmp(c->image_path, "-") == 0)
		snprintf(first, sizeof(first), "the IMAGE");
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
	if (operands.count == 0) {
		client_error("run needs an IMAGE (a file, or - for stdin)");
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

/* Reads the image and the regions into the spec; -1 with a message. */
static int
client_load_files(struct client *c)
{
	const char *name = client_file_name(c->image_path);
	struct kvmrun_blob *regions, *blob;
	struct kvmrun_error err;
	uint8_t *data;
	size_t length;
	int r;

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
	if (kvmrun_connect(conn) == 0)
		return conn;
	err = kvmrun_last_error(conn);
	path = kvmrun_socket_path(conn);
	if (err->errnum == ECONNREFUSED && stat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		client_error("cannot connect to %s: not a socket", path);
		kvmrun_close(conn);
		return NULL;
	}
	if (err->errnum == ENOENT || err->errnum == ECONNREFUSED)
		hint = " (is kvmrund or kvmrund.socket running?)";
	else if (err->errnum == EACCES)
		hint = " (is this user allowed to use the socket?)";
	client_error("%s%s", err->message, hint);
	kvmrun_close(conn);
	return NULL;
}

/*
 * Sends one request and takes its answer; prints the answer's line as it is
 * under --json.  0 with ANSWER to free, or an exit status after a message.
 */
static int
client_exchange(const struct client *c, enum kvmrun_op op, struct kvmrun_answer *answer)
{
	const struct kvmrun_error *err;
	struct kvmrun_conn *conn;
	int status = CLIENT_EXIT_UNREACHABLE;

	conn = client_connect(c);
	if (conn == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	if (kvmrun_submit(conn, op, op == KVMRUN_OP_RUN ? &c->spec : NULL) < 0 ||
	    kvmrun_next(conn, answer) < 0) {
		err = kvmrun_last_error(conn);
		client_error("%s", err->message);
		if (err->code == KVMRUN_ERR_NOMEM)
			status = CLIENT_EXIT_USAGE;
		goto out;
	}
	if (c->json)
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

/* The daemon's error: its code and message, and the exit status they make. */
static int
client_daemon_error(const struct kvmrun_error *err)
{
	/* A newer daemon's code leads its message ("new_code: message"). */
	if (err->code == KVMRUN_ERR_UNKNOWN)
		client_error("daemon: %s", err->message);
	else
		client_error("daemon: %s: %s", kvmrun_strerror(err->code), err->message);
	/* Scripts can tell "this host cannot run guests" from a bad request. */
	return err->code == KVMRUN_ERR_UNAVAILABLE ? CLIENT_EXIT_UNAVAILABLE
						   : CLIENT_EXIT_DAEMON;
}

/*
 * What the mode, once known (--mode, the ELF class or real mode), rules
 * out: said here in the client's terms, not the daemon's.
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
	return 0;
}

static int
client_run(struct client *c, const struct output *out)
{
	struct kvmrun_answer answer;
	int status;

	if (client_load_files(c) < 0 || client_check_mode(c) < 0)
		return CLIENT_EXIT_USAGE;
	status = client_exchange(c, KVMRUN_OP_RUN, &answer);
	if (status != 0)
		return status;
	if (answer.error.code != KVMRUN_OK) {
		status = client_daemon_error(&answer.error);
	} else {
		if (!c->json)
			output_result(out, &answer.result);
		status = answer.result.exit.reason == KVMRUN_EXIT_HLT
				 ? CLIENT_EXIT_HALTED
				 : CLIENT_EXIT_ENDED;
	}
	kvmrun_answer_free(&answer);
	return status;
}

/* ping and stats: one request without a spec, one answer. */
static int
client_query(struct client *c, const struct output *out)
{
	bool ping = c->command == CLIENT_PING;
	struct kvmrun_answer answer;
	int status;

	status = client_exchange(c, ping ? KVMRUN_OP_PING : KVMRUN_OP_STATS, &answer);
	if (status != 0)
		return status;
	if (answer.error.code != KVMRUN_OK)
		status = client_daemon_error(&answer.error);
	else if (ping && !c->json)
		output_ping(out, &answer.ping);
	else if (!c->json)
		output_stats(out, &answer.stats);
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

	kvmrun_spec_init(&c.spec);
	r = client_parse_args(&c, argc, argv);
	if (r != 0) {
		if (r < 0)
			fputs("Try '" CLIENT_NAME " --help'.\n", stderr);
		status = r < 0 ? CLIENT_EXIT_USAGE : 0;
		goto out;
	}
	output_init(&out, stdout, c.quiet, c.color, c.raw_console);

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
	return status;
}
