/* The daemon's heap; see include/hearth/heap.h. */
#include <malloc.h>
#include <stddef.h>

#include "hearth/heap.h"

/* jemalloc's control call when the daemon is linked with it (weak: absent otherwise). */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
	__attribute__((weak));

void heap_release(void)
{
	if (mallctl)
		mallctl("arena.4096.purge", NULL, NULL, NULL, 0); /* 4096: every arena */
	else
		malloc_trim(0);
}
