/*
 * capture's placement rule: decode one instruction's addressing, then
 * choose the registers that form its addresses so that each lands on a
 * slot target in guest memory.  See vector-place.h and README.md,
 * "Capturing test vectors".
 */
#include "config.h"

#include <stdio.h>

#include "vector-place.h"

/* x86 register numbers (ModRM, SIB, REX) as kvmrun's. */
static const int place_x86_regs[16] = {
	KVMRUN_REG_RAX, KVMRUN_REG_RCX, KVMRUN_REG_RDX, KVMRUN_REG_RBX,
	KVMRUN_REG_RSP, KVMRUN_REG_RBP, KVMRUN_REG_RSI, KVMRUN_REG_RDI,
	KVMRUN_REG_R8,	KVMRUN_REG_R9,	KVMRUN_REG_R10, KVMRUN_REG_R11,
	KVMRUN_REG_R12, KVMRUN_REG_R13, KVMRUN_REG_R14, KVMRUN_REG_R15,
};

/* 16-bit addressing: ModRM rm to base and index. */
static const int place_rm16[8][2] = {
	{KVMRUN_REG_RBX, KVMRUN_REG_RSI}, {KVMRUN_REG_RBX, KVMRUN_REG_RDI},
	{KVMRUN_REG_RBP, KVMRUN_REG_RSI}, {KVMRUN_REG_RBP, KVMRUN_REG_RDI},
	{KVMRUN_REG_RSI, PLACE_NONE},	  {KVMRUN_REG_RDI, PLACE_NONE},
	{KVMRUN_REG_RBP, PLACE_NONE},	  {KVMRUN_REG_RBX, PLACE_NONE},
};

/* Opcode maps: 0 one-byte, 1 0F, 2 0F38, 3 0F3A; EVEX's 5 and 6 too. */
static bool
place_has_modrm(unsigned int map, uint8_t op)
{
	if (map == 0) {
		if (op < 0x40)
			return (op & 7) < 4;
		if (op >= 0x80 && op <= 0x8f)
			return true;
		switch (op) {
		case 0x62: case 0x63: case 0x69: case 0x6b: case 0xc0: case 0xc1:
		case 0xc4: case 0xc5: case 0xc6: case 0xc7: case 0xd0: case 0xd1:
		case 0xd2: case 0xd3: case 0xf6: case 0xf7: case 0xfe: case 0xff:
			return true;
		}
		return op >= 0xd8 && op <= 0xdf;
	}
	if (map != 1)
		return true;
	switch (op >> 4) {
	case 0x0:
		return op <= 0x03 || op == 0x0d || op == 0x0f;
	case 0x3:
	case 0x8:
		return false;
	case 0x7:
		/* emms, and vzeroupper/vzeroall under VEX */
		return op != 0x77;
	case 0xa:
		return op == 0xa3 || op == 0xa4 || op == 0xa5 || op >= 0xab;
	case 0xc:
		return op <= 0xc7;
	}
	return true;
}

/* Implicit operands of one-byte opcodes: the stack, rsi, rdi, xlat. */
static void
place_implicit(struct place_insn *insn, unsigned int map, uint8_t op, bool long_mode)
{
	if (map == 1) {
		insn->stack = op == 0xa0 || op == 0xa1 || op == 0xa8 || op == 0xa9;
		insn->dst = op == 0xf7;	/* maskmovq, maskmovdqu */
		return;
	}
	if (map != 0)
		return;
	if ((op >= 0x50 && op <= 0x5f) || op == 0x68 || op == 0x6a || op == 0x8f ||
	    op == 0x9c || op == 0x9d || op == 0xc2 || op == 0xc3 || op == 0xc8 ||
	    op == 0xc9 || (op >= 0xca && op <= 0xcf) || op == 0xe8)
		insn->stack = true;
	/* push/pop of segments, pusha/popa, far call: not in 64-bit code */
	if (!long_mode && (op == 0x06 || op == 0x07 || op == 0x0e || op == 0x16 ||
			   op == 0x17 || op == 0x1e || op == 0x1f || op == 0x60 ||
			   op == 0x61 || op == 0x9a))
		insn->stack = true;
	switch (op) {
	case 0xa4: case 0xa5: case 0xa6: case 0xa7:
		insn->src = insn->dst = true;
		break;
	case 0xaa: case 0xab: case 0xae: case 0xaf: case 0x6c: case 0x6d:
		insn->dst = true;
		break;
	case 0xac: case 0xad: case 0x6e: case 0x6f:
		insn->src = true;
		break;
	case 0xd7:
		insn->xlat = true;
		break;
	}
}

static int
place_short(char *why, size_t why_size, size_t at, const char *what)
{
	snprintf(why, why_size, "the bytes end at byte %zu, before the %s", at + 1, what);
	return -1;
}

/* Reads a little-endian signed displacement of SIZE bytes. */
static int64_t
place_disp(const uint8_t *p, unsigned int size)
{
	if (size == 1)
		return (int8_t)p[0];
	if (size == 2)
		return (int16_t)(p[0] | p[1] << 8);
	return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			 (uint32_t)p[3] << 24);
}

/* mov between the accumulator and an absolute address of the address size (moffs). */
static int
place_moffs(const uint8_t *code, size_t length, size_t p, struct place_insn *insn,
	    char *why, size_t why_size)
{
	unsigned int size = insn->addr_bits / 8;
	uint64_t address = 0;

	if (p + size > length)
		return place_short(why, why_size, length, "address");
	for (unsigned int i = 0; i < size; i++)
		address |= (uint64_t)code[p + i] << (8 * i);
	insn->has_mem = true;
	insn->disp = (int64_t)address;
	insn->length = (unsigned int)(p + size);
	return 0;
}

int
place_decode(const uint8_t *code, size_t length, enum kvmrun_mode mode,
	     struct place_insn *insn, char *why, size_t why_size)
{
	bool long_mode = mode == KVMRUN_MODE_LONG, vex = false, rep = false;
	unsigned int default_bits = long_mode ? 64 : mode == KVMRUN_MODE_REAL ? 16 : 32;
	unsigned int map = 0, rex = 0, mod, rm, disp_size = 0;
	bool addr_toggle = false;
	size_t p = 0;
	uint8_t op, modrm, sib;

	*insn = (struct place_insn){.base = PLACE_NONE, .index = PLACE_NONE, .scale = 1};
	for (;; p++) {
		if (p >= length)
			return place_short(why, why_size, p, "opcode");
		op = code[p];
		if (op == 0x67)
			addr_toggle = true;
		else if (op == 0xf2 || op == 0xf3)
			rep = true;
		else if (op == 0x2e)
			insn->cs_override = true;
		else if (op != 0x66 && op != 0x36 && op != 0x3e && op != 0x26 && op != 0x64 &&
			 op != 0x65 && op != 0xf0 && !(long_mode && op >= 0x40 && op <= 0x4f))
			break;
		/* REX counts only as the last prefix. */
		rex = long_mode && op >= 0x40 && op <= 0x4f ? op : 0;
	}
	insn->addr_bits = !addr_toggle ? default_bits
			  : default_bits == 32 ? 16 : 32;

	/* VEX and EVEX; outside 64-bit code only when the next byte's mod is 3. */
	if ((op == 0xc4 || op == 0xc5 || op == 0x62) && p + 1 < length &&
	    (long_mode || code[p + 1] >= 0xc0) && mode != KVMRUN_MODE_REAL) {
		unsigned int size = op == 0xc5 ? 2 : op == 0xc4 ? 3 : 4;

		if (p + size >= length)
			return place_short(why, why_size, p + size, "VEX/EVEX opcode");
		if (op == 0xc5) {
			map = 1;
			rex = 0x40 | ((code[p + 1] & 0x80) ? 0 : 4);
		} else {
			map = code[p + 1] & (op == 0x62 ? 0x07 : 0x1f);
			rex = 0x40 | (~code[p + 1] >> 5 & 7);
			if (!long_mode)
				rex &= ~3u;	/* X and B are ignored outside 64-bit code */
			insn->evex = op == 0x62;
		}
		vex = true;
		p += size;
		op = code[p];
	} else if (op == 0x0f) {
		if (++p >= length)
			return place_short(why, why_size, p, "opcode");
		map = 1;
		op = code[p];
		if (op == 0x38 || op == 0x3a) {
			map = op == 0x38 ? 2 : 3;
			if (++p >= length)
				return place_short(why, why_size, p, "opcode");
			op = code[p];
		}
	}
	p++;
	if (!vex || map == 1)
		place_implicit(insn, map, op, long_mode);
	insn->rep = rep && (insn->src || insn->dst) && !vex && map == 0;
	insn->vsib = vex && map == 2 &&
		     ((op >= 0x90 && op <= 0x93) || (op >= 0xa0 && op <= 0xa3) ||
		      op == 0xc6 || op == 0xc7);
	if (map == 0 && !vex && op >= 0xa0 && op <= 0xa3)
		return place_moffs(code, length, p, insn, why, why_size);
	if (!place_has_modrm(map, op)) {
		insn->length = (unsigned int)p;
		return 0;
	}
	if (p >= length)
		return place_short(why, why_size, p, "ModRM byte");
	modrm = code[p++];
	mod = modrm >> 6;
	rm = modrm & 7;
	/* call, far call and push through FF */
	if (map == 0 && op == 0xff && ((modrm >> 3 & 7) == 2 || (modrm >> 3 & 7) == 3 ||
				       (modrm >> 3 & 7) == 6))
		insn->stack = true;
	if (mod == 3) {
		insn->length = (unsigned int)p;
		return 0;
	}
	insn->has_mem = true;
	if (insn->addr_bits == 16) {
		insn->base = place_rm16[rm][0];
		insn->index = place_rm16[rm][1];
		disp_size = mod == 1 ? 1 : mod == 2 ? 2 : 0;
		if (mod == 0 && rm == 6) {
			insn->base = PLACE_NONE;
			disp_size = 2;
		}
	} else {
		disp_size = mod == 1 ? 1 : mod == 2 ? 4 : 0;
		if (rm == 4) {
			if (p >= length)
				return place_short(why, why_size, p, "SIB byte");
			sib = code[p++];
			insn->scale = 1u << (sib >> 6);
			insn->index = place_x86_regs[(sib >> 3 & 7) | (rex & 2) << 2];
			if ((sib >> 3 & 7) == 4 && !(rex & 2) && !insn->vsib)
				insn->index = PLACE_NONE;
			insn->base = place_x86_regs[(sib & 7) | (rex & 1) << 3];
			if ((sib & 7) == 5 && mod == 0) {
				insn->base = PLACE_NONE;
				disp_size = 4;
			}
		} else if (rm == 5 && mod == 0) {
			insn->base = long_mode ? PLACE_RIP : PLACE_NONE;
			disp_size = 4;
		} else {
			insn->base = place_x86_regs[rm | (rex & 1) << 3];
		}
	}
	if (p + disp_size > length)
		return place_short(why, why_size, length, "displacement");
	if (disp_size > 0)
		insn->disp = place_disp(code + p, disp_size);
	insn->length = (unsigned int)(p + disp_size);
	return 0;
}

uint64_t
place_slot_center(enum kvmrun_mode mode, unsigned int addr_bits, enum place_slot slot)
{
	uint64_t first = mode == KVMRUN_MODE_REAL || addr_bits == 16 ? PLACE_SLOT_FIRST
								     : PLACE_FLAT_SLOT_FIRST;

	return first + (uint64_t)slot * PLACE_SLOT_SPACING;
}

void
place_fill_range(const struct place_insn *insn, enum place_slot slot, uint64_t address,
		 bool df, uint64_t *from, uint64_t *to)
{
	uint64_t span = insn->rep ? PLACE_STRING_BYTES : 8;

	switch (slot) {
	case PLACE_SLOT_MEM:
		*from = address;
		*to = address + PLACE_MEM_BYTES;
		return;
	case PLACE_SLOT_STACK:
		*from = address - PLACE_STACK_BYTES;
		*to = address + PLACE_STACK_BYTES;
		return;
	default:
		*from = df ? address + 8 - span : address;
		*to = df ? address + 8 : address + span;
		return;
	}
}

uint64_t
place_linear(enum kvmrun_mode mode, bool cs_override, uint64_t offset)
{
	if (mode != KVMRUN_MODE_REAL)
		return offset;
	return (uint64_t)(cs_override ? PLACE_REAL_CODE_SEG : PLACE_REAL_DATA_SEG) * 16 +
	       (offset & 0xffff);
}

static uint64_t
place_mask(unsigned int bits)
{
	return bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
}

/* The inverse of odd K modulo 2^64, by Newton's iteration (each doubles the bits). */
static uint64_t
place_inverse(uint64_t k)
{
	uint64_t x = k;

	for (int i = 0; i < 5; i++)
		x *= 2 - k * x;
	return x;
}

/* Sets the low bits (MASK) of *REG to VALUE, keeping the rest. */
static void
place_set(uint64_t *reg, uint64_t mask, uint64_t value)
{
	*reg = (*reg & ~mask) | (value & mask);
}

/* The ModRM operand: base and index chosen so the sum hits T (or just below). */
static void
place_modrm(const struct place_insn *insn, uint64_t t, uint64_t regs[KVMRUN_REG_COUNT])
{
	uint64_t mask = place_mask(insn->addr_bits), k, want;

	if (insn->vsib || insn->base == PLACE_RIP)
		return;
	if (insn->base >= 0 && insn->index == insn->base) {
		k = 1 + insn->scale;
		if (k % 2 == 0) {
			t -= (t - (uint64_t)insn->disp) & 1;
			want = (t - (uint64_t)insn->disp) & mask;
			place_set(&regs[insn->base], mask, want >> 1);
		} else {
			want = (t - (uint64_t)insn->disp) * place_inverse(k);
			place_set(&regs[insn->base], mask, want);
		}
	} else if (insn->base >= 0) {
		want = t - (uint64_t)insn->disp;
		if (insn->index >= 0)
			want -= regs[insn->index] * insn->scale;
		place_set(&regs[insn->base], mask, want);
	} else if (insn->index >= 0) {
		t -= (t - (uint64_t)insn->disp) & (insn->scale - 1);
		want = ((t - (uint64_t)insn->disp) & mask) / insn->scale;
		place_set(&regs[insn->index], mask, want);
	}
}

void
place_registers(const struct place_insn *insn, enum kvmrun_mode mode,
		const uint64_t targets[PLACE_SLOT_COUNT], uint64_t regs[KVMRUN_REG_COUNT])
{
	uint64_t mask = place_mask(insn->addr_bits);
	/* The stack goes by the mode's stack width, not the address size. */
	uint64_t stack_mask = place_mask(mode == KVMRUN_MODE_LONG   ? 64
					 : mode == KVMRUN_MODE_REAL ? 16
								    : 32);

	if (insn->stack)
		place_set(&regs[KVMRUN_REG_RSP], stack_mask, targets[PLACE_SLOT_STACK]);
	if (insn->src)
		place_set(&regs[KVMRUN_REG_RSI], mask, targets[PLACE_SLOT_SRC]);
	if (insn->dst)
		place_set(&regs[KVMRUN_REG_RDI], mask, targets[PLACE_SLOT_DST]);
	if (insn->rep)
		place_set(&regs[KVMRUN_REG_RCX], mask,
			  regs[KVMRUN_REG_RCX] % PLACE_REP_COUNT_MAX);
	if (insn->xlat)
		place_set(&regs[KVMRUN_REG_RBX], mask,
			  targets[PLACE_SLOT_MEM] - (regs[KVMRUN_REG_RAX] & 0xff));
	if (insn->has_mem)
		place_modrm(insn, targets[PLACE_SLOT_MEM], regs);
}

uint64_t
place_effective_address(const struct place_insn *insn,
			const uint64_t regs[KVMRUN_REG_COUNT], uint64_t code_end)
{
	uint64_t ea = (uint64_t)insn->disp;

	if (insn->base == PLACE_RIP)
		ea += code_end;
	else if (insn->base >= 0)
		ea += regs[insn->base];
	if (insn->index >= 0 && !insn->vsib)
		ea += regs[insn->index] * insn->scale;
	return ea & place_mask(insn->addr_bits);
}
