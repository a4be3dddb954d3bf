/*
 * The queue between the cluster's threads and the loop: a thread pushes an
 * item that lives on its own stack and waits until the loop marks it done;
 * cluster_close marks whatever is still queued, so no thread waits for ever.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster_impl.h"
#include "hearth/log.h"

void cluster_item_push(struct cluster *cl, struct item *it)
{
	uint64_t one = 1;

	it->done = it->ok = 0;
	it->next = NULL;
	pthread_mutex_lock(&cl->mu);
	if (cl->stopping) {
		it->done = 1;
		pthread_mutex_unlock(&cl->mu);
		return;
	}
	if (cl->tail)
		cl->tail->next = it;
	else
		cl->head = it;
	cl->tail = it;
	pthread_mutex_unlock(&cl->mu);
	if (write(cl->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("cluster, cannot wake the loop (%s)", strerror(errno));
}

void cluster_item_wait(struct cluster *cl, struct item *it)
{
	pthread_mutex_lock(&cl->mu);
	while (!it->done)
		pthread_cond_wait(&cl->cv, &cl->mu);
	pthread_mutex_unlock(&cl->mu);
}

int cluster_stopping(struct cluster *cl)
{
	pthread_mutex_lock(&cl->mu);
	int s = cl->stopping;
	pthread_mutex_unlock(&cl->mu);
	return s;
}

void cluster_nap(struct cluster *cl, int64_t ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&cl->mu);
	while (!cl->stopping && pthread_cond_timedwait(&cl->cv, &cl->mu, &until) == 0)
		;
	pthread_mutex_unlock(&cl->mu);
}


void cluster_complete(struct cluster *cl, struct item **items, size_t n)
{
	pthread_mutex_lock(&cl->mu);
	for (size_t i = 0; i < n; i++)
		items[i]->done = 1;
	pthread_cond_broadcast(&cl->cv);
	pthread_mutex_unlock(&cl->mu);
}
