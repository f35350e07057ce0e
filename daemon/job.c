/*
 * The worker pool.  The loop thread submits jobs and takes completions; each
 * worker takes a job off the queue, decodes its payloads, takes a VM it made
 * ahead on its own thread (KVM wants vCPU calls from there) or makes one,
 * runs it and posts the result.  Only then does it make the next VM ahead
 * and tear the used one down, so the answer waits for neither.  A VM is run
 * once and never reused.  A thread of its own, the parser, parses the request
 * lines too long for the event loop to parse without stalling; no run holds
 * those up.  One mutex guards both queues, the threads' current jobs and VMs,
 * the counters, the memory budget and the completion list.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "log.h"

/* Bytes of bulk output from which on a worker formats the answer itself. */
#define JOB_WORKER_FORMAT_MIN 4096u

struct job {
	struct job *next;
	uint64_t client;
	uint64_t sequence;
	bool cancelled;
	uint64_t cost; /* of the budget: see job_cost */
	char *line;    /* a line to parse (job_submit_parse), else REQ to run */
	size_t line_length;
	struct proto_request req;
	/* Allocated at submission, so a worker can always post its answer. */
	struct job_completion *done;
};

struct job_queue {
	struct job *head;
	struct job **tail;
};

struct job_worker {
	struct job_pool *pool;
	pthread_t thread;
	bool parser; /* takes lines to parse, not runs */
	struct job *job;	     /* the job being run, or NULL */
	struct kvmrun_vm *vm;	     /* its VM while it exists, or NULL */
	struct kvmrun_vm **prepared; /* made ahead on this thread, never run */
	unsigned int prepared_count;
	bool prepare_failed; /* no retry before the next run: no busy loop */
};

struct job_pool {
	pthread_mutex_t lock;
	pthread_cond_t wakeup;
	struct kvmrun_host *host;
	struct proto_limits limits;
	void (*notify)(void *arg);
	void *notify_arg;
	struct job_queue runs;
	/* Long lines to parse: a thread of their own, so no run holds them up. */
	struct job_queue lines;
	size_t queue_max;
	size_t queued;
	size_t running;
	uint64_t memory;	  /* of the runs queued and running */
	uint64_t prepared_memory; /* of the prepared VMs */
	uint64_t max_memory;
	unsigned int prepared_max; /* per worker */
	/*
	 * Threads yet to start: to name themselves (prctl, which the sandbox
	 * forbids once the daemon serves) and, workers, make their first VMs.
	 */
	unsigned int preparing;
	bool closed;		   /* takes no more jobs; the queue still runs */
	bool stopping;
	struct job_completion *done_head;
	struct job_completion **done_tail;
	struct job_worker *workers; /* worker_count of them, then the parser */
	unsigned int worker_count;
	unsigned int thread_count; /* the workers and the parser */
	struct kvmrun_vm **prepared_slots; /* every worker's prepared array */
};

static void
job_queue_init(struct job_queue *q)
{
	q->head = NULL;
	q->tail = &q->head;
}

static void
job_queue_push(struct job_queue *q, struct job *job)
{
	job->next = NULL;
	*q->tail = job;
	q->tail = &job->next;
}

static struct job *
job_queue_pop(struct job_queue *q)
{
	struct job *job = q->head;

	if (job != NULL) {
		q->head = job->next;
		if (q->head == NULL)
			q->tail = &q->head;
	}
	return job;
}

/* A mutex or condvar call fails only on a programming error. */
static void
job_lock(struct job_pool *pool)
{
	int rc = pthread_mutex_lock(&pool->lock);

	if (rc != 0) {
		errno = rc;
		fatal("job", "pthread_mutex_lock");
	}
}

static void
job_unlock(struct job_pool *pool)
{
	int rc = pthread_mutex_unlock(&pool->lock);

	if (rc != 0) {
		errno = rc;
		fatal("job", "pthread_mutex_unlock");
	}
}

static void
job_free(struct job *job)
{
	free(job->line);
	proto_request_free(&job->req);
	job_completion_free(job->done);
	free(job);
}

void
job_completion_free(struct job_completion *done)
{
	if (done == NULL)
		return;
	free(done->line);
	free(done->id_json);
	proto_request_free(&done->request);
	kvmrun_result_free(&done->result);
	free(done);
}

static char *
job_format(const struct job_completion *done, size_t *length)
{
	if (done->ok)
		return proto_format_result(done->id_json, &done->result, length);
	return proto_format_error(done->id_json, &done->error, length);
}

char *
job_completion_line(struct job_completion *done, size_t *length)
{
	char *line = done->line;

	if (line != NULL) {
		*length = done->length;
		done->line = NULL;
		return line;
	}
	done->times.format_start = steps_now();
	line = job_format(done, length);
	done->times.format_end = steps_now();
	if (line == NULL)
		log_warnx("job",
			  "client %llu: no memory for the answer to request %llu",
			  (unsigned long long)done->client,
			  (unsigned long long)done->sequence);
	return line;
}

static void
job_wait(struct job_pool *pool)
{
	int rc = pthread_cond_wait(&pool->wakeup, &pool->lock);

	if (rc != 0) {
		errno = rc;
		fatal("job", "pthread_cond_wait");
	}
}

static void
job_wake_all(struct job_pool *pool)
{
	int rc = pthread_cond_broadcast(&pool->wakeup);

	if (rc != 0) {
		errno = rc;
		fatal("job", "pthread_cond_broadcast");
	}
}

/* Whether the runs and the prepared VMs together are over the budget. */
static bool
job_over_budget(const struct job_pool *pool)
{
	return pool->memory + pool->prepared_memory > pool->max_memory;
}

/* Under the lock: whether W should make a VM ahead now. */
static bool
job_prepare_wanted(const struct job_worker *w)
{
	const struct job_pool *pool = w->pool;

	/* A waiting run should not wait for a second prepared VM. */
	return !w->parser && pool->host != NULL && w->prepared_count < pool->prepared_max &&
	       !w->prepare_failed && !pool->stopping &&
	       (pool->runs.head == NULL || w->prepared_count == 0) &&
	       pool->memory + pool->prepared_memory + JOB_PREPARED_MEMORY <=
		       pool->max_memory;
}

/* Under the lock, which it drops while the VM is made. */
static void
job_prepare_one(struct job_worker *w)
{
	struct job_pool *pool = w->pool;
	struct kvmrun_host *host = pool->host;
	struct kvmrun_error err;
	struct kvmrun_vm *vm;
	int rc;

	pool->prepared_memory += JOB_PREPARED_MEMORY;
	job_unlock(pool);
	rc = vm_create(host, JOB_PREPARED_MEMORY, &vm, &err);
	if (rc < 0)
		log_warnx("job",
			  "cannot make a VM ahead (retried after the next run): %s",
			  err.message);
	job_lock(pool);
	if (rc < 0) {
		pool->prepared_memory -= JOB_PREPARED_MEMORY;
		w->prepare_failed = true;
		return;
	}
	w->prepared[w->prepared_count++] = vm;
}

/* Under the lock, which it drops while the VM is torn down. */
static void
job_drop_one(struct job_worker *w)
{
	struct job_pool *pool = w->pool;
	struct kvmrun_vm *vm = w->prepared[--w->prepared_count];

	pool->prepared_memory -= JOB_PREPARED_MEMORY;
	job_unlock(pool);
	vm_destroy(vm);
	job_lock(pool);
}

/*
 * Waits for a job, meanwhile making VMs ahead, or giving them up while runs
 * need their room in the budget.  NULL once the pool is stopping and the
 * queue is empty.
 */
static struct job *
job_take(struct job_worker *w)
{
	struct job_pool *pool = w->pool;
	struct job_queue *queue = w->parser ? &pool->lines : &pool->runs;
	struct job *job;

	job_lock(pool);
	while (queue->head == NULL && !pool->stopping) {
		if (w->prepared_count > 0 && job_over_budget(pool))
			job_drop_one(w);
		else if (job_prepare_wanted(w))
			job_prepare_one(w);
		else
			job_wait(pool);
	}
	job = job_queue_pop(queue);
	if (job != NULL && !w->parser) {
		pool->queued--;
		pool->running++;
	}
	w->job = job;
	job_unlock(pool);
	return job;
}

/*
 * A VM for a run of MEMORY bytes: one W made ahead when the size matches,
 * else a new one, for which W first gives up prepared VMs the budget has no
 * room for (and wakes idle workers to do the same).
 */
static int
job_vm_get(struct job_worker *w, uint64_t memory, struct kvmrun_vm **vmp,
	   struct kvmrun_error *err)
{
	struct job_pool *pool = w->pool;
	struct kvmrun_host *host;

	job_lock(pool);
	host = pool->host;
	if (memory == JOB_PREPARED_MEMORY && w->prepared_count > 0) {
		*vmp = w->prepared[--w->prepared_count];
		/* Its memory counts as the run's from now on. */
		pool->prepared_memory -= JOB_PREPARED_MEMORY;
		job_unlock(pool);
		return 0;
	}
	while (w->prepared_count > 0 && job_over_budget(pool))
		job_drop_one(w);
	if (job_over_budget(pool))
		job_wake_all(pool);
	job_unlock(pool);
	return vm_create(host, memory, vmp, err);
}

/* The bulk output of RESULT in bytes: console, io log and dumps. */
static size_t
job_bulk(const struct kvmrun_result *result)
{
	size_t bytes =
		result->console_length + result->io_log_count * sizeof(*result->io_log);

	for (size_t i = 0; i < result->dump_count; i++)
		bytes += result->dumps[i].length;
	return bytes;
}

/*
 * Fills JOB's completion with the answer: RESULT (taken over) when not
 * NULL, else ERR.
 */
static void
job_answer(struct job *job, struct kvmrun_result *result,
	   const struct kvmrun_error *err)
{
	struct job_completion *done = job->done;

	done->client = job->client;
	done->sequence = job->sequence;
	done->id_json = job->req.id_json;
	job->req.id_json = NULL;
	done->ok = result != NULL;
	if (result == NULL) {
		done->error = *err;
		return;
	}
	done->result = *result;
	done->reason = result->exit.reason;
	done->exits = result->exits;
	done->run_ns = result->run_ns;
	kvmrun_result_init(result);
	if (job_bulk(&done->result) < JOB_WORKER_FORMAT_MIN)
		return;
	/* Out of memory, the line is left to the loop to try again. */
	done->times.format_start = steps_now();
	done->line = job_format(done, &done->length);
	done->times.format_end = steps_now();
	done->times.format_on_worker = done->line != NULL;
	if (done->line != NULL)
		kvmrun_result_free(&done->result);
}

/* Under the lock: posts JOB's completion, which then belongs to the list. */
static void
job_post(struct job_pool *pool, struct job *job)
{
	*pool->done_tail = job->done;
	pool->done_tail = &job->done->next;
	job->done = NULL;
}

/* Parses JOB's line and posts the request, or the error, for the loop. */
static void
job_parse(struct job_pool *pool, struct job *job)
{
	struct job_completion *done = job->done;
	int rc;

	done->times.parser_took = steps_now();
	done->client = job->client;
	done->sequence = job->sequence;
	done->parsed = true;
	rc = proto_request_parse(job->line, job->line_length, &pool->limits,
				 &done->request, &done->error);
	done->ok = rc == 0;
	if (rc < 0) {
		/* The error answer carries the id the line had, if it had one. */
		done->id_json = done->request.id_json;
		done->request.id_json = NULL;
		proto_request_free(&done->request);
	}
	free(job->line);
	job->line = NULL;

	done->times.parser_posted = steps_now();
	job_lock(pool);
	pool->memory -= job->cost;
	job_post(pool, job);
	job_unlock(pool);
	pool->notify(pool->notify_arg);
	job_free(job);
}

static void
job_run(struct job_worker *w, struct job *job)
{
	struct job_pool *pool = w->pool;
	uint64_t memory = job->req.spec.memory_size;
	uint64_t cost = job->cost;
	struct kvmrun_vm *vm = NULL;
	struct kvmrun_result result;
	struct kvmrun_error err;
	int rc;

	job->done->times.worker_took = steps_now();
	kvmrun_result_init(&result);
	rc = proto_request_decode_payloads(&job->req, &err);
	if (rc == 0)
		rc = job_vm_get(w, memory, &vm, &err);
	if (rc == 0) {
		job_lock(pool);
		w->vm = vm;
		/* Cancelled while the VM was being made: stop it before it starts. */
		if (job->cancelled)
			vm_cancel(vm);
		job_unlock(pool);
		rc = vm_run(vm, &job->req.spec, &result, &err);
		job->done->times.vm = *vm_run_times(vm);
	}
	job_answer(job, rc == 0 ? &result : NULL, &err);
	kvmrun_result_free(&result);

	job_lock(pool);
	w->vm = NULL;
	w->job = NULL;
	pool->running--;
	job_post(pool, job);
	job_unlock(pool);
	pool->notify(pool->notify_arg);

	/*
	 * The next VM before the teardown: it is ready sooner, and a vCPU stays
	 * alive throughout, so KVM does not flip the static keys it counts
	 * vCPUs with, which patches kernel text and interrupts every CPU.
	 */
	job_lock(pool);
	w->prepare_failed = false;
	while (job_prepare_wanted(w))
		job_prepare_one(w);
	job_unlock(pool);
	if (vm != NULL)
		vm_destroy(vm);
	job_lock(pool);
	pool->memory -= cost;
	job_unlock(pool);
	job_free(job);
}

static void *
job_worker_main(void *arg)
{
	struct job_worker *w = arg;
	struct job *job;

	/* So that top -H and perf tell the workers from the event loop. */
	if (pthread_setname_np(pthread_self(),
			       w->parser ? "kvmrund-parser" : "kvmrund-worker") != 0)
		log_debug("job", "cannot name the worker thread");
	job_lock(w->pool);
	while (job_prepare_wanted(w))
		job_prepare_one(w);
	if (--w->pool->preparing == 0)
		job_wake_all(w->pool);
	job_unlock(w->pool);
	while ((job = job_take(w)) != NULL) {
		if (job->line != NULL)
			job_parse(w->pool, job);
		else
			job_run(w, job);
	}
	job_lock(w->pool);
	while (w->prepared_count > 0)
		job_drop_one(w);
	job_unlock(w->pool);
	return NULL;
}

/* Wakes the threads to finish the queues and return, then joins COUNT of them. */
static void
job_workers_stop(struct job_pool *pool, unsigned int count)
{
	int rc;

	job_lock(pool);
	pool->stopping = true;
	job_wake_all(pool);
	job_unlock(pool);
	for (unsigned int i = 0; i < count; i++) {
		rc = pthread_join(pool->workers[i].thread, NULL);
		if (rc != 0) {
			errno = rc;
			fatal("job", "pthread_join");
		}
	}
}

/*
 * Workers take no process signals: the event loop's thread handles them.
 * The engine's vCPU kick (SIGRTMIN) and faults must still reach a worker.
 */
static int
job_worker_sigmask(sigset_t *set)
{
	static const int keep[] = { SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGABRT, SIGTRAP };

	if (sigfillset(set) < 0 || sigdelset(set, SIGRTMIN) < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		if (sigdelset(set, keep[i]) < 0)
			return -errno;
	return 0;
}

static int
job_workers_start(struct job_pool *pool, struct kvmrun_error *err)
{
	sigset_t set, saved;
	unsigned int started;
	int rc;

	rc = job_worker_sigmask(&set);
	if (rc < 0) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "worker signal mask: %s",
				 strerror(-rc));
		return rc;
	}
	/* A new thread inherits the mask of the thread that creates it. */
	rc = pthread_sigmask(SIG_SETMASK, &set, &saved);
	if (rc != 0) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "pthread_sigmask: %s",
				 strerror(rc));
		return -rc;
	}
	for (started = 0; started < pool->thread_count; started++) {
		pool->workers[started].pool = pool;
		rc = pthread_create(&pool->workers[started].thread, NULL,
				    job_worker_main, &pool->workers[started]);
		if (rc != 0)
			break;
	}
	if (rc != 0)
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				 "cannot start thread %u of %u: %s", started + 1,
				 pool->thread_count, strerror(rc));
	if (pthread_sigmask(SIG_SETMASK, &saved, NULL) != 0)
		fatalx("job", "cannot restore the signal mask");
	if (rc != 0) {
		job_workers_stop(pool, started);
		return -rc;
	}
	/* Ready means ready at full speed: every thread up, every first VM made. */
	job_lock(pool);
	while (pool->preparing > 0)
		job_wait(pool);
	job_unlock(pool);
	return 0;
}

int
job_pool_create(struct kvmrun_host *host, const struct job_pool_config *cfg,
		void (*notify)(void *arg), void *arg, struct job_pool **poolp,
		struct kvmrun_error *err)
{
	struct job_pool *pool;
	int rc = -ENOMEM;

	pool = calloc(1, sizeof(*pool));
	if (pool == NULL) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				 "no memory for the worker pool");
		return rc;
	}
	pool->workers = calloc(cfg->workers + 1, sizeof(*pool->workers));
	/* + 1: with no prepared VMs, calloc of nothing may return NULL. */
	pool->prepared_slots = calloc((size_t)cfg->workers * cfg->prepared + 1,
				      sizeof(*pool->prepared_slots));
	if (pool->workers == NULL || pool->prepared_slots == NULL) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "no memory for %u workers",
				 cfg->workers);
		goto out_free_workers;
	}
	pool->host = host;
	pool->limits = cfg->limits;
	pool->notify = notify;
	pool->notify_arg = arg;
	job_queue_init(&pool->runs);
	job_queue_init(&pool->lines);
	pool->queue_max = cfg->queue_max;
	pool->max_memory = cfg->max_memory;
	pool->prepared_max = cfg->prepared;
	pool->done_tail = &pool->done_head;
	pool->worker_count = cfg->workers;
	pool->thread_count = cfg->workers + 1;
	pool->preparing = pool->thread_count;
	for (unsigned int i = 0; i < cfg->workers; i++)
		pool->workers[i].prepared =
			pool->prepared_slots + (size_t)i * cfg->prepared;
	pool->workers[cfg->workers].parser = true;

	rc = pthread_mutex_init(&pool->lock, NULL);
	if (rc != 0) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "pthread_mutex_init: %s",
				 strerror(rc));
		rc = -rc;
		goto out_free_workers;
	}
	rc = pthread_cond_init(&pool->wakeup, NULL);
	if (rc != 0) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "pthread_cond_init: %s",
				 strerror(rc));
		rc = -rc;
		goto out_destroy_lock;
	}
	rc = job_workers_start(pool, err);
	if (rc < 0)
		goto out_destroy_cond;
	*poolp = pool;
	return 0;

out_destroy_cond:
	pthread_cond_destroy(&pool->wakeup);
out_destroy_lock:
	pthread_mutex_destroy(&pool->lock);
out_free_workers:
	free(pool->prepared_slots);
	free(pool->workers);
	free(pool);
	return rc;
}

uint64_t
job_cost(const struct proto_request *req)
{
	return req->spec.memory_size + proto_request_held_bytes(req);
}

uint64_t
job_line_cost(size_t length)
{
	/* The line, and the strings json-c makes of it. */
	return 2 * (uint64_t)length;
}

void
job_pool_set_host(struct job_pool *pool, struct kvmrun_host *host)
{
	job_lock(pool);
	pool->host = host;
	job_wake_all(pool);
	job_unlock(pool);
}

void
job_pool_destroy(struct job_pool *pool)
{
	struct job_completion *done, *next;

	job_workers_stop(pool, pool->thread_count);
	for (done = pool->done_head; done != NULL; done = next) {
		next = done->next;
		job_completion_free(done);
	}
	pthread_cond_destroy(&pool->wakeup);
	pthread_mutex_destroy(&pool->lock);
	free(pool->prepared_slots);
	free(pool->workers);
	free(pool);
}

/*
 * Queues JOB (its completion allocated here); on failure JOB is freed
 * without what it carries, which stays its caller's.
 */
static int
job_enqueue(struct job_pool *pool, struct job *job, const struct steps_times *times)
{
	int rc = 0;

	job->done = calloc(1, sizeof(*job->done));
	if (job->done == NULL) {
		free(job);
		return -ENOMEM;
	}
	job->done->times = *times;
	if (job->line == NULL)
		job->done->times.queued = steps_now();
	job_lock(pool);
	/* Lines are bounded by the memory budget alone, runs by --queue too. */
	if (pool->closed || pool->stopping) {
		rc = -ESHUTDOWN;
	} else if (job->line == NULL && pool->queued >= pool->queue_max) {
		rc = -EBUSY;
	} else {
		job_queue_push(job->line != NULL ? &pool->lines : &pool->runs, job);
		pool->queued += job->line == NULL;
		pool->memory += job->cost;
		/* Workers and the parser share the condition: wake them all. */
		rc = pthread_cond_broadcast(&pool->wakeup);
		if (rc != 0) {
			errno = rc;
			fatal("job", "pthread_cond_broadcast");
		}
	}
	job_unlock(pool);
	if (rc < 0) {
		free(job->done);
		free(job);
	}
	return rc;
}

int
job_submit(struct job_pool *pool, uint64_t client, uint64_t sequence,
	   struct proto_request *req, const struct steps_times *times)
{
	struct job *job = calloc(1, sizeof(*job));
	int rc;

	if (job == NULL)
		return -ENOMEM;
	job->client = client;
	job->sequence = sequence;
	job->cost = job_cost(req);
	job->req = *req;
	rc = job_enqueue(pool, job, times);
	/* Queued, the job owns the request; else REQ still does. */
	if (rc == 0)
		memset(req, 0, sizeof(*req));
	return rc;
}

int
job_submit_parse(struct job_pool *pool, uint64_t client, uint64_t sequence,
		 char *line, size_t length, uint64_t line_ns)
{
	const struct steps_times times = { .line = line_ns };
	struct job *job = calloc(1, sizeof(*job));

	if (job == NULL)
		return -ENOMEM;
	job->client = client;
	job->sequence = sequence;
	job->cost = job_line_cost(length);
	job->line = line;
	job->line_length = length;
	return job_enqueue(pool, job, &times);
}

/*
 * Under the lock: takes the jobs of CLIENT (or all) off Q onto *DROPPED; with
 * ANSWER each gets ERR as its answer, posted.  True when one was posted.
 */
static bool
job_queue_drop(struct job_pool *pool, struct job_queue *q, bool all, uint64_t client,
	       const struct kvmrun_error *answer, struct job **dropped)
{
	struct job **jp = &q->head, *job;
	bool posted = false;

	while ((job = *jp) != NULL) {
		if (!all && job->client != client) {
			jp = &job->next;
			continue;
		}
		*jp = job->next;
		pool->queued -= job->line == NULL;
		pool->memory -= job->cost;
		if (answer != NULL) {
			job_answer(job, NULL, answer);
			job_post(pool, job);
			posted = true;
		}
		job->next = *dropped;
		*dropped = job;
	}
	q->tail = jp;
	return posted;
}

/*
 * Cancels the jobs of CLIENT, or of every client when ALL.  Running ones are
 * stopped and end cancelled.  Queued ones are dropped; with ANSWER each gets
 * a busy answer (for a daemon that stops, not for a client that left).
 */
static void
job_cancel_matching(struct job_pool *pool, bool all, uint64_t client, bool answer)
{
	struct job *dropped = NULL, *job;
	struct kvmrun_error err;
	bool posted;

	kvmrun_error_set(&err, KVMRUN_ERR_BUSY,
			 "kvmrund is shutting down: the run was dropped from the queue "
			 "before it started");
	job_lock(pool);
	posted = job_queue_drop(pool, &pool->runs, all, client, answer ? &err : NULL,
				&dropped);
	posted |= job_queue_drop(pool, &pool->lines, all, client, answer ? &err : NULL,
				 &dropped);
	for (unsigned int i = 0; i < pool->thread_count; i++) {
		struct job_worker *w = &pool->workers[i];

		if (w->job == NULL || (!all && w->job->client != client))
			continue;
		w->job->cancelled = true;
		/* Under the lock, so the worker cannot destroy the VM meanwhile. */
		if (w->vm != NULL)
			vm_cancel(w->vm);
	}
	job_unlock(pool);
	if (posted)
		pool->notify(pool->notify_arg);

	while ((job = dropped) != NULL) {
		dropped = job->next;
		job_free(job);
	}
}

void
job_cancel(struct job_pool *pool, uint64_t client)
{
	job_cancel_matching(pool, false, client, false);
}

void
job_cancel_all(struct job_pool *pool)
{
	job_cancel_matching(pool, true, 0, true);
}

void
job_pool_close(struct job_pool *pool)
{
	job_lock(pool);
	pool->closed = true;
	job_unlock(pool);
}

struct job_completion *
job_completions_take(struct job_pool *pool)
{
	struct job_completion *list, *done;
	uint64_t now;

	job_lock(pool);
	list = pool->done_head;
	pool->done_head = NULL;
	pool->done_tail = &pool->done_head;
	job_unlock(pool);
	now = list != NULL ? steps_now() : 0;
	for (done = list; done != NULL; done = done->next)
		done->times.loop_took = now;
	return list;
}

void
job_pool_state(struct job_pool *pool, struct job_pool_state *state)
{
	job_lock(pool);
	state->workers = pool->worker_count;
	state->queue_max = pool->queue_max;
	state->queued = pool->queued;
	state->running = pool->running;
	state->memory = pool->memory;
	job_unlock(pool);
}
