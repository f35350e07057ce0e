/*
 * The plain data of one guest run as the daemon's layers share it: the
 * public types of kvmrun.h (struct kvmrun_spec, struct kvmrun_result, the
 * error value) and what only kvmrund, the codec and the client's internals
 * use of them.  It holds no JSON, no libev and no KVM types.
 */
#ifndef KVMRUN_RUN_H
#define KVMRUN_RUN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvmrun.h"

extern const char *const kvmrun_mode_names[KVMRUN_MODE_COUNT];
extern const char *const kvmrun_paging_names[KVMRUN_PAGING_COUNT];
extern const char *const kvmrun_reg_names[KVMRUN_REG_COUNT];
extern const char *const kvmrun_seg_names[KVMRUN_SEG_COUNT];
extern const char *const kvmrun_errcode_names[KVMRUN_ERR_COUNT];
extern const char *const kvmrun_exit_reason_names[KVMRUN_EXIT_REASON_COUNT];
extern const char *const kvmrun_msr_names[KVMRUN_MSR_COUNT];
extern const char *const kvmrun_xfield_names[KVMRUN_XF_COUNT];

/* Looks NAME up in NAMES; returns its index or -1. */
int kvmrun_name_lookup(const char *const *names, int count, const char *name);

/* Fills ERR and returns -1, so a caller can write return kvmrun_error_set(...). */
int kvmrun_error_set(struct kvmrun_error *err, enum kvmrun_errcode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int kvmrun_error_vset(struct kvmrun_error *err, enum kvmrun_errcode code, const char *fmt,
		      va_list ap) __attribute__((format(printf, 3, 0)));

#define KVMRUN_DEFAULT_CONSOLE_MAX (256u << 10)
#define KVMRUN_DEFAULT_IO_LOG_MAX 65536u
#define KVMRUN_DEFAULT_TRACE_MAX 65536u
#define KVMRUN_DEFAULT_CHANGES_MAX (4ull << 20)
/*
 * What one entry of "changes" costs against changes_max (--max-dump-bytes)
 * besides its bytes: at least its JSON around the data, so the answer's
 * changes stay within the base64 of changes_max however they are split.
 */
#define KVMRUN_CHANGE_COST 48u

#endif
