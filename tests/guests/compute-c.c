/*
 * A guest built by the system C compiler at -O2, which uses SSE freely (all
 * double arithmetic is SSE2 on x86-64).  _start passes rdi to
 * guest_main, stores the answer at 0x500 and halts; rax holds it too.
 * The test computes the same sum natively and compares.
 */
__asm__(".globl _start\n"
	"_start:\n"
	"	call	guest_main\n"
	"	mov	%rax, 0x500\n"
	"	hlt\n");

unsigned long long guest_main(unsigned long long n);

/* Partial sums of the Basel series, scaled to an integer. */
unsigned long long
guest_main(unsigned long long n)
{
	double sum = 0.0;

	for (unsigned long long i = 1; i <= n; i++)
		sum += 1.0 / ((double)i * (double)i);
	return (unsigned long long)(sum * 1e12);
}
