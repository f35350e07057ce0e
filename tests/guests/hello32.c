/*
 * The seed's own 32-bit check, in C: built with gcc -O2 -m32 -ffreestanding
 * -nostdlib -fno-pic (no multilib needed: nothing of libc or libgcc is
 * linked) and run in protected and paged mode.  Prints "Hello, world!\n" on
 * port 0xE9, stores 42 at 0x400 and halts with 42 in eax.  _start is the
 * only function, so it lies at the load address, where the run starts.
 */
static inline void
outb(unsigned short port, unsigned char value)
{
	__asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

void __attribute__((noreturn)) _start(void);

void
_start(void)
{
	for (const char *p = "Hello, world!\n"; *p != '\0'; p++)
		outb(0xe9, (unsigned char)*p);
	*(volatile long *)0x400 = 42;
	for (;;)
		__asm__ volatile("hlt" : : "a"(42) : "memory");
}
