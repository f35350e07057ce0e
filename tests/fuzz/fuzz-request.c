/*
 * libFuzzer target for the protocol decoder, the daemon's first contact with
 * untrusted bytes: a request line goes through proto_request_parse; a valid
 * request must then decode, format back (proto_format_request) and parse
 * again to the same run, and any error must make an answer line the client's
 * reader takes back with the same code and message.  A property that fails
 * aborts, which libFuzzer reports as a crash.
 *
 * Built with clang by "make fuzz"; built with the ordinary compiler and
 * replay.c as tests/fuzz/fuzz-replay, which make check runs on the seed
 * corpus and the regressions.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "kvmrun-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz-request: %s\n", what);
	abort();
}

static void
check_blob(const struct kvmrun_blob *a, const struct kvmrun_blob *b)
{
	if (a->address != b->address || a->length != b->length ||
	    (a->length > 0 && memcmp(a->data, b->data, a->length) != 0))
		fail("round trip changed an image or region");
}

/* Everything a request sets must survive proto_format_request. */
static void
check_same_spec(const struct kvmrun_spec *a, const struct kvmrun_spec *b)
{
	if (a->mode != b->mode || a->ring != b->ring ||
	    a->memory_size != b->memory_size || a->timeout_ms != b->timeout_ms ||
	    a->regs_set != b->regs_set ||
	    memcmp(a->regs, b->regs, sizeof(a->regs)) != 0 ||
	    memcmp(a->segments, b->segments, sizeof(a->segments)) != 0)
		fail("round trip changed a scalar field");
	if (!proto_state_equal(a->state, b->state) || a->returns != b->returns)
		fail("round trip changed the CPU state or return");
	if (a->max_instructions != b->max_instructions || a->trace != b->trace ||
	    a->changes != b->changes)
		fail("round trip changed max_instructions, trace or changes");
	check_blob(&a->image, &b->image);
	if (a->region_count != b->region_count ||
	    a->log_port_count != b->log_port_count || a->dump_count != b->dump_count)
		fail("round trip changed a list's length");
	for (size_t i = 0; i < a->region_count; i++)
		check_blob(&a->regions[i], &b->regions[i]);
	if (a->log_port_count > 0 &&
	    memcmp(a->log_ports, b->log_ports,
		   a->log_port_count * sizeof(*a->log_ports)) != 0)
		fail("round trip changed log_ports");
	if (a->dump_count > 0 &&
	    memcmp(a->dumps, b->dumps, a->dump_count * sizeof(*a->dumps)) != 0)
		fail("round trip changed dump");
}

/* A valid request, formatted again, reads back as the same request. */
static void
check_round_trip(struct proto_request *req, const struct proto_limits *limits)
{
	struct proto_request again;
	struct kvmrun_error err;
	size_t length;
	char *line;

	if (proto_request_decode_payloads(req, &err) < 0)
		fail("a request that parsed did not decode");
	line = proto_format_request(req->id_json, req->op, &req->spec, &length);
	if (line == NULL)
		fail("proto_format_request failed");
	if (length == 0 || line[length - 1] != '\n' || memchr(line, '\n', length - 1))
		fail("proto_format_request did not make one line");
	if (proto_request_parse(line, length - 1, limits, &again, &err) < 0) {
		fprintf(stderr, "fuzz-request: %s\n%s", err.message, line);
		fail("a formatted request does not parse");
	}
	if (strcmp(req->id_json, again.id_json) != 0 || req->op != again.op)
		fail("round trip changed the id or op");
	if (proto_request_decode_payloads(&again, &err) < 0)
		fail("a formatted request did not decode");
	check_same_spec(&req->spec, &again.spec);
	proto_request_free(&again);
	free(line);
}

/*
 * Whether MESSAGE is UTF-8 throughout, but for a sequence cut by the end of
 * a full buffer, which the formatter turns into U+FFFD.
 */
static bool
message_is_utf8(const char *message)
{
	size_t length = strlen(message);

	for (size_t i = 0, n; i < length; i += n) {
		n = jutil_utf8_length((const uint8_t *)message + i, length - i);
		if (n == 0)
			return length == KVMRUN_ERROR_MESSAGE_MAX - 1 && length - i < 4;
	}
	return true;
}

/* The answer to a refused request is one line the client reads back. */
static void
check_error_answer(const char *id_json, const struct kvmrun_error *err)
{
	struct proto_response resp;
	struct kvmrun_error perr;
	size_t length;
	char *line;

	if (err->code <= KVMRUN_OK || err->code >= KVMRUN_ERR_COUNT ||
	    err->message[0] == '\0')
		fail("an error without a code or message");
	if (!message_is_utf8(err->message))
		fail("an error message splits a UTF-8 sequence");
	line = proto_format_error(id_json, err, &length);
	if (line == NULL)
		fail("proto_format_error failed");
	if (length == 0 || line[length - 1] != '\n' || memchr(line, '\n', length - 1))
		fail("proto_format_error did not make one line");
	if (proto_response_parse(line, length - 1, &resp, &perr) < 0) {
		fprintf(stderr, "fuzz-request: %s\n%s", perr.message, line);
		fail("the client cannot read the error answer");
	}
	if (resp.kind != PROTO_RESPONSE_ERROR || resp.error.code != err->code ||
	    strcmp(resp.id_json, id_json) != 0)
		fail("the error answer reads back differently");
	/* A message cut mid-sequence at the buffer's end reads back with U+FFFD. */
	if (strlen(err->message) < KVMRUN_ERROR_MESSAGE_MAX - 1 &&
	    strcmp(resp.error.message, err->message) != 0)
		fail("the error answer reads back differently");
	proto_response_free(&resp);
	free(line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_limits limits, relaxed;
	struct proto_request req;
	struct kvmrun_error err;

	proto_limits_default(&limits);
	/* A formatted line may outgrow its source (escapes), never the rules. */
	relaxed = limits;
	relaxed.max_line = SIZE_MAX;
	if (proto_request_parse((const char *)data, size, &limits, &req, &err) == 0)
		check_round_trip(&req, &relaxed);
	else
		check_error_answer(req.id_json, &err);
	proto_request_free(&req);
	return 0;
}
