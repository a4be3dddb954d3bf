/*
 * Deterministic timelines for the bench: the same seed gives the same events,
 * byte for byte, on every machine.
 *
 * A stream is a year of activity in time order (a live feed, or an import of
 * history): event i happens at about end - span + span × i / n. Each event
 * picks a customer (new customers come in at a steady pace until 60% of
 * the stream, so all of them exist; otherwise 70% uniformly, 30% from a hot
 * tenth, so activity is skewed); a customer's first event is their profile (name, owner, tier A–D,
 * value). After that the mix is touches (contact, call, visit, meeting,
 * message), purchases, offers, web visits, tier changes, complaints (85%
 * resolved 2 h–5 d later, by ref) and promises with a due time (85% kept, some
 * late). Resolutions and kept promises are scheduled in a heap and come out
 * when the stream's time reaches them; what would happen after `end` never
 * does, so some complaints and promises stay open, as in life.
 *
 * Planted cohorts (see gen_params) are tier-B customers outside the random
 * picks, with a few touches, the last one exactly 30 days and one second
 * before the cohort's due time.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "hearth/units.h"

#define HOT_SHARE 30            /* percent of picks that go to the hot tenth */
#define INTRODUCE_SHARE 0.6     /* every customer has appeared by this share of the stream */
#define COOLING_MS (30 * MS_PER_DAY)

static const char *const type_names[GT__COUNT] = {
	[GT_PROFILE] = "profile", [GT_CONTACT] = "contact", [GT_CALL] = "call",
	[GT_VISIT] = "visit", [GT_MEETING] = "meeting", [GT_MESSAGE] = "message",
	[GT_PURCHASE] = "purchase", [GT_OFFER] = "offer", [GT_COMPLAINT] = "complaint",
	[GT_COMPLAINT_RESOLVED] = "complaint_resolved", [GT_PROMISE] = "promise",
	[GT_PROMISE_KEPT] = "promise_kept", [GT_WEB_VISIT] = "web_visit",
};

/* The mix of a known customer's events, in percent. */
static const struct {
	enum gen_type type;
	int percent;
} mix[] = {
	{ GT_CONTACT, 14 }, { GT_CALL, 18 }, { GT_VISIT, 7 }, { GT_MEETING, 6 },
	{ GT_MESSAGE, 12 }, { GT_PURCHASE, 10 }, { GT_OFFER, 5 }, { GT_COMPLAINT, 4 },
	{ GT_PROMISE, 5 }, { GT_WEB_VISIT, 16 }, { GT_PROFILE, 3 },
};

static const char *const owners[] = { "zhang", "li", "wang", "chen", "liu", "yang", "zhao", "wu" };
static const char *const channels[] = { "phone", "wechat", "store", "email" };

const char *gen_type_name(enum gen_type t)
{
	return t < GT__COUNT ? type_names[t] : "?";
}

/* splitmix64: small, fast, and the same everywhere. */
static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t *s, uint64_t n)
{
	return n ? rnd(s) % n : 0;
}

static int64_t between(uint64_t *s, int64_t lo, int64_t hi)
{
	return hi > lo ? lo + (int64_t)below(s, (uint64_t)(hi - lo)) : lo;
}

/* ---- the heap of scheduled events ------------------------------------------- */

struct heap {
	struct gen_event *v;
	size_t n, cap;
};

static int heap_push(struct heap *h, const struct gen_event *e)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 1024;
		struct gen_event *more = realloc(h->v, cap * sizeof(*more));
		if (!more)
			return -1;
		h->v = more;
		h->cap = cap;
	}
	size_t i = h->n++;
	while (i > 0 && h->v[(i - 1) / 2].ts > e->ts) {
		h->v[i] = h->v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->v[i] = *e;
	return 0;
}

static struct gen_event heap_pop(struct heap *h)
{
	struct gen_event top = h->v[0], last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1].ts < h->v[c].ts)
			c++;
		if (h->v[c].ts >= last.ts)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

/* ---- the stream ------------------------------------------------------------- */

static uint8_t random_tier(uint64_t *s)
{
	uint64_t r = below(s, 100);
	return r < 40 ? 'A' : r < 65 ? 'B' : r < 85 ? 'C' : 'D';
}

static void full_profile(uint64_t *s, struct gen_event *e, uint8_t tier)
{
	e->type = GT_PROFILE;
	e->full_profile = 1;
	e->tier = tier;
	e->num = (uint32_t)(10000 + below(s, 491) * 1000);
	e->pick = (uint8_t)below(s, 8);
}

/* The planted customers' events, straight into the heap. */
static int plant(struct gen_stream *st, struct heap *h, uint64_t *s, int64_t start)
{
	size_t per = (size_t)((double)st->p.customers * st->p.cohort_frac + 0.5);

	st->planted_first = st->p.customers - per * st->p.ncohorts;
	for (size_t k = 0; k < st->p.ncohorts; k++) {
		int64_t last = st->p.cohort_due[k] - COOLING_MS - 1000;
		for (size_t i = 0; i < per; i++) {
			uint32_t cust = (uint32_t)(st->planted_first + k * per + i);
			struct gen_event e = { .cust = cust };
			full_profile(s, &e, 'B');
			e.ts = between(s, start, start + 120 * MS_PER_DAY);
			if (heap_push(h, &e) < 0)
				return -1;
			for (int t = 0; t < 3; t++) {
				struct gen_event touch = { .cust = cust, .type = GT_CALL,
							   .num = (uint32_t)below(s, 40) + 1,
							   .pick = (uint8_t)below(s, 4) };
				touch.ts = t == 2 ? last : between(s, e.ts + 1, last);
				if (heap_push(h, &touch) < 0)
					return -1;
			}
		}
	}
	return 0;
}

static enum gen_type random_type(uint64_t *s)
{
	int r = (int)below(s, 100);

	for (size_t i = 0; i < sizeof(mix) / sizeof(mix[0]); i++) {
		if (r < mix[i].percent)
			return mix[i].type;
		r -= mix[i].percent;
	}
	return GT_WEB_VISIT;
}

/*
 * A regular customer. Customers are introduced at a steady pace over the
 * first INTRODUCE_SHARE of the stream, so every one of them exists; an event
 * goes to the next new customer when the pace asks for one, else to a known
 * customer: uniformly, or (HOT_SHARE) one of the earliest tenth, the regulars.
 * A permutation scatters introduction order over the ids.
 */
static uint32_t pick_customer(uint64_t *s, size_t regular, uint64_t mult, size_t i, size_t events,
			      size_t *introduced)
{
	size_t due = (size_t)((double)regular * (double)(i + 1) / ((double)events * INTRODUCE_SHARE));
	uint64_t u;

	if (*introduced < regular && (*introduced < due || *introduced == 0))
		u = (*introduced)++;
	else if (below(s, 100) < HOT_SHARE)
		u = below(s, *introduced / 10 ? *introduced / 10 : 1);
	else
		u = below(s, *introduced);
	return (uint32_t)((u * mult) % regular);
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

int gen_stream_make(struct gen_stream *st, const struct gen_params *p, struct herr *err)
{
	struct heap h = { 0 };
	uint64_t s = p->seed, mult = 2654435761ULL, cases = 0;
	size_t introduced = 0;
	int64_t start = p->end_ms - p->span_ms;
	uint8_t *seen = NULL;
	size_t regular;

	memset(st, 0, sizeof(*st));
	st->p = *p;
	if (p->ncohorts > GEN_COHORTS_MAX || p->customers < 100 || p->events < p->customers / 2)
		return herr_set(err, HERR_BAD_REQUEST, "generator: bad sizes");
	st->ev = malloc(p->events * sizeof(*st->ev));
	seen = calloc(p->customers, 1);
	if (!st->ev || !seen || plant(st, &h, &s, start) < 0)
		goto nomem;
	regular = st->planted_first;
	while (gcd(mult, regular) != 1)
		mult += 2;
	for (size_t i = 0; i < p->events; i++) {
		int64_t base = start + (int64_t)((double)p->span_ms * (double)i / (double)p->events);
		struct gen_event e = { 0 };

		if (h.n && h.v[0].ts <= base) {
			e = heap_pop(&h);
		} else {
			e.ts = base + (int64_t)below(&s, 60000);
			e.cust = pick_customer(&s, regular, mult, i, p->events, &introduced);
			if (!seen[e.cust]) {
				full_profile(&s, &e, random_tier(&s));
			} else {
				e.type = (uint8_t)random_type(&s);
				e.pick = (uint8_t)below(&s, 8);
				e.num = (uint32_t)below(&s, 60) + 1;
			}
			struct gen_event later = { .cust = e.cust };
			switch (e.type) {
			case GT_PROFILE:
				if (!e.full_profile)
					e.tier = random_tier(&s);
				break;
			case GT_PURCHASE:
			case GT_OFFER:
				e.num = (uint32_t)(below(&s, 500000) + 100); /* cents */
				break;
			case GT_COMPLAINT:
				e.ref = (uint32_t)++cases;
				if (below(&s, 100) < 85) {
					later.type = GT_COMPLAINT_RESOLVED;
					later.ref = e.ref;
					later.ts = e.ts + between(&s, 2 * MS_PER_HOUR, 5 * MS_PER_DAY);
				}
				break;
			case GT_PROMISE:
				e.ref = (uint32_t)++cases;
				e.due = e.ts + between(&s, 3 * MS_PER_DAY, 14 * MS_PER_DAY);
				if (below(&s, 100) < 85) {
					later.type = GT_PROMISE_KEPT;
					later.ref = e.ref;
					later.ts = between(&s, e.ts + MS_PER_DAY, e.due + 2 * MS_PER_DAY);
				}
				break;
			default:
				break;
			}
			if (later.ts && later.ts <= p->end_ms && heap_push(&h, &later) < 0)
				goto nomem;
		}
		if (!seen[e.cust]) {
			seen[e.cust] = 1;
			st->customers_seen++;
		}
		st->ev[st->n++] = e;
	}
	free(h.v);
	free(seen);
	return 0;
nomem:
	free(h.v);
	free(seen);
	gen_stream_free(st);
	return herr_set(err, HERR_NOMEM, "generator: out of memory");
}

void gen_stream_free(struct gen_stream *s)
{
	free(s->ev);
	s->ev = NULL;
	s->n = 0;
}

/* ---- text forms ------------------------------------------------------------- */

static size_t put(char *buf, size_t size, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* snprintf at an offset that never runs past the buffer. */
static size_t put(char *buf, size_t size, size_t at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (at >= size)
		return at;
	va_start(ap, fmt);
	n = vsnprintf(buf + at, size - at, fmt, ap);
	va_end(ap);
	if (n < 0)
		return at;
	return at + (size_t)n < size ? at + (size_t)n : size - 1;
}

size_t gen_customer_id(const struct gen_stream *s, uint32_t cust, char *buf, size_t size)
{
	return put(buf, size, 0, "%s%07u", s->p.cust_prefix, cust);
}

size_t gen_event_id(const struct gen_stream *s, size_t index, char *buf, size_t size)
{
	return put(buf, size, 0, "%c%09zu", s->p.id_prefix, index);
}

size_t gen_ref(const struct gen_event *e, char *buf, size_t size)
{
	if (!e->ref) {
		buf[0] = '\0';
		return 0;
	}
	int complaint = e->type == GT_COMPLAINT || e->type == GT_COMPLAINT_RESOLVED;
	return put(buf, size, 0, "%c-%u", complaint ? 'K' : 'P', e->ref);
}

size_t gen_attrs_json(const struct gen_stream *s, const struct gen_event *e, char *buf, size_t size)
{
	char t[TIME_BUF];
	size_t n = 0;

	buf[0] = '\0';
	switch (e->type) {
	case GT_PROFILE:
		if (e->full_profile)
			n = put(buf, size, 0, "{\"name\":\"Customer %07u\",\"owner\":\"%s\",\"tier\":\"%c\",\"value\":%u}",
				e->cust, owners[e->pick % 8], e->tier, e->num);
		else
			n = put(buf, size, 0, "{\"tier\":\"%c\"}", e->tier);
		break;
	case GT_CONTACT: case GT_CALL: case GT_VISIT: case GT_MEETING: case GT_MESSAGE:
		n = put(buf, size, 0, "{\"channel\":\"%s\",\"minutes\":%u}", channels[e->pick % 4], e->num);
		break;
	case GT_WEB_VISIT:
		n = put(buf, size, 0, "{\"minutes\":%u}", e->num);
		break;
	case GT_PURCHASE:
	case GT_OFFER:
		n = put(buf, size, 0, "{\"amount\":%u.%02u}", e->num / 100, e->num % 100);
		break;
	case GT_COMPLAINT:
		n = put(buf, size, 0, "{\"channel\":\"%s\"}", channels[e->pick % 4]);
		break;
	case GT_PROMISE:
		n = put(buf, size, 0, "{\"due\":\"%s\"}", time_format(e->due, t, sizeof(t)));
		break;
	default:
		break;
	}
	(void)s;
	return n;
}

size_t gen_json(const struct gen_stream *s, size_t i, char *buf, size_t size)
{
	const struct gen_event *e = &s->ev[i];
	char t[TIME_BUF], id[32], cust[32], ref[32], attrs[256];
	size_t n;

	gen_event_id(s, i, id, sizeof(id));
	gen_customer_id(s, e->cust, cust, sizeof(cust));
	n = put(buf, size, 0, "{\"id\":\"%s\",\"customer\":\"%s\",\"ts\":\"%s\",\"type\":\"%s\"", id, cust,
		time_format(e->ts, t, sizeof(t)), type_names[e->type]);
	if (gen_ref(e, ref, sizeof(ref)))
		n = put(buf, size, n, ",\"ref\":\"%s\"", ref);
	if (gen_attrs_json(s, e, attrs, sizeof(attrs)))
		n = put(buf, size, n, ",\"attrs\":%s", attrs);
	return put(buf, size, n, "}");
}

const char *gen_csv_header(void)
{
	return "customer,ts,type,id,ref,name,owner,tier,value,channel,minutes,amount,due\n";
}

size_t gen_csv(const struct gen_stream *s, size_t i, char *buf, size_t size)
{
	const struct gen_event *e = &s->ev[i];
	char t[TIME_BUF], id[32], cust[32], ref[32], due[TIME_BUF] = "";
	char name[32] = "", owner[16] = "", tier[4] = "", value[16] = "", channel[16] = "";
	char minutes[16] = "", amount[24] = "";

	gen_event_id(s, i, id, sizeof(id));
	gen_customer_id(s, e->cust, cust, sizeof(cust));
	gen_ref(e, ref, sizeof(ref));
	switch (e->type) {
	case GT_PROFILE:
		if (e->full_profile) {
			snprintf(name, sizeof(name), "Customer %07u", e->cust);
			snprintf(owner, sizeof(owner), "%s", owners[e->pick % 8]);
			snprintf(value, sizeof(value), "%u", e->num);
		}
		snprintf(tier, sizeof(tier), "%c", e->tier);
		break;
	case GT_CONTACT: case GT_CALL: case GT_VISIT: case GT_MEETING: case GT_MESSAGE:
		snprintf(channel, sizeof(channel), "%s", channels[e->pick % 4]);
		snprintf(minutes, sizeof(minutes), "%u", e->num);
		break;
	case GT_WEB_VISIT:
		snprintf(minutes, sizeof(minutes), "%u", e->num);
		break;
	case GT_PURCHASE:
	case GT_OFFER:
		snprintf(amount, sizeof(amount), "%u.%02u", e->num / 100, e->num % 100);
		break;
	case GT_COMPLAINT:
		snprintf(channel, sizeof(channel), "%s", channels[e->pick % 4]);
		break;
	case GT_PROMISE:
		time_format(e->due, due, sizeof(due));
		break;
	default:
		break;
	}
	return put(buf, size, 0, "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", cust,
		   time_format(e->ts, t, sizeof(t)), type_names[e->type], id, ref, name, owner, tier,
		   value, channel, minutes, amount, due);
}

int gen_write_csv(const struct gen_stream *s, const char *path, struct herr *err)
{
	FILE *f = fopen(path, "w");
	char line[512];

	if (!f)
		return herr_set(err, HERR_IO, "bench, cannot create '%s'", path);
	fputs(gen_csv_header(), f);
	for (size_t i = 0; i < s->n; i++) {
		size_t n = gen_csv(s, i, line, sizeof(line));
		fwrite(line, 1, n, f);
	}
	if (fclose(f) != 0)
		return herr_set(err, HERR_IO, "bench, writing '%s' failed", path);
	return 0;
}

/* ---- ingest frames ---------------------------------------------------------- */

int frames_make(struct frames *f, const struct gen_stream *s, size_t per, struct herr *err)
{
	size_t cap = s->n * 160 + 1024, nframes = (s->n + per - 1) / per;
	char line[512];

	memset(f, 0, sizeof(*f));
	f->text = malloc(cap);
	f->off = calloc(nframes + 1, sizeof(*f->off));
	f->count = calloc(nframes + 1, sizeof(*f->count));
	if (!f->text || !f->off || !f->count) {
		frames_free(f);
		return herr_set(err, HERR_NOMEM, "bench, out of memory for frames");
	}
	for (size_t i = 0; i < s->n; i++) {
		size_t n = gen_json(s, i, line, sizeof(line));
		if (f->bytes + n + 1 > cap) {
			char *more = realloc(f->text, cap * 2);
			if (!more) {
				frames_free(f);
				return herr_set(err, HERR_NOMEM, "bench, out of memory for frames");
			}
			f->text = more;
			cap *= 2;
		}
		if (i % per == 0)
			f->off[f->n++] = f->bytes;
		else
			f->text[f->bytes++] = '\n';    /* between events, not after a frame's last */
		memcpy(f->text + f->bytes, line, n);
		f->bytes += n;
		f->count[f->n - 1]++;
	}
	f->off[f->n] = f->bytes;
	f->events = s->n;
	return 0;
}

void frames_free(struct frames *f)
{
	free(f->text);
	free(f->off);
	free(f->count);
	memset(f, 0, sizeof(*f));
}
