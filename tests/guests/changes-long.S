/*
 * Writes three scattered bytes and a 5000-byte block, then halts: what a
 * run with "changes" must report, exactly (the block spans two page ends).
 */
	.code64
	.globl _start
_start:
	movb	$0x11, 0x3000
	movb	$0x22, 0x5123
	movb	$0x33, 0x9fff
	mov	$0x10f00, %edi
	mov	$5000, %ecx
	mov	$0xab, %al
	rep stosb
	hlt
