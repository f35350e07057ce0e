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
	bool quiet;   /* the console bytes and nothing else */
	bool color;
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
void output_init(struct output *out, FILE *fp, bool quiet, enum output_color color,
		 bool raw_console);

void output_result(const struct output *out, const struct kvmrun_result *result);
void output_ping(const struct output *out, const struct kvmrun_ping *ping);
void output_stats(const struct output *out, const struct kvmrun_stats *stats);

#endif
