/*
 * The daemon's heap, whichever allocator is linked (jemalloc in the daemon,
 * glibc's malloc in sanitizer builds and the tools).
 */
#ifndef HEARTH_HEAP_H
#define HEARTH_HEAP_H

/*
 * Hands freed heap pages back to the system. For the end of a burst (a flush
 * that emptied what ingest left pending, a re-evaluation of everyone), not
 * for every free: pages given back are faulted in again when used.
 */
void heap_release(void);

#endif
