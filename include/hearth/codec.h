/*
 * Fixed-width, explicit encodings for what hearth stores: big-endian integers
 * (so LMDB's byte order is numeric and time order), length-prefixed strings,
 * and bounds-checked reading. Every record and key is built with these, so no
 * module hand-packs bytes.
 */
#ifndef HEARTH_CODEC_H
#define HEARTH_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A growable byte buffer; `failed` latches the first allocation failure. */
struct wbuf {
	uint8_t *data;
	size_t len, cap;
	int failed;
};

void wbuf_init(struct wbuf *b);
void wbuf_free(struct wbuf *b);
void wbuf_reset(struct wbuf *b);
static inline void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static inline uint64_t i64_to_ordered(int64_t v) { return (uint64_t)v ^ (1ULL << 63); }

/* Grows the buffer first (or latches failed). */
void wbuf_put_slow(struct wbuf *b, const void *data, size_t len);
/* Room for more bytes after the end, for a writer that fills them itself; -1 (and failed) out of memory. */
int wbuf_reserve(struct wbuf *b, size_t more);
/*
 * Room in the array *p (of *cap elements of size) for need: exactly need at
 * first, then at least double; -1 out of memory.
 */
int array_reserve(void **p, size_t *cap, size_t need, size_t size);

/*
 * Inline: records are built a few bytes at a time (a customer record is some
 * forty puts), and most puts fit in the buffer as it is.
 */
static inline void wbuf_put(struct wbuf *b, const void *data, size_t len)
{
	if (len > b->cap - b->len || b->failed) {
		wbuf_put_slow(b, data, len);
		return;
	}
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
}

static inline void wbuf_u8(struct wbuf *b, uint8_t v)
{
	wbuf_put(b, &v, 1);
}

static inline void wbuf_u16(struct wbuf *b, uint16_t v)
{
	uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	wbuf_put(b, p, 2);
}

static inline void wbuf_u32(struct wbuf *b, uint32_t v)
{
	uint8_t p[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	wbuf_put(b, p, 4);
}

static inline void wbuf_u64(struct wbuf *b, uint64_t v)
{
	uint8_t p[8];
	be64_put(p, v);
	wbuf_put(b, p, 8);
}

/* Signed, with the sign bit flipped so that byte order is numeric order. */
static inline void wbuf_i64(struct wbuf *b, int64_t v)
{
	wbuf_u64(b, i64_to_ordered(v));
}

/* A string with a one-byte length (≤ 255 bytes). */
static inline void wbuf_str8(struct wbuf *b, const char *s, size_t len)
{
	if (len > 255) {
		b->failed = 1;
		return;
	}
	wbuf_u8(b, (uint8_t)len);
	wbuf_put(b, s, len);
}
void wbuf_varint_slow(struct wbuf *b, uint64_t v);
/* LEB128: small numbers (counts, gaps between times) in few bytes; inline, as wbuf_put. */
static inline void wbuf_varint(struct wbuf *b, uint64_t v)
{
	if (b->cap - b->len < 10 || b->failed) {
		wbuf_varint_slow(b, v);
		return;
	}
	uint8_t *p = b->data + b->len;
	for (; v >= 0x80; v >>= 7)
		*p++ = (uint8_t)(v | 0x80);
	*p++ = (uint8_t)v;
	b->len = (size_t)(p - b->data);
}
/* A signed difference (taken modulo 2^64) as a small unsigned number, for a varint. */
static inline uint64_t zigzag64(uint64_t diff) { return (diff << 1) ^ (uint64_t)((int64_t)diff >> 63); }
static inline uint64_t unzigzag64(uint64_t v) { return (v >> 1) ^ (0 - (v & 1)); }

/* Reading a record; `failed` latches the first short read. */
struct rbuf {
	const uint8_t *p, *end;
	int failed;
};

static inline void rbuf_init(struct rbuf *r, const void *data, size_t len)
{
	r->p = data;
	r->end = r->p + len;
	r->failed = 0;
}
/* Borrows len bytes; NULL (and failed) if fewer remain. */
static inline const void *rbuf_bytes(struct rbuf *r, size_t len)
{
	const void *p = r->p;

	if (r->failed || (size_t)(r->end - r->p) < len) {
		r->failed = 1;
		return NULL;
	}
	r->p += len;
	return p;
}
/* Inline, as the varints of every record decoded are read byte by byte. */
static inline uint8_t rbuf_u8(struct rbuf *r)
{
	if (r->failed || r->p == r->end) {
		r->failed = 1;
		return 0;
	}
	return *r->p++;
}
uint16_t rbuf_u16(struct rbuf *r);
uint32_t rbuf_u32(struct rbuf *r);
uint64_t rbuf_u64(struct rbuf *r);
int64_t rbuf_i64(struct rbuf *r);
uint64_t rbuf_varint_slow(struct rbuf *r);
static inline uint64_t rbuf_varint(struct rbuf *r)
{
	/* one byte: most counts and small gaps */
	if (!r->failed && r->p != r->end && !(*r->p & 0x80))
		return *r->p++;
	return rbuf_varint_slow(r);
}
/* Borrows a one-byte-length string. */
const char *rbuf_str8(struct rbuf *r, size_t *len);

/* Fixed-size big-endian helpers for keys (be64_put is above, beside the puts). */
uint64_t be64_get(const uint8_t *p);
static inline int64_t ordered_to_i64(uint64_t v) { return (int64_t)(v ^ (1ULL << 63)); }

#endif
