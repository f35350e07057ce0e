/*
 * Where capture puts an instruction's code and data: it reads just enough
 * of one x86 instruction (prefixes, REX/VEX/EVEX, opcode map, ModRM, SIB,
 * displacement) to know which registers form its addresses, then chooses
 * those registers so that every address lands in a slot of guest memory
 * that capture fills with random bytes.  Pure functions, no I/O: the
 * placement rule is unit-tested (tests/test-capture-place.c).
 */
#ifndef KVMRUN_VECTOR_PLACE_H
#define KVMRUN_VECTOR_PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvmrun.h"

/* What is not a register in place_insn's base and index. */
#define PLACE_NONE (-1)
#define PLACE_RIP (-2)

/* The slots, by what addresses them. */
enum place_slot {
	PLACE_SLOT_MEM,		/* the ModRM memory operand (or xlat's [rbx+al]) */
	PLACE_SLOT_STACK,	/* rsp: push, pop, call, ret... */
	PLACE_SLOT_SRC,		/* rsi of a string instruction */
	PLACE_SLOT_DST,		/* rdi of a string instruction, maskmov */
	PLACE_SLOT_COUNT
};

/*
 * The guest memory capture uses, per mode.  Offsets are within the data
 * segment (real mode: DS = ES = SS = FS = GS = PLACE_REAL_DATA_SEG, code at
 * PLACE_REAL_CODE_SEG:0000; other modes: flat, so offset = address, code at
 * PLACE_CODE_ADDRESS).  Slot N's targets lie in [center, center +
 * PLACE_ALIGN_SPREAD), center = first + N * PLACE_SLOT_SPACING.
 */
#define PLACE_MEMORY_SIZE (2u << 20)
#define PLACE_CODE_ADDRESS 0x10000u
#define PLACE_REAL_CODE_SEG 0x1000u
#define PLACE_REAL_DATA_SEG 0x4000u
#define PLACE_SLOT_FIRST 0x800u		/* real mode, 16-bit addressing: below 64 KiB */
#define PLACE_FLAT_SLOT_FIRST 0x40800u	/* other modes: addresses */
#define PLACE_SLOT_SPACING 0x2000u
#define PLACE_ALIGN_SPREAD 64u
#define PLACE_REP_COUNT_MAX 16u		/* rcx of a rep string instruction: 0..15 */

/*
 * The random bytes around an address, by slot: the memory operand gets the
 * 64 bytes from its address (a zmm register), the stack 64 bytes either side
 * of rsp, a string operand 8 bytes, or with rep all that 15 elements of 8
 * bytes take in the direction DF says.
 */
#define PLACE_MEM_BYTES 64u
#define PLACE_STACK_BYTES 64u
#define PLACE_STRING_BYTES (PLACE_REP_COUNT_MAX * 8u)

/* One instruction, as far as its addresses go. */
struct place_insn {
	unsigned int length;	/* bytes up to the end of the displacement */
	unsigned int addr_bits;	/* 16, 32 or 64 */
	bool evex;		/* its disp8 is scaled by a size the decoder does not know */
	bool has_mem;		/* a ModRM memory operand */
	int base, index;	/* enum kvmrun_reg, PLACE_NONE or PLACE_RIP */
	unsigned int scale;	/* 1, 2, 4 or 8 */
	int64_t disp;		/* sign-extended */
	bool vsib;		/* index is a vector register: not placed */
	bool stack;		/* uses the stack implicitly */
	bool src, dst;		/* string instruction through rsi, rdi */
	bool rep;		/* with a rep prefix: rcx counts */
	bool xlat;		/* [rbx + al] */
	bool cs_override;	/* a 0x2e prefix: real mode reads through CS */
};

/*
 * Reads the instruction at CODE (LENGTH bytes) as MODE runs it.  0, or -1
 * with WHY (a message naming the byte at fault) for bytes that end before
 * the instruction's addressing does.
 */
int place_decode(const uint8_t *code, size_t length, enum kvmrun_mode mode,
		 struct place_insn *insn, char *why, size_t why_size);

/*
 * The offset a slot's targets start at in MODE at an address size of
 * ADDR_BITS: below 64 KiB in real mode and for 16-bit addressing, where
 * offsets have 16 bits.
 */
uint64_t place_slot_center(enum kvmrun_mode mode, unsigned int addr_bits,
			   enum place_slot slot);

/*
 * The offsets [*FROM, *TO) around ADDRESS (of SLOT) that capture fills with
 * random bytes, DF being the direction flag.
 */
void place_fill_range(const struct place_insn *insn, enum place_slot slot,
		      uint64_t address, bool df, uint64_t *from, uint64_t *to);

/* The linear address of data offset OFFSET in MODE, through CS when CS_OVERRIDE. */
uint64_t place_linear(enum kvmrun_mode mode, bool cs_override, uint64_t offset);

/*
 * Sets the registers INSN addresses memory with in REGS (whose other
 * values stay) so that its addresses hit the slots' targets: the ModRM
 * operand at TARGETS[PLACE_SLOT_MEM] (within 8 bytes below it when a scale
 * must divide), rsp, rsi and rdi at theirs, rcx below PLACE_REP_COUNT_MAX
 * for a rep string instruction, al's 0..255 past rbx for xlat.  Register
 * bits no address uses keep their random values.
 */
void place_registers(const struct place_insn *insn, enum kvmrun_mode mode,
		     const uint64_t targets[PLACE_SLOT_COUNT], uint64_t regs[KVMRUN_REG_COUNT]);

/*
 * The offset the ModRM operand of INSN addresses with REGS, computed from
 * the decoded fields at the instruction's address size; CODE_END is the
 * offset after the instruction, for rip-relative ones.
 */
uint64_t place_effective_address(const struct place_insn *insn,
				 const uint64_t regs[KVMRUN_REG_COUNT], uint64_t code_end);

#endif
