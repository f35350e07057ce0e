/*
 * A compute-bound guest for kvmrun-bench: counts rcx down to zero and halts.
 * The count comes in rcx from the request; the loop is the same two
 * instructions the benchmark runs natively, so the times compare directly.
 * At ring 3 the HLT ends the run as hlt with rip after it.
 */
	.code64
	.globl _start
_start:
1:	dec	%rcx
	jnz	1b
	hlt
