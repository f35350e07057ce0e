/*
 * Hello world in real mode: prints "Hello, world!\n" on the console port
 * 0xE9, stores 42 at guest-physical 0x400, sets bx to 0x4b4f ("OK") and halts.
 */
	.code16
	.globl _start
_start:
	mov	$msg, %si
	mov	$0xe9, %dx
1:	lodsb
	test	%al, %al
	jz	2f
	out	%al, %dx
	jmp	1b
2:	movb	$42, 0x400
	mov	$0x4b4f, %bx
	hlt
msg:	.asciz	"Hello, world!\n"
