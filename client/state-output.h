/*
 * A returned CPU state (struct kvmrun_cpu_state) for people: vector
 * registers in hex and as float lanes, x87 registers in hex and as decimal
 * values, the control fields, MSRs, descriptor caches and the CPUID table.
 */
#ifndef KVMRUN_STATE_OUTPUT_H
#define KVMRUN_STATE_OUTPUT_H

#include <stdint.h>
#include <stdio.h>

#include "kvmrun.h"

/*
 * The parts of STATE that RETURNED (enum kvmrun_state_part bits, as in
 * result->returned) names, on FP.  Each 128 bits of a vector register are
 * one line: the hex digits most significant first, then its lanes as 4
 * f32 and 2 f64, lane 0 (the least significant) first.
 */
void state_output(FILE *fp, const struct kvmrun_cpu_state *state, uint32_t returned);

#endif
