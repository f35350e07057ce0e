/*
 * Jumps to 0x80000000, far past guest memory, in 32-bit protected mode: the
 * CPU fetches its next instruction from memory that is not there.  KVM ends
 * the run with an mmio exit at that address or with internal_error (it
 * cannot emulate a fetch from MMIO), depending on the host.
 */
	.code32
	.globl _start
_start:
	mov	$0x80000000, %eax
	jmp	*%eax
