/*
 * Guest code given on kvmrun-client's command line rather than in a file:
 * --hex bytes, and --asm source assembled by GNU as and ld (binutils).
 */
#ifndef KVMRUN_CODE_H
#define KVMRUN_CODE_H

#include <stddef.h>
#include <stdint.h>

#include "kvmrun.h"

/*
 * The bytes TEXT spells in hex ("b0 41 e6 e9 f4", "b041e6e9f4"; spaces,
 * tabs, newlines, commas and 0x prefixes allowed between bytes): 0 with
 * *DATA to free, or -1 with WHY.
 */
int code_from_hex(const char *text, uint8_t **data, size_t *length, char *why,
		  size_t why_size);

/*
 * SOURCE (Intel syntax without % prefixes; ';' separates instructions)
 * assembled for MODE (16-bit code for real mode, 32-bit for protected and
 * paged, 64-bit for long) and linked at ADDRESS into a flat image: 0 with
 * *DATA to free, or -1 with WHY, the assembler's messages among it.
 */
int code_assemble(const char *source, enum kvmrun_mode mode, uint64_t address,
		  uint8_t **data, size_t *length, char *why, size_t why_size);

#endif
