/*
 * kvmrun-once: runs one guest image through the engine in this process and
 * exits, the one-shot way of kvm-hello-world.  The benchmark times it as
 * "a process per run"; people use it to try the engine without the daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm.h"

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: kvmrun-once [--mode real|protected|paged|long] [--ring 0|3]\n"
		"                   [--load-address ADDR] [--memory BYTES] [--timeout-ms N]\n"
		"                   [--reg NAME=VALUE]... [--quiet] IMAGE\n"
		"Runs IMAGE once in a fresh VM; prints the console, the exit and registers.\n"
		"Exit status: 0 halted, 1 ended another way, 2 usage, 3 run failed.\n");
}

static int
parse_u64(const char *option, const char *text, uint64_t *value)
{
	char *end;

	errno = 0;
	*value = strtoull(text, &end, 0);
	if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
		fprintf(stderr, "kvmrun-once: %s %s: not a number\n", option, text);
		return -1;
	}
	return 0;
}

static int
read_image(const char *path, struct kvmrun_blob *image)
{
	FILE *f = fopen(path, "rb");
	long size;

	if (f == NULL || fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) < 0) {
		fprintf(stderr, "kvmrun-once: %s: %s\n", path, strerror(errno));
		if (f != NULL)
			fclose(f);
		return -1;
	}
	image->data = malloc(size > 0 ? (size_t)size : 1);
	image->length = (size_t)size;
	if (image->data == NULL || fread(image->data, 1, image->length, f) != image->length) {
		fprintf(stderr, "kvmrun-once: %s: read failed\n", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

static int
parse_reg(const char *arg, struct kvmrun_spec *spec)
{
	const char *eq = strchr(arg, '=');
	char name[16];
	int reg;

	if (eq == NULL || (size_t)(eq - arg) >= sizeof(name)) {
		fprintf(stderr, "kvmrun-once: --reg %s: expected NAME=VALUE\n", arg);
		return -1;
	}
	memcpy(name, arg, (size_t)(eq - arg));
	name[eq - arg] = '\0';
	reg = kvmrun_name_lookup(kvmrun_reg_names, KVMRUN_REG_COUNT, name);
	if (reg < 0) {
		fprintf(stderr, "kvmrun-once: --reg %s: unknown register %s\n", arg, name);
		return -1;
	}
	if (parse_u64("--reg", eq + 1, &spec->regs[reg]) < 0)
		return -1;
	spec->regs_set |= 1u << reg;
	return 0;
}

static int
parse_args(int argc, char **argv, struct kvmrun_spec *spec, bool *quiet)
{
	static const struct option options[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "ring", required_argument, NULL, 'r' },
		{ "load-address", required_argument, NULL, 'l' },
		{ "memory", required_argument, NULL, 'M' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "reg", required_argument, NULL, 'R' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t value;
	int c, mode;

	while ((c = getopt_long(argc, argv, "qh", options, NULL)) != -1) {
		switch (c) {
		case 'm':
			mode = kvmrun_name_lookup(kvmrun_mode_names, KVMRUN_MODE_COUNT, optarg);
			if (mode < 0) {
				fprintf(stderr, "kvmrun-once: --mode %s: unknown mode\n", optarg);
				return -1;
			}
			spec->mode = mode;
			break;
		case 'r':
			if (parse_u64("--ring", optarg, &value) < 0)
				return -1;
			spec->ring = (unsigned int)value;
			break;
		case 'l':
			if (parse_u64("--load-address", optarg, &spec->image.address) < 0)
				return -1;
			break;
		case 'M':
			if (parse_u64("--memory", optarg, &spec->memory_size) < 0)
				return -1;
			break;
		case 't':
			if (parse_u64("--timeout-ms", optarg, &value) < 0 || value > UINT32_MAX)
				return -1;
			spec->timeout_ms = (uint32_t)value;
			break;
		case 'R':
			if (parse_reg(optarg, spec) < 0)
				return -1;
			break;
		case 'q':
			*quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind != argc - 1)
		return -1;
	return read_image(argv[optind], &spec->image);
}

static void
print_result(const struct kvmrun_result *result)
{
	fwrite(result->console, 1, result->console_length, stdout);
	printf("exit: %s", kvmrun_exit_reason_names[result->exit.reason]);
	if (result->exit.reason == KVMRUN_EXIT_EXCEPTION)
		printf(" vector %u", result->exit.u.exception.vector);
	printf("\n");
	for (int r = 0; r < KVMRUN_REG_COUNT; r++)
		printf("%s=0x%llx%c", kvmrun_reg_names[r], (unsigned long long)result->regs[r],
		       r % 6 == 5 || r == KVMRUN_REG_COUNT - 1 ? '\n' : ' ');
	printf("exits: %llu, run: %llu us\n", (unsigned long long)result->exits,
	       (unsigned long long)(result->run_ns / 1000));
}

int
main(int argc, char **argv)
{
	struct kvmrun_host *host;
	struct kvmrun_spec spec;
	struct kvmrun_result result;
	struct kvmrun_error err;
	bool quiet = false;
	int status;

	kvmrun_spec_init(&spec);
	kvmrun_result_init(&result);
	if (parse_args(argc, argv, &spec, &quiet) < 0) {
		usage(stderr);
		kvmrun_spec_free(&spec);
		return 2;
	}
	if (vm_host_open(KVMRUN_DEFAULT_KVM_PATH, &host, &err) < 0) {
		fprintf(stderr, "kvmrun-once: %s\n", err.message);
		kvmrun_spec_free(&spec);
		return 3;
	}
	if (vm_run_fresh(host, &spec, &result, &err) < 0) {
		fprintf(stderr, "kvmrun-once: %s: %s\n", kvmrun_errcode_names[err.code],
			err.message);
		status = 3;
	} else {
		if (!quiet)
			print_result(&result);
		status = result.exit.reason == KVMRUN_EXIT_HLT ? 0 : 1;
	}
	kvmrun_result_free(&result);
	kvmrun_spec_free(&spec);
	vm_host_close(host);
	return status;
}
