/*
 * The protocol codec against its contract (protocol/PROTOCOL.md): every
 * request field in good and bad forms, json-c's coercions refused, limits,
 * ids echoed, responses read back exactly, base64 against RFC 4648.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvmrun-proto.h"
#include "tap.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Test lines are written with ' for ", which reads better in C. */
static char *
quote(const char *text)
{
	char *line = strdup(text);

	if (line == NULL)
		abort();
	for (char *p = line; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	return line;
}

/* TEXT for a test's name: control and non-ASCII bytes as \xNN. */
static const char *
printable(const char *text)
{
	static char buf[256];
	size_t used = 0;

	for (; *text != '\0' && used + 5 < sizeof(buf); text++) {
		unsigned char c = (unsigned char)*text;

		if (c < 0x20 || c >= 0x7f)
			used += (size_t)snprintf(buf + used, sizeof(buf) - used,
						 "\\x%02x", c);
		else
			buf[used++] = (char)c;
	}
	buf[used] = '\0';
	return buf;
}

static int
parse_with(const char *text, const struct proto_limits *limits,
	   struct proto_request *req, struct kvmrun_error *err)
{
	char *line = quote(text);
	int rc;

	err->code = KVMRUN_OK;
	err->message[0] = '\0';
	rc = proto_request_parse(line, strlen(line), limits, req, err);
	free(line);
	return rc;
}

static int
parse(const char *text, struct proto_request *req, struct kvmrun_error *err)
{
	struct proto_limits limits;

	proto_limits_default(&limits);
	return parse_with(text, &limits, req, err);
}

/* Exactly one '\n', at the end, and nothing after it. */
static bool
one_line(const char *line, size_t length)
{
	return line != NULL && length > 0 && line[length - 1] == '\n' &&
	       memchr(line, '\n', length - 1) == NULL && strlen(line) == length;
}

static void
expect_good(const char *text)
{
	struct proto_request req;
	struct kvmrun_error err;
	int rc = parse(text, &req, &err);

	if (!tap_ok(rc == 0, "accepted: %s", printable(text)))
		tap_diag("error: %s", err.message);
	proto_request_free(&req);
}

static void
expect_bad_with(const char *text, const struct proto_limits *limits,
		enum kvmrun_errcode code, const char *message)
{
	struct proto_request req;
	struct kvmrun_error err;
	int rc = parse_with(text, limits, &req, &err);

	if (!tap_ok(rc < 0 && err.code == code && strstr(err.message, message) != NULL,
		    "%s: %s", kvmrun_errcode_names[code], printable(text)))
		tap_diag("rc %d, got %s: %s (wanted \"%s\")", rc,
			 kvmrun_errcode_names[err.code], err.message, message);
	proto_request_free(&req);
}

static void
expect_bad(const char *text, enum kvmrun_errcode code, const char *message)
{
	struct proto_limits limits;

	proto_limits_default(&limits);
	expect_bad_with(text, &limits, code, message);
}

static void
test_base64(void)
{
	static const struct {
		const char *plain;
		const char *encoded;
	} vectors[] = {
		{ "", "" },
		{ "f", "Zg==" },
		{ "fo", "Zm8=" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	static const char *const bad[] = {
		"Zg=",	  "Zg",	     "Zh==",  "Zm9=", "Zg==Zg==", "Z===",
		"====",	  "Zm9 ",    " Zm9v", "Zm-v", "Zm_v",	  "Zm9v====",
		"Zm9v\n", "Zm\x80v", "=Zm9",  "Zm=v",
	};
	uint8_t all[256], back[256];
	char text[400];
	int good = 1;

	for (size_t i = 0; i < NELEM(vectors); i++) {
		size_t n = strlen(vectors[i].plain);
		char out[16] = { 0 };
		uint8_t dec[16];
		long long m;

		proto_base64_encode((const uint8_t *)vectors[i].plain, n, out);
		tap_ok(proto_base64_encoded_length(n) == strlen(vectors[i].encoded) &&
			       strcmp(out, vectors[i].encoded) == 0,
		       "base64 encodes \"%s\" as \"%s\"", vectors[i].plain,
		       vectors[i].encoded);
		m = proto_base64_decode(vectors[i].encoded, strlen(vectors[i].encoded),
					dec);
		tap_ok(m == (long long)n && memcmp(dec, vectors[i].plain, n) == 0 &&
			       proto_base64_decoded_length(
				       vectors[i].encoded,
				       strlen(vectors[i].encoded)) == n,
		       "base64 decodes \"%s\"", vectors[i].encoded);
	}
	for (size_t i = 0; i < NELEM(bad); i++) {
		uint8_t dec[16];

		tap_ok(proto_base64_decoded_length(bad[i], strlen(bad[i])) ==
				       SIZE_MAX &&
			       proto_base64_decode(bad[i], strlen(bad[i]), dec) == -1,
		       "base64 refuses \"%s\"", printable(bad[i]));
	}
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	for (size_t n = 0; n <= sizeof(all); n++) {
		size_t length = proto_base64_encoded_length(n);

		proto_base64_encode(all, n, text);
		if (proto_base64_decode(text, length, back) != (long long)n ||
		    memcmp(all, back, n) != 0)
			good = 0;
	}
	tap_ok(good, "base64 round-trips every prefix of the 256 byte values");
}

static void
test_defaults(void)
{
	struct proto_request req;
	struct kvmrun_error err;
	int rc = parse("{'image':'kA=='}", &req, &err);

	tap_ok(rc == 0, "a request of just an image is accepted");
	tap_ok(req.op == KVMRUN_OP_RUN && strcmp(req.id_json, "null") == 0,
	       "op defaults to run, an absent id to null");
	tap_ok(req.spec.mode == KVMRUN_MODE_REAL && req.spec.ring == 0,
	       "mode real, ring 0");
	tap_ok(req.spec.memory_size == 2097152 && req.spec.timeout_ms == 1000,
	       "memory_size 2097152, timeout_ms 1000");
	tap_ok(req.spec.regs_set == 0 && req.spec.region_count == 0 &&
		       req.spec.log_port_count == 0 && req.spec.dump_count == 0 &&
		       req.spec.image.address == 0,
	       "no registers, regions, log ports or dumps; load_address 0");
	tap_ok(strcmp(req.image_base64, "kA==") == 0 && req.spec.image.data == NULL &&
		       req.spec.image.length == 1 && req.payload_bytes == 1,
	       "the image is left encoded with its decoded size counted");
	rc = proto_request_decode_payloads(&req, &err);
	tap_ok(rc == 0 && req.spec.image.data != NULL &&
		       req.spec.image.data[0] == 0x90 && req.image_base64 == NULL,
	       "decoding fills the image and drops the base64");
	proto_request_free(&req);
}

static void
test_all_fields(void)
{
	struct proto_request req;
	struct kvmrun_error err;
	int rc;

	rc = parse(
		"{'id':7,'op':'run','mode':'protected','ring':3,'image':'AAEC',"
		"'load_address':'0x1000','regions':[{'address':'0x2000','data':'AQID'},"
		"{'address':12288,'data':'BA=='}],'memory_size':4194304,"
		"'regs':{'rax':1,'rip':'0xffffffffffffffff','rflags':2,"
		"'r15':18446744073709551615},'timeout_ms':5000,'log_ports':[128,0,"
		"65535],"
		"'dump':[{'address':1024,'length':16},{'address':'0x0','length':'0x10'}"
		"]}",
		&req, &err);
	if (!tap_ok(rc == 0, "a request with every run field is accepted"))
		tap_diag("%s", err.message);
	tap_ok(strcmp(req.id_json, "7") == 0 && req.op == KVMRUN_OP_RUN,
	       "id 7, op run");
	tap_ok(req.spec.mode == KVMRUN_MODE_PROTECTED && req.spec.ring == 3,
	       "mode protected, ring 3");
	tap_ok(req.spec.image.address == 0x1000 && req.spec.image.length == 3,
	       "load_address from a hex string");
	tap_ok(req.spec.region_count == 2 && req.spec.regions[0].address == 0x2000 &&
		       req.spec.regions[0].length == 3 &&
		       req.spec.regions[1].address == 12288 &&
		       req.spec.regions[1].length == 1 &&
		       strcmp(req.region_base64[0], "AQID") == 0,
	       "regions with hex and integer addresses");
	tap_ok(req.payload_bytes == 7, "payload_bytes counts image and regions");
	tap_ok(req.spec.memory_size == 4194304 && req.spec.timeout_ms == 5000,
	       "memory_size and timeout_ms");
	tap_ok(req.spec.regs_set == (1u << KVMRUN_REG_RAX | 1u << KVMRUN_REG_RIP |
				     1u << KVMRUN_REG_RFLAGS | 1u << KVMRUN_REG_R15) &&
		       req.spec.regs[KVMRUN_REG_RAX] == 1 &&
		       req.spec.regs[KVMRUN_REG_RIP] == UINT64_MAX &&
		       req.spec.regs[KVMRUN_REG_RFLAGS] == 2 &&
		       req.spec.regs[KVMRUN_REG_R15] == UINT64_MAX,
	       "registers, 2^64-1 as an integer and as hex");
	tap_ok(req.spec.log_port_count == 3 && req.spec.log_ports[0] == 128 &&
		       req.spec.log_ports[1] == 0 && req.spec.log_ports[2] == 65535,
	       "log_ports");
	tap_ok(req.spec.dump_count == 2 && req.spec.dumps[0].address == 1024 &&
		       req.spec.dumps[0].length == 16 &&
		       req.spec.dumps[1].address == 0 && req.spec.dumps[1].length == 16,
	       "dump ranges, hex and integer");
	rc = proto_request_decode_payloads(&req, &err);
	tap_ok(rc == 0 && memcmp(req.spec.image.data, "\x00\x01\x02", 3) == 0 &&
		       memcmp(req.spec.regions[0].data, "\x01\x02\x03", 3) == 0 &&
		       req.spec.regions[1].data[0] == 4 && req.region_base64[0] == NULL,
	       "image and regions decode");
	proto_request_free(&req);

	rc = parse(
		"{'image':'kA==','segments':{'cs':4096,'ds':0,'es':1,'ss':65535,'fs':2,"
		"'gs':3}}",
		&req, &err);
	tap_ok(rc == 0 && req.spec.segments[KVMRUN_SEG_CS] == 4096 &&
		       req.spec.segments[KVMRUN_SEG_SS] == 65535 &&
		       req.spec.segments[KVMRUN_SEG_GS] == 3,
	       "segment selectors in real mode");
	proto_request_free(&req);

	for (int mode = 0; mode < KVMRUN_MODE_COUNT; mode++) {
		char line[128];

		snprintf(line, sizeof(line), "{'image':'kA==','mode':'%s'}",
			 kvmrun_mode_names[mode]);
		rc = parse(line, &req, &err);
		tap_ok(rc == 0 && (int)req.spec.mode == mode, "mode %s",
		       kvmrun_mode_names[mode]);
		proto_request_free(&req);
	}
	for (int op = KVMRUN_OP_PING; op < KVMRUN_OP_COUNT; op++) {
		char line[128];

		snprintf(line, sizeof(line), "{'op':'%s','id':'x'}",
			 kvmrun_op_names[op]);
		rc = parse(line, &req, &err);
		tap_ok(rc == 0 && (int)req.op == op &&
			       strcmp(req.id_json, "\"x\"") == 0,
		       "op %s needs no image", kvmrun_op_names[op]);
		proto_request_free(&req);
	}
	expect_good("{'image':'kA==','ring':-0}");
	expect_good("{'image':'kA==','regs':{}}");
	expect_good("{'image':'kA==','regions':[],'log_ports':[],'dump':[]}");
	expect_good("{'image':'kA==','regs':{'rax':'0xFFFFffffFFFFffff'}}");
	expect_good("{'image':'kA==','mode':'long','ring':3}");
	expect_good("{'image':'kA==','timeout_ms':60000,'memory_size':268435456}");
}

static const struct {
	const char *line;
	enum kvmrun_errcode code;
	const char *message;
} bad_fields[] = {
	/* op and mode */
	{ "{'op':'exec'}", KVMRUN_ERR_BAD_REQUEST, "op: unknown op \"exec\"" },
	{ "{'op':1}", KVMRUN_ERR_BAD_REQUEST, "op: expected a string, got an integer" },
	{ "{'op':'Ping'}", KVMRUN_ERR_BAD_REQUEST, "unknown op" },
	{ "{'op':'ping\\u0000'}", KVMRUN_ERR_BAD_REQUEST, "unknown op" },
	{ "{'image':'kA==','mode':'fast'}", KVMRUN_ERR_BAD_REQUEST,
	  "mode: unknown mode \"fast\" (one of real, protected, paged, long)" },
	{ "{'image':'kA==','mode':1}", KVMRUN_ERR_BAD_REQUEST,
	  "mode: expected a string, got an integer" },
	{ "{'image':'kA==','mode':null}", KVMRUN_ERR_BAD_REQUEST,
	  "mode: expected a string, got null" },
	{ "{'op':'ping','mode':'real'}", KVMRUN_ERR_BAD_REQUEST,
	  "mode: not allowed with op \"ping\"" },
	{ "{'op':'stats','image':'kA=='}", KVMRUN_ERR_BAD_REQUEST,
	  "image: not allowed with op \"stats\"" },
	{ "{'op':'ping','foo':1}", KVMRUN_ERR_BAD_REQUEST, "unknown field \"foo\"" },
	/* ring */
	{ "{'image':'kA==','mode':'long','ring':1}", KVMRUN_ERR_BAD_REQUEST,
	  "ring: 1 is not 0 or 3" },
	{ "{'image':'kA==','ring':3}", KVMRUN_ERR_BAD_REQUEST,
	  "ring: 3 needs a mode other than real" },
	{ "{'image':'kA==','ring':'3'}", KVMRUN_ERR_BAD_REQUEST,
	  "ring: expected an integer, got a string" },
	{ "{'image':'kA==','ring':true}", KVMRUN_ERR_BAD_REQUEST,
	  "ring: expected an integer, got a boolean" },
	{ "{'image':'kA==','ring':0.0}", KVMRUN_ERR_BAD_REQUEST,
	  "ring: expected an integer, got a number with a fraction or an exponent" },
	/* image */
	{ "{}", KVMRUN_ERR_BAD_REQUEST, "missing field \"image\"" },
	{ "{'mode':'long'}", KVMRUN_ERR_BAD_REQUEST, "missing field \"image\"" },
	{ "{'image':''}", KVMRUN_ERR_BAD_REQUEST, "image: empty" },
	{ "{'image':null}", KVMRUN_ERR_BAD_REQUEST,
	  "image: expected a string, got null" },
	{ "{'image':144}", KVMRUN_ERR_BAD_REQUEST,
	  "image: expected a string, got an integer" },
	{ "{'image':['kA==']}", KVMRUN_ERR_BAD_REQUEST,
	  "image: expected a string, got an array" },
	{ "{'image':'kA='}", KVMRUN_ERR_BAD_REQUEST, "image: not canonical base64" },
	{ "{'image':'kA'}", KVMRUN_ERR_BAD_REQUEST, "image: not canonical base64" },
	{ "{'image':'kB=='}", KVMRUN_ERR_BAD_REQUEST, "image: not canonical base64" },
	{ "{'image':'k@=='}", KVMRUN_ERR_BAD_REQUEST, "image: not canonical base64" },
	{ "{'image':'kA== '}", KVMRUN_ERR_BAD_REQUEST, "image: not canonical base64" },
	{ "{'image':'kA==\\n'}", KVMRUN_ERR_BAD_REQUEST,
	  "image: not canonical base64" },
	{ "{'image':'kA==kA=='}", KVMRUN_ERR_BAD_REQUEST,
	  "image: not canonical base64" },
	/* load_address */
	{ "{'image':'kA==','load_address':-1}", KVMRUN_ERR_BAD_REQUEST,
	  "load_address: -1 is negative" },
	{ "{'image':'kA==','load_address':'4096'}", KVMRUN_ERR_BAD_REQUEST,
	  "load_address: \"4096\" is not \"0x\" and 1 to 16 hex digits" },
	{ "{'image':'kA==','load_address':'0x'}", KVMRUN_ERR_BAD_REQUEST,
	  "not \"0x\" and 1 to 16" },
	{ "{'image':'kA==','load_address':'0X10'}", KVMRUN_ERR_BAD_REQUEST,
	  "not \"0x\" and 1 to 16" },
	{ "{'image':'kA==','load_address':'0x1g'}", KVMRUN_ERR_BAD_REQUEST,
	  "not \"0x\" and 1 to 16" },
	{ "{'image':'kA==','load_address':' 0x10'}", KVMRUN_ERR_BAD_REQUEST,
	  "not \"0x\" and 1 to 16" },
	{ "{'image':'kA==','load_address':'0x-1'}", KVMRUN_ERR_BAD_REQUEST,
	  "not \"0x\" and 1 to 16" },
	{ "{'image':'kA==','load_address':'0x10000000000000000'}",
	  KVMRUN_ERR_BAD_REQUEST, "not \"0x\" and 1 to 16" },
	{ "{'image':'kA==','load_address':4096.5}", KVMRUN_ERR_BAD_REQUEST,
	  "load_address: expected an integer or a \"0x...\" string, got a number with "
	  "a fraction" },
	{ "{'image':'kA==','load_address':false}", KVMRUN_ERR_BAD_REQUEST,
	  "load_address: expected an integer or a \"0x...\" string, got a boolean" },
	/* regions */
	{ "{'image':'kA==','regions':{}}", KVMRUN_ERR_BAD_REQUEST,
	  "regions: expected an array, got an object" },
	{ "{'image':'kA==','regions':[1]}", KVMRUN_ERR_BAD_REQUEST,
	  "regions[0]: expected an object, got an integer" },
	{ "{'image':'kA==','regions':[{'address':0}]}", KVMRUN_ERR_BAD_REQUEST,
	  "regions[0]: missing field \"data\"" },
	{ "{'image':'kA==','regions':[{'data':'kA=='}]}", KVMRUN_ERR_BAD_REQUEST,
	  "regions[0]: missing field \"address\"" },
	{ "{'image':'kA==','regions':[{'address':0,'data':'kA=='},{'address':0,'data':'"
	  "','x':1}]}",
	  KVMRUN_ERR_BAD_REQUEST, "regions[1]: unknown field \"x\"" },
	{ "{'image':'kA==','regions':[{'address':0,'data':''}]}",
	  KVMRUN_ERR_BAD_REQUEST, "regions[0].data: empty" },
	{ "{'image':'kA==','regions':[{'address':0,'data':'a'}]}",
	  KVMRUN_ERR_BAD_REQUEST, "regions[0].data: not canonical base64" },
	{ "{'image':'kA==','regions':[{'address':true,'data':'kA=='}]}",
	  KVMRUN_ERR_BAD_REQUEST,
	  "regions[0].address: expected an integer or a \"0x...\" string, got a "
	  "boolean" },
	/* memory_size */
	{ "{'image':'kA==','memory_size':3000}", KVMRUN_ERR_BAD_REQUEST,
	  "memory_size: 3000 is not a positive multiple of 4096" },
	{ "{'image':'kA==','memory_size':0}", KVMRUN_ERR_BAD_REQUEST,
	  "memory_size: 0 is not a positive multiple of 4096" },
	{ "{'image':'kA==','memory_size':-4096}", KVMRUN_ERR_BAD_REQUEST,
	  "memory_size: -4096 is negative" },
	{ "{'image':'kA==','memory_size':'4096'}", KVMRUN_ERR_BAD_REQUEST,
	  "memory_size: expected an integer, got a string" },
	{ "{'image':'kA==','memory_size':'0x1000'}", KVMRUN_ERR_BAD_REQUEST,
	  "memory_size: expected an integer, got a string" },
	{ "{'image':'kA==','memory_size':4096.0}", KVMRUN_ERR_BAD_REQUEST,
	  "memory_size: expected an integer, got a number with a fraction or an "
	  "exponent" },
	{ "{'image':'kA==','memory_size':4096e0}", KVMRUN_ERR_BAD_REQUEST,
	  "memory_size: expected an integer, got a number" },
	{ "{'image':'kA==','memory_size':1e400}", KVMRUN_ERR_BAD_REQUEST,
	  "memory_size: expected an integer, got a number" },
	{ "{'image':'kA==','memory_size':true}", KVMRUN_ERR_BAD_REQUEST,
	  "memory_size: expected an integer, got a boolean" },
	{ "{'image':'kA==','memory_size':[4096]}", KVMRUN_ERR_BAD_REQUEST,
	  "memory_size: expected an integer, got an array" },
	{ "{'image':'kA==','memory_size':536870912}", KVMRUN_ERR_TOO_LARGE,
	  "memory_size: 536870912 is over the limit of 268435456 (--max-memory)" },
	{ "{'image':'kA==','memory_size':18446744073709547520}", KVMRUN_ERR_TOO_LARGE,
	  "(--max-memory)" },
	{ "{'image':'kA==','memory_size':18446744073709551616}", KVMRUN_ERR_BAD_REQUEST,
	  "memory_size: 18446744073709551616 is outside the 64-bit integer range" },
	{ "{'image':'kA==','memory_size':-9223372036854775809}", KVMRUN_ERR_BAD_REQUEST,
	  "memory_size: -9223372036854775809 is outside the 64-bit integer range" },
	{ "{'image':'kA==','memory_size':"
	  "100000000000000000000000000000000000000000000000000}",
	  KVMRUN_ERR_BAD_REQUEST, "outside the 64-bit integer range" },
	/* regs */
	{ "{'image':'kA==','regs':[]}", KVMRUN_ERR_BAD_REQUEST,
	  "regs: expected an object, got an array" },
	{ "{'image':'kA==','regs':{'rxx':1}}", KVMRUN_ERR_BAD_REQUEST,
	  "regs: unknown field \"rxx\"" },
	{ "{'image':'kA==','regs':{'RAX':1}}", KVMRUN_ERR_BAD_REQUEST,
	  "regs: unknown field \"RAX\"" },
	{ "{'image':'kA==','regs':{'cs':1}}", KVMRUN_ERR_BAD_REQUEST,
	  "regs: unknown field \"cs\"" },
	{ "{'image':'kA==','regs':{'rax':true}}", KVMRUN_ERR_BAD_REQUEST,
	  "regs.rax: expected an integer or a \"0x...\" string, got a boolean" },
	{ "{'image':'kA==','regs':{'rax':null}}", KVMRUN_ERR_BAD_REQUEST,
	  "regs.rax: expected an integer or a \"0x...\" string, got null" },
	{ "{'image':'kA==','regs':{'rbx':1.0}}", KVMRUN_ERR_BAD_REQUEST,
	  "regs.rbx: expected an integer or a \"0x...\" string, got a number with a "
	  "fraction" },
	{ "{'image':'kA==','regs':{'rcx':-1}}", KVMRUN_ERR_BAD_REQUEST,
	  "regs.rcx: -1 is negative" },
	{ "{'image':'kA==','regs':{'rdx':18446744073709551616}}",
	  KVMRUN_ERR_BAD_REQUEST,
	  "regs.rdx: 18446744073709551616 is outside the 64-bit integer range" },
	{ "{'image':'kA==','regs':{'rsi':'12'}}", KVMRUN_ERR_BAD_REQUEST,
	  "regs.rsi: \"12\" is not \"0x\" and 1 to 16 hex digits" },
	{ "{'image':'kA==','regs':{'rdi':'0x10000000000000000'}}",
	  KVMRUN_ERR_BAD_REQUEST, "regs.rdi: \"0x10000000000000000\" is not" },
	{ "{'image':'kA==','regs':{'rip':{}}}", KVMRUN_ERR_BAD_REQUEST,
	  "regs.rip: expected an integer or a \"0x...\" string, got an object" },
	/* segments */
	{ "{'image':'kA==','segments':{'cs':65536}}", KVMRUN_ERR_BAD_REQUEST,
	  "segments.cs: 65536 is out of range 0..65535" },
	{ "{'image':'kA==','segments':{'ds':-1}}", KVMRUN_ERR_BAD_REQUEST,
	  "segments.ds: -1 is negative" },
	{ "{'image':'kA==','segments':{'tr':1}}", KVMRUN_ERR_BAD_REQUEST,
	  "segments: unknown field \"tr\"" },
	{ "{'image':'kA==','segments':{'cs':'0x10'}}", KVMRUN_ERR_BAD_REQUEST,
	  "segments.cs: expected an integer, got a string" },
	{ "{'image':'kA==','segments':[]}", KVMRUN_ERR_BAD_REQUEST,
	  "segments: expected an object, got an array" },
	{ "{'image':'kA==','mode':'long','segments':{'cs':8}}", KVMRUN_ERR_BAD_REQUEST,
	  "segments: only real mode takes segment selectors, not long mode" },
	{ "{'image':'kA==','segments':{},'mode':'protected'}", KVMRUN_ERR_BAD_REQUEST,
	  "segments: only real mode" },
	/* timeout_ms */
	{ "{'image':'kA==','timeout_ms':0}", KVMRUN_ERR_BAD_REQUEST,
	  "timeout_ms: 0 is below the minimum of 1" },
	{ "{'image':'kA==','timeout_ms':60001}", KVMRUN_ERR_TOO_LARGE,
	  "timeout_ms: 60001 is over the limit of 60000 (--max-timeout-ms)" },
	{ "{'image':'kA==','timeout_ms':4294967296}", KVMRUN_ERR_TOO_LARGE,
	  "(--max-timeout-ms)" },
	{ "{'image':'kA==','timeout_ms':'5'}", KVMRUN_ERR_BAD_REQUEST,
	  "timeout_ms: expected an integer, got a string" },
	{ "{'image':'kA==','timeout_ms':-5}", KVMRUN_ERR_BAD_REQUEST,
	  "timeout_ms: -5 is negative" },
	/* log_ports */
	{ "{'image':'kA==','log_ports':[128,65536]}", KVMRUN_ERR_BAD_REQUEST,
	  "log_ports[1]: 65536 is out of range 0..65535" },
	{ "{'image':'kA==','log_ports':[-1]}", KVMRUN_ERR_BAD_REQUEST,
	  "log_ports[0]: -1 is negative" },
	{ "{'image':'kA==','log_ports':['0x80']}", KVMRUN_ERR_BAD_REQUEST,
	  "log_ports[0]: expected an integer, got a string" },
	{ "{'image':'kA==','log_ports':128}", KVMRUN_ERR_BAD_REQUEST,
	  "log_ports: expected an array, got an integer" },
	/* dump */
	{ "{'image':'kA==','dump':[{'address':0}]}", KVMRUN_ERR_BAD_REQUEST,
	  "dump[0]: missing field \"length\"" },
	{ "{'image':'kA==','dump':[{'address':0,'length':0}]}", KVMRUN_ERR_BAD_REQUEST,
	  "dump[0].length: 0 is not a length" },
	{ "{'image':'kA==','dump':[{'address':0,'length':1,'data':'kA=='}]}",
	  KVMRUN_ERR_BAD_REQUEST, "dump[0]: unknown field \"data\"" },
	{ "{'image':'kA==','dump':[{'address':-1,'length':1}]}", KVMRUN_ERR_BAD_REQUEST,
	  "dump[0].address: -1 is negative" },
	{ "{'image':'kA==','dump':[{'address':0,'length':4194305}]}",
	  KVMRUN_ERR_TOO_LARGE,
	  "dump: the lengths add up to more than the limit of 4194304 bytes" },
	{ "{'image':'kA==','dump':[{'address':0,'length':2097152},{'address':0,'length'"
	  ":2097153}]}",
	  KVMRUN_ERR_TOO_LARGE, "more than the limit of 4194304 bytes" },
	{ "{'image':'kA==','dump':[{'address':0,'length':'0xffffffffffffffff'}]}",
	  KVMRUN_ERR_TOO_LARGE, "more than the limit" },
	/* unknown fields and duplicate keys, at every level */
	{ "{'image':'kA==','foo':1}", KVMRUN_ERR_BAD_REQUEST, "unknown field \"foo\"" },
	{ "{'image':'kA==','Image':'kA=='}", KVMRUN_ERR_BAD_REQUEST,
	  "unknown field \"Image\"" },
	{ "{'image':'kA==','image':'kA=='}", KVMRUN_ERR_BAD_REQUEST,
	  "duplicate key \"image\"" },
	{ "{'op':'ping','op':'stats'}", KVMRUN_ERR_BAD_REQUEST,
	  "duplicate key \"op\"" },
	{ "{'image':'kA==','regs':{'rax':1,'rax':2}}", KVMRUN_ERR_BAD_REQUEST,
	  "regs: duplicate key \"rax\"" },
	{ "{'image':'kA==','regs':{'rax':1,'r\\u0061x':2}}", KVMRUN_ERR_BAD_REQUEST,
	  "regs: duplicate key \"rax\"" },
	{ "{'image':'kA==','dump':[{'address':0,'length':1},{'address':0,'length':1,'"
	  "length':2}]}",
	  KVMRUN_ERR_BAD_REQUEST, "dump[1]: duplicate key \"length\"" },
	{ "{'id':{'a':1,'b':{'c':[{'d':1,'d':1}]}},'op':'ping'}",
	  KVMRUN_ERR_BAD_REQUEST, "id.b.c[0]: duplicate key \"d\"" },
	{ "{'id':1,'id':2,'op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "duplicate key \"id\"" },
	{ "{'image':'kA==','regs':{'r\\u0000x':1}}", KVMRUN_ERR_BAD_REQUEST,
	  "a key may not hold \\u0000" },
	/* not JSON, or not one JSON object */
	{ "", KVMRUN_ERR_BAD_REQUEST, "expected a JSON object" },
	{ "   ", KVMRUN_ERR_BAD_REQUEST, "expected a JSON object" },
	{ "[]", KVMRUN_ERR_BAD_REQUEST, "expected a JSON object" },
	{ "null", KVMRUN_ERR_BAD_REQUEST, "expected a JSON object" },
	{ "'ping'", KVMRUN_ERR_BAD_REQUEST, "expected a JSON object" },
	{ "{'op':'ping'}x", KVMRUN_ERR_BAD_REQUEST,
	  "unexpected bytes after the JSON text (at offset 13)" },
	{ "{'op':'ping'}{'op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "unexpected bytes after the JSON text" },
	{ "{'op':'ping'} {}", KVMRUN_ERR_BAD_REQUEST,
	  "unexpected bytes after the JSON text" },
	{ "{'op':'ping'", KVMRUN_ERR_BAD_REQUEST,
	  "the line ends where ',' or '}' was expected" },
	{ "{'op':'pi", KVMRUN_ERR_BAD_REQUEST, "op: the line ends inside a string" },
	{ "{'op':", KVMRUN_ERR_BAD_REQUEST, "the line ends inside a JSON value" },
	{ "{", KVMRUN_ERR_BAD_REQUEST,
	  "the line ends where a string key was expected" },
	{ "{'op':'ping',}", KVMRUN_ERR_BAD_REQUEST, "expected a string key, got '}'" },
	{ "{'op' 'ping'}", KVMRUN_ERR_BAD_REQUEST, "expected ':'" },
	{ "{op:'ping'}", KVMRUN_ERR_BAD_REQUEST, "expected a string key" },
	{ "{'id':NaN,'op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "id: unexpected character 'N'" },
	{ "{'id':Infinity,'op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "id: unexpected character 'I'" },
	{ "{'id':-Infinity,'op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "id: expected a digit" },
	{ "{'image':'kA==','memory_size':NaN}", KVMRUN_ERR_BAD_REQUEST,
	  "unexpected character 'N'" },
	{ "{'id':True,'op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "unexpected character 'T'" },
	{ "{'id':nul,'op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "unexpected character ','" },
	{ "{'id':01,'op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "id: a number may not start with 0" },
	{ "{'id':+1,'op':'ping'}", KVMRUN_ERR_BAD_REQUEST, "unexpected character '+'" },
	{ "{'id':.5,'op':'ping'}", KVMRUN_ERR_BAD_REQUEST, "unexpected character '.'" },
	{ "{'id':1.,'op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "expected a digit, got ','" },
	{ "{'id':1e,'op':'ping'}", KVMRUN_ERR_BAD_REQUEST, "expected a digit" },
	{ "{'id':0x10,'op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "expected ',' or '}', got 'x'" },
	{ "{'id':[1,],'op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "unexpected character ']'" },
	{ "{'id':[1 2],'op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "id[0]: expected ',' or ']', got '2'" },
	{ "/*c*/{'op':'ping'}", KVMRUN_ERR_BAD_REQUEST, "expected a JSON object" },
	{ "{'op':'ping'}//", KVMRUN_ERR_BAD_REQUEST,
	  "unexpected bytes after the JSON text" },
	{ "{'id':'a\tb','op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "id: control byte 0x09 in a string must be escaped" },
	{ "{'id':'\\x41','op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "invalid escape in a string" },
	{ "{'id':'\\u41','op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "\\u needs four hex digits" },
	{ "{'id':'\\ud800','op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "unpaired surrogate \\ud800" },
	{ "{'id':'\\udc00\\ud800','op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "unpaired surrogate \\udc00" },
	{ "{'id':'\\ud800\\u0041','op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "unpaired surrogate" },
	{ "{'id':'\xff','op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "id: invalid UTF-8 in a string" },
	{ "{'id':'\xc0\x80','op':'ping'}", KVMRUN_ERR_BAD_REQUEST, "invalid UTF-8" },
	{ "{'id':'\xed\xa0\x80','op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "invalid UTF-8" },
	{ "{'id':'\xf4\x90\x80\x80','op':'ping'}", KVMRUN_ERR_BAD_REQUEST,
	  "invalid UTF-8" },
	{ "{'id':'\xe2\x82','op':'ping'}", KVMRUN_ERR_BAD_REQUEST, "invalid UTF-8" },
	{ "{'op':'ping'}\xff", KVMRUN_ERR_BAD_REQUEST,
	  "unexpected bytes after the JSON text" },
	{ "\x01{'op':'ping'}", KVMRUN_ERR_BAD_REQUEST, "expected a JSON object" },
	{ "{'op':'ping',\f'id':1}", KVMRUN_ERR_BAD_REQUEST,
	  "expected a string key, got byte 0x0c" },
	{ "{'op':'ping',\v'id':1}", KVMRUN_ERR_BAD_REQUEST, "got byte 0x0b" },
};

static void
test_bad_fields(void)
{
	for (size_t i = 0; i < NELEM(bad_fields); i++)
		expect_bad(bad_fields[i].line, bad_fields[i].code,
			   bad_fields[i].message);
}

/* A line of the fields HEAD and a list NAME of COUNT entries ENTRY. */
static char *
many(const char *head, const char *name, const char *entry, size_t count)
{
	size_t size = 64 + strlen(head) + strlen(name) + count * (strlen(entry) + 1);
	char *line = malloc(size);
	size_t used;

	if (line == NULL)
		abort();
	used = (size_t)snprintf(line, size, "{%s'%s':[", head, name);
	for (size_t i = 0; i < count; i++)
		used += (size_t)snprintf(line + used, size - used, "%s%s",
					 i > 0 ? "," : "", entry);
	snprintf(line + used, size - used, "]}");
	return line;
}

static void
test_limits(void)
{
	static const struct {
		const char *name;
		const char *entry;
		size_t limit;
	} lists[] = {
		{ "regions", "{'address':0,'data':'kA=='}",
		  KVMRUN_DEFAULT_MAX_REGIONS },
		{ "log_ports", "128", KVMRUN_DEFAULT_MAX_LOG_PORTS },
		{ "dump", "{'address':0,'length':1}", KVMRUN_DEFAULT_MAX_DUMPS },
	};
	struct proto_limits limits;
	struct proto_request req;
	struct kvmrun_error err;
	char message[128], *line;
	int rc;

	proto_limits_default(&limits);
	tap_ok(limits.max_line == 25165824 && limits.max_memory == 268435456 &&
		       limits.max_timeout_ms == 60000 && limits.max_regions == 64 &&
		       limits.max_dumps == 64 && limits.max_dump_bytes == 4194304 &&
		       limits.max_log_ports == 64,
	       "default limits as documented");
	for (size_t i = 0; i < NELEM(lists); i++) {
		line = many("'image':'kA==',", lists[i].name, lists[i].entry,
			    lists[i].limit);
		expect_good(line);
		free(line);
		line = many("'image':'kA==',", lists[i].name, lists[i].entry,
			    lists[i].limit + 1);
		snprintf(message, sizeof(message),
			 "%s: %zu entries is over the limit of %zu", lists[i].name,
			 lists[i].limit + 1, lists[i].limit);
		expect_bad(line, KVMRUN_ERR_TOO_LARGE, message);
		free(line);
	}

	/* The top object, "op" and the id's array are three values already. */
	line = many("'op':'ping',", "id", "0", 65533);
	expect_good(line);
	free(line);
	line = many("'op':'ping',", "id", "0", 65534);
	expect_bad(line, KVMRUN_ERR_TOO_LARGE,
		   "the line holds more than 65536 JSON values");
	free(line);

	limits.max_line = 20;
	expect_bad_with("{'id':1,'op':'ping','x':1}", &limits, KVMRUN_ERR_TOO_LARGE,
			"request line: 26 bytes is over the limit of 20 (--max-line)");
	rc = parse_with("{'id':1,'op':'ping','x':1}", &limits, &req, &err);
	tap_ok(rc < 0 && strcmp(req.id_json, "null") == 0,
	       "a line over --max-line echoes id null");
	proto_request_free(&req);
	expect_good("{'op':'ping','id':1234}");

	proto_limits_default(&limits);
	limits.max_memory = 1 << 20;
	limits.max_timeout_ms = 10;
	limits.max_regions = 1;
	limits.max_dump_bytes = 8;
	expect_bad_with(
		"{'image':'kA==','memory_size':2097152}", &limits, KVMRUN_ERR_TOO_LARGE,
		"memory_size: 2097152 is over the limit of 1048576 (--max-memory)");
	expect_bad_with("{'image':'kA==','timeout_ms':11}", &limits,
			KVMRUN_ERR_TOO_LARGE,
			"timeout_ms: 11 is over the limit of 10 (--max-timeout-ms)");
	expect_bad_with("{'image':'kA==','regions':[{'address':0,'data':'kA=='},"
			"{'address':0,'data':'kA=='}]}",
			&limits, KVMRUN_ERR_TOO_LARGE,
			"regions: 2 entries is over the limit of 1");
	expect_bad_with("{'image':'kA==','dump':[{'address':0,'length':4},{'address':0,"
			"'length':5}]}",
			&limits, KVMRUN_ERR_TOO_LARGE, "limit of 8 bytes");
	rc = parse_with("{'image':'kA==','dump':[{'address':0,'length':4},{'address':9,"
			"'length':4}]}",
			&limits, &req, &err);
	tap_ok(rc == 0, "dump lengths adding up to the limit are accepted");
	proto_request_free(&req);
}

static void
test_syntax(void)
{
	static const char nul_line[] = "{\"op\":\"ping\"}\0";
	static const char nul_inside[] = "{\"op\":\"pi\0ng\"}";
	struct proto_limits limits;
	struct proto_request req;
	struct kvmrun_error err;
	char *line;
	size_t n;
	int rc;

	proto_limits_default(&limits);
	rc = proto_request_parse(nul_line, sizeof(nul_line) - 1, &limits, &req, &err);
	tap_ok(rc < 0 && err.code == KVMRUN_ERR_BAD_REQUEST &&
		       strstr(err.message, "unexpected bytes after") != NULL,
	       "a NUL byte after the object is refused");
	proto_request_free(&req);
	rc = proto_request_parse(nul_inside, sizeof(nul_inside) - 1, &limits, &req,
				 &err);
	tap_ok(rc < 0 && strstr(err.message, "control byte 0x00") != NULL,
	       "a NUL byte inside a string is refused");
	proto_request_free(&req);

	rc = proto_request_parse("{'op':'ping'}", 13, &limits, &req, &err);
	tap_ok(rc < 0 && strstr(err.message, "expected a string key, got '''") != NULL,
	       "single-quoted strings are refused");
	proto_request_free(&req);

	/* Only the first LENGTH bytes count: the line need not end in a NUL. */
	rc = proto_request_parse("{\"op\":\"ping\"}garbage", 13, &limits, &req, &err);
	tap_ok(rc == 0 && req.op == KVMRUN_OP_PING,
	       "the line is LENGTH bytes, not a C string");
	proto_request_free(&req);

	expect_good("{'op':'ping'}  \r");
	expect_good(" \t{ 'op' : 'ping' , 'id' : [ 1 , { } , [ ] ] }");
	expect_good("{'op':'ping','id':'\\ud83d\\ude00 \xf0\x9f\x98\x80 \xc3\xa9 "
		    "\\u00e9 \\/'}");
	expect_good("{'op':'ping','id':[-0,0.5e-3,1E+2,-1.25e400,true,false,null,'']}");
	expect_good("{'op':'ping','id':{'':1,'a':{'':2}}}");

	/* Nesting: the top object and 15 more levels pass, one more does not. */
	n = 64 + 5 * 1000;
	line = malloc(n);
	if (line == NULL)
		abort();
	strcpy(line, "{'op':'ping','id':");
	for (int i = 0; i < 15; i++)
		strcat(line, "[");
	for (int i = 0; i < 15; i++)
		strcat(line, "]");
	strcat(line, "}");
	expect_good(line);
	/* A scalar at the deepest level is within the limit too. */
	strcpy(line, "{'op':'ping','id':");
	for (int i = 0; i < 15; i++)
		strcat(line, "[");
	strcat(line, "1");
	for (int i = 0; i < 15; i++)
		strcat(line, "]");
	strcat(line, "}");
	expect_good(line);
	strcpy(line, "{'op':'ping','id':{'a':");
	for (int i = 0; i < 14; i++)
		strcat(line, "[");
	strcat(line, "'x'");
	for (int i = 0; i < 14; i++)
		strcat(line, "]");
	strcat(line, "}}");
	expect_good(line);
	strcpy(line, "{'op':'ping','id':");
	for (int i = 0; i < 16; i++)
		strcat(line, "[");
	for (int i = 0; i < 16; i++)
		strcat(line, "]");
	strcat(line, "}");
	expect_bad(line, KVMRUN_ERR_BAD_REQUEST, "nested deeper than 16 levels");
	strcpy(line, "{'id':");
	for (int i = 0; i < 1000; i++)
		strcat(line, "[");
	expect_bad(line, KVMRUN_ERR_BAD_REQUEST, "nested deeper than 16 levels");
	strcpy(line, "{'id':");
	for (int i = 0; i < 1000; i++)
		strcat(line, "{'a':");
	expect_bad(line, KVMRUN_ERR_BAD_REQUEST, "nested deeper than 16 levels");
	free(line);
}

static void
expect_id(const char *id, const char *echo, const char *rest)
{
	struct proto_request req;
	struct kvmrun_error err;
	char line[512], want[512], *answer;
	size_t length;
	int rc;

	snprintf(line, sizeof(line), "{'id':%s,%s}", id, rest);
	rc = parse(line, &req, &err);
	tap_ok(req.id_json != NULL && strcmp(req.id_json, echo) == 0,
	       "id %s echoes (%s)", printable(id), rc == 0 ? "accepted" : err.message);
	/* And the answer carries it as the request spelled it. */
	snprintf(want, sizeof(want), "{\"id\":%s,", echo);
	answer = req.id_json != NULL ? proto_format_error(req.id_json, &err, &length) : NULL;
	if (!tap_ok(answer != NULL && strncmp(answer, want, strlen(want)) == 0,
		    "id %s is written back as %s", printable(id), echo))
		tap_diag("answer: %s", answer != NULL ? answer : "none");
	free(answer);
	proto_request_free(&req);
}

static void
test_ids(void)
{
	struct proto_request req;
	struct kvmrun_error err;
	int rc;

	expect_id("1", "1", "'op':'ping'");
	expect_id("-5", "-5", "'op':'ping'");
	expect_id("18446744073709551615", "18446744073709551615", "'op':'ping'");
	/* Numbers keep their digits, even those json-c would clamp or drop. */
	expect_id("18446744073709551616", "18446744073709551616", "'op':'ping'");
	expect_id("-0", "-0", "'op':'ping'");
	expect_id("2.50", "2.50", "'op':'ping'");
	expect_id("[1 , 2.0,\t'a\\u00e9' ]", "[1,2.0,\"a\\u00e9\"]", "'op':'ping'");
	/* Two ids are refused, as any duplicate key; the first is echoed. */
	expect_id("7,'id':8", "7", "'op':'ping'");
	expect_id("7", "7", "'\\u0069d':8,'op':'ping'");
	/* An id holding a duplicate key is not one value: it echoes as null. */
	expect_id("{'a':1,'a':2}", "null", "'op':'ping'");
	expect_id("-9223372036854775808", "-9223372036854775808", "'op':'ping'");
	expect_id("1.0", "1.0", "'op':'ping'");
	expect_id("1e400", "1e400", "'op':'ping'");
	expect_id("'abc'", "\"abc\"", "'op':'ping'");
	expect_id("'a/b\\n\\u0000'", "\"a/b\\n\\u0000\"", "'op':'ping'");
	expect_id("'\xc3\xa9'", "\"\xc3\xa9\"", "'op':'ping'");
	expect_id("{'k':[1,'two',null,{}]}", "{\"k\":[1,\"two\",null,{}]}",
		  "'op':'ping'");
	expect_id("null", "null", "'op':'ping'");
	expect_id("true", "true", "'op':'ping'");
	/* A bad field still echoes the id; an unreadable line cannot. */
	expect_id("42", "42", "'image':'kA==','memory_size':3000");
	expect_id("42", "42", "'image':'kA==','foo':1");
	expect_id("42", "42", "'image':'kA==','image':'kA=='");
	expect_id("42", "42", "'image':'kA==','memory_size':18446744073709551616");
	expect_id("42", "null", "'image':'kA==',}");
	expect_id("'x'", "null", "'image':'kA==','id':NaN");
	rc = parse("{'op':'ping'}", &req, &err);
	tap_ok(rc == 0 && strcmp(req.id_json, "null") == 0,
	       "an absent id echoes as null");
	proto_request_free(&req);
}

static bool
spec_equal(const struct kvmrun_spec *a, const struct kvmrun_spec *b)
{
	if (a->mode != b->mode || a->ring != b->ring ||
	    a->memory_size != b->memory_size || a->image.address != b->image.address ||
	    a->image.length != b->image.length ||
	    memcmp(a->image.data, b->image.data, a->image.length) != 0 ||
	    a->region_count != b->region_count || a->regs_set != b->regs_set ||
	    memcmp(a->segments, b->segments, sizeof(a->segments)) != 0 ||
	    a->timeout_ms != b->timeout_ms || a->log_port_count != b->log_port_count ||
	    a->dump_count != b->dump_count)
		return false;
	for (size_t i = 0; i < a->region_count; i++)
		if (a->regions[i].address != b->regions[i].address ||
		    a->regions[i].length != b->regions[i].length ||
		    memcmp(a->regions[i].data, b->regions[i].data,
			   a->regions[i].length) != 0)
			return false;
	for (int i = 0; i < KVMRUN_REG_COUNT; i++)
		if ((a->regs_set & 1u << i) && a->regs[i] != b->regs[i])
			return false;
	for (size_t i = 0; i < a->log_port_count; i++)
		if (a->log_ports[i] != b->log_ports[i])
			return false;
	for (size_t i = 0; i < a->dump_count; i++)
		if (a->dumps[i].address != b->dumps[i].address ||
		    a->dumps[i].length != b->dumps[i].length)
			return false;
	return true;
}

/* Formats SPEC, parses the line back and decodes it into REQ. */
static char *
request_round_trip(const char *id_json, enum kvmrun_op op,
		   const struct kvmrun_spec *spec, struct proto_request *req, int *rc)
{
	struct proto_limits limits;
	struct kvmrun_error err;
	size_t length = 0;
	char *line = proto_format_request(id_json, op, spec, &length);

	proto_limits_default(&limits);
	*rc = -1;
	memset(req, 0, sizeof(*req));
	if (line == NULL)
		return NULL;
	tap_ok(one_line(line, length), "a formatted request is one line: %.*s",
	       (int)length - 1, line);
	*rc = proto_request_parse(line, length - 1, &limits, req, &err);
	if (*rc == 0)
		*rc = proto_request_decode_payloads(req, &err);
	if (*rc < 0)
		tap_diag("%s", err.message);
	return line;
}

static void
test_format_request(void)
{
	static uint8_t image[] = { 0xf4 };
	static uint8_t region[] = { 1, 2, 3, 4, 5 };
	struct kvmrun_blob regions[1] = { { 0x3000, region, sizeof(region) } };
	uint16_t ports[2] = { 0x80, 0xffff };
	struct kvmrun_range dumps[2] = { { 1024, 1 }, { UINT64_MAX - 1, 2 } };
	struct kvmrun_spec spec;
	struct proto_request req;
	char *line;
	size_t length;
	int rc;

	kvmrun_spec_init(&spec);
	spec.image.data = image;
	spec.image.length = sizeof(image);
	line = request_round_trip(NULL, KVMRUN_OP_RUN, &spec, &req, &rc);
	tap_ok(line != NULL && strcmp(line, "{\"image\":\"9A==\"}\n") == 0,
	       "a default spec is just its image");
	tap_ok(rc == 0 && spec_equal(&spec, &req.spec), "and reads back the same");
	free(line);
	proto_request_free(&req);

	line = request_round_trip("42", KVMRUN_OP_RUN, &spec, &req, &rc);
	tap_ok(line != NULL && strcmp(line, "{\"id\":42,\"image\":\"9A==\"}\n") == 0 &&
		       rc == 0 && strcmp(req.id_json, "42") == 0,
	       "the id goes first and comes back");
	free(line);
	proto_request_free(&req);

	spec.mode = KVMRUN_MODE_LONG;
	spec.ring = 3;
	spec.image.address = 0x1000;
	spec.regions = regions;
	spec.region_count = 1;
	spec.memory_size = 8 << 20;
	spec.regs[KVMRUN_REG_RSP] = 0x8000;
	spec.regs[KVMRUN_REG_R8] = UINT64_MAX;
	spec.regs[KVMRUN_REG_RAX] = 77; /* not in regs_set: not sent */
	spec.regs_set = 1u << KVMRUN_REG_RSP | 1u << KVMRUN_REG_R8;
	spec.timeout_ms = 250;
	spec.log_ports = ports;
	spec.log_port_count = 2;
	spec.dumps = dumps;
	spec.dump_count = 2;
	line = request_round_trip("{\"a\":[1,\"b\"]}", KVMRUN_OP_RUN, &spec, &req, &rc);
	tap_ok(rc == 0 && spec_equal(&spec, &req.spec) &&
		       strcmp(req.id_json, "{\"a\":[1,\"b\"]}") == 0,
	       "a spec with every field reads back the same");
	tap_ok(line != NULL && strstr(line, "\"rax\"") == NULL &&
		       strstr(line, "\"r8\":18446744073709551615") != NULL &&
		       strstr(line, "\"segments\"") == NULL,
	       "only the registers set are sent; no segments outside real mode");
	free(line);
	proto_request_free(&req);

	spec.mode = KVMRUN_MODE_REAL;
	spec.ring = 0;
	spec.segments[KVMRUN_SEG_CS] = 0x1000;
	spec.segments[KVMRUN_SEG_SS] = 0xffff;
	line = request_round_trip(NULL, KVMRUN_OP_RUN, &spec, &req, &rc);
	tap_ok(rc == 0 && spec_equal(&spec, &req.spec) && line != NULL &&
		       strstr(line, "\"segments\":{\"cs\":4096,\"ss\":65535}") != NULL,
	       "real-mode segment selectors that are set are sent");
	free(line);
	proto_request_free(&req);

	line = proto_format_request("1", KVMRUN_OP_PING, NULL, &length);
	tap_ok(line != NULL && strcmp(line, "{\"id\":1,\"op\":\"ping\"}\n") == 0 &&
		       length == strlen(line),
	       "a ping request");
	free(line);
	line = proto_format_request(NULL, KVMRUN_OP_STATS, NULL, &length);
	tap_ok(line != NULL && strcmp(line, "{\"op\":\"stats\"}\n") == 0,
	       "a stats request");
	free(line);
	line = proto_format_request("{bad", KVMRUN_OP_PING, NULL, &length);
	tap_ok(line == NULL, "an id that is not JSON gives NULL");
	free(line);
	line = proto_format_request("1 2", KVMRUN_OP_PING, NULL, &length);
	tap_ok(line == NULL, "an id of two JSON values gives NULL");
	free(line);
}

static bool
exit_equal(const struct kvmrun_exit *a, const struct kvmrun_exit *b)
{
	if (a->reason != b->reason)
		return false;
	switch (a->reason) {
	case KVMRUN_EXIT_IO:
		return a->u.io.port == b->u.io.port && a->u.io.is_in == b->u.io.is_in &&
		       a->u.io.size == b->u.io.size && a->u.io.count == b->u.io.count &&
		       a->u.io.data_length == b->u.io.data_length &&
		       memcmp(a->u.io.data, b->u.io.data, a->u.io.data_length) == 0;
	case KVMRUN_EXIT_MMIO:
		return a->u.mmio.address == b->u.mmio.address &&
		       a->u.mmio.is_write == b->u.mmio.is_write &&
		       a->u.mmio.length == b->u.mmio.length &&
		       memcmp(a->u.mmio.data, b->u.mmio.data, a->u.mmio.length) == 0;
	case KVMRUN_EXIT_FAIL_ENTRY:
		return a->u.fail_entry.hardware_reason ==
		       b->u.fail_entry.hardware_reason;
	case KVMRUN_EXIT_INTERNAL_ERROR:
		return a->u.internal.suberror == b->u.internal.suberror &&
		       a->u.internal.data_count == b->u.internal.data_count &&
		       memcmp(a->u.internal.data, b->u.internal.data,
			      a->u.internal.data_count * sizeof(uint64_t)) == 0 &&
		       a->u.internal.insn_length == b->u.internal.insn_length &&
		       memcmp(a->u.internal.insn, b->u.internal.insn,
			      a->u.internal.insn_length) == 0;
	case KVMRUN_EXIT_EXCEPTION:
		return a->u.exception.vector == b->u.exception.vector &&
		       a->u.exception.has_error_code == b->u.exception.has_error_code &&
		       (!a->u.exception.has_error_code ||
			a->u.exception.error_code == b->u.exception.error_code) &&
		       a->u.exception.rip == b->u.exception.rip &&
		       a->u.exception.cs == b->u.exception.cs &&
		       (a->u.exception.vector != 14 ||
			a->u.exception.cr2 == b->u.exception.cr2);
	case KVMRUN_EXIT_OUTPUT_LIMIT:
		return a->u.output_limit.console == b->u.output_limit.console;
	case KVMRUN_EXIT_OTHER:
		return a->u.other.kvm_exit_reason == b->u.other.kvm_exit_reason;
	default:
		return true;
	}
}

/* trace and changes, which only some runs return. */
static bool
observed_equal(const struct kvmrun_result *a, const struct kvmrun_result *b)
{
	if ((a->trace == NULL) != (b->trace == NULL) || a->trace_count != b->trace_count ||
	    a->trace_truncated != b->trace_truncated ||
	    (a->changes == NULL) != (b->changes == NULL) ||
	    a->change_count != b->change_count || a->changes_truncated != b->changes_truncated)
		return false;
	for (size_t i = 0; i < a->trace_count; i++)
		if (a->trace[i].rip != b->trace[i].rip || a->trace[i].cs != b->trace[i].cs)
			return false;
	for (size_t i = 0; i < a->change_count; i++)
		if (a->changes[i].address != b->changes[i].address ||
		    a->changes[i].length != b->changes[i].length ||
		    memcmp(a->changes[i].data, b->changes[i].data, a->changes[i].length) != 0)
			return false;
	return true;
}

static bool
result_equal(const struct kvmrun_result *a, const struct kvmrun_result *b)
{
	if (!exit_equal(&a->exit, &b->exit) || !observed_equal(a, b) ||
	    memcmp(a->regs, b->regs, sizeof(a->regs)) != 0 ||
	    a->sregs.cr0 != b->sregs.cr0 || a->sregs.cr2 != b->sregs.cr2 ||
	    a->sregs.cr3 != b->sregs.cr3 || a->sregs.cr4 != b->sregs.cr4 ||
	    a->sregs.efer != b->sregs.efer || a->console_length != b->console_length ||
	    (a->console_length > 0 &&
	     memcmp(a->console, b->console, a->console_length) != 0) ||
	    a->console_truncated != b->console_truncated ||
	    a->io_log_count != b->io_log_count ||
	    a->io_log_truncated != b->io_log_truncated ||
	    a->dump_count != b->dump_count || a->exits != b->exits ||
	    a->run_ns != b->run_ns || a->paging != b->paging)
		return false;
	for (int i = 0; i < KVMRUN_SEG_COUNT; i++)
		if (a->sregs.segments[i].selector != b->sregs.segments[i].selector ||
		    a->sregs.segments[i].base != b->sregs.segments[i].base)
			return false;
	for (size_t i = 0; i < a->io_log_count; i++)
		if (a->io_log[i].port != b->io_log[i].port ||
		    a->io_log[i].size != b->io_log[i].size ||
		    a->io_log[i].value != b->io_log[i].value)
			return false;
	for (size_t i = 0; i < a->dump_count; i++)
		if (a->dumps[i].address != b->dumps[i].address ||
		    a->dumps[i].length != b->dumps[i].length ||
		    (a->dumps[i].length > 0 &&
		     memcmp(a->dumps[i].data, b->dumps[i].data, a->dumps[i].length) !=
			     0))
			return false;
	return true;
}

/* Formats RESULT, checks it is one line holding each of PARTS, and reads it back. */
static void
check_result(const char *name, const struct kvmrun_result *result,
	     const char *const *parts)
{
	struct proto_response resp;
	struct kvmrun_error err;
	size_t length = 0;
	char *line = proto_format_result("\"r\"", result, &length);
	bool found = true;
	int rc;

	tap_ok(one_line(line, length), "%s: the result is one line", name);
	for (; line != NULL && *parts != NULL; parts++)
		if (strstr(line, *parts) == NULL) {
			tap_diag("missing %s in %s", *parts, line);
			found = false;
		}
	tap_ok(found, "%s: the result holds what the protocol says", name);
	rc = line != NULL ? proto_response_parse(line, length - 1, &resp, &err) : -1;
	if (!tap_ok(rc == 0 && resp.kind == PROTO_RESPONSE_RESULT &&
			    strcmp(resp.id_json, "\"r\"") == 0 &&
			    result_equal(result, &resp.result),
		    "%s: the result reads back the same", name))
		tap_diag("%s", rc < 0 ? err.message : line);
	proto_response_free(&resp);
	free(line);
}

static void
fill_result(struct kvmrun_result *result)
{
	static uint8_t console[] = "Hello, world!\n";
	static struct kvmrun_io_record io_log[] = { { 128, 1, 90 },
						    { 0xffff, 4, UINT32_MAX } };
	static uint8_t dump0[] = { 0xf4 };
	static struct kvmrun_blob dumps[] = { { 1024, dump0, 1 }, { 0x2000, NULL, 0 } };

	kvmrun_result_init(result);
	for (int i = 0; i < KVMRUN_REG_COUNT; i++)
		result->regs[i] = (uint64_t)i * 0x1111111111111111ull;
	result->regs[KVMRUN_REG_RAX] = UINT64_MAX;
	result->sregs.cr0 = 0x60000010;
	result->sregs.cr2 = 0xdead;
	result->sregs.cr3 = 0x4000;
	result->sregs.cr4 = UINT64_MAX;
	result->sregs.efer = 0x500;
	for (int i = 0; i < KVMRUN_SEG_COUNT; i++) {
		result->sregs.segments[i].selector = (uint16_t)(i * 8);
		result->sregs.segments[i].base = (uint64_t)i << 32;
	}
	result->sregs.segments[KVMRUN_SEG_LDT].selector = 0xffff;
	result->console = console;
	result->console_length = sizeof(console) - 1;
	result->io_log = io_log;
	result->io_log_count = NELEM(io_log);
	result->dumps = dumps;
	result->dump_count = NELEM(dumps);
	result->exits = 3;
	result->run_ns = UINT64_MAX;
}

static void
test_results(void)
{
	static const char *const hlt_parts[] = {
		"{\"id\":\"r\",\"ok\":true,\"exit\":{\"reason\":\"hlt\"},\"regs\":{"
		"\"rax\":"
		"18446744073709551615,",
		"\"sregs\":{\"cr0\":1610612752,",
		"\"cs\":{\"selector\":0,\"base\":0},\"ds\":{\"selector\":8,\"base\":"
		"4294967296}",
		"\"ldt\":{\"selector\":65535,",
		"\"console\":\"Hello, "
		"world!\\n\",\"io_log\":[{\"port\":128,\"size\":1,\"value\":90},",
		"\"dump\":[{\"address\":1024,\"data\":\"9A==\"},{\"address\":8192,"
		"\"data\":\"\"}]",
		"\"stats\":{\"exits\":3,\"run_ns\":18446744073709551615}}\n",
		NULL,
	};
	static const char *const io_parts[] = {
		"\"exit\":{\"reason\":\"io\",\"port\":1016,\"size\":1,\"count\":3,"
		"\"direction\":\"out\","
		"\"data\":\"YWJj\"}",
		NULL,
	};
	static const char *const mmio_parts[] = {
		"\"exit\":{\"reason\":\"mmio\",\"address\":4276092928,\"length\":4,"
		"\"is_write\":true,"
		"\"data\":\"3q2+7w==\"}",
		NULL,
	};
	static const char *const internal_parts[] = {
		"\"exit\":{\"reason\":\"internal_error\",\"suberror\":1,\"data\":[1,"
		"18446744073709551615],"
		"\"instruction\":\"66 0f ef c0\"}",
		NULL,
	};
	static const char *const pf_parts[] = {
		"\"exit\":{\"reason\":\"exception\",\"vector\":14,\"rip\":4096,\"cs\":"
		"8,\"name\":\"#PF\","
		"\"error_code\":2,\"cr2\":3735928559}",
		NULL,
	};
	static const char *const ud_parts[] = {
		"\"exit\":{\"reason\":\"exception\",\"vector\":6,\"rip\":4096,\"cs\":8,"
		"\"name\":\"#UD\"}",
		NULL,
	};
	static const char *const nameless_parts[] = {
		"\"exit\":{\"reason\":\"exception\",\"vector\":31,\"rip\":0,\"cs\":0}",
		NULL,
	};
	static const char *const limit_parts[] = {
		"\"exit\":{\"reason\":\"output_limit\",\"limit\":\"console\"}",
		"\"console_truncated\":true",
		NULL,
	};
	static const char *const io_limit_parts[] = {
		"\"exit\":{\"reason\":\"output_limit\",\"limit\":\"io_log\"}",
		"\"io_log_truncated\":true",
		NULL,
	};
	static const char *const other_parts[] = {
		"\"exit\":{\"reason\":\"other\",\"kvm_exit_reason\":17}",
		NULL,
	};
	static const char *const fail_parts[] = {
		"\"exit\":{\"reason\":\"fail_entry\",\"hardware_entry_failure_reason\":"
		"33}",
		NULL,
	};
	static const char *const bad_utf8_parts[] = {
		"\"console\":"
		"\"\xef\xbf\xbd\xef\xbf\xbdHi\\u0000\\n\\u001b\xef\xbf\xbd\","
		"\"console_base64\":\"//5IaQAKG8M=\"",
		NULL,
	};
	static const char *const good_utf8_parts[] = {
		"\"console\":\"\xc3\xa9\\t\xf0\x9f\x98\x80\\u0000\\\"\\\\/\",",
		NULL,
	};
	static const char *const none_parts[] = { "\"console\":\"\"", NULL };
	static uint8_t bad_utf8[] = { 0xff, 0xfe, 'H', 'i', 0, '\n', 0x1b, 0xc3 };
	static uint8_t good_utf8[] = "\xc3\xa9\t\xf0\x9f\x98\x80\0\"\\/";
	static const enum kvmrun_exit_reason plain[] = {
		KVMRUN_EXIT_SHUTDOWN,
		KVMRUN_EXIT_TIMEOUT,
		KVMRUN_EXIT_CANCELLED,
	};
	struct kvmrun_result result;
	struct kvmrun_exit *exit = &result.exit;
	static const char *const io_in_parts[] = {
		"\"exit\":{\"reason\":\"io\",\"port\":1016,\"size\":1,\"count\":3,"
		"\"direction\":\"in\",\"data\":\"\"}",
		NULL
	};
	static const char *const insn15_parts[] = {
		"\"instruction\":\"ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab\"}", NULL
	};
	static const char *const no_insn_parts[] = {
		"\"exit\":{\"reason\":\"internal_error\",\"suberror\":1,\"data\":[]}", NULL
	};
	char plain_exit[64];
	const char *const plain_parts[] = { plain_exit, NULL };

	fill_result(&result);
	check_result("hlt", &result, hlt_parts);

	for (size_t i = 0; i < NELEM(plain); i++) {
		fill_result(&result);
		exit->reason = plain[i];
		/* Nothing but the reason: no field of another exit leaks in. */
		snprintf(plain_exit, sizeof(plain_exit), "\"exit\":{\"reason\":\"%s\"}",
			 kvmrun_exit_reason_names[plain[i]]);
		check_result(kvmrun_exit_reason_names[plain[i]], &result, plain_parts);
	}

	fill_result(&result);
	exit->reason = KVMRUN_EXIT_IO;
	exit->u.io.port = 0x3f8;
	exit->u.io.size = 1;
	exit->u.io.count = 3;
	memcpy(exit->u.io.data, "abc", 3);
	exit->u.io.data_length = 3;
	check_result("io out", &result, io_parts);
	exit->u.io.is_in = true;
	exit->u.io.data_length = 0;
	check_result("io in", &result, io_in_parts);

	fill_result(&result);
	exit->reason = KVMRUN_EXIT_MMIO;
	exit->u.mmio.address = 0xfee00000;
	exit->u.mmio.is_write = true;
	exit->u.mmio.length = 4;
	memcpy(exit->u.mmio.data, "\xde\xad\xbe\xef", 4);
	check_result("mmio", &result, mmio_parts);

	fill_result(&result);
	exit->reason = KVMRUN_EXIT_INTERNAL_ERROR;
	exit->u.internal.suberror = 1;
	exit->u.internal.data_count = 2;
	exit->u.internal.data[0] = 1;
	exit->u.internal.data[1] = UINT64_MAX;
	memcpy(exit->u.internal.insn, "\x66\x0f\xef\xc0", 4);
	exit->u.internal.insn_length = 4;
	check_result("internal_error", &result, internal_parts);
	exit->u.internal.insn_length = KVMRUN_INSN_BYTES_MAX;
	memset(exit->u.internal.insn, 0xab, KVMRUN_INSN_BYTES_MAX);
	check_result("internal_error, 15 instruction bytes", &result, insn15_parts);
	exit->u.internal.insn_length = 0;
	exit->u.internal.data_count = 0;
	check_result("internal_error, no instruction", &result, no_insn_parts);

	fill_result(&result);
	exit->reason = KVMRUN_EXIT_EXCEPTION;
	exit->u.exception.vector = 14;
	exit->u.exception.has_error_code = true;
	exit->u.exception.error_code = 2;
	exit->u.exception.rip = 0x1000;
	exit->u.exception.cs = 8;
	exit->u.exception.cr2 = 0xdeadbeef;
	check_result("page fault", &result, pf_parts);
	exit->u.exception.vector = 6;
	exit->u.exception.has_error_code = false;
	check_result("invalid opcode", &result, ud_parts);
	memset(&exit->u, 0, sizeof(exit->u));
	exit->u.exception.vector = 31;
	check_result("vector 31", &result, nameless_parts);

	fill_result(&result);
	exit->reason = KVMRUN_EXIT_OUTPUT_LIMIT;
	exit->u.output_limit.console = true;
	result.console_truncated = true;
	check_result("output_limit console", &result, limit_parts);
	exit->u.output_limit.console = false;
	result.console_truncated = false;
	result.io_log_truncated = true;
	check_result("output_limit io_log", &result, io_limit_parts);

	fill_result(&result);
	exit->reason = KVMRUN_EXIT_OTHER;
	exit->u.other.kvm_exit_reason = 17;
	check_result("other", &result, other_parts);

	fill_result(&result);
	exit->reason = KVMRUN_EXIT_FAIL_ENTRY;
	exit->u.fail_entry.hardware_reason = 33;
	check_result("fail_entry", &result, fail_parts);

	fill_result(&result);
	result.console = bad_utf8;
	result.console_length = sizeof(bad_utf8);
	check_result("console not UTF-8", &result, bad_utf8_parts);
	result.console = good_utf8;
	result.console_length = sizeof(good_utf8) - 1;
	check_result("console UTF-8 with controls", &result, good_utf8_parts);

	kvmrun_result_init(&result);
	check_result("an empty result", &result, none_parts);
}

/*
 * "paging" on the answers to paged runs, "paged" in ping: legacy or
 * compat, and absent otherwise, so the answers of other runs and of hosts
 * without paged mode are the same bytes as before the field came.
 */
static void
test_paging(void)
{
	static const char *const compat_parts[] = {
		"\"ldt\":{\"selector\":65535,\"base\":30064771072}},\"paging\":\"compat\","
		"\"console\":",
		NULL,
	};
	static const char *const legacy_parts[] = { ",\"paging\":\"legacy\",\"console\":", NULL };
	static const struct {
		const char *value;
		const char *message;
	} wrong[] = {
		{ "\"pae\"", "paging: unknown paging \"pae\" (one of legacy, compat)" },
		{ "1", "paging: expected a string, got an integer" },
	};
	struct proto_kvm_status kvm;
	struct proto_response resp;
	struct kvmrun_result result;
	struct kvmrun_error err;
	size_t length = 0;
	char *line, *text;
	int rc;

	fill_result(&result);
	result.paging = KVMRUN_PAGING_COMPAT;
	check_result("a run paged in compatibility mode", &result, compat_parts);
	result.paging = KVMRUN_PAGING_LEGACY;
	check_result("a run with legacy paging", &result, legacy_parts);
	/* The legacy answer with another value in its place: 6 bytes of "legacy". */
	line = proto_format_result("1", &result, &length);
	for (size_t i = 0; i < NELEM(wrong); i++) {
		char *at = line != NULL ? strstr(line, "\"legacy\"") : NULL;

		text = at != NULL ? malloc(length + strlen(wrong[i].value)) : NULL;
		rc = 0;
		if (text != NULL) {
			snprintf(text, length + strlen(wrong[i].value), "%.*s%s%s",
				 (int)(at - line), line, wrong[i].value, at + 8);
			rc = proto_response_parse(text, strlen(text) - 1, &resp, &err);
		}
		tap_ok(rc < 0 && strstr(err.message, wrong[i].message) != NULL,
		       "\"paging\":%s is refused: %s", wrong[i].value,
		       rc < 0 ? err.message : "accepted");
		proto_response_free(&resp);
		free(text);
	}
	free(line);
	result.paging = KVMRUN_PAGING_NONE;
	line = proto_format_result("1", &result, &length);
	tap_ok(line != NULL && strstr(line, "paging") == NULL,
	       "a run without paging has no \"paging\" field");
	free(line);

	memset(&kvm, 0, sizeof(kvm));
	kvm.available = true;
	kvm.api_version = 12;
	for (int i = 0; i < KVMRUN_MODE_COUNT; i++)
		kvm.mode_supported[i] = true;
	kvm.paged = KVMRUN_PAGING_COMPAT;
	line = proto_format_ping("1", "0.1.0", &kvm, &length);
	tap_ok(line != NULL && one_line(line, length) &&
		       strcmp(line, "{\"id\":1,\"ok\":true,\"version\":\"0.1.0\","
				    "\"protocol\":3,\"kvm_api\":12,\"kvm\":{"
				    "\"available\":true,\"api_version\":12,"
				    "\"modes\":[\"real\",\"protected\",\"paged\",\"long\"],"
				    "\"paged\":\"compat\"}}\n") == 0,
	       "ping of a host paging in compatibility mode says \"paged\":\"compat\"");
	rc = line != NULL ? proto_response_parse(line, length - 1, &resp, &err) : -1;
	tap_ok(rc == 0 && resp.kind == PROTO_RESPONSE_PING &&
		       resp.kvm.mode_supported[KVMRUN_MODE_PAGED] &&
		       resp.kvm.paged == KVMRUN_PAGING_COMPAT,
	       "ping's \"paged\":\"compat\" reads back");
	proto_response_free(&resp);
	free(line);
	kvm.paged = KVMRUN_PAGING_LEGACY;
	line = proto_format_ping("1", "0.1.0", &kvm, &length);
	rc = line != NULL ? proto_response_parse(line, length - 1, &resp, &err) : -1;
	tap_ok(rc == 0 && strstr(line, ",\"paged\":\"legacy\"}}") != NULL &&
		       resp.kvm.paged == KVMRUN_PAGING_LEGACY,
	       "ping's \"paged\":\"legacy\" is written and reads back");
	proto_response_free(&resp);
	free(line);
	kvm.mode_supported[KVMRUN_MODE_PAGED] = false;
	kvm.paged = KVMRUN_PAGING_NONE;
	line = proto_format_ping("1", "0.1.0", &kvm, &length);
	rc = line != NULL ? proto_response_parse(line, length - 1, &resp, &err) : -1;
	tap_ok(rc == 0 && strstr(line, "\"paged\":") == NULL &&
		       resp.kvm.paged == KVMRUN_PAGING_NONE,
	       "a host without paged mode has no \"paged\" in ping");
	proto_response_free(&resp);
	free(line);
}

static void
test_errors(void)
{
	struct proto_response resp;
	struct kvmrun_error err, in;
	size_t length = 0;
	char *line, text[601];
	int rc;

	for (int code = KVMRUN_ERR_BAD_REQUEST; code < KVMRUN_ERR_COUNT; code++) {
		char want[128];

		kvmrun_error_set(&in, (enum kvmrun_errcode)code,
				 "what \"went\"\nwrong");
		line = proto_format_error("7", &in, &length);
		snprintf(
			want, sizeof(want),
			"{\"id\":7,\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":"
			"\"what \\\"went\\\"\\nwrong\"}}\n",
			kvmrun_errcode_names[code]);
		tap_ok(line != NULL && strcmp(line, want) == 0 &&
			       one_line(line, length),
		       "error %s is formatted as documented",
		       kvmrun_errcode_names[code]);
		rc = proto_response_parse(line, length - 1, &resp, &err);
		tap_ok(rc == 0 && resp.kind == PROTO_RESPONSE_ERROR &&
			       resp.error.code == (enum kvmrun_errcode)code &&
			       strcmp(resp.error.message, in.message) == 0 &&
			       strcmp(resp.id_json, "7") == 0,
		       "error %s reads back", kvmrun_errcode_names[code]);
		proto_response_free(&resp);
		free(line);
	}

	kvmrun_error_set(&in, KVMRUN_OK, "no code");
	line = proto_format_error(NULL, &in, &length);
	tap_ok(line != NULL &&
		       strstr(line, "{\"id\":null,\"ok\":false,\"error\":{\"code\":"
				    "\"internal\"") == line,
	       "an error without a code goes out as internal, a NULL id as null");
	free(line);

	/* 300 two-byte characters: the message buffer cuts one in half. */
	for (size_t i = 0; i < 300; i++)
		memcpy(text + 2 * i, "\xc3\xa9", 2);
	text[600] = '\0';
	kvmrun_error_set(&in, KVMRUN_ERR_BAD_REQUEST, "%s", text);
	line = proto_format_error("1", &in, &length);
	rc = line != NULL ? proto_response_parse(line, length - 1, &resp, &err) : -1;
	tap_ok(rc == 0 && one_line(line, length) &&
		       strstr(line, "\xc3\xa9\xef\xbf\xbd\"}}\n") != NULL &&
		       resp.kind == PROTO_RESPONSE_ERROR,
	       "a message cut inside a UTF-8 sequence is still valid JSON");
	proto_response_free(&resp);
	free(line);
}

static void
test_ping_stats(void)
{
	struct proto_kvm_status kvm;
	struct proto_response resp;
	struct proto_stats stats;
	struct proto_steps steps;
	struct kvmrun_error err;
	size_t length = 0;
	char *line, *old;
	int rc, same = 1;

	memset(&kvm, 0, sizeof(kvm));
	kvm.available = true;
	kvm.api_version = 12;
	kvm.mode_supported[KVMRUN_MODE_REAL] = true;
	kvm.mode_supported[KVMRUN_MODE_LONG] = true;
	line = proto_format_ping("1", "0.1.0", &kvm, &length);
	tap_ok(line != NULL && one_line(line, length) &&
		       strcmp(line, "{\"id\":1,\"ok\":true,\"version\":\"0.1.0\","
				    "\"protocol\":3,\"kvm_api\":12,\"kvm\":{"
				    "\"available\":true,\"api_version\":12,"
				    "\"modes\":[\"real\",\"long\"]}}\n") == 0,
	       "ping with KVM is formatted as documented");
	rc = proto_response_parse(line, length - 1, &resp, &err);
	tap_ok(rc == 0 && resp.kind == PROTO_RESPONSE_PING &&
		       strcmp(resp.version, "0.1.0") == 0 && resp.protocol == 3 &&
		       resp.kvm.available && resp.kvm.api_version == 12 &&
		       resp.kvm.mode_supported[KVMRUN_MODE_REAL] &&
		       !resp.kvm.mode_supported[KVMRUN_MODE_PROTECTED] &&
		       !resp.kvm.mode_supported[KVMRUN_MODE_PAGED] &&
		       resp.kvm.mode_supported[KVMRUN_MODE_LONG] &&
		       strcmp(resp.id_json, "1") == 0,
	       "ping with KVM reads back");
	proto_response_free(&resp);
	free(line);

	memset(&kvm, 0, sizeof(kvm));
	snprintf(kvm.reason, sizeof(kvm.reason), "/dev/kvm: No such file or directory");
	line = proto_format_ping("2", "0.1.0", &kvm, &length);
	tap_ok(line != NULL && one_line(line, length) &&
		       strcmp(line, "{\"id\":2,\"ok\":true,\"version\":\"0.1.0\","
				    "\"protocol\":3,\"kvm_api\":null,\"kvm\":{"
				    "\"available\":false,\"reason\":"
				    "\"/dev/kvm: No such file or directory\"}}\n") == 0,
	       "ping without KVM is formatted as documented");
	rc = line != NULL ? proto_response_parse(line, length - 1, &resp, &err) : -1;
	tap_ok(rc == 0 && resp.kind == PROTO_RESPONSE_PING && !resp.kvm.available &&
		       strcmp(resp.kvm.reason, kvm.reason) == 0,
	       "ping without KVM reads back with the reason");
	proto_response_free(&resp);
	free(line);

	memset(&stats, 0, sizeof(stats));
	for (int i = 0; i < KVMRUN_EXIT_REASON_COUNT; i++)
		stats.runs[i] = (uint64_t)i + 100;
	for (int i = 1; i < KVMRUN_ERR_COUNT; i++)
		stats.errors[i] = (uint64_t)i + 200;
	stats.runs_in_flight = 1;
	stats.runs_queued = 2;
	stats.connections_open = 3;
	stats.connections_total = 4;
	stats.uptime_ms = 5;
	stats.workers = 6;
	stats.memory_in_use = UINT64_MAX;
	steps.runs = 7;
	for (int i = 0; i < PROTO_STEP_COUNT; i++)
		steps.ns[i] = (uint64_t)i + 300;
	steps.ns[PROTO_STEP_WRITE] = UINT64_MAX;
	line = proto_format_stats("{\"s\":1}", &stats, &steps, &length);
	tap_ok(line != NULL && one_line(line, length) &&
		       strstr(line, "{\"id\":{\"s\":1},\"ok\":true,\"stats\":{\"runs\":"
				    "{\"hlt\":100,"
				    "\"io\":101,") == line &&
		       strstr(line, "\"errors\":{\"bad_request\":201,\"too_large\":202,"
				    "\"busy\":203,"
				    "\"unsupported\":204,\"internal\":205,"
				    "\"forbidden\":206,\"unavailable\":207},"
				    "\"runs_in_flight\":1,") != NULL &&
		       strstr(line, "\"memory_in_use\":18446744073709551615,"
				    "\"steps_ns\":{\"runs\":7,\"loop_to_parser\":300,"
				    "\"parse\":301,\"parser_to_loop\":302,"
				    "\"dispatch\":303,"
				    "\"loop_to_worker\":304,\"vm_get\":305,"
				    "\"image_copy\":306,\"vcpu_setup\":307,"
				    "\"first_entry\":308,\"run\":309,\"collect\":310,"
				    "\"format\":311,\"worker_to_loop\":312,"
				    "\"write\":18446744073709551615}}}\n") != NULL,
	       "stats are formatted as documented");
	rc = proto_response_parse(line, length - 1, &resp, &err);
	for (int i = 0; i < KVMRUN_EXIT_REASON_COUNT; i++)
		same &= resp.stats.runs[i] == stats.runs[i];
	for (int i = 1; i < KVMRUN_ERR_COUNT; i++)
		same &= resp.stats.errors[i] == stats.errors[i];
	tap_ok(rc == 0 && resp.kind == PROTO_RESPONSE_STATS && same &&
		       resp.stats.runs_in_flight == 1 && resp.stats.runs_queued == 2 &&
		       resp.stats.connections_open == 3 &&
		       resp.stats.connections_total == 4 && resp.stats.uptime_ms == 5 &&
		       resp.stats.workers == 6 &&
		       resp.stats.memory_in_use == UINT64_MAX &&
		       strcmp(resp.id_json, "{\"s\":1}") == 0,
	       "stats read back");
	tap_ok(rc == 0 && memcmp(&resp.steps, &steps, sizeof(steps)) == 0,
	       "stats' steps_ns read back");
	proto_response_free(&resp);

	/* A daemon older than steps_ns: the rest reads, the steps are zero. */
	old = strstr(line, ",\"steps_ns\"");
	if (old != NULL)
		strcpy(old, "}}\n");
	rc = proto_response_parse(line, strlen(line) - 1, &resp, &err);
	tap_ok(rc == 0 && resp.stats.workers == 6 && resp.steps.runs == 0 &&
		       resp.steps.ns[PROTO_STEP_WRITE] == 0,
	       "stats without steps_ns read back with no steps");
	proto_response_free(&resp);
	free(line);
}

static void
test_response_parse(void)
{
	static const struct {
		const char *line;
		const char *message;
	} bad[] = {
		{ "{'id':1,'ok':'yes'}", "ok: expected a boolean, got a string" },
		{ "{'id':1}", "ok: missing" },
		{ "{'id':1,'ok':true}", "needs \"exit\", \"version\" or \"stats\"" },
		{ "{'id':1,'ok':false}", "error: missing" },
		{ "{'id':1,'ok':false,'error':{'code':'nope','message':'x'}}",
		  "error.code: unknown code \"nope\"" },
		{ "{'id':1,'ok':false,'error':{'code':'ok','message':'x'}}",
		  "unknown code \"ok\"" },
		{ "{'id':1,'ok':false,'error':{'code':'busy'}}",
		  "error.message: missing" },
		{ "{'id':1,'ok':true,'version':1,'protocol':1,'kvm_api':12}",
		  "version: expected a string, got an integer" },
		{ "{'id':1,'ok':true,'version':'1','protocol':-1,'kvm_api':12}",
		  "protocol: -1 is negative" },
		{ "{'id':1,'ok':true,'exit':{'reason':'hlt'}}", "regs: missing" },
		{ "{'id':1,'ok':true,'exit':{'reason':'warp'}}",
		  "exit.reason: unknown reason \"warp\"" },
		{ "{'id':1,'ok':true,'exit':{'reason':'io','port':65536}}",
		  "exit.port: 65536 is out of range 0..65535" },
		{ "{'id':1,'ok':true,'exit':{'reason':'io','port':1,'size':1,'count':1,"
		  "'direction':'up'}}",
		  "exit.direction: unknown direction \"up\"" },
		{ "{'id':1,'ok':true,'stats':{'runs':{}}}", "stats.runs.hlt: missing" },
		{ "{'id':1,'ok':true,'stats':[]}",
		  "stats: expected an object, got an array" },
		{ "{'id':1,'ok':true,'version':'1','protocol':1,'kvm_api':12,'version':"
		  "'2'}",
		  "duplicate key \"version\"" },
		{ "{'id':1,'ok':true,'version':'1','protocol':3,'kvm_api':12}",
		  "kvm: missing" },
		{ "{'id':1,'ok':true,'version':'1','protocol':3,'kvm':{'available':false}}",
		  "kvm.reason: missing" },
		{ "{'id':1,'ok':true,'version':'1','protocol':3,'kvm':{'available':true,"
		  "'api_version':12,'modes':['warp']}}",
		  "kvm.modes[0]: unknown mode \"warp\"" },
		{ "{'id':1,'ok':true,'version':'1','protocol':3,'kvm':{'available':1}}",
		  "kvm.available: expected a boolean" },
		{ "{'id':1,'ok':true,'version':'1','protocol':3,'kvm':{'available':true,"
		  "'api_version':12,'modes':['paged'],'paged':'none'}}",
		  "kvm.paged: unknown paged \"none\" (one of legacy, compat)" },
		{ "{'id':1,'ok':true,'version':'1','protocol':1,'kvm_api':12,'version':"
		  "'2'}",
		  "duplicate key \"version\"" },
		{ "{'id':1,'ok':true} x", "unexpected bytes after the JSON text" },
	};
	struct proto_response resp;
	struct kvmrun_result result;
	struct kvmrun_error err;
	size_t length = 0;
	char *line, *text;
	int rc;

	for (size_t i = 0; i < NELEM(bad); i++) {
		text = quote(bad[i].line);
		rc = proto_response_parse(text, strlen(text), &resp, &err);
		if (!tap_ok(rc < 0 && strstr(err.message, bad[i].message) != NULL,
			    "response refused: %s", bad[i].line))
			tap_diag("got: %s", rc < 0 ? err.message : "accepted");
		proto_response_free(&resp);
		free(text);
	}

	text = quote(
		"{'future':[1,{'x':2}],'id':'p','ok':true,'version':'9','protocol':1,"
		"'kvm_api':12,'kvm':{'available':false,'reason':'r'},'extra':null}");
	rc = proto_response_parse(text, strlen(text), &resp, &err);
	tap_ok(rc == 0 && resp.kind == PROTO_RESPONSE_PING &&
		       strcmp(resp.version, "9") == 0,
	       "unknown response fields are skipped");
	proto_response_free(&resp);
	free(text);

	/* A result line with a field of the wrong type in the middle: "exits":"3". */
	fill_result(&result);
	line = proto_format_result("1", &result, &length);
	text = line != NULL ? malloc(length + 3) : NULL;
	rc = 0;
	if (text != NULL) {
		char *at = strstr(line, "\"exits\":3");
		size_t head = (size_t)(at - line) + 8;

		snprintf(text, length + 3, "%.*s\"3\"%s", (int)head, line, at + 9);
		rc = proto_response_parse(text, strlen(text) - 1, &resp, &err);
	}
	tap_ok(rc < 0 &&
		       strstr(err.message,
			      "stats.exits: expected an integer, got a string") != NULL,
	       "a result field of the wrong type is refused");
	proto_response_free(&resp);
	free(text);
	free(line);
}

/* A request's id through the daemon's parse and format to the client's parse. */
static void
test_id_pipeline(void)
{
	static const char *const ids[] = {
		"0",
		"-1",
		"18446744073709551615",
		"2.5e-3",
		"'x\\u0001y'",
		"[]",
		"{}",
		"{'a':[true,false,null,1.5,'\\u00e9']}",
		"null",
	};
	static const struct proto_kvm_status no_kvm = { .reason = "none" };

	for (size_t i = 0; i < NELEM(ids); i++) {
		struct proto_request req;
		struct proto_response resp;
		struct kvmrun_error err;
		char text[256];
		size_t length = 0;
		char *line;
		int rc;

		snprintf(text, sizeof(text), "{'id':%s,'op':'ping'}", ids[i]);
		rc = parse(text, &req, &err);
		line = rc == 0 ? proto_format_ping(req.id_json, "v", &no_kvm, &length)
			       : NULL;
		rc = line != NULL ? proto_response_parse(line, length - 1, &resp, &err)
				  : -1;
		tap_ok(rc == 0 && strcmp(resp.id_json, req.id_json) == 0,
		       "id %s survives request, response and reading (%s)", ids[i],
		       rc == 0 ? resp.id_json : "failed");
		proto_response_free(&resp);
		proto_request_free(&req);
		free(line);
	}
}

/*
 * The CPU state (PROTOCOL.md, "CPU state"): every field's bad forms, with
 * the message naming the field; good forms read exactly; round trips of
 * requests and answers; answers without state unchanged.
 */
#define R "{'image':'9A==',"
#define D32 "0123456789abcdef0123456789abcdef"
static const struct {
	const char *line;
	enum kvmrun_errcode code;
	const char *message;
} bad_state[] = {
	{ R "'xstate':[]}", KVMRUN_ERR_BAD_REQUEST, "xstate: expected an object, got an array" },
	{ R "'xstate':{'xmm0':1}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.xmm0: expected a string, got an integer" },
	{ R "'xstate':{'xmm0':'0x'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.xmm0: expected \"0x\" and 1 to 32 hex digits" },
	{ R "'xstate':{'xmm0':'0x1" D32 "'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.xmm0: expected \"0x\" and 1 to 32 hex digits" },
	{ R "'xstate':{'xmm0':'12'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.xmm0: expected \"0x\"" },
	{ R "'xstate':{'xmm0':'0X12'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.xmm0: expected \"0x\"" },
	{ R "'xstate':{'xmm0':'0x1g'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.xmm0: expected \"0x\"" },
	{ R "'xstate':{'ymm1':'0x1" D32 D32 "'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.ymm1: expected \"0x\" and 1 to 64 hex digits" },
	{ R "'xstate':{'zmm31':'0x1" D32 D32 D32 D32 "'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.zmm31: expected \"0x\" and 1 to 128 hex digits" },
	{ R "'xstate':{'st0':'0x123456789012345678901'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.st0: expected \"0x\" and 1 to 20 hex digits" },
	{ R "'xstate':{'st0':0}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.st0: expected a string, got an integer" },
	{ R "'xstate':{'xmm16':'0x1'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate: unknown register \"xmm16\" (xmm0..xmm15, ymm0..ymm15, zmm0..zmm31" },
	{ R "'xstate':{'ymm16':'0x1'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate: unknown register \"ymm16\"" },
	{ R "'xstate':{'zmm32':'0x1'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate: unknown register \"zmm32\"" },
	{ R "'xstate':{'xmm01':'0x1'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate: unknown register \"xmm01\"" },
	{ R "'xstate':{'k8':1}}", KVMRUN_ERR_BAD_REQUEST, "xstate: unknown register \"k8\"" },
	{ R "'xstate':{'st8':'0x0'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate: unknown register \"st8\"" },
	{ R "'xstate':{'xcr0':7}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate: unknown register \"xcr0\"" },
	{ R "'xstate':{'xmm3':'0x1','ymm3':'0x2'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.ymm3: xmm3 is given too" },
	{ R "'xstate':{'zmm3':'0x1','ymm3':'0x2'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.ymm3: zmm3 is given too" },
	{ R "'xstate':{'zmm3':'0x1','xmm3':'0x2'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.xmm3: zmm3 is given too" },
	{ R "'xstate':{'k0':-1}}", KVMRUN_ERR_BAD_REQUEST, "xstate.k0: -1 is negative" },
	{ R "'xstate':{'k0':'0x12345678901234567'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.k0: \"0x12345678901234567\" is not \"0x\" and 1 to 16 hex digits" },
	{ R "'xstate':{'mxcsr':4294967296}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.mxcsr: 0x100000000 is out of range 0..0xffffffff" },
	{ R "'xstate':{'fcw':'0x10000'}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.fcw: 0x10000 is out of range 0..0xffff" },
	{ R "'xstate':{'ftw':65536}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.ftw: 0x10000 is out of range 0..0xffff" },
	{ R "'xstate':{'fop':2048}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.fop: 0x800 is out of range 0..0x7ff" },
	{ R "'xstate':{'fip':1.5}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate.fip: expected an integer or a \"0x...\" string, got a number" },
	{ R "'msrs':[]}", KVMRUN_ERR_BAD_REQUEST, "msrs: expected an object, got an array" },
	{ R "'msrs':{'ia32_tsc':1}}", KVMRUN_ERR_BAD_REQUEST,
	  "msrs: unknown MSR \"ia32_tsc\" (one of fs_base, gs_base, kernel_gs_base, star, "
	  "lstar, cstar, sfmask, sysenter_cs, sysenter_esp, sysenter_eip, tsc_aux, pat, "
	  "efer)" },
	{ R "'msrs':{'lstar':true}}", KVMRUN_ERR_BAD_REQUEST,
	  "msrs.lstar: expected an integer or a \"0x...\" string, got a boolean" },
	{ R "'msrs':{'star':'0x12345678901234567'}}", KVMRUN_ERR_BAD_REQUEST,
	  "msrs.star: \"0x12345678901234567\" is not \"0x\" and 1 to 16 hex digits" },
	{ R "'cpuid':{}}", KVMRUN_ERR_BAD_REQUEST, "cpuid: expected an array, got an object" },
	{ R "'cpuid':[1]}", KVMRUN_ERR_BAD_REQUEST, "cpuid[0]: expected an object, got an integer" },
	{ R "'cpuid':[{'function':7,'eax':0,'ebx':0,'ecx':0}]}", KVMRUN_ERR_BAD_REQUEST,
	  "cpuid[0]: missing field \"edx\"" },
	{ R "'cpuid':[{'eax':0,'ebx':0,'ecx':0,'edx':0}]}", KVMRUN_ERR_BAD_REQUEST,
	  "cpuid[0]: missing field \"function\"" },
	{ R "'cpuid':[{'function':7,'eax':0,'ebx':0,'ecx':0,'edx':0,'flags':1}]}",
	  KVMRUN_ERR_BAD_REQUEST, "cpuid[0]: unknown field \"flags\"" },
	{ R "'cpuid':[{'function':7,'eax':4294967296,'ebx':0,'ecx':0,'edx':0}]}",
	  KVMRUN_ERR_BAD_REQUEST, "cpuid[0].eax: 0x100000000 is out of range 0..0xffffffff" },
	{ R "'cpuid':[{'function':7,'eax':0,'ebx':0,'ecx':0,'edx':'x'}]}",
	  KVMRUN_ERR_BAD_REQUEST, "cpuid[0].edx: \"x\" is not \"0x\" and 1 to 16 hex digits" },
	{ R "'cpuid':[{'function':7,'eax':0,'ebx':0,'ecx':0,'edx':0},"
	    "{'function':1,'eax':0,'ebx':0,'ecx':0,'edx':0},"
	    "{'function':'0x7','index':0,'eax':1,'ebx':0,'ecx':0,'edx':0}]}",
	  KVMRUN_ERR_BAD_REQUEST, "cpuid: entries 0 and 2 are both function 0x7 index 0" },
	{ R "'return':'xstate'}", KVMRUN_ERR_BAD_REQUEST, "return: expected an array, got a string" },
	{ R "'return':[1]}", KVMRUN_ERR_BAD_REQUEST, "return[0]: expected a string, got an integer" },
	{ R "'return':['xstate','fpu']}", KVMRUN_ERR_BAD_REQUEST,
	  "return[1]: unknown part \"fpu\" (one of xstate, msrs, descriptors, cpuid)" },
	{ R "'return':['msrs','msrs']}", KVMRUN_ERR_BAD_REQUEST, "return[1]: \"msrs\" is given twice" },
	{ R "'mode':'long','segments':{'ds':{'selector':0,'base':0,'limit':65535,'attributes':147}}}",
	  KVMRUN_ERR_BAD_REQUEST,
	  "segments.ds: a descriptor cache (an object) is real-mode only, not long mode" },
	{ R "'mode':'protected','segments':{'es':{}}}", KVMRUN_ERR_BAD_REQUEST,
	  "segments.es: a descriptor cache (an object) is real-mode only, not protected mode" },
	{ R "'segments':{'ds':{'selector':0,'base':0,'limit':65535}}}", KVMRUN_ERR_BAD_REQUEST,
	  "segments.ds: missing field \"attributes\"" },
	{ R "'segments':{'ds':{'selector':0,'base':0,'limit':65535,'attributes':147,'type':3}}}",
	  KVMRUN_ERR_BAD_REQUEST, "segments.ds: unknown field \"type\"" },
	{ R "'segments':{'ds':{'selector':65536,'base':0,'limit':65535,'attributes':147}}}",
	  KVMRUN_ERR_BAD_REQUEST, "segments.ds.selector: 0x10000 is out of range 0..0xffff" },
	{ R "'segments':{'ds':{'selector':0,'base':4294967296,'limit':65535,'attributes':147}}}",
	  KVMRUN_ERR_BAD_REQUEST, "segments.ds.base: 0x100000000 is out of range 0..0xffffffff" },
	{ R "'segments':{'ds':{'selector':0,'base':0,'limit':4294967296,'attributes':147}}}",
	  KVMRUN_ERR_BAD_REQUEST, "segments.ds.limit: 0x100000000 is out of range 0..0xffffffff" },
	{ R "'segments':{'ds':{'selector':0,'base':0,'limit':65535,'attributes':'0x10000'}}}",
	  KVMRUN_ERR_BAD_REQUEST, "segments.ds.attributes: 0x10000 is out of range 0..0xffff" },
	{ R "'segments':{'ds':{'selector':0,'base':0,'limit':65535,'attributes':'0xf93'}}}",
	  KVMRUN_ERR_BAD_REQUEST, "segments.ds.attributes: 0xf93 has bits 8-11 set" },
	{ R "'segments':{'gs':{'selector':0,'base':0,'limit':1048576,'attributes':147}}}",
	  KVMRUN_ERR_BAD_REQUEST,
	  "segments.gs: limit 0x100000 cannot be with G (attributes bit 15) clear" },
	{ R "'segments':{'gs':{'selector':0,'base':0,'limit':'0xfffff000','attributes':'0x8093'}}}",
	  KVMRUN_ERR_BAD_REQUEST,
	  "segments.gs: limit 0xfffff000 cannot be with G (attributes bit 15) set" },
	{ "{'op':'ping','xstate':{}}", KVMRUN_ERR_BAD_REQUEST,
	  "xstate: not allowed with op \"ping\"" },
	{ "{'op':'stats','return':[]}", KVMRUN_ERR_BAD_REQUEST,
	  "return: not allowed with op \"stats\"" },
};

static void
test_state_bad(void)
{
	struct proto_limits limits;
	char *line;

	for (size_t i = 0; i < NELEM(bad_state); i++)
		expect_bad(bad_state[i].line, bad_state[i].code, bad_state[i].message);
	proto_limits_default(&limits);
	tap_ok(limits.max_cpuid_entries == 256, "max_cpuid_entries defaults to KVM's 256");
	/* The count is checked before any entry, duplicates and all. */
	line = many("'image':'9A==',", "cpuid",
		    "{'function':0,'eax':0,'ebx':0,'ecx':0,'edx':0}", 257);
	expect_bad(line, KVMRUN_ERR_TOO_LARGE,
		   "cpuid: 257 entries is over the limit of 256 (--max-cpuid-entries)");
	free(line);
	limits.max_cpuid_entries = 1;
	expect_bad_with(R "'cpuid':[{'function':0,'eax':0,'ebx':0,'ecx':0,'edx':0},"
			  "{'function':1,'eax':0,'ebx':0,'ecx':0,'edx':0}]}",
			&limits, KVMRUN_ERR_TOO_LARGE,
			"cpuid: 2 entries is over the limit of 1 (--max-cpuid-entries)");
}

/* The state of a request that sets some of everything. */
#define STATE_LINE                                                                       \
	R "'segments':{'cs':4096,'ds':{'selector':16,'base':1048576,'limit':4294967295,"  \
	  "'attributes':'0x8093'}},"                                                      \
	  "'xstate':{'xmm0':'0x1','ymm1':'0x800123456789abcdef0123456789abcd"                 \
	  "00000000000000000000000000000000'," \
	  "'zmm31':'0x" D32 D32 D32 D32 "','k7':'0xffffffffffffffff',"                    \
	  "'st0':'0x4000c90fdaa22168c235','st7':'0xFFFF8000000000000000','mxcsr':8064,"  \
	  "'fcw':'0x37f','fsw':0,'ftw':65535,'fop':2047,'fip':18446744073709551615,"     \
	  "'fdp':'0x10'},"                                                               \
	  "'msrs':{'lstar':'0xffffffff81000000','star':1688849860263936,'efer':1280},"   \
	  "'cpuid':[{'function':7,'eax':0,'ebx':1,'ecx':2,'edx':3},"                      \
	  "{'function':'0xd','index':1,'eax':4294967295,'ebx':0,'ecx':0,'edx':0}],"      \
	  "'return':['cpuid','xstate']}"

static void
test_state_request(void)
{
	static const char *const empty[] = {
		R "'return':[]}",
		R "'xstate':{},'msrs':{},'cpuid':[],'return':[]}",
	};
	struct proto_request req, again;
	const struct kvmrun_cpu_state *s;
	struct kvmrun_error err;
	struct proto_limits limits;
	size_t length;
	char *line;
	int rc;

	for (size_t i = 0; i < NELEM(empty); i++) {
		rc = parse(empty[i], &req, &err);
		tap_ok(rc == 0 && req.spec.state == NULL && req.spec.returns == 0,
		       "no state allocated for empty fields: %s", empty[i]);
		proto_request_free(&req);
	}
	rc = parse(R "'regs':{'rax':1}}", &req, &err);
	tap_ok(rc == 0 && req.spec.state == NULL, "a plain run has no state");
	proto_request_free(&req);

	rc = parse(STATE_LINE, &req, &err);
	if (rc == 0)
		rc = proto_request_decode_payloads(&req, &err);
	if (!tap_ok(rc == 0 && req.spec.state != NULL, "a request with every state field"))
		tap_diag("%s", err.message);
	if (rc != 0 || req.spec.state == NULL) {
		proto_request_free(&req);
		return;
	}
	s = req.spec.state;
	tap_ok(s->xstate.vec_bytes[0] == 16 && s->xstate.vec[0][0] == 1 &&
		       s->xstate.vec[0][1] == 0 && s->xstate.vec[0][15] == 0,
	       "xmm0 \"0x1\" is 16 bytes, the 1 in byte 0");
	tap_ok(s->xstate.vec_bytes[1] == 32 && s->xstate.vec[1][31] == 0x80 &&
		       s->xstate.vec[1][30] == 0x01 && s->xstate.vec[1][16] == 0xcd &&
		       s->xstate.vec[1][15] == 0,
	       "ymm1 is 32 bytes, most significant digit first");
	tap_ok(s->xstate.vec_bytes[31] == 64 && s->xstate.vec[31][0] == 0xef &&
		       s->xstate.vec[31][63] == 0x01,
	       "zmm31 takes 128 digits");
	tap_ok(s->xstate.k_set == 0x80 && s->xstate.k[7] == UINT64_MAX, "k7");
	tap_ok(s->xstate.st_set == 0x81 && s->xstate.st[0].sign_exponent == 0x4000 &&
		       s->xstate.st[0].mantissa == 0xc90fdaa22168c235ull &&
		       s->xstate.st[7].sign_exponent == 0xffff &&
		       s->xstate.st[7].mantissa == 0x8000000000000000ull,
	       "st0 and st7: sign and exponent in the top 4 digits");
	tap_ok(s->xstate.fields_set == (1u << KVMRUN_XF_COUNT) - 1 &&
		       s->xstate.mxcsr == 0x1f80 && s->xstate.fcw == 0x37f &&
		       s->xstate.ftw == 0xffff && s->xstate.fop == 0x7ff &&
		       s->xstate.fip == UINT64_MAX && s->xstate.fdp == 0x10,
	       "the control fields");
	tap_ok(s->msrs.set == (1u << KVMRUN_MSR_LSTAR | 1u << KVMRUN_MSR_STAR |
			       1u << KVMRUN_MSR_EFER) &&
		       s->msrs.value[KVMRUN_MSR_LSTAR] == 0xffffffff81000000ull &&
		       s->msrs.value[KVMRUN_MSR_STAR] == 0x0006000000000000ull &&
		       s->msrs.value[KVMRUN_MSR_EFER] == 0x500,
	       "msrs by name, integers and hex strings");
	tap_ok(s->cpuid_count == 2 && s->cpuid[0].function == 7 && s->cpuid[0].index == 0 &&
		       s->cpuid[0].edx == 3 && s->cpuid[1].function == 0xd &&
		       s->cpuid[1].index == 1 && s->cpuid[1].eax == UINT32_MAX,
	       "cpuid entries, index 0 when not given");
	tap_ok(req.spec.returns == (KVMRUN_RETURN_CPUID | KVMRUN_RETURN_XSTATE),
	       "return");
	tap_ok(req.spec.segments[KVMRUN_SEG_CS] == 0x1000 &&
		       req.spec.segments[KVMRUN_SEG_DS] == 16 &&
		       s->segments_set == 1u << KVMRUN_SEG_DS &&
		       s->segments[KVMRUN_SEG_DS].base == 0x100000 &&
		       s->segments[KVMRUN_SEG_DS].limit == UINT32_MAX &&
		       s->segments[KVMRUN_SEG_DS].attributes == 0x8093,
	       "a real-mode ds cache beside a plain cs selector");

	line = proto_format_request(NULL, KVMRUN_OP_RUN, &req.spec, &length);
	tap_ok(one_line(line, length) &&
		       strstr(line, "\"xmm0\":\"0x00000000000000000000000000000001\"") &&
		       strstr(line, "\"st0\":\"0x4000c90fdaa22168c235\"") &&
		       strstr(line, "\"ds\":{\"selector\":16,\"base\":1048576,\"limit\":"
				    "4294967295,\"attributes\":32915}") &&
		       strstr(line, "\"return\":[\"xstate\",\"cpuid\"]"),
	       "the client writes the state, full width");
	proto_limits_default(&limits);
	rc = line != NULL ? proto_request_parse(line, length - 1, &limits, &again, &err) : -1;
	tap_ok(rc == 0 && proto_state_equal(req.spec.state, again.spec.state) &&
		       again.spec.returns == req.spec.returns &&
		       memcmp(again.spec.segments, req.spec.segments,
			      sizeof(req.spec.segments)) == 0,
	       "and the daemon reads it back the same");
	if (rc == 0) {
		again.spec.state->xstate.vec[31][5] ^= 1;
		tap_ok(!proto_state_equal(req.spec.state, again.spec.state),
		       "(a changed byte makes them differ)");
	}
	proto_request_free(&again);
	proto_request_free(&req);
	free(line);
}

/* A returned state with something of each part at its widest. */
static struct kvmrun_cpu_state *
full_state(size_t cpuid_count)
{
	struct kvmrun_cpu_state *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->cpuid = calloc(cpuid_count, sizeof(*s->cpuid))) == NULL)
		abort();
	for (int n = 0; n < KVMRUN_VEC_COUNT; n++) {
		s->xstate.vec_bytes[n] = 64;
		memset(s->xstate.vec[n], 0xa5 ^ n, 64);
	}
	s->xstate.vec_bytes[0] = 16;
	s->xstate.vec_bytes[1] = 32;
	s->xstate.k_set = 0xff;
	s->xstate.st_set = 0xff;
	for (int i = 0; i < 8; i++) {
		s->xstate.k[i] = UINT64_MAX - (uint64_t)i;
		s->xstate.st[i].mantissa = UINT64_MAX;
		s->xstate.st[i].sign_exponent = 0xffff;
	}
	s->xstate.fields_set = (1u << KVMRUN_XF_COUNT) - 1;
	s->xstate.mxcsr = UINT32_MAX;
	s->xstate.fcw = s->xstate.fsw = s->xstate.ftw = 0xffff;
	s->xstate.fop = 0x7ff;
	s->xstate.fip = s->xstate.fdp = UINT64_MAX;
	s->xstate.has_xcr0 = true;
	s->xstate.xcr0 = UINT64_MAX;
	s->msrs.set = (1u << KVMRUN_MSR_COUNT) - 1;
	for (int m = 0; m < KVMRUN_MSR_COUNT; m++)
		s->msrs.value[m] = UINT64_MAX - (uint64_t)m;
	s->segments_set = (1u << KVMRUN_SEG_COUNT) - 1;
	for (int i = 0; i < KVMRUN_SEG_COUNT; i++) {
		s->segments[i].base = (uint64_t)i << 32; /* as fill_result's sregs */
		s->segments[i].limit = UINT32_MAX - (uint32_t)i;
		s->segments[i].attributes = (uint16_t)(0xf0ff - i);
	}
	s->gdt.base = UINT64_MAX;
	s->gdt.limit = 0xffff;
	s->idt.base = 0x1000;
	s->idt.limit = 0xfff;
	for (size_t i = 0; i < cpuid_count; i++)
		s->cpuid[i] = (struct kvmrun_cpuid_entry){ UINT32_MAX - (uint32_t)i, UINT32_MAX,
							   UINT32_MAX, UINT32_MAX,
							   UINT32_MAX, UINT32_MAX };
	s->cpuid_count = cpuid_count;
	return s;
}

static char *
format_result(const struct kvmrun_result *result, size_t *length)
{
	char *line = proto_format_result("\"r\"", result, length);

	if (line == NULL)
		abort();
	return line;
}

static void
test_state_result(void)
{
	static const char *const state_parts[] = {
		"\"xstate\":{\"xmm0\":\"0xa5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5\",\"ymm1\":\"0xa4a4",
		"\"zmm31\":\"0xbaba",
		"\"k0\":18446744073709551615,",
		"\"st7\":\"0xffffffffffffffffffff\",\"mxcsr\":4294967295,\"fcw\":65535,",
		"\"fop\":2047,\"fip\":18446744073709551615,\"fdp\":18446744073709551615,"
		"\"xcr0\":18446744073709551615}",
		"\"msrs\":{\"fs_base\":18446744073709551615,",
		"\"efer\":18446744073709551603}",
		"\"ds\":{\"selector\":8,\"base\":4294967296,\"limit\":4294967294,"
		"\"attributes\":61694}",
		"\"gdt\":{\"base\":18446744073709551615,\"limit\":65535},\"idt\":{\"base\":4096,"
		"\"limit\":4095}}",
		"\"cpuid\":[{\"function\":4294967295,\"index\":4294967295,\"eax\":4294967295,",
		NULL,
	};
	struct kvmrun_result result;
	struct proto_response resp;
	struct proto_limits limits;
	struct kvmrun_error err;
	size_t plain_length, length;
	char *plain, *line;
	bool found = true;
	int rc;

	fill_result(&result);
	plain = format_result(&result, &plain_length);
	result.state = full_state(2);
	line = format_result(&result, &length);
	tap_ok(strcmp(line, plain) == 0,
	       "a state with nothing in result->returned changes no byte of the answer");
	free(line);

	result.returned = KVMRUN_RETURN_XSTATE | KVMRUN_RETURN_MSRS |
			  KVMRUN_RETURN_DESCRIPTORS | KVMRUN_RETURN_CPUID;
	line = format_result(&result, &length);
	tap_ok(one_line(line, length), "an answer with state is one line");
	for (const char *const *part = state_parts; *part != NULL; part++)
		if (strstr(line, *part) == NULL) {
			tap_diag("missing %s", *part);
			found = false;
		}
	if (!tap_ok(found, "it holds each returned part as PROTOCOL.md says"))
		tap_diag("%s", line);
	rc = proto_response_parse(line, length - 1, &resp, &err);
	if (!tap_ok(rc == 0 && resp.result.returned == result.returned &&
			    proto_state_equal(result.state, resp.result.state),
		    "and reads back the same"))
		tap_diag("%s", rc < 0 ? err.message : "differs");
	proto_response_free(&resp);
	free(line);

	/* Only what was asked; descriptors and their gdt go together. */
	result.returned = KVMRUN_RETURN_MSRS;
	line = format_result(&result, &length);
	tap_ok(strstr(line, "\"msrs\":{") != NULL && strstr(line, "\"xstate\"") == NULL &&
		       strstr(line, "\"cpuid\"") == NULL && strstr(line, "\"gdt\"") == NULL &&
		       strstr(line, "\"attributes\"") == NULL,
	       "only the parts returned are in the answer");
	rc = proto_response_parse(line, length - 1, &resp, &err);
	tap_ok(rc == 0 && resp.result.returned == KVMRUN_RETURN_MSRS &&
		       resp.result.state != NULL &&
		       resp.result.state->msrs.set == result.state->msrs.set,
	       "and only they are read back");
	proto_response_free(&resp);
	free(line);
	kvmrun_cpu_state_free(result.state);

	/* The bound the daemon checks --max-output against holds the widest state. */
	result.state = full_state(KVMRUN_CPUID_ENTRIES_MAX + 10);
	result.returned = KVMRUN_RETURN_XSTATE | KVMRUN_RETURN_MSRS |
			  KVMRUN_RETURN_DESCRIPTORS | KVMRUN_RETURN_CPUID;
	for (int n = 0; n < KVMRUN_VEC_COUNT; n++)
		result.state->xstate.vec_bytes[n] = 64;
	line = format_result(&result, &length);
	proto_limits_default(&limits);
	if (!tap_ok(length - plain_length <= proto_state_max_length() &&
			    length - plain_length + 768 > proto_state_max_length(),
		    "the widest state fits proto_state_max_length, with little to spare"))
		tap_diag("%zu bytes more, bound %" PRIu64, length - plain_length,
			 proto_state_max_length());
	tap_ok(proto_result_max_length(&limits) >= length,
	       "and proto_result_max_length counts it");
	tap_ok(strstr(line, "\"function\":4294967039") == NULL &&
		       strstr(line, "\"function\":4294967040") != NULL,
	       "the answer's cpuid stops at %u entries", KVMRUN_CPUID_ENTRIES_MAX);
	free(line);
	kvmrun_cpu_state_free(result.state);
	free(plain);
}

/* Answers are read leniently: what a newer daemon adds is skipped. */
static void
test_state_answer_parse(void)
{
	static const char *const base =
		"{\"ok\":true,\"exit\":{\"reason\":\"hlt\"},\"regs\":{\"rax\":0,\"rbx\":0,"
		"\"rcx\":0,\"rdx\":0,\"rsi\":0,\"rdi\":0,\"rsp\":0,\"rbp\":0,\"r8\":0,\"r9\":0,"
		"\"r10\":0,\"r11\":0,\"r12\":0,\"r13\":0,\"r14\":0,\"r15\":0,\"rip\":0,"
		"\"rflags\":2},\"sregs\":{\"cr0\":0,\"cr2\":0,\"cr3\":0,\"cr4\":0,\"efer\":0,"
		"\"cs\":{\"selector\":0,\"base\":0},\"ds\":{\"selector\":0,\"base\":0},"
		"\"es\":{\"selector\":0,\"base\":0},\"ss\":{\"selector\":0,\"base\":0},"
		"\"fs\":{\"selector\":0,\"base\":0},\"gs\":{\"selector\":0,\"base\":0},"
		"\"tr\":{\"selector\":0,\"base\":0},\"ldt\":{\"selector\":0,\"base\":0}},"
		"\"console\":\"\",\"io_log\":[],\"dump\":[],\"stats\":{\"exits\":1,"
		"\"run_ns\":1},";
	static const struct {
		const char *tail;
		bool ok;
		const char *what;
	} cases[] = {
		{ "\"xstate\":{\"xmm0\":\"0x1\",\"pkru\":0,\"xmm16\":\"0x1\"}}", true,
		  "registers this side does not know are skipped" },
		{ "\"msrs\":{\"lstar\":1,\"ia32_new\":2}}", true, "so are MSRs" },
		{ "\"cpuid\":[{\"function\":1,\"index\":0,\"eax\":0,\"ebx\":0,\"ecx\":0,"
		  "\"edx\":0,\"flags\":1},{\"function\":1,\"index\":0,\"eax\":0,\"ebx\":0,"
		  "\"ecx\":0,\"edx\":0}]}",
		  true, "and cpuid fields; KVM's table is taken as it is" },
		{ "\"xstate\":{\"xmm0\":\"0x1" D32 "\"}}", false,
		  "xstate.xmm0: expected \"0x\" and 1 to 32 hex digits" },
		{ "\"msrs\":{\"lstar\":-1}}", false, "msrs.lstar: -1 is negative" },
		{ "\"cpuid\":[{\"function\":1}]}", false, "cpuid[0]: missing field \"eax\"" },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		char line[2048];
		struct proto_response resp;
		struct kvmrun_error err;
		int rc;

		snprintf(line, sizeof(line), "%s%s", base, cases[i].tail);
		rc = proto_response_parse(line, strlen(line), &resp, &err);
		if (cases[i].ok)
			tap_ok(rc == 0 && resp.result.state != NULL && resp.result.returned != 0,
			       "answer: %s", cases[i].what);
		else if (!tap_ok(rc < 0 && strstr(err.message, cases[i].what) != NULL,
				 "answer refused: %s", cases[i].what))
			tap_diag("rc %d: %s", rc, err.message);
		proto_response_free(&resp);
	}
}
#undef R
#undef D32

/* max_instructions, trace and changes in requests. */
static void
test_observe_request(void)
{
	static uint8_t image[] = { 0xf4 };
	struct proto_limits limits;
	struct proto_request req;
	struct kvmrun_error err;
	struct kvmrun_spec spec;
	size_t length = 0;
	char *line;
	int rc;

	expect_good("{'image':'kA==','max_instructions':1}");
	expect_good("{'image':'kA==','max_instructions':1000000,'trace':true}");
	expect_good("{'image':'kA==','changes':true}");
	expect_good("{'image':'kA==','trace':false,'changes':false}");
	expect_bad("{'image':'kA==','max_instructions':0}", KVMRUN_ERR_BAD_REQUEST,
		   "max_instructions: 0 is below the minimum of 1");
	expect_bad("{'image':'kA==','max_instructions':'1'}", KVMRUN_ERR_BAD_REQUEST,
		   "max_instructions: expected an integer");
	expect_bad("{'image':'kA==','max_instructions':-1}", KVMRUN_ERR_BAD_REQUEST,
		   "max_instructions:");
	expect_bad("{'image':'kA==','max_instructions':1.5}", KVMRUN_ERR_BAD_REQUEST,
		   "max_instructions:");
	expect_bad("{'image':'kA==','max_instructions':true}", KVMRUN_ERR_BAD_REQUEST,
		   "max_instructions: expected an integer");
	expect_bad("{'image':'kA==','max_instructions':1000001}", KVMRUN_ERR_TOO_LARGE,
		   "max_instructions: 1000001 is over the limit of 1000000 "
		   "(--max-instructions)");
	expect_bad("{'image':'kA==','trace':1,'max_instructions':1}", KVMRUN_ERR_BAD_REQUEST,
		   "trace: expected a boolean");
	expect_bad("{'image':'kA==','changes':'yes'}", KVMRUN_ERR_BAD_REQUEST,
		   "changes: expected a boolean");
	expect_bad("{'image':'kA==','trace':true}", KVMRUN_ERR_BAD_REQUEST,
		   "trace: needs max_instructions");
	expect_bad("{'op':'ping','changes':true}", KVMRUN_ERR_BAD_REQUEST,
		   "changes: not allowed with op \"ping\"");

	proto_limits_default(&limits);
	tap_ok(limits.max_instructions == 1000000 && limits.max_trace == 65536,
	       "--max-instructions and --max-trace default to 1000000 and 65536");
	limits.max_instructions = 10;
	limits.max_trace = 7;
	limits.max_dump_bytes = 100;
	expect_bad_with("{'image':'kA==','max_instructions':11}", &limits, KVMRUN_ERR_TOO_LARGE,
			"max_instructions: 11 is over the limit of 10 (--max-instructions)");
	line = quote("{'image':'kA==','max_instructions':10,'trace':true,'changes':true}");
	rc = proto_request_parse(line, strlen(line), &limits, &req, &err);
	tap_ok(rc == 0 && req.spec.max_instructions == 10 && req.spec.trace &&
		       req.spec.changes && req.spec.trace_max == 7 &&
		       req.spec.changes_max == 100,
	       "a run at the limit is taken, with --max-trace and --max-dump-bytes as "
	       "its trace and changes bounds");
	proto_request_free(&req);
	free(line);

	kvmrun_spec_init(&spec);
	spec.image.data = image;
	spec.image.length = 1;
	line = proto_format_request(NULL, KVMRUN_OP_RUN, &spec, &length);
	tap_ok(line != NULL && strstr(line, "max_instructions") == NULL &&
		       strstr(line, "trace") == NULL && strstr(line, "changes") == NULL,
	       "a plain request has none of max_instructions, trace, changes");
	free(line);
	spec.max_instructions = 5;
	spec.trace = true;
	spec.changes = true;
	line = request_round_trip(NULL, KVMRUN_OP_RUN, &spec, &req, &rc);
	tap_ok(rc == 0 && strstr(line, "\"max_instructions\":5,\"trace\":true,"
				       "\"changes\":true") != NULL &&
		       req.spec.max_instructions == 5 && req.spec.trace && req.spec.changes,
	       "max_instructions, trace and changes make the round trip");
	proto_request_free(&req);
	free(line);
}

static void
test_observe_result(void)
{
	static struct kvmrun_trace_entry trace[] = { { 0x1000, 0x33 },
						     { UINT64_MAX, 0xffff } };
	static uint8_t bytes[] = { 1, 2, 3 };
	static struct kvmrun_blob changes[] = { { 0x10, bytes, 3 }, { 0x2000, bytes, 1 } };
	static const char *const full_parts[] = {
		"\"exit\":{\"reason\":\"step_limit\"},",
		"\"trace\":[{\"rip\":4096,\"cs\":51},{\"rip\":18446744073709551615,"
		"\"cs\":65535}],\"trace_truncated\":true,",
		"\"changes\":[{\"address\":16,\"data\":\"AQID\"},{\"address\":8192,"
		"\"data\":\"AQ==\"}],\"changes_truncated\":true,",
		NULL,
	};
	static const char *const empty_parts[] = { "\"trace\":[],\"changes\":[],", NULL };
	static const char *const plain_parts[] = { "\"data\":\"\"}],\"stats\":", NULL };
	static struct kvmrun_trace_entry none[1];
	static struct kvmrun_blob no_changes[1];
	static const struct {
		const char *from, *to, *what;
	} bad[] = {
		{ "{\"rip\":4096,\"cs\":51}", "{\"rip\":4096}", "trace[0].cs: missing" },
		{ "{\"rip\":4096,\"cs\":51}", "{\"rip\":4096,\"cs\":65536}", "trace[0].cs" },
		{ "{\"rip\":4096,\"cs\":51}", "7", "trace[0]: expected an object" },
		{ "\"data\":\"AQID\"", "\"data\":\"AQI\"", "changes[0].data" },
		{ "\"trace_truncated\":true", "\"trace_truncated\":1",
		  "trace_truncated: expected a boolean" },
		{ "\"changes\":[{\"address\":16,\"data\":\"AQID\"},{\"address\":8192,"
		  "\"data\":\"AQ==\"}]",
		  "\"changes\":7", "changes: expected an array" },
	};
	struct kvmrun_result result;
	struct proto_limits limits;
	size_t plain_length = 0, length = 0, runs;
	char *plain, *line;

	fill_result(&result);
	plain = proto_format_result("1", &result, &plain_length);
	check_result("a plain answer has no trace or changes", &result, plain_parts);
	tap_ok(plain != NULL && strstr(plain, "trace") == NULL &&
		       strstr(plain, "changes") == NULL && strstr(plain, "step_limit") == NULL,
	       "a plain answer is as before: no trace, no changes");

	result.exit.reason = KVMRUN_EXIT_STEP_LIMIT;
	result.trace = trace;
	result.trace_count = NELEM(trace);
	result.trace_truncated = true;
	result.changes = changes;
	result.change_count = NELEM(changes);
	result.changes_truncated = true;
	check_result("step_limit with trace and changes, both truncated", &result,
		       full_parts);

	line = proto_format_result("1", &result, &length);
	for (size_t i = 0; line != NULL && i < NELEM(bad); i++) {
		struct proto_response resp;
		struct kvmrun_error err;
		char *at = strstr(line, bad[i].from);
		char *broken = malloc(length + 64);
		int rc = -1;

		if (at != NULL && broken != NULL) {
			snprintf(broken, length + 64, "%.*s%s%s", (int)(at - line), line,
				 bad[i].to, at + strlen(bad[i].from));
			rc = proto_response_parse(broken, strlen(broken) - 1, &resp, &err);
			proto_response_free(&resp);
		}
		if (!tap_ok(at != NULL && rc < 0 && strstr(err.message, bad[i].what) != NULL,
			    "an answer with a bad %s is refused naming it", bad[i].what))
			tap_diag("%s", rc < 0 ? err.message : "accepted");
		free(broken);
	}
	free(line);

	result.trace = none;
	result.trace_count = 0;
	result.trace_truncated = false;
	result.changes = no_changes;
	result.change_count = 0;
	result.changes_truncated = false;
	check_result("asked for but empty: trace and changes as empty arrays", &result,
		       empty_parts);

	/*
	 * The longest changes a bound lets through: 1-byte runs at the longest
	 * addresses, each paying KVMRUN_CHANGE_COST.  They fit in what
	 * proto_result_max_length allows for changes.
	 */
	proto_limits_default(&limits);
	limits.max_dump_bytes = 1000;
	runs = limits.max_dump_bytes / (KVMRUN_CHANGE_COST + 1);
	result.changes = calloc(runs, sizeof(*result.changes));
	for (size_t i = 0; result.changes != NULL && i < runs; i++)
		result.changes[i] = (struct kvmrun_blob){ UINT64_MAX - 2 * i, bytes, 1 };
	result.change_count = runs;
	result.trace = none;
	line = proto_format_result("1", &result, &length);
	tap_ok(line != NULL &&
		       length - plain_length <=
			       proto_base64_encoded_length(limits.max_dump_bytes) + 32,
	       "%zu changes at their bound take %zu bytes, within the %zu the longest "
	       "answer allows for them", runs, length - plain_length,
	       proto_base64_encoded_length(limits.max_dump_bytes));
	free(line);
	free(result.changes);
	{
		struct proto_limits more = limits;

		more.max_trace += 1000;
		tap_ok(proto_result_max_length(&more) - proto_result_max_length(&limits) >=
			       1000 * strlen("{\"rip\":18446744073709551615,\"cs\":65535},"),
		       "the longest answer grows by a longest trace entry per --max-trace");
	}
	free(plain);
}

int
main(void)
{
	test_base64();
	test_defaults();
	test_all_fields();
	test_bad_fields();
	test_limits();
	test_syntax();
	test_ids();
	test_format_request();
	test_results();
	test_paging();
	test_errors();
	test_ping_stats();
	test_response_parse();
	test_id_pipeline();
	test_state_bad();
	test_state_request();
	test_state_result();
	test_state_answer_parse();
	test_observe_request();
	test_observe_result();
	return tap_done();
}
