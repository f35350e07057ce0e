/*
 * kvmrun-client's output for people.  The console bytes go out untouched
 * (but for control bytes made visible on a terminal);
 * everything after them is a summary meant to be read, not parsed (--json is
 * for programs).  Write errors are left in the stream for the caller's
 * final fflush to find.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output.h"

#define OUTPUT_BOLD "\033[1m"
#define OUTPUT_DIM "\033[2m"
#define OUTPUT_RED "\033[31m"
#define OUTPUT_GREEN "\033[32m"
#define OUTPUT_RESET "\033[0m"

/* A page fault, whose address is in cr2. */
#define OUTPUT_VECTOR_PF 14
/* Bytes per line of a dump, as hexdump -C has them. */
#define OUTPUT_DUMP_ROW 16

static const char *const output_color_names[OUTPUT_COLOR_COUNT] = {
	[OUTPUT_COLOR_AUTO] = "auto",
	[OUTPUT_COLOR_ALWAYS] = "always",
	[OUTPUT_COLOR_NEVER] = "never",
};

const char *
output_color_name(enum output_color color)
{
	return (unsigned int)color < OUTPUT_COLOR_COUNT ? output_color_names[color]
							 : NULL;
}

void
output_init(struct output *out, FILE *fp, bool quiet, enum output_color color,
	    bool raw_console)
{
	const char *no_color = getenv("NO_COLOR"), *term = getenv("TERM");
	bool tty = isatty(fileno(fp));

	out->fp = fp;
	out->quiet = quiet;
	out->color = color == OUTPUT_COLOR_ALWAYS ||
		     (color == OUTPUT_COLOR_AUTO && tty &&
		      (no_color == NULL || no_color[0] == '\0') &&
		      (term == NULL || strcmp(term, "dumb") != 0));
	out->visible = tty && !raw_console;
}

/*
 * Writes LENGTH bytes of DATA, bytes the daemon or the guest chose.  When
 * OUT is visible, the control bytes a terminal would act on are written as
 * \xNN instead: C0 but \n and \t, DEL, and C1 as UTF-8 has it (c2 80..9f).
 */
static void
output_text(const struct output *out, const uint8_t *data, size_t length)
{
	size_t start = 0, i = 0, n;

	if (!out->visible) {
		fwrite(data, 1, length, out->fp);
		return;
	}
	while (i < length) {
		n = 0;
		if ((data[i] < 0x20 && data[i] != '\n' && data[i] != '\t') ||
		    data[i] == 0x7f)
			n = 1;
		else if (data[i] == 0xc2 && i + 1 < length && data[i + 1] >= 0x80 &&
			 data[i + 1] <= 0x9f)
			n = 2;
		if (n == 0) {
			i++;
			continue;
		}
		fwrite(data + start, 1, i - start, out->fp);
		for (size_t k = 0; k < n; k++)
			fprintf(out->fp, "\\x%02x", data[i + k]);
		i += n;
		start = i;
	}
	fwrite(data + start, 1, length - start, out->fp);
}

static void
output_string(const struct output *out, const char *text)
{
	output_text(out, (const uint8_t *)text, strlen(text));
}

/* An SGR escape when colouring, else nothing. */
static const char *
output_sgr(const struct output *out, const char *sgr)
{
	return out->color ? sgr : "";
}

/* " xx" for each of the first LENGTH bytes of DATA, but no more than MAX. */
static void
output_bytes(FILE *fp, const uint8_t *data, size_t length, size_t max)
{
	for (size_t i = 0; i < length && i < max; i++)
		fprintf(fp, " %02x", data[i]);
}

/* What the exit's details say, after its reason's name. */
static void
output_exit_details(FILE *fp, const struct kvmrun_exit *exit)
{
	const char *name;

	switch (exit->reason) {
	case KVMRUN_EXIT_IO:
		fprintf(fp, ": %s port 0x%x, size %u, count %" PRIu32,
			exit->u.io.is_in ? "in" : "out", exit->u.io.port,
			exit->u.io.size, exit->u.io.count);
		if (exit->u.io.data_length > 0) {
			fputs(", data", fp);
			output_bytes(fp, exit->u.io.data, exit->u.io.data_length,
				     KVMRUN_IO_DATA_MAX);
		}
		break;
	case KVMRUN_EXIT_MMIO:
		fprintf(fp, ": %s 0x%" PRIx64 ", length %" PRIu32,
			exit->u.mmio.is_write ? "write" : "read", exit->u.mmio.address,
			exit->u.mmio.length);
		if (exit->u.mmio.is_write) {
			fputs(", data", fp);
			output_bytes(fp, exit->u.mmio.data, exit->u.mmio.length,
				     sizeof(exit->u.mmio.data));
		}
		break;
	case KVMRUN_EXIT_FAIL_ENTRY:
		fprintf(fp, ": hardware entry failure reason 0x%" PRIx64,
			exit->u.fail_entry.hardware_reason);
		break;
	case KVMRUN_EXIT_INTERNAL_ERROR:
		fprintf(fp, ": suberror %" PRIu32, exit->u.internal.suberror);
		if (exit->u.internal.data_count > 0)
			fputs(", data", fp);
		for (uint32_t i = 0; i < exit->u.internal.data_count; i++)
			if (i < KVMRUN_INTERNAL_DATA_MAX)
				fprintf(fp, " 0x%" PRIx64, exit->u.internal.data[i]);
		if (exit->u.internal.insn_length > 0) {
			fputs(", instruction", fp);
			output_bytes(fp, exit->u.internal.insn,
				     exit->u.internal.insn_length,
				     sizeof(exit->u.internal.insn));
		}
		break;
	case KVMRUN_EXIT_EXCEPTION:
		name = kvmrun_vector_name(exit->u.exception.vector);
		fprintf(fp, ": %s (vector %u)", name != NULL ? name : "exception",
			exit->u.exception.vector);
		if (exit->u.exception.has_error_code)
			fprintf(fp, ", error code 0x%" PRIx32,
				exit->u.exception.error_code);
		fprintf(fp, " at %04x:%016" PRIx64, exit->u.exception.cs,
			exit->u.exception.rip);
		if (exit->u.exception.vector == OUTPUT_VECTOR_PF)
			fprintf(fp, ", cr2 0x%" PRIx64, exit->u.exception.cr2);
		break;
	case KVMRUN_EXIT_OUTPUT_LIMIT:
		fputs(exit->u.output_limit.console ? ": console full" : ": io log full",
		      fp);
		break;
	case KVMRUN_EXIT_OTHER:
		fprintf(fp, ": KVM exit reason %" PRIu32,
			exit->u.other.kvm_exit_reason);
		break;
	case KVMRUN_EXIT_HLT:
	case KVMRUN_EXIT_SHUTDOWN:
	case KVMRUN_EXIT_TIMEOUT:
	case KVMRUN_EXIT_CANCELLED:
	case KVMRUN_EXIT_REASON_COUNT:
	case KVMRUN_EXIT_UNKNOWN: /* a newer daemon's: its details are unknown too */
		break;
	}
}

static void
output_exit(const struct output *out, const struct kvmrun_exit *exit)
{
	const char *color = exit->reason == KVMRUN_EXIT_HLT ? OUTPUT_GREEN : OUTPUT_RED;
	const char *name = kvmrun_exit_reason_name(exit->reason);

	if (exit->reason == KVMRUN_EXIT_UNKNOWN)
		name = exit->u.unknown.name;
	else if (name == NULL)
		name = "unknown";
	fprintf(out->fp, "%sexit:%s %s%s%s", output_sgr(out, OUTPUT_BOLD),
		output_sgr(out, OUTPUT_RESET), output_sgr(out, color), name,
		output_sgr(out, OUTPUT_RESET));
	output_exit_details(out->fp, exit);
	fputc('\n', out->fp);
}

/*
 * Adds "name=value" to a table of PER_LINE entries a line, names right-aligned
 * to WIDTH; *N counts the entries so far.  output_table_end ends the table.
 */
static void
output_reg(const struct output *out, int *n, int per_line, int width, const char *name,
	   uint64_t value)
{
	if (*n > 0)
		fputc(*n % per_line == 0 ? '\n' : ' ', out->fp);
	fprintf(out->fp, "%s%*s=%s%016" PRIx64, output_sgr(out, OUTPUT_DIM), width,
		name, output_sgr(out, OUTPUT_RESET), value);
	(*n)++;
}

static void
output_table_end(const struct output *out, int *n)
{
	if (*n > 0)
		fputc('\n', out->fp);
	*n = 0;
}

static void
output_registers(const struct output *out, const struct kvmrun_result *result)
{
	const struct kvmrun_sregs *sregs = &result->sregs;
	const uint64_t crs[] = {sregs->cr0, sregs->cr2, sregs->cr3, sregs->cr4};
	const char *const cr_names[] = {"cr0", "cr2", "cr3", "cr4"};
	char name[16];
	int n = 0;

	for (int i = KVMRUN_REG_RAX; i <= KVMRUN_REG_R15; i++)
		output_reg(out, &n, 4, 3, kvmrun_reg_name((enum kvmrun_reg)i),
			   result->regs[i]);
	output_table_end(out, &n);
	output_reg(out, &n, 3, 3, "rip", result->regs[KVMRUN_REG_RIP]);
	output_reg(out, &n, 3, 3, "rflags", result->regs[KVMRUN_REG_RFLAGS]);
	output_reg(out, &n, 3, 3, "efer", sregs->efer);
	output_table_end(out, &n);
	for (int i = 0; i < 4; i++)
		output_reg(out, &n, 4, 3, cr_names[i], crs[i]);
	output_table_end(out, &n);

	for (int i = 0; i < KVMRUN_SEG_COUNT; i++)
		fprintf(out->fp, "%s%s%s=%s%04x", i > 0 ? " " : "",
			output_sgr(out, OUTPUT_DIM),
			kvmrun_seg_name((enum kvmrun_seg)i),
			output_sgr(out, OUTPUT_RESET), sregs->segments[i].selector);
	fputc('\n', out->fp);
	/* Bases only where set: real-mode segments, fs and gs, the engine's tr. */
	for (int i = 0; i < KVMRUN_SEG_COUNT; i++) {
		if (sregs->segments[i].base == 0)
			continue;
		snprintf(name, sizeof(name), "%s.base",
			 kvmrun_seg_name((enum kvmrun_seg)i));
		output_reg(out, &n, 3, 7, name, sregs->segments[i].base);
	}
	output_table_end(out, &n);
}

static void
output_io_log(const struct output *out, const struct kvmrun_result *result)
{
	if (result->io_log_count == 0 && !result->io_log_truncated)
		return;
	fprintf(out->fp, "%sio log:%s %zu record%s%s\n", output_sgr(out, OUTPUT_BOLD),
		output_sgr(out, OUTPUT_RESET), result->io_log_count,
		result->io_log_count == 1 ? "" : "s",
		result->io_log_truncated ? " (truncated)" : "");
	for (size_t i = 0; i < result->io_log_count; i++) {
		const struct kvmrun_io_record *rec = &result->io_log[i];

		fprintf(out->fp, "  port 0x%04x size %u value 0x%0*" PRIx32 "\n",
			rec->port, rec->size, rec->size * 2, rec->value);
	}
}

/* DUMP in hexdump -C layout, offsets being guest-physical addresses. */
static void
output_dump(const struct output *out, const struct kvmrun_blob *dump)
{
	const uint8_t *prev = NULL;
	bool squeezed = false;
	size_t n;

	fprintf(out->fp, "%sdump:%s 0x%" PRIx64 ", %zu byte%s\n",
		output_sgr(out, OUTPUT_BOLD), output_sgr(out, OUTPUT_RESET),
		dump->address, dump->length, dump->length == 1 ? "" : "s");
	for (size_t off = 0; off < dump->length; off += OUTPUT_DUMP_ROW) {
		const uint8_t *row = dump->data + off;

		n = dump->length - off < OUTPUT_DUMP_ROW ? dump->length - off
							 : OUTPUT_DUMP_ROW;
		/* Like hexdump, a full row equal to the one before becomes one '*'. */
		if (prev != NULL && n == OUTPUT_DUMP_ROW && memcmp(prev, row, n) == 0) {
			if (!squeezed)
				fputs("*\n", out->fp);
			squeezed = true;
			continue;
		}
		squeezed = false;
		prev = row;
		fprintf(out->fp, "%08" PRIx64 " ", dump->address + off);
		for (size_t i = 0; i < OUTPUT_DUMP_ROW; i++) {
			if (i == OUTPUT_DUMP_ROW / 2)
				fputc(' ', out->fp);
			if (i < n)
				fprintf(out->fp, " %02x", row[i]);
			else
				fputs("   ", out->fp);
		}
		fputs("  |", out->fp);
		for (size_t i = 0; i < n; i++)
			fputc(row[i] >= 0x20 && row[i] < 0x7f ? row[i] : '.', out->fp);
		fputs("|\n", out->fp);
	}
	fprintf(out->fp, "%08" PRIx64 "\n", dump->address + dump->length);
}

void
output_result(const struct output *out, const struct kvmrun_result *result)
{
	if (result->console_length > 0)
		output_text(out, result->console, result->console_length);
	if (out->quiet)
		return;
	/* The summary starts on a line of its own even if the guest's did not end. */
	if (result->console_length > 0 &&
	    result->console[result->console_length - 1] != '\n')
		fputc('\n', out->fp);
	if (result->console_truncated)
		fputs("console: truncated\n", out->fp);
	output_exit(out, &result->exit);
	output_registers(out, result);
	output_io_log(out, result);
	for (size_t i = 0; i < result->dump_count; i++)
		output_dump(out, &result->dumps[i]);
	fprintf(out->fp,
		"%sstats:%s %" PRIu64 " exit%s, %" PRIu64 ".%03" PRIu64 " ms\n",
		output_sgr(out, OUTPUT_BOLD), output_sgr(out, OUTPUT_RESET),
		result->exits, result->exits == 1 ? "" : "s", result->run_ns / 1000000,
		result->run_ns / 1000 % 1000);
}

void
output_ping(const struct output *out, const struct kvmrun_ping *ping)
{
	fputs("kvmrund ", out->fp);
	output_string(out, ping->version[0] != '\0' ? ping->version : "(unknown version)");
	fprintf(out->fp, ", protocol %d, ", ping->protocol);
	if (!ping->kvm_available) {
		fputs("KVM unavailable: ", out->fp);
		output_string(out, ping->kvm_reason);
		fputc('\n', out->fp);
		return;
	}
	fprintf(out->fp, "KVM API %d, modes", ping->kvm_api_version);
	for (int i = 0; i < KVMRUN_MODE_COUNT; i++)
		if (ping->mode_supported[i])
			fprintf(out->fp, " %s", kvmrun_mode_name((enum kvmrun_mode)i));
	fputc('\n', out->fp);
}

static const char *
output_exit_reason_name(int i)
{
	return kvmrun_exit_reason_name((enum kvmrun_exit_reason)i);
}

static const char *
output_errcode_name(int i)
{
	return kvmrun_strerror((enum kvmrun_errcode)i);
}

/* "NAME COUNT" for each non-zero count in COUNTS, after their sum. */
static void
output_counts(FILE *fp, const char *(*name)(int), const uint64_t *counts, int n)
{
	const char *sep = " (";
	uint64_t total = 0;

	for (int i = 0; i < n; i++)
		total += counts[i];
	fprintf(fp, "%" PRIu64, total);
	for (int i = 0; i < n; i++) {
		if (counts[i] == 0)
			continue;
		fprintf(fp, "%s%s %" PRIu64, sep, name(i), counts[i]);
		sep = ", ";
	}
	fputs(total > 0 ? ")\n" : "\n", fp);
}

void
output_stats(const struct output *out, const struct kvmrun_stats *stats)
{
	uint64_t s = stats->uptime_ms / 1000;
	const char *bold = output_sgr(out, OUTPUT_BOLD);
	const char *reset = output_sgr(out, OUTPUT_RESET);

	fprintf(out->fp,
		"%suptime:%s      %" PRIu64 "d %02" PRIu64 ":%02" PRIu64 ":%02" PRIu64
		"\n",
		bold, reset, s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
	fprintf(out->fp, "%sworkers:%s     %" PRIu64 "\n", bold, reset, stats->workers);
	fprintf(out->fp, "%sruns:%s        %" PRIu64 " running, %" PRIu64 " queued\n",
		bold, reset, stats->runs_in_flight, stats->runs_queued);
	fprintf(out->fp, "%sfinished:%s    ", bold, reset);
	output_counts(out->fp, output_exit_reason_name, stats->runs,
		      KVMRUN_EXIT_REASON_COUNT);
	fprintf(out->fp, "%serrors:%s      ", bold, reset);
	output_counts(out->fp, output_errcode_name, stats->errors, KVMRUN_ERR_COUNT);
	fprintf(out->fp, "%sconnections:%s %" PRIu64 " open, %" PRIu64 " in all\n",
		bold, reset, stats->connections_open, stats->connections_total);
	fprintf(out->fp, "%smemory:%s      %" PRIu64 " bytes of guest memory in use\n",
		bold, reset, stats->memory_in_use);
}
