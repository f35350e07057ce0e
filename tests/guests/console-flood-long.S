/*
 * Writes guest memory to the console without end, a page per exit with
 * rep outsb: the console bound (KVMRUN_CONSOLE_MAX) ends the run.
 */
	.code64
	.globl _start
_start:
	mov	$0xe9, %dx
1:	xor	%esi, %esi
	mov	$0x10000, %ecx
	rep outsb
	jmp	1b
