/*
 * A progress bar on standard error for capture and replay: done/total,
 * rate and ETA, redrawn at most a few times a second, and only on a
 * terminal (a log or a pipe gets nothing).
 */
#ifndef KVMRUN_PROGRESS_H
#define KVMRUN_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct progress {
	FILE *fp;		/* NULL: off */
	uint64_t total, done;
	uint64_t start_ns, drawn_ns;
	bool drawn;		/* a line is on the terminal, to clear */
};

/* On when FP is a terminal and ENABLED; TOTAL is the count to reach. */
void progress_init(struct progress *p, FILE *fp, bool enabled, uint64_t total);
/* Counts N more done; redraws when the last drawing is old enough. */
void progress_add(struct progress *p, uint64_t n);
/* Clears the bar, so that messages after it start on a clean line. */
void progress_clear(struct progress *p);

#endif
