/*
 * The plain data of one guest run: what a caller asks for (struct kvmrun_spec),
 * what comes back (struct kvmrun_result) and the error value every layer
 * returns.  Shared by the KVM engine, the protocol codec and the client, so it
 * holds no JSON, no libev and no KVM types.
 */
#ifndef KVMRUN_RUN_H
#define KVMRUN_RUN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kvmrun_mode {
	KVMRUN_MODE_REAL,
	KVMRUN_MODE_PROTECTED,
	KVMRUN_MODE_PAGED,
	KVMRUN_MODE_LONG,
	KVMRUN_MODE_COUNT
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
	KVMRUN_ERR_BAD_REQUEST,
	KVMRUN_ERR_TOO_LARGE,
	KVMRUN_ERR_BUSY,
	KVMRUN_ERR_UNSUPPORTED,
	KVMRUN_ERR_INTERNAL,
	KVMRUN_ERR_FORBIDDEN, /* the peer is in neither --allow-uid nor --allow-group */
	KVMRUN_ERR_UNAVAILABLE, /* the daemon has no usable /dev/kvm right now */
	KVMRUN_ERR_COUNT
};

#define KVMRUN_ERROR_MESSAGE_MAX 512

/* An error is a value: a code for programs and a message for people that
 * names the thing at fault and the rule it broke. */
struct kvmrun_error {
	enum kvmrun_errcode code;
	char message[KVMRUN_ERROR_MESSAGE_MAX];
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
	/* Set by the daemon's options, not by the request. */
	size_t console_max;		/* bytes recorded before the run ends */
	size_t io_log_max;		/* io log records before the run ends */
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
	KVMRUN_EXIT_REASON_COUNT
};

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
	uint64_t exits;
	uint64_t run_ns;
};

extern const char *const kvmrun_mode_names[KVMRUN_MODE_COUNT];
extern const char *const kvmrun_reg_names[KVMRUN_REG_COUNT];
extern const char *const kvmrun_seg_names[KVMRUN_SEG_COUNT];
extern const char *const kvmrun_errcode_names[KVMRUN_ERR_COUNT];
extern const char *const kvmrun_exit_reason_names[KVMRUN_EXIT_REASON_COUNT];

/* Looks NAME up in NAMES; returns its index or -1. */
int kvmrun_name_lookup(const char *const *names, int count, const char *name);

/* Name of an exception vector ("#PF"), or NULL for a vector with none. */
const char *kvmrun_vector_name(unsigned int vector);

/* Fills ERR and returns -1, so a caller can write return kvmrun_error_set(...). */
int kvmrun_error_set(struct kvmrun_error *err, enum kvmrun_errcode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int kvmrun_error_vset(struct kvmrun_error *err, enum kvmrun_errcode code, const char *fmt,
		      va_list ap) __attribute__((format(printf, 3, 0)));

/* Sets the defaults the protocol documents (real mode, 2 MiB, 1000 ms). */
void kvmrun_spec_init(struct kvmrun_spec *spec);
void kvmrun_spec_free(struct kvmrun_spec *spec);
void kvmrun_result_init(struct kvmrun_result *result);
void kvmrun_result_free(struct kvmrun_result *result);

#define KVMRUN_DEFAULT_MEMORY_SIZE (2u << 20)
#define KVMRUN_DEFAULT_TIMEOUT_MS 1000u
#define KVMRUN_DEFAULT_CONSOLE_MAX (256u << 10)
#define KVMRUN_DEFAULT_IO_LOG_MAX 65536u
#define KVMRUN_PAGE_SIZE 4096u
#define KVMRUN_CONSOLE_PORT 0xe9

#endif
