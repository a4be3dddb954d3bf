/* Byte buffers for records and keys: see include/hearth/codec.h. */
#include <stdlib.h>
#include <string.h>

#include "hearth/codec.h"

void wbuf_init(struct wbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void wbuf_free(struct wbuf *b)
{
	free(b->data);
	wbuf_init(b);
}

void wbuf_reset(struct wbuf *b)
{
	b->len = 0;
	b->failed = 0;
}

int array_reserve(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	/*
	 * The first size is what is needed and growth is by half: many small
	 * arrays (a customer's types, 168 bytes each) stay close to their size,
	 * and their memory is most of what pending customers take.
	 */
	size_t n = *cap + *cap / 2 > need ? *cap + *cap / 2 : need;
	if (size && n > SIZE_MAX / size)
		return -1;
	void *more = realloc(*p, n * size);
	if (!more)
		return -1;
	*p = more;
	*cap = n;
	return 0;
}

int wbuf_reserve(struct wbuf *b, size_t more)
{
	if (b->failed)
		return -1;
	if (b->len + more <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more)
		cap *= 2;
	uint8_t *data = realloc(b->data, cap);
	if (!data) {
		b->failed = 1;
		return -1;
	}
	b->data = data;
	b->cap = cap;
	return 0;
}

void wbuf_put_slow(struct wbuf *b, const void *data, size_t len)
{
	if (len == 0 || wbuf_reserve(b, len) < 0)
		return;
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

uint64_t be64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

uint16_t rbuf_u16(struct rbuf *r)
{
	const uint8_t *p = rbuf_bytes(r, 2);
	return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t rbuf_u32(struct rbuf *r)
{
	const uint8_t *p = rbuf_bytes(r, 4);
	return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

uint64_t rbuf_u64(struct rbuf *r)
{
	const uint8_t *p = rbuf_bytes(r, 8);
	return p ? be64_get(p) : 0;
}

int64_t rbuf_i64(struct rbuf *r)
{
	return ordered_to_i64(rbuf_u64(r));
}

const char *rbuf_str8(struct rbuf *r, size_t *len)
{
	*len = rbuf_u8(r);
	const char *s = rbuf_bytes(r, *len);
	if (!s)
		*len = 0;
	return s;
}

void wbuf_varint_slow(struct wbuf *b, uint64_t v)
{
	uint8_t p[10];
	size_t n = 0;

	do {
		p[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			p[n] |= 0x80;
		n++;
	} while (v);
	wbuf_put(b, p, n);
}

uint64_t rbuf_varint_slow(struct rbuf *r)
{
	uint64_t v = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		uint8_t byte = rbuf_u8(r);
		if (r->failed)
			return 0;
		v |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80))
			return v;
	}
	r->failed = 1;
	return 0;
}
