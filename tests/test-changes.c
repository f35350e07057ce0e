/*
 * The plain parts of "changes" (daemon/vm-changes.c), without KVM: a run's
 * initial bytes from its spec, the runs of differing bytes and their
 * merging across pages, and the bound with its truncation.
 */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "vm-changes.h"

#define PAGE 4096u

static uint8_t image_bytes[] = { 1, 2, 3, 4, 5, 6 };
static uint8_t region_a[] = { 0xa0, 0xa1, 0xa2, 0xa3 };
static uint8_t region_b[] = { 0xb0, 0xb1 };

/* Image at 0xffd (across a page end), region a at 0x2000, region b over a's end. */
static void
spec_with_blobs(struct kvmrun_spec *spec)
{
	static struct kvmrun_blob regions[2];

	kvmrun_spec_init(spec);
	spec->image = (struct kvmrun_blob){ 0xffd, image_bytes, sizeof(image_bytes) };
	regions[0] = (struct kvmrun_blob){ 0x2000, region_a, sizeof(region_a) };
	regions[1] = (struct kvmrun_blob){ 0x2003, region_b, sizeof(region_b) };
	spec->regions = regions;
	spec->region_count = 2;
}

static void
test_initial(void)
{
	struct kvmrun_spec spec;
	uint8_t page[PAGE], expect[PAGE];
	bool zero = true;

	spec_with_blobs(&spec);
	vm_changes_initial(&spec, 0, page, PAGE);
	memset(expect, 0, sizeof(expect));
	memcpy(expect + 0xffd, image_bytes, 3);
	tap_ok(memcmp(page, expect, PAGE) == 0, "initial bytes of page 0: zeroes and "
						"the image's first 3 bytes at its end");
	vm_changes_initial(&spec, PAGE, page, PAGE);
	memset(expect, 0, sizeof(expect));
	memcpy(expect, image_bytes + 3, 3);
	tap_ok(memcmp(page, expect, PAGE) == 0,
	       "initial bytes of page 1: the image's other 3 bytes at its start");
	vm_changes_initial(&spec, 0x2000, page, 8);
	tap_ok(page[0] == 0xa0 && page[1] == 0xa1 && page[2] == 0xa2 &&
		       page[3] == 0xb0 && page[4] == 0xb1 && page[5] == 0,
	       "a later region overwrites an earlier one where they overlap, as vm_run "
	       "copies them");
	vm_changes_initial(&spec, 0x5000, page, PAGE);
	for (size_t i = 0; i < PAGE; i++)
		zero &= page[i] == 0;
	tap_ok(zero, "a page no blob touches starts as zeroes");
}

static bool
run_is(const struct kvmrun_result *result, size_t i, uint64_t address, size_t length,
       const uint8_t *data)
{
	return i < result->change_count && result->changes[i].address == address &&
	       result->changes[i].length == length &&
	       memcmp(result->changes[i].data, data, length) == 0;
}

static void
test_runs(void)
{
	static uint8_t initial[2 * PAGE], now[2 * PAGE];
	struct vm_changes changes;
	struct kvmrun_result result;
	uint8_t expect_tail[3] = { 7, 8, 9 };
	uint8_t expect_mid[2] = { 0x55, 0x66 };

	memset(initial, 0, sizeof(initial));
	memcpy(now, initial, sizeof(now));
	now[10] = 0x55;		 /* one byte alone */
	now[11] = 0x66;		 /* ...joined by its neighbour */
	now[100] = initial[100]; /* written with the same value: no change */
	now[PAGE - 2] = 7;	 /* a run across the page end */
	now[PAGE - 1] = 8;
	now[PAGE] = 9;
	kvmrun_result_init(&result);
	vm_changes_init(&changes, 1 << 20);
	tap_ok(vm_changes_add(&changes, 0x10000, initial, now, PAGE) == 0 &&
		       vm_changes_add(&changes, 0x10000 + PAGE, initial + PAGE,
				      now + PAGE, PAGE) == 0 &&
		       vm_changes_take(&changes, &result) == 0,
	       "two pages compared");
	tap_ok(result.change_count == 2 && run_is(&result, 0, 0x1000a, 2, expect_mid) &&
		       run_is(&result, 1, 0x10ffe, 3, expect_tail) &&
		       !result.changes_truncated,
	       "two runs in address order: 2 bytes at 0x1000a, 3 bytes across the page "
	       "end at 0x10ffe (got %zu)",
	       result.change_count);
	kvmrun_result_free(&result);

	kvmrun_result_init(&result);
	vm_changes_init(&changes, 1 << 20);
	tap_ok(vm_changes_add(&changes, 0, initial, initial, PAGE) == 0 &&
		       vm_changes_take(&changes, &result) == 0 &&
		       result.changes != NULL && result.change_count == 0,
	       "a page written back unchanged gives an empty list, not none");
	kvmrun_result_free(&result);

	kvmrun_result_init(&result);
	vm_changes_init(&changes, 1 << 20);
	now[PAGE] = 0;
	tap_ok(vm_changes_add(&changes, 0, initial, now, PAGE) == 0 &&
		       vm_changes_add(&changes, 2 * PAGE, initial, now, PAGE) == 0 &&
		       vm_changes_take(&changes, &result) == 0 &&
		       result.change_count == 4 &&
		       result.changes[1].address + result.changes[1].length == PAGE &&
		       result.changes[2].address == 2 * PAGE + 10,
	       "a run at a page's end is not joined to a page that is not next to it");
	kvmrun_result_free(&result);
}

static void
test_bound(void)
{
	static uint8_t initial[PAGE], now[PAGE];
	struct vm_changes changes;
	struct kvmrun_result result;

	memset(initial, 0, sizeof(initial));
	memset(now, 0, sizeof(now));
	memset(now, 0xee, 100); /* 100 bytes at 0 */
	now[200] = 1;		/* then 1 byte at 200 */
	now[300] = 2;		/* and 1 at 300 */

	kvmrun_result_init(&result);
	vm_changes_init(&changes, KVMRUN_CHANGE_COST + 100 + KVMRUN_CHANGE_COST + 1);
	tap_ok(vm_changes_add(&changes, 0, initial, now, PAGE) == 0 &&
		       vm_changes_take(&changes, &result) == 0 &&
		       result.change_count == 2 && result.changes[0].length == 100 &&
		       result.changes[1].address == 200 && result.changes_truncated,
	       "a bound that holds two runs with their cost keeps them and says "
	       "changes_truncated for the third");
	kvmrun_result_free(&result);

	kvmrun_result_init(&result);
	vm_changes_init(&changes, KVMRUN_CHANGE_COST + 100 + KVMRUN_CHANGE_COST + 2);
	memset(now + 200, 0, 1);
	now[301] = 3;
	tap_ok(vm_changes_add(&changes, 0, initial, now, PAGE) == 0 &&
		       vm_changes_take(&changes, &result) == 0 &&
		       result.change_count == 2 && result.changes[1].address == 300 &&
		       result.changes[1].length == 2 && !result.changes_truncated,
	       "exactly at the bound: all kept, not truncated");
	kvmrun_result_free(&result);

	kvmrun_result_init(&result);
	vm_changes_init(&changes, KVMRUN_CHANGE_COST + 40);
	tap_ok(vm_changes_add(&changes, 0, initial, now, PAGE) == 0 &&
		       vm_changes_take(&changes, &result) == 0 &&
		       result.change_count == 1 && result.changes[0].length == 40 &&
		       result.changes[0].data[39] == 0xee && result.changes_truncated,
	       "a run longer than what is left is cut to it");
	kvmrun_result_free(&result);

	kvmrun_result_init(&result);
	vm_changes_init(&changes, KVMRUN_CHANGE_COST);
	tap_ok(vm_changes_add(&changes, 0, initial, now, PAGE) == 0 &&
		       vm_changes_take(&changes, &result) == 0 &&
		       result.change_count == 0 && result.changes_truncated,
	       "a bound with no room for a byte past an entry's cost keeps none, "
	       "truncated");
	kvmrun_result_free(&result);

	kvmrun_result_init(&result);
	vm_changes_init(&changes, KVMRUN_CHANGE_COST + 100 + 10);
	tap_ok(vm_changes_add(&changes, 0, initial, now, PAGE) == 0 &&
		       vm_changes_add(&changes, PAGE, initial, now, PAGE) == 0 &&
		       vm_changes_take(&changes, &result) == 0 &&
		       result.change_count == 1 && result.changes[0].length == 100 &&
		       result.changes_truncated,
	       "once truncated, later pages add nothing (no run at a higher address "
	       "after a gap)");
	kvmrun_result_free(&result);
}

int
main(void)
{
	test_initial();
	test_runs();
	test_bound();
	return tap_done();
}
