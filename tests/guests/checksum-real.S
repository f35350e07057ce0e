/*
 * Compute in real mode: the 32-bit FNV-1a hash of the bytes 0..255 held in
 * the image, left in eax and stored at 0x500, then halt.
 */
	.code16
	.globl _start
_start:
	mov	$0x811c9dc5, %eax
	mov	$table, %si
	mov	$256, %cx
1:	xorb	(%si), %al
	imul	$0x01000193, %eax, %eax
	inc	%si
	loop	1b
	mov	%eax, 0x500
	hlt
#include "fnv-table.inc"
