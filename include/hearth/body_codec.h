/*
 * Notification bodies as the outbox keeps them: compressed with zstd against
 * a built-in dictionary of the body's shape (PROTOCOL.md §4.4), about a quarter of
 * their JSON. Written by the writer, read back by replay, forget and the
 * cluster's alerts thread; each thread uses a codec of its own.
 */
#ifndef HEARTH_BODY_CODEC_H
#define HEARTH_BODY_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/codec.h"

struct body_codec;

struct body_codec *body_codec_new(void);
void body_codec_free(struct body_codec *bc);
/* Appends the stored form of body to out; -1 out of memory. */
int body_codec_pack(struct body_codec *bc, const char *body, size_t len, struct wbuf *out);
/*
 * Appends the stored form of a body given without its seq: rest is what
 * notification_body_rest writes, and the seq is the record's key; -1 on failure.
 */
int body_codec_pack_rest(struct body_codec *bc, const char *rest, size_t len, struct wbuf *out);
/*
 * The JSON of the stored body of notification seq: the stored bytes themselves
 * when they were kept plain (before compression, or a body that does not
 * shrink), else the body decompressed into bc (valid until its next call).
 * NULL: damaged.
 */
const char *body_codec_unpack(struct body_codec *bc, uint64_t seq, const void *stored, size_t len,
			      size_t *body_len);

#endif
