/* Control protocol client; see include/hearth/ctlclient.h. */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hearth/ctlclient.h"

struct ctl_client {
	int fd;
	char *buf;
	size_t len, cap, start;         /* buf[start..len) is unread */
};

struct ctl_client *ctl_connect(const char *path, struct herr *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct ctl_client *c;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		herr_set(err, HERR_IO, "control socket path '%s' is too long", path);
		return NULL;
	}
	strcpy(addr.sun_path, path);
	c = calloc(1, sizeof(*c));
	if (!c) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		herr_set(err, HERR_IO, "cannot reach hearthd at %s (%s)", path, strerror(errno));
		ctl_close(c);
		return NULL;
	}
	return c;
}

void ctl_close(struct ctl_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c);
}

int ctl_fd(const struct ctl_client *c)
{
	return c->fd;
}

static int write_all(int fd, const char *p, size_t len, struct herr *err)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return herr_set(err, HERR_IO, "control socket write failed (%s)", strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int ctl_send(struct ctl_client *c, const char *line, size_t len, struct herr *err)
{
	if (write_all(c->fd, line, len, err) < 0)
		return -1;
	return write_all(c->fd, "\n", 1, err);
}

int ctl_send_json(struct ctl_client *c, struct json_object *req, struct herr *err)
{
	const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		return herr_set(err, HERR_NOMEM, "out of memory");
	return ctl_send(c, text, strlen(text), err);
}

int ctl_recv(struct ctl_client *c, const char **line, size_t *len, int timeout_ms,
	     struct herr *err)
{
	for (;;) {
		char *nl = c->len > c->start ? memchr(c->buf + c->start, '\n', c->len - c->start) : NULL;
		if (nl) {
			*line = c->buf + c->start;
			*len = (size_t)(nl - *line);
			*nl = '\0';
			c->start += *len + 1;
			return 0;
		}
		if (c->start > 0) {
			memmove(c->buf, c->buf + c->start, c->len - c->start);
			c->len -= c->start;
			c->start = 0;
		}
		if (c->cap - c->len < 65536) {
			size_t cap = c->cap ? c->cap * 2 : 131072;
			char *buf = realloc(c->buf, cap);
			if (!buf)
				return herr_set(err, HERR_NOMEM, "out of memory");
			c->buf = buf;
			c->cap = cap;
		}
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int rc = poll(&pfd, 1, timeout_ms);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0)
			return 1;
		ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return herr_set(err, HERR_IO, "hearthd closed the control connection");
		c->len += (size_t)n;
	}
}

struct json_object *ctl_call(struct ctl_client *c, struct json_object *req, struct herr *err)
{
	const char *line;
	size_t len;
	struct json_object *ans;

	if (ctl_send_json(c, req, err) < 0 || ctl_recv(c, &line, &len, -1, err) != 0)
		return NULL;
	ans = json_tokener_parse(line);
	if (!ans || !json_object_is_type(ans, json_type_object)) {
		json_object_put(ans);
		herr_set(err, HERR_IO, "hearthd sent an answer that is not JSON");
		return NULL;
	}
	return ans;
}
