/*
 * Faults on purpose in long mode, at ring 0 or 3; rdi picks the case (see
 * the table).  Each case faults at its first instruction or halts, leaving
 * the other registers as the run set them, so the test can check the
 * exception the engine reports and the registers at the fault.
 */
#include "console.inc"
	.code64
	.globl _start
_start:
	cmp	$(cases_end - cases) / 8, %rdi
	jae	unknown
	jmp	*cases(, %rdi, 8)
unknown:
	out	%al, $0x99		/* an io exit says the test asked for no case */

	.p2align 3
cases:	.quad	divide, invalid, general, page, breakpoint, halt, privileged
	.quad	reserved_write, own_idt, broken_stack
cases_end:

divide:	xor	%ecx, %ecx
	div	%ecx			/* #DE */
invalid:
	ud2				/* #UD */
general:
	movabs	$0x8000000000000000, %rcx
	mov	(%rcx), %al		/* non-canonical: #GP(0) */
page:	movabs	$0x100000000, %rcx
	mov	(%rcx), %al		/* past the 4 GiB identity map: #PF */
breakpoint:
	int3				/* #BP, a trap: rip after it */
halt:	hlt				/* at ring 3 this is a #GP the engine calls hlt */
privileged:
	mov	%cr0, %rcx		/* #GP(0) at ring 3 */
reserved_write:
	movl	$0xdeadbeef, (%rbx)	/* rbx: an address in the engine's area */
	hlt

/* Installs an IDT of its own whose #UD handler prints "handled\n" and halts. */
own_idt:
	mov	%cs, %ecx
	lea	own_handler(%rip), %rax
	mov	%ax, OWN_IDT + 6 * 16
	mov	%cx, OWN_IDT + 6 * 16 + 2
	movw	$0x8e00, OWN_IDT + 6 * 16 + 4
	shr	$16, %rax
	mov	%ax, OWN_IDT + 6 * 16 + 6
	shr	$16, %rax
	mov	%eax, OWN_IDT + 6 * 16 + 8
	lidt	own_idtr(%rip)
	ud2
own_handler:
	lea	handled(%rip), %rsi
	print_string
	hlt

/* Points rsp at a non-canonical address, then faults: the CPU cannot push
 * the frame, nor the #DF's, and shuts down. */
broken_stack:
	movabs	$0x8000000000000000, %rsp
	ud2

	.set	OWN_IDT, 0x8000
	.p2align 3
own_idtr:
	.word	256 * 16 - 1
	.quad	OWN_IDT
handled:
	.asciz	"handled\n"
