/*
 * What kvmrun-client prints for people: the guest's console bytes as they
 * are, then the exit, the registers, the dumps and the run's cost; a summary
 * of the daemon's counters for stats.  Colour only on a terminal.
 */
#ifndef KVMRUN_OUTPUT_H
#define KVMRUN_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include "kvmrun.h"

struct output {
	FILE *fp;
	bool quiet; /* the console bytes and nothing else */
	bool color;
};

/* Colour when FP is a terminal and NO_COLOR is unset or empty (no-color.org). */
void output_init(struct output *out, FILE *fp, bool quiet);

void output_result(const struct output *out, const struct kvmrun_result *result);
void output_ping(const struct output *out, const struct kvmrun_ping *ping);
void output_stats(const struct output *out, const struct kvmrun_stats *stats);

#endif
