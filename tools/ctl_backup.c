/*
 * hearthctl backup FILE: a consistent, compacted copy of the live store.
 * LMDB lets a second process read while hearthd writes, so the copy is taken
 * here, in a read transaction of our own, and ingest never waits for it. The
 * log is the source of truth: what hearthd had not yet flushed to its indexes
 * is rebuilt from the log when a restored store is opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "hearth/ctlclient.h"
#include "hearth/store.h"
#include "hearth/units.h"

static int store_path_of(const struct ctl_opts *o, char *path, size_t size)
{
	struct json_object *req = json_object_new_object(), *ans;
	struct ctl_client *cc;
	struct herr err;

	if (!(cc = ctl_connect(o->socket, &err))) {
		ctl_warn("%s", err.msg);
		json_object_put(req);
		return CTL_EXIT_UNREACHABLE;
	}
	json_object_object_add(req, "cmd", json_object_new_string("status"));
	ans = ctl_call(cc, req, &err);
	json_object_put(req);
	ctl_close(cc);
	if (!ans) {
		ctl_warn("%s", err.msg);
		return CTL_EXIT_UNREACHABLE;
	}
	snprintf(path, size, "%s", json_object_get_string(json_path(ans, "store.path")));
	json_object_put(ans);
	return path[0] ? 0 : CTL_EXIT_NO;
}

int backup_run(const struct ctl_opts *o, const char *file)
{
	char store[4096], tmp[4096];
	int fd = -1, rc, exit_code = CTL_EXIT_NO;
	int64_t started = mono_now_ms();
	struct herr err;
	struct stat sb;

	if ((rc = store_path_of(o, store, sizeof(store))) != 0)
		return rc;
	snprintf(tmp, sizeof(tmp), "%s.partial", file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		ctl_warn("cannot create %s (%s)", tmp, strerror(errno));
		goto out;
	}
	if (store_copy_fd(store, fd, &err) < 0) {
		ctl_warn("%s", err.msg);
		goto out;
	}
	/* durable before it takes the name: a crash never leaves a half backup as FILE */
	if (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, file) < 0) {
		fd = -1;
		ctl_warn("cannot finish %s (%s)", file, strerror(errno));
		goto out;
	}
	fd = -1;
	stat(file, &sb);
	if (o->json)
		printf("{\"file\":\"%s\",\"bytes\":%lld,\"ms\":%lld}\n", file, (long long)sb.st_size,
		       (long long)(mono_now_ms() - started));
	else
		printf("backup of %s written to %s: %lld bytes in %lld ms\n", store, file,
		       (long long)sb.st_size, (long long)(mono_now_ms() - started));
	exit_code = CTL_EXIT_OK;
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	return exit_code;
}
