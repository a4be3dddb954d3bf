/*
 * The readers' notes (hearth/overlay.h): what the writer holds pending and
 * has not flushed, told to the control thread's overlay after each append,
 * flush, forget and restatement, so that reads on their own transactions
 * see it without waiting for the flush.
 */
#include <string.h>

#include "hearth/log.h"
#include "hearth/overlay.h"
#include "hearth/state.h"
#include "hearth/timeline.h"
#include "pending.h"

static void send_note(struct timeline *tl, struct overlay_note *n)
{
	if (!n) {
		log_error("store, out of memory telling the readers about pending state");
		return;
	}
	tl->sink(n, tl->sink_ctx);
}

/* One pending customer's copy into n, with its pending entries from log seq from_seq on. */
static int note_customer(struct timeline *tl, struct overlay_note *n, const struct dirty *d,
			 uint64_t from_seq)
{
	ssize_t ci;

	/* straight into the note: the reader copies it out, off this thread */
	if (cust_encode(d->c, store_type_names(tl->st), overlay_note_records(n)) < 0)
		return -1;
	ci = overlay_note_cust(n, d->c->id, d->c->id_len, 1);
	for (size_t j = 0; ci >= 0 && j < d->n; j++)
		if (d->ev[j].seq >= from_seq &&
		    overlay_note_event(n, (size_t)ci, d->ev[j].ts, d->ev[j].seq, d->ev[j].type,
				       d->ev[j].type_len) < 0)
			return -1;
	return ci < 0 ? -1 : 0;
}

/*
 * What the append changed: the touched customers and their events from the
 * append's first seq on (a customer's pending entries may have been sorted
 * since, so they are told apart by seq, not by position).
 */
void timeline_publish_append(struct timeline *tl, uint64_t from_seq)
{
	struct overlay_note *note = overlay_note_new(OVERLAY_UPDATE, ++tl->gen);

	for (size_t i = 0; note && i < tl->ntouched; i++)
		if (note_customer(tl, note, tl->touched_dirty[i], from_seq) < 0) {
			overlay_note_free(note);
			note = NULL;
		}
	send_note(tl, note);
}

void timeline_publish_flushed(struct timeline *tl, size_t from, size_t to)
{
	struct overlay_note *note;

	if (!tl->sink || from == to)
		return;
	note = overlay_note_new(OVERLAY_FLUSHED, tl->gen);
	for (size_t i = from; note && i < to; i++)
		if (overlay_note_cust(note, tl->job.custs[i], tl->job.lens[i], 0) < 0) {
			overlay_note_free(note);
			note = NULL;
		}
	send_note(tl, note);
}

void timeline_publish_forget(struct timeline *tl, const char *id, size_t len)
{
	struct overlay_note *note = overlay_note_new(OVERLAY_FORGET, tl->gen);

	if (note && overlay_note_cust(note, id, len, 0) < 0) {
		overlay_note_free(note);
		note = NULL;
	}
	send_note(tl, note);
}

/*
 * Only customers still pending: one flushed meanwhile is in the store as
 * changed, and its FLUSHED note has gone out; an UPDATE after it would leave
 * the reader an entry no later note drops.
 */
void timeline_publish_restated(struct timeline *tl)
{
	const struct strmap_slot *slot;
	struct overlay_note *note;

	if (!tl->sink || tl->restated.count == 0)
		return;
	note = overlay_note_new(OVERLAY_UPDATE, ++tl->gen);
	for (size_t i = 0; note && strmap_next(&tl->restated, &i, &slot);) {
		struct dirty *d = strmap_get(&tl->dirty, slot->key, slot->len);
		if (d && note_customer(tl, note, d, UINT64_MAX) < 0) {
			overlay_note_free(note);
			note = NULL;
		}
	}
	strmap_clear(&tl->restated);
	send_note(tl, note);
}

void timeline_set_sink(struct timeline *tl, timeline_sink_fn fn, void *ctx)
{
	const struct strmap_slot *slot;
	struct overlay_note *note;

	tl->sink = fn;
	tl->sink_ctx = ctx;
	if (!fn || tl->dirty.count == 0)
		return;
	note = overlay_note_new(OVERLAY_UPDATE, ++tl->gen);
	for (size_t i = 0; note && strmap_next(&tl->dirty, &i, &slot);)
		if (note_customer(tl, note, slot->value, 0) < 0) {
			overlay_note_free(note);
			note = NULL;
		}
	send_note(tl, note);
}
