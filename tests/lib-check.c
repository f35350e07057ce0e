/*
 * lib-check: libkvmrun's calls one at a time, for tests/test-lib.sh.  Each
 * command prints one line per answer or failure ("ok ...", "error CODE:
 * message") for the script to compare; it exits 0 unless it was misused.
 *
 *   lib-check run SOCK IMAGE [MODE [RING [MEMORY]]]   kvmrun_run
 *   lib-check ping SOCK [RESPONSE_MS]                 kvmrun_ping
 *   lib-check stats SOCK                              kvmrun_stats
 *   lib-check line SOCK LINE                          kvmrun_submit_line, kvmrun_next
 *   lib-check pipeline SOCK IMAGE COUNT WINDOW        runs, pings and stats, pipelined
 *   lib-check busy SOCK                               a ping while another connection
 * is open lib-check invalid SOCK                            calls that cannot be made
 * now lib-check callbacks SOCK IMAGE recv|feed          the callback transport,
 * non-blocking lib-check bench SOCK IMAGE COUNT WINDOW           COUNT runs pipelined:
 * runs per second
 *
 * SOCK "" is the default: $KVMRUN_SOCKET, then the built-in path.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "kvmrun.h"

static int
usage(void)
{
	fputs("usage: lib-check "
	      "run|ping|stats|line|pipeline|busy|invalid|callbacks|bench "
	      "SOCK ...\n",
	      stderr);
	return 2;
}

static void
print_error(const char *what, const struct kvmrun_error *err)
{
	printf("%serror %s: %s\n", what, kvmrun_strerror(err->code), err->message);
}

static struct kvmrun_conn *
open_conn(const char *path)
{
	struct kvmrun_conn *conn = kvmrun_open(path[0] != '\0' ? path : NULL);

	if (conn == NULL) {
		perror("kvmrun_open");
		exit(1);
	}
	return conn;
}

static void
print_result(const struct kvmrun_result *result)
{
	printf("ok %s console=", kvmrun_exit_reason_name(result->exit.reason));
	fwrite(result->console, 1, result->console_length, stdout);
	printf(" rip=0x%llx\n", (unsigned long long)result->regs[KVMRUN_REG_RIP]);
}

static void
print_answer(const struct kvmrun_answer *answer)
{
	const char *op =
		answer->op < KVMRUN_OP_COUNT ? kvmrun_op_name(answer->op) : "-";

	if (answer->error.code != KVMRUN_OK)
		printf("%s error %s\n", op, kvmrun_strerror(answer->error.code));
	else if (answer->op == KVMRUN_OP_RUN)
		printf("run ok %s\n",
		       kvmrun_exit_reason_name(answer->result.exit.reason));
	else
		printf("%s ok\n", op);
}

/* Reads PATH into SPEC's image: 0, or -1 with a message. */
static int
load_image(const char *path, struct kvmrun_spec *spec)
{
	FILE *fp = fopen(path, "rb");
	long size;

	if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) <= 0 ||
	    fseek(fp, 0, SEEK_SET) != 0) {
		perror(path);
		if (fp != NULL)
			fclose(fp);
		return -1;
	}
	spec->image.data = malloc((size_t)size);
	if (spec->image.data == NULL ||
	    fread(spec->image.data, 1, (size_t)size, fp) != (size_t)size) {
		perror(path);
		fclose(fp);
		return -1;
	}
	spec->image.length = (size_t)size;
	fclose(fp);
	return 0;
}

static int
cmd_run(struct kvmrun_conn *conn, int argc, char **argv)
{
	struct kvmrun_result result;
	struct kvmrun_spec spec;

	kvmrun_spec_init(&spec);
	if (argc < 1 || load_image(argv[0], &spec) < 0)
		return 2;
	for (int m = 0; argc > 1 && m < KVMRUN_MODE_COUNT; m++)
		if (strcmp(kvmrun_mode_name((enum kvmrun_mode)m), argv[1]) == 0)
			spec.mode = (enum kvmrun_mode)m;
	if (argc > 2)
		spec.ring = (unsigned int)atoi(argv[2]);
	if (argc > 3)
		spec.memory_size = strtoull(argv[3], NULL, 0);
	if (kvmrun_run(conn, &spec, &result) < 0)
		print_error("", kvmrun_last_error(conn));
	else
		print_result(&result);
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
	return 0;
}

static int
cmd_ping(struct kvmrun_conn *conn, int argc, char **argv)
{
	struct kvmrun_ping ping;

	if (argc > 0)
		kvmrun_set_timeouts(conn, 5000, atoi(argv[0]));
	if (kvmrun_ping(conn, &ping) < 0)
		print_error("", kvmrun_last_error(conn));
	else
		printf("ok protocol %d kvm %s\n", ping.protocol,
		       ping.kvm_available ? "available" : "unavailable");
	return 0;
}

static int
cmd_stats(struct kvmrun_conn *conn)
{
	struct kvmrun_stats stats;

	if (kvmrun_stats(conn, &stats) < 0)
		print_error("", kvmrun_last_error(conn));
	else
		printf("ok workers %llu unavailable %llu\n",
		       (unsigned long long)stats.workers,
		       (unsigned long long)stats.errors[KVMRUN_ERR_UNAVAILABLE]);
	return 0;
}

static int
cmd_line(struct kvmrun_conn *conn, int argc, char **argv)
{
	struct kvmrun_answer answer;

	if (argc < 1)
		return 2;
	if (kvmrun_submit_line(conn, argv[0], strlen(argv[0])) < 0 ||
	    kvmrun_next(conn, &answer) < 0) {
		print_error("", kvmrun_last_error(conn));
		return 0;
	}
	print_answer(&answer);
	kvmrun_answer_free(&answer);
	return 0;
}

/* Request I of a batch: a run, a ping, a run, stats, and again. */
static enum kvmrun_op
batch_op(int i)
{
	static const enum kvmrun_op ops[] = { KVMRUN_OP_RUN, KVMRUN_OP_PING,
					      KVMRUN_OP_RUN, KVMRUN_OP_STATS };

	return ops[i % 4];
}

static int
take_answer(struct kvmrun_conn *conn)
{
	struct kvmrun_answer answer;

	if (kvmrun_next(conn, &answer) < 0) {
		print_error("", kvmrun_last_error(conn));
		return -1;
	}
	print_answer(&answer);
	kvmrun_answer_free(&answer);
	return 0;
}

/*
 * COUNT requests through a window of WINDOW: each submit that finds the
 * window full is told so (printed once), then an answer is taken.
 */
static int
cmd_pipeline(struct kvmrun_conn *conn, int argc, char **argv)
{
	struct kvmrun_spec spec;
	bool told = false;
	int count, sent = 0;
	enum kvmrun_op op;

	kvmrun_spec_init(&spec);
	if (argc < 3 || load_image(argv[0], &spec) < 0)
		return 2;
	count = atoi(argv[1]);
	if (kvmrun_set_window(conn, (unsigned int)atoi(argv[2])) < 0) {
		print_error("", kvmrun_last_error(conn));
		return 0;
	}
	while (sent < count) {
		op = batch_op(sent);
		if (kvmrun_submit(conn, op, op == KVMRUN_OP_RUN ? &spec : NULL) == 0) {
			sent++;
			continue;
		}
		if (kvmrun_last_error(conn)->code != KVMRUN_ERR_INVALID) {
			print_error("submit ", kvmrun_last_error(conn));
			goto out;
		}
		if (!told)
			printf("window full at %u pending\n", kvmrun_pending(conn));
		told = true;
		if (take_answer(conn) < 0)
			goto out;
	}
	while (kvmrun_pending(conn) > 0)
		if (take_answer(conn) < 0)
			break;
out:
	kvmrun_spec_free(&spec);
	return 0;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * COUNT runs of IMAGE kept WINDOW deep: the throughput libkvmrun reaches, to
 * set beside kvmrun-bench's "daemon" rows on a host with KVM.
 */
static int
cmd_bench(struct kvmrun_conn *conn, int argc, char **argv)
{
	struct kvmrun_answer answer;
	struct kvmrun_spec spec;
	long count, sent = 0, taken = 0, halted = 0;
	double start;

	kvmrun_spec_init(&spec);
	if (argc < 3 || load_image(argv[0], &spec) < 0)
		return 2;
	count = atol(argv[1]);
	if (kvmrun_set_window(conn, (unsigned int)atoi(argv[2])) < 0 ||
	    kvmrun_connect(conn) < 0) {
		print_error("", kvmrun_last_error(conn));
		return 0;
	}
	start = now_s();
	while (taken < count) {
		if (sent < count && kvmrun_submit(conn, KVMRUN_OP_RUN, &spec) == 0) {
			sent++;
			continue;
		}
		if (kvmrun_next(conn, &answer) < 0) {
			print_error("", kvmrun_last_error(conn));
			break;
		}
		halted += answer.error.code == KVMRUN_OK &&
			  answer.result.exit.reason == KVMRUN_EXIT_HLT;
		kvmrun_answer_free(&answer);
		taken++;
	}
	printf("runs %ld, window %s, halted %ld, %.0f runs/s\n", taken, argv[2], halted,
	       (double)taken / (now_s() - start));
	kvmrun_spec_free(&spec);
	return 0;
}

static int
cmd_busy(const char *path)
{
	struct kvmrun_conn *first = open_conn(path), *second = open_conn(path);
	struct kvmrun_ping ping;

	if (kvmrun_connect(first) < 0)
		print_error("first ", kvmrun_last_error(first));
	if (kvmrun_ping(second, &ping) < 0)
		print_error("", kvmrun_last_error(second));
	else
		printf("ok\n");
	kvmrun_close(second);
	kvmrun_close(first);
	return 0;
}

static int
cmd_invalid(struct kvmrun_conn *conn)
{
	struct kvmrun_answer answer;

	if (kvmrun_next(conn, &answer) < 0)
		print_error("next with nothing pending: ", kvmrun_last_error(conn));
	if (kvmrun_set_window(conn, 0) < 0)
		print_error("window 0: ", kvmrun_last_error(conn));
	if (kvmrun_submit(conn, KVMRUN_OP_RUN, NULL) < 0)
		print_error("run without a spec: ", kvmrun_last_error(conn));
	return 0;
}

/* The callback transport: the program owns a non-blocking socket. */
struct loop {
	int fd;
	bool feed; /* hand bytes over with kvmrun_feed, not through recv */
	unsigned int sends, recvs;
};

static int
loop_send(struct kvmrun_conn *conn, const void *data, size_t length, void *user_data)
{
	struct loop *loop = user_data;
	const char *p = data;
	struct pollfd pfd = { .fd = loop->fd, .events = POLLOUT };
	ssize_t n;

	(void)conn;
	loop->sends++;
	while (length > 0) {
		n = send(loop->fd, p, length, MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			poll(&pfd, 1, 5000);
			continue;
		}
		if (n == -1)
			return -errno;
		p += n;
		length -= (size_t)n;
	}
	return 0;
}

static ssize_t
loop_recv(struct kvmrun_conn *conn, void *data, size_t length, void *user_data)
{
	struct loop *loop = user_data;
	ssize_t n;

	(void)conn;
	loop->recvs++;
	n = recv(loop->fd, data, length, 0);
	return n == -1 ? -errno : n;
}

static int
cmd_callbacks(const char *path, int argc, char **argv)
{
	struct kvmrun_io io = { .send = loop_send, .recv = loop_recv };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct loop loop = { .fd = -1 };
	struct kvmrun_answer answer;
	struct kvmrun_conn *conn;
	struct kvmrun_spec spec;
	unsigned int wouldblock = 0;
	struct pollfd pfd;
	char buf[4096];
	ssize_t n;

	kvmrun_spec_init(&spec);
	if (argc < 2 || load_image(argv[0], &spec) < 0)
		return 2;
	loop.feed = strcmp(argv[1], "feed") == 0;
	if (loop.feed)
		io.recv = NULL;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	loop.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (loop.fd == -1 ||
	    connect(loop.fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		perror(path);
		return 1;
	}
	conn = kvmrun_open_io(&io, &loop);
	if (conn == NULL || kvmrun_set_window(conn, 2) < 0) {
		perror("kvmrun_open_io");
		return 1;
	}
	printf("fd %d path \"%s\"\n", kvmrun_fd(conn), kvmrun_socket_path(conn));
	if (kvmrun_submit(conn, KVMRUN_OP_PING, NULL) < 0 ||
	    kvmrun_submit(conn, KVMRUN_OP_RUN, &spec) < 0)
		print_error("submit ", kvmrun_last_error(conn));
	if (kvmrun_submit(conn, KVMRUN_OP_STATS, NULL) < 0)
		print_error("a third submit: ", kvmrun_last_error(conn));
	/* The event loop: poll when libkvmrun has no whole answer yet. */
	while (kvmrun_pending(conn) > 0) {
		if (kvmrun_next(conn, &answer) == 0) {
			print_answer(&answer);
			kvmrun_answer_free(&answer);
			continue;
		}
		if (kvmrun_last_error(conn)->code != KVMRUN_ERR_WOULDBLOCK) {
			print_error("", kvmrun_last_error(conn));
			break;
		}
		wouldblock++;
		pfd = (struct pollfd){ .fd = loop.fd, .events = POLLIN };
		if (poll(&pfd, 1, 10000) != 1) {
			printf("no answer within 10 s\n");
			break;
		}
		if (!loop.feed)
			continue;
		n = recv(loop.fd, buf, sizeof(buf), 0);
		if (n >= 0 && kvmrun_feed(conn, buf, (size_t)n) < 0)
			print_error("feed ", kvmrun_last_error(conn));
	}
	printf("sends %u, would block %s, recv calls %s\n", loop.sends,
	       wouldblock > 0 ? "yes" : "no", loop.recvs > 0 ? "yes" : "no");
	kvmrun_close(conn);
	close(loop.fd);
	kvmrun_spec_free(&spec);
	return 0;
}

int
main(int argc, char **argv)
{
	struct kvmrun_conn *conn;
	const char *cmd;
	int status;

	if (argc < 3)
		return usage();
	cmd = argv[1];
	if (strcmp(cmd, "busy") == 0)
		return cmd_busy(argv[2]);
	if (strcmp(cmd, "callbacks") == 0)
		return cmd_callbacks(argv[2], argc - 3, argv + 3);
	conn = open_conn(argv[2]);
	if (strcmp(cmd, "run") == 0)
		status = cmd_run(conn, argc - 3, argv + 3);
	else if (strcmp(cmd, "ping") == 0)
		status = cmd_ping(conn, argc - 3, argv + 3);
	else if (strcmp(cmd, "stats") == 0)
		status = cmd_stats(conn);
	else if (strcmp(cmd, "line") == 0)
		status = cmd_line(conn, argc - 3, argv + 3);
	else if (strcmp(cmd, "pipeline") == 0)
		status = cmd_pipeline(conn, argc - 3, argv + 3);
	else if (strcmp(cmd, "invalid") == 0)
		status = cmd_invalid(conn);
	else if (strcmp(cmd, "bench") == 0)
		status = cmd_bench(conn, argc - 3, argv + 3);
	else
		status = usage();
	kvmrun_close(conn);
	fflush(stdout);
	return status;
}
