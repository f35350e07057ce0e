/*
 * --state FILE: the file's fields are put into a run request that is then
 * read by proto_request_parse, the parser kvmrund uses, so a file is
 * checked exactly as the daemon would check the same fields.
 */
#include "config.h"

#include <string.h>

#include <json-c/json.h>

#include "kvmrun-proto.h"
#include "state-file.h"

/* The request fields a state file may hold. */
static const char *const state_file_fields[] = { "xstate", "msrs", "cpuid", "segments" };

static int
state_file_check_fields(struct json_object *root, struct kvmrun_error *err)
{
	json_object_object_foreach(root, key, val) {
		bool known = false;

		(void)val;
		for (size_t i = 0; i < sizeof(state_file_fields) / sizeof(*state_file_fields);
		     i++)
			known = known || strcmp(key, state_file_fields[i]) == 0;
		if (!known)
			return kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
						"%s: not a state field (xstate, msrs, "
						"cpuid or segments)",
						key);
	}
	return 0;
}

/* ROOT, the file's object, made a request: a one-byte image in SPEC's mode. */
static int
state_file_request(struct json_object *root, const struct kvmrun_spec *spec,
		   struct proto_request *req, struct kvmrun_error *err)
{
	struct proto_limits limits;
	const char *line;
	size_t length;

	if (json_object_object_add(root, "image", json_object_new_string("9A==")) < 0 ||
	    json_object_object_add(root, "mode",
				   json_object_new_string(kvmrun_mode_name(spec->mode))) <
		    0)
		return kvmrun_error_set(err, KVMRUN_ERR_NOMEM, "out of memory");
	line = json_object_to_json_string_length(root, JSON_C_TO_STRING_PLAIN, &length);
	if (line == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_NOMEM, "out of memory");
	proto_limits_default(&limits);
	return proto_request_parse(line, length, &limits, req, err);
}

/* TEXT as one JSON value, white space around it allowed. */
static struct json_object *
state_file_read(const char *text, size_t length, struct kvmrun_error *err)
{
	struct json_tokener *tok;
	struct json_object *root;
	enum json_tokener_error why;
	size_t end;

	tok = json_tokener_new();
	if (tok == NULL) {
		kvmrun_error_set(err, KVMRUN_ERR_NOMEM, "out of memory");
		return NULL;
	}
	root = json_tokener_parse_ex(tok, text, (int)length);
	why = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (root == NULL) {
		kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST, "not JSON: %s",
				 why == json_tokener_continue ? "it ends too early"
							      : json_tokener_error_desc(why));
		return NULL;
	}
	if (strspn(text + end, " \t\r\n") != length - end) {
		json_object_put(root);
		kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				 "not JSON: more after the object, at byte %zu", end);
		return NULL;
	}
	return root;
}

int
state_file_parse(const char *text, size_t length, struct kvmrun_spec *spec,
		 struct kvmrun_error *err)
{
	struct json_object *root;
	struct proto_request req;
	bool has_segments;
	int r = -1;

	memset(&req, 0, sizeof(req));
	root = state_file_read(text, length, err);
	if (root == NULL)
		return -1;
	if (!json_object_is_type(root, json_type_object))
		kvmrun_error_set(err, KVMRUN_ERR_BAD_REQUEST,
				 "not a JSON object of xstate, msrs, cpuid and segments");
	else if (state_file_check_fields(root, err) == 0) {
		has_segments = json_object_object_get_ex(root, "segments", NULL);
		if (state_file_request(root, spec, &req, err) == 0) {
			spec->state = req.spec.state;
			req.spec.state = NULL;
			if (has_segments)
				memcpy(spec->segments, req.spec.segments,
				       sizeof(spec->segments));
			r = has_segments;
		}
		proto_request_free(&req);
	}
	json_object_put(root);
	return r;
}
