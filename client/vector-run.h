/*
 * What capture and replay share: the run request a vector makes, and the
 * pipeline that keeps a window of such requests in flight on one
 * connection, with the progress bar, mapping what went wrong to
 * kvmrun-client's exit statuses.  The commands themselves are
 * vector_capture_main and vector_replay_main.
 */
#ifndef KVMRUN_VECTOR_RUN_H
#define KVMRUN_VECTOR_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "kvmrun.h"
#include "vectors.h"

/* kvmrun-client's exit statuses (its --help has the table). */
enum vector_exit {
	VECTOR_EXIT_OK = 0,
	VECTOR_EXIT_DISAGREE = 1,	/* replay: a vector did not agree */
	VECTOR_EXIT_USAGE = 2,
	VECTOR_EXIT_DAEMON = 3,
	VECTOR_EXIT_UNREACHABLE = 4,
	VECTOR_EXIT_UNAVAILABLE = 5,
	VECTOR_EXIT_BUSY = 6,		/* the daemon had no room: try later */
};

#define VECTOR_NAME "kvmrun-client"
#define VECTOR_WINDOW_DEFAULT 64u

/*
 * The run request that replays V: its mode and ring, its initial registers,
 * segments and xstate, its initial ram as the image and regions, one
 * instruction (max_instructions 1), and what to bring back to compare:
 * changes and the xstate for capture's vectors, dumps of the final ram for
 * SingleStepTests'.  0, or -1 with WHY.
 */
int vector_spec(const struct vector *v, struct kvmrun_spec *spec, char *why,
		size_t why_size);

/* The exit reason's protocol name, also of one newer than this client. */
const char *vector_exit_name(const struct kvmrun_exit *exit);

struct vector_pipeline {
	const char *socket_path;	/* NULL: libkvmrun's default */
	unsigned int window;
	bool progress;			/* the bar, on a terminal */
	uint64_t count;			/* runs to make */
	void *ctx;
	/* Fills SPEC (initialised) for run I, which uses SLOT (< window) until taken. */
	int (*make)(void *ctx, uint64_t i, unsigned int slot, struct kvmrun_spec *spec);
	/* Takes the result of run I; a negative return stops with -return as status. */
	int (*take)(void *ctx, uint64_t i, unsigned int slot, const struct kvmrun_result *r);
};

/* Runs them all; an exit status (0 when every run was answered and taken). */
int vector_pipeline_run(const struct vector_pipeline *pl);

/* A usage error of COMMAND (capture, replay): says it and where help is; returns 2. */
int vector_usage(const char *command, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* TEXT as a whole number from MIN to MAX; -1 after a usage error naming --OPTION. */
int vector_parse_count(const char *command, const char *option, const char *text,
		       uint64_t min, uint64_t max, uint64_t *value);

int vector_capture_main(int argc, char **argv);
int vector_replay_main(int argc, char **argv);

#endif
