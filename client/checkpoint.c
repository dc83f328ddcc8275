/*
 * checkpoint.c - the subscriber's checkpoint file (checkpoint.h).
 *
 * Error policy: checkpoint_write returns -1 with errno set and leaves the
 * previous checkpoint in place (the temp file is removed); a malformed
 * file is an error, never silently treated as "start from scratch".
 *
 * SECURITY: see checkpoint.h; the file is parsed with bounded lines.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "util.h"

#define CKPT_LINE	512

/*
 * "KEY NUMBER\n" with KEY followed by one space and digits only (base 10
 * or 16), nothing else: sscanf would take "-1" as 2^64-1.
 */
static int
parse_num(const char *line, const char *key, int base, unsigned long long *out)
{
	size_t	 kl = strlen(key);
	const char *p = line + kl + 1;
	char	*end;

	if (strncmp(line, key, kl) != 0 || line[kl] != ' ' ||
	    !(base == 16 ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p)))
		return -1;
	errno = 0;
	*out = strtoull(p, &end, base);
	return errno == 0 && *end == '\n' ? 0 : -1;
}

int
checkpoint_read(const char *path, struct checkpoint *ck, char *err, size_t errlen)
{
	char	 line[CKPT_LINE], name[CKPT_LINE];
	unsigned long long a;
	FILE	*fp;
	int	 lineno = 0, header = 0, have_epoch = 0, have_seq = 0, rc = -1;
	size_t	 cap = 0;

	memset(ck, 0, sizeof(*ck));
	if ((fp = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			return 1;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL) {
			snprintf(err, errlen, "%s:%d: line too long", path, lineno);
			goto out;
		}
		if (lineno == 1) {
			if (strcmp(line, "vmingest-checkpoint 1\n") != 0) {
				snprintf(err, errlen, "%s: not a vmingest checkpoint", path);
				goto out;
			}
			header = 1;
		} else if (parse_num(line, "epoch", 16, &a) == 0) {
			ck->epoch = a;
			have_epoch = 1;
		} else if (parse_num(line, "seq", 10, &a) == 0) {
			ck->seq = a;
			have_seq = 1;
		} else if (sscanf(line, "topic %511s", name) == 1 &&
		    topic_chars_ok(name, 0) &&
		    parse_num(line + 6, name, 10, &a) == 0) {
			if (ck->n_topics >= CHECKPOINT_MAX_TOPICS) {
				snprintf(err, errlen, "%s: too many topics", path);
				goto out;
			}
			if (ck->n_topics == cap) {
				cap = cap ? cap * 2 : 16;
				ck->topics = realloc(ck->topics, cap * sizeof(*ck->topics));
				if (ck->topics == NULL)
					abort();
			}
			if ((ck->topics[ck->n_topics].topic = strdup(name)) == NULL)
				abort();
			ck->topics[ck->n_topics++].ts = a;
		} else {
			snprintf(err, errlen, "%s:%d: malformed line", path, lineno);
			goto out;
		}
	}
	if (!header) {
		snprintf(err, errlen, "%s: empty checkpoint file", path);
		goto out;
	}
	if (!have_epoch || !have_seq) {
		snprintf(err, errlen, "%s: no %s line (cut short?)", path,
		    have_epoch ? "seq" : "epoch");
		goto out;
	}
	rc = 0;
out:
	fclose(fp);
	if (rc != 0)
		checkpoint_free(ck);
	return rc;
}

int
checkpoint_write(const char *path, const struct checkpoint *ck)
{
	char	 tmp[4096], dir[4096];
	FILE	*fp;
	size_t	 i;
	int	 fd, w, saved;

	/* a name that is no topic would break the file's format */
	for (i = 0; i < ck->n_topics; i++)
		if (!topic_chars_ok(ck->topics[i].topic, 0)) {
			errno = EINVAL;
			return -1;
		}
	w = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (w < 0 || (size_t)w >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) == -1)
		return -1;
	if ((fp = fdopen(fd, "w")) == NULL) {
		saved = errno;
		close(fd);
		unlink(tmp);
		errno = saved;
		return -1;
	}
	fprintf(fp, "vmingest-checkpoint 1\nepoch %016llx\nseq %llu\n",
	    (unsigned long long)ck->epoch, (unsigned long long)ck->seq);
	for (i = 0; i < ck->n_topics; i++)
		fprintf(fp, "topic %s %llu\n", ck->topics[i].topic,
		    (unsigned long long)ck->topics[i].ts);
	if (fflush(fp) != 0 || ferror(fp) || fsync(fileno(fp)) != 0) {
		if (errno == 0)
			errno = EIO;
		saved = errno;
		fclose(fp);
		unlink(tmp);
		errno = saved;
		return -1;
	}
	if (fclose(fp) != 0 || rename(tmp, path) != 0) {
		saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if ((fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

void
checkpoint_free(struct checkpoint *ck)
{
	size_t	 i;

	for (i = 0; i < ck->n_topics; i++)
		free(ck->topics[i].topic);
	free(ck->topics);
	memset(ck, 0, sizeof(*ck));
}
