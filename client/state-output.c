/*
 * A returned CPU state for people (state-output.h).  The floating-point
 * views are the bits reinterpreted on this host, which is x86 like the
 * guest: f32 and f64 are IEEE 754 here, and long double is the x87's own
 * 80-bit format, so a register's decimal value is what the CPU holds.
 */
#include <float.h>
#include <inttypes.h>
#include <string.h>

#include "state-output.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define LANE_BYTES 16

static const char *
vector_prefix(unsigned int bytes)
{
	switch (bytes) {
	case 16:
		return "xmm";
	case 32:
		return "ymm";
	case 64:
		return "zmm";
	default:
		return NULL;
	}
}

/* 16 bytes from P (little-endian): hex in 32-bit groups, then the float lanes. */
static void
vector_line(FILE *fp, const uint8_t *p)
{
	float f32[4];
	double f64[2];

	for (int g = 3; g >= 0; g--) {
		uint32_t word;

		memcpy(&word, p + 4 * g, sizeof(word));
		fprintf(fp, " %08" PRIx32, word);
	}
	memcpy(f32, p, sizeof(f32));
	memcpy(f64, p, sizeof(f64));
	fprintf(fp, "  f32 %.9g %.9g %.9g %.9g  f64 %.17g %.17g\n", f32[0], f32[1],
		f32[2], f32[3], f64[0], f64[1]);
}

static void
output_vectors(FILE *fp, const struct kvmrun_xstate *x)
{
	for (int n = 0; n < KVMRUN_VEC_COUNT; n++) {
		const char *prefix = vector_prefix(x->vec_bytes[n]);
		char name[16];

		if (prefix == NULL)
			continue;
		snprintf(name, sizeof(name), "%s%d", prefix, n);
		for (unsigned int lane = 0; lane * LANE_BYTES < x->vec_bytes[n];
		     lane++) {
			char bits[16];

			snprintf(bits, sizeof(bits), "%u:%u", lane * 128 + 127,
				 lane * 128);
			fprintf(fp, "%-6s %-8s", lane == 0 ? name : "", bits);
			vector_line(fp, x->vec[n] + lane * LANE_BYTES);
		}
	}
}

/* An 80-bit register's value in decimal, where long double is that format. */
static void
x87_value(FILE *fp, const struct kvmrun_x87_reg *r)
{
#if (defined(__x86_64__) || defined(__i386__)) && LDBL_MANT_DIG == 64
	long double v = 0;

	memcpy(&v, &r->mantissa, sizeof(r->mantissa));
	memcpy((uint8_t *)&v + sizeof(r->mantissa), &r->sign_exponent,
	       sizeof(r->sign_exponent));
	fprintf(fp, "  %.21Lg", v);
#else
	(void)r;
#endif
	fputc('\n', fp);
}

static void
output_x87(FILE *fp, const struct kvmrun_xstate *x)
{
	for (int k = 0; k < KVMRUN_K_COUNT; k++)
		if (x->k_set & 1u << k)
			fprintf(fp, "k%-5d 0x%016" PRIx64 "\n", k, x->k[k]);
	for (int st = 0; st < KVMRUN_ST_COUNT; st++) {
		if (!(x->st_set & 1u << st))
			continue;
		fprintf(fp, "st%-4d 0x%04" PRIx16 "%016" PRIx64, st,
			x->st[st].sign_exponent, x->st[st].mantissa);
		x87_value(fp, &x->st[st]);
	}
}

static void
output_fields(FILE *fp, const struct kvmrun_xstate *x)
{
	/* By enum kvmrun_xfield: the value, and its hex digits (0: as many as it has).
	 */
	const uint64_t values[KVMRUN_XF_COUNT] = { x->mxcsr, x->fcw, x->fsw, x->ftw,
						   x->fop,   x->fip, x->fdp };
	static const int digits[KVMRUN_XF_COUNT] = { 4, 4, 4, 4, 3, 0, 0 };
	bool any = false;

	for (int f = 0; f < KVMRUN_XF_COUNT; f++) {
		if (!(x->fields_set & 1u << f))
			continue;
		fprintf(fp, "%s%s 0x%0*" PRIx64, any ? "  " : "",
			kvmrun_xfield_name((enum kvmrun_xfield)f), digits[f],
			values[f]);
		any = true;
	}
	if (x->has_xcr0) {
		fprintf(fp, "%sxcr0 0x%" PRIx64, any ? "  " : "", x->xcr0);
		any = true;
	}
	if (any)
		fputc('\n', fp);
}

/* "type 0x3, S, DPL 0, P, G": the access-rights word's fields. */
static void
attributes_text(FILE *fp, uint16_t a)
{
	static const struct {
		uint16_t bit;
		const char *name;
	} flags[] = {
		{ 1u << 7, "P" },    { 1u << 12, "AVL" }, { 1u << 13, "L" },
		{ 1u << 14, "D/B" }, { 1u << 15, "G" },
	};

	fprintf(fp, "type 0x%x%s, DPL %u", a & 0xfu, (a & 1u << 4) ? ", S" : "",
		(a >> 5) & 3u);
	for (size_t i = 0; i < NELEM(flags); i++)
		if (a & flags[i].bit)
			fprintf(fp, ", %s", flags[i].name);
}

static void
output_descriptors(FILE *fp, const struct kvmrun_cpu_state *state)
{
	for (int i = 0; i < KVMRUN_SEG_COUNT; i++) {
		const struct kvmrun_descriptor *d = &state->segments[i];

		if (!(state->segments_set & 1u << i))
			continue;
		fprintf(fp,
			"%-6s base 0x%016" PRIx64 " limit 0x%08" PRIx32
			" attributes 0x%04" PRIx16 " (",
			kvmrun_seg_name((enum kvmrun_seg)i), d->base, d->limit,
			d->attributes);
		attributes_text(fp, d->attributes);
		fputs(")\n", fp);
	}
	fprintf(fp, "gdt    base 0x%016" PRIx64 " limit 0x%04" PRIx16 "\n",
		state->gdt.base, state->gdt.limit);
	fprintf(fp, "idt    base 0x%016" PRIx64 " limit 0x%04" PRIx16 "\n",
		state->idt.base, state->idt.limit);
}

void
state_output(FILE *fp, const struct kvmrun_cpu_state *state, uint32_t returned)
{
	if (state == NULL)
		return;
	if (returned & KVMRUN_RETURN_XSTATE) {
		output_vectors(fp, &state->xstate);
		output_x87(fp, &state->xstate);
		output_fields(fp, &state->xstate);
	}
	if (returned & KVMRUN_RETURN_MSRS)
		for (int m = 0; m < KVMRUN_MSR_COUNT; m++)
			if (state->msrs.set & 1u << m)
				fprintf(fp, "%-14s 0x%016" PRIx64 "\n",
					kvmrun_msr_name((enum kvmrun_msr)m),
					state->msrs.value[m]);
	if (returned & KVMRUN_RETURN_DESCRIPTORS)
		output_descriptors(fp, state);
	if (returned & KVMRUN_RETURN_CPUID)
		for (size_t i = 0; i < state->cpuid_count; i++) {
			const struct kvmrun_cpuid_entry *e = &state->cpuid[i];

			fprintf(fp,
				"cpuid 0x%08" PRIx32 ".%-2" PRIu32 " eax 0x%08" PRIx32
				" ebx 0x%08" PRIx32 " ecx 0x%08" PRIx32
				" edx 0x%08" PRIx32 "\n",
				e->function, e->index, e->eax, e->ebx, e->ecx, e->edx);
		}
}
