/*
 * CURVE keys and the ZAP handler (see include/hearth/curve.h). libzmq asks the
 * handler at inproc://zeromq.zap.01 about every CURVE handshake on a socket
 * with a ZAP domain; the handler answers 200 only for listed client keys, so
 * an unknown producer or subscriber never gets a connection.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "hearth/config.h"
#include "hearth/curve.h"
#include "hearth/log.h"
#include "hearth/loop.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_DOMAIN "hearth"

struct zap {
	struct loop *loop;
	void *rep;
	uint8_t (*keys)[32];
	size_t nkeys;
	unsigned long refused;
};

int curve_read_key(const char *path, const char *which, char out[CURVE_KEY_Z85], struct herr *err)
{
	char line[256], prefix[16];
	uint8_t bin[32];
	FILE *f = fopen(path, "r");
	int found = 0;

	if (!f)
		return herr_set(err, HERR_CONFIG_ERROR, "cannot read key file '%s' (%s)", path, strerror(errno));
	snprintf(prefix, sizeof(prefix), "%s=", which);
	while (!found && fgets(line, sizeof(line), f)) {
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, prefix, strlen(prefix)) != 0)
			continue;
		p += strlen(prefix);
		size_t n = strcspn(p, " \t\r\n");
		if (n == 40) {
			memcpy(out, p, 40);
			out[40] = '\0';
			found = zmq_z85_decode(bin, out) != NULL;
		}
	}
	fclose(f);
	if (!found)
		return herr_set(err, HERR_CONFIG_ERROR, "'%s' holds no valid %s key (%s=<40 Z85 characters>)",
				path, which, which);
	return 0;
}

static int write_key_file(const char *path, mode_t mode, const char *text, struct herr *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	size_t len = strlen(text);

	if (fd < 0)
		return herr_set(err, HERR_IO, "cannot create '%s' (%s)", path, strerror(errno));
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		close(fd);
		return herr_set(err, HERR_IO, "cannot write '%s' (%s)", path, strerror(errno));
	}
	close(fd);
	return 0;
}

int curve_keygen(const char *name, char public_z85[CURVE_KEY_Z85], struct herr *err)
{
	char secret[CURVE_KEY_Z85], path[4096], text[256];

	if (zmq_curve_keypair(public_z85, secret) < 0)
		return herr_set(err, HERR_IO, "this libzmq cannot make CURVE keys (%s)", zmq_strerror(errno));
	snprintf(path, sizeof(path), "%s.key", name);
	snprintf(text, sizeof(text), "# hearth CURVE key pair: keep this file secret\npublic=%s\nsecret=%s\n",
		 public_z85, secret);
	if (write_key_file(path, 0600, text, err) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s.pub", name);
	snprintf(text, sizeof(text), "# hearth CURVE public key\npublic=%s\n", public_z85);
	return write_key_file(path, 0644, text, err);
}

int curve_server_setup(void *zsock, const struct config *cfg, struct herr *err)
{
	char secret[CURVE_KEY_Z85];
	int on = 1;

	if (!cfg->curve_secret_key_file)
		return 0;
	if (curve_read_key(cfg->curve_secret_key_file, "secret", secret, err) < 0)
		return -1;
	if (zmq_setsockopt(zsock, ZMQ_CURVE_SERVER, &on, sizeof(on)) < 0 ||
	    zmq_setsockopt(zsock, ZMQ_CURVE_SECRETKEY, secret, 40) < 0 ||
	    zmq_setsockopt(zsock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) < 0)
		herr_set(err, HERR_IO, "cannot make a CURVE server socket (%s)", zmq_strerror(errno));
	memset(secret, 0, sizeof(secret));
	return err->code == HERR_OK ? 0 : -1;
}

/* Every *.pub (or other) file in the directory holding a public= line. */
void zap_reload(struct zap *zap, const struct config *cfg)
{
	DIR *dir = opendir(cfg->curve_authorized_keys);
	struct dirent *de;
	struct herr err;

	free(zap->keys);
	zap->keys = NULL;
	zap->nkeys = 0;
	if (!dir) {
		log_warning("curve, cannot read authorized_keys '%s' (%s): no client is admitted",
			    cfg->curve_authorized_keys, strerror(errno));
		return;
	}
	while ((de = readdir(dir))) {
		char path[4096], z85[CURVE_KEY_Z85];
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", cfg->curve_authorized_keys, de->d_name);
		if (curve_read_key(path, "public", z85, &err) < 0)
			continue;
		uint8_t (*more)[32] = realloc(zap->keys, (zap->nkeys + 1) * sizeof(*more));
		if (!more)
			break;
		zap->keys = more;
		zmq_z85_decode(zap->keys[zap->nkeys++], z85);
	}
	closedir(dir);
	log_info("curve, %zu authorized client key(s)", zap->nkeys);
}

static int key_known(const struct zap *zap, const void *key, size_t len)
{
	if (len != 32)
		return 0;
	for (size_t i = 0; i < zap->nkeys; i++)
		if (memcmp(zap->keys[i], key, 32) == 0)
			return 1;
	return 0;
}

/* ZAP request frames (RFC 27): version, id, domain, address, identity, mechanism, credentials... */
static void on_zap(struct loop *loop, short revents, void *ctx)
{
	struct zap *zap = ctx;
	zmq_msg_t frames[8];
	size_t n = 0;
	int more;

	(void)loop;
	if (!(revents & ZMQ_POLLIN))
		return;
	do {
		zmq_msg_t scratch, *f = n < 8 ? &frames[n] : &scratch;
		zmq_msg_init(f);
		if (zmq_msg_recv(f, zap->rep, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(f);
			goto out;
		}
		more = zmq_msg_more(f);
		if (f == &scratch)
			zmq_msg_close(f);
		else
			n++;
	} while (more);
	if (n < 7)
		goto out;
	int ok = zmq_msg_size(&frames[5]) == 5 && memcmp(zmq_msg_data(&frames[5]), "CURVE", 5) == 0 &&
		 key_known(zap, zmq_msg_data(&frames[6]), zmq_msg_size(&frames[6]));
	if (!ok) {
		zap->refused++;
		log_warning("curve, refused a client from %.*s (key not in authorized_keys)",
			    (int)zmq_msg_size(&frames[3]), (const char *)zmq_msg_data(&frames[3]));
	}
	zmq_send(zap->rep, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(zap->rep, zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1]), ZMQ_SNDMORE);
	zmq_send(zap->rep, ok ? "200" : "400", 3, ZMQ_SNDMORE);
	zmq_send(zap->rep, ok ? "OK" : "not authorized", ok ? 2 : 14, ZMQ_SNDMORE);
	zmq_send(zap->rep, "", 0, ZMQ_SNDMORE);
	zmq_send(zap->rep, "", 0, 0);
out:
	for (size_t i = 0; i < n; i++)
		zmq_msg_close(&frames[i]);
}

struct zap *zap_open(const struct config *cfg, void *zctx, struct loop *loop, struct herr *err)
{
	struct zap *zap;

	if (!cfg->curve_secret_key_file)
		return NULL;
	if (!(zap = calloc(1, sizeof(*zap)))) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	zap->loop = loop;
	zap->rep = zmq_socket(zctx, ZMQ_REP);
	if (!zap->rep || zmq_bind(zap->rep, ZAP_ENDPOINT) < 0 ||
	    loop_watch(loop, zap->rep, -1, ZMQ_POLLIN, on_zap, zap) < 0) {
		herr_set(err, HERR_IO, "curve, cannot start the ZAP handler (%s)", zmq_strerror(errno));
		zap_close(zap);
		return NULL;
	}
	zap_reload(zap, cfg);
	return zap;
}

void zap_close(struct zap *zap)
{
	if (!zap)
		return;
	if (zap->rep) {
		int linger = 0;
		loop_unwatch(zap->loop, zap->rep, -1);
		zmq_setsockopt(zap->rep, ZMQ_LINGER, &linger, sizeof(linger));
		zmq_close(zap->rep);
	}
	free(zap->keys);
	free(zap);
}
