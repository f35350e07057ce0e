/*
 * capture and replay's common ground (vector-run.h): a vector's run
 * request, and a window of requests in flight on one connection.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "progress.h"
#include "vector-place.h"
#include "vector-run.h"

/* The flags an 8086 or 80286 defines; their files set bits 12-15, which no later CPU
 * lets real-mode code start with. */
#define VECTOR_SST_FLAGS 0x0fd5u
#define VECTOR_RFLAGS_FIXED 0x2u
/* Runs of ram closer than this are sent as one blob: the zeroes between cost less
 * than a region, and the daemon takes at most 64 regions. */
#define VECTOR_RUN_GAP 32u
#define VECTOR_CONNECT_TIMEOUT_MS 5000

int
vector_usage(const char *command, const char *fmt, ...)
{
	va_list ap;

	fputs(VECTOR_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" VECTOR_NAME " %s --help'.\n", command);
	return VECTOR_EXIT_USAGE;
}

int
vector_parse_count(const char *command, const char *option, const char *text,
		   uint64_t min, uint64_t max, uint64_t *value)
{
	char *end;

	errno = 0;
	*value = strtoull(text, &end, 0);
	if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || *value < min ||
	    *value > max) {
		vector_usage(command, "--%s %s: not a whole number from %" PRIu64 " to %" PRIu64,
			     option, text, min, max);
		return -1;
	}
	return 0;
}

/* Adds bytes [START, END) of RAM (address << 8 | byte) as one blob of SPEC. */
static int
vector_add_blob(struct kvmrun_spec *spec, const uint64_t *ram, size_t start, size_t end)
{
	uint64_t first = ram[start] >> 8, length = (ram[end - 1] >> 8) - first + 1;
	struct kvmrun_blob blob = {.address = first, .length = length}, *regions;

	blob.data = calloc(length, 1);
	if (blob.data == NULL)
		return -1;
	for (size_t i = start; i < end; i++)
		blob.data[(ram[i] >> 8) - first] = (uint8_t)ram[i];
	if (spec->image.data == NULL) {
		spec->image = blob;
		return 0;
	}
	regions = reallocarray(spec->regions, spec->region_count + 1, sizeof(*regions));
	if (regions == NULL) {
		free(blob.data);
		return -1;
	}
	spec->regions = regions;
	regions[spec->region_count++] = blob;
	return 0;
}

/* SingleStepTests' final ram as dumps, so replay can read it back. */
static int
vector_add_dumps(struct kvmrun_spec *spec, const struct vector_state *final)
{
	struct kvmrun_range *dumps;
	uint64_t address;

	for (size_t i = 0; i < final->ram_count; i++) {
		address = final->ram[i] >> 8;
		if (spec->dump_count > 0) {
			struct kvmrun_range *last = &spec->dumps[spec->dump_count - 1];

			if (address - (last->address + last->length) < VECTOR_RUN_GAP) {
				last->length = address - last->address + 1;
				continue;
			}
		}
		dumps = reallocarray(spec->dumps, spec->dump_count + 1, sizeof(*dumps));
		if (dumps == NULL)
			return -1;
		spec->dumps = dumps;
		dumps[spec->dump_count++] = (struct kvmrun_range){address, 1};
	}
	return 0;
}

int
vector_spec(const struct vector *v, struct kvmrun_spec *spec, char *why, size_t why_size)
{
	const struct vector_state *init = &v->initial;
	size_t start = 0;

	spec->mode = v->mode;
	spec->ring = v->ring;
	spec->memory_size = PLACE_MEMORY_SIZE;
	spec->max_instructions = 1;
	for (int i = 0; i < KVMRUN_REG_COUNT; i++)
		spec->regs[i] = init->regs[i];
	spec->regs_set = init->regs_set;
	if (v->sst)
		spec->regs[KVMRUN_REG_RFLAGS] =
			(spec->regs[KVMRUN_REG_RFLAGS] & VECTOR_SST_FLAGS) | VECTOR_RFLAGS_FIXED;
	if (v->mode == KVMRUN_MODE_REAL)
		memcpy(spec->segments, init->segs, sizeof(spec->segments));
	if (init->ram_count == 0) {
		snprintf(why, why_size, "initial.ram: empty, but the code must be in it");
		return -1;
	}
	for (size_t i = 1; i <= init->ram_count; i++) {
		if (i < init->ram_count &&
		    (init->ram[i] >> 8) - (init->ram[i - 1] >> 8) <= VECTOR_RUN_GAP)
			continue;
		if (vector_add_blob(spec, init->ram, start, i) < 0)
			goto nomem;
		start = i;
	}
	if (vector_has_xstate(&init->xstate) || vector_has_xstate(&v->final.xstate)) {
		spec->state = calloc(1, sizeof(*spec->state));
		if (spec->state == NULL)
			goto nomem;
		spec->state->xstate = init->xstate;
		spec->returns = KVMRUN_RETURN_XSTATE;
	}
	if (v->sst) {
		if (vector_add_dumps(spec, &v->final) < 0)
			goto nomem;
	} else {
		spec->changes = true;
	}
	return 0;
nomem:
	snprintf(why, why_size, "out of memory");
	return -1;
}

const char *
vector_exit_name(const struct kvmrun_exit *exit)
{
	const char *name = kvmrun_exit_reason_name(exit->reason);

	return name != NULL ? name : exit->u.unknown.name;
}

/* A connection, or NULL after saying why not (with a hint where one helps). */
static struct kvmrun_conn *
vector_connect(const struct vector_pipeline *pl)
{
	const struct kvmrun_error *err;
	struct kvmrun_conn *conn = kvmrun_open(pl->socket_path);
	const char *hint = "";

	if (conn == NULL) {
		client_error("out of memory");
		return NULL;
	}
	kvmrun_set_timeouts(conn, VECTOR_CONNECT_TIMEOUT_MS, -1);
	if (kvmrun_connect(conn) == 0 && kvmrun_set_window(conn, pl->window) == 0)
		return conn;
	err = kvmrun_last_error(conn);
	if (err->errnum == ENOENT || err->errnum == ECONNREFUSED)
		hint = " (is kvmrund or kvmrund.socket running?)";
	client_error("%s%s", err->message, hint);
	kvmrun_close(conn);
	return NULL;
}

/* The daemon's refusal: said, and its exit status. */
static int
vector_daemon_error(const struct kvmrun_error *err)
{
	if (err->code == KVMRUN_ERR_UNKNOWN)
		client_error("daemon: %s", err->message);
	else
		client_error("daemon: %s: %s", kvmrun_strerror(err->code), err->message);
	if (err->code == KVMRUN_ERR_UNAVAILABLE)
		return VECTOR_EXIT_UNAVAILABLE;
	return err->code == KVMRUN_ERR_BUSY ? VECTOR_EXIT_BUSY : VECTOR_EXIT_DAEMON;
}

int
vector_pipeline_run(const struct vector_pipeline *pl)
{
	struct kvmrun_spec spec;
	struct kvmrun_answer answer;
	struct kvmrun_conn *conn;
	struct progress bar;
	uint64_t next = 0, taken = 0;
	int status = VECTOR_EXIT_OK, r;

	conn = vector_connect(pl);
	if (conn == NULL)
		return VECTOR_EXIT_UNREACHABLE;
	progress_init(&bar, stderr, pl->progress, pl->count);
	while (taken < pl->count) {
		while (next < pl->count && kvmrun_pending(conn) < pl->window) {
			kvmrun_spec_init(&spec);
			r = pl->make(pl->ctx, next, (unsigned int)(next % pl->window), &spec);
			if (r == 0 && kvmrun_submit(conn, KVMRUN_OP_RUN, &spec) < 0) {
				progress_clear(&bar);
				client_error("%s", kvmrun_last_error(conn)->message);
				r = -VECTOR_EXIT_UNREACHABLE;
			}
			kvmrun_spec_free(&spec);
			if (r < 0) {
				status = -r;
				goto out;
			}
			next++;
		}
		if (kvmrun_next(conn, &answer) < 0) {
			progress_clear(&bar);
			client_error("%s", kvmrun_last_error(conn)->message);
			status = VECTOR_EXIT_UNREACHABLE;
			goto out;
		}
		if (answer.error.code == KVMRUN_ERR_PROTOCOL) {
			progress_clear(&bar);
			client_error("%s", answer.error.message);
			status = VECTOR_EXIT_UNREACHABLE;
		} else if (answer.error.code != KVMRUN_OK) {
			progress_clear(&bar);
			status = vector_daemon_error(&answer.error);
		} else {
			r = pl->take(pl->ctx, taken, (unsigned int)(taken % pl->window),
				     &answer.result);
			if (r < 0)
				status = -r;
		}
		kvmrun_answer_free(&answer);
		if (status != VECTOR_EXIT_OK)
			goto out;
		taken++;
		progress_add(&bar, 1);
	}
out:
	progress_clear(&bar);
	kvmrun_close(conn);
	return status;
}
