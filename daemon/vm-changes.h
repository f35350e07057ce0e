/*
 * What a run changed in guest memory ("changes": PROTOCOL.md): the bytes of
 * the pages KVM saw written compared with what the run started with, merged
 * into ordered runs of differing bytes and bounded.  Plain functions of the
 * spec and of bytes; no KVM (vm-observe.c feeds them the dirty pages).
 */
#ifndef KVMRUN_VM_CHANGES_H
#define KVMRUN_VM_CHANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvmrun-run.h"

/*
 * Fills OUT with the LENGTH bytes at guest-physical ADDRESS as SPEC's run
 * starts with them: zeroes, then the image, then the regions in their order,
 * as vm_run copies them in (the engine's reserved area is not included).
 */
void vm_changes_initial(const struct kvmrun_spec *spec, uint64_t address, uint8_t *out,
			size_t length);

/* The runs found so far, and what of their bound they have used. */
struct vm_changes {
	struct kvmrun_blob *runs;
	size_t count;
	size_t capacity;
	uint64_t used;	/* bytes plus KVMRUN_CHANGE_COST per run */
	uint64_t max;	/* spec->changes_max */
	bool truncated; /* runs past MAX were left out, or cut */
};

void vm_changes_init(struct vm_changes *changes, uint64_t max);

/*
 * Adds the bytes where NOW differs from INITIAL (LENGTH bytes each, at guest
 * ADDRESS): each maximal run of differing bytes, joined to the last run when
 * it starts where that one ends.  Calls come in increasing address order.
 * Past the bound, a run is cut to what fits and the rest of this and every
 * later call is dropped, with TRUNCATED set.  0, or -ENOMEM.
 */
int vm_changes_add(struct vm_changes *changes, uint64_t address, const uint8_t *initial,
		   const uint8_t *now, size_t length);

/* Hands the runs to RESULT (changes, change_count, changes_truncated). */
int vm_changes_take(struct vm_changes *changes, struct kvmrun_result *result);

void vm_changes_free(struct vm_changes *changes);

#endif
