/*
 * The kvmrun wire protocol: one JSON object per line over a stream Unix
 * socket (protocol/PROTOCOL.md is the reference).  This header is the codec's
 * API, shared by kvmrund and kvmrun-client: request line <-> struct
 * kvmrun_spec, struct kvmrun_result <-> response line.  The codec does no I/O
 * and knows nothing of KVM; json-c is used only behind it.
 */
#ifndef KVMRUN_PROTO_H
#define KVMRUN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvmrun-run.h"

extern const char *const kvmrun_op_names[KVMRUN_OP_COUNT];

/*
 * The limits a request is checked against; each is a daemon option and a
 * request past one gets too_large naming it (PROTOCOL.md lists them).
 */
struct proto_limits {
	size_t max_line;		/* --max-line: bytes of one request line */
	uint64_t max_memory;		/* --max-memory: memory_size of one run */
	uint32_t max_timeout_ms;	/* --max-timeout-ms */
	size_t max_regions;		/* entries in "regions" */
	size_t max_dumps;		/* entries in "dump" */
	uint64_t max_dump_bytes;	/* sum of dump lengths */
	size_t max_log_ports;		/* entries in "log_ports" */
	size_t max_cpuid_entries;	/* entries in "cpuid" */
	uint64_t max_instructions;	/* --max-instructions: "max_instructions" */
	/* Not checks but bounds of the run's output, copied into each spec. */
	size_t max_console;		/* --max-console: console bytes */
	size_t max_io_log;		/* --max-io-log: io log records */
	size_t max_trace;		/* --max-trace: trace entries */
};

#define KVMRUN_DEFAULT_MAX_LINE (24u << 20)
#define KVMRUN_DEFAULT_MAX_MEMORY (256ull << 20)
#define KVMRUN_DEFAULT_MAX_TIMEOUT_MS 60000u
#define KVMRUN_DEFAULT_MAX_REGIONS 64u
#define KVMRUN_DEFAULT_MAX_DUMPS 64u
#define KVMRUN_DEFAULT_MAX_DUMP_BYTES (4ull << 20)
#define KVMRUN_DEFAULT_MAX_LOG_PORTS 64u
/* KVM's own bound on a vCPU's CPUID table (KVM_MAX_CPUID_ENTRIES). */
#define KVMRUN_CPUID_ENTRIES_MAX 256u
#define KVMRUN_DEFAULT_MAX_CPUID_ENTRIES KVMRUN_CPUID_ENTRIES_MAX
/* A stepped instruction costs a KVM exit or two: about a second's worth. */
#define KVMRUN_DEFAULT_MAX_INSTRUCTIONS 1000000u

void proto_limits_default(struct proto_limits *limits);

/*
 * A request as the daemon's event loop decodes it.  The base64 payloads are
 * checked for form and size but left encoded, so the large part of the work
 * (proto_request_decode_payloads) can run on a worker thread.
 */
struct proto_request {
	char *id_json;			/* the id as JSON text; "null" when absent */
	enum kvmrun_op op;
	struct kvmrun_spec spec;	/* image and region data empty until decoded */
	char *image_base64;
	char **region_base64;		/* spec.region_count entries */
	uint64_t payload_bytes;		/* decoded size of image and regions */
};

/*
 * Parses and validates one request line (without its '\n').  On failure ERR
 * says what is wrong and REQ->id_json still holds the id when the line was
 * readable enough to find one (else "null"); call proto_request_free either
 * way.
 */
int proto_request_parse(const char *line, size_t length, const struct proto_limits *limits,
			struct proto_request *req, struct kvmrun_error *err);
/* Bytes REQ's payloads take, encoded and decoded: what a queued run holds. */
uint64_t proto_request_held_bytes(const struct proto_request *req);
/* Decodes the base64 payloads into req->spec.image and req->spec.regions. */
int proto_request_decode_payloads(struct proto_request *req, struct kvmrun_error *err);
void proto_request_free(struct proto_request *req);

/* Counters the stats op reports: the public struct kvmrun_stats (kvmrun.h). */
#define proto_stats kvmrun_stats

/*
 * The steps a run request goes through in kvmrund, in order, from its line
 * complete to its answer written; they add up to that whole time.
 * PROTOCOL.md ("stats", steps_ns) says where each begins and ends.
 */
enum proto_step {
	PROTO_STEP_LOOP_TO_PARSER,
	PROTO_STEP_PARSE,
	PROTO_STEP_PARSER_TO_LOOP,
	PROTO_STEP_DISPATCH,
	PROTO_STEP_LOOP_TO_WORKER,
	PROTO_STEP_VM_GET,
	PROTO_STEP_IMAGE_COPY,
	PROTO_STEP_VCPU_SETUP,
	PROTO_STEP_FIRST_ENTRY,
	PROTO_STEP_RUN,
	PROTO_STEP_COLLECT,
	PROTO_STEP_FORMAT,
	PROTO_STEP_WORKER_TO_LOOP,
	PROTO_STEP_WRITE,
	PROTO_STEP_COUNT
};

extern const char *const proto_step_names[PROTO_STEP_COUNT];

/*
 * stats' steps_ns: nanoseconds of each step summed over RUNS runs answered
 * with a result.  Not in struct kvmrun_stats, whose size is libkvmrun's ABI.
 */
struct proto_steps {
	uint64_t runs;
	uint64_t ns[PROTO_STEP_COUNT];
};

/* Whether the daemon can run guests, as ping reports it. */
struct proto_kvm_status {
	bool available;
	int api_version;			   /* when available */
	bool mode_supported[KVMRUN_MODE_COUNT];	   /* when available */
	enum kvmrun_paging paged;		   /* when paged mode is supported */
	char reason[KVMRUN_ERROR_MESSAGE_MAX];	   /* when not available */
};

/*
 * Response lines, each ending in '\n' and holding no other newline.  They
 * return a malloc'ed string (length in *LENGTH) or NULL when out of memory.
 */
char *proto_format_result(const char *id_json, const struct kvmrun_result *result,
			  size_t *length);
/*
 * The longest answer line a run can have under LIMITS: an id as long as a
 * request line, the console, io log and dumps at their bounds.
 */
uint64_t proto_result_max_length(const struct proto_limits *limits);
/* Bytes the returned CPU state may add to an answer, at most (counted above). */
uint64_t proto_state_max_length(void);
char *proto_format_error(const char *id_json, const struct kvmrun_error *err, size_t *length);
char *proto_format_ping(const char *id_json, const char *version,
			const struct proto_kvm_status *kvm, size_t *length);
char *proto_format_stats(const char *id_json, const struct proto_stats *stats,
			 const struct proto_steps *steps, size_t *length);

/* The client's side: a request line from a spec (payloads encoded here). */
char *proto_format_request(const char *id_json, enum kvmrun_op op, const struct kvmrun_spec *spec,
			   size_t *length);

enum proto_response_kind {
	PROTO_RESPONSE_RESULT,
	PROTO_RESPONSE_ERROR,
	PROTO_RESPONSE_PING,
	PROTO_RESPONSE_STATS
};

/* A response line as the client decodes it. */
struct proto_response {
	char *id_json;
	enum proto_response_kind kind;
	struct kvmrun_result result;	/* RESULT */
	struct kvmrun_error error;	/* ERROR */
	char *version;			/* PING */
	int protocol;			/* PING */
	struct proto_kvm_status kvm;	/* PING */
	struct proto_stats stats;	/* STATS */
	struct proto_steps steps;	/* STATS: zero when the daemon has none */
};

int proto_response_parse(const char *line, size_t length, struct proto_response *resp,
			 struct kvmrun_error *err);
void proto_response_free(struct proto_response *resp);

/*
 * Whether two CPU states hold the same values (only the parts each marks
 * present); NULL is a state with nothing set.  For round-trip checks.
 */
bool proto_state_equal(const struct kvmrun_cpu_state *a, const struct kvmrun_cpu_state *b);

/* Base64 (RFC 4648, with padding), used for images, regions and dumps. */
size_t proto_base64_encoded_length(size_t length);
/* Decoded size of a well-formed encoding of LENGTH characters, or SIZE_MAX. */
size_t proto_base64_decoded_length(const char *text, size_t length);
void proto_base64_encode(const uint8_t *data, size_t length, char *out);
/* Returns the decoded size, or -1 when TEXT is not canonical base64. */
long long proto_base64_decode(const char *text, size_t length, uint8_t *out);

#endif
