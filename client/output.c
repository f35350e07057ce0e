/*
 * kvmrun-client's output for people.  The console bytes go out untouched
 * (but for control bytes made visible on a terminal);
 * everything after them is a summary meant to be read, not parsed (--json is
 * for programs).  Write errors are left in the stream for the caller's
 * final fflush to find.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output.h"
#include "state-output.h"

void
client_error(const char *fmt, ...)
{
	va_list ap;

	fputs("kvmrun-client: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define OUTPUT_BOLD "\033[1m"
#define OUTPUT_DIM "\033[2m"
#define OUTPUT_RED "\033[31m"
#define OUTPUT_GREEN "\033[32m"
#define OUTPUT_RESET "\033[0m"

/* A page fault, whose address is in cr2. */
#define OUTPUT_VECTOR_PF 14
/* Bytes per line of a dump, as hexdump -C has them. */
#define OUTPUT_DUMP_ROW 16
/* The terminal width the summary keeps to. */
#define OUTPUT_COLUMNS 80
/* Where the lines that continue an exit's line start: under its details. */
#define OUTPUT_INDENT "      "
#define OUTPUT_CR0_PE 0x1u
#define OUTPUT_EFER_LMA 0x400u
#define OUTPUT_RFLAGS_IOPL_SHIFT 12

/* The rflags bits with a name, as the SDM names them; IOPL is a number. */
static const struct {
	unsigned int bit;
	const char *name;
} output_flags[] = {
	{0, "CF"},  {2, "PF"},	{4, "AF"},   {6, "ZF"},	  {7, "SF"},  {8, "TF"},
	{9, "IF"},  {10, "DF"}, {11, "OF"},  {OUTPUT_RFLAGS_IOPL_SHIFT, "IOPL"},
	{14, "NT"}, {16, "RF"}, {17, "VM"},  {18, "AC"},  {19, "VIF"}, {20, "VIP"},
	{21, "ID"},
};

/* The bits of a #PF error code, said as in "not-present write user". */
static const struct {
	uint32_t bit;
	const char *name;
} output_pf_bits[] = {
	{0x8, "reserved-bit"},
	{0x20, "protection-key"},
	{0x40, "shadow-stack"},
	{0x8000, "sgx"},
};

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

/* Whether FP gets colour, by --color COLOR (see output_init). */
static bool
output_colored(FILE *fp, enum output_color color)
{
	const char *no_color = getenv("NO_COLOR"), *term = getenv("TERM");

	return color == OUTPUT_COLOR_ALWAYS ||
	       (color == OUTPUT_COLOR_AUTO && isatty(fileno(fp)) &&
		(no_color == NULL || no_color[0] == '\0') &&
		(term == NULL || strcmp(term, "dumb") != 0));
}

void
output_init(struct output *out, FILE *fp, FILE *summary, bool quiet,
	    enum output_color color, bool raw_console)
{
	out->fp = fp;
	out->summary = summary;
	out->quiet = quiet;
	out->color = output_colored(fp, color);
	out->summary_color = output_colored(summary, color);
	out->visible = isatty(fileno(fp)) && !raw_console;
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

/* The same for the summary's stream. */
static const char *
output_summary_sgr(const struct output *out, const char *sgr)
{
	return out->summary_color ? sgr : "";
}

/* " xx" for each of the first LENGTH bytes of DATA, but no more than MAX. */
static void
output_bytes(FILE *fp, const uint8_t *data, size_t length, size_t max)
{
	for (size_t i = 0; i < length && i < max; i++)
		fprintf(fp, " %02x", data[i]);
}

/*
 * The hex digits the mode the guest ended in gives its registers: 4 in real
 * mode, 8 in protected mode, 16 once long mode is active (EFER.LMA), but 8
 * for a paged run the daemon ran in compatibility mode, whose code is 32-bit.
 */
static int
output_mode_digits(const struct kvmrun_result *result)
{
	if ((result->sregs.cr0 & OUTPUT_CR0_PE) == 0)
		return 4;
	if (result->paging == KVMRUN_PAGING_COMPAT)
		return 8;
	return (result->sregs.efer & OUTPUT_EFER_LMA) != 0 ? 16 : 8;
}

/* DIGITS, or twice or four times that when one of VALUES needs it: no bit is hidden. */
static int
output_digits(int digits, const uint64_t *values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		while (digits < 16 && (values[i] >> (digits * 4)) != 0)
			digits *= 2;
	return digits;
}

/*
 * An io exit: its head on the exit's line, with its data when it fits in
 * the line, else in rows of 16 bytes below; the bytes an out wrote past
 * the daemon's KVMRUN_IO_DATA_MAX are counted, not shown.
 */
static void
output_io_details(FILE *fp, const struct kvmrun_exit *exit)
{
	uint64_t total = (uint64_t)exit->u.io.size * exit->u.io.count;
	uint32_t length = exit->u.io.data_length;
	char head[96], note[64] = "";
	int used;

	if (length > KVMRUN_IO_DATA_MAX)
		length = KVMRUN_IO_DATA_MAX;
	used = snprintf(head, sizeof(head), ": %s port 0x%x, size %u, count %" PRIu32,
			exit->u.io.is_in ? "in" : "out", exit->u.io.port,
			exit->u.io.size, exit->u.io.count);
	fputs(head, fp);
	if (length == 0)
		return;
	if (!exit->u.io.is_in && total > length)
		snprintf(note, sizeof(note), " ... (%" PRIu64 " more bytes not shown)",
			 total - length);
	/* "exit: io" and the head, ", data", the bytes and the note. */
	if (8 + used + 6 + 3 * (int)length + (int)strlen(note) <= OUTPUT_COLUMNS) {
		fputs(", data", fp);
		output_bytes(fp, exit->u.io.data, length, length);
		fputs(note, fp);
		return;
	}
	for (uint32_t row = 0; row < length; row += OUTPUT_DUMP_ROW) {
		fputs(row == 0 ? "\n" OUTPUT_INDENT "data" : "\n" OUTPUT_INDENT "    ",
		      fp);
		output_bytes(fp, exit->u.io.data + row, length - row, OUTPUT_DUMP_ROW);
	}
	if (note[0] != '\0')
		fprintf(fp, "\n" OUTPUT_INDENT "    %s", note);
}

/* A #PF error code's bits in words: "not-present write user". */
static void
output_pf_error(FILE *fp, uint32_t code)
{
	const char *access = "read";

	if ((code & 0x10) != 0)
		access = "fetch";
	else if ((code & 0x2) != 0)
		access = "write";
	fprintf(fp, " (%s %s %s", (code & 0x1) != 0 ? "present" : "not-present", access,
		(code & 0x4) != 0 ? "user" : "supervisor");
	for (size_t i = 0; i < sizeof(output_pf_bits) / sizeof(output_pf_bits[0]); i++)
		if ((code & output_pf_bits[i].bit) != 0)
			fprintf(fp, " %s", output_pf_bits[i].name);
	fputc(')', fp);
}

/*
 * What the exit's details say, after its reason's name; DIGITS is the
 * width of an address in the guest's mode.
 */
static void
output_exit_details(FILE *fp, const struct kvmrun_exit *exit, int digits)
{
	const char *name;

	switch (exit->reason) {
	case KVMRUN_EXIT_IO:
		output_io_details(fp, exit);
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
		digits = output_digits(digits, &exit->u.exception.rip, 1);
		fprintf(fp, ": %s (vector %u) at %04x:%0*" PRIx64,
			name != NULL ? name : "exception", exit->u.exception.vector,
			exit->u.exception.cs, digits, exit->u.exception.rip);
		/* On a line of its own, so that neither line passes 80 columns. */
		if (exit->u.exception.has_error_code) {
			fprintf(fp, "\n" OUTPUT_INDENT "error code 0x%" PRIx32,
				exit->u.exception.error_code);
			if (exit->u.exception.vector == OUTPUT_VECTOR_PF)
				output_pf_error(fp, exit->u.exception.error_code);
		}
		if (exit->u.exception.vector == OUTPUT_VECTOR_PF)
			fprintf(fp, "%scr2 0x%" PRIx64,
				exit->u.exception.has_error_code ? ", "
								 : "\n" OUTPUT_INDENT,
				exit->u.exception.cr2);
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
	case KVMRUN_EXIT_STEP_LIMIT:
	case KVMRUN_EXIT_REASON_COUNT:
	case KVMRUN_EXIT_UNKNOWN: /* a newer daemon's: its details are unknown too */
		break;
	}
}

/* A halt, or the end of a run stepped to its max_instructions: no failure. */
static bool
output_ended_as_asked(const struct kvmrun_exit *exit)
{
	return exit->reason == KVMRUN_EXIT_HLT || exit->reason == KVMRUN_EXIT_STEP_LIMIT;
}

/* "exit: REASON: details" on FP, in colour when COLOR. */
static void
output_exit(FILE *fp, bool color, const struct kvmrun_result *result)
{
	const struct kvmrun_exit *exit = &result->exit;
	const char *name = kvmrun_exit_reason_name(exit->reason);
	const char *sgr = output_ended_as_asked(exit) ? OUTPUT_GREEN : OUTPUT_RED;

	if (exit->reason == KVMRUN_EXIT_UNKNOWN)
		name = exit->u.unknown.name;
	else if (name == NULL)
		name = "unknown";
	fprintf(fp, "%sexit:%s %s%s%s", color ? OUTPUT_BOLD : "",
		color ? OUTPUT_RESET : "", color ? sgr : "", name,
		color ? OUTPUT_RESET : "");
	output_exit_details(fp, exit, output_mode_digits(result));
	fputc('\n', fp);
}

/*
 * Adds "name=value" to a table of PER_LINE entries a line, names right-aligned
 * to WIDTH and values DIGITS hex digits wide; *N counts the entries so far.
 * output_table_end ends the table.
 */
static void
output_reg(const struct output *out, int *n, int per_line, int width, const char *name,
	   int digits, uint64_t value)
{
	if (*n > 0)
		fputs(*n % per_line == 0 ? "\n" : "  ", out->summary);
	fprintf(out->summary, "%s%*s=%s%0*" PRIx64, output_summary_sgr(out, OUTPUT_DIM),
		width, name, output_summary_sgr(out, OUTPUT_RESET), digits, value);
	(*n)++;
}

static void
output_table_end(const struct output *out, int *n)
{
	if (*n > 0)
		fputc('\n', out->summary);
	*n = 0;
}

/* The names of rflags' set bits, as " CF ZF IF", wrapped at 80 columns from COLUMN. */
static void
output_flag_names(FILE *fp, uint64_t flags, int column)
{
	const int start = column;
	char word[16];
	size_t length;

	for (size_t i = 0; i < sizeof(output_flags) / sizeof(output_flags[0]); i++) {
		/* IOPL is two bits, a number. */
		if (output_flags[i].bit == OUTPUT_RFLAGS_IOPL_SHIFT &&
		    (flags >> OUTPUT_RFLAGS_IOPL_SHIFT & 3) != 0)
			snprintf(word, sizeof(word), "IOPL=%u",
				 (unsigned int)(flags >> OUTPUT_RFLAGS_IOPL_SHIFT & 3));
		else if (output_flags[i].bit != OUTPUT_RFLAGS_IOPL_SHIFT &&
			 (flags >> output_flags[i].bit & 1) != 0)
			snprintf(word, sizeof(word), "%s", output_flags[i].name);
		else
			continue;
		length = strlen(word);
		if (column + 1 + (int)length > OUTPUT_COLUMNS) {
			fprintf(fp, "\n%*s", start, "");
			column = start;
		}
		fprintf(fp, " %s", word);
		column += 1 + (int)length;
	}
}

/*
 * The registers of the mode the guest ended in, at its width: ax..bp,
 * ip and flags in real mode, eax..ebp in protected mode, rax..r15 in long
 * mode (efer only there, or where set); wider where a value needs it.
 */
static void
output_registers(const struct output *out, const struct kvmrun_result *result)
{
	static const char *const names16[] = { "ax", "bx", "cx", "dx",
					       "si", "di", "sp", "bp" };
	const struct kvmrun_sregs *sregs = &result->sregs;
	const uint64_t crs[] = { sregs->cr0, sregs->cr2, sregs->cr3, sregs->cr4,
				 sregs->efer };
	const char *const cr_names[] = { "cr0", "cr2", "cr3", "cr4", "efer" };
	int mode = output_mode_digits(result), digits, n = 0, count, column;
	uint64_t bases[KVMRUN_SEG_COUNT];
	const char *prefix;
	char name[16];

	digits = output_digits(mode, result->regs, KVMRUN_REG_COUNT);
	for (int i = KVMRUN_REG_R8; i <= KVMRUN_REG_R15; i++)
		if (result->regs[i] != 0)
			digits = 16;
	prefix = digits == 16 ? "r" : digits == 8 ? "e" : "";
	count = digits == 16 ? KVMRUN_REG_R15 + 1
			     : (int)(sizeof(names16) / sizeof(names16[0]));
	for (int i = 0; i < count; i++) {
		if (i < (int)(sizeof(names16) / sizeof(names16[0])))
			snprintf(name, sizeof(name), "%s%s", prefix, names16[i]);
		else
			snprintf(name, sizeof(name), "%s",
				 kvmrun_reg_name((enum kvmrun_reg)i));
		output_reg(out, &n, digits == 16 ? 3 : 32 / digits,
			   (int)strlen(prefix) + 2, name, digits, result->regs[i]);
	}
	output_table_end(out, &n);
	snprintf(name, sizeof(name), "%sip", prefix);
	output_reg(out, &n, 2, 0, name, digits, result->regs[KVMRUN_REG_RIP]);
	snprintf(name, sizeof(name), "%sflags", prefix);
	output_reg(out, &n, 2, 0, name, digits, result->regs[KVMRUN_REG_RFLAGS]);
	column = 2 * (int)strlen(prefix) + 2 + 1 + 2 + 5 + 1 + 2 * digits;
	output_flag_names(out->summary, result->regs[KVMRUN_REG_RFLAGS], column);
	output_table_end(out, &n);

	/* Control registers are 32-bit below long mode; efer is long mode's. */
	digits = output_digits(mode == 4 ? 8 : mode, crs, 4);
	count = mode == 16 || sregs->efer != 0 ? 5 : 4;
	if (sregs->efer != 0)
		digits = output_digits(digits, crs, 5);
	for (int i = 0; i < count; i++)
		output_reg(out, &n, digits == 16 ? 3 : 5, count == 5 ? 4 : 3,
			   cr_names[i], digits, crs[i]);
	output_table_end(out, &n);

	for (int i = 0; i < KVMRUN_SEG_COUNT; i++)
		output_reg(out, &n, KVMRUN_SEG_COUNT, 0,
			   kvmrun_seg_name((enum kvmrun_seg)i), 4,
			   sregs->segments[i].selector);
	output_table_end(out, &n);
	/* Bases only where set: real-mode segments, fs and gs, the engine's tr. */
	for (int i = 0; i < KVMRUN_SEG_COUNT; i++)
		bases[i] = sregs->segments[i].base;
	digits = output_digits(mode == 4 ? 8 : mode, bases, KVMRUN_SEG_COUNT);
	for (int i = 0; i < KVMRUN_SEG_COUNT; i++) {
		if (bases[i] == 0)
			continue;
		snprintf(name, sizeof(name), "%s.base",
			 kvmrun_seg_name((enum kvmrun_seg)i));
		output_reg(out, &n, digits == 16 ? 3 : 4, 8, name, digits, bases[i]);
	}
	output_table_end(out, &n);
}

/*
 * "LABEL: COUNT NOUNs", "(truncated)" after it when TRUNCATED, heading a
 * list the run returned; false, and nothing said, for no list at all.
 */
static bool
output_list_head(const struct output *out, const char *label, size_t count,
		 const char *noun, bool truncated)
{
	if (count == 0 && !truncated)
		return false;
	fprintf(out->summary, "%s%s:%s %zu %s%s%s\n", output_summary_sgr(out, OUTPUT_BOLD),
		label, output_summary_sgr(out, OUTPUT_RESET), count, noun,
		count == 1 ? "" : "s", truncated ? " (truncated)" : "");
	return true;
}

static void
output_io_log(const struct output *out, const struct kvmrun_result *result)
{
	if (!output_list_head(out, "io log", result->io_log_count, "record",
			      result->io_log_truncated))
		return;
	for (size_t i = 0; i < result->io_log_count; i++) {
		const struct kvmrun_io_record *rec = &result->io_log[i];

		fprintf(out->summary, "  port 0x%04x size %u value 0x%0*" PRIx32 "\n",
			rec->port, rec->size, rec->size * 2, rec->value);
	}
}

/*
 * DUMP in hexdump -C layout, offsets being guest-physical addresses, under
 * a line "LABEL: address, length".
 */
static void
output_dump(const struct output *out, const char *label, const struct kvmrun_blob *dump)
{
	const uint8_t *prev = NULL;
	bool squeezed = false;
	size_t n;

	fprintf(out->summary, "%s%s:%s 0x%" PRIx64 ", %zu byte%s\n",
		output_summary_sgr(out, OUTPUT_BOLD), label,
		output_summary_sgr(out, OUTPUT_RESET), dump->address, dump->length,
		dump->length == 1 ? "" : "s");
	for (size_t off = 0; off < dump->length; off += OUTPUT_DUMP_ROW) {
		const uint8_t *row = dump->data + off;

		n = dump->length - off < OUTPUT_DUMP_ROW ? dump->length - off
							 : OUTPUT_DUMP_ROW;
		/* Like hexdump, a full row equal to the one before becomes one '*'. */
		if (prev != NULL && n == OUTPUT_DUMP_ROW && memcmp(prev, row, n) == 0) {
			if (!squeezed)
				fputs("*\n", out->summary);
			squeezed = true;
			continue;
		}
		squeezed = false;
		prev = row;
		fprintf(out->summary, "%08" PRIx64 " ", dump->address + off);
		for (size_t i = 0; i < OUTPUT_DUMP_ROW; i++) {
			if (i == OUTPUT_DUMP_ROW / 2)
				fputc(' ', out->summary);
			if (i < n)
				fprintf(out->summary, " %02x", row[i]);
			else
				fputs("   ", out->summary);
		}
		fputs("  |", out->summary);
		for (size_t i = 0; i < n; i++)
			fputc(row[i] >= 0x20 && row[i] < 0x7f ? row[i] : '.',
			      out->summary);
		fputs("|\n", out->summary);
	}
	fprintf(out->summary, "%08" PRIx64 "\n", dump->address + dump->length);
}

/* Where each instruction of a --trace run began: cs:ip in real mode, else rip. */
static void
output_trace(const struct output *out, const struct kvmrun_result *result)
{
	int digits = output_mode_digits(result);

	if (!output_list_head(out, "trace", result->trace_count, "instruction",
			      result->trace_truncated))
		return;
	for (size_t i = 0; i < result->trace_count; i++) {
		const struct kvmrun_trace_entry *e = &result->trace[i];

		if (digits == 4)
			fprintf(out->summary, "  %04" PRIx16 ":", e->cs);
		else
			fputs("  ", out->summary);
		fprintf(out->summary, "%0*" PRIx64 "\n", output_digits(digits, &e->rip, 1),
			e->rip);
	}
}

/* The memory the run changed (--changes), each run of bytes as a dump. */
static void
output_changes(const struct output *out, const struct kvmrun_result *result)
{
	if (result->changes_truncated)
		fputs("changes: truncated\n", out->summary);
	for (size_t i = 0; i < result->change_count; i++)
		output_dump(out, "change", &result->changes[i]);
}

void
output_result(const struct output *out, const struct kvmrun_result *result)
{
	const char *dim = output_summary_sgr(out, OUTPUT_DIM);
	const char *reset = output_summary_sgr(out, OUTPUT_RESET);

	if (result->console_length > 0)
		output_text(out, result->console, result->console_length);
	if (out->quiet) {
		/* The console alone, but a run that failed still says why. */
		if (!output_ended_as_asked(&result->exit)) {
			fflush(out->fp);
			fputs("kvmrun-client: ", stderr);
			output_exit(stderr, false, result);
		}
		return;
	}
	/*
	 * The summary starts on a line of its own even if the guest's did not
	 * end, after a line that ends the console: a guest that prints
	 * "exit: hlt" must not pass for the summary.
	 */
	if (result->console_length > 0 && out->summary == out->fp) {
		if (result->console[result->console_length - 1] != '\n')
			fputc('\n', out->fp);
		fprintf(out->fp, "%s-- end of console --%s\n", dim, reset);
	}
	fflush(out->fp);
	if (result->console_truncated)
		fputs("console: truncated\n", out->summary);
	output_exit(out->summary, out->summary_color, result);
	output_registers(out, result);
	state_output(out->summary, result->state, result->returned);
	output_trace(out, result);
	output_io_log(out, result);
	for (size_t i = 0; i < result->dump_count; i++)
		output_dump(out, "dump", &result->dumps[i]);
	output_changes(out, result);
	/* Legacy paging is what "paged" says; compatibility mode is told. */
	if (result->paging == KVMRUN_PAGING_COMPAT)
		fprintf(out->summary,
			"%spaging:%s compat (32-bit code in compatibility mode, "
			"long-mode page tables)\n",
			output_summary_sgr(out, OUTPUT_BOLD), reset);
	fprintf(out->summary,
		"%sstats:%s %" PRIu64 " exit%s, %" PRIu64 ".%03" PRIu64 " ms\n",
		output_summary_sgr(out, OUTPUT_BOLD), reset, result->exits,
		result->exits == 1 ? "" : "s", result->run_ns / 1000000,
		result->run_ns / 1000 % 1000);
}

static void
output_round_trip(const struct output *out, uint64_t rtt_ns)
{
	fprintf(out->fp, "round trip %" PRIu64 ".%03" PRIu64 " ms\n", rtt_ns / 1000000,
		rtt_ns / 1000 % 1000);
}

void
output_ping(const struct output *out, const struct kvmrun_ping *ping, uint64_t rtt_ns)
{
	fputs("kvmrund ", out->fp);
	output_string(out, ping->version[0] != '\0' ? ping->version : "(unknown version)");
	fprintf(out->fp, ", protocol %d, ", ping->protocol);
	if (!ping->kvm_available) {
		fputs("KVM unavailable: ", out->fp);
		output_string(out, ping->kvm_reason);
		fputc('\n', out->fp);
		output_round_trip(out, rtt_ns);
		return;
	}
	fprintf(out->fp, "KVM API %d, modes", ping->kvm_api_version);
	for (int i = 0; i < KVMRUN_MODE_COUNT; i++)
		if (ping->mode_supported[i])
			fprintf(out->fp, " %s%s", kvmrun_mode_name((enum kvmrun_mode)i),
				i == KVMRUN_MODE_PAGED && ping->paged == KVMRUN_PAGING_COMPAT
					? " (compat)" : "");
	fputc('\n', out->fp);
	output_round_trip(out, rtt_ns);
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
output_stats(const struct output *out, const struct kvmrun_stats *stats,
	     const struct proto_steps *steps)
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
	if (steps->runs == 0)
		return;
	fprintf(out->fp, "%ssteps:%s       mean us of %" PRIu64 " runs:", bold, reset,
		steps->runs);
	for (int i = 0; i < PROTO_STEP_COUNT; i++)
		fprintf(out->fp, " %s %.1f", proto_step_names[i],
			(double)steps->ns[i] / (double)steps->runs / 1000);
	fputc('\n', out->fp);
}
