/*
 * cmd_common.c - helpers shared by the CLI subcommands (cmd_common.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_common.h"

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
	char	*s = json_dumps(j, JSON_COMPACT);

	if (s != NULL) {
		fputs(s, stdout);
		fputc('\n', stdout);
		free(s);
	}
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
