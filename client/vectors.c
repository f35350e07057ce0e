/*
 * Test vectors to and from JSON (vectors.h).  The format is documented in
 * README.md, "Capturing test vectors".
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#ifdef HAVE_ZLIB
#include <zlib.h>
#endif

#include "vectors.h"

#define VECTOR_FILE_MAX (1u << 30)
#define VECTOR_READ_CHUNK 65536u

/* SingleStepTests' 16-bit names of kvmrun's registers (NULL: none). */
static const char *const vector_names16[KVMRUN_REG_COUNT] = {
	[KVMRUN_REG_RAX] = "ax", [KVMRUN_REG_RBX] = "bx", [KVMRUN_REG_RCX] = "cx",
	[KVMRUN_REG_RDX] = "dx", [KVMRUN_REG_RSI] = "si", [KVMRUN_REG_RDI] = "di",
	[KVMRUN_REG_RSP] = "sp", [KVMRUN_REG_RBP] = "bp", [KVMRUN_REG_RIP] = "ip",
	[KVMRUN_REG_RFLAGS] = "flags",
};

/*
 * The name register I is written under: in real mode SingleStepTests' 16-bit
 * one when VALUE fits it, so that their readers take such vectors as they are.
 */
static const char *
vector_reg_name(enum kvmrun_mode mode, int i, uint64_t value)
{
	if (mode == KVMRUN_MODE_REAL && value <= 0xffff && vector_names16[i] != NULL)
		return vector_names16[i];
	return kvmrun_reg_name((enum kvmrun_reg)i);
}

void
vector_free(struct vector *v)
{
	free(v->initial.ram);
	free(v->final.ram);
	v->initial.ram = v->final.ram = NULL;
	v->initial.ram_count = v->final.ram_count = 0;
}

bool
vector_has_xstate(const struct kvmrun_xstate *x)
{
	for (int i = 0; i < KVMRUN_VEC_COUNT; i++)
		if (x->vec_bytes[i] != 0)
			return true;
	return x->fields_set != 0;
}

/* The index of the first byte of STATE's ram at ADDRESS or after it. */
static size_t
vector_ram_lower(const struct vector_state *state, uint64_t address)
{
	size_t lo = 0, hi = state->ram_count, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (state->ram[mid] >> 8 < address)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool
vector_ram_has(const struct vector_state *state, uint64_t address)
{
	size_t i = vector_ram_lower(state, address);

	return i < state->ram_count && state->ram[i] >> 8 == address;
}

int
vector_ram_add(struct vector_state *state, uint64_t address, uint8_t byte)
{
	size_t lo = vector_ram_lower(state, address);
	uint64_t *ram;

	if (lo < state->ram_count && state->ram[lo] >> 8 == address) {
		state->ram[lo] = address << 8 | byte;
		return 0;
	}
	/* Grows by doubling: a count that is a power of two is full. */
	if ((state->ram_count & (state->ram_count - 1)) == 0) {
		ram = reallocarray(state->ram, state->ram_count ? state->ram_count * 2 : 16,
				   sizeof(*ram));
		if (ram == NULL)
			return -ENOMEM;
		state->ram = ram;
	}
	memmove(state->ram + lo + 1, state->ram + lo,
		(state->ram_count - lo) * sizeof(*state->ram));
	state->ram[lo] = address << 8 | byte;
	state->ram_count++;
	return 0;
}

static bool
vector_add(json_object *obj, const char *key, json_object *value)
{
	return value != NULL && json_object_object_add(obj, key, value) == 0;
}

/* A vector register as "0x" and its hex digits, most significant first. */
static json_object *
vector_hex(const uint8_t *bytes, size_t length)
{
	char text[2 + 2 * KVMRUN_VEC_BYTES_MAX + 1] = "0x";

	for (size_t i = 0; i < length; i++)
		snprintf(text + 2 + 2 * i, 3, "%02x", bytes[length - 1 - i]);
	return json_object_new_string(text);
}

static const char *
vector_vec_prefix(uint8_t bytes)
{
	return bytes == 16 ? "xmm" : bytes == 32 ? "ymm" : "zmm";
}

/* STATE as {"regs", "xstate", "ram"}; with BEFORE, only what differs from it. */
static json_object *
vector_state_json(enum kvmrun_mode mode, const struct vector_state *state,
		  const struct vector_state *before)
{
	json_object *obj = json_object_new_object(), *regs, *xstate, *ram, *pair;
	const struct kvmrun_xstate *x = &state->xstate;
	char key[16];

	if (obj == NULL || !vector_add(obj, "regs", regs = json_object_new_object()))
		goto fail;
	for (int i = 0; i < KVMRUN_REG_COUNT; i++) {
		if (!(state->regs_set & 1u << i))
			continue;
		if (before != NULL && (before->regs_set & 1u << i) &&
		    before->regs[i] == state->regs[i])
			continue;
		if (!vector_add(regs, vector_reg_name(mode, i, state->regs[i]),
				json_object_new_uint64(state->regs[i])))
			goto fail;
	}
	for (int i = 0; i < KVMRUN_SEG_REQUEST_COUNT; i++) {
		if (!(state->segs_set & 1u << i))
			continue;
		if (before != NULL && before->segs[i] == state->segs[i])
			continue;
		if (!vector_add(regs, kvmrun_seg_name((enum kvmrun_seg)i),
				json_object_new_int(state->segs[i])))
			goto fail;
	}
	xstate = json_object_new_object();
	if (xstate == NULL)
		goto fail;
	for (int i = 0; i < KVMRUN_VEC_COUNT; i++) {
		uint8_t n = x->vec_bytes[i];

		if (n == 0 || (before != NULL && before->xstate.vec_bytes[i] == n &&
			       memcmp(before->xstate.vec[i], x->vec[i], n) == 0))
			continue;
		snprintf(key, sizeof(key), "%s%d", vector_vec_prefix(n), i);
		if (!vector_add(xstate, key, vector_hex(x->vec[i], n))) {
			json_object_put(xstate);
			goto fail;
		}
	}
	if ((x->fields_set & 1u << KVMRUN_XF_MXCSR) &&
	    !(before != NULL && before->xstate.mxcsr == x->mxcsr) &&
	    !vector_add(xstate, "mxcsr", json_object_new_int64(x->mxcsr))) {
		json_object_put(xstate);
		goto fail;
	}
	if (json_object_object_length(xstate) == 0)
		json_object_put(xstate);
	else if (!vector_add(obj, "xstate", xstate))
		goto fail;
	if (!vector_add(obj, "ram", ram = json_object_new_array()))
		goto fail;
	for (size_t i = 0; i < state->ram_count; i++) {
		pair = json_object_new_array();
		if (pair == NULL || json_object_array_add(ram, pair) != 0 ||
		    json_object_array_add(pair, json_object_new_uint64(state->ram[i] >> 8)) != 0 ||
		    json_object_array_add(pair, json_object_new_int(state->ram[i] & 0xff)) != 0)
			goto fail;
	}
	return obj;
fail:
	json_object_put(obj);
	return NULL;
}

json_object *
vector_to_json(const struct vector *v)
{
	json_object *obj = json_object_new_object(), *bytes, *exit;

	if (obj == NULL || !vector_add(obj, "name", json_object_new_string(v->name)) ||
	    !vector_add(obj, "bytes", bytes = json_object_new_array()))
		goto fail;
	for (size_t i = 0; i < v->length; i++)
		if (json_object_array_add(bytes, json_object_new_int(v->bytes[i])) != 0)
			goto fail;
	if (!vector_add(obj, "mode", json_object_new_string(kvmrun_mode_name(v->mode))) ||
	    !vector_add(obj, "ring", json_object_new_int((int)v->ring)) ||
	    !vector_add(obj, "initial", vector_state_json(v->mode, &v->initial, NULL)) ||
	    !vector_add(obj, "final", vector_state_json(v->mode, &v->final, &v->initial)))
		goto fail;
	if (v->exit[0] != '\0') {
		if (!vector_add(obj, "exit", exit = json_object_new_object()) ||
		    !vector_add(exit, "reason", json_object_new_string(v->exit)))
			goto fail;
		if (v->exit_vector >= 0 &&
		    !vector_add(exit, "vector", json_object_new_int(v->exit_vector)))
			goto fail;
	}
	return obj;
fail:
	json_object_put(obj);
	return NULL;
}

/* An integer 0..MAX, or -1 with WHY naming PATH. */
static int
vector_get_u64(json_object *obj, uint64_t max, const char *path, uint64_t *value,
	       char *why, size_t why_size)
{
	if (!json_object_is_type(obj, json_type_int) ||
	    (json_object_get_int64(obj) < 0 && json_object_get_uint64(obj) == 0)) {
		snprintf(why, why_size, "%s: expected an integer 0..%" PRIu64, path, max);
		return -1;
	}
	errno = 0;
	*value = json_object_get_uint64(obj);
	if (errno != 0 || *value > max) {
		snprintf(why, why_size, "%s: expected an integer 0..%" PRIu64, path, max);
		return -1;
	}
	return 0;
}

/* "0x" and hex digits into a vector register of 16, 32 or 64 bytes. */
static int
vector_parse_vec(json_object *obj, uint8_t bytes, uint8_t *out, const char *path,
		 char *why, size_t why_size)
{
	const char *text = json_object_get_string(obj);
	size_t digits;
	unsigned int byte;

	if (!json_object_is_type(obj, json_type_string) || strncmp(text, "0x", 2) != 0 ||
	    (digits = strlen(text + 2)) != 2u * bytes ||
	    strspn(text + 2, "0123456789abcdefABCDEF") != digits) {
		snprintf(why, why_size, "%s: expected \"0x\" and %u hex digits", path,
			 2u * bytes);
		return -1;
	}
	for (size_t i = 0; i < bytes; i++) {
		sscanf(text + 2 + 2 * i, "%2x", &byte);
		out[bytes - 1 - i] = (uint8_t)byte;
	}
	return 0;
}

static int
vector_parse_regs(json_object *regs, struct vector_state *state,
		  const char *where, char *why, size_t why_size)
{
	char path[96];
	uint64_t value;
	int i;

	json_object_object_foreach(regs, key, val) {
		snprintf(path, sizeof(path), "%s.regs.%s", where, key);
		for (i = 0; i < KVMRUN_REG_COUNT; i++)
			if (strcmp(key, kvmrun_reg_name((enum kvmrun_reg)i)) == 0)
				break;
		if (i < KVMRUN_REG_COUNT) {
			if (vector_get_u64(val, UINT64_MAX, path, &value, why, why_size) < 0)
				return -1;
			state->regs[i] = value;
			state->regs_set |= 1u << i;
			continue;
		}
		for (i = 0; i < KVMRUN_SEG_REQUEST_COUNT; i++)
			if (strcmp(key, kvmrun_seg_name((enum kvmrun_seg)i)) == 0)
				break;
		if (i < KVMRUN_SEG_REQUEST_COUNT) {
			if (vector_get_u64(val, UINT16_MAX, path, &value, why, why_size) < 0)
				return -1;
			state->segs[i] = (uint16_t)value;
			state->segs_set |= 1u << i;
			continue;
		}
		for (i = 0; i < KVMRUN_REG_COUNT; i++)
			if (vector_names16[i] != NULL && strcmp(key, vector_names16[i]) == 0)
				break;
		if (i == KVMRUN_REG_COUNT) {
			snprintf(why, why_size, "%s: not a register this reader knows", path);
			return -1;
		}
		if (vector_get_u64(val, UINT16_MAX, path, &value, why, why_size) < 0)
			return -1;
		state->regs[i] = value;
		state->regs_set |= 1u << i;
	}
	return 0;
}

static int
vector_parse_xstate(json_object *xstate, struct vector_state *state, const char *where,
		    char *why, size_t why_size)
{
	struct kvmrun_xstate *x = &state->xstate;
	char path[96], *end;
	uint64_t value;
	unsigned long n;
	uint8_t bytes;

	json_object_object_foreach(xstate, key, val) {
		snprintf(path, sizeof(path), "%s.xstate.%s", where, key);
		if (strcmp(key, "mxcsr") == 0) {
			if (vector_get_u64(val, UINT32_MAX, path, &value, why, why_size) < 0)
				return -1;
			x->mxcsr = (uint32_t)value;
			x->fields_set |= 1u << KVMRUN_XF_MXCSR;
			continue;
		}
		bytes = strncmp(key, "xmm", 3) == 0	? 16
			: strncmp(key, "ymm", 3) == 0 ? 32
			: strncmp(key, "zmm", 3) == 0 ? 64
						      : 0;
		n = bytes != 0 && key[3] >= '0' && key[3] <= '9' ? strtoul(key + 3, &end, 10)
								 : KVMRUN_VEC_COUNT;
		if (n >= KVMRUN_VEC_COUNT || *end != '\0') {
			snprintf(why, why_size, "%s: not mxcsr or xmm/ymm/zmm 0..31", path);
			return -1;
		}
		if (vector_parse_vec(val, bytes, x->vec[n], path, why, why_size) < 0)
			return -1;
		x->vec_bytes[n] = bytes;
	}
	return 0;
}

static int
vector_parse_state(json_object *obj, struct vector_state *state, const char *where,
		   char *why, size_t why_size)
{
	json_object *regs, *xstate, *ram, *pair;
	uint64_t address, byte;
	char path[96];

	if (!json_object_is_type(obj, json_type_object)) {
		snprintf(why, why_size, "%s: expected an object", where);
		return -1;
	}
	if (json_object_object_get_ex(obj, "regs", &regs)) {
		if (!json_object_is_type(regs, json_type_object)) {
			snprintf(why, why_size, "%s.regs: expected an object", where);
			return -1;
		}
		if (vector_parse_regs(regs, state, where, why, why_size) < 0)
			return -1;
	}
	if (json_object_object_get_ex(obj, "xstate", &xstate)) {
		if (!json_object_is_type(xstate, json_type_object)) {
			snprintf(why, why_size, "%s.xstate: expected an object", where);
			return -1;
		}
		if (vector_parse_xstate(xstate, state, where, why, why_size) < 0)
			return -1;
	}
	if (!json_object_object_get_ex(obj, "ram", &ram))
		return 0;
	if (!json_object_is_type(ram, json_type_array)) {
		snprintf(why, why_size, "%s.ram: expected an array of [address, byte]", where);
		return -1;
	}
	for (size_t i = 0; i < json_object_array_length(ram); i++) {
		pair = json_object_array_get_idx(ram, i);
		snprintf(path, sizeof(path), "%s.ram[%zu]", where, i);
		if (!json_object_is_type(pair, json_type_array) ||
		    json_object_array_length(pair) != 2) {
			snprintf(why, why_size, "%s: expected [address, byte]", path);
			return -1;
		}
		if (vector_get_u64(json_object_array_get_idx(pair, 0), UINT64_MAX >> 8, path,
				   &address, why, why_size) < 0 ||
		    vector_get_u64(json_object_array_get_idx(pair, 1), 255, path, &byte, why,
				   why_size) < 0)
			return -1;
		if (vector_ram_add(state, address, (uint8_t)byte) < 0) {
			snprintf(why, why_size, "out of memory");
			return -1;
		}
	}
	return 0;
}

static int
vector_parse_exit(json_object *exit, struct vector *v, char *why, size_t why_size)
{
	json_object *reason, *vector;
	uint64_t value;

	if (!json_object_is_type(exit, json_type_object) ||
	    !json_object_object_get_ex(exit, "reason", &reason) ||
	    !json_object_is_type(reason, json_type_string) ||
	    json_object_get_string_len(reason) >= KVMRUN_NAME_MAX) {
		snprintf(why, why_size, "exit: expected {\"reason\": NAME}");
		return -1;
	}
	snprintf(v->exit, sizeof(v->exit), "%s", json_object_get_string(reason));
	if (json_object_object_get_ex(exit, "vector", &vector)) {
		if (vector_get_u64(vector, 255, "exit.vector", &value, why, why_size) < 0)
			return -1;
		v->exit_vector = (int)value;
	}
	return 0;
}

int
vector_from_json(json_object *obj, struct vector *v, char *why, size_t why_size)
{
	json_object *field, *initial, *final;
	uint64_t value;
	int i;

	*v = (struct vector){.exit_vector = -1, .mode = KVMRUN_MODE_REAL};
	if (!json_object_is_type(obj, json_type_object)) {
		snprintf(why, why_size, "a vector is a JSON object");
		return -1;
	}
	if (json_object_object_get_ex(obj, "name", &field))
		snprintf(v->name, sizeof(v->name), "%s", json_object_get_string(field));
	if (!json_object_object_get_ex(obj, "bytes", &field) ||
	    !json_object_is_type(field, json_type_array) ||
	    json_object_array_length(field) == 0 ||
	    json_object_array_length(field) > VECTOR_BYTES_MAX) {
		snprintf(why, why_size, "bytes: expected an array of 1 to %d bytes",
			 VECTOR_BYTES_MAX);
		return -1;
	}
	v->length = json_object_array_length(field);
	for (size_t j = 0; j < v->length; j++) {
		if (vector_get_u64(json_object_array_get_idx(field, j), 255, "bytes", &value,
				   why, why_size) < 0)
			return -1;
		v->bytes[j] = (uint8_t)value;
	}
	/* SingleStepTests' files have no mode: real mode, on the 8086 and 80286. */
	v->sst = !json_object_object_get_ex(obj, "mode", &field);
	if (!v->sst) {
		for (i = 0; i < KVMRUN_MODE_COUNT; i++)
			if (strcmp(json_object_get_string(field),
				   kvmrun_mode_name((enum kvmrun_mode)i)) == 0)
				break;
		if (i == KVMRUN_MODE_COUNT || !json_object_is_type(field, json_type_string)) {
			snprintf(why, why_size, "mode: not real, protected, paged or long");
			return -1;
		}
		v->mode = (enum kvmrun_mode)i;
	}
	if (json_object_object_get_ex(obj, "ring", &field)) {
		if (vector_get_u64(field, 3, "ring", &value, why, why_size) < 0)
			return -1;
		v->ring = (unsigned int)value;
	}
	if (!json_object_object_get_ex(obj, "initial", &initial) ||
	    !json_object_object_get_ex(obj, "final", &final)) {
		snprintf(why, why_size, "a vector needs initial and final");
		return -1;
	}
	if (vector_parse_state(initial, &v->initial, "initial", why, why_size) < 0 ||
	    vector_parse_state(final, &v->final, "final", why, why_size) < 0)
		goto fail;
	if (json_object_object_get_ex(obj, "exit", &field) &&
	    vector_parse_exit(field, v, why, why_size) < 0)
		goto fail;
	return 0;
fail:
	vector_free(v);
	return -1;
}

int
vector_read_file(const char *path, char **text, size_t *length, char *why,
		 size_t why_size)
{
	size_t size = 0, used = 0;
	char *buf = NULL, *grown;
	int r = -1;
#ifdef HAVE_ZLIB
	gzFile in = gzopen(path, "rb");
	int n;
#else
	FILE *in = fopen(path, "rb");
	size_t n;
#endif

	if (in == NULL) {
		snprintf(why, why_size, "%s: %s", path,
			 errno != 0 ? strerror(errno) : "out of memory");
		return -1;
	}
	for (;;) {
		if (size - used < VECTOR_READ_CHUNK + 1) {
			size = size == 0 ? 4 * VECTOR_READ_CHUNK : size * 2;
			if (size > VECTOR_FILE_MAX) {
				snprintf(why, why_size, "%s: larger than %u MiB", path,
					 VECTOR_FILE_MAX >> 20);
				goto out;
			}
			grown = realloc(buf, size);
			if (grown == NULL) {
				snprintf(why, why_size, "%s: out of memory", path);
				goto out;
			}
			buf = grown;
		}
#ifdef HAVE_ZLIB
		n = gzread(in, buf + used, VECTOR_READ_CHUNK);
		if (n < 0) {
			int zerr;
			const char *msg = gzerror(in, &zerr);

			snprintf(why, why_size, "%s: %s", path,
				 zerr == Z_ERRNO ? strerror(errno) : msg);
			goto out;
		}
#else
		n = fread(buf + used, 1, VECTOR_READ_CHUNK, in);
		if (n == 0 && ferror(in)) {
			snprintf(why, why_size, "%s: %s", path, strerror(errno));
			goto out;
		}
#endif
		if (n == 0)
			break;
		used += (size_t)n;
	}
#ifndef HAVE_ZLIB
	if (used >= 2 && (uint8_t)buf[0] == 0x1f && (uint8_t)buf[1] == 0x8b) {
		snprintf(why, why_size, "%s: gzip data, and this build has no zlib: "
			 "gunzip it first", path);
		goto out;
	}
#endif
	buf[used] = '\0';
	*text = buf;
	*length = used;
	buf = NULL;
	r = 0;
out:
	free(buf);
#ifdef HAVE_ZLIB
	gzclose(in);
#else
	fclose(in);
#endif
	return r;
}

/* OBJ[KEY] in either case of its hex letters. */
static json_object *
vector_get_opcode(json_object *obj, const char *key)
{
	json_object_object_foreach(obj, name, val) {
		if (strcasecmp(name, key) == 0)
			return val;
	}
	return NULL;
}

uint32_t
vector_flags_mask(json_object *metadata, const char *key)
{
	json_object *opcodes, *entry, *regs, *mask;
	char op[16];
	const char *dot;

	if (metadata == NULL || !json_object_object_get_ex(metadata, "opcodes", &opcodes))
		return 0xffff;
	dot = strchr(key, '.');
	snprintf(op, sizeof(op), "%.*s", dot != NULL ? (int)(dot - key) : (int)strlen(key),
		 key);
	entry = vector_get_opcode(opcodes, op);
	if (entry != NULL && dot != NULL && json_object_object_get_ex(entry, "reg", &regs))
		entry = vector_get_opcode(regs, dot + 1);
	if (entry == NULL || !json_object_object_get_ex(entry, "flags-mask", &mask) ||
	    !json_object_is_type(mask, json_type_int))
		return 0xffff;
	return (uint32_t)json_object_get_int64(mask) & 0xffff;
}
