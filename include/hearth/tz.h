/*
 * Time zones for times that people read (the relay's chat messages,
 * hearthctl's tables). Inside hearth every time stays unix ms in UTC; only
 * what is shown is local.
 */
#ifndef HEARTH_TZ_H
#define HEARTH_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/err.h"

struct tz;

#define TZ_ABBR_MAX 16

/* An instant as a wall clock in some zone. */
struct tz_time {
	int64_t year;
	int mon, mday, hour, min, sec;  /* mon 1..12, mday 1..31 */
	int32_t utoff;                  /* seconds east of UTC */
	int isdst;
	char abbr[TZ_ABBR_MAX];         /* "CST", "CEST", or numeric: "+08" */
};

/*
 * name: an IANA name ("Asia/Shanghai", read from $TZDIR or /usr/share/zoneinfo),
 * "UTC", an absolute path of a TZif file, or a POSIX TZ string ("CST-8",
 * "CET-1CEST,M3.5.0,M10.5.0/3"); a leading ':' is ignored as in $TZ. Fails
 * with HERR_CONFIG_ERROR naming what is wrong.
 */
struct tz *tz_load(const char *name, struct herr *err);
/* The system's zone: $TZ when set, else /etc/localtime, else UTC (never NULL but on ENOMEM). */
struct tz *tz_system(void);
void tz_free(struct tz *z);
/* The name it was loaded by ("Asia/Shanghai", "UTC", "localtime"). */
const char *tz_name(const struct tz *z);

/* z NULL: UTC. */
void tz_local(const struct tz *z, int64_t ms, struct tz_time *out);

#define TZ_FMT_ZONE    0x1      /* append the zone: " CST", or " +08:00" when it has no letters */
#define TZ_FMT_SECONDS 0x2      /* HH:MM:SS rather than HH:MM */
/* "2026-12-01 21:58" (and " CST" with TZ_FMT_ZONE); returns buf. */
char *tz_format(const struct tz *z, int64_t ms, unsigned flags, char *buf, size_t size);
#define TZ_BUF 48

#endif
