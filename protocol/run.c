/*
 * The plain run data's helpers: names of modes, registers, exit reasons and
 * error codes as the protocol spells them, error values, and the owners'
 * init/free of specs and results.  Those kvmrun.h declares are libkvmrun's
 * too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvmrun-proto.h"
#include "kvmrun-run.h"

const char *const kvmrun_mode_names[KVMRUN_MODE_COUNT] = {
	"real", "protected", "paged", "long",
};

/* NONE is never on the wire: a run or ping without paging has no field. */
const char *const kvmrun_paging_names[KVMRUN_PAGING_COUNT] = {
	NULL, "legacy", "compat",
};

const char *const kvmrun_reg_names[KVMRUN_REG_COUNT] = {
	"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
	"rip", "rflags",
};

const char *const kvmrun_seg_names[KVMRUN_SEG_COUNT] = {
	"cs", "ds", "es", "ss", "fs", "gs", "tr", "ldt",
};

const char *const kvmrun_errcode_names[KVMRUN_ERR_COUNT] = {
	"ok", "bad_request", "too_large", "busy", "unsupported", "internal",
	"forbidden", "unavailable",
};

const char *const kvmrun_exit_reason_names[KVMRUN_EXIT_REASON_COUNT] = {
	"hlt", "io", "mmio", "shutdown", "timeout", "fail_entry", "internal_error",
	"exception", "output_limit", "cancelled", "other", "step_limit",
};

const char *const kvmrun_msr_names[KVMRUN_MSR_COUNT] = {
	"fs_base", "gs_base", "kernel_gs_base", "star", "lstar", "cstar", "sfmask",
	"sysenter_cs", "sysenter_esp", "sysenter_eip", "tsc_aux", "pat", "efer",
};

const char *const kvmrun_xfield_names[KVMRUN_XF_COUNT] = {
	"mxcsr", "fcw", "fsw", "ftw", "fop", "fip", "fdp",
};

static const char *const vector_names[] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
	"#DF", NULL, "#TS", "#NP", "#SS", "#GP", "#PF", NULL,
	"#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

int
kvmrun_name_lookup(const char *const *names, int count, const char *name)
{
	for (int i = 0; i < count; i++)
		if (names[i] != NULL && strcmp(names[i], name) == 0)
			return i;
	return -1;
}

const char *
kvmrun_vector_name(unsigned int vector)
{
	if (vector >= sizeof(vector_names) / sizeof(vector_names[0]))
		return NULL;
	return vector_names[vector];
}

/* NAMES[I] when I is below COUNT, else NULL. */
static const char *
kvmrun_name(const char *const *names, int count, int i)
{
	return i >= 0 && i < count ? names[i] : NULL;
}

const char *
kvmrun_mode_name(enum kvmrun_mode mode)
{
	return kvmrun_name(kvmrun_mode_names, KVMRUN_MODE_COUNT, (int)mode);
}

const char *
kvmrun_reg_name(enum kvmrun_reg reg)
{
	return kvmrun_name(kvmrun_reg_names, KVMRUN_REG_COUNT, (int)reg);
}

const char *
kvmrun_seg_name(enum kvmrun_seg seg)
{
	return kvmrun_name(kvmrun_seg_names, KVMRUN_SEG_COUNT, (int)seg);
}

const char *
kvmrun_exit_reason_name(enum kvmrun_exit_reason reason)
{
	return kvmrun_name(kvmrun_exit_reason_names, KVMRUN_EXIT_REASON_COUNT, (int)reason);
}

const char *
kvmrun_op_name(enum kvmrun_op op)
{
	return kvmrun_name(kvmrun_op_names, KVMRUN_OP_COUNT, (int)op);
}

const char *
kvmrun_msr_name(enum kvmrun_msr msr)
{
	return kvmrun_name(kvmrun_msr_names, KVMRUN_MSR_COUNT, (int)msr);
}

const char *
kvmrun_xfield_name(enum kvmrun_xfield field)
{
	return kvmrun_name(kvmrun_xfield_names, KVMRUN_XF_COUNT, (int)field);
}

/* libkvmrun's own codes, from KVMRUN_ERR_CONNECTION on. */
static const char *const kvmrun_library_errcode_names[] = {
	"connection", "closed", "timeout", "protocol", "wouldblock", "invalid", "nomem",
};

const char *
kvmrun_strerror(enum kvmrun_errcode code)
{
	const char *name;
	int n = (int)(sizeof(kvmrun_library_errcode_names) /
		      sizeof(kvmrun_library_errcode_names[0]));

	name = kvmrun_name(kvmrun_errcode_names, KVMRUN_ERR_COUNT, (int)code);
	if (name == NULL)
		name = kvmrun_name(kvmrun_library_errcode_names, n,
				   (int)code - KVMRUN_ERR_CONNECTION);
	return name != NULL ? name : "unknown";
}

int
kvmrun_error_vset(struct kvmrun_error *err, enum kvmrun_errcode code, const char *fmt, va_list ap)
{
	err->code = code;
	err->errnum = 0;
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	return -1;
}

int
kvmrun_error_set(struct kvmrun_error *err, enum kvmrun_errcode code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kvmrun_error_vset(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

void
kvmrun_cpu_state_free(struct kvmrun_cpu_state *state)
{
	if (state == NULL)
		return;
	free(state->cpuid);
	free(state);
}

void
kvmrun_spec_init(struct kvmrun_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->mode = KVMRUN_MODE_REAL;
	spec->memory_size = KVMRUN_DEFAULT_MEMORY_SIZE;
	spec->timeout_ms = KVMRUN_DEFAULT_TIMEOUT_MS;
	spec->console_max = KVMRUN_DEFAULT_CONSOLE_MAX;
	spec->io_log_max = KVMRUN_DEFAULT_IO_LOG_MAX;
	spec->trace_max = KVMRUN_DEFAULT_TRACE_MAX;
	spec->changes_max = KVMRUN_DEFAULT_CHANGES_MAX;
}

void
kvmrun_spec_free(struct kvmrun_spec *spec)
{
	free(spec->image.data);
	for (size_t i = 0; i < spec->region_count; i++)
		free(spec->regions[i].data);
	free(spec->regions);
	free(spec->log_ports);
	free(spec->dumps);
	kvmrun_cpu_state_free(spec->state);
	memset(spec, 0, sizeof(*spec));
}

void
kvmrun_result_init(struct kvmrun_result *result)
{
	memset(result, 0, sizeof(*result));
}

void
kvmrun_result_free(struct kvmrun_result *result)
{
	free(result->console);
	free(result->io_log);
	for (size_t i = 0; i < result->dump_count; i++)
		free(result->dumps[i].data);
	free(result->dumps);
	kvmrun_cpu_state_free(result->state);
	free(result->trace);
	for (size_t i = 0; i < result->change_count; i++)
		free(result->changes[i].data);
	free(result->changes);
	memset(result, 0, sizeof(*result));
}
