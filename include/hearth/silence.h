/*
 * A silence (PROTOCOL.md §5.14): kept by the engine, posted to the board for
 * `silence.list` answered off the writer.
 */
#ifndef HEARTH_SILENCE_H
#define HEARTH_SILENCE_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/limits.h"

struct json_object;

struct silence {
	uint64_t id;
	char rule[HEARTH_NAME_MAX + 1];
	char customer[HEARTH_ID_MAX + 1];
	char owner[HEARTH_ID_MAX + 1];
	int64_t until, created;
	char by[64];
	char comment[256];
};

struct json_object *silence_to_json(const struct silence *s);
/* Adds "silences": those of s[0..n) still active at now, in their order. */
void silences_answer(const struct silence *s, size_t n, int64_t now, struct json_object *ans);

#endif
