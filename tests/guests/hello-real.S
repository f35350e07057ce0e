/*
 * Hello world in real mode: prints "Hello, world!\n" on the console port
 * 0xE9, stores 42 at guest-physical 0x400, sets bx to 0x4b4f ("OK") and halts.
 */
#include "console.inc"
	.code16
	.globl _start
_start:
	mov	$msg, %si
	print_string
	movb	$42, 0x400
	mov	$0x4b4f, %bx
	hlt
msg:	.asciz	"Hello, world!\n"
