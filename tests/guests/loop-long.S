/* Runs forever in long mode with interrupts off: only the timeout ends it. */
	.code64
	.globl _start
_start:
	cli
	jmp	.
