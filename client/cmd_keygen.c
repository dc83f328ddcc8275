/*
 * cmd_keygen.c - `vmingest keygen NAME`: a CurveZMQ key pair from
 * zmq_curve_keypair(), as NAME.pub (Z85 public key, one line, 0644) and
 * NAME.key (Z85 secret key, one line, 0600).
 *
 * SECURITY: the secret key file is created with O_EXCL and mode 0600
 * (umask cannot widen it); an existing file is never overwritten unless
 * --force is given, and then it is replaced by rename, not rewritten.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "cmds.h"

static const char keygen_usage[] =
"usage: vmingest keygen [--force] NAME\n"
"\n"
"Make a CurveZMQ key pair for vmingestd or a subscriber.\n"
"\n"
"Writes NAME.pub, the Z85 public key on one line (mode 0644), and NAME.key,\n"
"the Z85 secret key on one line (mode 0600).  For the daemon, point\n"
"[publish] curve_secret_key_file at the .key file and give subscribers the\n"
".pub file (vmingest sub --server-key).  For a subscriber, copy its .pub\n"
"file into the daemon's [publish] authorized_keys_dir and run\n"
"vmingest sub --key NAME.key.\n"
"\n"
"Options:\n"
"  --force      replace existing NAME.pub / NAME.key\n"
"  -h, --help   this text\n"
"\n"
"Exit status: 0 written, 1 a file exists (without --force) or cannot be\n"
"written, 2 usage error or libzmq without CURVE.\n"
"\n"
"Examples:\n"
"  vmingest keygen /etc/vmingest/server\n"
"  vmingest keygen idc-consumer && cp idc-consumer.pub /etc/vmingest/clients/\n";

static int
write_key(const char *path, const char *key, mode_t mode, int force)
{
	char	 tmp[4096], line[64];
	int	 fd, w, n;

	w = snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
	n = snprintf(line, sizeof(line), "%s\n", key);
	if (w < 0 || (size_t)w >= sizeof(tmp) || n < 0 || (size_t)n >= sizeof(line)) {
		fprintf(stderr, "vmingest keygen: %s: name too long\n", path);
		return -1;
	}
	if (!force && access(path, F_OK) == 0) {
		fprintf(stderr, "vmingest keygen: %s exists (use --force to replace)\n",
		    path);
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)) == -1) {
		fprintf(stderr, "vmingest keygen: %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) != 0 || write(fd, line, (size_t)n) != n ||
	    fsync(fd) != 0 || close(fd) != 0) {
		fprintf(stderr, "vmingest keygen: %s: %s\n", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if ((force ? rename(tmp, path) : link(tmp, path)) != 0) {
		fprintf(stderr, "vmingest keygen: %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (!force)
		unlink(tmp);
	return 0;
}

int
cmd_keygen(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char	 pub[41], sec[41], ppath[4096], kpath[4096];
	int	 ch, force = 0, w1, w2, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 'f': force = 1; break;
		case 'h': fputs(keygen_usage, stdout); return 0;
		default: fputs(keygen_usage, stderr); return 2;
		}
	}
	if (optind + 1 != argc || argv[optind][0] == '\0') {
		fputs(keygen_usage, stderr);
		return 2;
	}
	if (!zmq_has("curve") || zmq_curve_keypair(pub, sec) != 0) {
		fprintf(stderr, "vmingest keygen: libzmq has no CURVE support\n");
		return 2;
	}
	w1 = snprintf(ppath, sizeof(ppath), "%s.pub", argv[optind]);
	w2 = snprintf(kpath, sizeof(kpath), "%s.key", argv[optind]);
	if (w1 < 0 || (size_t)w1 >= sizeof(ppath) || w2 < 0 ||
	    (size_t)w2 >= sizeof(kpath)) {
		fprintf(stderr, "vmingest keygen: name too long\n");
		return 2;
	}
	if (!force && (access(kpath, F_OK) == 0 || access(ppath, F_OK) == 0)) {
		fprintf(stderr, "vmingest keygen: %s or %s exists (use --force to "
		    "replace)\n", ppath, kpath);
		explicit_bzero(sec, sizeof(sec));
		return 1;
	}
	rc = write_key(kpath, sec, 0600, force) == 0 &&
	    write_key(ppath, pub, 0644, force) == 0 ? 0 : 1;
	explicit_bzero(sec, sizeof(sec));
	if (rc == 0)
		printf("%s\n%s\n", ppath, kpath);
	return rc;
}
