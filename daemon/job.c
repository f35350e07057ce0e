/*
 * The worker pool.  The loop thread submits jobs and takes completions; each
 * worker takes a job off the queue, decodes its payloads, creates a VM on its
 * own thread (KVM wants that), runs it, formats the response line and posts
 * it, and only then tears the VM down, so the answer does not wait for the
 * teardown.  One mutex guards the queue, the workers' current jobs and VMs,
 * the counters and the completion list.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "log.h"

struct job {
	struct job *next;
	uint64_t client;
	uint64_t sequence;
	bool cancelled;
	struct proto_request req;
	/* Allocated at submission, so a worker can always post its answer. */
	struct job_completion *done;
};

struct job_worker {
	struct job_pool *pool;
	pthread_t thread;
	struct job *job;      /* the job being run, or NULL */
	struct kvmrun_vm *vm; /* its VM while it exists, or NULL */
};

struct job_pool {
	pthread_mutex_t lock;
	pthread_cond_t wakeup;
	struct kvmrun_host *host;
	void (*notify)(void *arg);
	void *notify_arg;
	struct job *queue_head;
	struct job **queue_tail;
	size_t queue_max;
	size_t queued;
	size_t running;
	uint64_t memory;
	bool stopping;
	struct job_completion *done_head;
	struct job_completion **done_tail;
	struct job_worker *workers;
	unsigned int worker_count;
};

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
	free(done);
}

/* Waits for a job; NULL once the pool is stopping and the queue is empty. */
static struct job *
job_take(struct job_worker *w)
{
	struct job_pool *pool = w->pool;
	struct job *job;
	int rc;

	job_lock(pool);
	while (pool->queue_head == NULL && !pool->stopping) {
		rc = pthread_cond_wait(&pool->wakeup, &pool->lock);
		if (rc != 0) {
			errno = rc;
			fatal("job", "pthread_cond_wait");
		}
	}
	job = pool->queue_head;
	if (job != NULL) {
		pool->queue_head = job->next;
		if (pool->queue_head == NULL)
			pool->queue_tail = &pool->queue_head;
		pool->queued--;
		pool->running++;
		w->job = job;
	}
	job_unlock(pool);
	return job;
}

/* Fills JOB's completion with the answer: RESULT when not NULL, else ERR. */
static void
job_answer(struct job *job, const struct kvmrun_result *result,
	   const struct kvmrun_error *err)
{
	struct job_completion *done = job->done;

	done->client = job->client;
	done->sequence = job->sequence;
	done->ok = result != NULL;
	if (result != NULL) {
		done->reason = result->exit.reason;
		done->line =
			proto_format_result(job->req.id_json, result, &done->length);
	} else {
		done->code = err->code;
		done->line = proto_format_error(job->req.id_json, err, &done->length);
	}
	if (done->line == NULL)
		log_warnx("job",
			  "client %llu: no memory for the answer to request %llu",
			  (unsigned long long)job->client,
			  (unsigned long long)job->sequence);
}

static void
job_run(struct job_worker *w, struct job *job)
{
	struct job_pool *pool = w->pool;
	uint64_t memory = job->req.spec.memory_size;
	struct kvmrun_vm *vm = NULL;
	struct kvmrun_result result;
	struct kvmrun_error err;
	int rc;

	kvmrun_result_init(&result);
	rc = proto_request_decode_payloads(&job->req, &err);
	if (rc == 0)
		rc = vm_create(pool->host, memory, &vm, &err);
	if (rc == 0) {
		job_lock(pool);
		w->vm = vm;
		/* Cancelled while the VM was being made: stop it before it starts. */
		if (job->cancelled)
			vm_cancel(vm);
		job_unlock(pool);
		rc = vm_run(vm, &job->req.spec, &result, &err);
	}
	job_answer(job, rc == 0 ? &result : NULL, &err);
	kvmrun_result_free(&result);

	job_lock(pool);
	w->vm = NULL;
	w->job = NULL;
	pool->running--;
	*pool->done_tail = job->done;
	pool->done_tail = &job->done->next;
	job->done = NULL;
	job_unlock(pool);
	pool->notify(pool->notify_arg);

	if (vm != NULL)
		vm_destroy(vm);
	job_lock(pool);
	pool->memory -= memory;
	job_unlock(pool);
	job_free(job);
}

static void *
job_worker_main(void *arg)
{
	struct job_worker *w = arg;
	struct job *job;

	while ((job = job_take(w)) != NULL)
		job_run(w, job);
	return NULL;
}

/* Wakes the workers to finish the queue and return, then joins COUNT of them. */
static void
job_workers_stop(struct job_pool *pool, unsigned int count)
{
	int rc;

	job_lock(pool);
	pool->stopping = true;
	rc = pthread_cond_broadcast(&pool->wakeup);
	job_unlock(pool);
	if (rc != 0) {
		errno = rc;
		fatal("job", "pthread_cond_broadcast");
	}
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
	for (started = 0; started < pool->worker_count; started++) {
		pool->workers[started].pool = pool;
		rc = pthread_create(&pool->workers[started].thread, NULL,
				    job_worker_main, &pool->workers[started]);
		if (rc != 0)
			break;
	}
	if (rc != 0)
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
				 "cannot start worker %u of %u: %s", started + 1,
				 pool->worker_count, strerror(rc));
	if (pthread_sigmask(SIG_SETMASK, &saved, NULL) != 0)
		fatalx("job", "cannot restore the signal mask");
	if (rc != 0) {
		job_workers_stop(pool, started);
		return -rc;
	}
	return 0;
}

int
job_pool_create(struct kvmrun_host *host, unsigned int workers, size_t queue_max,
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
	pool->workers = calloc(workers, sizeof(*pool->workers));
	if (pool->workers == NULL) {
		kvmrun_error_set(err, KVMRUN_ERR_INTERNAL, "no memory for %u workers",
				 workers);
		goto out_free_pool;
	}
	pool->host = host;
	pool->notify = notify;
	pool->notify_arg = arg;
	pool->queue_tail = &pool->queue_head;
	pool->queue_max = queue_max;
	pool->done_tail = &pool->done_head;
	pool->worker_count = workers;

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
	free(pool->workers);
out_free_pool:
	free(pool);
	return rc;
}

void
job_pool_destroy(struct job_pool *pool)
{
	struct job_completion *done, *next;

	job_workers_stop(pool, pool->worker_count);
	for (done = pool->done_head; done != NULL; done = next) {
		next = done->next;
		job_completion_free(done);
	}
	pthread_cond_destroy(&pool->wakeup);
	pthread_mutex_destroy(&pool->lock);
	free(pool->workers);
	free(pool);
}

int
job_submit(struct job_pool *pool, uint64_t client, uint64_t sequence,
	   struct proto_request *req)
{
	struct job *job;
	int rc = 0;

	job = calloc(1, sizeof(*job));
	if (job == NULL)
		return -ENOMEM;
	job->done = calloc(1, sizeof(*job->done));
	if (job->done == NULL) {
		free(job);
		return -ENOMEM;
	}
	job->client = client;
	job->sequence = sequence;
	job->req = *req;

	job_lock(pool);
	if (pool->stopping) {
		rc = -ESHUTDOWN;
	} else if (pool->queued >= pool->queue_max) {
		rc = -EBUSY;
	} else {
		*pool->queue_tail = job;
		pool->queue_tail = &job->next;
		pool->queued++;
		pool->memory += req->spec.memory_size;
		rc = pthread_cond_signal(&pool->wakeup);
		if (rc != 0) {
			errno = rc;
			fatal("job", "pthread_cond_signal");
		}
	}
	job_unlock(pool);

	if (rc < 0) {
		/* REQ still owns the request. */
		free(job->done);
		free(job);
		return rc;
	}
	memset(req, 0, sizeof(*req));
	return 0;
}

/* Cancels the jobs of CLIENT, or of every client when ALL. */
static void
job_cancel_matching(struct job_pool *pool, bool all, uint64_t client)
{
	struct job *dropped = NULL;
	struct job **jp, *job;

	job_lock(pool);
	jp = &pool->queue_head;
	while ((job = *jp) != NULL) {
		if (!all && job->client != client) {
			jp = &job->next;
			continue;
		}
		*jp = job->next;
		pool->queued--;
		pool->memory -= job->req.spec.memory_size;
		job->next = dropped;
		dropped = job;
	}
	pool->queue_tail = jp;
	for (unsigned int i = 0; i < pool->worker_count; i++) {
		struct job_worker *w = &pool->workers[i];

		if (w->job == NULL || (!all && w->job->client != client))
			continue;
		w->job->cancelled = true;
		/* Under the lock, so the worker cannot destroy the VM meanwhile. */
		if (w->vm != NULL)
			vm_cancel(w->vm);
	}
	job_unlock(pool);

	while ((job = dropped) != NULL) {
		dropped = job->next;
		job_free(job);
	}
}

void
job_cancel(struct job_pool *pool, uint64_t client)
{
	job_cancel_matching(pool, false, client);
}

void
job_cancel_all(struct job_pool *pool)
{
	job_cancel_matching(pool, true, 0);
}

struct job_completion *
job_completions_take(struct job_pool *pool)
{
	struct job_completion *list;

	job_lock(pool);
	list = pool->done_head;
	pool->done_head = NULL;
	pool->done_tail = &pool->done_head;
	job_unlock(pool);
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
