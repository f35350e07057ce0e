/*
 * Loads an empty IDT of its own, then executes ud2: with no gate for #UD,
 * nor for the #GP and #DF that follow, the CPU shuts down (triple fault).
 */
	.code32
	.globl _start
_start:
	lidt	idtr
	ud2
	.p2align 3
idtr:	.word	0
	.long	0
