/*
 * Compute in long mode: the 32-bit FNV-1a hash of the bytes 0..255 held in
 * the image, left in eax and stored at 0x500, then halt.  It runs at ring 0
 * or ring 3 alike.
 */
	.code64
	.globl _start
_start:
	mov	$0x811c9dc5, %eax
	lea	table(%rip), %rsi
	mov	$256, %ecx
1:	xorb	(%rsi), %al
	imul	$0x01000193, %eax, %eax
	inc	%rsi
	loop	1b
	mov	%eax, 0x500
	hlt
#include "fnv-table.inc"
