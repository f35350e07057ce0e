/*
 * For tests/test-capture.sh: reads vectors capture wrote (JSON lines on
 * stdin) for a few ALU instructions and runs each instruction here,
 * natively, from the vector's initial rax, rbx, rcx and flags; the result
 * must equal the vector's final rax and flags bit for bit, undefined flags
 * included (the same silicon computes both).  Exit 0 when all agree.
 */
#include "config.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

/* The flags compared: CF PF AF ZF SF OF and DF. */
#define NATIVE_FLAGS 0xcd5u

/*
 * INSN with rax, rbx, rcx and the flags loaded; below the red zone, since
 * pushf and popf use the stack; cld after, as the ABI wants DF clear.
 */
#define NATIVE_RUN(insn, rax, rbx, rcx, flags)                                           \
	__asm__ volatile("sub $128, %%rsp\n\tpush %[f]\n\tpopfq\n\t" insn                \
			 "\n\tpushfq\n\tpop %[f]\n\tcld\n\tadd $128, %%rsp"                \
			 : "+a"(rax), [f] "+r"(flags)                                     \
			 : "b"(rbx), "c"(rcx)                                             \
			 : "cc", "memory")

static uint64_t
native_reg(json_object *state, const char *name, uint64_t otherwise)
{
	json_object *regs, *val;

	if (json_object_object_get_ex(state, "regs", &regs) &&
	    json_object_object_get_ex(regs, name, &val))
		return json_object_get_uint64(val);
	return otherwise;
}

/* Runs the instruction of HEX; 0, or -1 for one this program does not know. */
static int
native_run(const char *hex, uint64_t *rax, uint64_t rbx, uint64_t rcx, uint64_t *flags)
{
	uint64_t a = *rax, f = *flags;

	if (strcmp(hex, "4801d8") == 0)
		NATIVE_RUN("add %%rbx, %%rax", a, rbx, rcx, f);
	else if (strcmp(hex, "4829d8") == 0)
		NATIVE_RUN("sub %%rbx, %%rax", a, rbx, rcx, f);
	else if (strcmp(hex, "480fafc3") == 0)
		NATIVE_RUN("imul %%rbx, %%rax", a, rbx, rcx, f);
	else if (strcmp(hex, "48d3e0") == 0)
		NATIVE_RUN("shl %%cl, %%rax", a, rbx, rcx, f);
	else if (strcmp(hex, "480fbcc3") == 0)
		NATIVE_RUN("bsf %%rbx, %%rax", a, rbx, rcx, f);
	else
		return -1;
	*rax = a;
	*flags = f;
	return 0;
}

int
main(void)
{
	char line[1 << 16], hex[40];
	unsigned long count = 0, bad = 0;
	json_object *v, *bytes, *initial, *final;

	while (fgets(line, sizeof(line), stdin) != NULL) {
		v = json_tokener_parse(line);
		if (v == NULL || !json_object_object_get_ex(v, "bytes", &bytes) ||
		    !json_object_object_get_ex(v, "initial", &initial) ||
		    !json_object_object_get_ex(v, "final", &final)) {
			printf("line %lu: not a vector\n", count + 1);
			return 1;
		}
		hex[0] = '\0';
		for (size_t i = 0; i < json_object_array_length(bytes) && i < 15; i++)
			snprintf(hex + 2 * i, 3, "%02x",
				 json_object_get_int(json_object_array_get_idx(bytes, i)));
		uint64_t rax = native_reg(initial, "rax", 0), flags = native_reg(initial, "rflags", 2);
		uint64_t want_rax = native_reg(final, "rax", rax);
		uint64_t want_flags = native_reg(final, "rflags", flags);

		flags &= NATIVE_FLAGS;
		flags |= 2;
		if (native_run(hex, &rax, native_reg(initial, "rbx", 0),
			       native_reg(initial, "rcx", 0), &flags) < 0) {
			printf("%s: not an instruction this program runs\n", hex);
			return 1;
		}
		if (rax != want_rax || ((flags ^ want_flags) & NATIVE_FLAGS) != 0) {
			if (bad++ < 10)
				printf("%s vector %lu: native rax 0x%" PRIx64 " flags 0x%" PRIx64
				       ", captured 0x%" PRIx64 " 0x%" PRIx64 "\n",
				       hex, count, rax, flags & NATIVE_FLAGS, want_rax,
				       want_flags & NATIVE_FLAGS);
		}
		count++;
		json_object_put(v);
	}
	printf("%lu vectors, %lu differ\n", count, bad);
	return bad == 0 && count > 0 ? 0 : 1;
}
