/*
 * Faults on purpose in 32-bit protected or paged mode, at ring 0 or 3; edi
 * picks the case (see the table).  Each case faults at its first instruction
 * or halts, leaving the other registers as the run set them, so the test can
 * check the exception the engine reports and the registers at the fault.
 */
#include "console.inc"
	.code32
	.globl _start
_start:
	cmp	$(cases_end - cases) / 4, %edi
	jae	unknown
	jmp	*cases(, %edi, 4)
unknown:
	out	%al, $0x99		/* an io exit says the test asked for no case */

	.p2align 2
cases:	.long	divide, invalid, general, page, breakpoint, halt, privileged
	.long	reserved_write, own_idt, broken_stack
cases_end:

divide:	xor	%ecx, %ecx
	div	%ecx			/* #DE */
invalid:
	ud2				/* #UD */
general:
	mov	$0x1230, %cx
	mov	%cx, %ds		/* a selector past the GDT: #GP(0x1230) */
page:
	mov	%ecx, 0xfffff000	/* past guest memory: the 4 GiB map makes it mmio */
	hlt
breakpoint:
	int3				/* #BP, a trap: eip after it */
halt:	hlt				/* at ring 3 this is a #GP the engine calls hlt */
privileged:
	mov	%cr0, %ecx		/* #GP(0) at ring 3 */
reserved_write:
	movl	$0xdeadbeef, (%ebx)	/* ebx: an address in the engine's area */
	hlt

/* Installs an IDT of its own whose #UD handler prints "handled\n" and halts. */
own_idt:
	mov	%cs, %ecx
	mov	$own_handler, %eax
	mov	%ax, OWN_IDT + 6 * 8
	mov	%cx, OWN_IDT + 6 * 8 + 2
	movw	$0x8e00, OWN_IDT + 6 * 8 + 4
	shr	$16, %eax
	mov	%ax, OWN_IDT + 6 * 8 + 6
	lidt	own_idtr
	ud2
own_handler:
	mov	$handled, %esi
	print_string
	hlt

/* Loads a stack segment of its own whose limit is 0, then faults: the CPU
 * cannot push the frame, nor the #DF's, and shuts down. */
broken_stack:
	lgdt	own_gdtr
	mov	$0x08, %ax
	mov	%ax, %ss
	ud2

	.set	OWN_IDT, 0x8000
	.p2align 3
own_gdt:
	.quad	0
	.quad	0x0040920000000000	/* data, base 0, limit 0, byte granular */
own_idtr:
	.word	256 * 8 - 1
	.long	OWN_IDT
own_gdtr:
	.word	2 * 8 - 1
	.long	own_gdt
handled:
	.asciz	"handled\n"
