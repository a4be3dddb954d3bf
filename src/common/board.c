/* Counters shown across threads (see include/hearth/board.h). */
#include <pthread.h>
#include <stdlib.h>

#include "hearth/board.h"

struct board {
	pthread_mutex_t lock;
	struct board_status status;
	struct board_control control;
};

struct board *board_new(void)
{
	struct board *b = calloc(1, sizeof(*b));

	if (b && pthread_mutex_init(&b->lock, NULL) != 0) {
		free(b);
		return NULL;
	}
	return b;
}

void board_free(struct board *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

void board_put_status(struct board *b, const struct board_status *s)
{
	pthread_mutex_lock(&b->lock);
	b->status = *s;
	pthread_mutex_unlock(&b->lock);
}

void board_get_status(struct board *b, struct board_status *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->status;
	pthread_mutex_unlock(&b->lock);
}

void board_put_control(struct board *b, const struct board_control *c)
{
	pthread_mutex_lock(&b->lock);
	b->control = *c;
	pthread_mutex_unlock(&b->lock);
}

void board_get_control(struct board *b, struct board_control *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->control;
	pthread_mutex_unlock(&b->lock);
}
