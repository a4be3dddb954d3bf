/* Counters and small state shown across threads (see include/hearth/board.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/board.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/limits.h"
#include "hearth/metrics.h"
#include "hearth/rules.h"
#include "hearth/silence.h"

struct rule_error {
	char rule[HEARTH_NAME_MAX + 1];
	char error[sizeof(((struct rule *)0)->last_error)];
};

struct board {
	pthread_mutex_t lock;
	struct board_status status;
	struct board_control control;
	struct metrics_writer metrics;
	struct wbuf extra;
	struct rule_error *errors;
	size_t nerrors;
	struct silence *silences;
	size_t nsilences;
};

struct board *board_new(void)
{
	struct board *b = calloc(1, sizeof(*b));

	if (b && pthread_mutex_init(&b->lock, NULL) != 0) {
		free(b);
		return NULL;
	}
	if (b)
		wbuf_init(&b->extra);
	return b;
}

void board_free(struct board *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	wbuf_free(&b->extra);
	free(b->errors);
	free(b->silences);
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

int board_put_metrics(struct board *b, const struct metrics_writer *m, const void *extra, size_t len)
{
	int rc = 0;

	pthread_mutex_lock(&b->lock);
	b->metrics = *m;
	wbuf_reset(&b->extra);
	if (len)
		wbuf_put(&b->extra, extra, len);
	if (b->extra.failed) {
		wbuf_reset(&b->extra);  /* a cut text would be wrong: none until the next post */
		rc = -1;
	}
	pthread_mutex_unlock(&b->lock);
	return rc;
}

void board_get_metrics(struct board *b, struct metrics_writer *out, struct wbuf *extra)
{
	pthread_mutex_lock(&b->lock);
	*out = b->metrics;
	if (b->extra.len)
		wbuf_put(extra, b->extra.data, b->extra.len);
	pthread_mutex_unlock(&b->lock);
}

/* Built outside the lock: the writer does not hold the reader up while it copies. */
int board_put_rule_errors(struct board *b, const struct ruleset *rs)
{
	struct rule_error *e = calloc(rs->n ? rs->n : 1, sizeof(*e)), *old;
	size_t n = 0;

	if (!e)
		return -1;
	for (size_t i = 0; i < rs->n; i++) {
		if (!rs->rules[i].last_error[0])
			continue;
		snprintf(e[n].rule, sizeof(e[n].rule), "%s", rs->rules[i].cfg->name);
		snprintf(e[n].error, sizeof(e[n].error), "%s", rs->rules[i].last_error);
		n++;
	}
	pthread_mutex_lock(&b->lock);
	old = b->errors;
	b->errors = e;
	b->nerrors = n;
	pthread_mutex_unlock(&b->lock);
	free(old);
	return 0;
}

int board_get_rule_error(struct board *b, const char *rule, char *out, size_t size)
{
	int found = 0;

	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < b->nerrors && !found; i++)
		if (strcmp(b->errors[i].rule, rule) == 0) {
			snprintf(out, size, "%s", b->errors[i].error);
			found = 1;
		}
	pthread_mutex_unlock(&b->lock);
	return found;
}

int board_put_silences(struct board *b, const struct silence *s, size_t n)
{
	struct silence *copy = malloc((n ? n : 1) * sizeof(*copy)), *old;

	if (!copy)
		return -1;
	if (n)
		memcpy(copy, s, n * sizeof(*copy));
	pthread_mutex_lock(&b->lock);
	old = b->silences;
	b->silences = copy;
	b->nsilences = n;
	pthread_mutex_unlock(&b->lock);
	free(old);
	return 0;
}

int board_get_silences(struct board *b, struct silence **out, size_t *n)
{
	int rc = 0;

	*out = NULL;
	pthread_mutex_lock(&b->lock);
	*n = b->nsilences;
	if (*n && !(*out = malloc(*n * sizeof(**out))))
		rc = -1;
	else if (*n)
		memcpy(*out, b->silences, *n * sizeof(**out));
	pthread_mutex_unlock(&b->lock);
	return rc;
}
