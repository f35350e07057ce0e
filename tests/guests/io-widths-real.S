/*
 * Port I/O of each width and a string: a word and a dword out to port 0x80,
 * then `rep outsb` of the 3 bytes at 0x7000 to it, then `rep insb` of 3
 * bytes from port 0x81 into 0x7100, then halts.  With 0x80 in log_ports the
 * outs are logged (sizes 2, 4, then 1 three times) and the run ends at the
 * ins, an io exit in with count 3; without, at the first out.
 */
	.code16
	.globl _start
_start:
	mov	$0x1234, %ax
	out	%ax, $0x80
	mov	$0x89abcdef, %eax
	out	%eax, $0x80
	cld
	mov	$0x80, %dx
	mov	$0x7000, %si
	mov	$3, %cx
	rep outsb
	mov	$0x81, %dx
	mov	$0x7100, %di
	mov	$3, %cx
	rep insb
	hlt
