/*
 * kvmrund's log: one line per message on stderr, each with the sd-daemon
 * priority prefix ("<4>") so journald keeps the level.  Every function takes
 * a token naming the subsystem ("server", "job").  Safe from any thread.
 */
#ifndef KVMRUN_LOG_H
#define KVMRUN_LOG_H

/* 0 logs errors, warnings and info; 1 or more (-v) adds debug. */
void log_init(int verbosity);

/* log_warn and fatal add strerror(errno); the x variants do not. */
void log_warn(const char *token, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_warnx(const char *token, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_errx(const char *token, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_info(const char *token, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_debug(const char *token, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* For startup and broken invariants only: logs and exits 1. */
void fatal(const char *token, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
void fatalx(const char *token, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

#endif
