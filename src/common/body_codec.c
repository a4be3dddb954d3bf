/*
 * Outbox bodies, compressed (hearth/body_codec.h).
 *
 *   stored   '{' ...          the JSON itself (records before compression)
 *            0x01 zstd frame  compressed against dictionary 1 below
 *            0x02 zstd frame  the body after its seq, likewise: the seq is the
 *                             record's key, so that a re-evaluation worker can
 *                             compress a body before the writer numbers it
 *
 * One body alone compresses poorly (to ~60%): it is short and every key appears
 * once. Against a dictionary of typical bodies, which zstd reads as content
 * that came before, the keys, the shipped rules' names and the phrases of
 * their summaries are back-references: a quarter of the size on the bench's
 * notifications (docs/PERFORMANCE.md). The dictionary is part of the format:
 * it never changes; another one would take the next marker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "hearth/body_codec.h"

#define MARK_DICT1 0x01
#define MARK_REST1 0x02
#define SEQ_PREFIX_MAX 32       /* {"seq": and 20 digits */
#define LEVEL      1

/* Bodies shaped as the daemon writes them, one per shipped rule and kind. */
static const char dict1[] =
	"{\"seq\":1,\"ts\":\"2026-10-01T00:00:00.000Z\",\"kind\":\"repeat\",\"alert\":{\"rule\":\"new_customer_wobble\","
	"\"customer\":\"C1001\",\"severity\":\"warning\",\"state\":\"firing\",\"since\":\"2026-10-01T00:00:00.000Z\","
	"\"active_since\":\"2026-09-01T00:00:00.000Z\",\"summary\":\"Lin Wei (C1001), a customer for 20d, complained 2 "
	"time(s) in the last 14 days\",\"values_at\":\"2026-10-01T00:00:00.000Z\",\"values\":{\"age()\":1728000000,"
	"\"count(complaint, 14d)\":2},\"labels\":{\"team\":\"service\"},\"acked\":true,\"acked_by\":\"ops\"},"
	"\"customer\":{\"id\":\"C1001\",\"name\":\"Lin Wei\",\"owner\":\"zhang\",\"tier\":\"B\"}}"
	"{\"seq\":2,\"ts\":\"2026-10-01T00:00:00.000Z\",\"kind\":\"firing\",\"alert\":{\"rule\":\"upsell_window\","
	"\"customer\":\"C1002\",\"severity\":\"info\",\"state\":\"firing\",\"since\":\"2026-10-01T00:00:00.000Z\","
	"\"summary\":\"Customer 0000002 (C1002) bought 30d 2h ago and has had no offer since: time to follow up\","
	"\"values_at\":\"2026-10-01T00:00:00.000Z\",\"values\":{\"since(purchase)\":2592000000},\"labels\":{\"team\":"
	"\"sales\"}},\"customer\":{\"id\":\"C1002\",\"name\":\"Customer 0000002\",\"owner\":\"li\",\"tier\":\"C\"}}"
	"{\"seq\":3,\"ts\":\"2026-10-01T00:00:00.000Z\",\"kind\":\"firing\",\"alert\":{\"rule\":\"followup_below_cadence\","
	"\"customer\":\"C1003\",\"severity\":\"info\",\"state\":\"firing\",\"since\":\"2026-10-01T00:00:00.000Z\","
	"\"summary\":\"Customer 0000003 (C1003) was contacted 1 time(s) in 30 days; tier C needs about two a month\","
	"\"values_at\":\"2026-10-01T00:00:00.000Z\",\"values\":{\"tier\":\"C\",\"count(touch, 30d)\":1},\"labels\":"
	"{\"team\":\"sales\"}},\"customer\":{\"id\":\"C1003\",\"name\":\"Customer 0000003\",\"owner\":\"wang\",\"tier\":\"C\"}}"
	"{\"seq\":4,\"ts\":\"2026-10-01T00:00:00.000Z\",\"kind\":\"firing\",\"alert\":{\"rule\":\"signed_needs_care\","
	"\"customer\":\"C1004\",\"severity\":\"warning\",\"state\":\"firing\",\"since\":\"2026-10-01T00:00:00.000Z\","
	"\"summary\":\"Customer 0000004 (C1004) signed with us but has had no contact for 45d 3h\",\"values_at\":"
	"\"2026-10-01T00:00:00.000Z\",\"values\":{\"since(touch)\":3888000000},\"labels\":{\"team\":\"sales\"}},"
	"\"customer\":{\"id\":\"C1004\",\"name\":\"Customer 0000004\",\"owner\":\"liu\",\"tier\":\"B\"}}"
	"{\"seq\":5,\"ts\":\"2026-10-01T00:00:00.000Z\",\"kind\":\"firing\",\"alert\":{\"rule\":\"promise_overdue\","
	"\"customer\":\"C1005\",\"severity\":\"critical\",\"state\":\"firing\",\"since\":\"2026-10-01T00:00:00.000Z\","
	"\"summary\":\"Customer 0000005 (C1005) has 1 promise(s) past due (owner chen)\",\"values_at\":"
	"\"2026-10-01T00:00:00.000Z\",\"values\":{\"overdue(promise)\":1},\"labels\":{\"team\":\"sales\"}},"
	"\"customer\":{\"id\":\"C1005\",\"name\":\"Customer 0000005\",\"owner\":\"chen\",\"tier\":\"A\"}}"
	"{\"seq\":6,\"ts\":\"2026-10-01T00:00:00.000Z\",\"kind\":\"firing\",\"alert\":{\"rule\":\"complaint_unresolved\","
	"\"customer\":\"C1006\",\"severity\":\"critical\",\"state\":\"firing\",\"since\":\"2026-10-01T00:00:00.000Z\","
	"\"summary\":\"Customer 0000006 (C1006) has 1 open complaint(s), the oldest open for 2d 4h\",\"values_at\":"
	"\"2026-10-01T00:00:00.000Z\",\"values\":{\"open(complaint)\":1,\"oldest(complaint)\":187200000},\"labels\":"
	"{\"team\":\"service\"}},\"customer\":{\"id\":\"C1006\",\"name\":\"Customer 0000006\",\"owner\":\"zhao\",\"tier\":\"B\"}}"
	"{\"seq\":7,\"ts\":\"2026-10-01T00:00:00.000Z\",\"kind\":\"firing\",\"alert\":{\"rule\":\"cadence_slowing\","
	"\"customer\":\"C1007\",\"severity\":\"warning\",\"state\":\"firing\",\"since\":\"2026-10-01T00:00:00.000Z\","
	"\"active_since\":\"2026-09-01T00:00:00.000Z\",\"summary\":\"Customer 0000007 (C1007) usually buys every 8d 9h but "
	"last bought 171d 20h ago\",\"values_at\":\"2026-10-01T00:00:00.000Z\",\"values\":{\"count(purchase, 365d)\":27,"
	"\"since(purchase)\":14849586192,\"gap(purchase)\":725038458},\"labels\":{\"team\":\"sales\"}},\"customer\":"
	"{\"id\":\"C1007\",\"name\":\"Customer 0000007\",\"owner\":\"wu\",\"tier\":\"A\"}}"
	"{\"seq\":8,\"ts\":\"2026-10-01T00:00:00.000Z\",\"kind\":\"resolved\",\"alert\":{\"rule\":\"customer_cooling\","
	"\"customer\":\"C1008\",\"severity\":\"warning\",\"state\":\"resolved\",\"since\":\"2026-10-01T00:00:00.000Z\","
	"\"resolved_at\":\"2026-10-01T00:00:00.000Z\",\"summary\":\"Customer 0000008 (C1008, tier D) has had no contact "
	"for 364d 10h\",\"values_at\":\"2026-10-01T00:00:00.000Z\",\"values\":{\"tier\":\"D\",\"since(touch)\":31488850144,"
	"\"age()\":31532558807},\"labels\":{\"team\":\"sales\"}},\"customer\":{\"id\":\"C1008\",\"name\":\"Customer 0000008\","
	"\"owner\":\"zhou\",\"tier\":\"D\"}}"
	"{\"seq\":9,\"ts\":\"2026-10-01T00:00:00.000Z\",\"kind\":\"firing\",\"alert\":{\"rule\":\"customer_cooling\","
	"\"customer\":\"C1009\",\"severity\":\"warning\",\"state\":\"firing\",\"since\":\"2026-10-01T00:00:00.000Z\","
	"\"active_since\":\"2026-09-01T00:00:00.000Z\",\"summary\":\"Customer 0000009 (C1009, tier A) has had no contact "
	"for 31d 2h\",\"values_at\":\"2026-10-01T00:00:00.000Z\",\"values\":{\"tier\":\"A\",\"since(touch)\":2678400000,"
	"\"age()\":31532558807},\"labels\":{\"team\":\"sales\"}},\"customer\":{\"id\":\"C1009\",\"name\":\"Customer 0000009\","
	"\"owner\":\"chen\",\"tier\":\"A\"}}";

struct body_codec {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	ZSTD_CDict *cdict;
	ZSTD_DDict *ddict;
	struct wbuf out;
};

struct body_codec *body_codec_new(void)
{
	struct body_codec *bc = calloc(1, sizeof(*bc));

	if (!bc)
		return NULL;
	bc->cctx = ZSTD_createCCtx();
	bc->dctx = ZSTD_createDCtx();
	bc->cdict = ZSTD_createCDict(dict1, sizeof(dict1) - 1, LEVEL);
	bc->ddict = ZSTD_createDDict(dict1, sizeof(dict1) - 1);
	if (!bc->cctx || !bc->dctx || !bc->cdict || !bc->ddict) {
		body_codec_free(bc);
		return NULL;
	}
	return bc;
}

void body_codec_free(struct body_codec *bc)
{
	if (!bc)
		return;
	ZSTD_freeCCtx(bc->cctx);
	ZSTD_freeDCtx(bc->dctx);
	ZSTD_freeCDict(bc->cdict);
	ZSTD_freeDDict(bc->ddict);
	wbuf_free(&bc->out);
	free(bc);
}

/* Appends mark and the compressed text to out; 0 bytes appended when it would not shrink. */
static int pack_marked(struct body_codec *bc, uint8_t mark, const char *text, size_t len, struct wbuf *out)
{
	size_t bound = ZSTD_compressBound(len), n;

	if (wbuf_reserve(out, 1 + bound) < 0)
		return -1;
	uint8_t *dst = out->data + out->len;
	n = ZSTD_compress_usingCDict(bc->cctx, dst + 1, bound, text, len, bc->cdict);
	if (ZSTD_isError(n))
		return -1;
	if (mark == MARK_DICT1 && n + 1 >= len)
		return 0;
	dst[0] = mark;
	out->len += 1 + n;
	return 0;
}

int body_codec_pack(struct body_codec *bc, const char *body, size_t len, struct wbuf *out)
{
	size_t before = out->len;

	if (pack_marked(bc, MARK_DICT1, body, len, out) < 0 && out->failed)
		return -1;
	if (out->len == before)
		wbuf_put(out, body, len); /* kept plain: it would not shrink */
	return out->failed ? -1 : 0;
}

int body_codec_pack_rest(struct body_codec *bc, const char *rest, size_t len, struct wbuf *out)
{
	/* always compressed: the seq before it is not stored, so plain text could not be told apart */
	size_t before = out->len;

	if (pack_marked(bc, MARK_REST1, rest, len, out) < 0 || out->len == before)
		return -1;
	return 0;
}

const char *body_codec_unpack(struct body_codec *bc, uint64_t seq, const void *stored, size_t len,
			      size_t *body_len)
{
	const uint8_t *p = stored;
	int prefix = 0;

	if (len == 0)
		return NULL;
	if (p[0] != MARK_DICT1 && p[0] != MARK_REST1) {
		*body_len = len;
		return stored;
	}
	unsigned long long size = ZSTD_getFrameContentSize(p + 1, len - 1);
	if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > 16u << 20)
		return NULL;
	wbuf_reset(&bc->out);
	if (wbuf_reserve(&bc->out, SEQ_PREFIX_MAX + (size_t)size + 1) < 0)
		return NULL;
	char *dst = (char *)bc->out.data;
	/* as notification_body_join writes it */
	if (p[0] == MARK_REST1)
		prefix = snprintf(dst, SEQ_PREFIX_MAX, "{\"seq\":%llu", (unsigned long long)seq);
	size_t n = ZSTD_decompress_usingDDict(bc->dctx, dst + prefix, (size_t)size, p + 1, len - 1, bc->ddict);
	if (ZSTD_isError(n) || n != size)
		return NULL;
	dst[prefix + n] = '\0';
	*body_len = (size_t)prefix + n;
	return dst;
}
