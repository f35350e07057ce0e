/*
 * The CPU-state guest of tests/test-state.c, 64-bit code run at ring 3:
 * rdi picks one operation on the state the request gave, then it halts
 * (at ring 3 a HLT is the #GP the engine reports as a halt).
 *   0 nothing  1 addps  2 pshufb  3 cvttsd2si into rbx  4 vfmadd231ps ymm
 *   5 fsqrt  6 stmxcsr to 0x800, ldmxcsr from 0x804  7 syscall
 *   8 rdfsbase into rbx  9 cpuid leaf 1, then vaddps (ecx tells AVX)
 * syscall_entry, the lstar of op 7, is at offset 0x200: it halts at ring 0.
 */
	.code64
	.globl _start
_start:
	cmp	$1, %edi
	je	op_addps
	cmp	$2, %edi
	je	op_pshufb
	cmp	$3, %edi
	je	op_cvttsd2si
	cmp	$4, %edi
	je	op_fma
	cmp	$5, %edi
	je	op_fsqrt
	cmp	$6, %edi
	je	op_mxcsr
	cmp	$7, %edi
	je	op_syscall
	cmp	$8, %edi
	je	op_rdfsbase
	cmp	$9, %edi
	je	op_cpuid_avx
	hlt
op_addps:
	addps	%xmm1, %xmm0
	hlt
op_pshufb:
	pshufb	%xmm1, %xmm0
	hlt
op_cvttsd2si:
	cvttsd2si %xmm0, %rbx
	hlt
op_fma:
	vfmadd231ps %ymm2, %ymm1, %ymm0
	hlt
op_fsqrt:
	fsqrt
	hlt
op_mxcsr:
	stmxcsr	0x800
	ldmxcsr	0x804
	hlt
op_syscall:
	syscall
	hlt
op_rdfsbase:
	rdfsbase %rbx
	hlt
op_cpuid_avx:
	mov	$1, %eax
	xor	%ecx, %ecx
	cpuid
	vaddps	%ymm0, %ymm0, %ymm0
	hlt

	.org	0x200
syscall_entry:
	hlt
