/*
 * The bounded read buffer under every import format (ctl_source.c, ctl_csv.c):
 * it grows up to its limit, and what was consumed is moved out before each read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"


int reader_fill(struct reader *r)
{
	ssize_t n;

	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	if (r->cap - r->len < READ_CHUNK / 2 && r->cap < r->limit) {
		size_t cap = r->cap ? r->cap * 2 : READ_CHUNK;
		char *buf = realloc(r->buf, cap > r->limit ? r->limit : cap);
		if (!buf)
			return -1;
		r->buf = buf;
		r->cap = cap > r->limit ? r->limit : cap;
	}
	if (r->eof || r->len == r->cap)
		return 0;
	do
		n = read(r->fd, r->buf + r->len, r->cap - r->len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (n == 0) {
		r->eof = 1;
		return 0;
	}
	r->len += (size_t)n;
	r->bytes_read += (uint64_t)n;
	return 1;
}
