/*
 * Hello world in 64-bit long mode: prints "Hello, world!\n" on port 0xE9,
 * stores 42 at 0x400, sets rbx to 0x4b4f ("OK") and halts.
 */
#include "console.inc"
	.code64
	.globl _start
_start:
	lea	msg(%rip), %rsi
	print_string
	movb	$42, 0x400
	mov	$0x4b4f, %ebx
	hlt
msg:	.asciz	"Hello, world!\n"
