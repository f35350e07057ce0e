/*
 * The progress bar (progress.h): one line on a terminal, rewritten in place
 * with \r and cleared with ESC [ K.
 */
#include "config.h"

#include <time.h>
#include <unistd.h>

#include "progress.h"

#define PROGRESS_WIDTH 30
#define PROGRESS_INTERVAL_NS 100000000u	/* 10 redraws a second at most */

static uint64_t
progress_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
progress_init(struct progress *p, FILE *fp, bool enabled, uint64_t total)
{
	*p = (struct progress){.total = total};
	if (enabled && isatty(fileno(fp))) {
		p->fp = fp;
		p->start_ns = progress_now_ns();
	}
}

static void
progress_draw(struct progress *p, uint64_t now)
{
	double seconds = (double)(now - p->start_ns) / 1e9;
	double rate = seconds > 0 ? (double)p->done / seconds : 0;
	uint64_t filled = p->total ? p->done * PROGRESS_WIDTH / p->total : 0;
	uint64_t eta = rate > 0 ? (uint64_t)((double)(p->total - p->done) / rate) : 0;
	char bar[PROGRESS_WIDTH + 1];

	for (uint64_t i = 0; i < PROGRESS_WIDTH; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[PROGRESS_WIDTH] = '\0';
	fprintf(p->fp, "\r[%s] %llu/%llu %.0f/s ETA %llu:%02llu\033[K", bar,
		(unsigned long long)p->done, (unsigned long long)p->total, rate,
		(unsigned long long)(eta / 60), (unsigned long long)(eta % 60));
	fflush(p->fp);
	p->drawn = true;
	p->drawn_ns = now;
}

void
progress_add(struct progress *p, uint64_t n)
{
	uint64_t now;

	p->done += n;
	if (p->fp == NULL)
		return;
	now = progress_now_ns();
	if (!p->drawn || now - p->drawn_ns >= PROGRESS_INTERVAL_NS || p->done == p->total)
		progress_draw(p, now);
}

void
progress_clear(struct progress *p)
{
	if (p->fp != NULL && p->drawn) {
		fputs("\r\033[K", p->fp);
		fflush(p->fp);
		p->drawn = false;
	}
}
