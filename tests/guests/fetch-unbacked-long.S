/*
 * Jumps to 0x80000000, past guest memory but inside the identity map, in
 * long mode: an instruction fetch from memory that is not there.  KVM ends
 * the run with an mmio exit at that address or with internal_error,
 * depending on the host.
 */
	.code64
	.globl _start
_start:
	mov	$0x80000000, %eax
	jmp	*%rax
