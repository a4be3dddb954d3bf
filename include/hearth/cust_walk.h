/*
 * Every customer once, a few per step, for work done in slices between the
 * loop's other work (backtest, reload --dry-run): first the customers not
 * stored yet when the walk began (listed then, rather than forcing a flush
 * that would hold the loop), then the stored ones in id order, each step on
 * a read transaction of its own, without the fresh ones a second time.
 */
#ifndef HEARTH_CUST_WALK_H
#define HEARTH_CUST_WALK_H

#include <stddef.h>

#include "hearth/err.h"
#include "hearth/limits.h"
#include "hearth/strmap.h"
#include "hearth/timeline.h"

struct store;

struct cust_walk {
	struct store *st;
	struct id_list fresh;
	size_t next_fresh;
	struct strmap fresh_set;
	char after[HEARTH_ID_MAX + 1];  /* the position in the store's customer order */
	size_t after_len;
	int started;
};

/* fn sees one customer by id, reading through txn. */
typedef int (*cust_walk_fn)(void *ctx, MDB_txn *txn, const char *id, size_t len, struct herr *err);

/* Over the customers of st, those still pending in tl first. */
int cust_walk_init(struct cust_walk *w, struct store *st, struct timeline *tl, struct herr *err);
void cust_walk_free(struct cust_walk *w);
/* Up to n customers: 1 while more remain, 0 past the last, -1 on an error (fn's too). */
int cust_walk_step(struct cust_walk *w, size_t n, cust_walk_fn fn, void *ctx, struct herr *err);

#endif
