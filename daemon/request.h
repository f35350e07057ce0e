/*
 * One request line in, its answer out: validates the line with the codec,
 * answers ping and stats at once, checks a run against the engine and the
 * daemon's budgets and queues it on the worker pool.  Keeps the counters the
 * stats op reports.  Runs on the event loop's thread only.
 */
#ifndef KVMRUN_REQUEST_H
#define KVMRUN_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "kvmrun-proto.h"
#include "host.h"
#include "job.h"
#include "vm.h"

struct request_handler;

/* The run was queued; its answer comes later as a job completion. */
#define REQUEST_PENDING 1

/*
 * LIMITS are checked on every line; MAX_TOTAL_MEMORY bounds the memory_size
 * of all runs queued and running together (--max-total-memory).  Runs go to
 * the host HOSTS gives, or are answered unavailable while it has none.
 */
int request_handler_create(const struct proto_limits *limits, uint64_t max_total_memory,
			   struct host_watch *hosts, struct job_pool *pool,
			   struct request_handler **handlerp);
void request_handler_destroy(struct request_handler *h);

/*
 * Handles the request LINE (without its '\n'), number SEQUENCE on the
 * connection CLIENT, which the loop turned to at LINE_NS (steps_now).  0
 * with the answer line in *ANSWERP (the caller frees it), REQUEST_PENDING (a
 * run queued, or a long line given to a worker to parse: a job completion
 * follows), or -ENOMEM when not even an answer could be made.
 */
int request_handle_line(struct request_handler *h, uint64_t client, uint64_t sequence,
			const char *line, size_t length, uint64_t line_ns,
			char **answerp, size_t *lengthp);

/*
 * Lines from this long on are parsed on a worker (about 7 ms of the event
 * loop's time per 256 KiB otherwise, 0.6 s for a line of 24 MiB).
 */
#define REQUEST_PARSE_ON_WORKER (256u << 10)

/*
 * Goes on with a line a worker parsed (DONE->parsed): as request_handle_line
 * from there.
 */
int request_handle_parsed(struct request_handler *h, struct job_completion *done,
			  char **answerp, size_t *lengthp);

/* An error answer to a line that never became a request (its id is null). */
char *request_format_error(struct request_handler *h, const struct kvmrun_error *err,
			   size_t *lengthp);

/* Counts the answer a worker produced. */
void request_count_completion(struct request_handler *h,
			      const struct job_completion *done);
/* Adds the steps of a run whose answer, a result, is now written. */
void request_count_steps(struct request_handler *h, const struct steps_times *times);

void request_connection_opened(struct request_handler *h);
void request_connection_closed(struct request_handler *h);
uint64_t request_connections_open(const struct request_handler *h);
/* Runs answered with a result since the start. */
uint64_t request_runs_done(const struct request_handler *h);

#endif
