/*
 * libkvmrun: run x86 machine code in fresh KVM virtual machines through
 * kvmrund, from C.  The one installed header: the plain data of a run (what
 * is asked, struct kvmrun_spec; what comes back, struct kvmrun_result), the
 * error value every call leaves on its connection, and the calls that talk
 * to the daemon.  libkvmrun(3) documents it; protocol/PROTOCOL.md is the
 * wire format behind it.  No call prints or exits.
 */
#ifndef KVMRUN_H
#define KVMRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KVMRUN_API __attribute__((visibility("default")))
#else
#define KVMRUN_API
#endif

#define KVMRUN_PROTOCOL_VERSION 3
#define KVMRUN_DEFAULT_SOCKET "/run/kvmrun/kvmrun.sock"

enum kvmrun_op {
	KVMRUN_OP_RUN,
	KVMRUN_OP_PING,
	KVMRUN_OP_STATS,
	KVMRUN_OP_COUNT
};

enum kvmrun_mode {
	KVMRUN_MODE_REAL,
	KVMRUN_MODE_PROTECTED,
	KVMRUN_MODE_PAGED,
	KVMRUN_MODE_LONG,
	KVMRUN_MODE_COUNT
};

/*
 * How the host runs paged mode's 32-bit code: legacy 32-bit paging, or
 * compatibility mode (EFER.LMA, long-mode page tables, a 64-bit IDT) where
 * KVM keeps paging only in long mode.  PROTOCOL.md lists what differs.
 */
enum kvmrun_paging {
	KVMRUN_PAGING_NONE,	/* not a paged run; in a ping, paged unsupported */
	KVMRUN_PAGING_LEGACY,
	KVMRUN_PAGING_COMPAT,
	KVMRUN_PAGING_COUNT
};

/* General registers in the protocol's order; names in kvmrun_reg_names[]. */
enum kvmrun_reg {
	KVMRUN_REG_RAX,
	KVMRUN_REG_RBX,
	KVMRUN_REG_RCX,
	KVMRUN_REG_RDX,
	KVMRUN_REG_RSI,
	KVMRUN_REG_RDI,
	KVMRUN_REG_RSP,
	KVMRUN_REG_RBP,
	KVMRUN_REG_R8,
	KVMRUN_REG_R9,
	KVMRUN_REG_R10,
	KVMRUN_REG_R11,
	KVMRUN_REG_R12,
	KVMRUN_REG_R13,
	KVMRUN_REG_R14,
	KVMRUN_REG_R15,
	KVMRUN_REG_RIP,
	KVMRUN_REG_RFLAGS,
	KVMRUN_REG_COUNT
};

/* Segment registers; real-mode requests may set the first six selectors. */
enum kvmrun_seg {
	KVMRUN_SEG_CS,
	KVMRUN_SEG_DS,
	KVMRUN_SEG_ES,
	KVMRUN_SEG_SS,
	KVMRUN_SEG_FS,
	KVMRUN_SEG_GS,
	KVMRUN_SEG_REQUEST_COUNT,
	KVMRUN_SEG_TR = KVMRUN_SEG_REQUEST_COUNT,
	KVMRUN_SEG_LDT,
	KVMRUN_SEG_COUNT
};

enum kvmrun_errcode {
	KVMRUN_OK,
	/* The daemon's codes, as the protocol names them (kvmrun_strerror). */
	KVMRUN_ERR_BAD_REQUEST,
	KVMRUN_ERR_TOO_LARGE,
	KVMRUN_ERR_BUSY,
	KVMRUN_ERR_UNSUPPORTED,
	KVMRUN_ERR_INTERNAL,
	KVMRUN_ERR_FORBIDDEN, /* the peer is in neither --allow-uid nor --allow-group */
	KVMRUN_ERR_UNAVAILABLE, /* the daemon has no usable /dev/kvm right now */
	KVMRUN_ERR_COUNT,	/* the protocol's codes are below this */
	/*
	 * A daemon's code newer than this library (PROTOCOL.md: codes may be
	 * added within a protocol version): the message starts with its name,
	 * as in "new_code: what went wrong".
	 */
	KVMRUN_ERR_UNKNOWN = 99,
	/* libkvmrun's own, for what no daemon said. */
	KVMRUN_ERR_CONNECTION = 100, /* no daemon reached, or the connection broke */
	KVMRUN_ERR_CLOSED,	     /* the daemon hung up before answering */
	KVMRUN_ERR_TIMEOUT,	     /* no answer within the response timeout */
	KVMRUN_ERR_PROTOCOL,	     /* an answer unreadable or not to the request */
	KVMRUN_ERR_WOULDBLOCK,	     /* callback I/O: no whole answer received yet */
	KVMRUN_ERR_INVALID,	     /* a call that cannot be made now (window full) */
	KVMRUN_ERR_NOMEM,	     /* out of memory */
};

#define KVMRUN_ERROR_MESSAGE_MAX 512

/* An error is a value: a code for programs and a message for people that
 * names the thing at fault and the rule it broke. */
struct kvmrun_error {
	enum kvmrun_errcode code;
	char message[KVMRUN_ERROR_MESSAGE_MAX];
	int errnum;	/* the errno value behind a library code, else 0 */
};

/* A blob of guest bytes placed at a guest-physical address. */
struct kvmrun_blob {
	uint64_t address;
	uint8_t *data;
	size_t length;
};

struct kvmrun_range {
	uint64_t address;
	uint64_t length;
};

/*
 * The CPU state beyond the general registers (PROTOCOL.md, "CPU state"):
 * what a request may set (spec->state) and what a run returns when asked
 * (spec->returns, result->state).  The same struct serves both ways; the
 * *_set / *_bytes members say which parts are present.
 */
#define KVMRUN_VEC_COUNT 32	/* xmm/ymm/zmm 0..31 */
#define KVMRUN_VEC_BYTES_MAX 64 /* zmm */
#define KVMRUN_K_COUNT 8	/* AVX-512 opmask k0..k7 */
#define KVMRUN_ST_COUNT 8	/* x87 st0..st7, in stack order ST(i) */

/* The x87 and SSE control fields; names in the protocol: "mxcsr", "fcw"... */
enum kvmrun_xfield {
	KVMRUN_XF_MXCSR,
	KVMRUN_XF_FCW,
	KVMRUN_XF_FSW,
	KVMRUN_XF_FTW,		/* the full 16-bit tag word, two bits per R0..R7 */
	KVMRUN_XF_FOP,
	KVMRUN_XF_FIP,
	KVMRUN_XF_FDP,
	KVMRUN_XF_COUNT
};

/* An 80-bit x87 register: bits 0-63 and bits 64-79 (sign and exponent). */
struct kvmrun_x87_reg {
	uint64_t mantissa;
	uint16_t sign_exponent;
};

struct kvmrun_xstate {
	/*
	 * Bytes of vector register N given or returned: 0 (absent), 16 (xmmN),
	 * 32 (ymmN) or 64 (zmmN).  vec[N] holds it little-endian: vec[N][0] is
	 * bits 0-7 of xmmN, vec[N][16] bits 128-135 of ymmN.
	 */
	uint8_t vec_bytes[KVMRUN_VEC_COUNT];
	uint8_t vec[KVMRUN_VEC_COUNT][KVMRUN_VEC_BYTES_MAX];
	uint8_t k_set;			/* bit N: kN present */
	uint64_t k[KVMRUN_K_COUNT];
	uint8_t st_set;			/* bit N: stN present */
	struct kvmrun_x87_reg st[KVMRUN_ST_COUNT];
	uint32_t fields_set;		/* bit (1 << enum kvmrun_xfield) per field present */
	uint32_t mxcsr;
	uint16_t fcw, fsw, ftw, fop;
	uint64_t fip, fdp;
	bool has_xcr0;			/* returned only */
	uint64_t xcr0;
};

/* The MSRs a request may set and a run returns; names in kvmrun_msr_name(). */
enum kvmrun_msr {
	KVMRUN_MSR_FS_BASE,
	KVMRUN_MSR_GS_BASE,
	KVMRUN_MSR_KERNEL_GS_BASE,
	KVMRUN_MSR_STAR,
	KVMRUN_MSR_LSTAR,
	KVMRUN_MSR_CSTAR,
	KVMRUN_MSR_SFMASK,
	KVMRUN_MSR_SYSENTER_CS,
	KVMRUN_MSR_SYSENTER_ESP,
	KVMRUN_MSR_SYSENTER_EIP,
	KVMRUN_MSR_TSC_AUX,
	KVMRUN_MSR_PAT,
	KVMRUN_MSR_EFER,
	KVMRUN_MSR_COUNT
};

struct kvmrun_msrs {
	uint32_t set;			/* bit (1 << enum kvmrun_msr) per MSR present */
	uint64_t value[KVMRUN_MSR_COUNT];
};

/*
 * A segment's descriptor cache.  ATTRIBUTES is the access-rights word as in
 * bits 40-55 of a descriptor with the limit's bits 16-19 left out: bits 0-3
 * type, 4 S, 5-6 DPL, 7 P, 12 AVL, 13 L, 14 D/B, 15 G.  LIMIT is the byte
 * limit, granularity applied.
 */
struct kvmrun_descriptor {
	uint64_t base;
	uint32_t limit;
	uint16_t attributes;
};

struct kvmrun_table {
	uint64_t base;
	uint16_t limit;
};

struct kvmrun_cpuid_entry {
	uint32_t function, index;
	uint32_t eax, ebx, ecx, edx;
};

/* Parts of the state: spec->returns asks for them, result->state has them. */
enum kvmrun_state_part {
	KVMRUN_RETURN_XSTATE = 1u << 0,
	KVMRUN_RETURN_MSRS = 1u << 1,
	KVMRUN_RETURN_DESCRIPTORS = 1u << 2,
	KVMRUN_RETURN_CPUID = 1u << 3,
};

struct kvmrun_cpu_state {
	struct kvmrun_xstate xstate;
	struct kvmrun_msrs msrs;
	/*
	 * Given: real-mode descriptor caches, bit (1 << enum kvmrun_seg) per
	 * segment (the selector stays in spec->segments).  Returned: all of
	 * them, selectors in result->sregs.
	 */
	uint32_t segments_set;
	struct kvmrun_descriptor segments[KVMRUN_SEG_COUNT];
	struct kvmrun_table gdt, idt;	/* returned only */
	/* Given: entries replacing the host's; returned: the vCPU's whole table. */
	struct kvmrun_cpuid_entry *cpuid;
	size_t cpuid_count;
};

/* What one run asks for.  The spec owns its buffers: kvmrun_spec_free(). */
struct kvmrun_spec {
	enum kvmrun_mode mode;
	unsigned int ring;		/* 0, or 3 for user mode (not real mode) */
	uint64_t memory_size;		/* bytes, a multiple of 4096 */
	struct kvmrun_blob image;	/* image.address is the load address */
	struct kvmrun_blob *regions;
	size_t region_count;
	uint64_t regs[KVMRUN_REG_COUNT];
	uint32_t regs_set;		/* bit (1 << enum kvmrun_reg) per register given */
	uint16_t segments[KVMRUN_SEG_REQUEST_COUNT];
	uint32_t timeout_ms;
	uint16_t *log_ports;
	size_t log_port_count;
	struct kvmrun_range *dumps;
	size_t dump_count;
	struct kvmrun_cpu_state *state;	/* NULL, or the state to start with */
	uint32_t returns;		/* enum kvmrun_state_part bits: what to return */
	uint64_t max_instructions;	/* 0: no bound; else stop with step_limit */
	bool trace;			/* return the rip and cs before each instruction */
	bool changes;			/* return the memory that differs at the end */
	/* Set by the daemon's options, not by the request: ignored by libkvmrun. */
	size_t console_max;		/* bytes recorded before the run ends */
	size_t io_log_max;		/* io log records before the run ends */
	size_t trace_max;		/* trace entries kept; past it trace_truncated */
	uint64_t changes_max;		/* changes kept: their bytes + 48 per entry */
};

enum kvmrun_exit_reason {
	KVMRUN_EXIT_HLT,
	KVMRUN_EXIT_IO,
	KVMRUN_EXIT_MMIO,
	KVMRUN_EXIT_SHUTDOWN,
	KVMRUN_EXIT_TIMEOUT,
	KVMRUN_EXIT_FAIL_ENTRY,
	KVMRUN_EXIT_INTERNAL_ERROR,
	KVMRUN_EXIT_EXCEPTION,
	KVMRUN_EXIT_OUTPUT_LIMIT,	/* console or io log reached its bound */
	KVMRUN_EXIT_CANCELLED,		/* the caller stopped the run */
	KVMRUN_EXIT_OTHER,		/* any other KVM exit, by its number */
	KVMRUN_EXIT_STEP_LIMIT,	/* spec->max_instructions were executed */
	KVMRUN_EXIT_REASON_COUNT,
	/*
	 * A reason newer than this library (PROTOCOL.md: reasons may be added
	 * within a protocol version): its name is in u.unknown.name.
	 */
	KVMRUN_EXIT_UNKNOWN = 100
};

/* The longest protocol name kept for an unknown exit reason, with its NUL. */
#define KVMRUN_NAME_MAX 64

#define KVMRUN_IO_DATA_MAX 64
#define KVMRUN_INTERNAL_DATA_MAX 16
#define KVMRUN_INSN_BYTES_MAX 15

struct kvmrun_exit {
	enum kvmrun_exit_reason reason;
	union {
		struct {
			uint16_t port;
			bool is_in;
			uint8_t size;
			uint32_t count;
			uint8_t data[KVMRUN_IO_DATA_MAX];
			uint32_t data_length;	/* bytes in data, at most size*count */
		} io;
		struct {
			uint64_t address;
			bool is_write;
			uint32_t length;
			uint8_t data[8];
		} mmio;
		struct {
			uint64_t hardware_reason;
		} fail_entry;
		struct {
			uint32_t suberror;
			uint32_t data_count;
			uint64_t data[KVMRUN_INTERNAL_DATA_MAX];
			uint32_t insn_length;	/* instruction bytes of an emulation failure */
			uint8_t insn[KVMRUN_INSN_BYTES_MAX];
		} internal;
		struct {
			uint8_t vector;
			bool has_error_code;
			uint32_t error_code;
			uint64_t rip;
			uint16_t cs;
			uint64_t cr2;
		} exception;
		struct {
			bool console;		/* which bound was reached */
		} output_limit;
		struct {
			uint32_t kvm_exit_reason;
		} other;
		struct {
			char name[KVMRUN_NAME_MAX]; /* lower case, digits and '_' */
		} unknown;
	} u;
};

struct kvmrun_segment {
	uint16_t selector;
	uint64_t base;
};

struct kvmrun_sregs {
	uint64_t cr0, cr2, cr3, cr4, efer;
	struct kvmrun_segment segments[KVMRUN_SEG_COUNT];
};

struct kvmrun_io_record {
	uint16_t port;
	uint8_t size;
	uint32_t value;
};

/* Where one instruction of a traced run began. */
struct kvmrun_trace_entry {
	uint64_t rip;
	uint16_t cs;
};

/* What one run gives back.  The result owns its buffers: kvmrun_result_free(). */
struct kvmrun_result {
	struct kvmrun_exit exit;
	uint64_t regs[KVMRUN_REG_COUNT];
	struct kvmrun_sregs sregs;
	uint8_t *console;
	size_t console_length;
	bool console_truncated;
	struct kvmrun_io_record *io_log;
	size_t io_log_count;
	bool io_log_truncated;
	struct kvmrun_blob *dumps;
	size_t dump_count;
	struct kvmrun_cpu_state *state;	/* NULL unless spec->returns asked */
	uint32_t returned;		/* enum kvmrun_state_part bits state holds */
	struct kvmrun_trace_entry *trace; /* spec->trace: one per instruction begun */
	size_t trace_count;
	bool trace_truncated;
	struct kvmrun_blob *changes;	/* spec->changes: merged runs, by address */
	size_t change_count;
	bool changes_truncated;
	uint64_t exits;
	uint64_t run_ns;
	enum kvmrun_paging paging;	/* paged runs: how they were paged; else NONE */
};

#define KVMRUN_DEFAULT_MEMORY_SIZE (2u << 20)
#define KVMRUN_DEFAULT_TIMEOUT_MS 1000u
#define KVMRUN_PAGE_SIZE 4096u
#define KVMRUN_CONSOLE_PORT 0xe9

/* Sets the defaults the protocol documents (real mode, 2 MiB, 1000 ms). */
KVMRUN_API void kvmrun_spec_init(struct kvmrun_spec *spec);
/* Frees what the spec points to (image, regions, log ports, dumps). */
KVMRUN_API void kvmrun_spec_free(struct kvmrun_spec *spec);
KVMRUN_API void kvmrun_result_init(struct kvmrun_result *result);
KVMRUN_API void kvmrun_result_free(struct kvmrun_result *result);
/* Frees a state and its CPUID table (spec/result_free call it); NULL is fine. */
KVMRUN_API void kvmrun_cpu_state_free(struct kvmrun_cpu_state *state);

/* The protocol's names ("long", "rax", "cs", "hlt", "run"), or NULL out of range. */
KVMRUN_API const char *kvmrun_mode_name(enum kvmrun_mode mode);
KVMRUN_API const char *kvmrun_reg_name(enum kvmrun_reg reg);
KVMRUN_API const char *kvmrun_seg_name(enum kvmrun_seg seg);
KVMRUN_API const char *kvmrun_exit_reason_name(enum kvmrun_exit_reason reason);
KVMRUN_API const char *kvmrun_op_name(enum kvmrun_op op);
KVMRUN_API const char *kvmrun_msr_name(enum kvmrun_msr msr);
KVMRUN_API const char *kvmrun_xfield_name(enum kvmrun_xfield field);
/* Name of an exception vector ("#PF"), or NULL for a vector with none. */
KVMRUN_API const char *kvmrun_vector_name(unsigned int vector);
/* An error code's name: the protocol's ("bad_request"), or the library's
 * ("connection", "closed", "timeout", ...); "unknown" for any other. */
KVMRUN_API const char *kvmrun_strerror(enum kvmrun_errcode code);

/* What ping tells of the daemon. */
struct kvmrun_ping {
	char version[64];		/* kvmrund's version; empty when not given */
	int protocol;			/* KVMRUN_PROTOCOL_VERSION */
	bool kvm_available;		/* whether it can run guests now */
	int kvm_api_version;		/* when available */
	bool mode_supported[KVMRUN_MODE_COUNT]; /* when available */
	char kvm_reason[KVMRUN_ERROR_MESSAGE_MAX]; /* why not, when not available */
	enum kvmrun_paging paged;	/* how paged mode runs; NONE when it does not */
};

/* The daemon's counters, as stats reports them. */
struct kvmrun_stats {
	uint64_t runs[KVMRUN_EXIT_REASON_COUNT]; /* finished runs by exit reason */
	uint64_t errors[KVMRUN_ERR_COUNT];	 /* error answers by code */
	uint64_t runs_in_flight;
	uint64_t runs_queued;
	uint64_t connections_open;
	uint64_t connections_total;
	uint64_t uptime_ms;
	uint64_t workers;
	uint64_t memory_in_use;	/* bytes of guest memory reserved by runs */
};

/* One answer taken by kvmrun_next; kvmrun_answer_free() releases it. */
struct kvmrun_answer {
	/*
	 * The request's op.  For a line sent by kvmrun_submit_line, the kind of
	 * answer that came (KVMRUN_OP_COUNT for an error answer).
	 */
	enum kvmrun_op op;
	/*
	 * KVMRUN_OK, the daemon's error (bad_request... unavailable), or
	 * KVMRUN_ERR_PROTOCOL for an answer that is unreadable, for another id
	 * or of the wrong kind.  Each with its message.
	 */
	struct kvmrun_error error;
	struct kvmrun_result result;	/* op run, error.code KVMRUN_OK */
	struct kvmrun_ping ping;	/* op ping, error.code KVMRUN_OK */
	struct kvmrun_stats stats;	/* op stats, error.code KVMRUN_OK */
	char *line;			/* the answer line as it came, no '\n' */
	size_t line_length;
};

KVMRUN_API void kvmrun_answer_free(struct kvmrun_answer *answer);

/* A connection to kvmrund; opaque. */
struct kvmrun_conn;

/*
 * The transport, for programs that do their own I/O (an event loop).  send
 * takes all LENGTH bytes or fails: 0, or -errno.  recv stores what it has, up
 * to LENGTH bytes: a count > 0, 0 at end of file, -EAGAIN when nothing is
 * there yet (kvmrun_next then fails with KVMRUN_ERR_WOULDBLOCK), or -errno.
 * recv may be NULL when the program hands over what it read with
 * kvmrun_feed().  Timeouts are the program's own in this mode.
 */
struct kvmrun_io {
	int (*send)(struct kvmrun_conn *conn, const void *data, size_t length,
		    void *user_data);
	ssize_t (*recv)(struct kvmrun_conn *conn, void *data, size_t length,
			void *user_data);
};

/*
 * A connection over kvmrund's Unix socket at PATH; NULL means
 * $KVMRUN_SOCKET, or KVMRUN_DEFAULT_SOCKET when that is unset or empty.
 * Calls on it block, each within its timeout.  It connects on the first
 * request (or kvmrun_connect).  NULL only when out of memory.  A PATH
 * "tls://HOST:PORT" is a front terminating TLS (HAProxy) over TCP instead,
 * with the files of kvmrun_set_tls, at first $KVMRUN_CA, $KVMRUN_CERT and
 * $KVMRUN_KEY.
 */
KVMRUN_API struct kvmrun_conn *kvmrun_open(const char *path);
/*
 * PEM files for a tls:// connection, taken before it connects: the CAs the
 * server's certificate must chain to (NULL or "": the system's), and the
 * client's certificate and key (both or neither).  The server's name, HOST,
 * must match its certificate.  0, or -1 when out of memory.
 */
KVMRUN_API int kvmrun_set_tls(struct kvmrun_conn *conn, const char *ca,
			      const char *cert, const char *key);
/* A connection over IO's callbacks, which get USER_DATA.  NULL when out of memory. */
KVMRUN_API struct kvmrun_conn *kvmrun_open_io(const struct kvmrun_io *io,
					      void *user_data);
/* Closes the socket and frees CONN, with what it received and no one took. */
KVMRUN_API void kvmrun_close(struct kvmrun_conn *conn);

/* Connects now rather than at the first request: 0, or -1 (kvmrun_last_error). */
KVMRUN_API int kvmrun_connect(struct kvmrun_conn *conn);
/* The socket path messages name ("" over callbacks). */
KVMRUN_API const char *kvmrun_socket_path(const struct kvmrun_conn *conn);
/* The connected socket, to poll for input; -1 before connecting or over callbacks. */
KVMRUN_API int kvmrun_fd(const struct kvmrun_conn *conn);

/*
 * Milliseconds a busy daemon may take to accept (default 5000) and an
 * answer may take (default -1: a run's timeout_ms plus 10 s, 10 s for ping
 * and stats, 70 s for a line sent as it is).  Negative waits for ever.
 */
KVMRUN_API void kvmrun_set_timeouts(struct kvmrun_conn *conn, int connect_ms,
				    int response_ms);
/*
 * How many requests may be submitted and not yet taken by kvmrun_next
 * (default 16, at most 65536): 0, or -1 when WINDOW is out of range or
 * below what is pending now.
 */
KVMRUN_API int kvmrun_set_window(struct kvmrun_conn *conn, unsigned int window);
/* Requests submitted whose answers kvmrun_next has not yet given. */
KVMRUN_API unsigned int kvmrun_pending(const struct kvmrun_conn *conn);
/* Whether a whole answer line is already received, so kvmrun_next will not wait. */
KVMRUN_API bool kvmrun_answer_ready(const struct kvmrun_conn *conn);

/*
 * The error of the last call on CONN that failed: a library code (connection,
 * closed, timeout, protocol, wouldblock, invalid, nomem), or for the
 * synchronous calls the daemon's own code and message.  Never NULL.
 */
KVMRUN_API const struct kvmrun_error *kvmrun_last_error(const struct kvmrun_conn *conn);

/*
 * Synchronous calls: one request, its answer.  0 with the answer in the
 * output; -1 with kvmrun_last_error() holding the daemon's error (its code
 * and message) or the library's.  A run that ends in any exit, a fault or a
 * timeout included, is a success: see result->exit.reason.  They need no
 * other request pending.
 */
KVMRUN_API int kvmrun_run(struct kvmrun_conn *conn, const struct kvmrun_spec *spec,
			  struct kvmrun_result *result);
KVMRUN_API int kvmrun_ping(struct kvmrun_conn *conn, struct kvmrun_ping *ping);
KVMRUN_API int kvmrun_stats(struct kvmrun_conn *conn, struct kvmrun_stats *stats);

/*
 * Pipelining: submit requests, then take their answers in the order they
 * were submitted.  kvmrun_submit sends one request (SPEC only for a run, NULL
 * otherwise); kvmrun_submit_line sends LINE, a request as it is (no '\n'), and
 * its answer is not checked against it.  Both fail with KVMRUN_ERR_INVALID
 * while the window is full: take an answer first.  A daemon that hangs up
 * while a request is sent may still have answered: the error then comes
 * from kvmrun_next.
 */
KVMRUN_API int kvmrun_submit(struct kvmrun_conn *conn, enum kvmrun_op op,
			     const struct kvmrun_spec *spec);
KVMRUN_API int kvmrun_submit_line(struct kvmrun_conn *conn, const char *line,
				  size_t length);
/*
 * The line (without its '\n') the next kvmrun_submit of OP and SPEC on CONN
 * would send, to show or log it; *LENGTH its length.  To free; NULL when
 * out of memory, or when OP and SPEC do not go together.
 */
KVMRUN_API char *kvmrun_request_line(const struct kvmrun_conn *conn, enum kvmrun_op op,
				     const struct kvmrun_spec *spec, size_t *length);
/*
 * The answer to the oldest request pending: 0 when a line came for it, the
 * daemon's refusal (answer->error) included; -1 when none came
 * (kvmrun_last_error: connection, closed, timeout, wouldblock, invalid when
 * nothing is pending, nomem).  A line received with nothing pending is
 * given as an answer with KVMRUN_ERR_PROTOCOL.
 */
KVMRUN_API int kvmrun_next(struct kvmrun_conn *conn, struct kvmrun_answer *answer);
/*
 * Callback I/O: hands over bytes the program received (LENGTH 0: the daemon
 * closed the connection).  0, or -1 (nomem, or a line too long).
 */
KVMRUN_API int kvmrun_feed(struct kvmrun_conn *conn, const void *data, size_t length);

#ifdef __cplusplus
}
#endif

#endif
