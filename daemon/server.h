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
	size_t max_output;	    /* --max-output: unsent answer bytes per client */
	uint32_t read_timeout_ms;   /* --read-timeout-ms: to finish a begun line */
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
 * Serves until SIGTERM or SIGINT, then stops accepting, finishes the runs in
 * flight, delivers their answers and returns.  A second signal returns at
 * once, cancelling what still runs.
 */
void server_run(struct server *server);

void server_destroy(struct server *server);

#endif
