/*
 * Copies of the store: a consistent backup of a running one (LMDB's copy,
 * compacted), and a restore that checks the file before it replaces anything.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hearth/codec.h"
#include "hearth/log.h"
#include "hearth/store.h"
#include "store_impl.h"

/* Checks that file is an LMDB store of a schema this hearthd reads. */
static int check_backup(const char *file, struct herr *err)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val key = { 6, (void *)"schema" }, val;
	int rc;

	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 16)) ||
	    (rc = mdb_env_open(env, file, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0)) ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) || (rc = mdb_dbi_open(txn, "meta", 0, &dbi)) ||
	    (rc = mdb_get(txn, dbi, &key, &val))) {
		herr_set(err, HERR_STORE_ERROR, "'%s' is not a hearth backup (%s)", file, mdb_strerror(rc));
		goto out;
	}
	struct rbuf r;
	rbuf_init(&r, val.mv_data, val.mv_size);
	if (val.mv_size != 4 || rbuf_u32(&r) > STORE_SCHEMA_VERSION) {
		herr_set(err, HERR_STORE_ERROR, "'%s' has a newer schema than this hearthd reads", file);
		rc = -1;
	}
out:
	if (txn)
		mdb_txn_abort(txn);
	if (env)
		mdb_env_close(env);
	return rc ? -1 : 0;
}

static int copy_file(const char *from, const char *to, struct herr *err)
{
	char buf[1 << 16];
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
	ssize_t n;

	if (in < 0 || (out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0) {
		herr_set(err, HERR_IO, "cannot copy '%s' to '%s' (%s)", from, to, strerror(errno));
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	if (n < 0 || fsync(out) < 0) {
		herr_set(err, HERR_IO, "copying '%s' failed (%s)", from, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

int store_restore(const char *path, const char *file, struct herr *err)
{
	struct store st = { .path = (char *)path, .lock_fd = -1 };
	char data[4096], tmp[4096], lock[4096];
	int rc = -1;

	if (check_backup(file, err) < 0)
		return -1;
	if (store_mkdir_p(path) < 0)
		return herr_set(err, HERR_STORE_ERROR, "store, cannot create directory '%s' (%s)", path,
				strerror(errno));
	/* the running daemon holds this lock: never restore under it */
	if (store_lock(&st, err) < 0)
		goto out;
	snprintf(data, sizeof(data), "%s/data.mdb", path);
	snprintf(tmp, sizeof(tmp), "%s/data.mdb.restore", path);
	snprintf(lock, sizeof(lock), "%s/lock.mdb", path);
	if (copy_file(file, tmp, err) < 0)
		goto out;
	if (rename(tmp, data) < 0) {
		herr_set(err, HERR_IO, "cannot move the restored store into place (%s)", strerror(errno));
		goto out;
	}
	unlink(lock); /* reader slots of the old store mean nothing to the new one */
	rc = 0;
out:
	if (st.lock_fd >= 0)
		close(st.lock_fd);
	return rc;
}

int store_backup(struct store *st, const char *path, struct herr *err)
{
	int rc = mdb_env_copy2(st->env, path, MDB_CP_COMPACT);
	return rc ? store_error(err, rc, "backup") : 0;
}

/*
 * Another process's copy (hearthctl backup): LMDB lets it read beside the
 * running hearthd, whose writes never wait for the copy.
 */
int store_copy_fd(const char *path, int fd, struct herr *err)
{
	MDB_env *env = NULL;
	int rc;

	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 16)) ||
	    (rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOTLS, 0))) {
		herr_set(err, HERR_STORE_ERROR, "cannot open the store at %s (%s)", path,
			 mdb_strerror(rc));
		goto out;
	}
	if ((rc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT)))
		herr_set(err, HERR_STORE_ERROR, "backup failed (%s)", mdb_strerror(rc));
out:
	if (env)
		mdb_env_close(env);
	return rc ? -1 : 0;
}
