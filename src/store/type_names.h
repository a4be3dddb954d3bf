/*
 * Event type names as small numbers, store-wide, for the records that repeat
 * them (customer records, time index chunks): a number is one byte where the
 * name was eight or more. Numbers are handed out by the writer and never
 * change; a record names a type only by a number already put in the types
 * table of the same transaction or an earlier one.
 */
#ifndef HEARTH_TYPE_NAMES_H
#define HEARTH_TYPE_NAMES_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth/codec.h"
#include "hearth/store.h"

/* Beyond this many names a record spells the name out. */
#define TYPE_NUMBERS_MAX 4096

struct type_names;

struct type_names *type_names_new(void);
void type_names_free(struct type_names *tn);
/* Reads the types table; -1 with err set when it is damaged. */
int type_names_load(struct type_names *tn, MDB_txn *txn, MDB_dbi dbi, struct herr *err);

/* The writer's: a name's number, handed out the first time; -1 once the table is full. */
int type_names_number(struct type_names *tn, const char *name, size_t len);
/*
 * A name's number if it has one, else -1: the writer's, or another thread's
 * while the writer hands out none (it has handed that thread its work).
 */
int type_names_find(const struct type_names *tn, const char *name, size_t len);
/* Any thread's: the name of a number handed out, NULL for one that was not. */
const char *type_names_name(const struct type_names *tn, uint64_t number, size_t *len);

/*
 * The writer's, in every transaction that writes records with numbers: puts
 * the numbers handed out since the last commit, and after the commit marks
 * them as stored.
 */
void type_names_put_new(struct type_names *tn, struct wtxn *w);
void type_names_committed(struct type_names *tn);

/* A name in a record: its number (plus one), or 0 and the name itself. */
void type_names_put_ref(struct type_names *tn, struct wbuf *out, const char *name, size_t len);
/* Reads a name put by type_names_put_ref; NULL when the record is damaged. */
const char *type_names_get_ref(const struct type_names *tn, struct rbuf *r, size_t *len);

#endif
