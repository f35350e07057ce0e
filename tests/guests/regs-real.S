/*
 * Register round trip in real mode: stores the 32-bit eax, ebx, ecx, edx,
 * esi, edi, ebp and esp the run started with at 0x600, 0x604, ... 0x61c, and
 * the flags at 0x620, so the test sees what the guest saw; then halts with
 * every register unchanged.
 */
	.code16
	.globl _start
_start:
	mov	%eax, 0x600
	mov	%ebx, 0x604
	mov	%ecx, 0x608
	mov	%edx, 0x60c
	mov	%esi, 0x610
	mov	%edi, 0x614
	mov	%ebp, 0x618
	mov	%esp, 0x61c
	hlt
