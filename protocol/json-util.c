/*
 * json-c behind a strict front: a scanner that holds a line to RFC 8259
 * before json-c builds its tree, then typed getters and builders.  json-c
 * 0.16 by itself takes single quotes, NaN, "1.", raw control bytes in
 * strings, overlong UTF-8, and clamps integers past 64 bits without a word,
 * and it keeps the last of two equal keys; none of that reaches the codecs.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/printbuf.h>

#include "json-util.h"
#include "kvmrun-proto.h"

struct scan_level {
	bool object;
	size_t index;	 /* of the element or member being read */
	const char *key; /* the member's key as written, NULL between */
	size_t key_length;
	struct json_object *seen; /* keys so far, when hunting a duplicate */
};

struct scan {
	const char *start;
	const char *p;
	const char *end;
	int depth;
	size_t values; /* JSON values read so far */
	size_t max_values;
	size_t members; /* object members in the whole line */
	bool find_duplicate;
	/*
	 * An integer past 64 bits is a bad field, not a bad line: it is kept
	 * here and reported once json-c has the tree, so the id still echoes.
	 */
	bool late_failed;
	struct kvmrun_error late;
	/* The top-level "id" member's value as written (its first, if twice). */
	const char *id_start;
	const char *id_end;
	/* Inside the id, which is echoed as written: any integer will do. */
	bool in_id;
	/* The id holds a duplicate key: it cannot be echoed (null instead). */
	bool id_bad;
	struct scan_level level[JUTIL_MAX_DEPTH];
	struct kvmrun_error *err;
};

/*
 * How much of TEXT (LENGTH bytes of UTF-8) a message quotes: at most MAX
 * bytes, ending before a character rather than inside one, so that the
 * message stays UTF-8.
 */
int
jutil_quote_length(const char *text, size_t length, size_t max)
{
	size_t end = length < max ? length : max;
	size_t lead = end;

	/* Back over continuation bytes (10xxxxxx) to the character's first. */
	while (lead > 0 && end - lead < 3 &&
	       ((unsigned char)text[lead - 1] & 0xc0) == 0x80)
		lead--;
	if (lead > 0 &&
	    jutil_utf8_length((const uint8_t *)text + lead - 1, end - lead + 1) == 0)
		end = lead - 1;
	return (int)end;
}

/* The path of the value being read, as "regions[2].address". */
static void
scan_path(const struct scan *s, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < s->depth && used < size; i++) {
		const struct scan_level *l = &s->level[i];
		int n;

		if (!l->object)
			n = snprintf(buf + used, size - used, "[%zu]", l->index);
		else if (l->key != NULL)
			n = snprintf(buf + used, size - used, "%s%.*s",
				     used > 0 ? "." : "",
				     jutil_quote_length(l->key, l->key_length, 32), l->key);
		else
			break;
		if (n < 0)
			break;
		used += (size_t)n;
	}
	/* A path too long for BUF may end in part of a character. */
	buf[jutil_quote_length(buf, strlen(buf), size)] = '\0';
}

__attribute__((format(printf, 4, 0))) static void
scan_vmessage(const struct scan *s, struct kvmrun_error *err, bool offset,
	      const char *fmt, va_list ap)
{
	char path[JUTIL_PATH_MAX];
	char rule[KVMRUN_ERROR_MESSAGE_MAX];

	vsnprintf(rule, sizeof(rule), fmt, ap);
	scan_path(s, path, sizeof(path));
	if (offset)
		jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path, "%s (at offset %zu)",
			   rule, (size_t)(s->p - s->start));
	else
		jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path, "%s", rule);
}

__attribute__((format(printf, 2, 3))) static int
scan_fail(struct scan *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	scan_vmessage(s, s->err, true, fmt, ap);
	va_end(ap);
	return -1;
}

__attribute__((format(printf, 2, 3))) static void
scan_late(struct scan *s, const char *fmt, ...)
{
	va_list ap;

	if (s->late_failed)
		return;
	s->late_failed = true;
	va_start(ap, fmt);
	scan_vmessage(s, &s->late, false, fmt, ap);
	va_end(ap);
}

static int
scan_unexpected(struct scan *s)
{
	unsigned char c;

	if (s->p == s->end)
		return scan_fail(s, "the line ends inside a JSON value");
	c = (unsigned char)*s->p;
	if (c > 0x20 && c < 0x7f)
		return scan_fail(s, "unexpected character '%c'", c);
	return scan_fail(s, "unexpected byte 0x%02x", c);
}

static int
scan_expected(struct scan *s, const char *what)
{
	unsigned char c;

	if (s->p == s->end)
		return scan_fail(s, "the line ends where %s was expected", what);
	c = (unsigned char)*s->p;
	if (c > 0x20 && c < 0x7f)
		return scan_fail(s, "expected %s, got '%c'", what, c);
	return scan_fail(s, "expected %s, got byte 0x%02x", what, c);
}

static bool
scan_at(const struct scan *s, char c)
{
	return s->p < s->end && *s->p == c;
}

static bool
scan_at_digit(const struct scan *s)
{
	return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

/* JSON's whitespace only: not \f or \v, which json-c lets by. */
static void
scan_space(struct scan *s)
{
	while (s->p < s->end &&
	       (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' || *s->p == '\n'))
		s->p++;
}

static int
scan_hex4(const char *p, unsigned int *out)
{
	*out = 0;
	for (int i = 0; i < 4; i++) {
		int d = jutil_hex_value((unsigned char)p[i]);

		if (d < 0)
			return -1;
		*out = *out << 4 | (unsigned int)d;
	}
	return 0;
}

/*
 * A backslash escape.  Surrogates must pair up (json-c would turn a lone one
 * into U+FFFD), and a key may not hold U+0000, which json-c cuts it at.
 */
static int
scan_escape(struct scan *s, bool key)
{
	unsigned int unit, low;

	if (s->end - s->p < 2)
		return scan_fail(s, "the line ends inside a string");
	switch (s->p[1]) {
	case '"':
	case '\\':
	case '/':
	case 'b':
	case 'f':
	case 'n':
	case 'r':
	case 't':
		s->p += 2;
		return 0;
	case 'u':
		break;
	default:
		return scan_fail(s, "invalid escape in a string");
	}
	if (s->end - s->p < 6 || scan_hex4(s->p + 2, &unit) < 0)
		return scan_fail(s, "\\u needs four hex digits");
	if (unit == 0 && key)
		return scan_fail(s, "a key may not hold \\u0000");
	if (unit >= 0xdc00 && unit <= 0xdfff)
		return scan_fail(s, "unpaired surrogate \\u%04x", unit);
	if (unit >= 0xd800 && unit <= 0xdbff) {
		if (s->end - s->p < 12 || s->p[6] != '\\' || s->p[7] != 'u' ||
		    scan_hex4(s->p + 8, &low) < 0 || low < 0xdc00 || low > 0xdfff)
			return scan_fail(s, "unpaired surrogate \\u%04x", unit);
		s->p += 6;
	}
	s->p += 6;
	return 0;
}

static int
scan_string(struct scan *s, bool key)
{
	s->p++;
	for (;;) {
		unsigned char c;
		size_t n;

		if (s->p == s->end)
			return scan_fail(s, "the line ends inside a string");
		c = (unsigned char)*s->p;
		if (c == '"') {
			s->p++;
			return 0;
		}
		if (c == '\\') {
			if (scan_escape(s, key) < 0)
				return -1;
		} else if (c < 0x20) {
			return scan_fail(
				s, "control byte 0x%02x in a string must be escaped",
				c);
		} else if (c < 0x80) {
			s->p++;
		} else {
			n = jutil_utf8_length((const uint8_t *)s->p,
					      (size_t)(s->end - s->p));
			if (n == 0)
				return scan_fail(s, "invalid UTF-8 in a string");
			s->p += n;
		}
	}
}

static int
scan_digits(struct scan *s)
{
	if (!scan_at_digit(s))
		return scan_expected(s, "a digit");
	while (scan_at_digit(s))
		s->p++;
	return 0;
}

/* Whether the integer of DIGITS fits json-c's int64 or uint64 exactly. */
static bool
integer_fits(const char *digits, size_t length, bool negative)
{
	const char *limit = negative ? "9223372036854775808" : "18446744073709551615";
	size_t limit_length = strlen(limit);

	if (length != limit_length)
		return length < limit_length;
	return memcmp(digits, limit, length) <= 0;
}

static int
scan_number(struct scan *s)
{
	const char *begin = s->p;
	const char *digits;
	bool integer = true;

	if (scan_at(s, '-'))
		s->p++;
	digits = s->p;
	if (scan_at(s, '0')) {
		s->p++;
		if (scan_at_digit(s))
			return scan_fail(s, "a number may not start with 0");
	} else if (scan_digits(s) < 0) {
		return -1;
	}
	if (scan_at(s, '.')) {
		integer = false;
		s->p++;
		if (scan_digits(s) < 0)
			return -1;
	}
	if (scan_at(s, 'e') || scan_at(s, 'E')) {
		integer = false;
		s->p++;
		if (scan_at(s, '+') || scan_at(s, '-'))
			s->p++;
		if (scan_digits(s) < 0)
			return -1;
	}
	if (integer && !s->in_id &&
	    !integer_fits(digits, (size_t)(s->p - digits), digits != begin)) {
		int shown = s->p - begin < 40 ? (int)(s->p - begin) : 40;

		scan_late(s, "%.*s%s is outside the 64-bit integer range", shown, begin,
			  shown < s->p - begin ? "..." : "");
	}
	return 0;
}

static int
scan_literal(struct scan *s, const char *word)
{
	for (; *word != '\0'; word++, s->p++)
		if (!scan_at(s, *word))
			return scan_unexpected(s);
	return 0;
}

/* On the duplicate hunt: the key QUOTE..s->p against the object's others. */
static int
scan_check_unique(struct scan *s, struct scan_level *l, const char *quote)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *key = NULL;
	const char *name;
	int rc = -1;

	if (tok != NULL)
		key = json_tokener_parse_ex(tok, quote, (int)(s->p - quote));
	json_tokener_free(tok);
	if (key == NULL || l->seen == NULL)
		goto out_oom;
	name = json_object_get_string(key);
	if (json_object_object_get_ex(l->seen, name, NULL)) {
		s->id_bad |= s->in_id;
		l->key = NULL;
		rc = scan_fail(s, "duplicate key \"%s\"", name);
	} else if (json_object_object_add(l->seen, name, NULL) == 0) {
		rc = 0;
	} else {
		goto out_oom;
	}
	json_object_put(key);
	return rc;

out_oom:
	json_object_put(key);
	return kvmrun_error_set(s->err, KVMRUN_ERR_INTERNAL, "out of memory");
}

static int
scan_key(struct scan *s, struct scan_level *l)
{
	const char *quote;

	l->key = NULL;
	scan_space(s);
	if (!scan_at(s, '"'))
		return scan_expected(s, "a string key");
	quote = s->p;
	if (scan_string(s, true) < 0)
		return -1;
	l->key = quote + 1;
	l->key_length = (size_t)(s->p - quote) - 2;
	s->members++;
	if (s->find_duplicate && scan_check_unique(s, l, quote) < 0)
		return -1;
	scan_space(s);
	if (!scan_at(s, ':'))
		return scan_expected(s, "':'");
	s->p++;
	return 0;
}

static int scan_value(struct scan *s);

static int
scan_container(struct scan *s, bool object)
{
	char close = object ? '}' : ']';
	struct scan_level *l;
	int rc = -1;

	if (s->depth == JUTIL_MAX_DEPTH)
		return scan_fail(s, "nested deeper than %d levels", JUTIL_MAX_DEPTH);
	l = &s->level[s->depth++];
	*l = (struct scan_level){ .object = object };
	if (object && s->find_duplicate)
		l->seen = json_object_new_object();
	s->p++;
	scan_space(s);
	if (scan_at(s, close)) {
		s->p++;
		rc = 0;
		goto out;
	}
	for (;;) {
		if (object && scan_key(s, l) < 0)
			goto out;
		if (scan_value(s) < 0)
			goto out;
		scan_space(s);
		if (scan_at(s, close)) {
			s->p++;
			rc = 0;
			goto out;
		}
		if (!scan_at(s, ',')) {
			scan_expected(s, object ? "',' or '}'" : "',' or ']'");
			goto out;
		}
		s->p++;
		l->index++;
	}
out:
	json_object_put(l->seen);
	s->depth--;
	return rc;
}

/* Whether the member being read is the top-level object's "id". */
static bool
scan_at_id(const struct scan *s)
{
	const struct scan_level *l = &s->level[0];
	struct json_tokener *tok;
	struct json_object *key;
	bool is_id;

	if (s->depth != 1 || !l->object || l->key == NULL || s->id_start != NULL)
		return false;
	if (memchr(l->key, '\\', l->key_length) == NULL)
		return l->key_length == 2 && memcmp(l->key, "id", 2) == 0;
	/* Spelled with escapes ("\u0069d"): json-c decodes it as the tree will. */
	tok = json_tokener_new();
	key = tok != NULL ? json_tokener_parse_ex(tok, l->key - 1, (int)l->key_length + 2)
			  : NULL;
	json_tokener_free(tok);
	is_id = key != NULL && strcmp(json_object_get_string(key), "id") == 0;
	json_object_put(key);
	return is_id;
}

static int scan_one_value(struct scan *s);

static int
scan_value(struct scan *s)
{
	const char *start;
	bool is_id;

	scan_space(s);
	is_id = scan_at_id(s);
	start = s->p;
	s->in_id |= is_id;
	if (scan_one_value(s) < 0)
		return -1;
	if (is_id) {
		s->in_id = false;
		s->id_start = start;
		s->id_end = s->p;
	}
	return 0;
}

static int
scan_one_value(struct scan *s)
{
	if (s->p == s->end)
		return scan_unexpected(s);
	if (++s->values > s->max_values)
		return kvmrun_error_set(s->err, KVMRUN_ERR_TOO_LARGE,
					"the line holds more than %zu JSON values",
					s->max_values);
	switch (*s->p) {
	case '{':
		return scan_container(s, true);
	case '[':
		return scan_container(s, false);
	case '"':
		return scan_string(s, false);
	case 't':
		return scan_literal(s, "true");
	case 'f':
		return scan_literal(s, "false");
	case 'n':
		return scan_literal(s, "null");
	case '-':
		return scan_number(s);
	default:
		if (scan_at_digit(s))
			return scan_number(s);
		return scan_unexpected(s);
	}
}

/* One JSON text, an object when OBJECT, and nothing after it. */
static int
scan_text(struct scan *s, bool object)
{
	scan_space(s);
	if (object && !scan_at(s, '{'))
		return scan_fail(s, "expected a JSON object");
	if (scan_value(s) < 0)
		return -1;
	scan_space(s);
	if (s->p != s->end)
		return scan_fail(s, "unexpected bytes after the JSON text");
	return 0;
}

/*
 * json-c builds the tree of a text the scanner passed.  The NUL after TEXT
 * is given to it too: json-c only ends a top-level number or literal at a
 * delimiter.
 */
static int
build_tree(const char *text, size_t length, struct json_object **val,
	   struct kvmrun_error *err)
{
	/* json-c counts a scalar inside the deepest container as a level too. */
	struct json_tokener *tok = json_tokener_new_ex(JUTIL_MAX_DEPTH + 1);
	enum json_tokener_error jerr;

	if (tok == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	*val = json_tokener_parse_ex(tok, text, (int)length);
	jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (jerr != json_tokener_success)
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "json-c: %s",
					json_tokener_error_desc(jerr));
	return 0;
}

static size_t
count_members(struct json_object *val)
{
	size_t n = 0;

	if (json_object_is_type(val, json_type_object)) {
		json_object_object_foreach (val, key, member) {
			(void)key;
			n += 1 + count_members(member);
		}
	} else if (json_object_is_type(val, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(val); i++)
			n += count_members(json_object_array_get_idx(val, i));
	}
	return n;
}

/* TEXT..END as JSON without the whitespace between tokens (malloc'ed). */
static char *
compact_text(const char *text, const char *end)
{
	char *out = malloc((size_t)(end - text) + 1), *o = out;
	bool in_string = false;

	if (out == NULL)
		return NULL;
	for (const char *p = text; p < end; p++) {
		if (in_string && *p == '\\') {
			*o++ = *p++;
		} else if (*p == '"') {
			in_string = !in_string;
		} else if (!in_string && strchr(" \t\r\n", *p) != NULL) {
			continue;
		}
		*o++ = *p;
	}
	*o = '\0';
	return out;
}

/*
 * The scan read TEXT's top-level "id" as it is written; *ID_TEXT gets it
 * (or "null" when there is none or no tree), NULL when out of memory.
 */
static void
id_text_of(const struct scan *s, const struct json_object *tree, char **id_text)
{
	if (id_text == NULL)
		return;
	if (tree != NULL && s->id_start != NULL && !s->id_bad)
		*id_text = compact_text(s->id_start, s->id_end);
	else
		*id_text = strdup("null");
}

/*
 * TEXT as one JSON value, an object when OBJECT.  Any other value must be
 * followed by a NUL, which json-c needs to end a top-level number or literal.
 * With ID_TEXT, the top-level "id" as written (see jutil_read).
 *
 * Duplicate keys cost one comparison in the common case: json-c keeps one
 * member per key, so a tree with fewer members than the text has keys had a
 * duplicate, and only then is the text scanned again to name it.
 */
static int
read_text(const char *text, size_t length, bool object, size_t max_values,
	  struct json_object **val, char **id_text, struct kvmrun_error *err)
{
	struct scan s = {
		.start = text,
		.p = text,
		.end = text + length,
		.max_values = max_values,
		.err = err,
	};
	const char *id_start, *id_end;
	int rc = -1;

	*val = NULL;
	if (length >= INT_MAX) {
		kvmrun_error_set(err, KVMRUN_ERR_TOO_LARGE,
				 "a line of %zu bytes is more than json-c can read", length);
		goto out;
	}
	if (scan_text(&s, object) < 0 ||
	    build_tree(text, object ? length : length + 1, val, err) < 0)
		goto out;
	if (s.late_failed) {
		*err = s.late;
		goto out;
	}
	if (count_members(*val) == s.members) {
		rc = 0;
		goto out;
	}
	s.p = text;
	s.values = 0;
	s.find_duplicate = true;
	/* The hunt reads the id again, to tell a duplicate inside it. */
	id_start = s.id_start;
	id_end = s.id_end;
	s.id_start = s.id_end = NULL;
	if (scan_text(&s, object) == 0)
		kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST, "duplicate key");
	s.id_start = id_start;
	s.id_end = id_end;
out:
	id_text_of(&s, *val, id_text);
	return rc;
}

int
jutil_read(const char *line, size_t length, size_t max_values,
	   struct json_object **root, char **id_text, struct kvmrun_error *err)
{
	return read_text(line, length, true, max_values, root, id_text, err);
}

size_t
jutil_utf8_length(const uint8_t *p, size_t length)
{
	uint32_t cp, min;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1f;
		min = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = p[0] & 0x0f;
		min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (length < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int
jutil_hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
jutil_fail(struct kvmrun_error *err, enum kvmrun_errcode code, const char *path,
	   const char *fmt, ...)
{
	char rule[KVMRUN_ERROR_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rule, sizeof(rule), fmt, ap);
	va_end(ap);
	return kvmrun_error_set(err, code, "%s%s%s", path, path[0] != '\0' ? ": " : "",
				rule);
}

const char *
jutil_type_name(struct json_object *val)
{
	switch (json_object_get_type(val)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a number with a fraction or an exponent";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "an unknown JSON type";
}

static int
type_error(struct kvmrun_error *err, const char *path, const char *expected,
	   struct json_object *val)
{
	return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path, "expected %s, got %s",
			  expected, jutil_type_name(val));
}

int
jutil_fields(struct json_object *val, const char *path, const char *const *names,
	     int count, bool ignore_unknown, struct json_object **values,
	     uint32_t *present, struct kvmrun_error *err)
{
	*present = 0;
	if (jutil_object(val, path, err) < 0)
		return -1;
	json_object_object_foreach (val, key, member) {
		int i = kvmrun_name_lookup(names, count, key);

		if (i >= 0) {
			values[i] = member;
			*present |= 1u << i;
		} else if (!ignore_unknown) {
			return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path,
					  "unknown field \"%s\"", key);
		}
	}
	return 0;
}

static int
parse_hex(struct json_object *val, const char *path, uint64_t *out,
	  struct kvmrun_error *err)
{
	const char *text = json_object_get_string(val);
	size_t length = (size_t)json_object_get_string_len(val);
	uint64_t v = 0;

	if (length < 3 || length > 18 || text[0] != '0' || text[1] != 'x')
		goto bad;
	for (size_t i = 2; i < length; i++) {
		int d = jutil_hex_value((unsigned char)text[i]);

		if (d < 0)
			goto bad;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return 0;

bad:
	return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path,
			  "\"%.*s\" is not \"0x\" and 1 to 16 hex digits",
			  jutil_quote_length(text, length, 40), text);
}

int
jutil_u64(struct json_object *val, const char *path, bool hex_ok, uint64_t *out,
	  struct kvmrun_error *err)
{
	if (hex_ok && json_object_is_type(val, json_type_string))
		return parse_hex(val, path, out, err);
	if (!json_object_is_type(val, json_type_int))
		return type_error(err, path,
				  hex_ok ? "an integer or a \"0x...\" string"
					 : "an integer",
				  val);
	if (json_object_get_int64(val) < 0)
		return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path,
				  "%" PRId64 " is negative",
				  json_object_get_int64(val));
	*out = json_object_get_uint64(val);
	return 0;
}

int
jutil_uint(struct json_object *val, const char *path, uint64_t max, uint64_t *out,
	   struct kvmrun_error *err)
{
	if (jutil_u64(val, path, false, out, err) < 0)
		return -1;
	if (*out > max)
		return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path,
				  "%" PRIu64 " is out of range 0..%" PRIu64, *out, max);
	return 0;
}

int
jutil_string(struct json_object *val, const char *path, const char **text,
	     size_t *length, struct kvmrun_error *err)
{
	if (!json_object_is_type(val, json_type_string))
		return type_error(err, path, "a string", val);
	*text = json_object_get_string(val);
	*length = (size_t)json_object_get_string_len(val);
	return 0;
}

int
jutil_object(struct json_object *val, const char *path, struct kvmrun_error *err)
{
	if (!json_object_is_type(val, json_type_object))
		return type_error(err, path, "an object", val);
	return 0;
}

int
jutil_bool(struct json_object *val, const char *path, bool *out,
	   struct kvmrun_error *err)
{
	if (!json_object_is_type(val, json_type_boolean))
		return type_error(err, path, "a boolean", val);
	*out = json_object_get_boolean(val);
	return 0;
}

int
jutil_array(struct json_object *val, const char *path, size_t *count,
	    struct kvmrun_error *err)
{
	if (!json_object_is_type(val, json_type_array))
		return type_error(err, path, "an array", val);
	*count = json_object_array_length(val);
	return 0;
}

int
jutil_enum(struct json_object *val, const char *path, const char *what,
	   const char *const *names, int count, int *out, struct kvmrun_error *err)
{
	const char *text;
	size_t length;

	if (jutil_string(val, path, &text, &length, err) < 0)
		return -1;
	/* A name followed by \u0000 must not pass for the name. */
	*out = strlen(text) == length ? kvmrun_name_lookup(names, count, text) : -1;
	if (*out >= 0)
		return 0;
	return jutil_unknown(err, path, what, text, length, names, count);
}

int
jutil_unknown(struct kvmrun_error *err, const char *path, const char *what,
	      const char *text, size_t length, const char *const *names, int count)
{
	char choices[256];
	size_t used = 0;

	choices[0] = '\0';
	for (int i = 0; i < count && used < sizeof(choices); i++) {
		int n = snprintf(choices + used, sizeof(choices) - used, "%s%s",
				 i > 0 ? ", " : "", names[i]);

		if (n < 0)
			break;
		used += (size_t)n;
	}
	return jutil_fail(err, KVMRUN_ERR_BAD_REQUEST, path,
			  "unknown %s \"%.*s\" (one of %s)", what,
			  jutil_quote_length(text, length, 40), text, choices);
}

int
jutil_base64(struct json_object *val, const char *path, const char **text,
	     size_t *length, size_t *decoded, struct kvmrun_error *err)
{
	if (jutil_string(val, path, text, length, err) < 0)
		return -1;
	*decoded = proto_base64_decoded_length(*text, *length);
	if (*decoded == SIZE_MAX)
		return jutil_fail(
			err, KVMRUN_ERR_BAD_REQUEST, path,
			"not canonical base64 (RFC 4648, padded, no whitespace)");
	return 0;
}

void
jutil_add(struct json_object *obj, const char *key, struct json_object *val,
	  bool *failed)
{
	if (val == NULL || obj == NULL || json_object_object_add(obj, key, val) != 0) {
		json_object_put(val);
		*failed = true;
	}
}

void
jutil_append(struct json_object *array, struct json_object *val, bool *failed)
{
	if (val == NULL || array == NULL || json_object_array_add(array, val) != 0) {
		json_object_put(val);
		*failed = true;
	}
}

struct json_object *
jutil_new_base64(const uint8_t *data, size_t length)
{
	size_t encoded = proto_base64_encoded_length(length);
	struct json_object *val;
	char *text;

	if (encoded >= INT_MAX)
		return NULL;
	text = malloc(encoded + 1);
	if (text == NULL)
		return NULL;
	proto_base64_encode(data, length, text);
	val = json_object_new_string_len(text, (int)encoded);
	free(text);
	return val;
}

struct json_object *
jutil_new_u64_set(const char *const *names, int count, uint32_t set, const uint64_t *values,
		  bool *failed)
{
	struct json_object *obj = json_object_new_object();

	for (int i = 0; i < count; i++)
		if (set & 1u << i)
			jutil_add(obj, names[i], json_object_new_uint64(values[i]), failed);
	return obj;
}

/* Writes an id as the request spelled it, which json-c would not keep. */
static int
id_serializer(struct json_object *val, struct printbuf *pb, int level, int flags)
{
	const char *text = json_object_get_userdata(val);

	(void)level;
	(void)flags;
	return printbuf_memappend(pb, text, (int)strlen(text));
}

struct json_object *
jutil_new_message(const char *id_json, bool omit_null_id)
{
	struct json_object *root, *id = NULL;
	struct kvmrun_error err;
	char *spelling;

	/*
	 * An id the request spelled is valid JSON, though json-c may not hold
	 * its value (an integer past 64 bits): it is written as spelled.
	 */
	if (id_json != NULL &&
	    read_text(id_json, strlen(id_json), false, SIZE_MAX, &id, NULL, &err) < 0 &&
	    id == NULL)
		return NULL;
	if (id != NULL) {
		spelling = strdup(id_json);
		if (spelling == NULL) {
			json_object_put(id);
			return NULL;
		}
		json_object_set_serializer(id, id_serializer, spelling,
					   json_object_free_userdata);
	}
	root = json_object_new_object();
	if (root == NULL) {
		json_object_put(id);
		return NULL;
	}
	if ((id_json != NULL || !omit_null_id) &&
	    json_object_object_add(root, "id", id) != 0) {
		json_object_put(id);
		json_object_put(root);
		return NULL;
	}
	return root;
}

char *
jutil_line(struct json_object *root, bool failed, size_t *length)
{
	const char *text = NULL;
	char *line = NULL;
	size_t n = 0;

	if (root != NULL && !failed)
		text = json_object_to_json_string_length(
			root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
			&n);
	if (text != NULL)
		line = malloc(n + 2);
	if (line != NULL) {
		memcpy(line, text, n);
		line[n] = '\n';
		line[n + 1] = '\0';
		*length = n + 1;
	}
	json_object_put(root);
	return line;
}
