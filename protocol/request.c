/*
 * Request lines: the daemon's parse of one into a checked spec (payloads
 * left in base64 for a worker to decode), and the client's writing of a spec
 * as one.  Every field is checked for type, form and limit here, so nothing
 * past this point has to wonder what a client sent.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "kvmrun-proto.h"
#include "state.h"

const char *const kvmrun_op_names[KVMRUN_OP_COUNT] = {
	"run",
	"ping",
	"stats",
};

/*
 * Values (numbers, strings, arrays, ...) one request may hold.  The other
 * limits allow a few hundred; this one bounds json-c's time on a line of
 * millions of tiny values, which would stall the daemon's event loop.
 */
#define MAX_REQUEST_VALUES 65536

enum field {
	F_ID,
	F_OP,
	F_MODE,
	F_RING,
	F_IMAGE,
	F_LOAD_ADDRESS,
	F_REGIONS,
	F_MEMORY_SIZE,
	F_REGS,
	F_SEGMENTS,
	F_TIMEOUT_MS,
	F_LOG_PORTS,
	F_DUMP,
	F_MAX_INSTRUCTIONS,
	F_TRACE,
	F_CHANGES,
	F_XSTATE,
	F_MSRS,
	F_CPUID,
	F_RETURN,
	F_COUNT
};

static const char *const field_names[F_COUNT] = {
	[F_ID] = "id",
	[F_OP] = "op",
	[F_MODE] = "mode",
	[F_RING] = "ring",
	[F_IMAGE] = "image",
	[F_LOAD_ADDRESS] = "load_address",
	[F_REGIONS] = "regions",
	[F_MEMORY_SIZE] = "memory_size",
	[F_REGS] = "regs",
	[F_SEGMENTS] = "segments",
	[F_TIMEOUT_MS] = "timeout_ms",
	[F_LOG_PORTS] = "log_ports",
	[F_DUMP] = "dump",
	[F_MAX_INSTRUCTIONS] = "max_instructions",
	[F_TRACE] = "trace",
	[F_CHANGES] = "changes",
	[F_XSTATE] = "xstate",
	[F_MSRS] = "msrs",
	[F_CPUID] = "cpuid",
	[F_RETURN] = "return",
};

static const char *const blob_names[2] = { "address", "data" };
static const char *const range_names[2] = { "address", "length" };

struct parse {
	struct proto_request *req;
	const struct proto_limits *limits;
	struct kvmrun_error *err;
};

void
proto_limits_default(struct proto_limits *limits)
{
	limits->max_line = KVMRUN_DEFAULT_MAX_LINE;
	limits->max_memory = KVMRUN_DEFAULT_MAX_MEMORY;
	limits->max_timeout_ms = KVMRUN_DEFAULT_MAX_TIMEOUT_MS;
	limits->max_regions = KVMRUN_DEFAULT_MAX_REGIONS;
	limits->max_dumps = KVMRUN_DEFAULT_MAX_DUMPS;
	limits->max_dump_bytes = KVMRUN_DEFAULT_MAX_DUMP_BYTES;
	limits->max_log_ports = KVMRUN_DEFAULT_MAX_LOG_PORTS;
	limits->max_cpuid_entries = KVMRUN_DEFAULT_MAX_CPUID_ENTRIES;
	limits->max_instructions = KVMRUN_DEFAULT_MAX_INSTRUCTIONS;
	limits->max_console = KVMRUN_DEFAULT_CONSOLE_MAX;
	limits->max_io_log = KVMRUN_DEFAULT_IO_LOG_MAX;
	limits->max_trace = KVMRUN_DEFAULT_TRACE_MAX;
}

/* OPTION is the daemon option that sets LIMIT, or NULL for a fixed one. */
static int
too_large(struct kvmrun_error *err, const char *path, uint64_t value, const char *unit,
	  uint64_t limit, const char *option)
{
	return jutil_fail(err, KVMRUN_ERR_TOO_LARGE, path,
			  "%" PRIu64 "%s is over the limit of %" PRIu64 "%s%s%s", value,
			  unit, limit, option != NULL ? " (" : "",
			  option != NULL ? option : "", option != NULL ? ")" : "");
}

static int
missing(struct kvmrun_error *err, const char *path, const char *key)
{
	return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path, "missing field \"%s\"",
			  key);
}

/* An array of at most MAX entries. */
static int
get_list(struct parse *p, struct json_object *val, const char *path, size_t max,
	 const char *option, size_t *count)
{
	if (jutil_array(val, path, count, p->err) < 0)
		return -1;
	if (*count > max)
		return too_large(p->err, path, *count, " entries", max, option);
	return 0;
}

/*
 * Entry I of the list NAME: an object with just the two fields KEYS, both
 * required, whose values and paths go to VALUES and PATHS.
 */
static int
get_entry(struct parse *p, struct json_object *list, const char *name, size_t i,
	  const char *const keys[2], struct json_object *values[2],
	  char paths[2][JUTIL_PATH_MAX])
{
	char path[JUTIL_PATH_MAX];
	uint32_t present;

	snprintf(path, sizeof(path), "%s[%zu]", name, i);
	if (jutil_fields(json_object_array_get_idx(list, i), path, keys, 2, false,
			 values, &present, p->err) < 0)
		return -1;
	for (int k = 0; k < 2; k++) {
		if (!(present & 1u << k))
			return missing(p->err, path, keys[k]);
		snprintf(paths[k], JUTIL_PATH_MAX, "%s[%zu].%s", name, i, keys[k]);
	}
	return 0;
}

/* A base64 payload: checked, kept encoded in *COPY, its size in BLOB->length. */
static int
get_payload(struct parse *p, struct json_object *val, const char *path, char **copy,
	    struct kvmrun_blob *blob)
{
	const char *text;
	size_t length, decoded;

	if (jutil_base64(val, path, &text, &length, &decoded, p->err) < 0)
		return -1;
	if (length == 0)
		return jutil_fail(p->err, KVMRUN_ERR_BAD_REQUEST, path, "empty");
	*copy = strndup(text, length);
	if (*copy == NULL)
		return kvmrun_error_set(p->err, KVMRUN_ERR_INTERNAL, "out of memory");
	blob->length = decoded;
	p->req->payload_bytes += decoded;
	return 0;
}

static int
parse_mode(struct parse *p, struct json_object *val)
{
	int mode;

	if (jutil_enum(val, "mode", "mode", kvmrun_mode_names, KVMRUN_MODE_COUNT, &mode,
		       p->err) < 0)
		return -1;
	p->req->spec.mode = (enum kvmrun_mode)mode;
	return 0;
}

static int
parse_ring(struct parse *p, struct json_object *val)
{
	uint64_t ring;

	if (jutil_u64(val, "ring", false, &ring, p->err) < 0)
		return -1;
	if (ring != 0 && ring != 3)
		return jutil_fail(p->err, KVMRUN_ERR_BAD_REQUEST, "ring",
				  "%" PRIu64 " is not 0 or 3", ring);
	p->req->spec.ring = (unsigned int)ring;
	return 0;
}

static int
parse_image(struct parse *p, struct json_object *val)
{
	return get_payload(p, val, "image", &p->req->image_base64, &p->req->spec.image);
}

static int
parse_load_address(struct parse *p, struct json_object *val)
{
	return jutil_u64(val, "load_address", true, &p->req->spec.image.address,
			 p->err);
}

static int
parse_regions(struct parse *p, struct json_object *val)
{
	struct kvmrun_spec *spec = &p->req->spec;
	size_t count;

	if (get_list(p, val, "regions", p->limits->max_regions, "--max-regions", &count) < 0)
		return -1;
	if (count == 0)
		return 0;
	spec->regions = calloc(count, sizeof(*spec->regions));
	p->req->region_base64 = calloc(count, sizeof(*p->req->region_base64));
	if (spec->regions == NULL || p->req->region_base64 == NULL)
		return kvmrun_error_set(p->err, KVMRUN_ERR_INTERNAL, "out of memory");
	spec->region_count = count;
	for (size_t i = 0; i < count; i++) {
		struct json_object *member[2];
		char paths[2][JUTIL_PATH_MAX];

		if (get_entry(p, val, "regions", i, blob_names, member, paths) < 0 ||
		    jutil_u64(member[0], paths[0], true, &spec->regions[i].address,
			      p->err) < 0 ||
		    get_payload(p, member[1], paths[1], &p->req->region_base64[i],
				&spec->regions[i]) < 0)
			return -1;
	}
	return 0;
}

static int
parse_memory_size(struct parse *p, struct json_object *val)
{
	uint64_t size;

	if (jutil_u64(val, "memory_size", false, &size, p->err) < 0)
		return -1;
	if (size == 0 || size % KVMRUN_PAGE_SIZE != 0)
		return jutil_fail(p->err, KVMRUN_ERR_BAD_REQUEST, "memory_size",
				  "%" PRIu64 " is not a positive multiple of %u", size,
				  KVMRUN_PAGE_SIZE);
	if (size > p->limits->max_memory)
		return too_large(p->err, "memory_size", size, "", p->limits->max_memory,
				 "--max-memory");
	p->req->spec.memory_size = size;
	return 0;
}

static int
parse_regs(struct parse *p, struct json_object *val)
{
	struct json_object *member[KVMRUN_REG_COUNT];
	struct kvmrun_spec *spec = &p->req->spec;
	uint32_t present;

	if (jutil_fields(val, "regs", kvmrun_reg_names, KVMRUN_REG_COUNT, false, member,
			 &present, p->err) < 0)
		return -1;
	for (int i = 0; i < KVMRUN_REG_COUNT; i++) {
		char path[JUTIL_PATH_MAX];

		if (!(present & 1u << i))
			continue;
		snprintf(path, sizeof(path), "regs.%s", kvmrun_reg_names[i]);
		if (jutil_u64(member[i], path, true, &spec->regs[i], p->err) < 0)
			return -1;
	}
	spec->regs_set = present;
	return 0;
}

static int
parse_segments(struct parse *p, struct json_object *val)
{
	struct json_object *member[KVMRUN_SEG_REQUEST_COUNT];
	uint32_t present;

	if (jutil_fields(val, "segments", kvmrun_seg_names, KVMRUN_SEG_REQUEST_COUNT,
			 false, member, &present, p->err) < 0)
		return -1;
	for (int i = 0; i < KVMRUN_SEG_REQUEST_COUNT; i++) {
		char path[JUTIL_PATH_MAX];
		uint64_t selector;

		if (!(present & 1u << i))
			continue;
		snprintf(path, sizeof(path), "segments.%s", kvmrun_seg_names[i]);
		if (json_object_is_type(member[i], json_type_object)) {
			if (proto_state_parse_cache(member[i], path, p->req->spec.mode,
						    (enum kvmrun_seg)i,
						    &p->req->spec.segments[i],
						    &p->req->spec.state, p->err) < 0)
				return -1;
			continue;
		}
		if (jutil_uint(member[i], path, UINT16_MAX, &selector, p->err) < 0)
			return -1;
		p->req->spec.segments[i] = (uint16_t)selector;
	}
	return 0;
}

/* An integer from 1 to MAX, the limit the daemon option OPTION sets. */
static int
get_count(struct parse *p, struct json_object *val, const char *path, uint64_t max,
	  const char *option, uint64_t *out)
{
	if (jutil_u64(val, path, false, out, p->err) < 0)
		return -1;
	if (*out == 0)
		return jutil_fail(p->err, KVMRUN_ERR_BAD_REQUEST, path,
				  "0 is below the minimum of 1");
	if (*out > max)
		return too_large(p->err, path, *out, "", max, option);
	return 0;
}

static int
parse_timeout_ms(struct parse *p, struct json_object *val)
{
	uint64_t timeout;

	if (get_count(p, val, "timeout_ms", p->limits->max_timeout_ms, "--max-timeout-ms",
		      &timeout) < 0)
		return -1;
	p->req->spec.timeout_ms = (uint32_t)timeout;
	return 0;
}

static int
parse_log_ports(struct parse *p, struct json_object *val)
{
	struct kvmrun_spec *spec = &p->req->spec;
	size_t count;

	if (get_list(p, val, "log_ports", p->limits->max_log_ports, "--max-log-ports",
		     &count) < 0)
		return -1;
	if (count == 0)
		return 0;
	spec->log_ports = calloc(count, sizeof(*spec->log_ports));
	if (spec->log_ports == NULL)
		return kvmrun_error_set(p->err, KVMRUN_ERR_INTERNAL, "out of memory");
	for (size_t i = 0; i < count; i++) {
		char path[JUTIL_PATH_MAX];
		uint64_t port;

		snprintf(path, sizeof(path), "log_ports[%zu]", i);
		if (jutil_uint(json_object_array_get_idx(val, i), path, UINT16_MAX,
			       &port, p->err) < 0)
			return -1;
		spec->log_ports[i] = (uint16_t)port;
	}
	spec->log_port_count = count;
	return 0;
}

static int
parse_dump(struct parse *p, struct json_object *val)
{
	struct kvmrun_spec *spec = &p->req->spec;
	uint64_t total = 0;
	size_t count;

	if (get_list(p, val, "dump", p->limits->max_dumps, "--max-dumps", &count) < 0)
		return -1;
	if (count == 0)
		return 0;
	spec->dumps = calloc(count, sizeof(*spec->dumps));
	if (spec->dumps == NULL)
		return kvmrun_error_set(p->err, KVMRUN_ERR_INTERNAL, "out of memory");
	for (size_t i = 0; i < count; i++) {
		struct kvmrun_range *range = &spec->dumps[i];
		struct json_object *member[2];
		char paths[2][JUTIL_PATH_MAX];

		if (get_entry(p, val, "dump", i, range_names, member, paths) < 0 ||
		    jutil_u64(member[0], paths[0], true, &range->address, p->err) < 0 ||
		    jutil_u64(member[1], paths[1], true, &range->length, p->err) < 0)
			return -1;
		if (range->length == 0)
			return jutil_fail(p->err, KVMRUN_ERR_BAD_REQUEST, paths[1],
					  "0 is not a length");
		/* The running total never passes the limit, so this cannot wrap. */
		if (range->length > p->limits->max_dump_bytes - total)
			return jutil_fail(
				p->err, KVMRUN_ERR_TOO_LARGE, "dump",
				"the lengths add up to more than the limit of %" PRIu64
				" bytes (--max-dump-bytes)",
				p->limits->max_dump_bytes);
		total += range->length;
	}
	spec->dump_count = count;
	return 0;
}

static int
parse_max_instructions(struct parse *p, struct json_object *val)
{
	return get_count(p, val, "max_instructions", p->limits->max_instructions,
			 "--max-instructions", &p->req->spec.max_instructions);
}

static int
parse_trace(struct parse *p, struct json_object *val)
{
	return jutil_bool(val, "trace", &p->req->spec.trace, p->err);
}

static int
parse_changes(struct parse *p, struct json_object *val)
{
	return jutil_bool(val, "changes", &p->req->spec.changes, p->err);
}

static int
parse_xstate(struct parse *p, struct json_object *val)
{
	return proto_state_parse_xstate(val, &p->req->spec.state, p->err);
}

static int
parse_msrs(struct parse *p, struct json_object *val)
{
	return proto_state_parse_msrs(val, &p->req->spec.state, p->err);
}

static int
parse_cpuid(struct parse *p, struct json_object *val)
{
	size_t count;

	if (get_list(p, val, "cpuid", p->limits->max_cpuid_entries,
		     "--max-cpuid-entries", &count) < 0)
		return -1;
	return proto_state_parse_cpuid(val, &p->req->spec.state, p->err);
}

static int
parse_return(struct parse *p, struct json_object *val)
{
	return proto_state_parse_returns(val, &p->req->spec.returns, p->err);
}

/* The parsers of a run's fields, by enum field; id and op are read first. */
static int (*const field_parsers[F_COUNT])(struct parse *, struct json_object *) = {
	[F_MODE] = parse_mode,
	[F_RING] = parse_ring,
	[F_IMAGE] = parse_image,
	[F_LOAD_ADDRESS] = parse_load_address,
	[F_REGIONS] = parse_regions,
	[F_MEMORY_SIZE] = parse_memory_size,
	[F_REGS] = parse_regs,
	[F_SEGMENTS] = parse_segments,
	[F_TIMEOUT_MS] = parse_timeout_ms,
	[F_LOG_PORTS] = parse_log_ports,
	[F_DUMP] = parse_dump,
	[F_MAX_INSTRUCTIONS] = parse_max_instructions,
	[F_TRACE] = parse_trace,
	[F_CHANGES] = parse_changes,
	[F_XSTATE] = parse_xstate,
	[F_MSRS] = parse_msrs,
	[F_CPUID] = parse_cpuid,
	[F_RETURN] = parse_return,
};

/* What a run needs of its fields taken together. */
static int
check_run(struct parse *p, uint32_t present)
{
	const struct kvmrun_spec *spec = &p->req->spec;

	if (!(present & 1u << F_IMAGE))
		return missing(p->err, "", "image");
	if (spec->ring == 3 && spec->mode == KVMRUN_MODE_REAL)
		return jutil_fail(p->err, KVMRUN_ERR_BAD_REQUEST, "ring",
				  "3 needs a mode other than real");
	if ((present & 1u << F_SEGMENTS) && spec->mode != KVMRUN_MODE_REAL)
		return jutil_fail(p->err, KVMRUN_ERR_BAD_REQUEST, "segments",
				  "only real mode takes segment selectors, not %s mode",
				  kvmrun_mode_names[spec->mode]);
	if (spec->trace && spec->max_instructions == 0)
		return jutil_fail(p->err, KVMRUN_ERR_BAD_REQUEST, "trace",
				  "needs max_instructions: a run is traced by "
				  "stepping it");
	return 0;
}

static int
parse_fields(struct parse *p, struct json_object *root)
{
	struct json_object *member[F_COUNT];
	uint32_t present;
	int op = KVMRUN_OP_RUN;

	if (jutil_fields(root, "", field_names, F_COUNT, false, member, &present,
			 p->err) < 0)
		return -1;
	if ((present & 1u << F_OP) &&
	    jutil_enum(member[F_OP], "op", "op", kvmrun_op_names, KVMRUN_OP_COUNT, &op,
		       p->err) < 0)
		return -1;
	p->req->op = (enum kvmrun_op)op;
	for (int f = F_OP + 1; f < F_COUNT; f++) {
		if (!(present & 1u << f))
			continue;
		if (op != KVMRUN_OP_RUN)
			return jutil_fail(p->err, KVMRUN_ERR_BAD_REQUEST,
					  field_names[f], "not allowed with op \"%s\"",
					  kvmrun_op_names[op]);
		if (field_parsers[f](p, member[f]) < 0)
			return -1;
	}
	return op == KVMRUN_OP_RUN ? check_run(p, present) : 0;
}

int
proto_request_parse(const char *line, size_t length, const struct proto_limits *limits,
		    struct proto_request *req, struct kvmrun_error *err)
{
	struct parse p = { .req = req, .limits = limits, .err = err };
	struct json_object *root = NULL;
	int rc;

	memset(req, 0, sizeof(*req));
	kvmrun_spec_init(&req->spec);
	req->spec.console_max = limits->max_console;
	req->spec.io_log_max = limits->max_io_log;
	req->spec.trace_max = limits->max_trace;
	req->spec.changes_max = limits->max_dump_bytes;
	if (length > limits->max_line) {
		rc = too_large(err, "request line", length, " bytes", limits->max_line,
			       "--max-line");
		req->id_json = strdup("null");
	} else {
		rc = jutil_read(line, length, MAX_REQUEST_VALUES, &root, &req->id_json,
				err);
	}
	if (req->id_json == NULL) {
		rc = kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "out of memory");
		goto out;
	}
	if (rc == 0)
		rc = parse_fields(&p, root);
out:
	json_object_put(root);
	return rc;
}

uint64_t
proto_request_held_bytes(const struct proto_request *req)
{
	uint64_t encoded = req->spec.image.length > 0
				   ? proto_base64_encoded_length(req->spec.image.length)
				   : 0;

	for (size_t i = 0; i < req->spec.region_count; i++)
		encoded += proto_base64_encoded_length(req->spec.regions[i].length);
	return encoded + req->payload_bytes;
}

/* Decodes *TEXT into BLOB, whose length the parse set, and drops the text. */
static int
decode_payload(char **text, struct kvmrun_blob *blob, const char *path,
	       struct kvmrun_error *err)
{
	long long decoded;

	if (*text == NULL)
		return 0;
	blob->data = malloc(blob->length);
	if (blob->data == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "out of memory");
	decoded = proto_base64_decode(*text, strlen(*text), blob->data);
	if (decoded < 0 || (uint64_t)decoded != blob->length)
		return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path,
				  "not canonical base64");
	free(*text);
	*text = NULL;
	return 0;
}

int
proto_request_decode_payloads(struct proto_request *req, struct kvmrun_error *err)
{
	if (decode_payload(&req->image_base64, &req->spec.image, "image", err) < 0)
		return -1;
	for (size_t i = 0; i < req->spec.region_count; i++) {
		char path[JUTIL_PATH_MAX];

		snprintf(path, sizeof(path), "regions[%zu].data", i);
		if (decode_payload(&req->region_base64[i], &req->spec.regions[i], path,
				   err) < 0)
			return -1;
	}
	return 0;
}

void
proto_request_free(struct proto_request *req)
{
	free(req->id_json);
	free(req->image_base64);
	for (size_t i = 0; req->region_base64 != NULL && i < req->spec.region_count;
	     i++)
		free(req->region_base64[i]);
	free(req->region_base64);
	kvmrun_spec_free(&req->spec);
	memset(req, 0, sizeof(*req));
}

static struct json_object *
new_blobs(const struct kvmrun_blob *blobs, size_t count, bool *failed)
{
	struct json_object *array = json_object_new_array();

	for (size_t i = 0; i < count; i++) {
		struct json_object *obj = json_object_new_object();

		jutil_add(obj, "address", json_object_new_uint64(blobs[i].address),
			  failed);
		jutil_add(obj, "data", jutil_new_base64(blobs[i].data, blobs[i].length),
			  failed);
		jutil_append(array, obj, failed);
	}
	return array;
}

/* Whether segment I has a descriptor cache to send. */
static bool
has_cache(const struct kvmrun_spec *spec, int i)
{
	return spec->state != NULL && (spec->state->segments_set & 1u << i);
}

/*
 * Only the selectors set, with their caches; a spec that sets them outside
 * real mode is sent as it is.
 */
static struct json_object *
new_segments(const struct kvmrun_spec *spec, bool *failed)
{
	struct json_object *obj = json_object_new_object();

	for (int i = 0; i < KVMRUN_SEG_REQUEST_COUNT; i++)
		if (has_cache(spec, i))
			jutil_add(obj, kvmrun_seg_names[i],
				  proto_state_new_cache(spec->segments[i],
							&spec->state->segments[i], failed),
				  failed);
		else if (spec->segments[i] != 0)
			jutil_add(obj, kvmrun_seg_names[i],
				  json_object_new_uint64(spec->segments[i]), failed);
	return obj;
}

static bool
segments_set(const struct kvmrun_spec *spec)
{
	for (int i = 0; i < KVMRUN_SEG_REQUEST_COUNT; i++)
		if (spec->segments[i] != 0 || has_cache(spec, i))
			return true;
	return false;
}

static struct json_object *
new_log_ports(const struct kvmrun_spec *spec, bool *failed)
{
	struct json_object *array = json_object_new_array();

	for (size_t i = 0; i < spec->log_port_count; i++)
		jutil_append(array, json_object_new_uint64(spec->log_ports[i]), failed);
	return array;
}

static struct json_object *
new_dumps(const struct kvmrun_spec *spec, bool *failed)
{
	struct json_object *array = json_object_new_array();

	for (size_t i = 0; i < spec->dump_count; i++) {
		struct json_object *obj = json_object_new_object();

		jutil_add(obj, "address",
			  json_object_new_uint64(spec->dumps[i].address), failed);
		jutil_add(obj, "length", json_object_new_uint64(spec->dumps[i].length),
			  failed);
		jutil_append(array, obj, failed);
	}
	return array;
}

/* The fields that differ from the protocol's defaults, and the image. */
char *
proto_format_request(const char *id_json, enum kvmrun_op op,
		     const struct kvmrun_spec *spec, size_t *length)
{
	struct json_object *root = jutil_new_message(id_json, true);
	bool failed = false;

	if (op != KVMRUN_OP_RUN) {
		jutil_add(root, "op", json_object_new_string(kvmrun_op_names[op]),
			  &failed);
		return jutil_line(root, failed, length);
	}
	if (spec->mode != KVMRUN_MODE_REAL)
		jutil_add(root, "mode",
			  json_object_new_string(kvmrun_mode_names[spec->mode]),
			  &failed);
	if (spec->ring != 0)
		jutil_add(root, "ring", json_object_new_uint64(spec->ring), &failed);
	jutil_add(root, "image", jutil_new_base64(spec->image.data, spec->image.length),
		  &failed);
	if (spec->image.address != 0)
		jutil_add(root, "load_address",
			  json_object_new_uint64(spec->image.address), &failed);
	if (spec->region_count > 0)
		jutil_add(root, "regions",
			  new_blobs(spec->regions, spec->region_count, &failed),
			  &failed);
	if (spec->memory_size != KVMRUN_DEFAULT_MEMORY_SIZE)
		jutil_add(root, "memory_size",
			  json_object_new_uint64(spec->memory_size), &failed);
	if (spec->regs_set != 0)
		jutil_add(root, "regs",
			  jutil_new_u64_set(kvmrun_reg_names, KVMRUN_REG_COUNT, spec->regs_set,
					    spec->regs, &failed),
			  &failed);
	if (segments_set(spec))
		jutil_add(root, "segments", new_segments(spec, &failed), &failed);
	if (spec->timeout_ms != KVMRUN_DEFAULT_TIMEOUT_MS)
		jutil_add(root, "timeout_ms", json_object_new_uint64(spec->timeout_ms),
			  &failed);
	if (spec->log_port_count > 0)
		jutil_add(root, "log_ports", new_log_ports(spec, &failed), &failed);
	if (spec->dump_count > 0)
		jutil_add(root, "dump", new_dumps(spec, &failed), &failed);
	if (spec->max_instructions != 0)
		jutil_add(root, "max_instructions",
			  json_object_new_uint64(spec->max_instructions), &failed);
	if (spec->trace)
		jutil_add(root, "trace", json_object_new_boolean(true), &failed);
	if (spec->changes)
		jutil_add(root, "changes", json_object_new_boolean(true), &failed);
	proto_state_add_request(root, spec, &failed);
	return jutil_line(root, failed, length);
}
