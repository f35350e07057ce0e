/*
 * The event loop: accepts clients on the listening socket, frames their
 * request lines, hands each to the request handler, and writes the answers
 * back in request order as the workers finish.  The only libev user.
 */
#ifndef KVMRUN_SERVER_H
#define KVMRUN_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvmrun-proto.h"
#include "host.h"

struct server;

struct server_config {
	const char *socket_path;    /* for the status line */
	unsigned int workers;	    /* --workers */
	unsigned int prepared_vms;  /* --prepared-vms, per worker */
	size_t queue;		    /* --queue */
	uint64_t max_connections;   /* --max-connections */
	uint64_t max_total_memory;  /* --max-total-memory */
	size_t max_output;	    /* --max-output: unsent answers before reading pauses */
	size_t max_buffers;	    /* --max-buffers: all clients' input and answers */
	uint32_t read_timeout_ms;   /* --read-timeout-ms: to finish a begun line */
	uint32_t write_timeout_ms;  /* --write-timeout-ms: to read some answer */
	struct proto_limits limits; /* --max-line, --max-memory, --max-timeout-ms */
	uint64_t watchdog_usec;	    /* systemd's WATCHDOG_USEC, or 0 */
	/* --allow-uid and --allow-group; with both empty, anyone may connect. */
	id_t *allow_uids;
	size_t allow_uid_count;
	id_t *allow_gids;
	size_t allow_gid_count;
};

/*
 * Sets up the loop on the listening socket LISTEN_FD (not owned) and starts
 * the workers.  -errno and ERR on failure.
 */
int server_create(const struct server_config *cfg, struct host_watch *hosts,
		  int listen_fd, struct server **serverp, struct kvmrun_error *err);

/*
 * Serves until SIGTERM or SIGINT, then drains: finishes the runs in flight
 * and delivers their answers, answering new work and connections busy, and
 * returns.  A second signal cancels what still runs (answered cancelled or
 * busy), a third returns at once.
 */
void server_run(struct server *server);

void server_destroy(struct server *server);

#endif
