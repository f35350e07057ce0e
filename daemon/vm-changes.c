/*
 * The changes of a run: its initial bytes from the spec, the runs of
 * differing bytes, their bound.  See vm-changes.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vm-changes.h"

/* Copies the part of BLOB that falls in [ADDRESS, ADDRESS+LENGTH) to OUT. */
static void
overlay(const struct kvmrun_blob *blob, uint64_t address, uint8_t *out, size_t length)
{
	uint64_t start = blob->address > address ? blob->address : address;
	uint64_t blob_end = blob->address + blob->length, end = address + length;

	if (blob_end < end)
		end = blob_end;
	if (start < end)
		memcpy(out + (start - address), blob->data + (start - blob->address),
		       end - start);
}

void
vm_changes_initial(const struct kvmrun_spec *spec, uint64_t address, uint8_t *out,
		   size_t length)
{
	memset(out, 0, length);
	overlay(&spec->image, address, out, length);
	for (size_t i = 0; i < spec->region_count; i++)
		overlay(&spec->regions[i], address, out, length);
}

void
vm_changes_init(struct vm_changes *changes, uint64_t max)
{
	memset(changes, 0, sizeof(*changes));
	changes->max = max;
}

/* Appends LENGTH bytes at ADDRESS to the last run, or as a new one. */
static int
append(struct vm_changes *changes, uint64_t address, const uint8_t *bytes,
       size_t length)
{
	struct kvmrun_blob *last =
		changes->count > 0 ? &changes->runs[changes->count - 1] : NULL;
	uint64_t room = changes->max - changes->used;
	uint8_t *grown;

	if (last == NULL || last->address + last->length != address) {
		if (room <= KVMRUN_CHANGE_COST) {
			changes->truncated = true;
			return 0;
		}
		if (changes->count == changes->capacity) {
			size_t capacity =
				changes->capacity > 0 ? 2 * changes->capacity : 16;
			struct kvmrun_blob *runs =
				realloc(changes->runs, capacity * sizeof(*runs));

			if (runs == NULL)
				return -ENOMEM;
			changes->runs = runs;
			changes->capacity = capacity;
		}
		last = &changes->runs[changes->count++];
		*last = (struct kvmrun_blob){ .address = address };
		changes->used += KVMRUN_CHANGE_COST;
		room -= KVMRUN_CHANGE_COST;
	}
	if (length > room) {
		length = (size_t)room;
		changes->truncated = true;
	}
	grown = realloc(last->data, last->length + length);
	if (grown == NULL)
		return -ENOMEM;
	memcpy(grown + last->length, bytes, length);
	last->data = grown;
	last->length += length;
	changes->used += length;
	return 0;
}

int
vm_changes_add(struct vm_changes *changes, uint64_t address, const uint8_t *initial,
	       const uint8_t *now, size_t length)
{
	size_t i = 0;

	while (i < length && !changes->truncated) {
		size_t start;
		int rc;

		while (i < length && initial[i] == now[i])
			i++;
		start = i;
		while (i < length && initial[i] != now[i])
			i++;
		if (i > start &&
		    (rc = append(changes, address + start, now + start, i - start)) < 0)
			return rc;
	}
	return 0;
}

int
vm_changes_take(struct vm_changes *changes, struct kvmrun_result *result)
{
	/* Non-NULL even when empty: the answer has "changes" when it was asked. */
	if (changes->runs == NULL &&
	    (changes->runs = calloc(1, sizeof(*changes->runs))) == NULL)
		return -ENOMEM;
	result->changes = changes->runs;
	result->change_count = changes->count;
	result->changes_truncated = changes->truncated;
	memset(changes, 0, sizeof(*changes));
	return 0;
}

void
vm_changes_free(struct vm_changes *changes)
{
	for (size_t i = 0; i < changes->count; i++)
		free(changes->runs[i].data);
	free(changes->runs);
	memset(changes, 0, sizeof(*changes));
}
