/*
 * Unreal mode (tests/test-state.c): started with a ds cache of base
 * 0x100000 and limit 0xffffffff, reads the dword at ds:0x20000 (0x120000,
 * above 1 MiB and past a real-mode limit) into eax and halts.
 */
	.code16
	.globl _start
_start:
	mov	$0x20000, %ebx
	movl	(%ebx), %eax
	hlt
