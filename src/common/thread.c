/* Scheduling of hearthd's own threads; see include/hearth/thread.h. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "hearth/log.h"
#include "hearth/thread.h"

void thread_setup(const char *name, int nice, const char *who)
{
	pthread_setname_np(pthread_self(), name); /* as top -H and ps show it */
	if (nice && setpriority(PRIO_PROCESS, (id_t)gettid(), nice) < 0)
		log_warning("%s, cannot lower the thread's priority (%s)", who, strerror(errno));
}
