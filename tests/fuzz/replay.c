/*
 * Runs the fuzz target on files, without libFuzzer: every file in the seed
 * corpus and the regressions (the directories given, or those under
 * $TOP_SRCDIR/tests/fuzz), one TAP case each.  A property that fails aborts,
 * so make check stops at the input that broke it.  Each file's name also
 * promises a verdict, which is checked: "bad-*" must be refused, any other
 * name accepted, by the decoder under the default limits.
 */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvmrun-proto.h"
#include "tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads PATH whole; NULL (with errno) when it cannot. */
static uint8_t *
read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL, *grown;
	size_t used = 0, capacity = 0, n;

	if (f == NULL)
		return NULL;
	do {
		if (used == capacity) {
			capacity = capacity == 0 ? 4096 : capacity * 2;
			grown = realloc(data, capacity);
			if (grown == NULL) {
				free(data);
				fclose(f);
				return NULL;
			}
			data = grown;
		}
		n = fread(data + used, 1, capacity - used, f);
		used += n;
	} while (n > 0);
	if (ferror(f)) {
		free(data);
		data = NULL;
	}
	fclose(f);
	*size = used;
	return data;
}

/*
 * One TAP case: the target took NAME (in DIR) without aborting, and the
 * decoder's verdict is the one the name promises.
 */
static void
replay_file(const char *dir, const char *name)
{
	bool want_refused = strncmp(name, "bad-", 4) == 0;
	struct proto_limits limits;
	struct proto_request req;
	struct kvmrun_error err;
	char path[4096];
	uint8_t *data;
	size_t size;
	bool refused;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	data = read_file(path, &size);
	if (data == NULL) {
		tap_ok(0, "%s: %s", path, strerror(errno));
		return;
	}
	LLVMFuzzerTestOneInput(data, size);
	proto_limits_default(&limits);
	refused = proto_request_parse((const char *)data, size, &limits, &req, &err) < 0;
	if (!tap_ok(refused == want_refused, "%s (%zu bytes) is %s", path, size,
		    want_refused ? "refused" : "accepted"))
		tap_diag("the decoder %s it%s%s", refused ? "refused" : "accepted",
			 refused ? ": " : "", refused ? err.message : "");
	proto_request_free(&req);
	free(data);
}

static void
replay_dir(const char *dir)
{
	struct dirent **names;
	int count;

	count = scandir(dir, &names, NULL, alphasort);
	if (count < 0) {
		tap_ok(0, "%s: %s", dir, strerror(errno));
		return;
	}
	for (int i = 0; i < count; i++) {
		if (names[i]->d_name[0] != '.')
			replay_file(dir, names[i]->d_name);
		free(names[i]);
	}
	free(names);
}

int
main(int argc, char **argv)
{
	const char *top = getenv("TOP_SRCDIR");
	char dir[4096];

	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			replay_dir(argv[i]);
		return tap_done();
	}
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus", top != NULL ? top : ".");
	replay_dir(dir);
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/regressions",
		 top != NULL ? top : ".");
	replay_dir(dir);
	return tap_done();
}
