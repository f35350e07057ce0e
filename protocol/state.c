/*
 * The CPU state beyond the general registers, as JSON (PROTOCOL.md, "CPU
 * state").  The request's fields and the answer's use one reader: a request
 * is read strictly, an answer leniently (names a newer daemon added are
 * skipped, xcr0 is allowed).  Only rules that hold on every host are checked
 * here; what a host's CPU lacks (AVX-512, an MSR) is the engine's to refuse.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "kvmrun-proto.h"
#include "state.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The vector registers by width; register N of a kind is vec[N]. */
static const struct {
	const char *prefix;
	unsigned int count;
	unsigned int bytes;
} vec_kinds[] = {
	{ "xmm", 16, 16 },
	{ "ymm", 16, 32 },
	{ "zmm", KVMRUN_VEC_COUNT, 64 },
};

#define ST_BYTES 10 /* an 80-bit x87 register */

/* The largest value of each control field: FOP is an 11-bit opcode. */
static const uint64_t xfield_max[KVMRUN_XF_COUNT] = {
	[KVMRUN_XF_MXCSR] = UINT32_MAX, [KVMRUN_XF_FCW] = UINT16_MAX,
	[KVMRUN_XF_FSW] = UINT16_MAX,	[KVMRUN_XF_FTW] = UINT16_MAX,
	[KVMRUN_XF_FOP] = 0x7ff,	[KVMRUN_XF_FIP] = UINT64_MAX,
	[KVMRUN_XF_FDP] = UINT64_MAX,
};

static const char *const part_names[] = { "xstate", "msrs", "descriptors", "cpuid" };
static const char *const cache_names[] = { "selector", "base", "limit", "attributes" };
static const char *const table_names[] = { "base", "limit" };
static const char *const cpuid_names[] = { "function", "index", "eax",
					   "ebx",      "ecx",	"edx" };
enum { CPUID_FUNCTION, CPUID_INDEX, CPUID_EAX, CPUID_EBX, CPUID_ECX, CPUID_EDX };

/* Access-rights bits 8-11 are the limit's bits 16-19 in a descriptor. */
#define ATTR_LIMIT_BITS 0x0f00u
#define ATTR_G (1u << 15)

/* How a reader treats what it does not know. */
enum reading { REQUEST, ANSWER };

static uint64_t
xfield_get(const struct kvmrun_xstate *x, int field)
{
	switch (field) {
	case KVMRUN_XF_MXCSR:
		return x->mxcsr;
	case KVMRUN_XF_FCW:
		return x->fcw;
	case KVMRUN_XF_FSW:
		return x->fsw;
	case KVMRUN_XF_FTW:
		return x->ftw;
	case KVMRUN_XF_FOP:
		return x->fop;
	case KVMRUN_XF_FIP:
		return x->fip;
	default:
		return x->fdp;
	}
}

/* V is within xfield_max[FIELD]. */
static void
xfield_put(struct kvmrun_xstate *x, int field, uint64_t v)
{
	switch (field) {
	case KVMRUN_XF_MXCSR:
		x->mxcsr = (uint32_t)v;
		break;
	case KVMRUN_XF_FCW:
		x->fcw = (uint16_t)v;
		break;
	case KVMRUN_XF_FSW:
		x->fsw = (uint16_t)v;
		break;
	case KVMRUN_XF_FTW:
		x->ftw = (uint16_t)v;
		break;
	case KVMRUN_XF_FOP:
		x->fop = (uint16_t)v;
		break;
	case KVMRUN_XF_FIP:
		x->fip = v;
		break;
	default:
		x->fdp = v;
		break;
	}
}

/* *STATE, allocated zeroed when still NULL. */
static struct kvmrun_cpu_state *
state_of(struct kvmrun_cpu_state **state, struct kvmrun_error *err)
{
	if (*state == NULL && (*state = calloc(1, sizeof(**state))) == NULL)
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "out of memory");
	return *state;
}

/* A u64 as regs take it (an integer or "0x..."), at most MAX. */
static int
get_number(struct json_object *val, const char *path, uint64_t max, uint64_t *out,
	   struct kvmrun_error *err)
{
	if (jutil_u64(val, path, true, out, err) < 0)
		return -1;
	if (*out > max)
		return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path,
				  "%#" PRIx64 " is out of range 0..%#" PRIx64, *out,
				  max);
	return 0;
}

/* The index N of NAME = PREFIX and N (decimal, no leading zero) below COUNT, or -1. */
static int
name_index(const char *name, const char *prefix, unsigned int count)
{
	size_t n = strlen(prefix);
	unsigned long i;
	char *end;

	if (strncmp(name, prefix, n) != 0 || name[n] < '0' || name[n] > '9' ||
	    (name[n] == '0' && name[n + 1] != '\0'))
		return -1;
	i = strtoul(name + n, &end, 10);
	return *end == '\0' && i < count ? (int)i : -1;
}

/*
 * A "0x" string of 1 to 2*BYTES hex digits into OUT, BYTES little-endian:
 * the last digit is bits 0-3 of OUT[0].
 */
static int
get_wide(struct json_object *val, const char *path, uint8_t *out, size_t bytes,
	 struct kvmrun_error *err)
{
	const char *text;
	size_t length, digits;

	if (jutil_string(val, path, &text, &length, err) < 0)
		return -1;
	if (length < 3 || text[0] != '0' || text[1] != 'x' || length - 2 > 2 * bytes)
		goto bad;
	digits = length - 2;
	memset(out, 0, bytes);
	for (size_t i = 0; i < digits; i++) {
		int d = jutil_hex_value((unsigned char)text[length - 1 - i]);

		if (d < 0)
			goto bad;
		out[i / 2] |= (uint8_t)(d << (4 * (i % 2)));
	}
	return 0;

bad:
	return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path,
			  "expected \"0x\" and 1 to %zu hex digits", 2 * bytes);
}

/* Vector register KEY, when it is one: 1 taken, 0 not a vector's name, -1. */
static int
get_vector(struct kvmrun_cpu_state **state, const char *key, struct json_object *val,
	   const char *path, struct kvmrun_error *err)
{
	for (size_t k = 0; k < NELEM(vec_kinds); k++) {
		int n = name_index(key, vec_kinds[k].prefix, vec_kinds[k].count);
		struct kvmrun_xstate *x;
		uint8_t other;

		if (n < 0)
			continue;
		if (state_of(state, err) == NULL)
			return -1;
		x = &(*state)->xstate;
		other = x->vec_bytes[n];
		for (size_t j = 0; other != 0 && j < NELEM(vec_kinds); j++)
			if (vec_kinds[j].bytes == other)
				return jutil_fail(
					err, KVMRUN_ERR_BAD_REQUEST, path,
					"%s%d is given too, and one is part of the "
					"other: give only the wider",
					vec_kinds[j].prefix, n);
		if (get_wide(val, path, x->vec[n], vec_kinds[k].bytes, err) < 0)
			return -1;
		x->vec_bytes[n] = (uint8_t)vec_kinds[k].bytes;
		return 1;
	}
	return 0;
}

/* Any other xstate register KEY: 1 taken, 0 not one's name, -1. */
static int
get_xreg(struct kvmrun_cpu_state **state, const char *key, struct json_object *val,
	 const char *path, enum reading reading, struct kvmrun_error *err)
{
	int k = name_index(key, "k", KVMRUN_K_COUNT);
	int st = name_index(key, "st", KVMRUN_ST_COUNT);
	int f = kvmrun_name_lookup(kvmrun_xfield_names, KVMRUN_XF_COUNT, key);
	bool xcr0 = reading == ANSWER && strcmp(key, "xcr0") == 0;
	struct kvmrun_xstate *x;
	uint8_t bytes[ST_BYTES];
	uint64_t v;

	if (k < 0 && st < 0 && f < 0 && !xcr0)
		return 0;
	if (state_of(state, err) == NULL)
		return -1;
	x = &(*state)->xstate;
	if (st >= 0) {
		if (get_wide(val, path, bytes, ST_BYTES, err) < 0)
			return -1;
		memcpy(&x->st[st].mantissa, bytes, 8);
		memcpy(&x->st[st].sign_exponent, bytes + 8, 2);
		x->st_set |= (uint8_t)(1u << st);
		return 1;
	}
	if (get_number(val, path, f >= 0 ? xfield_max[f] : UINT64_MAX, &v, err) < 0)
		return -1;
	if (k >= 0) {
		x->k[k] = v;
		x->k_set |= (uint8_t)(1u << k);
	} else if (f >= 0) {
		xfield_put(x, f, v);
		x->fields_set |= 1u << f;
	} else {
		x->xcr0 = v;
		x->has_xcr0 = true;
	}
	return 1;
}

static int
get_xstate(struct json_object *val, enum reading reading,
	   struct kvmrun_cpu_state **state, struct kvmrun_error *err)
{
	if (jutil_object(val, "xstate", err) < 0)
		return -1;
	json_object_object_foreach (val, key, member) {
		char path[JUTIL_PATH_MAX];
		int r;

		snprintf(path, sizeof(path), "xstate.%s", key);
		r = get_vector(state, key, member, path, err);
		if (r == 0)
			r = get_xreg(state, key, member, path, reading, err);
		if (r < 0)
			return -1;
		if (r == 0 && reading == REQUEST)
			return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, "xstate",
					  "unknown register \"%.*s\" (xmm0..xmm15, "
					  "ymm0..ymm15, zmm0..zmm31, k0..k7, st0..st7, "
					  "mxcsr, fcw, fsw, ftw, fop, fip, fdp)",
					  jutil_quote_length(key, strlen(key), 40), key);
	}
	return 0;
}

int
proto_state_parse_xstate(struct json_object *val, struct kvmrun_cpu_state **state,
			 struct kvmrun_error *err)
{
	return get_xstate(val, REQUEST, state, err);
}

static int
get_msrs(struct json_object *val, enum reading reading, struct kvmrun_cpu_state **state,
	 struct kvmrun_error *err)
{
	if (jutil_object(val, "msrs", err) < 0)
		return -1;
	json_object_object_foreach (val, key, member) {
		int m = kvmrun_name_lookup(kvmrun_msr_names, KVMRUN_MSR_COUNT, key);
		char path[JUTIL_PATH_MAX];

		if (m < 0 && reading == ANSWER)
			continue;
		if (m < 0)
			return jutil_unknown(err, "msrs", "MSR", key, strlen(key),
					     kvmrun_msr_names, KVMRUN_MSR_COUNT);
		snprintf(path, sizeof(path), "msrs.%s", key);
		if (state_of(state, err) == NULL ||
		    jutil_u64(member, path, true, &(*state)->msrs.value[m], err) < 0)
			return -1;
		(*state)->msrs.set |= 1u << m;
	}
	return 0;
}

int
proto_state_parse_msrs(struct json_object *val, struct kvmrun_cpu_state **state,
		       struct kvmrun_error *err)
{
	return get_msrs(val, REQUEST, state, err);
}

/* Entry I of the cpuid array VAL; index is optional (0). */
static int
get_cpuid_entry(struct json_object *val, size_t i, enum reading reading,
		struct kvmrun_cpuid_entry *e, struct kvmrun_error *err)
{
	struct json_object *member[NELEM(cpuid_names)];
	uint32_t *out[NELEM(cpuid_names)] = { &e->function, &e->index, &e->eax,
					      &e->ebx,	    &e->ecx,   &e->edx };
	char path[JUTIL_PATH_MAX], sub[JUTIL_PATH_MAX];
	uint32_t present;
	uint64_t v;

	snprintf(path, sizeof(path), "cpuid[%zu]", i);
	if (jutil_fields(json_object_array_get_idx(val, i), path, cpuid_names,
			 NELEM(cpuid_names), reading == ANSWER, member, &present,
			 err) < 0)
		return -1;
	for (size_t k = 0; k < NELEM(cpuid_names); k++) {
		*out[k] = 0;
		if (!(present & 1u << k)) {
			if (k == CPUID_INDEX)
				continue;
			return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path,
					  "missing field \"%s\"", cpuid_names[k]);
		}
		snprintf(sub, sizeof(sub), "cpuid[%zu].%s", i, cpuid_names[k]);
		if (get_number(member[k], sub, UINT32_MAX, &v, err) < 0)
			return -1;
		*out[k] = (uint32_t)v;
	}
	return 0;
}

static int
get_cpuid(struct json_object *val, enum reading reading,
	  struct kvmrun_cpu_state **state, struct kvmrun_error *err)
{
	struct kvmrun_cpuid_entry *entries;
	size_t count;

	if (jutil_array(val, "cpuid", &count, err) < 0)
		return -1;
	if (count == 0 && reading == REQUEST)
		return 0;
	if (state_of(state, err) == NULL)
		return -1;
	entries = calloc(count > 0 ? count : 1, sizeof(*entries));
	if (entries == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "out of memory");
	free((*state)->cpuid);
	(*state)->cpuid = entries;
	(*state)->cpuid_count = 0;
	for (size_t i = 0; i < count; i++) {
		if (get_cpuid_entry(val, i, reading, &entries[i], err) < 0)
			return -1;
		/* An answer is the vCPU's table as KVM keeps it, checked there. */
		for (size_t j = 0; reading == REQUEST && j < i; j++)
			if (entries[j].function == entries[i].function &&
			    entries[j].index == entries[i].index)
				return jutil_fail(
					err, KVMRUN_ERR_BAD_REQUEST, "cpuid",
					"entries %zu and %zu are both function "
					"%#" PRIx32 " index %" PRIu32,
					j, i, entries[i].function, entries[i].index);
		(*state)->cpuid_count = i + 1;
	}
	return 0;
}

int
proto_state_parse_cpuid(struct json_object *val, struct kvmrun_cpu_state **state,
			struct kvmrun_error *err)
{
	return get_cpuid(val, REQUEST, state, err);
}

int
proto_state_parse_returns(struct json_object *val, uint32_t *returns,
			  struct kvmrun_error *err)
{
	size_t count;

	if (jutil_array(val, "return", &count, err) < 0)
		return -1;
	*returns = 0;
	for (size_t i = 0; i < count; i++) {
		char path[JUTIL_PATH_MAX];
		int part;

		snprintf(path, sizeof(path), "return[%zu]", i);
		if (jutil_enum(json_object_array_get_idx(val, i), path, "part",
			       part_names, NELEM(part_names), &part, err) < 0)
			return -1;
		if (*returns & 1u << part)
			return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path,
					  "\"%s\" is given twice", part_names[part]);
		*returns |= 1u << part;
	}
	return 0;
}

/* The fields of VAL (an object at PATH) NAMES lists, all required. */
static int
get_all(struct json_object *val, const char *path, const char *const *names, int count,
	enum reading reading, struct json_object **member, struct kvmrun_error *err)
{
	uint32_t present;

	if (jutil_fields(val, path, names, count, reading == ANSWER, member, &present,
			 err) < 0)
		return -1;
	for (int i = 0; i < count; i++)
		if (!(present & 1u << i))
			return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path,
					  "missing field \"%s\"", names[i]);
	return 0;
}

/* A descriptor's limit and attributes, each checked as a request gives them. */
static int
get_limit_attributes(struct json_object *limit_val, struct json_object *attr_val,
		     const char *path, struct kvmrun_descriptor *d,
		     struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX];
	uint64_t limit, attributes;

	snprintf(sub, sizeof(sub), "%s.limit", path);
	if (get_number(limit_val, sub, UINT32_MAX, &limit, err) < 0)
		return -1;
	snprintf(sub, sizeof(sub), "%s.attributes", path);
	if (get_number(attr_val, sub, UINT16_MAX, &attributes, err) < 0)
		return -1;
	if (attributes & ATTR_LIMIT_BITS)
		return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, sub,
				  "%#" PRIx64 " has bits 8-11 set, which are the "
				  "limit's bits 16-19 in a descriptor: give the "
				  "whole limit in \"limit\"",
				  attributes);
	d->limit = (uint32_t)limit;
	d->attributes = (uint16_t)attributes;
	return 0;
}

int
proto_state_parse_cache(struct json_object *val, const char *path,
			enum kvmrun_mode mode, enum kvmrun_seg seg, uint16_t *selector,
			struct kvmrun_cpu_state **state, struct kvmrun_error *err)
{
	struct json_object *member[NELEM(cache_names)];
	struct kvmrun_descriptor cache;
	char sub[JUTIL_PATH_MAX];
	uint64_t v;

	if (mode != KVMRUN_MODE_REAL)
		return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path,
				  "a descriptor cache (an object) is real-mode only, "
				  "not %s mode",
				  kvmrun_mode_names[mode]);
	if (get_all(val, path, cache_names, NELEM(cache_names), REQUEST, member, err) <
	    0)
		return -1;
	snprintf(sub, sizeof(sub), "%s.selector", path);
	if (get_number(member[0], sub, UINT16_MAX, &v, err) < 0)
		return -1;
	*selector = (uint16_t)v;
	/* Outside long mode a base is the descriptor's 32 bits. */
	snprintf(sub, sizeof(sub), "%s.base", path);
	if (get_number(member[1], sub, UINT32_MAX, &cache.base, err) < 0 ||
	    get_limit_attributes(member[2], member[3], path, &cache, err) < 0)
		return -1;
	/* Granularity scales the 20-bit limit by 4 KiB, filling the low bits. */
	if ((cache.attributes & ATTR_G) ? (cache.limit & 0xfff) != 0xfff
					: cache.limit > 0xfffff)
		return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path,
				  "limit %#" PRIx32 " cannot be with G (attributes bit "
				  "15) %s: with G its low 12 bits are all ones, "
				  "without it it is at most 0xfffff",
				  cache.limit,
				  (cache.attributes & ATTR_G) ? "set" : "clear");
	if (state_of(state, err) == NULL)
		return -1;
	(*state)->segments[seg] = cache;
	(*state)->segments_set |= 1u << seg;
	return 0;
}

/* BYTES little-endian bytes as "0x" and 2*BYTES hex digits. */
static struct json_object *
new_wide(const uint8_t *bytes, size_t length)
{
	static const char digits[] = "0123456789abcdef";
	char text[2 + 2 * KVMRUN_VEC_BYTES_MAX + 1] = "0x";

	for (size_t i = 0; i < length; i++) {
		text[2 + 2 * i] = digits[bytes[length - 1 - i] >> 4];
		text[3 + 2 * i] = digits[bytes[length - 1 - i] & 0xf];
	}
	text[2 + 2 * length] = '\0';
	return json_object_new_string(text);
}

static bool
xstate_empty(const struct kvmrun_xstate *x)
{
	for (int n = 0; n < KVMRUN_VEC_COUNT; n++)
		if (x->vec_bytes[n] != 0)
			return false;
	return x->k_set == 0 && x->st_set == 0 && x->fields_set == 0 && !x->has_xcr0;
}

static struct json_object *
new_xstate(const struct kvmrun_xstate *x, bool *failed)
{
	struct json_object *obj = json_object_new_object();
	char name[16];

	for (int n = 0; n < KVMRUN_VEC_COUNT; n++)
		for (size_t k = 0; k < NELEM(vec_kinds); k++) {
			if (x->vec_bytes[n] != vec_kinds[k].bytes)
				continue;
			snprintf(name, sizeof(name), "%s%d", vec_kinds[k].prefix, n);
			jutil_add(obj, name, new_wide(x->vec[n], vec_kinds[k].bytes),
				  failed);
		}
	for (int k = 0; k < KVMRUN_K_COUNT; k++) {
		if (!(x->k_set & 1u << k))
			continue;
		snprintf(name, sizeof(name), "k%d", k);
		jutil_add(obj, name, json_object_new_uint64(x->k[k]), failed);
	}
	for (int st = 0; st < KVMRUN_ST_COUNT; st++) {
		uint8_t bytes[ST_BYTES];

		if (!(x->st_set & 1u << st))
			continue;
		memcpy(bytes, &x->st[st].mantissa, 8);
		memcpy(bytes + 8, &x->st[st].sign_exponent, 2);
		snprintf(name, sizeof(name), "st%d", st);
		jutil_add(obj, name, new_wide(bytes, ST_BYTES), failed);
	}
	for (int f = 0; f < KVMRUN_XF_COUNT; f++)
		if (x->fields_set & 1u << f)
			jutil_add(obj, kvmrun_xfield_names[f],
				  json_object_new_uint64(xfield_get(x, f)), failed);
	if (x->has_xcr0)
		jutil_add(obj, "xcr0", json_object_new_uint64(x->xcr0), failed);
	return obj;
}

static struct json_object *
new_msrs(const struct kvmrun_msrs *msrs, bool *failed)
{
	return jutil_new_u64_set(kvmrun_msr_names, KVMRUN_MSR_COUNT, msrs->set, msrs->value,
				 failed);
}

/* At most KVMRUN_CPUID_ENTRIES_MAX, the answer's bound (and KVM's). */
static struct json_object *
new_cpuid(const struct kvmrun_cpu_state *state, bool *failed)
{
	struct json_object *array = json_object_new_array();
	size_t count = state->cpuid_count < KVMRUN_CPUID_ENTRIES_MAX
			       ? state->cpuid_count
			       : KVMRUN_CPUID_ENTRIES_MAX;

	for (size_t i = 0; i < count; i++) {
		const struct kvmrun_cpuid_entry *e = &state->cpuid[i];
		const uint32_t values[NELEM(cpuid_names)] = { e->function, e->index,
							      e->eax,	   e->ebx,
							      e->ecx,	   e->edx };
		struct json_object *obj = json_object_new_object();

		for (size_t k = 0; k < NELEM(cpuid_names); k++)
			jutil_add(obj, cpuid_names[k],
				  json_object_new_uint64(values[k]), failed);
		jutil_append(array, obj, failed);
	}
	return array;
}

void
proto_state_add_request(struct json_object *root, const struct kvmrun_spec *spec,
			bool *failed)
{
	const struct kvmrun_cpu_state *state = spec->state;

	if (state != NULL && !xstate_empty(&state->xstate))
		jutil_add(root, "xstate", new_xstate(&state->xstate, failed), failed);
	if (state != NULL && state->msrs.set != 0)
		jutil_add(root, "msrs", new_msrs(&state->msrs, failed), failed);
	if (state != NULL && state->cpuid_count > 0)
		jutil_add(root, "cpuid", new_cpuid(state, failed), failed);
	if (spec->returns != 0) {
		struct json_object *array = json_object_new_array();

		for (size_t i = 0; i < NELEM(part_names); i++)
			if (spec->returns & 1u << i)
				jutil_append(array,
					     json_object_new_string(part_names[i]),
					     failed);
		jutil_add(root, "return", array, failed);
	}
}

struct json_object *
proto_state_new_cache(uint16_t selector, const struct kvmrun_descriptor *cache,
		      bool *failed)
{
	struct json_object *obj = json_object_new_object();

	jutil_add(obj, "selector", json_object_new_uint64(selector), failed);
	jutil_add(obj, "base", json_object_new_uint64(cache->base), failed);
	jutil_add(obj, "limit", json_object_new_uint64(cache->limit), failed);
	jutil_add(obj, "attributes", json_object_new_uint64(cache->attributes), failed);
	return obj;
}

void
proto_state_add_result(struct json_object *root, const struct kvmrun_result *result,
		       bool *failed)
{
	const struct kvmrun_cpu_state *state = result->state;

	if (state == NULL)
		return;
	if (result->returned & KVMRUN_RETURN_XSTATE)
		jutil_add(root, "xstate", new_xstate(&state->xstate, failed), failed);
	if (result->returned & KVMRUN_RETURN_MSRS)
		jutil_add(root, "msrs", new_msrs(&state->msrs, failed), failed);
	if (result->returned & KVMRUN_RETURN_CPUID)
		jutil_add(root, "cpuid", new_cpuid(state, failed), failed);
}

static struct json_object *
new_table(const struct kvmrun_table *table, bool *failed)
{
	struct json_object *obj = json_object_new_object();

	jutil_add(obj, "base", json_object_new_uint64(table->base), failed);
	jutil_add(obj, "limit", json_object_new_uint64(table->limit), failed);
	return obj;
}

void
proto_state_add_descriptors(struct json_object *sregs,
			    const struct kvmrun_result *result, bool *failed)
{
	const struct kvmrun_cpu_state *state = result->state;

	if (state == NULL || !(result->returned & KVMRUN_RETURN_DESCRIPTORS))
		return;
	/* Each segment object already has its base, from result->sregs. */
	for (int i = 0; i < KVMRUN_SEG_COUNT; i++) {
		struct json_object *segment;

		if (sregs == NULL ||
		    !json_object_object_get_ex(sregs, kvmrun_seg_names[i], &segment)) {
			*failed = true;
			return;
		}
		jutil_add(segment, "limit",
			  json_object_new_uint64(state->segments[i].limit), failed);
		jutil_add(segment, "attributes",
			  json_object_new_uint64(state->segments[i].attributes),
			  failed);
	}
	jutil_add(sregs, "gdt", new_table(&state->gdt, failed), failed);
	jutil_add(sregs, "idt", new_table(&state->idt, failed), failed);
}

/* sregs.gdt or sregs.idt of an answer. */
static int
get_table(struct json_object *sregs, const char *key, struct kvmrun_table *table,
	  struct kvmrun_error *err)
{
	struct json_object *member[NELEM(table_names)], *val;
	char path[JUTIL_PATH_MAX], sub[JUTIL_PATH_MAX];
	uint64_t limit;

	snprintf(path, sizeof(path), "sregs.%s", key);
	if (!json_object_object_get_ex(sregs, key, &val))
		return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path, "missing");
	if (get_all(val, path, table_names, NELEM(table_names), ANSWER, member, err) <
	    0)
		return -1;
	snprintf(sub, sizeof(sub), "sregs.%s.base", key);
	if (jutil_u64(member[0], sub, false, &table->base, err) < 0)
		return -1;
	snprintf(sub, sizeof(sub), "sregs.%s.limit", key);
	if (jutil_uint(member[1], sub, UINT16_MAX, &limit, err) < 0)
		return -1;
	table->limit = (uint16_t)limit;
	return 0;
}

/* An answer's descriptors, there when sregs has gdt; sregs itself was read. */
static int
get_descriptors(struct json_object *root, struct kvmrun_result *result,
		struct kvmrun_error *err)
{
	struct json_object *sregs, *segment;
	struct kvmrun_cpu_state *state;

	if (!json_object_object_get_ex(root, "sregs", &sregs) ||
	    !json_object_object_get_ex(sregs, "gdt", NULL))
		return 0;
	state = state_of(&result->state, err);
	if (state == NULL || get_table(sregs, "gdt", &state->gdt, err) < 0 ||
	    get_table(sregs, "idt", &state->idt, err) < 0)
		return -1;
	for (int i = 0; i < KVMRUN_SEG_COUNT; i++) {
		struct json_object *member[NELEM(cache_names)];
		char path[JUTIL_PATH_MAX];

		snprintf(path, sizeof(path), "sregs.%s", kvmrun_seg_names[i]);
		json_object_object_get_ex(sregs, kvmrun_seg_names[i], &segment);
		/* selector and base are sregs' own, read before. */
		if (get_all(segment, path, cache_names + 2, 2, ANSWER, member, err) <
			    0 ||
		    get_limit_attributes(member[0], member[1], path,
					 &state->segments[i], err) < 0)
			return -1;
		state->segments[i].base = result->sregs.segments[i].base;
	}
	state->segments_set = (1u << KVMRUN_SEG_COUNT) - 1;
	result->returned |= KVMRUN_RETURN_DESCRIPTORS;
	return 0;
}

int
proto_state_get_result(struct json_object *root, struct kvmrun_result *result,
		       struct kvmrun_error *err)
{
	static const struct {
		const char *key;
		uint32_t part;
		int (*get)(struct json_object *, enum reading,
			   struct kvmrun_cpu_state **, struct kvmrun_error *);
	} parts[] = {
		{ "xstate", KVMRUN_RETURN_XSTATE, get_xstate },
		{ "msrs", KVMRUN_RETURN_MSRS, get_msrs },
		{ "cpuid", KVMRUN_RETURN_CPUID, get_cpuid },
	};

	for (size_t i = 0; i < NELEM(parts); i++) {
		struct json_object *val;

		if (!json_object_object_get_ex(root, parts[i].key, &val))
			continue;
		/* Returned, even empty: the state is there to say so. */
		if (state_of(&result->state, err) == NULL ||
		    parts[i].get(val, ANSWER, &result->state, err) < 0)
			return -1;
		result->returned |= parts[i].part;
	}
	return get_descriptors(root, result, err);
}

/* The longest JSON text of each part, commas included. */
#define U64_TEXT "18446744073709551615"
#define U32_TEXT "4294967295"
#define XSTATE_MAX                                                                     \
	(sizeof("\"xstate\":{},\"xcr0\":" U64_TEXT) +                                  \
	 KVMRUN_VEC_COUNT * (sizeof("\"zmm31\":\"0x\",") + 2 * KVMRUN_VEC_BYTES_MAX) + \
	 KVMRUN_K_COUNT * sizeof("\"k7\":" U64_TEXT ",") +                             \
	 KVMRUN_ST_COUNT * (sizeof("\"st7\":\"0x\",") + 2 * ST_BYTES) +                \
	 KVMRUN_XF_COUNT * sizeof("\"mxcsr\":" U64_TEXT ","))
#define MSRS_MAX                                                                       \
	(sizeof("\"msrs\":{},") +                                                      \
	 KVMRUN_MSR_COUNT * sizeof("\"kernel_gs_base\":" U64_TEXT ","))
#define DESCRIPTORS_MAX                                                                \
	(KVMRUN_SEG_COUNT * sizeof(",\"limit\":" U32_TEXT ",\"attributes\":65535") +   \
	 2 * sizeof(",\"gdt\":{\"base\":" U64_TEXT ",\"limit\":65535}"))
#define CPUID_MAX                                                                      \
	(sizeof("\"cpuid\":[],") +                                                     \
	 KVMRUN_CPUID_ENTRIES_MAX * sizeof("{\"function\":" U32_TEXT                   \
					   ",\"index\":" U32_TEXT ",\"eax\":" U32_TEXT \
					   ",\"ebx\":" U32_TEXT ",\"ecx\":" U32_TEXT   \
					   ",\"edx\":" U32_TEXT "},"))

uint64_t
proto_state_max_length(void)
{
	return XSTATE_MAX + MSRS_MAX + DESCRIPTORS_MAX + CPUID_MAX;
}

static bool
xstate_equal(const struct kvmrun_xstate *a, const struct kvmrun_xstate *b)
{
	if (memcmp(a->vec_bytes, b->vec_bytes, sizeof(a->vec_bytes)) != 0 ||
	    a->k_set != b->k_set || a->st_set != b->st_set ||
	    a->fields_set != b->fields_set || a->has_xcr0 != b->has_xcr0 ||
	    (a->has_xcr0 && a->xcr0 != b->xcr0))
		return false;
	for (int n = 0; n < KVMRUN_VEC_COUNT; n++)
		if (memcmp(a->vec[n], b->vec[n], a->vec_bytes[n]) != 0)
			return false;
	for (int k = 0; k < KVMRUN_K_COUNT; k++)
		if ((a->k_set & 1u << k) && a->k[k] != b->k[k])
			return false;
	for (int st = 0; st < KVMRUN_ST_COUNT; st++)
		if ((a->st_set & 1u << st) &&
		    (a->st[st].mantissa != b->st[st].mantissa ||
		     a->st[st].sign_exponent != b->st[st].sign_exponent))
			return false;
	for (int f = 0; f < KVMRUN_XF_COUNT; f++)
		if ((a->fields_set & 1u << f) && xfield_get(a, f) != xfield_get(b, f))
			return false;
	return true;
}

bool
proto_state_equal(const struct kvmrun_cpu_state *a, const struct kvmrun_cpu_state *b)
{
	static const struct kvmrun_cpu_state none;

	if (a == NULL)
		a = &none;
	if (b == NULL)
		b = &none;
	if (!xstate_equal(&a->xstate, &b->xstate) || a->msrs.set != b->msrs.set ||
	    a->segments_set != b->segments_set || a->cpuid_count != b->cpuid_count ||
	    a->gdt.base != b->gdt.base || a->gdt.limit != b->gdt.limit ||
	    a->idt.base != b->idt.base || a->idt.limit != b->idt.limit)
		return false;
	for (int m = 0; m < KVMRUN_MSR_COUNT; m++)
		if ((a->msrs.set & 1u << m) && a->msrs.value[m] != b->msrs.value[m])
			return false;
	for (int i = 0; i < KVMRUN_SEG_COUNT; i++)
		if ((a->segments_set & 1u << i) &&
		    (a->segments[i].base != b->segments[i].base ||
		     a->segments[i].limit != b->segments[i].limit ||
		     a->segments[i].attributes != b->segments[i].attributes))
			return false;
	return a->cpuid_count == 0 ||
	       memcmp(a->cpuid, b->cpuid, a->cpuid_count * sizeof(*a->cpuid)) == 0;
}
