/*
 * The worker pool: a bounded FIFO of run requests and the threads that run
 * each one in a fresh VM.  A worker formats the response line itself, posts
 * it on the completion list and calls the notify function the caller gave;
 * the caller's event loop then takes the whole list.  No libev in here.
 */
#ifndef KVMRUN_JOB_H
#define KVMRUN_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvmrun-proto.h"
#include "vm.h"

struct job_pool;

/* One finished run, for the client CLIENT and its request SEQUENCE. */
struct job_completion {
	struct job_completion *next;
	uint64_t client;
	uint64_t sequence;
	char *line; /* the response line, NULL when out of memory */
	size_t length;
	bool ok; /* a result (reason), else an error (code) */
	enum kvmrun_exit_reason reason;
	enum kvmrun_errcode code;
};

/* What the pool holds right now, for stats and the memory budget. */
struct job_pool_state {
	unsigned int workers;
	size_t queue_max;
	size_t queued;
	size_t running;
	uint64_t memory; /* memory_size of every run queued or running */
};

/*
 * Starts WORKERS threads taking jobs from a queue of at most QUEUE_MAX.
 * NOTIFY(ARG) is called from a worker after each completion is posted; it
 * must be safe to call from any thread.
 */
int job_pool_create(struct kvmrun_host *host, unsigned int workers, size_t queue_max,
		    void (*notify)(void *arg), void *arg, struct job_pool **poolp,
		    struct kvmrun_error *err);

/*
 * Stops taking jobs, lets the queued and running ones finish and joins the
 * workers.  Completions nobody took are freed.
 */
void job_pool_destroy(struct job_pool *pool);

/*
 * Queues the run REQ for CLIENT.  On success the job owns what REQ held and
 * REQ is left empty; -EBUSY when the queue is full, -ESHUTDOWN when the pool
 * is stopping, -ENOMEM; REQ is untouched on failure.
 */
int job_submit(struct job_pool *pool, uint64_t client, uint64_t sequence,
	       struct proto_request *req);

/*
 * Forgets CLIENT's jobs: queued ones are dropped, running ones cancelled
 * (their completions still come and are the caller's to discard).
 */
void job_cancel(struct job_pool *pool, uint64_t client);
/* The same for every client, to stop at once. */
void job_cancel_all(struct job_pool *pool);

/* Takes every posted completion, oldest first, linked through next. */
struct job_completion *job_completions_take(struct job_pool *pool);
void job_completion_free(struct job_completion *done);

void job_pool_state(struct job_pool *pool, struct job_pool_state *state);

#endif
