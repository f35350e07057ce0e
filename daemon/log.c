/*
 * kvmrund's log: formats a message and writes it as one line to stderr with
 * an sd-daemon priority prefix.  stdio locks the stream for each call, so one
 * fprintf per line keeps lines from different threads whole.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "log.h"

#define LOG_LINE_MAX 1024

/* Set once by main before any thread starts, read-only afterwards. */
static int log_verbosity;

void
log_init(int verbosity)
{
	log_verbosity = verbosity;
}

static void
log_vline(const char *prefix, const char *token, bool with_errno, const char *fmt,
	  va_list ap)
{
	char message[LOG_LINE_MAX];
	char errbuf[128];
	const char *reason = "";
	const char *sep = "";
	int saved_errno = errno;

	if (with_errno) {
		/* The GNU strerror_r: thread-safe, returns the text to use. */
		reason = strerror_r(saved_errno, errbuf, sizeof(errbuf));
		sep = ": ";
	}
	vsnprintf(message, sizeof(message), fmt, ap);
	fprintf(stderr, "%s%s: %s%s%s\n", prefix, token, message, sep, reason);
	errno = saved_errno;
}

void
log_warn(const char *token, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(SD_WARNING, token, true, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *token, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(SD_WARNING, token, false, fmt, ap);
	va_end(ap);
}

void
log_errx(const char *token, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(SD_ERR, token, false, fmt, ap);
	va_end(ap);
}

void
log_info(const char *token, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(SD_INFO, token, false, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *token, const char *fmt, ...)
{
	va_list ap;

	if (log_verbosity < 1)
		return;
	va_start(ap, fmt);
	log_vline(SD_DEBUG, token, false, fmt, ap);
	va_end(ap);
}

void
fatal(const char *token, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(SD_ERR, token, true, fmt, ap);
	va_end(ap);
	exit(EXIT_FAILURE);
}

void
fatalx(const char *token, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(SD_ERR, token, false, fmt, ap);
	va_end(ap);
	exit(EXIT_FAILURE);
}
