/* Scheduling of hearthd's own threads; see include/hearth/thread.h. */
#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hearth/log.h"
#include "hearth/thread.h"

/* A slice of 0.1 ms, the shortest the kernel grants (it clamps to 0.1-100 ms). */
#define LATENCY_SLICE_NS 100000

/*
 * sched_setattr(2)'s argument, as the kernel lays it out (its first version,
 * 48 bytes): glibc before 2.41 has no wrapper, and <linux/sched/types.h>
 * clashes with <pthread.h>.
 */
struct sched_attr_v0 {
	uint32_t size;
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
};
#define POLICY_NORMAL 0 /* SCHED_OTHER */

void thread_prefer_latency(const char *who)
{
	struct sched_attr_v0 attr = { .size = sizeof(attr), .sched_policy = POLICY_NORMAL,
				   .sched_nice = getpriority(PRIO_PROCESS, (id_t)gettid()),
				   .sched_runtime = LATENCY_SLICE_NS };

	if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
		log_warning("%s, cannot ask for short time slices (%s)", who, strerror(errno));
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/*
 * json-c switches the calling thread to a "C" numeric locale around every
 * parse (duplocale, newlocale, freelocale: three calls under glibc's global
 * locale lock, 15% of the parser thread's time). A thread already in glibc's
 * C locale object pays none of it: those calls hand that object back as is.
 */
void thread_use_c_locale(void)
{
	pthread_once(&c_locale_once, make_c_locale);
	if (c_locale)
		uselocale(c_locale);
}

void thread_setup(const char *name, int nice, const char *who)
{
	thread_use_c_locale();
	pthread_setname_np(pthread_self(), name); /* as top -H and ps show it */
	if (nice && setpriority(PRIO_PROCESS, (id_t)gettid(), nice) < 0)
		log_warning("%s, cannot lower the thread's priority (%s)", who, strerror(errno));
}
