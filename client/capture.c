/*
 * kvmrun-client capture: single-instruction test vectors from the host's
 * CPU.  Per encoding and per vector: a random initial state placed by
 * vector-place.c, one instruction run with max_instructions 1 and changes,
 * and the vector written as a JSON line (vectors.c).  README.md, "Capturing
 * test vectors", has the format and the placement rule.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_CAPSTONE
#include <capstone/capstone.h>
#endif

#include "code.h"
#include "output.h"
#include "vector-place.h"
#include "vector-run.h"
#include "vectors.h"

#define CAPTURE_COMMAND "capture"
#define CAPTURE_COUNT_DEFAULT 100u
#define CAPTURE_COUNT_MAX 10000000u
#define CAPTURE_ENCODINGS_MAX 100000u
#define CAPTURE_LINE_MAX 256u
/* The flags capture draws: CF PF AF ZF SF OF and DF; bit 1 is always set. */
#define CAPTURE_RANDOM_FLAGS 0xcd5u
#define CAPTURE_IOPL3 0x3000u
#define CAPTURE_MXCSR_MASKED 0x1f80u	/* every exception masked, as at reset */
#define CAPTURE_MXCSR_RANDOM 0xe040u	/* FTZ, rounding control, DAZ */

struct capture_encoding {
	uint8_t bytes[VECTOR_BYTES_MAX];
	size_t length;
	struct place_insn insn;
	char name[VECTOR_NAME_MAX];
};

struct capture {
	const char *socket_path;
	const char *file;
	const char *output_path;
	FILE *out;
	enum kvmrun_mode mode;
	unsigned int ring;
	bool ring_set;
	uint64_t count, seed, window;
	unsigned int vec_bytes;		/* 0, 16 or 32 */
	bool vec_bytes_set;
	bool array, progress;
	struct capture_encoding *encodings;
	size_t encoding_count;
	struct vector *slots;		/* a vector per request in flight */
	uint64_t written;
};

enum {
	CAPTURE_OPT_MODE = 256,
	CAPTURE_OPT_RING,
	CAPTURE_OPT_SEED,
	CAPTURE_OPT_WINDOW,
	CAPTURE_OPT_VECTOR_BYTES,
	CAPTURE_OPT_ARRAY,
	CAPTURE_OPT_NO_PROGRESS,
};

static const struct option capture_options[] = {
	{"file", required_argument, NULL, 'f'},
	{"count", required_argument, NULL, 'n'},
	{"output", required_argument, NULL, 'o'},
	{"mode", required_argument, NULL, CAPTURE_OPT_MODE},
	{"ring", required_argument, NULL, CAPTURE_OPT_RING},
	{"seed", required_argument, NULL, CAPTURE_OPT_SEED},
	{"window", required_argument, NULL, CAPTURE_OPT_WINDOW},
	{"vector-bytes", required_argument, NULL, CAPTURE_OPT_VECTOR_BYTES},
	{"array", no_argument, NULL, CAPTURE_OPT_ARRAY},
	{"no-progress", no_argument, NULL, CAPTURE_OPT_NO_PROGRESS},
	{"socket", required_argument, NULL, 's'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static const char capture_usage_text[] =
	"Usage: " VECTOR_NAME " capture [OPTION]... [HEX]...\n"
	"\n"
	"Captures single-instruction test vectors on this host's CPU: per\n"
	"encoding (HEX on the command line, or --file), COUNT random initial\n"
	"states, each run for one instruction; one JSON object per line.\n"
	"\n"
	"  -f, --file FILE       read encodings from FILE, one per line (- for\n"
	"                        stdin; blank lines and # comments skipped)\n"
	"  -n, --count N         vectors per encoding (default 100)\n"
	"  --seed N              the random seed (default 1): the same seed, the\n"
	"                        same initial states\n"
	"  --mode MODE           long (default), protected or real\n"
	"  --ring RING           3 (default; real mode: 0) or 0\n"
	"  --vector-bytes N      xmm/ymm bytes to draw: 0, 16 or 32 (default: 32\n"
	"                        when this CPU has AVX, else 16; none in real mode)\n"
	"  -o, --output FILE     write the vectors to FILE (default stdout)\n"
	"  --array               write one JSON array (as SingleStepTests' files\n"
	"                        are) rather than one object per line\n"
	"  --window N            runs in flight at once (default 64)\n"
	"  --no-progress         no progress bar (there is one only on a terminal)\n"
	"  -s, --socket PATH     the daemon's socket\n"
	"\n"
	"HEX is the instruction's bytes in hex: '48 01 d8', '4801d8', '0x48,0x01,0xd8'.\n"
	"Exit status: 0 done, 2 usage error, 3 the daemon refused a run, 4 no\n"
	"daemon, 5 the daemon has no usable /dev/kvm.\n";

/* A small, fast generator: xoshiro256**, seeded by splitmix64. */
struct capture_rng {
	uint64_t s[4];
};

static uint64_t
capture_splitmix(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Each vector has its own stream, so vector I is the same whoever asks. */
static void
capture_rng_seed(struct capture_rng *rng, uint64_t seed, uint64_t i)
{
	uint64_t x = seed ^ (i * UINT64_C(0xd1b54a32d192ed03));

	for (int k = 0; k < 4; k++)
		rng->s[k] = capture_splitmix(&x);
}

static uint64_t
capture_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t
capture_random(struct capture_rng *rng)
{
	uint64_t *s = rng->s, result = capture_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = capture_rotl(s[3], 45);
	return result;
}

/* TEXT as instruction bytes (code.c reads the hex): 0, or -1 with WHY. */
static int
capture_parse_hex(const char *text, struct capture_encoding *enc, char *why,
		  size_t why_size)
{
	uint8_t *data;
	size_t length;

	if (code_from_hex(text, &data, &length, why, why_size) < 0)
		return -1;
	if (length > VECTOR_BYTES_MAX) {
		free(data);
		snprintf(why, why_size, "more than %d bytes, the longest x86 instruction",
			 VECTOR_BYTES_MAX);
		return -1;
	}
	memcpy(enc->bytes, data, length);
	enc->length = length;
	free(data);
	return 0;
}

/* The encoding's name: its disassembly when capstone is there, else its hex. */
static void
capture_name(const struct capture *c, struct capture_encoding *enc)
{
	size_t used = 0;

#ifdef HAVE_CAPSTONE
	cs_mode mode = c->mode == KVMRUN_MODE_LONG   ? CS_MODE_64
		       : c->mode == KVMRUN_MODE_REAL ? CS_MODE_16
						     : CS_MODE_32;
	csh handle;
	cs_insn *insn;

	if (cs_open(CS_ARCH_X86, mode, &handle) == CS_ERR_OK) {
		size_t n = cs_disasm(handle, enc->bytes, enc->length, 0, 1, &insn);

		if (n == 1 && insn->size == enc->length) {
			snprintf(enc->name, sizeof(enc->name), "%s%s%s", insn->mnemonic,
				 insn->op_str[0] != '\0' ? " " : "", insn->op_str);
			used = 1;
		}
		if (n > 0)
			cs_free(insn, n);
		cs_close(&handle);
	}
	if (used)
		return;
#else
	(void)c;
#endif
	for (size_t i = 0; i < enc->length; i++)
		used += (size_t)snprintf(enc->name + used, sizeof(enc->name) - used, "%s%02x",
					 i > 0 ? " " : "", enc->bytes[i]);
}

/* One encoding from the command line or a file; -1 after a message. */
static int
capture_add(struct capture *c, const char *text, const char *where)
{
	struct capture_encoding *encs, enc = {0};
	char why[160];

	if (c->encoding_count == CAPTURE_ENCODINGS_MAX) {
		client_error("%s: more than %u encodings", where, CAPTURE_ENCODINGS_MAX);
		return -1;
	}
	if (capture_parse_hex(text, &enc, why, sizeof(why)) < 0 ||
	    place_decode(enc.bytes, enc.length, c->mode, &enc.insn, why, sizeof(why)) < 0) {
		client_error("%s \"%s\": %s", where, text, why);
		return -1;
	}
	capture_name(c, &enc);
	encs = reallocarray(c->encodings, c->encoding_count + 1, sizeof(*encs));
	if (encs == NULL) {
		client_error("out of memory");
		return -1;
	}
	c->encodings = encs;
	encs[c->encoding_count++] = enc;
	return 0;
}

/* Encodings one per line; blank lines and # comments are skipped. */
static int
capture_read_file(struct capture *c)
{
	FILE *in = strcmp(c->file, "-") == 0 ? stdin : fopen(c->file, "r");
	char line[CAPTURE_LINE_MAX + 2], where[64];
	const char *name = in == stdin ? "stdin" : c->file;
	unsigned long number = 0;
	size_t length;
	int r = -1;

	if (in == NULL) {
		client_error("%s: %s", c->file, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), in) != NULL) {
		number++;
		length = strcspn(line, "#\r\n");
		if (line[length] == '\0' && !feof(in)) {
			client_error("%s:%lu: longer than %u characters", name, number,
				     CAPTURE_LINE_MAX);
			goto out;
		}
		line[length] = '\0';
		while (length > 0 && (line[length - 1] == ' ' || line[length - 1] == '\t'))
			line[--length] = '\0';
		if (line[strspn(line, " \t")] == '\0')
			continue;
		snprintf(where, sizeof(where), "%s:%lu", name, number);
		if (capture_add(c, line + strspn(line, " \t"), where) < 0)
			goto out;
	}
	if (ferror(in)) {
		client_error("%s: %s", name, strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (in != stdin)
		fclose(in);
	return r;
}

/* The first byte past what the guest may use: the engine's area, or memory's end. */
static uint64_t
capture_memory_top(enum kvmrun_mode mode)
{
	return mode == KVMRUN_MODE_REAL ? PLACE_MEMORY_SIZE
					: (PLACE_MEMORY_SIZE - 0x10000u) & ~UINT64_C(0xffff);
}

/* Random bytes around offset ADDRESS of SLOT, where there are none yet. */
static int
capture_fill(const struct capture_encoding *enc, enum kvmrun_mode mode,
	     enum place_slot slot, uint64_t address, bool df, struct capture_rng *rng,
	     struct vector_state *state)
{
	uint64_t from, to, linear;

	place_fill_range(&enc->insn, slot, address, df, &from, &to);
	for (uint64_t offset = from; offset != to; offset++) {
		linear = place_linear(mode, enc->insn.cs_override && slot == PLACE_SLOT_MEM,
				      offset);
		if (linear >= capture_memory_top(mode) || vector_ram_has(state, linear))
			continue;
		if (vector_ram_add(state, linear, (uint8_t)capture_random(rng)) < 0)
			return -1;
	}
	return 0;
}

static void
capture_xstate(const struct capture *c, struct capture_rng *rng, struct kvmrun_xstate *x)
{
	unsigned int count = c->mode == KVMRUN_MODE_LONG ? 16 : 8;
	uint64_t word;

	if (c->vec_bytes == 0)
		return;
	for (unsigned int n = 0; n < count; n++) {
		x->vec_bytes[n] = (uint8_t)c->vec_bytes;
		for (unsigned int i = 0; i < c->vec_bytes; i += 8) {
			word = capture_random(rng);
			memcpy(&x->vec[n][i], &word, 8);
		}
	}
	x->mxcsr = CAPTURE_MXCSR_MASKED | ((uint32_t)capture_random(rng) & CAPTURE_MXCSR_RANDOM);
	x->fields_set = 1u << KVMRUN_XF_MXCSR;
}

/* Vector I's initial state: random, then placed (README.md's rule). */
static int
capture_initial(const struct capture *c, uint64_t i, struct vector *v)
{
	const struct capture_encoding *enc = &c->encodings[i / c->count];
	struct vector_state *init = &v->initial;
	uint64_t width_mask = c->mode == KVMRUN_MODE_LONG   ? UINT64_MAX
			      : c->mode == KVMRUN_MODE_REAL ? 0xffff
							    : 0xffffffff;
	uint64_t targets[PLACE_SLOT_COUNT], code, flags, offset;
	struct place_insn insn;
	struct capture_rng rng;
	bool df;

	capture_rng_seed(&rng, c->seed, i);
	*v = (struct vector){.mode = c->mode, .ring = c->ring, .exit_vector = -1,
			     .length = enc->length};
	memcpy(v->bytes, enc->bytes, enc->length);
	snprintf(v->name, sizeof(v->name), "%s", enc->name);
	for (int r = 0; r < KVMRUN_REG_COUNT; r++)
		init->regs[r] = capture_random(&rng) & width_mask;
	flags = (capture_random(&rng) & CAPTURE_RANDOM_FLAGS) | 0x2u;
	if (c->ring == 3)
		flags |= CAPTURE_IOPL3;
	init->regs[KVMRUN_REG_RFLAGS] = flags;
	df = flags & 0x400u;
	for (int s = 0; s < PLACE_SLOT_COUNT; s++) {
		offset = capture_random(&rng);
		/* Half the targets aligned to 64 bytes, half anywhere in the spread. */
		targets[s] = place_slot_center(c->mode, enc->insn.addr_bits, (enum place_slot)s) +
			     (offset & 1 ? (offset >> 1) % PLACE_ALIGN_SPREAD : 0);
	}
	/* At ring 0 a fault is delivered on the guest's own stack: keep it in memory. */
	insn = enc->insn;
	insn.stack |= c->ring == 0 && c->mode != KVMRUN_MODE_REAL;
	place_registers(&insn, c->mode, targets, init->regs);
	if (c->mode == KVMRUN_MODE_REAL) {
		code = (uint64_t)PLACE_REAL_CODE_SEG * 16;
		init->regs[KVMRUN_REG_RIP] = 0;
		for (int s = 0; s < KVMRUN_SEG_REQUEST_COUNT; s++)
			init->segs[s] = s == KVMRUN_SEG_CS ? PLACE_REAL_CODE_SEG
							   : PLACE_REAL_DATA_SEG;
		init->segs_set = (1u << KVMRUN_SEG_REQUEST_COUNT) - 1;
	} else {
		code = PLACE_CODE_ADDRESS;
		init->regs[KVMRUN_REG_RIP] = code;
		capture_xstate(c, &rng, &init->xstate);
	}
	init->regs_set = (1u << KVMRUN_REG_COUNT) - 1;
	/* Real mode has no r8..r15. */
	if (c->mode == KVMRUN_MODE_REAL)
		for (int r = KVMRUN_REG_R8; r <= KVMRUN_REG_R15; r++)
			init->regs_set &= ~(1u << r);
	for (size_t b = 0; b < enc->length; b++)
		if (vector_ram_add(init, code + b, enc->bytes[b]) < 0)
			return -1;
	if (enc->insn.has_mem || enc->insn.xlat) {
		offset = enc->insn.xlat ? targets[PLACE_SLOT_MEM]
					: place_effective_address(&enc->insn, init->regs,
								  init->regs[KVMRUN_REG_RIP] +
									  enc->length);
		if (capture_fill(enc, c->mode, PLACE_SLOT_MEM, offset, df, &rng, init) < 0)
			return -1;
	}
	if (insn.stack &&
	    capture_fill(enc, c->mode, PLACE_SLOT_STACK, init->regs[KVMRUN_REG_RSP] & width_mask,
			 df, &rng, init) < 0)
		return -1;
	if (enc->insn.src &&
	    capture_fill(enc, c->mode, PLACE_SLOT_SRC, targets[PLACE_SLOT_SRC], df, &rng,
			 init) < 0)
		return -1;
	if (enc->insn.dst &&
	    capture_fill(enc, c->mode, PLACE_SLOT_DST, targets[PLACE_SLOT_DST], df, &rng,
			 init) < 0)
		return -1;
	return 0;
}

static int
capture_make(void *ctx, uint64_t i, unsigned int slot, struct kvmrun_spec *spec)
{
	struct capture *c = ctx;
	struct vector *v = &c->slots[slot];
	char why[160];

	vector_free(v);
	if (capture_initial(c, i, v) < 0 || vector_spec(v, spec, why, sizeof(why)) < 0) {
		client_error("out of memory");
		return -VECTOR_EXIT_USAGE;
	}
	return 0;
}

/* The final state from the result: registers, xstate, changed bytes, exit. */
static int
capture_final(struct vector *v, const struct kvmrun_result *r)
{
	struct vector_state *fin = &v->final;
	const char *exit = vector_exit_name(&r->exit);

	memcpy(fin->regs, r->regs, sizeof(fin->regs));
	fin->regs_set = v->initial.regs_set;
	if (v->mode == KVMRUN_MODE_REAL) {
		for (int s = 0; s < KVMRUN_SEG_REQUEST_COUNT; s++)
			fin->segs[s] = r->sregs.segments[s].selector;
		fin->segs_set = v->initial.segs_set;
	}
	if (vector_has_xstate(&v->initial.xstate)) {
		if (r->state == NULL || !(r->returned & KVMRUN_RETURN_XSTATE)) {
			client_error("the daemon returned no xstate: it needs the CPU state of "
				     "protocol/PROTOCOL.md (or give --vector-bytes 0)");
			return -VECTOR_EXIT_DAEMON;
		}
		for (int n = 0; n < KVMRUN_VEC_COUNT; n++) {
			fin->xstate.vec_bytes[n] = v->initial.xstate.vec_bytes[n];
			memcpy(fin->xstate.vec[n], r->state->xstate.vec[n], fin->xstate.vec_bytes[n]);
		}
		fin->xstate.mxcsr = r->state->xstate.mxcsr;
		fin->xstate.fields_set = v->initial.xstate.fields_set;
	}
	if (r->changes_truncated) {
		client_error("the run's changes were cut at the daemon's --max-dump-bytes");
		return -VECTOR_EXIT_DAEMON;
	}
	for (size_t k = 0; k < r->change_count; k++)
		for (size_t b = 0; b < r->changes[k].length; b++)
			if (vector_ram_add(fin, r->changes[k].address + b, r->changes[k].data[b]) <
			    0)
				return -VECTOR_EXIT_USAGE;
	if (strcmp(exit, "step_limit") != 0) {
		snprintf(v->exit, sizeof(v->exit), "%s", exit);
		if (r->exit.reason == KVMRUN_EXIT_EXCEPTION)
			v->exit_vector = r->exit.u.exception.vector;
	}
	return 0;
}

static int
capture_take(void *ctx, uint64_t i, unsigned int slot, const struct kvmrun_result *r)
{
	struct capture *c = ctx;
	struct vector *v = &c->slots[slot];
	json_object *obj;
	int status;

	(void)i;
	status = capture_final(v, r);
	if (status < 0)
		return status;
	obj = vector_to_json(v);
	if (obj == NULL) {
		client_error("out of memory");
		return -VECTOR_EXIT_USAGE;
	}
	if (c->array)
		fputs(c->written == 0 ? "[\n" : ",\n", c->out);
	fputs(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN), c->out);
	if (!c->array)
		fputc('\n', c->out);
	json_object_put(obj);
	c->written++;
	return 0;
}

/* The xmm/ymm width this CPU has, which the daemon's vCPU gets too. */
static unsigned int
capture_host_vec_bytes(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx") ? 32 : 16;
}

static int
capture_parse_args(struct capture *c, int argc, char **argv)
{
	uint64_t value;
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":f:n:o:s:h", capture_options, NULL)) != -1) {
		switch (opt) {
		case 'f':
			c->file = optarg;
			break;
		case 'n':
			if (vector_parse_count(CAPTURE_COMMAND, "count", optarg, 1, CAPTURE_COUNT_MAX, &c->count) < 0)
				return -1;
			break;
		case 'o':
			c->output_path = optarg;
			break;
		case 's':
			c->socket_path = optarg;
			break;
		case CAPTURE_OPT_MODE:
			if (strcmp(optarg, "long") == 0)
				c->mode = KVMRUN_MODE_LONG;
			else if (strcmp(optarg, "protected") == 0)
				c->mode = KVMRUN_MODE_PROTECTED;
			else if (strcmp(optarg, "real") == 0)
				c->mode = KVMRUN_MODE_REAL;
			else
				return vector_usage(CAPTURE_COMMAND, "--mode %s: not long, protected or real",
						    optarg), -1;
			break;
		case CAPTURE_OPT_RING:
			if (strcmp(optarg, "0") != 0 && strcmp(optarg, "3") != 0)
				return vector_usage(CAPTURE_COMMAND, "--ring %s: not 0 or 3", optarg), -1;
			c->ring = optarg[0] == '3' ? 3 : 0;
			c->ring_set = true;
			break;
		case CAPTURE_OPT_SEED:
			if (vector_parse_count(CAPTURE_COMMAND, "seed", optarg, 0, UINT64_MAX, &c->seed) < 0)
				return -1;
			break;
		case CAPTURE_OPT_WINDOW:
			if (vector_parse_count(CAPTURE_COMMAND, "window", optarg, 1, 65536, &c->window) < 0)
				return -1;
			break;
		case CAPTURE_OPT_VECTOR_BYTES:
			if (vector_parse_count(CAPTURE_COMMAND, "vector-bytes", optarg, 0, 32, &value) < 0)
				return -1;
			if (value != 0 && value != 16 && value != 32)
				return vector_usage(CAPTURE_COMMAND, "--vector-bytes %s: not 0, 16 or 32", optarg),
				       -1;
			c->vec_bytes = (unsigned int)value;
			c->vec_bytes_set = true;
			break;
		case CAPTURE_OPT_ARRAY:
			c->array = true;
			break;
		case CAPTURE_OPT_NO_PROGRESS:
			c->progress = false;
			break;
		case 'h':
			fputs(capture_usage_text, stdout);
			return 1;
		case ':':
			return vector_usage(CAPTURE_COMMAND, "option %s needs a value", argv[optind - 1]), -1;
		default:
			return vector_usage(CAPTURE_COMMAND, "unknown option %s", argv[optind - 1]), -1;
		}
	}
	if (c->mode == KVMRUN_MODE_REAL) {
		if (c->ring_set && c->ring == 3)
			return vector_usage(CAPTURE_COMMAND, "--ring 3: real mode has no ring 3"), -1;
		c->ring = 0;
		if (c->vec_bytes_set && c->vec_bytes != 0)
			return vector_usage(CAPTURE_COMMAND, "--vector-bytes %u: real mode runs without SSE "
					    "(give 0 or leave it out)", c->vec_bytes), -1;
		c->vec_bytes = 0;
	} else if (!c->vec_bytes_set) {
		c->vec_bytes = capture_host_vec_bytes();
	}
	if (c->file != NULL && capture_read_file(c) < 0)
		return -1;
	for (int i = optind; i < argc; i++) {
		char where[32];

		snprintf(where, sizeof(where), "encoding %d", i - optind + 1);
		if (capture_add(c, argv[i], where) < 0)
			return -1;
	}
	if (c->encoding_count == 0)
		return vector_usage(CAPTURE_COMMAND, "capture needs encodings: HEX operands or --file"), -1;
	if (c->count > UINT64_MAX / c->encoding_count)
		return vector_usage(CAPTURE_COMMAND, "--count %" PRIu64 " times %zu encodings is too many",
				    c->count, c->encoding_count), -1;
	return 0;
}

int
vector_capture_main(int argc, char **argv)
{
	struct capture c = {
		.mode = KVMRUN_MODE_LONG, .ring = 3, .count = CAPTURE_COUNT_DEFAULT,
		.seed = 1, .window = VECTOR_WINDOW_DEFAULT, .progress = true,
	};
	struct vector_pipeline pl;
	int status, r;

	r = capture_parse_args(&c, argc, argv);
	if (r != 0) {
		status = r > 0 ? VECTOR_EXIT_OK : VECTOR_EXIT_USAGE;
		goto out;
	}
	c.out = c.output_path == NULL ? stdout : fopen(c.output_path, "w");
	if (c.out == NULL) {
		client_error("%s: %s", c.output_path, strerror(errno));
		status = VECTOR_EXIT_USAGE;
		goto out;
	}
	c.slots = calloc(c.window, sizeof(*c.slots));
	if (c.slots == NULL) {
		client_error("out of memory");
		status = VECTOR_EXIT_USAGE;
		goto out;
	}
	pl = (struct vector_pipeline){
		.socket_path = c.socket_path, .window = (unsigned int)c.window,
		.progress = c.progress, .count = c.count * c.encoding_count, .ctx = &c,
		.make = capture_make, .take = capture_take,
	};
	status = vector_pipeline_run(&pl);
	if (c.array && c.written > 0)
		fputs("\n]\n", c.out);
	if (fflush(c.out) == EOF || ferror(c.out)) {
		client_error("%s: write error", c.output_path != NULL ? c.output_path : "stdout");
		status = VECTOR_EXIT_USAGE;
	}
out:
	if (c.out != NULL && c.out != stdout)
		fclose(c.out);
	for (uint64_t i = 0; c.slots != NULL && i < c.window; i++)
		vector_free(&c.slots[i]);
	free(c.slots);
	free(c.encodings);
	return status;
}
