/*
 * Writes 0x12345678 at 0x10000000, far past guest memory: the identity map
 * covers it, so the access leaves the VM as an mmio exit.
 */
	.code32
	.globl _start
_start:
	movl	$0x12345678, 0x10000000
	hlt
