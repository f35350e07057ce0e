/*
 * An exit storm in long mode: reads port 0x80 without end.  At ring 3 on a
 * host that drops IOPL for user code each read is a #GP the engine carries
 * out itself before it resumes the guest; at ring 0 it is a plain I/O exit.
 * With port 0x80 in log_ports only the timeout ends the run, as timeout.
 */
	.code64
	.globl _start
_start:
1:	in	$0x80, %al
	jmp	1b
