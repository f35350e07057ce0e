/*
 * Writes 0x42 then 0x43 to port 0x80, reads port 0x80 into bl, then halts.
 * Without port 0x80 in log_ports the run ends at the first OUT (exit io);
 * with it both writes are logged, the IN reads 0xff and the guest halts.
 */
	.code16
	.globl _start
_start:
	mov	$0x42, %al
	out	%al, $0x80
	mov	$0x43, %al
	out	%al, $0x80
	in	$0x80, %al
	mov	%al, %bl
	hlt
