/*
 * Durable per-target progress: `<state>/<target>.seq` holds the last seq the
 * target has been given (delivered, skipped as 4xx, or filtered out). It is
 * replaced atomically (temp file, fsync, rename, fsync of the directory) so a
 * crash leaves either the old or the new value, never a torn one.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

int state_read(const char *dir, const char *name, uint64_t *seq, int *found, struct herr *err)
{
	char path[4096], buf[64];
	int fd, rc = -1;
	ssize_t n;

	*found = 0;
	snprintf(path, sizeof(path), "%s/%s.seq", dir, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0;
		return herr_set(err, HERR_IO, "state, cannot open '%s' (%s)", path, strerror(errno));
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		herr_set(err, HERR_IO, "state, cannot read '%s' (%s)", path, strerror(errno));
		goto out;
	}
	buf[n] = '\0';
	char *end;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (end == buf || errno || (*end && *end != '\n')) {
		herr_set(err, HERR_IO, "state, '%s' does not hold a seq", path);
		goto out;
	}
	*seq = v;
	*found = 1;
	rc = 0;
out:
	close(fd);
	return rc;
}

int state_write(const char *dir, const char *name, uint64_t seq, struct herr *err)
{
	char path[4096], tmp[4096 + 8], buf[32];
	int fd = -1, dfd = -1, rc = -1;
	int len = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", seq);

	snprintf(path, sizeof(path), "%s/%s.seq", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0) {
		herr_set(err, HERR_IO, "state, cannot create '%s' (%s)", tmp, strerror(errno));
		goto out;
	}
	if (write(fd, buf, (size_t)len) != len || fsync(fd) < 0) {
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
	return rc;
}
