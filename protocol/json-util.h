/*
 * The json-c helpers the request and response codecs share: a strict reader
 * for one line (json-c alone accepts much that is not JSON), typed getters
 * whose errors name the field and the rule it broke, and builders that note
 * a failed allocation once instead of at every call.  Internal to protocol/,
 * but for jutil_hex_value: kvmrun-client, which links the codec statically,
 * reads hex with it too.
 */
#ifndef KVMRUN_JSON_UTIL_H
#define KVMRUN_JSON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kvmrun-run.h"

/* Deepest nesting of arrays and objects a line may have. */
#define JUTIL_MAX_DEPTH 16
/* Room for a field's path in messages ("regions[12].address"). */
#define JUTIL_PATH_MAX 96

/*
 * Reads LINE (LENGTH bytes, without its '\n') as one JSON object, checking
 * the grammar of RFC 8259, UTF-8 and the nesting, which json-c alone lets
 * slip, and that it holds at most MAX_VALUES values (json-c takes seconds
 * over a line of millions of tiny ones; too_large).  Returns 0 with *ROOT
 * set; -1 with *ROOT NULL when the line is not a JSON object; -1 with *ROOT
 * set when it is one but holds a duplicate key or an integer outside
 * -2^63..2^64-1.  Either way *ID_TEXT (malloc'ed; NULL only when out of
 * memory) is the top-level "id" as the line spells it, without whitespace
 * (the first, when there are two), or "null" when the line has none or is no
 * JSON object: an answer echoes an id's digits and escapes as they came.
 */
int jutil_read(const char *line, size_t length, size_t max_values,
	       struct json_object **root, char **id_text, struct kvmrun_error *err);

/* Bytes of the valid UTF-8 sequence at P (1 to 4), or 0; LENGTH >= 1. */
size_t jutil_utf8_length(const uint8_t *p, size_t length);
/* 0..15 for a hex digit of either case, else -1. */
int jutil_hex_value(int c);

/* Fills ERR with "PATH: rule" (just the rule when PATH is empty); returns -1. */
int jutil_fail(struct kvmrun_error *err, enum kvmrun_errcode code, const char *path,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* "an integer", "a string", ... for messages; json-c's null is NULL. */
const char *jutil_type_name(struct json_object *val);

/*
 * Checks VAL is an object whose keys are all among NAMES (COUNT <= 32 of
 * them; others are an error unless IGNORE_UNKNOWN) and puts the value of
 * NAMES[i] in VALUES[i], setting bit i of *PRESENT when the key is there.
 */
int jutil_fields(struct json_object *val, const char *path, const char *const *names,
		 int count, bool ignore_unknown, struct json_object **values,
		 uint32_t *present, struct kvmrun_error *err);

/* A JSON integer 0..2^64-1, or with HEX_OK also a "0x..." string. */
int jutil_u64(struct json_object *val, const char *path, bool hex_ok, uint64_t *out,
	      struct kvmrun_error *err);
/* A JSON integer 0..MAX. */
int jutil_uint(struct json_object *val, const char *path, uint64_t max, uint64_t *out,
	       struct kvmrun_error *err);
int jutil_string(struct json_object *val, const char *path, const char **text,
		 size_t *length, struct kvmrun_error *err);
int jutil_object(struct json_object *val, const char *path, struct kvmrun_error *err);
int jutil_bool(struct json_object *val, const char *path, bool *out,
	       struct kvmrun_error *err);
int jutil_array(struct json_object *val, const char *path, size_t *count,
		struct kvmrun_error *err);
/* A string among NAMES; *OUT is its index.  WHAT names the kind ("mode"). */
int jutil_enum(struct json_object *val, const char *path, const char *what,
	       const char *const *names, int count, int *out, struct kvmrun_error *err);
/* bad_request: "PATH: unknown WHAT "TEXT" (one of NAMES...)"; returns -1. */
/*
 * How much of TEXT (LENGTH bytes of UTF-8) a message quotes: at most MAX
 * bytes, ending before a character rather than inside one.
 */
int jutil_quote_length(const char *text, size_t length, size_t max);
int jutil_unknown(struct kvmrun_error *err, const char *path, const char *what,
		  const char *text, size_t length, const char *const *names, int count);
/* A base64 string, checked but not decoded; *DECODED is its decoded size. */
int jutil_base64(struct json_object *val, const char *path, const char **text,
		 size_t *length, size_t *decoded, struct kvmrun_error *err);

/*
 * Builders.  A NULL VAL (json-c out of memory), a NULL container or a failed
 * add sets *FAILED; VAL is released whenever it is not added.
 */
void jutil_add(struct json_object *obj, const char *key, struct json_object *val,
	       bool *failed);
void jutil_append(struct json_object *array, struct json_object *val, bool *failed);
struct json_object *jutil_new_base64(const uint8_t *data, size_t length);
/* An object of each NAMES[i] (i < COUNT <= 32) whose bit is in SET, with VALUES[i]. */
struct json_object *jutil_new_u64_set(const char *const *names, int count, uint32_t set,
				      const uint64_t *values, bool *failed);

/*
 * A new message object starting with "id" as ID_JSON spells it: null when
 * ID_JSON is NULL, or no id at all with OMIT_NULL_ID.  NULL when out of
 * memory or when ID_JSON is not one JSON value.
 */
struct json_object *jutil_new_message(const char *id_json, bool omit_null_id);

/*
 * ROOT as one line ending in '\n' (malloc'ed, NUL after it, *LENGTH not
 * counting the NUL).  Releases ROOT.  NULL when ROOT is NULL, FAILED is set
 * or memory runs out.
 */
char *jutil_line(struct json_object *root, bool failed, size_t *length);

#endif
