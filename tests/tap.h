/*
 * A few lines of TAP (Test Anything Protocol) for the C tests, read by
 * automake's tap-driver.sh so each case counts on its own in the summary.
 */
#ifndef KVMRUN_TAP_H
#define KVMRUN_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_count;
static int tap_failed;

__attribute__((format(printf, 2, 3))) static inline int
tap_ok(int passed, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", passed ? "" : "not ", ++tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!passed)
		tap_failed++;
	return passed;
}

__attribute__((format(printf, 1, 2))) static inline void
tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

__attribute__((format(printf, 2, 3))) static inline void
tap_skip(const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("ok %d - %s # SKIP ", ++tap_count, name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Skips the whole file: the plan 1..0 with a reason. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void
tap_skip_all(const char *fmt, ...)
{
	va_list ap;

	printf("1..0 # SKIP ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(0);
}

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
