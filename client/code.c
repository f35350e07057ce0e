/*
 * kvmrun-client's --hex and --asm: guest code from the command line.  --asm
 * runs GNU as and ld (binutils) in a temporary directory, so that labels
 * and absolute addresses come out as they would in a linked image.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "code.h"
#include "json-util.h"

extern char **environ;

/* The assembler's messages kept for the user; the rest are dropped. */
#define CODE_MESSAGES_MAX 2048

int
code_from_hex(const char *text, uint8_t **data, size_t *length, char *why,
	      size_t why_size)
{
	size_t used = 0, digits;
	const char *p = text, *start;
	uint8_t *buf;

	/* Never more bytes than half the characters. */
	buf = malloc(strlen(text) / 2 + 1);
	if (buf == NULL) {
		snprintf(why, why_size, "out of memory");
		return -1;
	}
	while (*p != '\0') {
		if (strchr(" \t\r\n,", *p) != NULL) {
			p++;
			continue;
		}
		if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X') &&
		    jutil_hex_value(p[2]) >= 0)
			p += 2;
		start = p;
		for (digits = 0; jutil_hex_value(p[digits]) >= 0; digits++)
			;
		if (digits == 0) {
			snprintf(why, why_size, "'%c' is not a hex digit", *p);
			goto fail;
		}
		if (digits % 2 != 0) {
			snprintf(why, why_size,
				 "%.*s: an odd number of hex digits (two make a byte)",
				 (int)digits, start);
			goto fail;
		}
		for (size_t i = 0; i < digits; i += 2)
			buf[used++] = (uint8_t)(jutil_hex_value(p[i]) << 4 |
						jutil_hex_value(p[i + 1]));
		p += digits;
	}
	if (used == 0) {
		snprintf(why, why_size, "no bytes");
		goto fail;
	}
	*data = buf;
	*length = used;
	return 0;
fail:
	free(buf);
	return -1;
}

/*
 * Runs ARGV (found in PATH) with standard input from IN_PATH and standard
 * error into ERR_PATH: its wait status, or -errno when it could not start.
 */
static int
code_spawn(char *const argv[], const char *in_path, const char *err_path)
{
	posix_spawn_file_actions_t actions;
	int r, status;
	pid_t pid;

	r = posix_spawn_file_actions_init(&actions);
	if (r != 0)
		return -r;
	r = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, in_path, O_RDONLY,
					     0);
	if (r == 0)
		r = posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, err_path,
						     O_WRONLY | O_APPEND, 0);
	if (r == 0)
		r = posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path,
						     O_WRONLY | O_APPEND, 0);
	if (r == 0)
		r = posix_spawnp(&pid, argv[0], &actions, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&actions);
	if (r != 0)
		return -r;
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -errno;
	return status;
}

/*
 * What the tools said, from PATH, as one line: "{standard input}:3: " made
 * "line 3: ", lines joined with "; ", "Assembler messages:" left out.
 */
static void
code_messages(const char *path, char *why, size_t why_size)
{
	char line[512], *p, *nl;
	size_t used = strlen(why);
	const char *sep = used > 0 ? ": " : "";
	FILE *fp;

	fp = fopen(path, "re");
	if (fp == NULL)
		return;
	while (used + 1 < why_size && fgets(line, sizeof(line), fp) != NULL) {
		nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		p = line;
		if (strncmp(p, "{standard input}", 16) == 0) {
			p += 16;
			if (strcmp(p, ": Assembler messages:") == 0)
				continue;
			if (*p == ':')
				p++;
			snprintf(why + used, why_size - used, "%sline %s", sep, p);
		} else {
			snprintf(why + used, why_size - used, "%s%s", sep, p);
		}
		used += strlen(why + used);
		sep = "; ";
	}
	fclose(fp);
}

/* Reads all of PATH into *DATA: 0, or -errno. */
static int
code_read(const char *path, uint8_t **data, size_t *length)
{
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -errno;
	if (fstat(fd, &st) == -1) {
		r = -errno;
		goto out;
	}
	*data = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (*data == NULL) {
		r = -ENOMEM;
		goto out;
	}
	*length = 0;
	while (*length < (size_t)st.st_size) {
		n = read(fd, *data + *length, (size_t)st.st_size - *length);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n == 0 ? -EIO : -errno;
			free(*data);
			goto out;
		}
		*length += (size_t)n;
	}
out:
	(void)close(fd);
	return r;
}

/* Writes TEXT to PATH, created: 0, or -errno. */
static int
code_write(const char *path, const char *text)
{
	size_t length = strlen(text), done = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1)
		return -errno;
	while (done < length) {
		n = write(fd, text + done, length - done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			n = -errno;
			(void)close(fd);
			return (int)n;
		}
		done += (size_t)n;
	}
	return close(fd) == -1 ? -errno : 0;
}

int
code_assemble(const char *source, enum kvmrun_mode mode, uint64_t address,
	      uint8_t **data, size_t *length, char *why, size_t why_size)
{
	static const char *const files[] = { "guest.s", "guest.o", "guest.bin",
					     "messages" };
	const char *tmp = getenv("TMPDIR"), *bits;
	char dir[256], path[4][300], text_at[40], *text = NULL;
	char *as_argv[] = { "as", "--64", "-o", path[1], "-", NULL };
	char *ld_argv[] = { "ld",    "-m",    "elf_x86_64", "--oformat", "binary",
			    text_at, "-e",    text_at + 7,  "-z",	 "noexecstack",
			    "-o",    path[2], path[1],	    NULL };
	int r = -1, status;

	bits = mode == KVMRUN_MODE_REAL ? "16" : mode == KVMRUN_MODE_LONG ? "64" : "32";
	snprintf(dir, sizeof(dir), "%s/kvmrun-asm.XXXXXX",
		 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		snprintf(why, why_size, "cannot make a directory in %s: %s",
			 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", strerror(errno));
		return -1;
	}
	for (int i = 0; i < 4; i++)
		snprintf(path[i], sizeof(path[i]), "%s/%s", dir, files[i]);
	/* "-Ttext=0x...": -e takes the same address, after the "-Ttext=". */
	snprintf(text_at, sizeof(text_at), "-Ttext=0x%" PRIx64, address);
	/* The directives on the source's first line keep the line numbers its own. */
	if (asprintf(&text, ".intel_syntax noprefix; .code%s; %s\n", bits, source) <
	    0) {
		text = NULL;
		snprintf(why, why_size, "out of memory");
		goto out;
	}
	status = code_write(path[0], text);
	if (status == 0)
		status = code_write(path[3], "");
	if (status < 0) {
		snprintf(why, why_size, "%s: %s", dir, strerror(-status));
		goto out;
	}
	status = code_spawn(as_argv, path[0], path[3]);
	if (status == -ENOENT) {
		snprintf(why, why_size,
			 "needs GNU as (binutils), not found in PATH: "
			 "install binutils, or give the bytes with --hex");
		goto out;
	}
	if (status == 0) {
		status = code_spawn(ld_argv, "/dev/null", path[3]);
		if (status == -ENOENT) {
			snprintf(why, why_size,
				 "needs GNU ld (binutils), not found in PATH: "
				 "install binutils, or give the bytes with --hex");
			goto out;
		}
	}
	if (status < 0) {
		snprintf(why, why_size, "cannot run binutils: %s", strerror(-status));
		goto out;
	}
	if (status != 0) {
		why[0] = '\0';
		code_messages(path[3], why, why_size);
		if (why[0] == '\0')
			snprintf(why, why_size, "binutils failed (wait status 0x%x)",
				 (unsigned int)status);
		goto out;
	}
	status = code_read(path[2], data, length);
	if (status < 0) {
		snprintf(why, why_size, "%s: %s", path[2], strerror(-status));
		goto out;
	}
	if (*length == 0) {
		free(*data);
		snprintf(why, why_size, "no code: the source assembles to nothing");
		goto out;
	}
	r = 0;
out:
	free(text);
	for (int i = 0; i < 4; i++)
		(void)unlink(path[i]);
	(void)rmdir(dir);
	return r;
}
