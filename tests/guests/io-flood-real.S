/*
 * Writes al (counting up) to port 0x80 without end.  With port 0x80 in
 * log_ports each write is recorded, so the io log bound ends the run as
 * output_limit with io_log_truncated.
 */
	.code16
	.globl _start
_start:
	cli
	xor	%al, %al
1:	out	%al, $0x80
	inc	%al
	jmp	1b
