/*
 * How hearthd's own threads present themselves: a name for top -H and ps,
 * and a nice value (Linux's is per thread).
 */
#ifndef HEARTH_THREAD_H
#define HEARTH_THREAD_H

/* Names the calling thread and sets its nice value; a failure is logged with who, never fatal. */
void thread_setup(const char *name, int nice, const char *who);
/*
 * Puts the calling thread in the C locale (thread_setup does): the daemon
 * never sets another, and JSON parsing is cheaper from there.
 */
void thread_use_c_locale(void);
/*
 * Asks the scheduler for short time slices for the calling thread, which
 * answers requests: Linux's EEVDF scheduler (6.12 on) then runs it sooner
 * when it wakes among busy threads of the same priority; older kernels take
 * the request and schedule as before.
 */
void thread_prefer_latency(const char *who);

#endif
