/*
 * Who may write from the page (docs/WEB.md, "Writes"): the users file and HTTP
 * Basic authentication against it.
 *
 * The file holds one `name:hash` per line, the hash made by crypt(3) with
 * yescrypt ($y$) or SHA-512 ($6$) (`mkpasswd -m yescrypt`), and is read at start
 * and again on SIGHUP; a file with errors is refused whole (every error printed
 * as file:line:col) and the list already loaded stays in force.
 *
 * A check costs one crypt whatever the outcome: an unknown name is hashed
 * against a real entry's setting and the comparison never stops early, so the
 * time taken does not tell which names exist. Failures are counted per client
 * address; past WEB_AUTH_FAILS in WEB_AUTH_WINDOW_MS the address is refused
 * without a crypt until the window ends, which bounds both guessing and the CPU
 * one client can make this single-threaded process spend.
 */
#include <crypt.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "hearth/log.h"
#include "hearth/units.h"
#include "web.h"

#define WEB_USERS_MAX     1000
#define WEB_USERS_LINE    1024
#define WEB_AUTH_FAILS    10
#define WEB_AUTH_WINDOW_MS (5 * MS_PER_MINUTE)
#define WEB_AUTH_SLOTS    256

struct web_user {
	char *name;
	char *hash;
};

struct web_users {
	struct web_user *v;
	size_t n;
};

struct fail_slot {
	unsigned char addr[16];         /* IPv4 as ::ffff:a.b.c.d */
	int used;
	unsigned count;
	int64_t window_end;             /* monotonic ms */
};

struct web_auth {
	char *path;
	struct web_users *users;
	struct crypt_data *cd;          /* 32 KiB: kept, not on the stack */
	struct fail_slot slots[WEB_AUTH_SLOTS];
	uint64_t failures;
};

static void users_free(struct web_users *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < u->n; i++) {
		free(u->v[i].name);
		if (u->v[i].hash) {
			explicit_bzero(u->v[i].hash, strlen(u->v[i].hash));
			free(u->v[i].hash);
		}
	}
	free(u->v);
	free(u);
}

static void uerr(const char *file, int line, int col, int *errors, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void uerr(const char *file, int line, int col, int *errors, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d:%d: ", file, line, col);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	(*errors)++;
}

/*
 * A name becomes hearthd's `by` (at most 63 bytes, PROTOCOL.md §5.14) and is shown
 * on the page and in logs: no space, no control character, no ':' (the separator);
 * UTF-8 letters are welcome.
 */
static int valid_name(const char *s, size_t len)
{
	if (len == 0 || len > WEB_USER_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == 0x7f || c == ':')
			return 0;
	}
	return 1;
}

/* The hashes crypt_r verifies here; anything else would be a silent lock-out. */
static const char *hash_problem(const char *hash)
{
	if (strncmp(hash, "$y$", 3) && strncmp(hash, "$6$", 3))
		return "expected a yescrypt ($y$…) or SHA-512 ($6$…) hash made by crypt(3), "
		       "such as `mkpasswd -m yescrypt` prints";
	if (crypt_checksalt(hash) != CRYPT_SALT_OK)
		return "this hash is malformed, or its method is disabled in this libcrypt";
	return NULL;
}

static struct web_users *users_load(const char *path, int *nerrors)
{
	struct web_users *u = calloc(1, sizeof(*u));
	FILE *f = NULL;
	char buf[WEB_USERS_LINE + 2];
	int line = 0, errors = 0;
	struct stat st;

	if (!u) {
		uerr(path, 1, 1, &errors, "out of memory");
		goto out;
	}
	if (!(f = fopen(path, "r"))) {
		uerr(path, 1, 1, &errors, "cannot open the users file (%s)", strerror(errno));
		goto out;
	}
	/* the hashes are secrets of a kind: they allow offline guessing */
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & S_IROTH))
		log_warning("web, %s is readable by everyone; make it 0640, owned by root and hearth-web's group",
			    path);
	while (fgets(buf, sizeof(buf), f)) {
		size_t len = strlen(buf);
		char *colon, *hash;
		const char *why;

		line++;
		if (len && buf[len - 1] != '\n' && !feof(f)) {
			int c;
			uerr(path, line, WEB_USERS_LINE, &errors, "line longer than %d bytes", WEB_USERS_LINE);
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			continue;
		}
		while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
			buf[--len] = '\0';
		if (len == 0 || buf[0] == '#')
			continue;
		if (!(colon = strchr(buf, ':'))) {
			uerr(path, line, 1, &errors, "expected name:hash (one user a line, as `mkpasswd` makes the hash)");
			continue;
		}
		if (!valid_name(buf, (size_t)(colon - buf))) {
			uerr(path, line, 1, &errors,
			     "a name is 1 to %d bytes with no space, control character or ':'", WEB_USER_MAX);
			continue;
		}
		*colon = '\0';
		hash = colon + 1;
		if ((why = hash_problem(hash))) {
			uerr(path, line, (int)(hash - buf) + 1, &errors, "%s", why);
			continue;
		}
		for (size_t i = 0; i < u->n; i++)
			if (!strcmp(u->v[i].name, buf)) {
				uerr(path, line, 1, &errors, "'%s' is listed twice", buf);
				goto next;
			}
		if (u->n == WEB_USERS_MAX) {
			uerr(path, line, 1, &errors, "at most %d users", WEB_USERS_MAX);
			break;
		}
		if (u->n % 16 == 0) {
			struct web_user *more = realloc(u->v, (u->n + 16) * sizeof(*more));
			if (!more) {
				uerr(path, line, 1, &errors, "out of memory");
				break;
			}
			u->v = more;
		}
		u->v[u->n].name = strdup(buf);
		u->v[u->n].hash = strdup(hash);
		u->n++;
		if (!u->v[u->n - 1].name || !u->v[u->n - 1].hash) {
			uerr(path, line, 1, &errors, "out of memory");
			break;
		}
next:;
	}
	if (ferror(f))
		uerr(path, line + 1, 1, &errors, "cannot read the users file (%s)", strerror(errno));
	else if (!errors && u->n == 0)
		uerr(path, 1, 1, &errors, "no user: add `name:hash` lines (the hash from `mkpasswd -m yescrypt`)");
out:
	explicit_bzero(buf, sizeof(buf));
	if (f)
		fclose(f);
	*nerrors = errors;
	if (errors) {
		users_free(u);
		return NULL;
	}
	return u;
}

struct web_auth *web_auth_new(const char *path, int *nerrors)
{
	struct web_auth *a = calloc(1, sizeof(*a));

	*nerrors = 0;
	if (!a || !(a->path = strdup(path)) || !(a->cd = calloc(1, sizeof(*a->cd)))) {
		fprintf(stderr, "%s: out of memory\n", path);
		*nerrors = 1;
		goto fail;
	}
	if (!(a->users = users_load(path, nerrors)))
		goto fail;
	return a;
fail:
	web_auth_free(a);
	return NULL;
}

void web_auth_free(struct web_auth *a)
{
	if (!a)
		return;
	users_free(a->users);
	if (a->cd) {
		explicit_bzero(a->cd, sizeof(*a->cd));
		free(a->cd);
	}
	free(a->path);
	free(a);
}

int web_auth_reload(struct web_auth *a)
{
	int errors = 0;
	struct web_users *u = users_load(a->path, &errors);

	if (!u) {
		log_error("web, %s: %d error(s); the users loaded before stay in force", a->path, errors);
		return -1;
	}
	users_free(a->users);
	a->users = u;
	log_info("web, %s: %zu user(s)", a->path, u->n);
	return 0;
}

uint64_t web_auth_failures(const struct web_auth *a)
{
	return a ? a->failures : 0;
}

static void addr_key(const struct sockaddr *sa, unsigned char key[16])
{
	memset(key, 0, 16);
	if (sa && sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	}
}

/* The address's slot; with `make`, a new one (the stalest replaced) when it has none. */
static struct fail_slot *slot_of(struct web_auth *a, const unsigned char key[16], int make, int64_t now)
{
	struct fail_slot *stalest = &a->slots[0];

	for (size_t i = 0; i < WEB_AUTH_SLOTS; i++) {
		struct fail_slot *s = &a->slots[i];
		if (s->used && !memcmp(s->addr, key, 16))
			return s;
		if (!s->used || (stalest->used && s->window_end < stalest->window_end))
			stalest = s;
	}
	if (!make)
		return NULL;
	memset(stalest, 0, sizeof(*stalest));
	memcpy(stalest->addr, key, 16);
	stalest->used = 1;
	stalest->window_end = now + WEB_AUTH_WINDOW_MS;
	return stalest;
}

/* Equal strings, in a time that depends on the stored hash's length only. */
static int same_hash(const char *got, const char *want)
{
	size_t glen = strlen(got), wlen = strlen(want);
	volatile unsigned char diff = glen != wlen;

	for (size_t i = 0; i < wlen; i++)
		diff |= (unsigned char)(want[i] ^ (i < glen ? got[i] : 0));
	return diff == 0;
}

enum web_auth_result web_auth_check(struct web_auth *a, const char *user, const char *password,
				    const struct sockaddr *peer, const char **name, int64_t *retry_ms)
{
	unsigned char key[16];
	int64_t now = mono_now_ms();
	struct fail_slot *s;
	const struct web_user *found = NULL;
	const char *setting, *out;
	int ok;

	*name = NULL;
	*retry_ms = 0;
	if (!a || !a->users || !user)
		return WEB_AUTH_NONE;
	addr_key(peer, key);
	if ((s = slot_of(a, key, 0, now)) && now >= s->window_end) {
		s->used = 0;
		s = NULL;
	}
	if (s && s->count >= WEB_AUTH_FAILS) {
		*retry_ms = s->window_end - now;
		return WEB_AUTH_LIMITED;
	}
	for (size_t i = 0; i < a->users->n; i++)
		if (!strcmp(a->users->v[i].name, user))
			found = &a->users->v[i];
	/* an unknown name costs the same crypt, against a real entry's setting */
	setting = found ? found->hash : a->users->v[0].hash;
	out = crypt_r(password ? password : "", setting, a->cd);
	ok = found && out && out[0] != '*' && same_hash(out, found->hash);
	explicit_bzero(a->cd, sizeof(*a->cd));   /* the password's traces: input and output */
	if (ok) {
		if (s)
			s->used = 0;
		*name = found->name;
		return WEB_AUTH_OK;
	}
	a->failures++;
	s = slot_of(a, key, 1, now);
	s->count++;
	return WEB_AUTH_BAD;
}
