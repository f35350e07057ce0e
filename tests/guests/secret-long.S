/*
 * Fills guest memory from 0x1000 up to the engine's reserved area of the
 * default 2 MiB (0x1f0000) with a secret pattern, then halts.  Meant for
 * ring 3, where rep stosq runs natively and fast.  A later run must see
 * none of it: every run gets fresh, zeroed memory.
 */
	.code64
	.globl _start
_start:
	mov	$0x1000, %edi
	mov	$(0x1f0000 - 0x1000) / 8, %ecx
	mov	$0x5ec2e75ec2e75ec2, %rax
	rep stosq
	hlt
