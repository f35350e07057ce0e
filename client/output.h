/*
 * What kvmrun-client prints for people: the guest's console bytes as they
 * are, then the exit, the registers, the dumps and the run's cost; a summary
 * of the daemon's counters for stats.  Colour only on a terminal, unless
 * asked; on a terminal, control bytes shown rather than sent.
 */
#ifndef KVMRUN_OUTPUT_H
#define KVMRUN_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

/* "kvmrun-client: ...", a line on stderr, for every command of the client. */
void client_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#include "kvmrun-proto.h"
#include "kvmrun.h"

/* --color: the names' order is the option's. */
enum output_color {
	OUTPUT_COLOR_AUTO,
	OUTPUT_COLOR_ALWAYS,
	OUTPUT_COLOR_NEVER,
	OUTPUT_COLOR_COUNT
};

struct output {
	FILE *fp;
	FILE *summary;	       /* a run's summary: FP, or stderr (--summary stderr) */
	bool quiet;	       /* the console bytes, and why a run failed on stderr */
	bool color;	       /* on FP */
	bool summary_color;    /* on SUMMARY */
	bool visible; /* control bytes from the daemon shown as \x1b, not sent */
};

/* "auto", "always", "never", or NULL out of range. */
const char *output_color_name(enum output_color color);

/*
 * COLOR auto colours when FP is a terminal, NO_COLOR is unset or empty
 * (no-color.org) and TERM is not "dumb"; always and never are as said.  On
 * a terminal the guest's console and the daemon's strings have their
 * control bytes (but \n and \t) shown as \xNN, unless RAW_CONSOLE; other
 * output gets the bytes as they are.
 */
void output_init(struct output *out, FILE *fp, FILE *summary, bool quiet,
		 enum output_color color, bool raw_console);

/*
 * The console bytes on FP, then the summary on SUMMARY: after a line that
 * ends the console when they share a stream, registers at the width of
 * the mode the guest ended in, then the CPU state, trace and changes the
 * run returned.  Quiet: a run that did not halt (or step to its
 * max_instructions) says its exit on stderr.
 */
void output_result(const struct output *out, const struct kvmrun_result *result);
/* The ping's answer, and RTT_NS, the time from the request to it. */
void output_ping(const struct output *out, const struct kvmrun_ping *ping,
		 uint64_t rtt_ns);
/* STEPS: the daemon's steps_ns, shown as means once it timed a run. */
void output_stats(const struct output *out, const struct kvmrun_stats *stats,
		  const struct proto_steps *steps);

#endif
