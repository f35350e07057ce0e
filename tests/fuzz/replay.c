/*
 * Runs the fuzz target on files, without libFuzzer: every file in the seed
 * corpus and the regressions (the directories given, or those under
 * $TOP_SRCDIR/tests/fuzz), one TAP case each.  A property that fails aborts,
 * so make check stops at the input that broke it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* One TAP case: the target took PATH without aborting. */
static void
replay_file(const char *path)
{
	uint8_t *data;
	size_t size;

	data = read_file(path, &size);
	if (data == NULL) {
		tap_ok(0, "%s: %s", path, strerror(errno));
		return;
	}
	LLVMFuzzerTestOneInput(data, size);
	tap_ok(1, "%s (%zu bytes)", path, size);
	free(data);
}

static void
replay_dir(const char *dir)
{
	struct dirent **names;
	char path[4096];
	int count;

	count = scandir(dir, &names, NULL, alphasort);
	if (count < 0) {
		tap_ok(0, "%s: %s", dir, strerror(errno));
		return;
	}
	for (int i = 0; i < count; i++) {
		if (names[i]->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
			replay_file(path);
		}
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
