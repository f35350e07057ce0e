/*
 * The worker pool: a bounded FIFO of run requests and the threads that run
 * each one in a fresh VM, which each worker makes ahead of demand.  A worker
 * posts the result on the completion list and calls the notify function the
 * caller gave; the caller's event loop then takes the whole list and makes
 * the answer lines.  No libev in here.
 */
#ifndef KVMRUN_JOB_H
#define KVMRUN_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvmrun-proto.h"
#include "steps.h"
#include "vm.h"

struct job_pool;

/*
 * One finished job, for the client CLIENT and its request SEQUENCE.
 *
 * A run: a worker formats an answer carrying bulk output (console, io log,
 * dumps) into LINE itself, so the event loop never stalls on it; a small one
 * it leaves to the loop, whose CPU is free while short runs keep the workers
 * busy.  Either way job_completion_line gives the line.
 *
 * A request line parsed on a worker (job_submit_parse): REQUEST when it
 * parsed, else ERROR and ID_JSON; the loop then goes on with it.
 */
struct job_completion {
	struct job_completion *next;
	uint64_t client;
	uint64_t sequence;
	bool parsed; /* a parse: REQUEST or ERROR, not a run's */
	bool ok;     /* RESULT (or REQUEST), else ERROR */
	char *id_json;
	struct proto_request request;
	/* How the run ended, kept when RESULT is freed for a formatted LINE. */
	enum kvmrun_exit_reason reason;
	uint64_t exits;
	uint64_t run_ns;
	struct kvmrun_result result;
	struct kvmrun_error error;
	char *line; /* the answer already formatted, or NULL */
	size_t length;
	/* The moments it passed so far; job_completions_take stamps loop_took. */
	struct steps_times times;
};

/* What the pool holds right now, for stats and the memory budget. */
struct job_pool_state {
	unsigned int workers;
	size_t queue_max;
	size_t queued;
	size_t running;
	uint64_t memory; /* job_cost of every run queued or running */
};

/*
 * What a run holds of --max-total-memory while queued and running: its
 * guest memory and the request's payloads, encoded and decoded.
 */
uint64_t job_cost(const struct proto_request *req);
/* What a line of LENGTH bytes holds while it waits to be parsed and is. */
uint64_t job_line_cost(size_t length);

/* Prepared VMs have the protocol's default memory size. */
#define JOB_PREPARED_MEMORY KVMRUN_DEFAULT_MEMORY_SIZE

struct job_pool_config {
	struct proto_limits limits; /* what lines given to job_submit_parse obey */
	unsigned int workers;
	size_t queue_max;
	unsigned int prepared; /* VMs each worker keeps made ahead, 0 for none */
	uint64_t
		max_memory; /* budget of prepared VMs next to queued and running runs */
};

/*
 * Starts CFG->workers threads taking jobs from a queue of at most
 * CFG->queue_max.  NOTIFY(ARG) is called from a worker after each completion
 * is posted; it must be safe to call from any thread.
 *
 * Each worker keeps up to CFG->prepared VMs of JOB_PREPARED_MEMORY made on
 * its own thread, for runs of that size; other runs get a VM made on demand.
 * Prepared VMs are made only while they fit CFG->max_memory next to the runs
 * queued and running, and given up when a run needs the room.  HOST may be
 * NULL: no VM is made before job_pool_set_host.
 */
int job_pool_create(struct kvmrun_host *host, const struct job_pool_config *cfg,
		    void (*notify)(void *arg), void *arg, struct job_pool **poolp,
		    struct kvmrun_error *err);

/*
 * HOST, NULL at creation when the daemon started without KVM, is what the
 * workers make VMs on from now on (they start making VMs ahead on it).
 */
void job_pool_set_host(struct job_pool *pool, struct kvmrun_host *host);

/*
 * Stops taking jobs, lets the queued and running ones finish and joins the
 * workers.  Completions nobody took are freed.
 */
void job_pool_destroy(struct job_pool *pool);

/*
 * Queues the run REQ for CLIENT, which passed the moments TIMES so far.  On
 * success the job owns what REQ held and REQ is left empty; -EBUSY when the
 * queue is full, -ESHUTDOWN when the pool is stopping, -ENOMEM; REQ is
 * untouched on failure.
 */
int job_submit(struct job_pool *pool, uint64_t client, uint64_t sequence,
	       struct proto_request *req, const struct steps_times *times);

/*
 * Queues the request line LINE (LENGTH bytes, malloc'ed; the job owns it on
 * success) of CLIENT, which the loop turned to at LINE_NS, to be parsed on
 * the pool's parser thread: a line so long that parsing it would stall the
 * event loop.  Its completion has parsed set.
 * It holds job_line_cost of the memory budget, not a place in the queue (nor
 * is it counted as queued or running).  Errors as job_submit.
 */
int job_submit_parse(struct job_pool *pool, uint64_t client, uint64_t sequence,
		     char *line, size_t length, uint64_t line_ns);

/*
 * Forgets CLIENT's jobs: queued ones are dropped, running ones cancelled
 * (their completions still come and are the caller's to discard).
 */
void job_cancel(struct job_pool *pool, uint64_t client);
/*
 * The same for every client, to stop at once; the queued runs are answered
 * busy (their completions come like any other).
 */
void job_cancel_all(struct job_pool *pool);
/* Takes no more jobs (job_submit says -ESHUTDOWN); the queue still runs. */
void job_pool_close(struct job_pool *pool);

/*
 * Takes every posted completion, oldest first, linked through next, and
 * stamps the moment in their times.loop_took.
 */
struct job_completion *job_completions_take(struct job_pool *pool);
/*
 * DONE's answer line, which the caller then owns (its length in *LENGTH), or
 * NULL when out of memory.  Formatting it here is timed in DONE->times.
 */
char *job_completion_line(struct job_completion *done, size_t *length);
void job_completion_free(struct job_completion *done);

void job_pool_state(struct job_pool *pool, struct job_pool_state *state);

#endif
