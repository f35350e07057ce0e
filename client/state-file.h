/*
 * kvmrun-client run --state FILE: a JSON object holding any of the
 * request's "xstate", "msrs", "cpuid" and "segments", read by the codec's
 * own request parser, so that a file means what the same fields mean in a
 * request line (PROTOCOL.md, "CPU state").
 */
#ifndef KVMRUN_STATE_FILE_H
#define KVMRUN_STATE_FILE_H

#include <stddef.h>

#include "kvmrun.h"

/*
 * TEXT (LENGTH bytes, a file's whole content) into SPEC, whose mode is
 * final: the state into spec->state (which must be NULL), the selectors of
 * "segments" into spec->segments.  1 when the file has "segments", else 0;
 * -1 with ERR naming the field at fault.
 */
int state_file_parse(const char *text, size_t length, struct kvmrun_spec *spec,
		     struct kvmrun_error *err);

#endif
