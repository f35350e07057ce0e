/*
 * String port I/O at ring 3 in 32-bit protected (or paged) mode, for the
 * checks the engine makes before it carries an ins or outs out itself: ebp
 * picks the case (see the table), ebx is the address (esi or edi), ecx the
 * count, as the test sets them.  Each case does its I/O instruction, then
 * halts; one the CPU would fault on ends the run as that fault.  Port 0x80
 * is a log port for the test (it reads 0xff), 0xe9 the console.
 */
	.code32
	.globl _start
_start:
	cmp	$(cases_end - cases) / 4, %ebp
	jae	unknown
	jmp	*cases(, %ebp, 4)
unknown:
	out	%al, $0x99		/* an io exit says the test asked for no case */

	.p2align 2
cases:	.long	ins, outs, ins_a16, outs_cs, outs_fs_null, ins_es_code, ins_fs
	.long	outs_ds_code64, read_ds_code64, outs_down
cases_end:

ins:	mov	%ebx, %edi
	mov	$0x80, %dx
	rep insb
	hlt
outs:	mov	%ebx, %esi
	mov	$0xe9, %dx
	rep outsb
	hlt
/* 0x67: di and cx, not edi and ecx. */
ins_a16:
	mov	%ebx, %edi
	mov	$0x80, %dx
	.byte	0x67, 0xf3, 0x6c	/* addr16 rep insb */
	hlt
outs_cs:
	mov	%ebx, %esi
	mov	$0xe9, %dx
	.byte	0xf3, 0x2e, 0x6e	/* rep outsb %cs:(%esi): code segments are readable */
	hlt
outs_fs_null:
	xor	%eax, %eax
	mov	%ax, %fs
	mov	%ebx, %esi
	mov	$0xe9, %dx
	.byte	0xf3, 0x64, 0x6e	/* rep outsb %fs:(%esi): a null fs, #GP(0) */
	hlt
ins_es_code:
	mov	$0x23, %ax
	mov	%ax, %es		/* the user code segment: readable, not writable */
	mov	%ebx, %edi
	mov	$0x80, %dx
	rep insb			/* #GP(0) */
	hlt
/* An override does not apply to ins, which always writes through es. */
ins_fs:
	xor	%eax, %eax
	mov	%ax, %fs
	mov	%ebx, %edi
	mov	$0x80, %dx
	.byte	0x64, 0xf3, 0x6c	/* fs rep insb */
	hlt
/* Selector 0x33 (64-bit code) is a readable 16-bit code segment here. */
outs_ds_code64:
	mov	$0x33, %ax
	mov	%ax, %ds
	mov	%ebx, %esi
	mov	$0xe9, %dx
	rep outsb
	hlt
read_ds_code64:
	mov	$0x33, %ax
	mov	%ax, %ds
	mov	(%ebx), %eax		/* past its limit in protected mode: #GP(0) */
	hlt
outs_down:
	std
	mov	%ebx, %esi
	mov	$0xe9, %dx
	rep outsb
	cld
	hlt

msg:	.ascii	"rep outsb ok\n"
