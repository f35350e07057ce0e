/*
 * The protocol codec against its contract (protocol/PROTOCOL.md): every
 * request field in good and bad forms, json-c's coercions refused, limits,
 * ids echoed, responses read back exactly, base64 against RFC 4648.
 */
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

static bool
result_equal(const struct kvmrun_result *a, const struct kvmrun_result *b)
{
	if (!exit_equal(&a->exit, &b->exit) ||
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
	    a->run_ns != b->run_ns)
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
	struct kvmrun_error err;
	size_t length = 0;
	char *line;
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
	line = proto_format_stats("{\"s\":1}", &stats, &length);
	tap_ok(line != NULL && one_line(line, length) &&
		       strstr(line, "{\"id\":{\"s\":1},\"ok\":true,\"stats\":{\"runs\":"
				    "{\"hlt\":100,"
				    "\"io\":101,") == line &&
		       strstr(line, "\"errors\":{\"bad_request\":201,\"too_large\":202,"
				    "\"busy\":203,"
				    "\"unsupported\":204,\"internal\":205,"
				    "\"forbidden\":206,\"unavailable\":207},"
				    "\"runs_in_flight\":1,") != NULL &&
		       strstr(line, "\"memory_in_use\":18446744073709551615}}\n") !=
			       NULL,
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
	test_errors();
	test_ping_stats();
	test_response_parse();
	test_id_pipeline();
	return tap_done();
}
