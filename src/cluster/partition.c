/* Which partition a customer belongs to: FNV-1a of the id, modulo the partition count. */
#include "hearth/cluster.h"

uint32_t cluster_fnv1a32(const char *s, size_t len)
{
	uint32_t h = 0x811C9DC5u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x01000193u;
	}
	return h;
}
