/*
 * zap.c - CurveZMQ key files, the ZAP handler thread, the insecure-bind
 * check and socket monitors (zap.h).
 *
 * The ZAP handler answers libzmq's authentication requests on
 * inproc://zeromq.zap.01 (ZMQ RFC 27).  It admits a peer when the
 * mechanism is CURVE, the domain is ZAP_DOMAIN and the peer's public key
 * is in the allowlist loaded from [publish] authorized_keys_dir.  Before
 * each handshake the directory is looked at (stat only): when any key
 * file was added, removed, replaced or rewritten the keys are re-read, so
 * a change takes effect for the next handshake without a restart; when
 * the directory cannot be read nobody is admitted.
 *
 * Error policy: a missing or malformed server key or keys directory is a
 * start-up error (zap_start fails); a malformed key file found later is
 * logged and skipped; a malformed ZAP request is answered 500.
 *
 * SECURITY: key files and the keys directory are trusted configuration
 * but are parsed strictly (one line, 40 Z85 characters).  ZAP requests
 * carry peer-controlled credentials: sizes are checked before use, and
 * the peer address is logged escaped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "log.h"
#include "zap.h"

#define ZAP_MAX_KEYS	10000
#define ZAP_ENDPOINT	"inproc://zeromq.zap.01"
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93	/* libzmq >= 4.3 (draft in zmq.h) */
#endif

struct zap {
	void	*ctx;
	void	*rep;
	pthread_t thr;
	int	 started;
	volatile int stop;
	char	 secret[ZAP_KEY_LEN + 1];
	char	*dir;
	uint64_t sig;		/* dir_signature() of the keys loaded */
	int	 have_sig;	/* sig is settled: skip the re-read when equal */
	int	 dir_gone;	/* said that the directory cannot be read */
	uint8_t	(*keys)[32];
	size_t	 n_keys;
	uint64_t admitted, denied;
};

int
zap_endpoint_local_ok(const char *ep)
{
	const char *h;

	if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9))
		return 1;
	if (strncmp(ep, "tcp://", 6) != 0)
		return 0;
	h = ep + 6;
	if (!strncmp(h, "127.", 4) || !strncmp(h, "localhost:", 10) ||
	    !strncmp(h, "[::1]:", 6) || !strncmp(h, "lo:", 3))
		return 1;
	return 0;
}

int
zap_read_key(const char *path, char key[ZAP_KEY_LEN + 1])
{
	char	 buf[128];
	uint8_t	 bin[32];
	ssize_t	 n;
	size_t	 len;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	len = strcspn(buf, "\r\n \t");
	if (len != ZAP_KEY_LEN || buf[len + strspn(buf + len, "\r\n \t")] != '\0')
		return -1;
	buf[len] = '\0';
	if (zmq_z85_decode(bin, buf) == NULL)
		return -1;
	memcpy(key, buf, ZAP_KEY_LEN + 1);
	return 0;
}

/*
 * Call fn for every regular file of the keys directory whose name does
 * not start with a dot, with its path and stat; fn returns nonzero to
 * stop.  -1 if the directory cannot be read.
 */
static int
key_files(const char *dir, int (*fn)(const char *, const char *,
    const struct stat *, void *), void *arg)
{
	struct stat sb;
	struct dirent *de;
	char	 path[4096];
	DIR	*d;
	int	 w;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		w = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (w < 0 || (size_t)w >= sizeof(path) || stat(path, &sb) == -1 ||
		    !S_ISREG(sb.st_mode))
			continue;
		if (fn(path, de->d_name, &sb, arg) != 0)
			break;
	}
	closedir(d);
	return 0;
}

struct sig_arg {
	time_t	 now;
	uint64_t h;
	int	 fresh;
};

static int
sig_file(const char *path, const char *name, const struct stat *sb, void *arg)
{
	struct sig_arg *a = arg;
	uint64_t f = 1469598103934665603ULL;	/* FNV-1a over the name */
	const char *c;

	for (c = name; *c; c++)
		f = (f ^ (uint8_t)*c) * 1099511628211ULL;
	f ^= (uint64_t)sb->st_ino * 0x9e3779b97f4a7c15ULL;
	f = (f ^ (uint64_t)sb->st_size) * 1099511628211ULL;
	f = (f ^ (uint64_t)sb->st_mtim.tv_sec) * 1099511628211ULL;
	f = (f ^ (uint64_t)sb->st_mtim.tv_nsec) * 1099511628211ULL;
	f = (f ^ (uint64_t)sb->st_ctim.tv_nsec) * 1099511628211ULL;
	a->h += f;		/* order-independent: readdir's order may vary */
	if (sb->st_mtim.tv_sec >= a->now - 2 || sb->st_ctim.tv_sec >= a->now - 2)
		a->fresh = 1;
	return 0;
}

/*
 * What the keys directory holds now, as one number: a hash over every
 * regular file's name, inode, size, mtime and ctime, and the directory's
 * own times.  Computed with stat(2) only, before each handshake; the keys
 * are re-read when it changes.  *fresh is set when something changed in
 * the last two seconds: a timestamp of the kernel's coarse clock cannot
 * tell two writes that close apart, so such a directory is re-read at
 * every handshake until it has settled.  -1: the directory cannot be read.
 */
static int
dir_signature(const char *dir, uint64_t *sig, int *fresh)
{
	struct sig_arg a = { time(NULL), 0, 0 };
	struct stat sb;

	if (stat(dir, &sb) == -1)
		return -1;
	a.h = (uint64_t)sb.st_mtim.tv_sec * 1000000007u ^ (uint64_t)sb.st_mtim.tv_nsec;
	if (sb.st_mtim.tv_sec >= a.now - 2 || sb.st_ctim.tv_sec >= a.now - 2)
		a.fresh = 1;
	if (key_files(dir, sig_file, &a) == -1)
		return -1;
	*sig = a.h;
	*fresh = a.fresh;
	return 0;
}

struct keys_arg {
	uint8_t	(*keys)[32];
	size_t	 n;
};

static int
read_key_file(const char *path, const char *name, const struct stat *sb,
    void *arg)
{
	struct keys_arg *a = arg;
	char	 key[ZAP_KEY_LEN + 1];

	if (zap_read_key(path, key) != 0) {
		log_warnx("zap: %s: not a Z85 public key file, skipped", path);
		return 0;
	}
	zmq_z85_decode(a->keys[a->n++], key);
	return a->n == ZAP_MAX_KEYS;
}

/*
 * Bring the allowlist in line with the keys directory (force: re-read
 * whatever the signature says).  A directory that cannot be read admits
 * nobody: revoking every key by removing it must work.
 */
static void
load_keys(struct zap *z, int force)
{
	struct keys_arg a = { NULL, 0 };
	uint64_t sig;
	int	 fresh;

	if (dir_signature(z->dir, &sig, &fresh) == -1) {
		if (z->n_keys > 0 || !z->dir_gone)
			log_warn("zap: %s: admitting no key", z->dir);
		z->n_keys = 0;
		z->dir_gone = 1;
		z->have_sig = 0;
		return;
	}
	z->dir_gone = 0;
	if (!force && z->have_sig && sig == z->sig)
		return;
	/* the signature is taken before the read: a change during it shows */
	z->sig = sig;
	z->have_sig = !fresh;
	if ((a.keys = calloc(ZAP_MAX_KEYS, 32)) == NULL)
		log_fatal("calloc");
	if (key_files(z->dir, read_key_file, &a) == -1) {
		log_warn("zap: opendir %s: admitting no key", z->dir);
		free(a.keys);
		z->n_keys = 0;
		z->have_sig = 0;
		return;
	}
	if (force || a.n != z->n_keys || z->keys == NULL ||
	    memcmp(a.keys, z->keys, a.n * 32) != 0)
		log_notice("zap: %zu authorized key(s) from %s", a.n, z->dir);
	free(z->keys);
	z->keys = a.keys;
	z->n_keys = a.n;
}

static int
key_listed(const struct zap *z, const uint8_t *k)
{
	size_t	 i;

	for (i = 0; i < z->n_keys; i++)
		if (!memcmp(z->keys[i], k, 32))
			return 1;
	return 0;
}

/* One ZAP exchange: 6 frames + credentials in, 6 frames out. */
static void
zap_answer(struct zap *z)
{
	zmq_msg_t f[8];
	int	 n = 0, more = 1, i;
	const char *code = "500", *text = "bad request";
	char	 mech[16] = "", dom[64] = "", addr[128] = "", esc[300];
	char	 z85[ZAP_KEY_LEN + 1] = "";

	while (more && n < 8) {
		zmq_msg_init(&f[n]);
		if (zmq_msg_recv(&f[n], z->rep, 0) == -1) {
			zmq_msg_close(&f[n]);
			break;
		}
		more = zmq_msg_more(&f[n]);
		n++;
	}
	while (more) {		/* drain an oversized request */
		zmq_msg_t x;

		zmq_msg_init(&x);
		if (zmq_msg_recv(&x, z->rep, 0) == -1)
			more = 0;
		else
			more = zmq_msg_more(&x);
		zmq_msg_close(&x);
	}
	if (n < 6)
		goto reply;
#define FSTR(dst, m) snprintf(dst, sizeof(dst), "%.*s", \
	(int)(zmq_msg_size(&m) < sizeof(dst) ? zmq_msg_size(&m) : sizeof(dst) - 1), \
	(const char *)zmq_msg_data(&m))
	FSTR(dom, f[2]);
	FSTR(addr, f[3]);
	FSTR(mech, f[5]);
#undef FSTR
	log_escape(esc, sizeof(esc), addr, strlen(addr));
	if (strcmp(dom, ZAP_DOMAIN) != 0) {
		code = "400";
		text = "wrong domain";
	} else if (strcmp(mech, "CURVE") != 0 || n < 7 || zmq_msg_size(&f[6]) != 32) {
		code = "400";
		text = "CURVE required";
	} else {
		load_keys(z, 0);
		zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
		if (key_listed(z, zmq_msg_data(&f[6]))) {
			code = "200";
			text = "OK";
			z->admitted++;
			log_info("zap: admitted key=%s address=%s", z85, esc);
		} else {
			code = "400";
			text = "key not authorized";
		}
	}
	if (code[0] != '2') {
		z->denied++;
		log_warnx("zap: rejected mechanism=%s key=%s address=%s: %s",
		    mech[0] ? mech : "?", z85[0] ? z85 : "-", esc, text);
	}
reply:
	/* version, request id, status code, status text, user id, metadata */
	zmq_send(z->rep, "1.0", 3, ZMQ_SNDMORE);
	if (n >= 2)
		zmq_send(z->rep, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
	else
		zmq_send(z->rep, "", 0, ZMQ_SNDMORE);
	zmq_send(z->rep, code, 3, ZMQ_SNDMORE);
	zmq_send(z->rep, text, strlen(text), ZMQ_SNDMORE);
	zmq_send(z->rep, code[0] == '2' ? z85 : "", code[0] == '2' ? ZAP_KEY_LEN : 0,
	    ZMQ_SNDMORE);
	zmq_send(z->rep, "", 0, 0);
	for (i = 0; i < n; i++)
		zmq_msg_close(&f[i]);
}

static void *
zap_main(void *arg)
{
	struct zap *z = arg;
	zmq_pollitem_t it = { z->rep, 0, ZMQ_POLLIN, 0 };

	while (!z->stop) {
		if (zmq_poll(&it, 1, 200) == -1) {
			if (errno == ETERM)
				break;
			continue;
		}
		if (it.revents & ZMQ_POLLIN)
			zap_answer(z);
	}
	return NULL;
}

int
zap_start(struct zap **out, void *ctx, const struct config *cf, char *err,
    size_t errlen)
{
	struct zap *z;
	struct stat sb;
	int	 zero = 0;

	*out = NULL;
	if (cf->publish.curve_secret_key_file == NULL)
		return 0;
	if (!zmq_has("curve")) {
		snprintf(err, errlen, "libzmq was built without CURVE");
		return -1;
	}
	if ((z = calloc(1, sizeof(*z))) == NULL)
		log_fatal("calloc");
	z->ctx = ctx;
	if (zap_read_key(cf->publish.curve_secret_key_file, z->secret) != 0) {
		snprintf(err, errlen, "%s: not a Z85 secret key file (vmingest keygen)",
		    cf->publish.curve_secret_key_file);
		free(z);
		return -1;
	}
	if (stat(cf->publish.curve_secret_key_file, &sb) == 0 &&
	    (sb.st_mode & 077) != 0)
		log_warnx("%s: secret key readable by group/others (chmod 0600)",
		    cf->publish.curve_secret_key_file);
	if ((z->dir = strdup(cf->publish.authorized_keys_dir)) == NULL)
		log_fatal("strdup");
	if (stat(z->dir, &sb) == -1 || !S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "authorized_keys_dir %s: not a directory", z->dir);
		free(z->dir);
		free(z);
		return -1;
	}
	load_keys(z, 1);
	z->rep = zmq_socket(ctx, ZMQ_REP);
	zmq_setsockopt(z->rep, ZMQ_LINGER, &zero, sizeof(zero));
	if (z->rep == NULL || zmq_bind(z->rep, ZAP_ENDPOINT) != 0) {
		snprintf(err, errlen, "zap: bind %s: %s", ZAP_ENDPOINT,
		    zmq_strerror(errno));
		if (z->rep)
			zmq_close(z->rep);
		free(z->dir);
		free(z);
		return -1;
	}
	if (pthread_create(&z->thr, NULL, zap_main, z) != 0)
		log_fatalx("zap: pthread_create");
	pthread_setname_np(z->thr, "vmi-zap");
	z->started = 1;
	*out = z;
	return 0;
}

int
zap_secure_socket(struct zap *z, void *sock, char *err, size_t errlen)
{
	int	 one = 1;

	if (z == NULL)
		return 0;
	if (zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, z->secret, ZAP_KEY_LEN) != 0) {
		snprintf(err, errlen, "CURVE options: %s", zmq_strerror(errno));
		return -1;
	}
	if (zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof(one)) != 0)
		log_warnx("zap: ZMQ_ZAP_ENFORCE_DOMAIN not supported by this "
		    "libzmq; the ZAP handler is bound before any socket, so "
		    "every CURVE handshake still goes through it");
	return 0;
}

void
zap_stop(struct zap *z)
{
	if (z == NULL)
		return;
	z->stop = 1;
	if (z->started)
		pthread_join(z->thr, NULL);
	zmq_close(z->rep);
	free(z->keys);
	free(z->dir);
	free(z);
}

void *
zap_monitor_open(void *ctx, void *sock, const char *name)
{
	char	 ep[128];
	void	*pair;
	int	 w;

	w = snprintf(ep, sizeof(ep), "inproc://vmingest-monitor-%s", name);
	if (w < 0 || (size_t)w >= sizeof(ep))
		return NULL;
	if (zmq_socket_monitor(sock, ep, ZMQ_EVENT_ACCEPTED |
	    ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
	    ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
	    ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0) {
		log_warnx("monitor %s: %s", name, zmq_strerror(errno));
		return NULL;
	}
	if ((pair = zmq_socket(ctx, ZMQ_PAIR)) == NULL)
		return NULL;
	if (zmq_connect(pair, ep) != 0) {
		zmq_close(pair);
		return NULL;
	}
	return pair;
}

void
zap_monitor_drain(void *pair, const char *what, struct zap_counters *c)
{
	zmq_msg_t ev, addr;
	uint16_t event;
	uint32_t value;
	char	 a[256], esc[600];

	if (pair == NULL)
		return;
	for (;;) {
		zmq_msg_init(&ev);
		if (zmq_msg_recv(&ev, pair, ZMQ_DONTWAIT) == -1) {
			zmq_msg_close(&ev);
			return;
		}
		zmq_msg_init(&addr);
		if (zmq_msg_more(&ev))
			zmq_msg_recv(&addr, pair, 0);
		if (zmq_msg_size(&ev) < 6) {
			zmq_msg_close(&ev);
			zmq_msg_close(&addr);
			continue;
		}
		memcpy(&event, zmq_msg_data(&ev), 2);
		memcpy(&value, (const uint8_t *)zmq_msg_data(&ev) + 2, 4);
		snprintf(a, sizeof(a), "%.*s", (int)(zmq_msg_size(&addr) < sizeof(a) ?
		    zmq_msg_size(&addr) : sizeof(a) - 1), (const char *)zmq_msg_data(&addr));
		log_escape(esc, sizeof(esc), a, strlen(a));
		switch (event) {
		case ZMQ_EVENT_ACCEPTED:
			c->accepted++;
			break;
		case ZMQ_EVENT_DISCONNECTED:
			c->disconnected++;
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
		case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
		case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
			c->auth_failures++;
			log_warnx("%s: rejected handshake endpoint=%s reason=%s "
			    "code=%u (count %llu)", what, esc,
			    event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "auth" :
			    event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ?
			    "protocol" : "mechanism", (unsigned)value,
			    (unsigned long long)c->auth_failures);
			break;
		}
		c->connected = c->accepted >= c->disconnected ?
		    c->accepted - c->disconnected : 0;
		zmq_msg_close(&ev);
		zmq_msg_close(&addr);
	}
}
