/* Reads 8 bytes at 0x80000000, past guest memory: an mmio read exit. */
	.code64
	.globl _start
_start:
	mov	0x80000000, %rax
	hlt
