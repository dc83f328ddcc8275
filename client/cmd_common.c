/*
 * cmd_common.c - helpers shared by the CLI subcommands (cmd_common.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cmd_common.h"
#include "log.h"

struct config *
cli_load_config(const char *prog, const char *cfpath)
{
	struct config *cf;
	char	 err[1024];

	if ((cf = config_load(cfpath, err, sizeof(err))) == NULL)
		fprintf(stderr, "vmingest %s: %s\n", prog, err);
	return cf;
}

int
cli_open_store(const char *prog, const char *store_dir, const char *cfpath,
    struct store **out)
{
	struct config *cf = NULL;
	const char *path = store_dir;
	int	 rc;

	if (path == NULL) {
		if ((cf = cli_load_config(prog, cfpath)) == NULL)
			return -1;
		path = cf->store.path;
	}
	rc = store_open(out, path, 0, STORE_RDONLY);
	if (rc != 0)
		fprintf(stderr, "vmingest %s: store %s: %s\n", prog, path,
		    store_strerror(rc));
	config_free(cf);
	return rc == 0 ? 0 : -1;
}

int
cli_parse_u64(const char *s, uint64_t *out)
{
	char	*end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

void
cli_print_json(json_t *j)
{
	cli_fprint_json(stdout, j);
}

void
cli_fprint_json(FILE *fp, json_t *j)
{
	char	*s = json_dumps(j, JSON_COMPACT);

	/* a record line dropped for want of memory would go unnoticed */
	if (s == NULL)
		log_fatalx("json_dumps: out of memory");
	fputs(s, fp);
	fputc('\n', fp);
	free(s);
	json_decref(j);
}

int
cli_read_keyfile(const char *prog, const char *path, char key[41])
{
	char	 buf[128];
	size_t	 n;
	FILE	*fp;

	if ((fp = fopen(path, "re")) == NULL) {
		fprintf(stderr, "vmingest %s: %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	if (strcspn(buf, "\r\n \t") != 40) {
		fprintf(stderr, "vmingest %s: %s: not a Z85 key file\n", prog, path);
		return -1;
	}
	memcpy(key, buf, 40);
	key[40] = '\0';
	return 0;
}

int
cli_recv_frames(void *sock, zmq_msg_t *f, int nmax)
{
	int	 n = 0, more = 1;

	while (more) {
		zmq_msg_t extra, *m = n < nmax ? &f[n] : &extra;

		zmq_msg_init(m);
		if (zmq_msg_recv(m, sock, 0) == -1) {
			zmq_msg_close(m);
			break;
		}
		more = zmq_msg_more(m);
		if (m == &extra)
			zmq_msg_close(m);
		else
			n++;
	}
	return n;
}

static int
write_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t	 k;

	while (n > 0) {
		if ((k = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/*
 * Written under ".NAME.PID.tmp" in tdir (fsynced if sync), then renamed to
 * NAME in ndir; the two may be one directory.  Syncing ndir after the
 * rename is the caller's choice.  0, or -1 with errno (temp file removed).
 */
int
cli_write_file(int tdir, int ndir, const char *name, const void *p, size_t n,
    mode_t mode, int sync)
{
	char	 tmp[300];
	int	 fd, e;

	if (snprintf(tmp, sizeof(tmp), ".%s.%ld.tmp", name, (long)getpid()) >=
	    (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = openat(tdir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    mode);
	if (fd == -1)
		return -1;
	if (write_all(fd, p, n) == -1 || (sync && fsync(fd) == -1)) {
		e = errno;
		close(fd);
		goto fail;
	}
	if (close(fd) == -1 || renameat(tdir, tmp, ndir, name) == -1) {
		e = errno;
		goto fail;
	}
	return 0;
fail:
	unlinkat(tdir, tmp, 0);
	errno = e;
	return -1;
}

int
cli_raw_matches(const Vmingest__Record *rec, const void *raw, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	return EVP_Digest(raw ? raw : "", len, md, &mdlen, EVP_sha256(),
	    NULL) == 1 && rec->sha256.len == mdlen &&
	    memcmp(md, rec->sha256.data, mdlen) == 0;
}
