/*
 * Hello world in 64-bit long mode: prints "Hello, world!\n" on port 0xE9,
 * stores 42 at 0x400, sets rbx to 0x4b4f ("OK") and halts.
 */
	.code64
	.globl _start
_start:
	lea	msg(%rip), %rsi
	mov	$0xe9, %dx
1:	lodsb
	test	%al, %al
	jz	2f
	out	%al, %dx
	jmp	1b
2:	movb	$42, 0x400
	mov	$0x4b4f, %ebx
	hlt
msg:	.asciz	"Hello, world!\n"
