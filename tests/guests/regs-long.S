/*
 * Register round trip in long mode: stores the 64-bit rax, rbx, rcx, rdx,
 * rsi, rdi, rbp, rsp and r8..r15 the run started with at 0x600, 0x608, ...,
 * so the test sees what the guest saw; then halts with every register
 * unchanged.
 */
	.code64
	.globl _start
_start:
	mov	%rax, 0x600
	mov	%rbx, 0x608
	mov	%rcx, 0x610
	mov	%rdx, 0x618
	mov	%rsi, 0x620
	mov	%rdi, 0x628
	mov	%rbp, 0x630
	mov	%rsp, 0x638
	mov	%r8, 0x640
	mov	%r9, 0x648
	mov	%r10, 0x650
	mov	%r11, 0x658
	mov	%r12, 0x660
	mov	%r13, 0x668
	mov	%r14, 0x670
	mov	%r15, 0x678
	hlt
