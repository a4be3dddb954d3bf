/*
 * How hearthd's own threads present themselves: a name for top -H and ps,
 * and a nice value (Linux's is per thread).
 */
#ifndef HEARTH_THREAD_H
#define HEARTH_THREAD_H

/* Names the calling thread and sets its nice value; a failure is logged with who, never fatal. */
void thread_setup(const char *name, int nice, const char *who);

#endif
