/*
 * Hello world in 32-bit protected mode (also run in paged mode, whose identity
 * map makes the same code work): prints "Hello, world!\n" on port 0xE9,
 * stores 42 at 0x400, sets ebx to 0x4b4f ("OK") and halts.
 */
#include "console.inc"
	.code32
	.globl _start
_start:
	mov	$msg, %esi
	print_string
	movb	$42, 0x400
	mov	$0x4b4f, %ebx
	hlt
msg:	.asciz	"Hello, world!\n"
