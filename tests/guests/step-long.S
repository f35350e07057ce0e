/*
 * Instructions to single-step in long mode, each case at a fixed offset so a
 * test starts there (regs.rip) and counts from its first instruction:
 *   0x000 jmp       0x100 call      0x200 rep movsb (rsi, rdi, rcx from the test)
 *   0x300 div ecx (rcx 0: #DE)      0x400 hlt
 *   0x500 a loop of 10 instructions, then hlt
 *   0x600 mov eax to ss (rax a user data selector), nop, hlt
 *   0x700 sti, nop, hlt
 */
	.code64
	.globl _start
_start:
	jmp	jmp_target
	.org	0x10
jmp_target:
	hlt

	.org	0x100
	call	call_target
	hlt
call_target:
	ret

	.org	0x200
	rep movsb
	hlt

	.org	0x300
	div	%ecx
	hlt

	.org	0x400
	hlt

	.org	0x500
	mov	$3, %ecx		/* 1 */
1:	inc	%rax			/* 2, 5, 8 */
	dec	%ecx			/* 3, 6, 9 */
	jnz	1b			/* 4, 7, 10 */
	hlt

	.org	0x600
	mov	%eax, %ss
	nop
	hlt

	.org	0x700
	sti
	nop
	hlt
