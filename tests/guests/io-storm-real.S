/*
 * An exit storm: reads port 0x80 without end.  With port 0x80 in log_ports
 * every read is served (0xff) and the guest goes on, so each iteration is a
 * round trip to the daemon; only the timeout ends the run, as timeout.
 */
	.code16
	.globl _start
_start:
	cli
1:	in	$0x80, %al
	jmp	1b
