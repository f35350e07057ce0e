/*
 * kvmrun-client replay FILE...: runs test vectors (capture's, or
 * SingleStepTests' v1 files for the 8086 and 80286) against the daemon and
 * says per opcode how many agree, with the first disagreement.  Exit status
 * 0 only when every vector agrees.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "vector-place.h"
#include "vector-run.h"
#include "vectors.h"

#define REPLAY_COMMAND "replay"
#define REPLAY_WHY_MAX 256
/* The flags an 8086 or 80286 defines (vector-run.c starts runs with these only). */
#define REPLAY_SST_FLAGS 0x0fd5u

/* Per opcode (a SingleStepTests file) or encoding (capture's bytes). */
struct replay_key {
	char key[VECTOR_NAME_MAX];
	char name[VECTOR_NAME_MAX];
	uint64_t total, agree;
	const char *first_path;		/* the file of the first disagreement */
	char first[REPLAY_WHY_MAX + VECTOR_NAME_MAX + 32];
};

struct replay {
	const char *socket_path;
	const char *metadata_path;
	json_object *metadata;
	uint64_t window;
	bool progress;
	/* The file being replayed. */
	const char *path;
	char stem[VECTOR_NAME_MAX];	/* SingleStepTests' key: "00", "F6.6" */
	json_object **items;
	size_t item_count;
	json_object *tree;		/* a whole-file array, else NULL */
	struct vector *slots;
	struct replay_key *keys;
	size_t key_count;
	uint64_t total, agree;
};

enum {
	REPLAY_OPT_METADATA = 256,
	REPLAY_OPT_WINDOW,
	REPLAY_OPT_NO_PROGRESS,
};

static const struct option replay_options[] = {
	{"metadata", required_argument, NULL, REPLAY_OPT_METADATA},
	{"window", required_argument, NULL, REPLAY_OPT_WINDOW},
	{"no-progress", no_argument, NULL, REPLAY_OPT_NO_PROGRESS},
	{"socket", required_argument, NULL, 's'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static const char replay_usage_text[] =
	"Usage: " VECTOR_NAME " replay [OPTION]... FILE...\n"
	"\n"
	"Runs test vectors against the daemon and prints, per opcode, how many\n"
	"agree and the first disagreement.  FILE holds vectors as capture writes\n"
	"them (one JSON object per line, or a JSON array), or is a\n"
	"SingleStepTests v1 file for the 8086 or 80286 (a JSON array"
#ifdef HAVE_ZLIB
	", or .json.gz"
#endif
	").\n"
	"\n"
	"  --metadata FILE       SingleStepTests' metadata.json: compare only the\n"
	"                        flags it defines for each opcode\n"
	"  --window N            runs in flight at once (default 64)\n"
	"  --no-progress         no progress bar (there is one only on a terminal)\n"
	"  -s, --socket PATH     the daemon's socket\n"
	"\n"
	"Exit status: 0 every vector agrees, 1 some did not, 2 usage error or an\n"
	"unreadable file, 3 the daemon refused a run, 4 no daemon, 5 the daemon has\n"
	"no usable /dev/kvm.\n";

/* The file name without directories, .gz and .json: SingleStepTests' opcode. */
static void
replay_stem(const char *path, char *stem, size_t size)
{
	const char *base = strrchr(path, '/');
	size_t length;

	base = base != NULL ? base + 1 : path;
	snprintf(stem, size, "%s", base);
	length = strlen(stem);
	if (length > 3 && strcmp(stem + length - 3, ".gz") == 0)
		stem[length -= 3] = '\0';
	if (length > 5 && strcmp(stem + length - 5, ".json") == 0)
		stem[length - 5] = '\0';
}

static int
replay_add_item(struct replay *rp, json_object *item)
{
	json_object **items;

	items = reallocarray(rp->items, rp->item_count + 1, sizeof(*items));
	if (items == NULL)
		return -1;
	rp->items = items;
	items[rp->item_count++] = item;
	return 0;
}

/* The file's vectors as JSON objects: a whole array, or one object per line. */
static int
replay_load(struct replay *rp, const char *path)
{
	struct json_tokener *tok;
	char why[REPLAY_WHY_MAX], *text, *line, *end;
	size_t length;
	unsigned long number = 0;
	json_object *item;
	int status = VECTOR_EXIT_USAGE;

	if (vector_read_file(path, &text, &length, why, sizeof(why)) < 0) {
		client_error("%s", why);
		return VECTOR_EXIT_USAGE;
	}
	tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
	if (tok == NULL) {
		client_error("out of memory");
		goto out;
	}
	line = text + strspn(text, " \t\r\n");
	if (*line == '[') {
		rp->tree = json_tokener_parse_ex(tok, line, (int)(length - (size_t)(line - text)));
		if (rp->tree == NULL || !json_object_is_type(rp->tree, json_type_array)) {
			client_error("%s: not a JSON array: %s", path,
				     json_tokener_error_desc(json_tokener_get_error(tok)));
			goto out;
		}
		for (size_t i = 0; i < json_object_array_length(rp->tree); i++)
			if (replay_add_item(rp, json_object_array_get_idx(rp->tree, i)) < 0)
				goto nomem;
		status = VECTOR_EXIT_OK;
		goto out;
	}
	for (line = text; *line != '\0'; line = *end != '\0' ? end + 1 : end) {
		end = line + strcspn(line, "\n");
		number++;
		if (line[strspn(line, " \t\r")] == '\n' || line[strspn(line, " \t\r")] == '\0')
			continue;
		json_tokener_reset(tok);
		item = json_tokener_parse_ex(tok, line, (int)(end - line));
		if (item == NULL) {
			client_error("%s:%lu: not a JSON object: %s", path, number,
				     json_tokener_error_desc(json_tokener_get_error(tok)));
			goto out;
		}
		if (replay_add_item(rp, item) < 0) {
			json_object_put(item);
			goto nomem;
		}
	}
	status = VECTOR_EXIT_OK;
	goto out;
nomem:
	client_error("out of memory");
out:
	if (tok != NULL)
		json_tokener_free(tok);
	free(text);
	return status;
}

static void
replay_unload(struct replay *rp)
{
	if (rp->tree != NULL)
		json_object_put(rp->tree);
	else
		for (size_t i = 0; i < rp->item_count; i++)
			json_object_put(rp->items[i]);
	free(rp->items);
	rp->items = NULL;
	rp->item_count = 0;
	rp->tree = NULL;
}

/* The key a vector counts under: its file's opcode, or its encoding's bytes. */
static struct replay_key *
replay_key(struct replay *rp, const struct vector *v)
{
	char key[VECTOR_NAME_MAX];
	struct replay_key *keys;
	size_t used = 0;

	if (v->sst) {
		snprintf(key, sizeof(key), "%s", rp->stem);
	} else {
		for (size_t i = 0; i < v->length; i++)
			used += (size_t)snprintf(key + used, sizeof(key) - used, "%s%02x",
						 i > 0 ? " " : "", v->bytes[i]);
	}
	for (size_t i = rp->key_count; i-- > 0;)
		if (strcmp(rp->keys[i].key, key) == 0)
			return &rp->keys[i];
	keys = reallocarray(rp->keys, rp->key_count + 1, sizeof(*keys));
	if (keys == NULL)
		return NULL;
	rp->keys = keys;
	keys[rp->key_count] = (struct replay_key){0};
	snprintf(keys[rp->key_count].key, sizeof(keys->key), "%s", key);
	snprintf(keys[rp->key_count].name, sizeof(keys->name), "%s", v->name);
	return &keys[rp->key_count++];
}

static int
replay_make(void *ctx, uint64_t i, unsigned int slot, struct kvmrun_spec *spec)
{
	struct replay *rp = ctx;
	struct vector *v = &rp->slots[slot];
	char why[REPLAY_WHY_MAX];

	vector_free(v);
	if (vector_from_json(rp->items[i], v, why, sizeof(why)) < 0 ||
	    vector_spec(v, spec, why, sizeof(why)) < 0) {
		client_error("%s: vector %" PRIu64 ": %s", rp->path, i, why);
		return -VECTOR_EXIT_USAGE;
	}
	return 0;
}

/* Compares what the run gave with V's final state; false with WHY at the first difference. */
static bool
replay_compare(const struct replay *rp, const struct vector *v,
	       const struct kvmrun_result *r, char *why, size_t size)
{
	const struct vector_state *init = &v->initial, *fin = &v->final;
	const char *exit = vector_exit_name(&r->exit);
	uint64_t expected, mask;

	if (v->exit[0] == '\0' ? strcmp(exit, "step_limit") != 0 &&
					 !(v->sst && strcmp(exit, "hlt") == 0)
			       : strcmp(exit, v->exit) != 0) {
		snprintf(why, size, "exit %s, expected %s", exit,
			 v->exit[0] != '\0' ? v->exit : "a clean step (step_limit)");
		return false;
	}
	if (v->exit_vector >= 0 && r->exit.reason == KVMRUN_EXIT_EXCEPTION &&
	    r->exit.u.exception.vector != v->exit_vector) {
		snprintf(why, size, "exception vector %u, expected %d",
			 r->exit.u.exception.vector, v->exit_vector);
		return false;
	}
	for (int i = 0; i < KVMRUN_REG_COUNT; i++) {
		if (!(init->regs_set & 1u << i))
			continue;
		expected = fin->regs_set & 1u << i ? fin->regs[i] : init->regs[i];
		mask = v->sst ? 0xffff : UINT64_MAX;
		if (v->sst && i == KVMRUN_REG_RFLAGS)
			mask &= REPLAY_SST_FLAGS & vector_flags_mask(rp->metadata, rp->stem);
		if ((r->regs[i] ^ expected) & mask) {
			snprintf(why, size, "%s 0x%" PRIx64 ", expected 0x%" PRIx64,
				 kvmrun_reg_name((enum kvmrun_reg)i), r->regs[i] & mask,
				 expected & mask);
			return false;
		}
	}
	for (int s = 0; s < KVMRUN_SEG_REQUEST_COUNT; s++) {
		if (!(init->segs_set & 1u << s))
			continue;
		expected = fin->segs_set & 1u << s ? fin->segs[s] : init->segs[s];
		if (r->sregs.segments[s].selector != expected) {
			snprintf(why, size, "%s 0x%x, expected 0x%" PRIx64,
				 kvmrun_seg_name((enum kvmrun_seg)s),
				 r->sregs.segments[s].selector, expected);
			return false;
		}
	}
	if (vector_has_xstate(&init->xstate)) {
		const struct kvmrun_xstate *got = r->state != NULL ? &r->state->xstate : NULL;

		if (got == NULL) {
			snprintf(why, size, "the daemon returned no xstate");
			return false;
		}
		for (int n = 0; n < KVMRUN_VEC_COUNT; n++) {
			const struct kvmrun_xstate *want =
				fin->xstate.vec_bytes[n] != 0 ? &fin->xstate : &init->xstate;

			if (want->vec_bytes[n] != 0 &&
			    memcmp(got->vec[n], want->vec[n], want->vec_bytes[n]) != 0) {
				snprintf(why, size, "%s%d differs",
					 want->vec_bytes[n] == 16 ? "xmm" : "ymm", n);
				return false;
			}
		}
		expected = fin->xstate.fields_set & 1u << KVMRUN_XF_MXCSR ? fin->xstate.mxcsr
									 : init->xstate.mxcsr;
		if ((init->xstate.fields_set & 1u << KVMRUN_XF_MXCSR) && got->mxcsr != expected) {
			snprintf(why, size, "mxcsr 0x%x, expected 0x%" PRIx64, got->mxcsr, expected);
			return false;
		}
	}
	if (v->sst) {
		/* The dumps hold the final ram's bytes, in address order. */
		size_t k = 0;

		for (size_t i = 0; i < fin->ram_count; i++) {
			uint64_t address = fin->ram[i] >> 8;

			while (k < r->dump_count &&
			       address >= r->dumps[k].address + r->dumps[k].length)
				k++;
			if (k == r->dump_count || address < r->dumps[k].address) {
				snprintf(why, size, "no dump of 0x%" PRIx64, address);
				return false;
			}
			if (r->dumps[k].data[address - r->dumps[k].address] !=
			    (uint8_t)fin->ram[i]) {
				snprintf(why, size, "ram[0x%" PRIx64 "] 0x%02x, expected 0x%02x",
					 address,
					 r->dumps[k].data[address - r->dumps[k].address],
					 (unsigned int)(fin->ram[i] & 0xff));
				return false;
			}
		}
		return true;
	}
	/* capture's vectors: the changed bytes are exactly the final ram. */
	size_t listed = 0;

	for (size_t k = 0; k < r->change_count; k++) {
		for (size_t b = 0; b < r->changes[k].length; b++, listed++) {
			uint64_t address = r->changes[k].address + b;

			if (listed >= fin->ram_count || fin->ram[listed] >> 8 != address) {
				snprintf(why, size, "ram[0x%" PRIx64 "] changed to 0x%02x, "
					 "which the vector does not list", address,
					 r->changes[k].data[b]);
				return false;
			}
			if ((uint8_t)fin->ram[listed] != r->changes[k].data[b]) {
				snprintf(why, size, "ram[0x%" PRIx64 "] 0x%02x, expected 0x%02x",
					 address, r->changes[k].data[b],
					 (unsigned int)(fin->ram[listed] & 0xff));
				return false;
			}
		}
	}
	if (listed < fin->ram_count) {
		snprintf(why, size, "ram[0x%" PRIx64 "] unchanged, expected 0x%02x",
			 fin->ram[listed] >> 8, (unsigned int)(fin->ram[listed] & 0xff));
		return false;
	}
	return true;
}

static int
replay_take(void *ctx, uint64_t i, unsigned int slot, const struct kvmrun_result *r)
{
	struct replay *rp = ctx;
	const struct vector *v = &rp->slots[slot];
	struct replay_key *key = replay_key(rp, v);
	char why[REPLAY_WHY_MAX];
	bool agree;

	if (key == NULL) {
		client_error("out of memory");
		return -VECTOR_EXIT_USAGE;
	}
	agree = replay_compare(rp, v, r, why, sizeof(why));
	key->total++;
	rp->total++;
	if (agree) {
		key->agree++;
		rp->agree++;
	} else if (key->first[0] == '\0') {
		key->first_path = rp->path;
		snprintf(key->first, sizeof(key->first), "#%" PRIu64 "%s%s%s: %s",
			 i, v->name[0] != '\0' ? " (" : "", v->name,
			 v->name[0] != '\0' ? ")" : "", why);
	}
	return 0;
}

static int
replay_parse_args(struct replay *rp, int argc, char **argv)
{
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":s:h", replay_options, NULL)) != -1) {
		switch (opt) {
		case 's':
			rp->socket_path = optarg;
			break;
		case REPLAY_OPT_METADATA:
			rp->metadata_path = optarg;
			break;
		case REPLAY_OPT_WINDOW:
			if (vector_parse_count(REPLAY_COMMAND, "window", optarg, 1, 65536, &rp->window) < 0)
				return -1;
			break;
		case REPLAY_OPT_NO_PROGRESS:
			rp->progress = false;
			break;
		case 'h':
			fputs(replay_usage_text, stdout);
			return 1;
		case ':':
			return vector_usage(REPLAY_COMMAND, "option %s needs a value", argv[optind - 1]), -1;
		default:
			return vector_usage(REPLAY_COMMAND, "unknown option %s", argv[optind - 1]), -1;
		}
	}
	if (optind == argc)
		return vector_usage(REPLAY_COMMAND, "replay needs a FILE of vectors"), -1;
	return 0;
}

static int
replay_metadata(struct replay *rp)
{
	char why[REPLAY_WHY_MAX], *text;
	size_t length;

	if (vector_read_file(rp->metadata_path, &text, &length, why, sizeof(why)) < 0) {
		client_error("%s", why);
		return -1;
	}
	rp->metadata = json_tokener_parse(text);
	free(text);
	if (rp->metadata == NULL || !json_object_is_type(rp->metadata, json_type_object)) {
		client_error("%s: not a JSON object (SingleStepTests' metadata.json)",
			     rp->metadata_path);
		return -1;
	}
	return 0;
}

static void
replay_report(const struct replay *rp)
{
	for (size_t i = 0; i < rp->key_count; i++) {
		const struct replay_key *k = &rp->keys[i];

		printf("%s%s%s%s: %" PRIu64 "/%" PRIu64 " agree\n", k->key,
		       k->name[0] != '\0' && strcmp(k->name, k->key) != 0 ? " (" : "",
		       k->name[0] != '\0' && strcmp(k->name, k->key) != 0 ? k->name : "",
		       k->name[0] != '\0' && strcmp(k->name, k->key) != 0 ? ")" : "",
		       k->agree, k->total);
		if (k->first[0] != '\0')
			printf("  first disagreement: %s %s\n", k->first_path, k->first);
	}
	printf("%" PRIu64 " vectors, %" PRIu64 " agree, %" PRIu64 " disagree\n", rp->total,
	       rp->agree, rp->total - rp->agree);
}

int
vector_replay_main(int argc, char **argv)
{
	struct replay rp = {.window = VECTOR_WINDOW_DEFAULT, .progress = true};
	struct vector_pipeline pl;
	int status, r;

	r = replay_parse_args(&rp, argc, argv);
	if (r != 0)
		return r > 0 ? VECTOR_EXIT_OK : VECTOR_EXIT_USAGE;
	if (rp.metadata_path != NULL && replay_metadata(&rp) < 0) {
		status = VECTOR_EXIT_USAGE;
		goto out;
	}
	rp.slots = calloc(rp.window, sizeof(*rp.slots));
	if (rp.slots == NULL) {
		client_error("out of memory");
		status = VECTOR_EXIT_USAGE;
		goto out;
	}
	status = VECTOR_EXIT_OK;
	for (int f = optind; f < argc && status == VECTOR_EXIT_OK; f++) {
		rp.path = argv[f];
		replay_stem(rp.path, rp.stem, sizeof(rp.stem));
		status = replay_load(&rp, rp.path);
		if (status == VECTOR_EXIT_OK && rp.item_count == 0) {
			client_error("%s: no vectors", rp.path);
			status = VECTOR_EXIT_USAGE;
		} else if (status == VECTOR_EXIT_OK) {
			pl = (struct vector_pipeline){
				.socket_path = rp.socket_path, .window = (unsigned int)rp.window,
				.progress = rp.progress, .count = rp.item_count, .ctx = &rp,
				.make = replay_make, .take = replay_take,
			};
			status = vector_pipeline_run(&pl);
		}
		replay_unload(&rp);
	}
	if (status == VECTOR_EXIT_OK) {
		replay_report(&rp);
		if (rp.agree != rp.total)
			status = VECTOR_EXIT_DISAGREE;
	}
	if (fflush(stdout) == EOF || ferror(stdout)) {
		client_error("stdout: write error");
		status = VECTOR_EXIT_USAGE;
	}
out:
	for (uint64_t i = 0; rp.slots != NULL && i < rp.window; i++)
		vector_free(&rp.slots[i]);
	free(rp.slots);
	free(rp.keys);
	if (rp.metadata != NULL)
		json_object_put(rp.metadata);
	return status;
}
