/* Runs forever with interrupts off: only the run's timeout ends it. */
	.code16
	.globl _start
_start:
	cli
	jmp	.
