/*
 * Durable per-target progress: `<state>/<target>.seq` holds the last seq the
 * target has been given (delivered, skipped as 4xx, dropped as a flap, or
 * filtered out), and on a second line the seqs at or below it that are not
 * handled yet: firings held back by hold_firing while later notifications went
 * out. A restart replays from the first of them, so a held firing is never
 * lost, and skips the rest up to the first line's seq, so nothing is posted
 * twice. The first line alone is the format of relays without hold_firing.
 * The file is replaced atomically (temp file, fsync, rename, fsync of the
 * directory) so a crash leaves either the old or the new one, never a torn one.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

/* "<upto>\n" and, when firings were held, "held <seq> <seq> ...\n" (ascending, each <= upto). */
static int parse_state(char *buf, struct relay_state *st)
{
	char *p = buf, *end;
	size_t cap = 0;

	errno = 0;
	st->upto = strtoull(p, &end, 10);
	if (end == p || errno || (*end && *end != '\n'))
		return -1;
	p = *end ? end + 1 : end;
	if (!*p)
		return 0;
	if (strncmp(p, "held", 4) != 0)
		return -1;
	for (p += 4; *p == ' ';) {
		uint64_t v;
		errno = 0;
		v = strtoull(++p, &end, 10);
		if (end == p || errno || v == 0 || v > st->upto || (st->nheld && v <= st->held[st->nheld - 1]) ||
		    st->nheld >= STATE_HELD_MAX)
			return -1;
		if (st->nheld == cap) {
			uint64_t *h = realloc(st->held, (cap ? 2 * cap : 16) * sizeof(*h));
			if (!h)
				return -1;
			st->held = h;
			cap = cap ? 2 * cap : 16;
		}
		st->held[st->nheld++] = v;
		p = end;
	}
	return (*p == '\n' && !p[1]) || !*p ? 0 : -1;
}

int state_read(const char *dir, const char *name, struct relay_state *st, int *found, struct herr *err)
{
	char path[4096], *buf = NULL;
	size_t len = 0, cap = STATE_HELD_MAX * 24 + 64;
	int fd, rc = -1;
	ssize_t n;

	*found = 0;
	memset(st, 0, sizeof(*st));
	snprintf(path, sizeof(path), "%s/%s.seq", dir, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0;
		return herr_set(err, HERR_IO, "state, cannot open '%s' (%s)", path, strerror(errno));
	}
	if (!(buf = malloc(cap))) {
		herr_set(err, HERR_NOMEM, "state, out of memory");
		goto out;
	}
	while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) != 0) {
		if (n < 0) {
			herr_set(err, HERR_IO, "state, cannot read '%s' (%s)", path, strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (parse_state(buf, st) < 0) {
		free(st->held);
		memset(st, 0, sizeof(*st));
		herr_set(err, HERR_IO, "state, '%s' does not hold a seq", path);
		goto out;
	}
	*found = 1;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

int state_write(const char *dir, const char *name, const struct relay_state *st, struct herr *err)
{
	char path[4096], tmp[4096 + 8], *buf = NULL;
	size_t size = 0;
	int fd = -1, dfd = -1, rc = -1;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return herr_set(err, HERR_NOMEM, "state, out of memory");
	fprintf(f, "%" PRIu64 "\n", st->upto);
	if (st->nheld) {
		fputs("held", f);
		for (size_t i = 0; i < st->nheld; i++)
			fprintf(f, " %" PRIu64, st->held[i]);
		fputc('\n', f);
	}
	if (fclose(f) != 0) {
		free(buf);
		return herr_set(err, HERR_NOMEM, "state, out of memory");
	}
	snprintf(path, sizeof(path), "%s/%s.seq", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0) {
		herr_set(err, HERR_IO, "state, cannot create '%s' (%s)", tmp, strerror(errno));
		goto out;
	}
	if (write(fd, buf, size) != (ssize_t)size || fsync(fd) < 0) {
		herr_set(err, HERR_IO, "state, cannot write '%s' (%s)", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		herr_set(err, HERR_IO, "state, cannot close '%s' (%s)", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		herr_set(err, HERR_IO, "state, cannot rename '%s' (%s)", tmp, strerror(errno));
		goto out;
	}
	/* the rename itself is durable only once the directory is */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0)
		(void)fsync(dfd);
	rc = 0;
out:
	if (dfd >= 0)
		close(dfd);
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	free(buf);
	return rc;
}
