/*
 * capture and replay without a guest: the instruction decoder capture
 * places addresses with, the placement rule itself (every effective address
 * of every ModRM form lands on its slot, in each mode), and the vector JSON
 * both ways, SingleStepTests' files and metadata included.
 */
#include "config.h"

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "tap.h"
#include "vector-place.h"
#include "vectors.h"

/* A fixed generator, so a failure repeats (splitmix64). */
static uint64_t test_state = 42;

static uint64_t
test_random(void)
{
	uint64_t z = (test_state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static int
test_decode(const char *hex, enum kvmrun_mode mode, struct place_insn *insn)
{
	uint8_t bytes[16];
	size_t n = 0;
	unsigned int byte;
	char why[128];

	for (const char *p = hex; *p != '\0' && n < sizeof(bytes); p += 2) {
		if (*p == ' ')
			p++;
		sscanf(p, "%2x", &byte);
		bytes[n++] = (uint8_t)byte;
	}
	if (place_decode(bytes, n, mode, insn, why, sizeof(why)) < 0) {
		tap_diag("%s: %s", hex, why);
		return -1;
	}
	return 0;
}

/* Decoded forms and what the SDM says of their addressing. */
static const struct test_form {
	const char *hex;
	enum kvmrun_mode mode;
	bool has_mem;
	int base, index;
	unsigned int scale;
	int64_t disp;
	unsigned int bits;
	const char *what;
} test_forms[] = {
	{ "4801d8", KVMRUN_MODE_LONG, false, 0, 0, 1, 0, 64, "add rax, rbx" },
	{ "660f380000", KVMRUN_MODE_LONG, true, KVMRUN_REG_RAX, PLACE_NONE, 1, 0, 64,
	  "pshufb xmm0, [rax]" },
	{ "488b448d10", KVMRUN_MODE_LONG, true, KVMRUN_REG_RBP, KVMRUN_REG_RCX, 4, 16,
	  64, "mov rax, [rbp+rcx*4+0x10]" },
	{ "8b0578563412", KVMRUN_MODE_LONG, true, PLACE_RIP, PLACE_NONE, 1, 0x12345678,
	  64, "mov eax, [rip+0x12345678]" },
	{ "428b0425f0ffffff", KVMRUN_MODE_LONG, true, PLACE_NONE, KVMRUN_REG_R12, 1,
	  -16, 64, "REX.X makes SIB index 4 r12, no base" },
	{ "418b4424fe", KVMRUN_MODE_LONG, true, KVMRUN_REG_R12, PLACE_NONE, 1, -2, 64,
	  "mov eax, [r12-2]: base r12 through SIB" },
	{ "678b04d8", KVMRUN_MODE_LONG, true, KVMRUN_REG_RAX, KVMRUN_REG_RBX, 8, 0, 32,
	  "0x67: 32-bit addressing in 64-bit code" },
	{ "c4e2790000", KVMRUN_MODE_LONG, true, KVMRUN_REG_RAX, PLACE_NONE, 1, 0, 64,
	  "vpshufb xmm0, xmm0, [rax] (VEX 0F38)" },
	{ "c4c1785803", KVMRUN_MODE_LONG, true, KVMRUN_REG_R11, PLACE_NONE, 1, 0, 64,
	  "vaddps xmm0, xmm0, [r11] (VEX.B)" },
	{ "62f17c48584001", KVMRUN_MODE_LONG, true, KVMRUN_REG_RAX, PLACE_NONE, 1, 1,
	  64, "vaddps zmm0, zmm0, [rax+disp8] (EVEX)" },
	{ "8b4208", KVMRUN_MODE_REAL, true, KVMRUN_REG_RBP, KVMRUN_REG_RSI, 1, 8, 16,
	  "real mode mov ax, [bp+si+8]" },
	{ "8b060010", KVMRUN_MODE_REAL, true, PLACE_NONE, PLACE_NONE, 1, 0x1000, 16,
	  "real mode mov ax, [0x1000]" },
	{ "678b0458", KVMRUN_MODE_REAL, true, KVMRUN_REG_RAX, KVMRUN_REG_RBX, 2, 0, 32,
	  "real mode 0x67: mov ax, [eax+ebx*2]" },
	{ "8b0500100000", KVMRUN_MODE_PROTECTED, true, PLACE_NONE, PLACE_NONE, 1,
	  0x1000, 32, "protected mode [disp32] is absolute, not rip-relative" },
	{ "c506", KVMRUN_MODE_PROTECTED, true, KVMRUN_REG_RSI, PLACE_NONE, 1, 0, 32,
	  "protected mode c5 with mod 0 is lds, not VEX" },
	{ "c5f858c1", KVMRUN_MODE_PROTECTED, false, 0, 0, 1, 0, 32,
	  "protected mode c5 with mod 3 is VEX" },
	{ "0f05", KVMRUN_MODE_LONG, false, 0, 0, 1, 0, 64, "syscall has no ModRM" },
	{ "48a10008040000000000", KVMRUN_MODE_LONG, true, PLACE_NONE, PLACE_NONE, 1,
	  0x40800, 64, "mov rax, [moffs64]: an absolute address" },
	{ "a20010", KVMRUN_MODE_REAL, true, PLACE_NONE, PLACE_NONE, 1, 0x1000, 16,
	  "real mode mov [moffs16], al" },
	{ "0f7700", KVMRUN_MODE_LONG, false, 0, 0, 1, 0, 64, "emms has no ModRM" },
	{ "c5f87700", KVMRUN_MODE_LONG, false, 0, 0, 1, 0, 64,
	  "vzeroupper has no ModRM" },
};

static void
test_form(const struct test_form *f)
{
	struct place_insn insn;

	if (test_decode(f->hex, f->mode, &insn) < 0) {
		tap_ok(0, "%s (%s) decodes", f->what, f->hex);
		return;
	}
	if (!tap_ok(insn.has_mem == f->has_mem &&
			    (!f->has_mem || (insn.base == f->base && insn.index == f->index &&
					     insn.scale == f->scale && insn.disp == f->disp &&
					     insn.addr_bits == f->bits)),
		    "%s (%s): its addressing", f->what, f->hex))
		tap_diag("mem %d base %d index %d scale %u disp %" PRId64 " bits %u", insn.has_mem,
			 insn.base, insn.index, insn.scale, insn.disp, insn.addr_bits);
}

static void
test_decoder(void)
{
	struct place_insn insn;
	uint8_t bytes[4] = {0x8b, 0x80, 0x00, 0x00};
	char why[128];

	for (size_t i = 0; i < sizeof(test_forms) / sizeof(test_forms[0]); i++)
		test_form(&test_forms[i]);

	tap_ok(test_decode("50", KVMRUN_MODE_LONG, &insn) == 0 && insn.stack && !insn.has_mem,
	       "push rax uses the stack");
	tap_ok(test_decode("ff1500000000", KVMRUN_MODE_LONG, &insn) == 0 && insn.stack &&
		       insn.base == PLACE_RIP,
	       "call [rip]: the stack and a rip-relative operand");
	tap_ok(test_decode("f3a4", KVMRUN_MODE_LONG, &insn) == 0 && insn.src && insn.dst &&
		       insn.rep,
	       "rep movsb: rsi, rdi and a count in rcx");
	tap_ok(test_decode("aa", KVMRUN_MODE_LONG, &insn) == 0 && !insn.src && insn.dst &&
		       !insn.rep,
	       "stosb: rdi only, no count");
	tap_ok(test_decode("f3ae", KVMRUN_MODE_LONG, &insn) == 0 && insn.dst && insn.rep,
	       "repe scasb: rdi with a count");
	tap_ok(test_decode("f30f58c1", KVMRUN_MODE_LONG, &insn) == 0 && !insn.rep,
	       "addss (an f3 prefix on no string instruction) counts nothing in rcx");
	tap_ok(test_decode("d7", KVMRUN_MODE_LONG, &insn) == 0 && insn.xlat, "xlat");
	tap_ok(test_decode("c4e27992040d00000000", KVMRUN_MODE_LONG, &insn) == 0 && insn.vsib,
	       "vgatherdps: a vector index, not placed");

	tap_ok(place_decode(bytes, 1, KVMRUN_MODE_LONG, &insn, why, sizeof(why)) < 0 &&
		       strstr(why, "ModRM") != NULL,
	       "8b alone: the ModRM byte is missing (%s)", why);
	tap_ok(place_decode(bytes, 3, KVMRUN_MODE_LONG, &insn, why, sizeof(why)) < 0 &&
		       strstr(why, "displacement") != NULL,
	       "8b 80 00: the displacement is cut (%s)", why);
	tap_ok(place_decode((const uint8_t *)"\x66\x0f", 2, KVMRUN_MODE_LONG, &insn, why,
			    sizeof(why)) < 0 && strstr(why, "opcode") != NULL,
	       "66 0f: the opcode is cut (%s)", why);
}

static uint64_t
test_mask(unsigned int bits)
{
	return bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
}

/*
 * Every ModRM/SIB form of one mode, with and without 0x67 and REX.B/X,
 * under random registers: after placement the address, computed here the
 * way the SDM defines it, is the slot target or at most 7 below it, and no
 * register but those forming it changed.
 */
static void
test_placement_mode(enum kvmrun_mode mode)
{
	uint64_t targets[PLACE_SLOT_COUNT], regs[KVMRUN_REG_COUNT], before[KVMRUN_REG_COUNT];
	unsigned long forms = 0, bad = 0, other = 0;
	struct place_insn insn;
	uint8_t code[16];
	char why[128];

	for (unsigned int variant = 0; variant < 8; variant++) {
		for (unsigned int modrm = 0; modrm < 0xc0; modrm++) {
			for (unsigned int sib = 0; sib < 256; sib += (modrm & 7) == 4 ? 1 : 256) {
				size_t n = 0;
				bool a67 = variant & 1;
				uint8_t rex = 0x40 | (variant >> 1 & 3);

				if (a67)
					code[n++] = 0x67;
				if (mode == KVMRUN_MODE_LONG && (variant >> 1) != 0)
					code[n++] = rex;
				else if (variant >> 1 != 0)
					continue;
				code[n++] = 0x8b;	/* mov r, r/m */
				code[n++] = (uint8_t)modrm;
				code[n++] = (uint8_t)sib;
				for (int d = 0; d < 4; d++)
					code[n++] = (uint8_t)test_random();
				if (place_decode(code, n, mode, &insn, why, sizeof(why)) < 0) {
					tap_diag("modrm %02x sib %02x: %s", modrm, sib, why);
					bad++;
					continue;
				}
				if (insn.base == PLACE_RIP ||
				    (insn.base == PLACE_NONE && insn.index == PLACE_NONE))
					continue;	/* nothing to place: the encoding fixes it */
				forms++;
				for (int s = 0; s < PLACE_SLOT_COUNT; s++)
					targets[s] = place_slot_center(mode, insn.addr_bits,
								       (enum place_slot)s) +
						     test_random() % PLACE_ALIGN_SPREAD;
				for (int r = 0; r < KVMRUN_REG_COUNT; r++)
					before[r] = regs[r] = test_random() &
							     (mode == KVMRUN_MODE_LONG ? UINT64_MAX
							      : mode == KVMRUN_MODE_REAL ? 0xffff
							      : 0xffffffff);
				place_registers(&insn, mode, targets, regs);
				uint64_t ea = (uint64_t)insn.disp, mask = test_mask(insn.addr_bits);

				if (insn.base >= 0)
					ea += regs[insn.base];
				if (insn.index >= 0)
					ea += regs[insn.index] * insn.scale;
				ea &= mask;
				if (ea > targets[PLACE_SLOT_MEM] || targets[PLACE_SLOT_MEM] - ea > 7) {
					if (bad++ < 5)
						tap_diag("%s: modrm %02x sib %02x variant %u: address "
							 "0x%" PRIx64 ", target 0x%" PRIx64,
							 kvmrun_mode_name(mode), modrm, sib, variant, ea,
							 targets[PLACE_SLOT_MEM]);
				}
				for (int r = 0; r < KVMRUN_REG_COUNT; r++) {
					uint64_t kept = r == insn.base || r == insn.index ? ~mask
											 : UINT64_MAX;

					if ((regs[r] ^ before[r]) & kept)
						other++;
				}
			}
		}
	}
	tap_ok(forms > 0 && bad == 0, "%s mode: all %lu placed ModRM forms address their target",
	       kvmrun_mode_name(mode), forms);
	tap_ok(other == 0, "%s mode: placement changes only the address bits of base and index",
	       kvmrun_mode_name(mode));
}

/* The implicit operands: rsp, rsi, rdi on their targets, rcx a small count. */
static void
test_placement_implicit(void)
{
	uint64_t targets[PLACE_SLOT_COUNT], regs[KVMRUN_REG_COUNT], from, to;
	struct place_insn insn;
	bool ok = true;

	for (int s = 0; s < PLACE_SLOT_COUNT; s++)
		targets[s] = place_slot_center(KVMRUN_MODE_LONG, 64, (enum place_slot)s) + 5;
	for (int i = 0; i < 1000 && ok; i++) {
		for (int r = 0; r < KVMRUN_REG_COUNT; r++)
			regs[r] = test_random();
		test_decode("f348a5", KVMRUN_MODE_LONG, &insn);	/* rep movsq */
		place_registers(&insn, KVMRUN_MODE_LONG, targets, regs);
		ok = regs[KVMRUN_REG_RSI] == targets[PLACE_SLOT_SRC] &&
		     regs[KVMRUN_REG_RDI] == targets[PLACE_SLOT_DST] &&
		     regs[KVMRUN_REG_RCX] < PLACE_REP_COUNT_MAX;
	}
	tap_ok(ok, "rep movsq: rsi and rdi on their targets, rcx below %u", PLACE_REP_COUNT_MAX);

	/* Every byte 15 quadwords move, either way, is in what capture fills. */
	place_fill_range(&insn, PLACE_SLOT_SRC, targets[PLACE_SLOT_SRC], false, &from, &to);
	ok = from <= targets[PLACE_SLOT_SRC] &&
	     to >= targets[PLACE_SLOT_SRC] + (PLACE_REP_COUNT_MAX - 1) * 8;
	place_fill_range(&insn, PLACE_SLOT_SRC, targets[PLACE_SLOT_SRC], true, &from, &to);
	tap_ok(ok && from <= targets[PLACE_SLOT_SRC] - (PLACE_REP_COUNT_MAX - 2) * 8 &&
		       to >= targets[PLACE_SLOT_SRC] + 8,
	       "rep movsq fills what 15 quadwords touch, up (DF 0) and down (DF 1)");

	test_decode("50", KVMRUN_MODE_LONG, &insn);
	regs[KVMRUN_REG_RSP] = test_random();
	place_registers(&insn, KVMRUN_MODE_LONG, targets, regs);
	place_fill_range(&insn, PLACE_SLOT_STACK, regs[KVMRUN_REG_RSP], false, &from, &to);
	tap_ok(regs[KVMRUN_REG_RSP] == targets[PLACE_SLOT_STACK] &&
		       from <= regs[KVMRUN_REG_RSP] - 8 && to >= regs[KVMRUN_REG_RSP] + 8,
	       "push rax: rsp on its target, the quadword below it filled");

	test_decode("50", KVMRUN_MODE_REAL, &insn);
	regs[KVMRUN_REG_RSP] = 0x12345678;
	place_registers(&insn, KVMRUN_MODE_REAL, targets, regs);
	tap_ok(regs[KVMRUN_REG_RSP] ==
		       (UINT64_C(0x12340000) | ((targets[PLACE_SLOT_STACK]) & 0xffff)),
	       "real mode: only sp, the low 16 bits, is placed");

	test_decode("d7", KVMRUN_MODE_LONG, &insn);
	regs[KVMRUN_REG_RAX] = 0x1234;
	place_registers(&insn, KVMRUN_MODE_LONG, targets, regs);
	tap_ok(regs[KVMRUN_REG_RBX] + 0x34 == targets[PLACE_SLOT_MEM], "xlat: rbx + al is the target");

	tap_ok(place_linear(KVMRUN_MODE_REAL, false, 0x10800) ==
		       PLACE_REAL_DATA_SEG * 16 + 0x0800 &&
		       place_linear(KVMRUN_MODE_REAL, true, 0x10) == PLACE_REAL_CODE_SEG * 16 + 0x10 &&
		       place_linear(KVMRUN_MODE_LONG, false, 0x40800) == 0x40800,
	       "real-mode offsets wrap in their 64 KiB segment; flat ones are addresses");
	for (int s = 0; s < PLACE_SLOT_COUNT; s++) {
		uint64_t c = place_slot_center(KVMRUN_MODE_LONG, 64, (enum place_slot)s);
		uint64_t low = place_slot_center(KVMRUN_MODE_PROTECTED, 16, (enum place_slot)s);

		ok = ok && c - PLACE_STACK_BYTES - PLACE_STRING_BYTES > PLACE_CODE_ADDRESS + 16 &&
		     c + PLACE_ALIGN_SPREAD + PLACE_STRING_BYTES + PLACE_MEM_BYTES <
			     PLACE_MEMORY_SIZE - 0x10000 &&
		     low + PLACE_ALIGN_SPREAD + PLACE_STRING_BYTES + PLACE_MEM_BYTES <
			     PLACE_CODE_ADDRESS;
	}
	tap_ok(ok, "the slots lie between the code and the engine's reserved area, or below "
		   "the code for 16-bit addressing");
}

/* A vector with a bit of everything, to write and read back. */
static void
test_vector_fill(struct vector *v)
{
	*v = (struct vector){.mode = KVMRUN_MODE_LONG, .ring = 3, .length = 3,
			     .bytes = {0x48, 0x01, 0xd8}, .exit_vector = 13};
	snprintf(v->name, sizeof(v->name), "add rax, rbx");
	snprintf(v->exit, sizeof(v->exit), "exception");
	for (int r = 0; r < KVMRUN_REG_COUNT; r++)
		v->initial.regs[r] = v->final.regs[r] = (uint64_t)r * 0x1111;
	v->initial.regs[KVMRUN_REG_RAX] = UINT64_MAX;
	v->initial.regs_set = v->final.regs_set = (1u << KVMRUN_REG_COUNT) - 1;
	v->final.regs[KVMRUN_REG_RAX] = 7;
	v->initial.xstate.vec_bytes[1] = v->final.xstate.vec_bytes[1] = 32;
	for (int i = 0; i < 32; i++)
		v->initial.xstate.vec[1][i] = v->final.xstate.vec[1][i] = (uint8_t)i;
	v->final.xstate.vec[1][0] = 0xff;
	v->initial.xstate.vec_bytes[2] = v->final.xstate.vec_bytes[2] = 16;
	v->initial.xstate.mxcsr = v->final.xstate.mxcsr = 0x1f80;
	v->initial.xstate.fields_set = v->final.xstate.fields_set = 1u << KVMRUN_XF_MXCSR;
	vector_ram_add(&v->initial, 0x10002, 0xd8);
	vector_ram_add(&v->initial, 0x10000, 0x48);
	vector_ram_add(&v->initial, 0x10001, 0x01);
	vector_ram_add(&v->final, 0x40800, 0x99);
}

static json_object *
test_parse(const char *text)
{
	return json_tokener_parse(text);
}

static void
test_json(void)
{
	struct vector v, back;
	json_object *obj;
	const char *text;
	char why[160];
	int r;

	test_vector_fill(&v);
	obj = vector_to_json(&v);
	text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
	tap_ok(strstr(text, "\"name\":\"add rax, rbx\",\"bytes\":[72,1,216],\"mode\":\"long\","
			    "\"ring\":3,\"initial\":{\"regs\":{\"rax\":18446744073709551615,") ==
		       text + 1,
	       "a vector starts with name, bytes, mode, ring and the initial registers");
	tap_ok(strstr(text, "\"ram\":[[65536,72],[65537,1],[65538,216]]") != NULL,
	       "initial.ram is [address, byte] pairs in address order");
	tap_ok(strstr(text, "\"final\":{\"regs\":{\"rax\":7},\"xstate\":{\"ymm1\":\"0x1f1e1d1c"
			    "1b1a191817161514131211100f0e0d0c0b0a0908070605040302""01ff\"},"
			    "\"ram\":[[264192,153]]}") != NULL,
	       "final has only what changed: rax, ymm1 (most significant digit first), ram");
	tap_ok(strstr(text, "\"exit\":{\"reason\":\"exception\",\"vector\":13}") != NULL,
	       "exit says how a run that is no clean step ended");
	if (tap_failed)
		tap_diag("%s", text);

	r = vector_from_json(obj, &back, why, sizeof(why));
	tap_ok(r == 0 && back.mode == KVMRUN_MODE_LONG && back.ring == 3 && !back.sst &&
		       back.length == 3 && memcmp(back.bytes, v.bytes, 3) == 0 &&
		       back.initial.regs[KVMRUN_REG_RAX] == UINT64_MAX &&
		       back.initial.regs_set == v.initial.regs_set &&
		       back.final.regs_set == 1u << KVMRUN_REG_RAX &&
		       back.final.regs[KVMRUN_REG_RAX] == 7 &&
		       back.final.xstate.vec_bytes[1] == 32 && back.final.xstate.vec[1][0] == 0xff &&
		       back.final.xstate.vec[1][31] == 31 && back.initial.xstate.vec_bytes[2] == 16 &&
		       back.initial.xstate.mxcsr == 0x1f80 && back.initial.ram_count == 3 &&
		       back.final.ram_count == 1 && strcmp(back.exit, "exception") == 0 &&
		       back.exit_vector == 13,
	       "capture's vector reads back as written");
	vector_free(&back);
	json_object_put(obj);
	vector_free(&v);

	/* As SingleStepTests' 8086 v1 files have it (fields abridged). */
	obj = test_parse("{\"name\":\"add byte [ds:bx+si], al\",\"bytes\":[0,0],"
			 "\"initial\":{\"regs\":{\"ax\":4660,\"bx\":2,\"cx\":3,\"dx\":4,\"cs\":4096,"
			 "\"ss\":8192,\"ds\":12288,\"es\":16384,\"sp\":100,\"bp\":6,\"si\":7,"
			 "\"di\":8,\"ip\":16,\"flags\":61442},\"ram\":[[65552,0],[65553,0],"
			 "[196617,5]],\"queue\":[]},\"final\":{\"regs\":{\"ip\":18,"
			 "\"flags\":61446},\"ram\":[[65552,0],[65553,0],[196617,57]],"
			 "\"queue\":[]},\"cycles\":[[0,\"x\"]],\"hash\":\"abc\",\"idx\":0}");
	r = vector_from_json(obj, &back, why, sizeof(why));
	tap_ok(r == 0 && back.sst && back.mode == KVMRUN_MODE_REAL &&
		       back.initial.regs[KVMRUN_REG_RAX] == 4660 &&
		       back.initial.regs[KVMRUN_REG_RIP] == 16 &&
		       back.initial.regs[KVMRUN_REG_RFLAGS] == 61442 &&
		       back.initial.segs[KVMRUN_SEG_DS] == 12288 &&
		       back.initial.segs_set == 0xf && back.final.regs[KVMRUN_REG_RIP] == 18 &&
		       back.final.regs_set == (1u << KVMRUN_REG_RIP | 1u << KVMRUN_REG_RFLAGS) &&
		       back.initial.ram_count == 3 && back.final.ram[2] == (UINT64_C(196617) << 8 | 57),
	       "a SingleStepTests vector: 16-bit names, segments, ram; cycles and queue ignored");
	if (r < 0)
		tap_diag("%s", why);
	vector_free(&back);
	json_object_put(obj);

	static const struct {
		const char *json, *words;
	} bad[] = {
		{"[]", "JSON object"},
		{"{\"bytes\":[],\"initial\":{},\"final\":{}}", "bytes: expected an array of 1 to 15"},
		{"{\"bytes\":[256],\"initial\":{},\"final\":{}}", "bytes: expected an integer 0..255"},
		{"{\"bytes\":[1],\"mode\":\"fast\",\"initial\":{},\"final\":{}}", "mode: not real"},
		{"{\"bytes\":[1],\"initial\":{}}", "needs initial and final"},
		{"{\"bytes\":[1],\"initial\":{\"regs\":{\"eax\":1}},\"final\":{}}",
		 "initial.regs.eax: not a register"},
		{"{\"bytes\":[1],\"initial\":{\"regs\":{\"ax\":65536}},\"final\":{}}",
		 "initial.regs.ax: expected an integer 0..65535"},
		{"{\"bytes\":[1],\"initial\":{\"ram\":[[1]]},\"final\":{}}",
		 "initial.ram[0]: expected [address, byte]"},
		{"{\"bytes\":[1],\"initial\":{},\"final\":{\"ram\":[[1,-1]]}}",
		 "final.ram[0]: expected an integer 0..255"},
		{"{\"bytes\":[1],\"initial\":{\"xstate\":{\"xmm0\":\"0x12\"}},\"final\":{}}",
		 "initial.xstate.xmm0: expected \"0x\" and 32 hex digits"},
		{"{\"bytes\":[1],\"initial\":{\"xstate\":{\"xmm32\":\"0x12\"}},\"final\":{}}",
		 "initial.xstate.xmm32: not mxcsr or xmm/ymm/zmm 0..31"},
		{"{\"bytes\":[1],\"initial\":{},\"final\":{},\"exit\":{}}", "exit: expected"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		obj = test_parse(bad[i].json);
		r = vector_from_json(obj, &back, why, sizeof(why));
		if (!tap_ok(r < 0 && strstr(why, bad[i].words) != NULL, "refused: %s",
			    bad[i].json))
			tap_diag("got %d: %s", r, r < 0 ? why : "(read)");
		if (r == 0)
			vector_free(&back);
		json_object_put(obj);
	}
}

static void
test_metadata(void)
{
	json_object *meta = test_parse(
		"{\"opcodes\":{\"00\":{\"status\":\"normal\"},\"D4\":{\"flags-mask\":2261},"
		"\"F6\":{\"reg\":{\"6\":{\"status\":\"normal\",\"flags-mask\":2005}}}}}");

	tap_ok(vector_flags_mask(meta, "00") == 0xffff, "metadata: no mask compares every flag");
	tap_ok(vector_flags_mask(meta, "D4") == 2261, "metadata: an opcode's flags-mask");
	tap_ok(vector_flags_mask(meta, "f6.6") == 2005, "metadata: a group's /6, either case");
	tap_ok(vector_flags_mask(meta, "F6.7") == 0xffff, "metadata: a /reg not listed");
	tap_ok(vector_flags_mask(NULL, "D4") == 0xffff, "no metadata: every flag");
	json_object_put(meta);
}

int
main(void)
{
	test_decoder();
	test_placement_mode(KVMRUN_MODE_LONG);
	test_placement_mode(KVMRUN_MODE_PROTECTED);
	test_placement_mode(KVMRUN_MODE_REAL);
	test_placement_implicit();
	test_json();
	test_metadata();
	return tap_done();
}
