/*
 * Response lines: the daemon writes results, errors, pings and stats; the
 * client reads them back.  The numbers of each shape live in one table that
 * both directions walk, so what is written is exactly what is read.
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "kvmrun-proto.h"
#include "state.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* An unsigned integer member of a struct, by name, place and width. */
struct num_field {
	const char *key;
	size_t offset;
	size_t size;
};

#define NUM(k, t, m)                                                                   \
	{                                                                              \
		k, offsetof(t, m), sizeof(((t *)NULL)->m)                              \
	}

static const struct num_field io_fields[] = {
	NUM("port", struct kvmrun_exit, u.io.port),
	NUM("size", struct kvmrun_exit, u.io.size),
	NUM("count", struct kvmrun_exit, u.io.count),
};

static const struct num_field mmio_fields[] = {
	NUM("address", struct kvmrun_exit, u.mmio.address),
	NUM("length", struct kvmrun_exit, u.mmio.length),
};

static const struct num_field fail_entry_fields[] = {
	NUM("hardware_entry_failure_reason", struct kvmrun_exit,
	    u.fail_entry.hardware_reason),
};

static const struct num_field internal_fields[] = {
	NUM("suberror", struct kvmrun_exit, u.internal.suberror),
};

static const struct num_field exception_fields[] = {
	NUM("vector", struct kvmrun_exit, u.exception.vector),
	NUM("rip", struct kvmrun_exit, u.exception.rip),
	NUM("cs", struct kvmrun_exit, u.exception.cs),
};

static const struct num_field other_fields[] = {
	NUM("kvm_exit_reason", struct kvmrun_exit, u.other.kvm_exit_reason),
};

/* The numbers each exit reason adds to "exit"; the rest are in exit_extras. */
static const struct {
	const struct num_field *fields;
	size_t count;
} exit_numbers[KVMRUN_EXIT_REASON_COUNT] = {
	[KVMRUN_EXIT_IO] = { io_fields, NELEM(io_fields) },
	[KVMRUN_EXIT_MMIO] = { mmio_fields, NELEM(mmio_fields) },
	[KVMRUN_EXIT_FAIL_ENTRY] = { fail_entry_fields, NELEM(fail_entry_fields) },
	[KVMRUN_EXIT_INTERNAL_ERROR] = { internal_fields, NELEM(internal_fields) },
	[KVMRUN_EXIT_EXCEPTION] = { exception_fields, NELEM(exception_fields) },
	[KVMRUN_EXIT_OTHER] = { other_fields, NELEM(other_fields) },
};

static const struct num_field control_fields[] = {
	NUM("cr0", struct kvmrun_sregs, cr0),	NUM("cr2", struct kvmrun_sregs, cr2),
	NUM("cr3", struct kvmrun_sregs, cr3),	NUM("cr4", struct kvmrun_sregs, cr4),
	NUM("efer", struct kvmrun_sregs, efer),
};

static const struct num_field segment_fields[] = {
	NUM("selector", struct kvmrun_segment, selector),
	NUM("base", struct kvmrun_segment, base),
};

static const struct num_field io_record_fields[] = {
	NUM("port", struct kvmrun_io_record, port),
	NUM("size", struct kvmrun_io_record, size),
	NUM("value", struct kvmrun_io_record, value),
};

static const struct num_field trace_fields[] = {
	NUM("rip", struct kvmrun_trace_entry, rip),
	NUM("cs", struct kvmrun_trace_entry, cs),
};

static const struct num_field run_stats_fields[] = {
	NUM("exits", struct kvmrun_result, exits),
	NUM("run_ns", struct kvmrun_result, run_ns),
};

static const struct num_field stats_fields[] = {
	NUM("runs_in_flight", struct proto_stats, runs_in_flight),
	NUM("runs_queued", struct proto_stats, runs_queued),
	NUM("connections_open", struct proto_stats, connections_open),
	NUM("connections_total", struct proto_stats, connections_total),
	NUM("uptime_ms", struct proto_stats, uptime_ms),
	NUM("workers", struct proto_stats, workers),
	NUM("memory_in_use", struct proto_stats, memory_in_use),
};

const char *const proto_step_names[PROTO_STEP_COUNT] = {
	[PROTO_STEP_LOOP_TO_PARSER] = "loop_to_parser",
	[PROTO_STEP_PARSE] = "parse",
	[PROTO_STEP_PARSER_TO_LOOP] = "parser_to_loop",
	[PROTO_STEP_DISPATCH] = "dispatch",
	[PROTO_STEP_LOOP_TO_WORKER] = "loop_to_worker",
	[PROTO_STEP_VM_GET] = "vm_get",
	[PROTO_STEP_IMAGE_COPY] = "image_copy",
	[PROTO_STEP_VCPU_SETUP] = "vcpu_setup",
	[PROTO_STEP_FIRST_ENTRY] = "first_entry",
	[PROTO_STEP_RUN] = "run",
	[PROTO_STEP_COLLECT] = "collect",
	[PROTO_STEP_FORMAT] = "format",
	[PROTO_STEP_WORKER_TO_LOOP] = "worker_to_loop",
	[PROTO_STEP_WRITE] = "write",
};

static const char *const direction_names[] = { "in", "out" };
static const char *const limit_names[] = { "console", "io_log" };

/* Counts from the engine are bounded by their buffers; a bad one is cut there. */
static size_t
bounded(size_t count, size_t max)
{
	return count < max ? count : max;
}

static uint64_t
num_load(const void *base, const struct num_field *f)
{
	const uint8_t *p = (const uint8_t *)base + f->offset;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;

	switch (f->size) {
	case 1:
		return *p;
	case 2:
		memcpy(&v16, p, sizeof(v16));
		return v16;
	case 4:
		memcpy(&v32, p, sizeof(v32));
		return v32;
	default:
		memcpy(&v64, p, sizeof(v64));
		return v64;
	}
}

static void
num_store(void *base, const struct num_field *f, uint64_t v)
{
	uint8_t *p = (uint8_t *)base + f->offset;
	uint16_t v16 = (uint16_t)v;
	uint32_t v32 = (uint32_t)v;

	switch (f->size) {
	case 1:
		*p = (uint8_t)v;
		break;
	case 2:
		memcpy(p, &v16, sizeof(v16));
		break;
	case 4:
		memcpy(p, &v32, sizeof(v32));
		break;
	default:
		memcpy(p, &v, sizeof(v));
		break;
	}
}

static uint64_t
num_max(const struct num_field *f)
{
	return f->size >= 8 ? UINT64_MAX : (UINT64_C(1) << (8 * f->size)) - 1;
}

static void
add_numbers(struct json_object *obj, const void *base, const struct num_field *fields,
	    size_t count, bool *failed)
{
	for (size_t i = 0; i < count; i++)
		jutil_add(obj, fields[i].key,
			  json_object_new_uint64(num_load(base, &fields[i])), failed);
}

/* An object of NAMES[FIRST..COUNT) with VALUES of the same index. */
static struct json_object *
new_named(const char *const *names, int first, int count, const uint64_t *values,
	  bool *failed)
{
	struct json_object *obj = json_object_new_object();

	for (int i = first; i < count; i++)
		jutil_add(obj, names[i], json_object_new_uint64(values[i]), failed);
	return obj;
}

/*
 * BYTES as a JSON string.  JSON text is UTF-8, so each byte that is not part
 * of a valid UTF-8 sequence becomes U+FFFD; *EXACT says whether none did.
 */
static struct json_object *
new_text(const uint8_t *bytes, size_t length, bool *exact)
{
	struct json_object *val;
	size_t used = 0, n;
	char *text;

	*exact = true;
	if (length > INT_MAX / 3)
		return NULL;
	for (size_t i = 0; i < length; i += n) {
		n = jutil_utf8_length(bytes + i, length - i);
		if (n == 0) {
			*exact = false;
			break;
		}
	}
	if (*exact)
		return json_object_new_string_len(length > 0 ? (const char *)bytes : "",
						  (int)length);
	text = malloc(length * 3);
	if (text == NULL)
		return NULL;
	for (size_t i = 0; i < length; i += n) {
		n = jutil_utf8_length(bytes + i, length - i);
		if (n == 0) {
			memcpy(text + used, "\xef\xbf\xbd", 3);
			used += 3;
			n = 1;
		} else {
			memcpy(text + used, bytes + i, n);
			used += n;
		}
	}
	val = json_object_new_string_len(text, (int)used);
	free(text);
	return val;
}

/* "66 0f ef c0" for LENGTH >= 1 bytes. */
static struct json_object *
new_instruction(const uint8_t *insn, size_t length)
{
	static const char digits[] = "0123456789abcdef";
	char text[KVMRUN_INSN_BYTES_MAX * 3];

	for (size_t i = 0; i < length; i++) {
		text[3 * i] = digits[insn[i] >> 4];
		text[3 * i + 1] = digits[insn[i] & 0xf];
		text[3 * i + 2] = ' ';
	}
	text[3 * length - 1] = '\0';
	return json_object_new_string(text);
}

/* Whatever an exit adds beyond its table of numbers. */
static void
add_exit_extras(struct json_object *obj, const struct kvmrun_exit *e, bool *failed)
{
	struct json_object *data;
	const char *name;
	size_t n;

	switch (e->reason) {
	case KVMRUN_EXIT_IO:
		name = direction_names[e->u.io.is_in ? 0 : 1];
		n = bounded(e->u.io.data_length, sizeof(e->u.io.data));
		jutil_add(obj, "direction", json_object_new_string(name), failed);
		jutil_add(obj, "data", jutil_new_base64(e->u.io.data, n), failed);
		break;
	case KVMRUN_EXIT_MMIO:
		n = bounded(e->u.mmio.length, sizeof(e->u.mmio.data));
		jutil_add(obj, "is_write", json_object_new_boolean(e->u.mmio.is_write),
			  failed);
		jutil_add(obj, "data", jutil_new_base64(e->u.mmio.data, n), failed);
		break;
	case KVMRUN_EXIT_INTERNAL_ERROR:
		data = json_object_new_array();
		n = bounded(e->u.internal.data_count, KVMRUN_INTERNAL_DATA_MAX);
		for (size_t i = 0; i < n; i++)
			jutil_append(data,
				     json_object_new_uint64(e->u.internal.data[i]),
				     failed);
		jutil_add(obj, "data", data, failed);
		n = bounded(e->u.internal.insn_length, KVMRUN_INSN_BYTES_MAX);
		if (n > 0)
			jutil_add(obj, "instruction",
				  new_instruction(e->u.internal.insn, n), failed);
		break;
	case KVMRUN_EXIT_EXCEPTION:
		name = kvmrun_vector_name(e->u.exception.vector);
		if (name != NULL)
			jutil_add(obj, "name", json_object_new_string(name), failed);
		if (e->u.exception.has_error_code)
			jutil_add(obj, "error_code",
				  json_object_new_uint64(e->u.exception.error_code),
				  failed);
		if (e->u.exception.vector == 14)
			jutil_add(obj, "cr2",
				  json_object_new_uint64(e->u.exception.cr2), failed);
		break;
	case KVMRUN_EXIT_OUTPUT_LIMIT:
		name = limit_names[e->u.output_limit.console ? 0 : 1];
		jutil_add(obj, "limit", json_object_new_string(name), failed);
		break;
	default:
		break;
	}
}

static struct json_object *
new_exit(const struct kvmrun_exit *exit, bool *failed)
{
	struct json_object *obj;

	/* Not a reason the protocol has a name for: a bug, not a guest's doing. */
	if ((unsigned int)exit->reason >= KVMRUN_EXIT_REASON_COUNT)
		return NULL;
	obj = json_object_new_object();
	jutil_add(obj, "reason",
		  json_object_new_string(kvmrun_exit_reason_names[exit->reason]),
		  failed);
	add_numbers(obj, exit, exit_numbers[exit->reason].fields,
		    exit_numbers[exit->reason].count, failed);
	add_exit_extras(obj, exit, failed);
	return obj;
}

static struct json_object *
new_sregs(const struct kvmrun_sregs *sregs, bool *failed)
{
	struct json_object *obj = json_object_new_object();

	add_numbers(obj, sregs, control_fields, NELEM(control_fields), failed);
	for (int i = 0; i < KVMRUN_SEG_COUNT; i++) {
		struct json_object *segment = json_object_new_object();

		add_numbers(segment, &sregs->segments[i], segment_fields,
			    NELEM(segment_fields), failed);
		jutil_add(obj, kvmrun_seg_names[i], segment, failed);
	}
	return obj;
}

/* KEY: how paged mode is paged; absent for NONE, so other answers are unchanged. */
static void
add_paging(struct json_object *obj, const char *key, enum kvmrun_paging paging, bool *failed)
{
	if (paging != KVMRUN_PAGING_NONE)
		jutil_add(obj, key, json_object_new_string(kvmrun_paging_names[paging]), failed);
}

/* "console", and "console_base64" with the exact bytes when they are not UTF-8. */
static void
add_console(struct json_object *root, const struct kvmrun_result *result, bool *failed)
{
	bool exact;

	jutil_add(root, "console",
		  new_text(result->console, result->console_length, &exact), failed);
	if (!exact)
		jutil_add(root, "console_base64",
			  jutil_new_base64(result->console, result->console_length),
			  failed);
	if (result->console_truncated)
		jutil_add(root, "console_truncated", json_object_new_boolean(true),
			  failed);
}

/* "io_log" and "trace": COUNT objects of FIELDS, from records of SIZE bytes. */
static struct json_object *
new_records(const void *records, size_t size, size_t count, const struct num_field *fields,
	    size_t field_count, bool *failed)
{
	struct json_object *array = json_object_new_array();

	for (size_t i = 0; i < count; i++) {
		struct json_object *record = json_object_new_object();

		add_numbers(record, (const uint8_t *)records + i * size, fields, field_count,
			    failed);
		jutil_append(array, record, failed);
	}
	return array;
}

/* "dump" and "changes": {"address", "data"} objects. */
static struct json_object *
new_blob_list(const struct kvmrun_blob *blobs, size_t count, bool *failed)
{
	struct json_object *array = json_object_new_array();

	for (size_t i = 0; i < count; i++) {
		const struct kvmrun_blob *dump = &blobs[i];
		struct json_object *obj = json_object_new_object();

		jutil_add(obj, "address", json_object_new_uint64(dump->address),
			  failed);
		jutil_add(obj, "data", jutil_new_base64(dump->data, dump->length),
			  failed);
		jutil_append(array, obj, failed);
	}
	return array;
}

/* "trace" and "changes" when the run was asked for them, each with its flag. */
static void
add_observed(struct json_object *root, const struct kvmrun_result *result, bool *failed)
{
	if (result->trace != NULL) {
		jutil_add(root, "trace",
			  new_records(result->trace, sizeof(*result->trace),
				      result->trace_count, trace_fields, NELEM(trace_fields),
				      failed),
			  failed);
		if (result->trace_truncated)
			jutil_add(root, "trace_truncated", json_object_new_boolean(true),
				  failed);
	}
	if (result->changes != NULL) {
		jutil_add(root, "changes",
			  new_blob_list(result->changes, result->change_count, failed),
			  failed);
		if (result->changes_truncated)
			jutil_add(root, "changes_truncated",
				  json_object_new_boolean(true), failed);
	}
}

char *
proto_format_result(const char *id_json, const struct kvmrun_result *result,
		    size_t *length)
{
	struct json_object *root = jutil_new_message(id_json, false);
	struct json_object *stats = json_object_new_object();
	struct json_object *sregs;
	bool failed = false;

	jutil_add(root, "ok", json_object_new_boolean(true), &failed);
	jutil_add(root, "exit", new_exit(&result->exit, &failed), &failed);
	jutil_add(
		root, "regs",
		new_named(kvmrun_reg_names, 0, KVMRUN_REG_COUNT, result->regs, &failed),
		&failed);
	sregs = new_sregs(&result->sregs, &failed);
	proto_state_add_descriptors(sregs, result, &failed);
	jutil_add(root, "sregs", sregs, &failed);
	add_paging(root, "paging", result->paging, &failed);
	add_console(root, result, &failed);
	jutil_add(root, "io_log",
		  new_records(result->io_log, sizeof(*result->io_log), result->io_log_count,
			      io_record_fields, NELEM(io_record_fields), &failed),
		  &failed);
	if (result->io_log_truncated)
		jutil_add(root, "io_log_truncated", json_object_new_boolean(true),
			  &failed);
	jutil_add(root, "dump", new_blob_list(result->dumps, result->dump_count, &failed),
		  &failed);
	add_observed(root, result, &failed);
	proto_state_add_result(root, result, &failed);
	add_numbers(stats, result, run_stats_fields, NELEM(run_stats_fields), &failed);
	jutil_add(root, "stats", stats, &failed);
	return jutil_line(root, failed, length);
}

char *
proto_format_error(const char *id_json, const struct kvmrun_error *err, size_t *length)
{
	struct json_object *root = jutil_new_message(id_json, false);
	struct json_object *error = json_object_new_object();
	enum kvmrun_errcode code = err->code;
	bool failed = false, exact;

	/* An error without a proper code is the daemon's own fault. */
	if (code <= KVMRUN_OK || code >= KVMRUN_ERR_COUNT)
		code = KVMRUN_ERR_INTERNAL;
	jutil_add(root, "ok", json_object_new_boolean(false), &failed);
	jutil_add(error, "code", json_object_new_string(kvmrun_errcode_names[code]),
		  &failed);
	/* A message cut at its buffer's end may have split a UTF-8 sequence. */
	jutil_add(error, "message",
		  new_text((const uint8_t *)err->message,
			   strnlen(err->message, sizeof(err->message)), &exact),
		  &failed);
	jutil_add(root, "error", error, &failed);
	return jutil_line(root, failed, length);
}

/* Room for every field of a result but its id, console, io log and dumps. */
#define RESULT_FIXED_MAX 8192u
/* One io log record at its longest, with its comma. */
#define IO_RECORD_MAX sizeof("{\"port\":65535,\"size\":4,\"value\":4294967295},")
/* One dump's fields around its data, with its comma. */
#define DUMP_FIELDS_MAX sizeof("{\"address\":18446744073709551615,\"data\":\"\"},")
/* One trace entry at its longest, with its comma. */
#define TRACE_ENTRY_MAX sizeof("{\"rip\":18446744073709551615,\"cs\":65535},")

uint64_t
proto_result_max_length(const struct proto_limits *limits)
{
	/* A console byte is at most "\u001f" as text, plus base64 when not UTF-8. */
	uint64_t console = 6 * (uint64_t)limits->max_console +
			   proto_base64_encoded_length(limits->max_console);
	/* Each dump's base64 may round up by a block. */
	uint64_t dumps = proto_base64_encoded_length(limits->max_dump_bytes) +
			 (uint64_t)limits->max_dumps * (DUMP_FIELDS_MAX + 4);

	/*
	 * Each entry of changes pays KVMRUN_CHANGE_COST, more than its fields
	 * and base64 rounding, from the same bound: 4/3 of it at most.
	 */
	uint64_t changes = proto_base64_encoded_length(limits->max_dump_bytes);

	return RESULT_FIXED_MAX + limits->max_line + console +
	       (uint64_t)limits->max_io_log * IO_RECORD_MAX + dumps +
	       (uint64_t)limits->max_trace * TRACE_ENTRY_MAX + changes +
	       proto_state_max_length();
}

/* The "kvm" object of a ping: available with the API and modes, or why not. */
static struct json_object *
new_kvm_status(const struct proto_kvm_status *kvm, bool *failed)
{
	struct json_object *obj = json_object_new_object();
	struct json_object *modes;
	bool exact;

	jutil_add(obj, "available", json_object_new_boolean(kvm->available), failed);
	if (!kvm->available) {
		jutil_add(obj, "reason",
			  new_text((const uint8_t *)kvm->reason,
				   strnlen(kvm->reason, sizeof(kvm->reason)), &exact),
			  failed);
		return obj;
	}
	jutil_add(obj, "api_version", json_object_new_int(kvm->api_version), failed);
	modes = json_object_new_array();
	for (int i = 0; i < KVMRUN_MODE_COUNT; i++)
		if (kvm->mode_supported[i])
			jutil_append(modes, json_object_new_string(kvmrun_mode_names[i]),
				     failed);
	jutil_add(obj, "modes", modes, failed);
	add_paging(obj, "paged", kvm->paged, failed);
	return obj;
}

char *
proto_format_ping(const char *id_json, const char *version,
		  const struct proto_kvm_status *kvm, size_t *length)
{
	struct json_object *root = jutil_new_message(id_json, false);
	bool failed = false;

	jutil_add(root, "ok", json_object_new_boolean(true), &failed);
	jutil_add(root, "version", json_object_new_string(version), &failed);
	jutil_add(root, "protocol", json_object_new_int(KVMRUN_PROTOCOL_VERSION),
		  &failed);
	/* Kept from protocol 2 for older readers; null without KVM. */
	if (kvm->available)
		jutil_add(root, "kvm_api", json_object_new_int(kvm->api_version),
			  &failed);
	else if (root == NULL || json_object_object_add(root, "kvm_api", NULL) != 0)
		failed = true;
	jutil_add(root, "kvm", new_kvm_status(kvm, &failed), &failed);
	return jutil_line(root, failed, length);
}

char *
proto_format_stats(const char *id_json, const struct proto_stats *stats,
		   const struct proto_steps *steps, size_t *length)
{
	struct json_object *root = jutil_new_message(id_json, false);
	struct json_object *obj = json_object_new_object();
	struct json_object *steps_obj = json_object_new_object();
	bool failed = false;

	jutil_add(root, "ok", json_object_new_boolean(true), &failed);
	jutil_add(obj, "runs",
		  new_named(kvmrun_exit_reason_names, 0, KVMRUN_EXIT_REASON_COUNT,
			    stats->runs, &failed),
		  &failed);
	jutil_add(obj, "errors",
		  new_named(kvmrun_errcode_names, KVMRUN_OK + 1, KVMRUN_ERR_COUNT,
			    stats->errors, &failed),
		  &failed);
	add_numbers(obj, stats, stats_fields, NELEM(stats_fields), &failed);
	jutil_add(steps_obj, "runs", json_object_new_uint64(steps->runs), &failed);
	for (int i = 0; i < PROTO_STEP_COUNT; i++)
		jutil_add(steps_obj, proto_step_names[i],
			  json_object_new_uint64(steps->ns[i]), &failed);
	jutil_add(obj, "steps_ns", steps_obj, &failed);
	jutil_add(root, "stats", obj, &failed);
	return jutil_line(root, failed, length);
}

/*
 * Reading.  Responses may carry fields this client does not know (a newer
 * daemon's additions) and those are skipped; the known ones must be there
 * and of their type.
 */

/* The member KEY of the object OBJ at PATH; SUB gets the member's path. */
static int
get_member(struct json_object *obj, const char *path, const char *key, char *sub,
	   struct json_object **val, struct kvmrun_error *err)
{
	snprintf(sub, JUTIL_PATH_MAX, "%s%s%s", path, path[0] != '\0' ? "." : "", key);
	if (!json_object_object_get_ex(obj, key, val))
		return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, sub, "missing");
	return 0;
}

static int
get_object(struct json_object *obj, const char *path, const char *key, char *sub,
	   struct json_object **val, struct kvmrun_error *err)
{
	if (get_member(obj, path, key, sub, val, err) < 0)
		return -1;
	return jutil_object(*val, sub, err);
}

static int
get_numbers(struct json_object *obj, const char *path, void *base,
	    const struct num_field *fields, size_t count, struct kvmrun_error *err)
{
	for (size_t i = 0; i < count; i++) {
		char sub[JUTIL_PATH_MAX];
		struct json_object *val;
		uint64_t v;

		if (get_member(obj, path, fields[i].key, sub, &val, err) < 0 ||
		    jutil_uint(val, sub, num_max(&fields[i]), &v, err) < 0)
			return -1;
		num_store(base, &fields[i], v);
	}
	return 0;
}

static int
get_named(struct json_object *obj, const char *path, const char *const *names,
	  int first, int count, uint64_t *values, struct kvmrun_error *err)
{
	for (int i = first; i < count; i++) {
		char sub[JUTIL_PATH_MAX];
		struct json_object *val;

		if (get_member(obj, path, names[i], sub, &val, err) < 0 ||
		    jutil_u64(val, sub, false, &values[i], err) < 0)
			return -1;
	}
	return 0;
}

static int
get_bool(struct json_object *obj, const char *path, const char *key, bool *out,
	 struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX];
	struct json_object *val;

	if (get_member(obj, path, key, sub, &val, err) < 0)
		return -1;
	return jutil_bool(val, sub, out, err);
}

/* An optional boolean, false when absent. */
static int
get_flag(struct json_object *obj, const char *key, bool *out, struct kvmrun_error *err)
{
	struct json_object *val;

	*out = false;
	if (!json_object_object_get_ex(obj, key, &val))
		return 0;
	return jutil_bool(val, key, out, err);
}

static int
get_enum(struct json_object *obj, const char *path, const char *key,
	 const char *const *names, int count, int *out, struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX];
	struct json_object *val;

	if (get_member(obj, path, key, sub, &val, err) < 0)
		return -1;
	return jutil_enum(val, sub, key, names, count, out, err);
}

/* Base64 bytes of at most MAX into OUT (malloc'ed when *OUT is NULL). */
static int
get_bytes(struct json_object *obj, const char *path, const char *key, size_t max,
	  uint8_t **out, size_t *length, struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX];
	struct json_object *val;
	const char *text;
	size_t text_length;

	if (get_member(obj, path, key, sub, &val, err) < 0 ||
	    jutil_base64(val, sub, &text, &text_length, length, err) < 0)
		return -1;
	if (*length > max)
		return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, sub,
				  "%zu bytes, more than %zu", *length, max);
	if (*out == NULL && (*out = malloc(*length > 0 ? *length : 1)) == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "out of memory");
	proto_base64_decode(text, text_length, *out);
	return 0;
}

/* "66 0f ef c0" back into bytes. */
static int
get_instruction(struct json_object *val, struct kvmrun_exit *exit,
		struct kvmrun_error *err)
{
	const char *text;
	size_t length, count;

	if (jutil_string(val, "exit.instruction", &text, &length, err) < 0)
		return -1;
	count = (length + 1) / 3;
	if ((length + 1) % 3 != 0 || count == 0 || count > KVMRUN_INSN_BYTES_MAX)
		goto bad;
	for (size_t i = 0; i < count; i++) {
		int high = jutil_hex_value((unsigned char)text[3 * i]);
		int low = jutil_hex_value((unsigned char)text[3 * i + 1]);

		if (high < 0 || low < 0 || (i + 1 < count && text[3 * i + 2] != ' '))
			goto bad;
		exit->u.internal.insn[i] = (uint8_t)(high << 4 | low);
	}
	exit->u.internal.insn_length = (uint32_t)count;
	return 0;

bad:
	return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, "exit.instruction",
			  "expected 1 to %d hex bytes separated by spaces",
			  KVMRUN_INSN_BYTES_MAX);
}

static int
get_internal_data(struct json_object *obj, struct kvmrun_exit *exit,
		  struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX];
	struct json_object *val;
	size_t count;

	if (get_member(obj, "exit", "data", sub, &val, err) < 0 ||
	    jutil_array(val, sub, &count, err) < 0)
		return -1;
	if (count > KVMRUN_INTERNAL_DATA_MAX)
		return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, sub,
				  "%zu entries, more than %d", count,
				  KVMRUN_INTERNAL_DATA_MAX);
	for (size_t i = 0; i < count; i++) {
		char path[JUTIL_PATH_MAX];

		snprintf(path, sizeof(path), "exit.data[%zu]", i);
		if (jutil_u64(json_object_array_get_idx(val, i), path, false,
			      &exit->u.internal.data[i], err) < 0)
			return -1;
	}
	exit->u.internal.data_count = (uint32_t)count;
	return 0;
}

static int
get_exit_extras(struct json_object *obj, struct kvmrun_exit *exit,
		struct kvmrun_error *err)
{
	struct json_object *val;
	uint8_t *data;
	size_t length;
	uint64_t v;
	int i;

	switch (exit->reason) {
	case KVMRUN_EXIT_IO:
		data = exit->u.io.data;
		if (get_enum(obj, "exit", "direction", direction_names,
			     NELEM(direction_names), &i, err) < 0 ||
		    get_bytes(obj, "exit", "data", KVMRUN_IO_DATA_MAX, &data, &length,
			      err) < 0)
			return -1;
		exit->u.io.is_in = i == 0;
		exit->u.io.data_length = (uint32_t)length;
		return 0;
	case KVMRUN_EXIT_MMIO:
		data = exit->u.mmio.data;
		if (get_bool(obj, "exit", "is_write", &exit->u.mmio.is_write, err) < 0)
			return -1;
		return get_bytes(obj, "exit", "data", sizeof(exit->u.mmio.data), &data,
				 &length, err);
	case KVMRUN_EXIT_INTERNAL_ERROR:
		if (get_internal_data(obj, exit, err) < 0)
			return -1;
		if (json_object_object_get_ex(obj, "instruction", &val))
			return get_instruction(val, exit, err);
		return 0;
	case KVMRUN_EXIT_EXCEPTION:
		if (json_object_object_get_ex(obj, "error_code", &val)) {
			if (jutil_uint(val, "exit.error_code", UINT32_MAX, &v, err) < 0)
				return -1;
			exit->u.exception.has_error_code = true;
			exit->u.exception.error_code = (uint32_t)v;
		}
		if (json_object_object_get_ex(obj, "cr2", &val))
			return jutil_u64(val, "exit.cr2", false, &exit->u.exception.cr2,
					 err);
		return 0;
	case KVMRUN_EXIT_OUTPUT_LIMIT:
		if (get_enum(obj, "exit", "limit", limit_names, NELEM(limit_names), &i,
			     err) < 0)
			return -1;
		exit->u.output_limit.console = i == 0;
		return 0;
	default:
		return 0;
	}
}

/*
 * A response whole and well-formed but for one exit reason or error code
 * this side has no name for: -1 with ERR saying which, its code
 * KVMRUN_ERR_UNKNOWN (see proto_response_parse).
 */
static int
newer_fail(struct kvmrun_error *err, const struct kvmrun_error *newer)
{
	*err = *newer;
	err->code = KVMRUN_ERR_UNKNOWN;
	return -1;
}

/*
 * Whether the string at KEY of OBJ has the form of a protocol name, 1 to
 * KVMRUN_NAME_MAX - 1 of [a-z0-9_], so that a name a newer daemon added
 * can be told from garbage; it is copied into NAME when so.
 */
static bool
get_newer_name(struct json_object *obj, const char *key, char *name)
{
	struct json_object *val;
	const char *text;
	int length;

	if (!json_object_object_get_ex(obj, key, &val) ||
	    !json_object_is_type(val, json_type_string))
		return false;
	text = json_object_get_string(val);
	length = json_object_get_string_len(val);
	if (length < 1 || length >= KVMRUN_NAME_MAX)
		return false;
	for (int i = 0; i < length; i++)
		if (!((text[i] >= 'a' && text[i] <= 'z') ||
		      (text[i] >= '0' && text[i] <= '9') || text[i] == '_'))
			return false;
	memcpy(name, text, (size_t)length);
	name[length] = '\0';
	return true;
}

/* 0, 1 for a reason newer than this side (ERR saying so), or -1. */
static int
get_exit(struct json_object *root, struct kvmrun_exit *exit, struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX];
	struct json_object *obj;
	int reason;

	if (get_object(root, "", "exit", sub, &obj, err) < 0)
		return -1;
	if (get_enum(obj, "exit", "reason", kvmrun_exit_reason_names,
		     KVMRUN_EXIT_REASON_COUNT, &reason, err) < 0) {
		if (!get_newer_name(obj, "reason", exit->u.unknown.name))
			return -1;
		/* Its fields are its own: none is read. */
		exit->reason = KVMRUN_EXIT_UNKNOWN;
		return 1;
	}
	exit->reason = (enum kvmrun_exit_reason)reason;
	if (get_numbers(obj, "exit", exit, exit_numbers[reason].fields,
			exit_numbers[reason].count, err) < 0)
		return -1;
	return get_exit_extras(obj, exit, err);
}

static int
get_sregs(struct json_object *root, struct kvmrun_sregs *sregs,
	  struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX];
	struct json_object *obj;

	if (get_object(root, "", "sregs", sub, &obj, err) < 0 ||
	    get_numbers(obj, "sregs", sregs, control_fields, NELEM(control_fields),
			err) < 0)
		return -1;
	for (int i = 0; i < KVMRUN_SEG_COUNT; i++) {
		char path[JUTIL_PATH_MAX];
		struct json_object *segment;

		if (get_object(obj, "sregs", kvmrun_seg_names[i], path, &segment, err) <
			    0 ||
		    get_numbers(segment, path, &sregs->segments[i], segment_fields,
				NELEM(segment_fields), err) < 0)
			return -1;
	}
	return 0;
}

/* The exact bytes from console_base64 when there is one, else console's text. */
static int
get_console(struct json_object *root, struct kvmrun_result *result,
	    struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX];
	struct json_object *val;
	const char *text;
	size_t length;

	if (get_member(root, "", "console", sub, &val, err) < 0 ||
	    jutil_string(val, sub, &text, &length, err) < 0)
		return -1;
	if (json_object_object_get_ex(root, "console_base64", NULL))
		return get_bytes(root, "", "console_base64", SIZE_MAX, &result->console,
				 &result->console_length, err);
	result->console = malloc(length > 0 ? length : 1);
	if (result->console == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "out of memory");
	memcpy(result->console, text, length);
	result->console_length = length;
	return 0;
}

/* A list of objects: *COUNT of them, each SIZE bytes in a new *ITEMS. */
static int
get_list(struct json_object *root, const char *key, size_t size, void **items,
	 size_t *count, struct json_object **array, struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX];

	if (get_member(root, "", key, sub, array, err) < 0 ||
	    jutil_array(*array, sub, count, err) < 0)
		return -1;
	*items = calloc(*count > 0 ? *count : 1, size);
	if (*items == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "out of memory");
	return 0;
}

/*
 * "io_log" and "trace": KEY's objects of FIELDS into *ITEMS, records of SIZE
 * bytes; *COUNT those read, so a failure frees what there is.
 */
static int
get_records(struct json_object *root, const char *key, size_t size,
	    const struct num_field *fields, size_t field_count, void **items, size_t *count,
	    struct kvmrun_error *err)
{
	struct json_object *array;
	size_t n;

	if (get_list(root, key, size, items, &n, &array, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct json_object *record = json_object_array_get_idx(array, i);
		char path[JUTIL_PATH_MAX];

		snprintf(path, sizeof(path), "%s[%zu]", key, i);
		if (jutil_object(record, path, err) < 0 ||
		    get_numbers(record, path, (uint8_t *)*items + i * size, fields,
				field_count, err) < 0)
			return -1;
		*count = i + 1;
	}
	return 0;
}

static int
get_io_log(struct json_object *root, struct kvmrun_result *result,
	   struct kvmrun_error *err)
{
	void *items = NULL;
	int rc = get_records(root, "io_log", sizeof(*result->io_log), io_record_fields,
			     NELEM(io_record_fields), &items, &result->io_log_count, err);

	result->io_log = items;
	return rc;
}

/* "dump" and "changes": KEY's {"address", "data"} objects into *BLOBS. */
static int
get_blob_list(struct json_object *root, const char *key, struct kvmrun_blob **blobs,
	      size_t *blob_count, struct kvmrun_error *err)
{
	struct json_object *array;
	void *items;
	size_t count;

	if (get_list(root, key, sizeof(**blobs), &items, &count, &array, err) < 0)
		return -1;
	*blobs = items;
	for (size_t i = 0; i < count; i++) {
		struct json_object *obj = json_object_array_get_idx(array, i);
		struct kvmrun_blob *dump = &(*blobs)[i];
		char path[JUTIL_PATH_MAX], sub[JUTIL_PATH_MAX];
		struct json_object *val;

		snprintf(path, sizeof(path), "%s[%zu]", key, i);
		*blob_count = i + 1;
		if (jutil_object(obj, path, err) < 0 ||
		    get_member(obj, path, "address", sub, &val, err) < 0 ||
		    jutil_u64(val, sub, false, &dump->address, err) < 0 ||
		    get_bytes(obj, path, "data", SIZE_MAX, &dump->data, &dump->length,
			      err) < 0)
			return -1;
	}
	return 0;
}

static int
get_trace(struct json_object *root, struct kvmrun_result *result,
	  struct kvmrun_error *err)
{
	void *items = NULL;
	int rc = get_records(root, "trace", sizeof(*result->trace), trace_fields,
			     NELEM(trace_fields), &items, &result->trace_count, err);

	result->trace = items;
	return rc;
}

/* "trace" and "changes", each only in the answer to a run that asked for it. */
static int
get_observed(struct json_object *root, struct kvmrun_result *result,
	     struct kvmrun_error *err)
{
	if (json_object_object_get_ex(root, "trace", NULL) &&
	    (get_trace(root, result, err) < 0 ||
	     get_flag(root, "trace_truncated", &result->trace_truncated, err) < 0))
		return -1;
	if (json_object_object_get_ex(root, "changes", NULL) &&
	    (get_blob_list(root, "changes", &result->changes, &result->change_count,
			   err) < 0 ||
	     get_flag(root, "changes_truncated", &result->changes_truncated, err) < 0))
		return -1;
	return 0;
}

/* KEY, when present: "legacy" or "compat" (NONE is never written). */
static int
get_paging(struct json_object *obj, const char *path, const char *key,
	   enum kvmrun_paging *paging, struct kvmrun_error *err)
{
	int kind;

	*paging = KVMRUN_PAGING_NONE;
	if (!json_object_object_get_ex(obj, key, NULL))
		return 0;
	if (get_enum(obj, path, key, kvmrun_paging_names + 1, KVMRUN_PAGING_COUNT - 1, &kind,
		     err) < 0)
		return -1;
	*paging = (enum kvmrun_paging)(kind + 1);
	return 0;
}

static int
get_result(struct json_object *root, struct kvmrun_result *result,
	   struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX];
	struct json_object *obj;
	struct kvmrun_error newer;
	int r;

	r = get_exit(root, &result->exit, err);
	if (r < 0)
		return -1;
	if (r == 1)
		newer = *err;
	if (get_object(root, "", "regs", sub, &obj, err) < 0 ||
	    get_named(obj, "regs", kvmrun_reg_names, 0, KVMRUN_REG_COUNT, result->regs,
		      err) < 0 ||
	    get_sregs(root, &result->sregs, err) < 0 ||
	    get_paging(root, "", "paging", &result->paging, err) < 0 ||
	    get_console(root, result, err) < 0 ||
	    get_flag(root, "console_truncated", &result->console_truncated, err) < 0 ||
	    get_io_log(root, result, err) < 0 ||
	    get_flag(root, "io_log_truncated", &result->io_log_truncated, err) < 0 ||
	    get_blob_list(root, "dump", &result->dumps, &result->dump_count, err) < 0 ||
	    get_observed(root, result, err) < 0 ||
	    proto_state_get_result(root, result, err) < 0 ||
	    get_object(root, "", "stats", sub, &obj, err) < 0 ||
	    get_numbers(obj, "stats", result, run_stats_fields, NELEM(run_stats_fields),
			err) < 0) {
		/* The unknown reason is the first thing wrong. */
		if (r == 1)
			*err = newer;
		return -1;
	}
	return r == 1 ? newer_fail(err, &newer) : 0;
}

static int
get_error(struct json_object *root, struct kvmrun_error *error,
	  struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX], name[KVMRUN_NAME_MAX];
	struct json_object *obj, *val;
	struct kvmrun_error newer;
	const char *text;
	size_t length;
	int code, r = 0;

	if (get_object(root, "", "error", sub, &obj, err) < 0)
		return -1;
	if (get_enum(obj, "error", "code", kvmrun_errcode_names + 1,
		     KVMRUN_ERR_COUNT - 1, &code, err) < 0) {
		/* "ok" is no error's name, not even a newer one. */
		if (!get_newer_name(obj, "code", name) ||
		    strcmp(name, kvmrun_errcode_names[KVMRUN_OK]) == 0)
			return -1;
		newer = *err;
		r = 1;
	}
	if (get_member(obj, "error", "message", sub, &val, err) < 0 ||
	    jutil_string(val, sub, &text, &length, err) < 0) {
		if (r == 1)
			*err = newer;
		return -1;
	}
	if (r == 0) {
		kvmrun_error_set(error, (enum kvmrun_errcode)(code + 1), "%s", text);
		return 0;
	}
	kvmrun_error_set(error, KVMRUN_ERR_UNKNOWN, "%s: %s", name, text);
	return newer_fail(err, &newer);
}

static int
get_kvm_status(struct json_object *root, struct proto_kvm_status *kvm,
	       struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX], path[JUTIL_PATH_MAX];
	struct json_object *obj, *val;
	const char *text;
	size_t length, count;
	uint64_t v;

	memset(kvm, 0, sizeof(*kvm));
	if (get_object(root, "", "kvm", path, &obj, err) < 0 ||
	    get_member(obj, path, "available", sub, &val, err) < 0 ||
	    jutil_bool(val, sub, &kvm->available, err) < 0)
		return -1;
	if (!kvm->available) {
		if (get_member(obj, path, "reason", sub, &val, err) < 0 ||
		    jutil_string(val, sub, &text, &length, err) < 0)
			return -1;
		snprintf(kvm->reason, sizeof(kvm->reason), "%.*s", (int)length, text);
		return 0;
	}
	if (get_member(obj, path, "api_version", sub, &val, err) < 0 ||
	    jutil_uint(val, sub, INT_MAX, &v, err) < 0 ||
	    get_member(obj, path, "modes", sub, &val, err) < 0 ||
	    jutil_array(val, sub, &count, err) < 0)
		return -1;
	kvm->api_version = (int)v;
	for (size_t i = 0; i < count; i++) {
		char item[JUTIL_PATH_MAX];
		int mode;

		snprintf(item, sizeof(item), "kvm.modes[%zu]", i);
		if (jutil_enum(json_object_array_get_idx(val, i), item, "mode",
			       kvmrun_mode_names, KVMRUN_MODE_COUNT, &mode, err) < 0)
			return -1;
		kvm->mode_supported[mode] = true;
	}
	return get_paging(obj, path, "paged", &kvm->paged, err);
}

static int
get_ping(struct json_object *root, struct proto_response *resp,
	 struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX];
	struct json_object *val;
	const char *text;
	size_t length;
	uint64_t v;

	if (get_member(root, "", "version", sub, &val, err) < 0 ||
	    jutil_string(val, sub, &text, &length, err) < 0)
		return -1;
	resp->version = strndup(text, length);
	if (resp->version == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "out of memory");
	if (get_member(root, "", "protocol", sub, &val, err) < 0 ||
	    jutil_uint(val, sub, INT_MAX, &v, err) < 0)
		return -1;
	resp->protocol = (int)v;
	return get_kvm_status(root, &resp->kvm, err);
}

static int
get_stats(struct json_object *root, struct proto_stats *stats,
	  struct proto_steps *steps, struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX], runs_path[JUTIL_PATH_MAX];
	struct json_object *obj, *runs, *errors, *steps_obj, *val;

	if (get_object(root, "", "stats", sub, &obj, err) < 0 ||
	    get_object(obj, "stats", "runs", sub, &runs, err) < 0 ||
	    get_named(runs, sub, kvmrun_exit_reason_names, 0, KVMRUN_EXIT_REASON_COUNT,
		      stats->runs, err) < 0 ||
	    get_object(obj, "stats", "errors", sub, &errors, err) < 0 ||
	    get_named(errors, sub, kvmrun_errcode_names, KVMRUN_OK + 1,
		      KVMRUN_ERR_COUNT, stats->errors, err) < 0 ||
	    get_numbers(obj, "stats", stats, stats_fields, NELEM(stats_fields),
			err) < 0)
		return -1;
	/* A daemon older than steps_ns has none: they stay zero. */
	if (!json_object_object_get_ex(obj, "steps_ns", NULL))
		return 0;
	if (get_object(obj, "stats", "steps_ns", sub, &steps_obj, err) < 0 ||
	    get_member(steps_obj, sub, "runs", runs_path, &val, err) < 0 ||
	    jutil_u64(val, runs_path, false, &steps->runs, err) < 0)
		return -1;
	return get_named(steps_obj, sub, proto_step_names, 0, PROTO_STEP_COUNT,
			 steps->ns, err);
}

/* What kind of response ROOT is, by the fields each kind always has. */
static int
get_response(struct json_object *root, struct proto_response *resp,
	     struct kvmrun_error *err)
{
	char sub[JUTIL_PATH_MAX];
	struct json_object *val;
	bool ok;

	if (get_member(root, "", "ok", sub, &val, err) < 0 ||
	    jutil_bool(val, sub, &ok, err) < 0)
		return -1;
	if (!ok) {
		resp->kind = PROTO_RESPONSE_ERROR;
		return get_error(root, &resp->error, err);
	}
	if (json_object_object_get_ex(root, "exit", NULL)) {
		resp->kind = PROTO_RESPONSE_RESULT;
		return get_result(root, &resp->result, err);
	}
	if (json_object_object_get_ex(root, "version", NULL)) {
		resp->kind = PROTO_RESPONSE_PING;
		return get_ping(root, resp, err);
	}
	if (json_object_object_get_ex(root, "stats", NULL)) {
		resp->kind = PROTO_RESPONSE_STATS;
		return get_stats(root, &resp->stats, &resp->steps, err);
	}
	return kvmrun_error_set(
		err, KVMRUN_ERR_BAD_REQUEST,
		"a response with \"ok\": true needs \"exit\", \"version\" or "
		"\"stats\"");
}

/*
 * Exit reasons and error codes may be added within a protocol version
 * (PROTOCOL.md).  A response that is whole but for one this side does not
 * know fails with ERR's code KVMRUN_ERR_UNKNOWN rather than
 * KVMRUN_ERR_BAD_REQUEST, and RESP holds it all the same: the exit as
 * KVMRUN_EXIT_UNKNOWN with its name in exit.u.unknown.name (none of its
 * fields read), or the error as KVMRUN_ERR_UNKNOWN with its message
 * "name: message".  A reader that can show such an answer goes on with it;
 * the name must look like one ([a-z0-9_], shorter than KVMRUN_NAME_MAX).
 */
int
proto_response_parse(const char *line, size_t length, struct proto_response *resp,
		     struct kvmrun_error *err)
{
	struct json_object *root;
	int rc;

	memset(resp, 0, sizeof(*resp));
	kvmrun_result_init(&resp->result);
	rc = jutil_read(line, length, SIZE_MAX, &root, &resp->id_json, err);
	if (resp->id_json == NULL)
		rc = kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "out of memory");
	if (rc == 0)
		rc = get_response(root, resp, err);
	json_object_put(root);
	return rc;
}

void
proto_response_free(struct proto_response *resp)
{
	free(resp->id_json);
	free(resp->version);
	kvmrun_result_free(&resp->result);
	memset(resp, 0, sizeof(*resp));
}
