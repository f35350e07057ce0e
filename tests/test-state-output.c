/*
 * client/state-output.c: a returned CPU state as kvmrun-client shows it,
 * checked line by line against what the values are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state-output.h"
#include "tap.h"

/* STATE's parts RETURNED as state_output prints them (malloc'ed). */
static char *
shown(const struct kvmrun_cpu_state *state, uint32_t returned)
{
	char *text = NULL;
	size_t size = 0;
	FILE *fp = open_memstream(&text, &size);

	if (fp == NULL)
		abort();
	state_output(fp, state, returned);
	if (fclose(fp) != 0)
		abort();
	return text;
}

static void
expect_line(const char *text, const char *line, const char *what)
{
	if (!tap_ok(strstr(text, line) != NULL, "%s", what))
		tap_diag("no \"%s\" in:\n%s", line, text);
}

int
main(void)
{
	static const uint8_t xmm0[16] = { 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00,
					  0x00, 0x40, 0x00, 0x00, 0x80, 0xbf,
					  0x00, 0x00, 0xc0, 0x7f };
	static struct kvmrun_cpuid_entry cpuid[] = {
		{ 0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69 },
		{ 7, 1, 0, 0, 0, 0x10 },
	};
	struct kvmrun_cpu_state state;
	char *text;

	memset(&state, 0, sizeof(state));
	memcpy(state.xstate.vec[0], xmm0, sizeof(xmm0));
	state.xstate.vec_bytes[0] = 16;
	/* ymm1: 1.5 as f64 in bits 128-191, the low half zero. */
	state.xstate.vec[1][22] = 0xf8;
	state.xstate.vec[1][23] = 0x3f;
	state.xstate.vec_bytes[1] = 32;
	state.xstate.k_set = 1u << 2;
	state.xstate.k[2] = 0xff;
	state.xstate.st_set = 1u << 0 | 1u << 7;
	state.xstate.st[0] = (struct kvmrun_x87_reg){ 0xc90fdaa22168c235ull, 0x4000 };
	state.xstate.st[7] = (struct kvmrun_x87_reg){ 0x8000000000000000ull, 0xbfff };
	state.xstate.fields_set =
		1u << KVMRUN_XF_MXCSR | 1u << KVMRUN_XF_FCW | 1u << KVMRUN_XF_FTW;
	state.xstate.mxcsr = 0x1f80;
	state.xstate.fcw = 0x37f;
	state.xstate.ftw = 0xffff;
	state.xstate.fsw = 0x1234; /* not in fields_set: not shown */
	state.xstate.has_xcr0 = true;
	state.xstate.xcr0 = 7;
	state.msrs.set = 1u << KVMRUN_MSR_LSTAR;
	state.msrs.value[KVMRUN_MSR_LSTAR] = 0xffffffff81000000ull;
	state.segments_set = 1u << KVMRUN_SEG_CS | 1u << KVMRUN_SEG_DS;
	state.segments[KVMRUN_SEG_CS] =
		(struct kvmrun_descriptor){ 0, 0xffffffff, 0xa0fb };
	state.segments[KVMRUN_SEG_DS] =
		(struct kvmrun_descriptor){ 0x100000, 0xffff, 0x93 };
	state.gdt = (struct kvmrun_table){ 0x101000, 0x37 };
	state.cpuid = cpuid;
	state.cpuid_count = 2;

	text = shown(&state, KVMRUN_RETURN_XSTATE | KVMRUN_RETURN_MSRS |
				     KVMRUN_RETURN_DESCRIPTORS | KVMRUN_RETURN_CPUID);
	expect_line(
		text,
		"xmm0   127:0    7fc00000 bf800000 40000000 3f800000  f32 1 2 -1 nan"
		"  f64 2.0000004731118679 ",
		"xmm0: hex most significant first, f32 lanes from lane 0, f64 lanes");
	expect_line(
		text,
		"ymm1   127:0    00000000 00000000 00000000 00000000  f32 0 0 0 0  f64 "
		"0 0\n"
		"       255:128  00000000 00000000 3ff80000 00000000  f32 0 1.9375 0 0"
		"  f64 1.5 0\n",
		"ymm1: a line per 128 bits, the upper half labelled by its bits");
	expect_line(text, "k2     0x00000000000000ff\n", "k2 in hex");
	expect_line(text, "st0    0x4000c90fdaa22168c235  3.14159265358979323851\n",
		    "st0: 80 bits in hex and pi in decimal");
	expect_line(text, "st7    0xbfff8000000000000000  -1\n", "st7: -1");
	expect_line(text, "mxcsr 0x1f80  fcw 0x037f  ftw 0xffff  xcr0 0x7\n",
		    "the control fields given, and xcr0");
	tap_ok(strstr(text, "fsw") == NULL, "a field not in fields_set is not shown");
	expect_line(text, "lstar          0xffffffff81000000\n", "an MSR by name");
	expect_line(text,
		    "cs     base 0x0000000000000000 limit 0xffffffff attributes 0xa0fb "
		    "(type 0xb, S, DPL 3, P, L, G)\n",
		    "cs: its cache and the attributes' fields by name");
	expect_line(text,
		    "ds     base 0x0000000000100000 limit 0x0000ffff attributes 0x0093 "
		    "(type 0x3, S, DPL 0, P)\n",
		    "ds: an unreal-mode style cache");
	tap_ok(strstr(text, "\nes ") == NULL,
	       "segments not in segments_set are not shown");
	expect_line(text, "gdt    base 0x0000000000101000 limit 0x0037\n", "gdt");
	expect_line(text,
		    "cpuid 0x00000000.0  eax 0x0000000d ebx 0x756e6547 ecx 0x6c65746e "
		    "edx 0x49656e69\n",
		    "a cpuid entry");
	expect_line(text, "cpuid 0x00000007.1  ", "its index after the function");
	free(text);

	text = shown(&state, KVMRUN_RETURN_MSRS);
	tap_ok(strcmp(text, "lstar          0xffffffff81000000\n") == 0,
	       "only the parts returned are shown");
	free(text);
	text = shown(NULL, KVMRUN_RETURN_XSTATE);
	tap_ok(strcmp(text, "") == 0, "no state, nothing shown");
	free(text);
	return tap_done();
}
