/*
 * Single-instruction test vectors as JSON: the format capture writes and
 * replay reads (README.md, "Capturing test vectors"), a superset of
 * SingleStepTests' (name, bytes, initial and final regs and ram), and
 * SingleStepTests' own v1 files for the 8086 and 80286, with the flag masks
 * of their metadata.json.  No I/O but reading a whole file.
 */
#ifndef KVMRUN_VECTORS_H
#define KVMRUN_VECTORS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvmrun.h"

#define VECTOR_BYTES_MAX 15
#define VECTOR_NAME_MAX 200	/* capstone: a 32-byte mnemonic, a space, 160 bytes of operands */

/* The state on either side of the instruction. */
struct vector_state {
	uint64_t regs[KVMRUN_REG_COUNT];
	uint32_t regs_set;			/* bit per enum kvmrun_reg */
	uint16_t segs[KVMRUN_SEG_REQUEST_COUNT];
	uint32_t segs_set;			/* bit per enum kvmrun_seg */
	struct kvmrun_xstate xstate;		/* vec_bytes and MXCSR only */
	uint64_t *ram;				/* address << 8 | byte, by address */
	size_t ram_count;
};

struct vector {
	char name[VECTOR_NAME_MAX];
	uint8_t bytes[VECTOR_BYTES_MAX];
	size_t length;
	enum kvmrun_mode mode;
	unsigned int ring;
	/* SingleStepTests' files: 16-bit names (ax, ip, flags), no changes. */
	bool sst;
	struct vector_state initial, final;
	/* Empty for a clean step (step_limit), else the exit reason's name. */
	char exit[KVMRUN_NAME_MAX];
	int exit_vector;			/* an exception's vector, else -1 */
};

void vector_free(struct vector *v);

/* Whether X has a vector register or a control field. */
bool vector_has_xstate(const struct kvmrun_xstate *x);

/* Whether STATE's ram has a byte at ADDRESS. */
bool vector_ram_has(const struct vector_state *state, uint64_t address);

/* Adds [ADDRESS, BYTE] to STATE's ram, kept in address order.  0 or -ENOMEM. */
int vector_ram_add(struct vector_state *state, uint64_t address, uint8_t byte);

/* The vector as one JSON object (capture's output), or NULL when out of memory. */
json_object *vector_to_json(const struct vector *v);

/*
 * Reads OBJ, a vector in capture's format or in SingleStepTests'.  0, or -1
 * with WHY naming the field at fault.
 */
int vector_from_json(json_object *obj, struct vector *v, char *why, size_t why_size);

/*
 * Reads all of PATH into a NUL-terminated buffer, through zlib when the
 * build has it (a .gz file or a plain one).  0, or -1 with WHY.
 */
int vector_read_file(const char *path, char **text, size_t *length, char *why,
		     size_t why_size);

/*
 * SingleStepTests' metadata.json: the flags a key's vectors define.  KEY is
 * the opcode as their file names spell it ("00", "F6.6" for group F6's
 * /6); 0xffff (every flag) when the metadata says nothing of it.
 */
uint32_t vector_flags_mask(json_object *metadata, const char *key);

#endif
