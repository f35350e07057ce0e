/*
 * The CPU state beyond the general registers in the protocol (PROTOCOL.md,
 * "CPU state"): the request's xstate, msrs, cpuid, return and real-mode
 * descriptor caches, and the answer's returned state, both ways.  The hooks
 * request.c and response.c call; internal to protocol/.
 */
#ifndef KVMRUN_STATE_H
#define KVMRUN_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kvmrun-run.h"

/*
 * Request fields into *STATE, allocated at the first value given (an empty
 * object or array allocates nothing, so plain runs stay without one).
 */
int proto_state_parse_xstate(struct json_object *val, struct kvmrun_cpu_state **state,
			     struct kvmrun_error *err);
int proto_state_parse_msrs(struct json_object *val, struct kvmrun_cpu_state **state,
			   struct kvmrun_error *err);
/* The entries of the array VAL, whose length the caller checked against its limit. */
int proto_state_parse_cpuid(struct json_object *val, struct kvmrun_cpu_state **state,
			    struct kvmrun_error *err);
/* "return": enum kvmrun_state_part bits into *RETURNS. */
int proto_state_parse_returns(struct json_object *val, uint32_t *returns,
			      struct kvmrun_error *err);
/*
 * The object form of segment SEG (at PATH) in a request of MODE: its
 * selector into *SELECTOR, its cache into (*STATE)->segments[SEG].
 */
int proto_state_parse_cache(struct json_object *val, const char *path,
			    enum kvmrun_mode mode, enum kvmrun_seg seg,
			    uint16_t *selector, struct kvmrun_cpu_state **state,
			    struct kvmrun_error *err);

/* The client's request: xstate, msrs, cpuid and return, those SPEC has. */
void proto_state_add_request(struct json_object *root, const struct kvmrun_spec *spec,
			     bool *failed);
/* A segment with its cache, as a request gives it. */
struct json_object *proto_state_new_cache(uint16_t selector,
					  const struct kvmrun_descriptor *cache,
					  bool *failed);

/* The answer: each part result->returned names (and result->state holds). */
void proto_state_add_result(struct json_object *root,
			    const struct kvmrun_result *result, bool *failed);
/* "descriptors": limit and attributes in each segment of SREGS, gdt and idt. */
void proto_state_add_descriptors(struct json_object *sregs,
				 const struct kvmrun_result *result, bool *failed);
/* Reads the parts an answer ROOT has back into result->state and ->returned. */
int proto_state_get_result(struct json_object *root, struct kvmrun_result *result,
			   struct kvmrun_error *err);

#endif
