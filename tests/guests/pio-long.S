/*
 * String port I/O at ring 3 in long mode, for the checks the engine makes
 * before it carries an ins or outs out itself: rbp picks the case (see the
 * table), rbx is the address (rsi or rdi), rcx the count, as the test sets
 * them.  Each case does its I/O instruction, then halts; one the CPU would
 * fault on ends the run as that fault.  Port 0x80 is a log port for the
 * test (it reads 0xff), 0xe9 the console.
 */
	.code64
	.globl _start
_start:
	cmp	$(cases_end - cases) / 8, %rbp
	jae	unknown
	jmp	*cases(, %rbp, 8)
unknown:
	out	%al, $0x99		/* an io exit says the test asked for no case */

	.p2align 3
cases:	.quad	ins, outs, ins_a32, outs_gs, ins_es_null, outsw_once, outs_down
	.quad	outs_a32
cases_end:

ins:	mov	%rbx, %rdi
	mov	$0x80, %dx
	rep insb
	hlt
outs:	mov	%rbx, %rsi
	mov	$0xe9, %dx
	rep outsb
	hlt
/* 0x67: edi and ecx, not rdi and rcx. */
ins_a32:
	mov	%rbx, %rdi
	mov	$0x80, %dx
	.byte	0x67, 0xf3, 0x6c	/* addr32 rep insb */
	hlt
outs_gs:
	mov	%rbx, %rsi
	mov	$0xe9, %dx
	.byte	0xf3, 0x65, 0x6e	/* rep outsb %gs:(%rsi), gs base 0 */
	hlt
/* 64-bit code does not check es: a null one works. */
ins_es_null:
	xor	%eax, %eax
	mov	%ax, %es
	mov	%rbx, %rdi
	mov	$0x80, %dx
	rep insb
	hlt
outsw_once:
	mov	%rbx, %rsi
	mov	$0xe9, %dx
	outsw				/* no rep: one word, rcx unused */
	hlt
outs_down:
	std
	mov	%rbx, %rsi
	mov	$0xe9, %dx
	rep outsb
	cld
	hlt
outs_a32:
	mov	%rbx, %rsi
	mov	$0xe9, %dx
	.byte	0x67, 0xf3, 0x6e	/* addr32 rep outsb */
	hlt

msg:	.ascii	"rep outsb ok\n"
