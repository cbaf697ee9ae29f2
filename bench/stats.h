/* Clock, latency samples, process readings (/proc/<pid>: memory, CPU time)
 * and the allocation and fatal-error helpers shared by every file of the
 * load generator. */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Monotonic time in nanoseconds. */
uint64_t now_ns(void);
void sleep_s(double seconds);

/* A growable array of latency samples in nanoseconds. Zero-initialised is an
 * empty set; samples_release() frees the storage. */
struct samples {
	uint64_t *v;
	size_t n, cap;
	int sorted;
};

void samples_add(struct samples *s, uint64_t ns);
/* Merge src into dst (src is left unchanged). */
void samples_merge(struct samples *dst, const struct samples *src);
/* q in [0,1]; 0 when empty. Sorts in place on first use. */
uint64_t samples_quantile(struct samples *s, double q);
uint64_t samples_max(struct samples *s);
void samples_release(struct samples *s);

/* VmRSS of a process in KiB from /proc/<pid>/status, or -1. */
long proc_rss_kb(pid_t pid);

/* CPU time (user + system, all threads) a process used so far, in
 * seconds, from /proc/<pid>/stat; -1 if unreadable. */
double proc_cpu_s(pid_t pid);
/* CPU time the hypervisor gave to others while this machine's cores wanted it (the steal
 * of /proc/stat, all cores), in seconds since boot; -1 when unknown. */
double machine_steal_s(void);

/* Die with a message (the generator has no way to continue). */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#endif
