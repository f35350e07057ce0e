/*
 * Reads and writes 0x10000000, past guest memory, in a loop.  The engine
 * serves no MMIO, so the first access already ends the run as an mmio read
 * exit at that address: a storm cannot build up.
 */
	.code64
	.globl _start
_start:
1:	mov	0x10000000, %rax
	mov	%rax, 0x10000008
	jmp	1b
