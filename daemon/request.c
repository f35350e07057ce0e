/*
 * Validates and dispatches one request line for the server.  Ping and stats
 * are answered here; a run is checked against the engine's rules and the
 * memory budget, then queued.  Errors are counted by code and runs by exit
 * reason when their answer is made, for the stats op.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "request.h"

struct request_handler {
	struct proto_limits limits;
	uint64_t max_total_memory;
	struct host_watch *hosts;
	struct kvmrun_host *pool_host; /* the host the pool was given */
	struct job_pool *pool;
	struct timespec started;
	struct proto_stats counters; /* runs, errors and connections only */
	struct proto_steps steps;
};

static struct timespec
request_now(void)
{
	struct timespec now;

	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		fatal("request", "clock_gettime(CLOCK_MONOTONIC)");
	return now;
}

int
request_handler_create(const struct proto_limits *limits, uint64_t max_total_memory,
		       struct host_watch *hosts, struct job_pool *pool,
		       struct request_handler **handlerp)
{
	struct request_handler *h;

	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return -ENOMEM;
	h->limits = *limits;
	h->max_total_memory = max_total_memory;
	h->hosts = hosts;
	h->pool_host = host_watch_current(hosts);
	h->pool = pool;
	h->started = request_now();
	*handlerp = h;
	return 0;
}

void
request_handler_destroy(struct request_handler *h)
{
	free(h);
}

static char *
request_error(struct request_handler *h, const char *id_json,
	      const struct kvmrun_error *err, size_t *lengthp)
{
	h->counters.errors[err->code]++;
	return proto_format_error(id_json, err, lengthp);
}

char *
request_format_error(struct request_handler *h, const struct kvmrun_error *err,
		     size_t *lengthp)
{
	return request_error(h, "null", err, lengthp);
}

static char *
request_stats(struct request_handler *h, const char *id_json, size_t *lengthp)
{
	struct proto_stats stats = h->counters;
	struct job_pool_state state;
	struct timespec now = request_now();

	job_pool_state(h->pool, &state);
	stats.runs_in_flight = state.running;
	stats.runs_queued = state.queued;
	stats.workers = state.workers;
	stats.memory_in_use = state.memory;
	stats.uptime_ms = (uint64_t)((int64_t)(now.tv_sec - h->started.tv_sec) * 1000 +
				     (now.tv_nsec - h->started.tv_nsec) / 1000000);
	return proto_format_stats(id_json, &stats, &h->steps, lengthp);
}

static char *
request_ping(struct request_handler *h, const char *id_json, size_t *lengthp)
{
	struct kvmrun_host *host = host_watch_get(h->hosts);
	struct proto_kvm_status kvm;

	memset(&kvm, 0, sizeof(kvm));
	kvm.available = host != NULL;
	if (host == NULL) {
		snprintf(kvm.reason, sizeof(kvm.reason), "%s",
			 host_watch_reason(h->hosts));
	} else {
		kvm.api_version = vm_host_api_version(host);
		for (int mode = 0; mode < KVMRUN_MODE_COUNT; mode++)
			kvm.mode_supported[mode] =
				vm_host_mode_unsupported(host, mode) == NULL;
		kvm.paged = vm_host_paging(host);
	}
	return proto_format_ping(id_json, PACKAGE_VERSION, &kvm, lengthp);
}

/* Whether COST more would go past --max-total-memory: -1 with ERR if so. */
static int
request_over_budget(const struct request_handler *h, const struct job_pool_state *state,
		    uint64_t cost, struct kvmrun_error *err)
{
	if (cost <= h->max_total_memory - state->memory)
		return 0;
	return kvmrun_error_set(err, KVMRUN_ERR_BUSY,
		"memory budget exhausted: %llu of %llu bytes (--max-total-memory) "
		"held by queued and running runs (guest memory and request "
		"payloads), %llu more needed; retry later",
		(unsigned long long)state->memory, (unsigned long long)h->max_total_memory,
		(unsigned long long)cost);
}

/* Checks the run in REQ and queues it; on failure ERR says why. */
static int
request_submit(struct request_handler *h, uint64_t client, uint64_t sequence,
	       struct proto_request *req, const struct steps_times *times,
	       struct kvmrun_error *err)
{
	struct kvmrun_host *host = host_watch_get(h->hosts);
	struct job_pool_state state;
	uint64_t cost;
	int rc;

	/* A bad request is bad on any host: say so before saying there is none. */
	if (vm_check_spec(host, &req->spec, err) < 0)
		return -EINVAL;
	if (host == NULL)
		return kvmrun_error_set(err, KVMRUN_ERR_UNAVAILABLE,
					"no usable KVM on this host: %s",
					host_watch_reason(h->hosts));
	if (host != h->pool_host) {
		job_pool_set_host(h->pool, host);
		h->pool_host = host;
	}
	/* Only this thread adds to the budget, so it cannot shrink under us. */
	job_pool_state(h->pool, &state);
	cost = job_cost(req);
	if (request_over_budget(h, &state, cost, err) < 0)
		return -EBUSY;
	rc = job_submit(h->pool, client, sequence, req, times);
	switch (rc) {
	case 0:
		return 0;
	case -EBUSY:
		return kvmrun_error_set(
			err, KVMRUN_ERR_BUSY,
			"run queue full: %zu runs waiting (--queue); retry later",
			state.queue_max);
	case -ESHUTDOWN:
		return kvmrun_error_set(err, KVMRUN_ERR_BUSY,
					"kvmrund is shutting down");
	default:
		return kvmrun_error_set(err, KVMRUN_ERR_INTERNAL,
					"cannot queue the run: %s", strerror(-rc));
	}
}

/*
 * Answers the parsed request REQ, or queues its run, which passed the
 * moments TIMES so far; frees what REQ holds.
 */
static int
request_dispatch(struct request_handler *h, uint64_t client, uint64_t sequence,
		 struct proto_request *req, const struct steps_times *times,
		 char **answerp, size_t *lengthp)
{
	struct kvmrun_error err;
	char *answer = NULL;

	switch (req->op) {
	case KVMRUN_OP_PING:
		answer = request_ping(h, req->id_json, lengthp);
		break;
	case KVMRUN_OP_STATS:
		answer = request_stats(h, req->id_json, lengthp);
		break;
	case KVMRUN_OP_RUN:
		if (request_submit(h, client, sequence, req, times, &err) == 0) {
			log_debug("request", "client %llu: run request %llu queued",
				  (unsigned long long)client,
				  (unsigned long long)sequence);
			return REQUEST_PENDING;
		}
		answer = request_error(h, req->id_json, &err, lengthp);
		break;
	case KVMRUN_OP_COUNT:
		fatalx("request", "the codec returned op %d", (int)req->op);
	}
	proto_request_free(req);
	if (answer == NULL)
		return -ENOMEM;
	*answerp = answer;
	return 0;
}

/* Hands LINE to a worker to parse: the loop would stall on it. */
static int
request_parse_later(struct request_handler *h, uint64_t client, uint64_t sequence,
		    const char *line, size_t length, uint64_t line_ns, char **answerp,
		    size_t *lengthp)
{
	struct job_pool_state state;
	struct kvmrun_error err;
	char *copy;
	int rc;

	job_pool_state(h->pool, &state);
	if (request_over_budget(h, &state, job_line_cost(length), &err) < 0)
		goto out_answer;
	copy = malloc(length);
	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, line, length);
	rc = job_submit_parse(h->pool, client, sequence, copy, length, line_ns);
	if (rc == 0)
		return REQUEST_PENDING;
	free(copy);
	if (rc == -ESHUTDOWN)
		kvmrun_error_set(&err, KVMRUN_ERR_BUSY, "kvmrund is shutting down");
	else
		kvmrun_error_set(&err, KVMRUN_ERR_INTERNAL, "cannot queue the line: %s",
				 strerror(-rc));
out_answer:
	*answerp = request_error(h, "null", &err, lengthp);
	return *answerp != NULL ? 0 : -ENOMEM;
}

int
request_handle_line(struct request_handler *h, uint64_t client, uint64_t sequence,
		    const char *line, size_t length, uint64_t line_ns, char **answerp,
		    size_t *lengthp)
{
	struct steps_times times = { .line = line_ns };
	struct proto_request req;
	struct kvmrun_error err;
	char *answer;

	if (length >= REQUEST_PARSE_ON_WORKER && length <= h->limits.max_line)
		return request_parse_later(h, client, sequence, line, length, line_ns,
					   answerp, lengthp);
	if (proto_request_parse(line, length, &h->limits, &req, &err) == 0) {
		times.parsed = steps_now();
		return request_dispatch(h, client, sequence, &req, &times, answerp,
					lengthp);
	}
	/* No id when even that ran out of memory. */
	answer = request_error(h, req.id_json != NULL ? req.id_json : "null", &err, lengthp);
	proto_request_free(&req);
	if (answer == NULL)
		return -ENOMEM;
	*answerp = answer;
	return 0;
}

int
request_handle_parsed(struct request_handler *h, struct job_completion *done,
		      char **answerp, size_t *lengthp)
{
	struct steps_times times = done->times;

	times.parsed = done->times.loop_took;
	if (done->ok)
		return request_dispatch(h, done->client, done->sequence, &done->request,
					&times, answerp, lengthp);
	*answerp = request_error(h, done->id_json != NULL ? done->id_json : "null",
				 &done->error, lengthp);
	return *answerp != NULL ? 0 : -ENOMEM;
}

void
request_count_completion(struct request_handler *h, const struct job_completion *done)
{
	if (done->ok) {
		h->counters.runs[done->reason]++;
		log_debug("request", "client %llu: run %llu: %s after %llu exits in %llu us",
			  (unsigned long long)done->client, (unsigned long long)done->sequence,
			  kvmrun_exit_reason_names[done->reason],
			  (unsigned long long)done->exits,
			  (unsigned long long)(done->run_ns / 1000));
	} else {
		h->counters.errors[done->error.code]++;
		log_debug("request", "client %llu: run %llu refused: %s: %s",
			  (unsigned long long)done->client, (unsigned long long)done->sequence,
			  kvmrun_errcode_names[done->error.code], done->error.message);
	}
}

void
request_count_steps(struct request_handler *h, const struct steps_times *times)
{
	steps_add(&h->steps, times);
}

void
request_connection_opened(struct request_handler *h)
{
	h->counters.connections_open++;
	h->counters.connections_total++;
}

void
request_connection_closed(struct request_handler *h)
{
	h->counters.connections_open--;
}

uint64_t
request_connections_open(const struct request_handler *h)
{
	return h->counters.connections_open;
}

uint64_t
request_runs_done(const struct request_handler *h)
{
	uint64_t done = 0;

	for (int i = 0; i < KVMRUN_EXIT_REASON_COUNT; i++)
		done += h->counters.runs[i];
	return done;
}
