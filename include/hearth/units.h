/*
 * Times, durations and sizes as PROTOCOL.md §1 writes them. Inside hearth a time is
 * int64 unix milliseconds and a duration int64 milliseconds.
 */
#ifndef HEARTH_UNITS_H
#define HEARTH_UNITS_H

#include <stddef.h>
#include <stdint.h>

#define MS_PER_SECOND 1000LL
#define MS_PER_MINUTE (60 * MS_PER_SECOND)
#define MS_PER_HOUR   (60 * MS_PER_MINUTE)
#define MS_PER_DAY    (24 * MS_PER_HOUR)

/* RFC 3339 ("2026-11-20T10:00:00+08:00", "…Z", fractional seconds allowed). */
int time_parse_rfc3339(const char *s, size_t len, int64_t *ms);
/* RFC 3339 UTC with milliseconds; buf needs 25 bytes. */
char *time_format(int64_t ms, char *buf, size_t size);
#define TIME_BUF 32

/* v in decimal, as printf's %lld writes it, into out (no NUL); its length. */
#define I64_TEXT 20
size_t i64_text(int64_t v, char *out);

/* "500ms", "90s", "1d12h", "2w"; rejects empty, unknown units, overflow. */
int duration_parse(const char *s, size_t len, int64_t *ms);
/* Human form: "31d", "2d 4h", "15m 3s", "250ms". */
char *duration_format(int64_t ms, char *buf, size_t size);

/* "64MiB", "1GiB", "4096"; KiB/MiB/GiB/TiB (and KB/MB/GB as 1000s). */
int size_parse(const char *s, size_t len, uint64_t *bytes);

/* Wall clock now in unix ms. */
int64_t time_now_ms(void);
/* Monotonic clock in ms, for intervals. */
int64_t mono_now_ms(void);
/* Monotonic clock in microseconds, for latency figures. */
int64_t mono_now_us(void);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (H. Hinnant's algorithms). */
int64_t days_from_civil(int64_t y, int m, int d);
void civil_from_days(int64_t z, int64_t *y, int *m, int *d);

#endif
