/* Event ids the id index may hold; see idfilter.h. */
#include <stdlib.h>
#include <string.h>

#include "hearth/log.h"
#include "hearth/strmap.h"
#include "idfilter.h"

#define BLOCK_WORDS  8                  /* 512 bits: one cache line per lookup */
#define BITS_PER_ID  12                 /* with 7 probes: 0.2% "maybe" for an absent id (one part), 0.8% (three) */
#define PROBES       7                  /* 9 bits of one 64-bit mix each */
#define FIRST_BLOCKS (1u << 14)         /* 1 MiB, about 700k ids; each next part doubles */

struct filter_part {
	uint64_t *words;                /* nblocks * BLOCK_WORDS, 64-byte aligned */
	size_t nblocks, count, capacity;
	unsigned shift;                 /* 64 - log2(nblocks): a block from a hash's top bits */
};

struct idfilter {
	struct filter_part *parts;
	size_t nparts, bytes;
	int ready, gave_up;
};

static uint64_t mix(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

struct idfilter *idfilter_new(void)
{
	return calloc(1, sizeof(struct idfilter));
}

static void drop_parts(struct idfilter *f)
{
	for (size_t i = 0; i < f->nparts; i++)
		free(f->parts[i].words);
	free(f->parts);
	f->parts = NULL;
	f->nparts = f->bytes = 0;
}

void idfilter_free(struct idfilter *f)
{
	if (!f)
		return;
	drop_parts(f);
	free(f);
}

static void give_up(struct idfilter *f, const char *why)
{
	log_warning("store, the event id filter gives up (%s): every new id is looked up in the id index", why);
	drop_parts(f);
	f->gave_up = 1;
}

/* A part twice the last one's size (the first: FIRST_BLOCKS); -1 when it cannot have one. */
static int add_part(struct idfilter *f)
{
	size_t nblocks = f->nparts ? f->parts[f->nparts - 1].nblocks * 2 : FIRST_BLOCKS;
	size_t bytes = nblocks * BLOCK_WORDS * sizeof(uint64_t);
	unsigned log2 = 0;

	if (f->bytes + bytes > IDFILTER_MAX_BYTES) {
		give_up(f, "more ids than its memory bound");
		return -1;
	}
	struct filter_part *parts = realloc(f->parts, (f->nparts + 1) * sizeof(*parts));
	if (!parts) {
		give_up(f, "out of memory");
		return -1;
	}
	f->parts = parts;
	uint64_t *words = aligned_alloc(64, bytes);
	if (!words) {
		give_up(f, "out of memory");
		return -1;
	}
	memset(words, 0, bytes);
	while (((size_t)1 << log2) < nblocks)
		log2++;
	f->parts[f->nparts++] = (struct filter_part){ .words = words, .nblocks = nblocks,
						      .capacity = nblocks * BLOCK_WORDS * 64 / BITS_PER_ID,
						      .shift = 64 - log2 };
	f->bytes += bytes;
	return 0;
}

static uint64_t *block_of(const struct filter_part *p, uint64_t h)
{
	return p->words + (h >> p->shift) * BLOCK_WORDS;
}

/* From an id's strmap_hash: its block (top bits of the first mix) and its PROBES bits (9 each of the second). */
static void hashes_of(uint64_t hash, uint64_t *block, uint64_t *probes)
{
	*block = mix(hash);
	*probes = mix(*block ^ 0x9e3779b97f4a7c15ULL);
}

void idfilter_add(struct idfilter *f, const void *id, size_t len)
{
	if (f->gave_up)
		return;
	if ((!f->nparts || f->parts[f->nparts - 1].count >= f->parts[f->nparts - 1].capacity) && add_part(f) < 0)
		return;
	struct filter_part *p = &f->parts[f->nparts - 1];
	uint64_t h, bits;

	hashes_of(strmap_hash(id, len), &h, &bits);
	uint64_t *block = block_of(p, h);

	for (int k = 0; k < PROBES; k++, bits >>= 9)
		block[(bits & 511) >> 6] |= 1ULL << (bits & 63);
	p->count++;
}

int idfilter_may_have(const struct idfilter *f, const void *id, size_t len)
{
	return idfilter_may_have_hashed(f, strmap_hash(id, len));
}

void idfilter_prefetch(const struct idfilter *f, uint64_t hash)
{
	uint64_t h = mix(hash); /* the block, as hashes_of */

	for (size_t i = 0; f->ready && i < f->nparts; i++)
		__builtin_prefetch(block_of(&f->parts[i], h));
}

int idfilter_may_have_hashed(const struct idfilter *f, uint64_t hash)
{
	if (!f->ready || f->gave_up)
		return 1;
	uint64_t h, probes;

	hashes_of(hash, &h, &probes);

	for (size_t i = 0; i < f->nparts; i++) {
		const uint64_t *block = block_of(&f->parts[i], h);
		uint64_t bits = probes;
		int k = 0;
		while (k < PROBES && (block[(bits & 511) >> 6] & (1ULL << (bits & 63)))) {
			k++;
			bits >>= 9;
		}
		if (k == PROBES)
			return 1;
	}
	return 0;
}

void idfilter_set_ready(struct idfilter *f)
{
	f->ready = 1;
}

int idfilter_ready(const struct idfilter *f)
{
	return f->ready;
}

int idfilter_gave_up(const struct idfilter *f)
{
	return f->gave_up;
}

size_t idfilter_bytes(const struct idfilter *f)
{
	return f->bytes;
}
