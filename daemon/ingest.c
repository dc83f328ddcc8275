/*
 * ingest.c - drain Maildir queues into the durable log, exactly once.
 *
 * Threads: this file's loop runs on the main thread and owns every queue
 * fd, the inotify fd, the in-flight set, the batches and the publisher's
 * input.  Worker threads (daemon.workers, default one per CPU) take jobs -
 * "read queue Q file NAME and run the pipeline" - and hand back results
 * through a mutex-protected list and an eventfd.  One committer thread
 * owns the batch write transaction: the loop hands it one batch at a
 * time and gets it back, committed or refused, through a second eventfd;
 * while it waits in fsync the loop goes on taking files and finishing
 * the batch before (unlink, log, publish).  The jobs of a batch in the
 * committer's hands are touched by no other thread until it returns.
 *
 * The exactly-once protocol, per file:
 *   1. a worker reads the file (O_NOFOLLOW, regular files only) and builds
 *      the record (normalize, IMS, rules, topics);
 *   2. the loop adds the record and the raw bytes to a batch and hands
 *      it to the committer, which first asks the store whether queue/NAME
 *      was committed already (a crash after commit, before unlink): if so,
 *      with the same sha256, no new record is made; identical bytes under
 *      another name become a DUPLICATE record pointing at the first;
 *   3. the batch commits with fsync (store_wcommit), on the committer;
 *   4. back on the loop, the records go to the publisher;
 *   5. only then the file is unlinked (or renamed to cur/NAME:2,S with
 *      keep = cur) and new/ is fsynced.
 * Dying between any two steps leaves either no record and the file in
 * new/ (redone from 1) or a record and the file (step 2 recognises it).
 *
 * Backpressure: at most store.inflight files are read ahead of the
 * commit, so memory stays flat whatever the backlog; the directory scan
 * is incremental (readdir resumes where it stopped).
 *
 * Map or disk full: the batch aborts, ingestion pauses with the files in
 * new/, and the commit is retried every few seconds until it fits.
 *
 * SECURITY: file names come from the Maildir (any local user who can
 * write there): they are escaped in logs, never used outside the queue's
 * directory fds (openat/unlinkat/renameat), and dot files are ignored.
 */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "ingest.h"
#include "log.h"
#include "maildir.h"
#include "pipeline.h"
#include "record.h"
#include "rules.h"
#include "stats.h"
#include "store.h"
#include "util.h"

#define RETRY_FULL_MS	2000	/* retry a full store this often */
#define STATS_EVERY_MS	1000

/* A compiled script shared by the jobs that use it; refcounted by the loop. */
struct rules_ref {
	struct rules	*rules;
	char		*path;
	unsigned	 refs;
};

struct job {
	struct job	*next;
	size_t		 q;
	char		*name;
	int		 dirfd;
	struct rules_ref *rules;
	struct limits	 limits;
	size_t		 max_file;	/* a bigger file can never be stored (dispatch) */
	char		 topic[256];
	char		 queue[65];
	/* result */
	uint8_t		*raw;
	size_t		 len;
	Vmingest__Record *rec;
	int		 err;		/* errno of open/read, 0 if read */
	int		 kind;		/* JOB_* */
	int64_t		 ctime_us;
	uint64_t	 fsize;		/* as fstat saw it */
	dev_t		 dev;		/* the file read, to remove no other one */
	ino_t		 ino;
	struct timespec	 ctim;
	int		 have_id;
	int		 set_aside;	/* refused alone once (said in the log) */
	int		 already;	/* committed before a crash: just remove */
	void		(*done_fn)(void *, uint64_t);	/* JOB_INJECT: told the new seq */
	void		*done_arg;
	uint64_t	 seq_done;
	int64_t		 t_queued;	/* when it joined the batch list */
	uint8_t		*packed;	/* the record as stored, for the publisher */
	size_t		 plen;
};

#define JOB_FILE	0
#define JOB_NOTREG	1	/* symlink or special file: quarantined, removed */
#define JOB_SKIP	2	/* vanished or unreadable: nothing to do */
#define JOB_INJECT	3	/* a record made elsewhere (reprocess): no file */

struct queue {
	char		*name;
	char		*maildir;
	char		*topic;
	int		 keep;
	int		 mdfd, newfd, curfd;
	int		 wd;
	DIR		*scan;
	int		 dirty;
	int		 touched;	/* new/ changed in this batch: fsync */
	int		 readable;
	int64_t		 retry_open_us;	/* queue not openable: next try */
	int		 reopen;	/* new/ went away: reopen once idle */
	ino_t		 new_ino;	/* new/ as opened, to notice a replacement */
	dev_t		 new_dev;
	unsigned	 inflight;
	struct rules_ref *rules;
};

struct ingest {
	struct config	*cf;
	struct store	*st;
	struct publisher *pub;
	struct queue	 q[CONFIG_MAX_QUEUES];
	size_t		 nq;
	int		 epfd, infd, sigfd, evfd;
	GHashTable	*inflight;	/* "q/name" -> job, files read ahead of commit */
	GHashTable	*ignored;	/* "q/name" -> 1, unreadable until the next rescan */
	unsigned	 n_inflight;

	/* worker pool */
	pthread_t	*workers;
	unsigned	 nworkers;
	pthread_mutex_t	 wmu;
	pthread_cond_t	 wcv;
	struct job	*whead, *wtail;
	int		 wstop;
	pthread_mutex_t	 rmu;
	struct job	*rhead, *rtail;
	unsigned	 working;	/* dispatched, result not yet taken */

	/* batch */
	struct job	*bhead, *btail;
	unsigned	 bn;
	int64_t		 boldest_us;
	unsigned	 batch_limit;	/* 1 after a refused batch, doubling back */
	int		 paused;
	int64_t		 retry_at_us;
	/* jobs refused alone (store full, or an error): tried again later */
	struct job	*dhead, *dtail;
	unsigned	 dn;
	int64_t		 dretry_us;

	/* committer thread: at most one batch in its hands */
	pthread_t	 cthr;
	int		 cstarted;
	pthread_mutex_t	 cmu;
	pthread_cond_t	 ccv;
	int		 cevfd;		/* committer -> loop: batch done */
	struct job	*chead;		/* the batch; NULL: none handed over */
	unsigned	 cn;
	size_t		 crecord_bytes;	/* [limits] record_bytes when handed over */
	int		 cdone, cstop, crc;
	int64_t		 ct0, ct1;
	int		 cbusy;		/* loop's view: a batch is out */

	/* hooks run on the main loop thread (control socket, retention) */
	struct {
		int	 fd;
		void	(*fn)(int, void *);
		void	*arg;
	}		 fds[8];
	size_t		 nfds;
	struct {
		int64_t	 every_us, next_us;
		void	(*fn)(void *);
		void	*arg;
	}		 timers[8];
	size_t		 ntimers;

	int		 stopping;
	int64_t		 next_stats_us;
	int64_t		 next_rescan_us;
	void		(*ready_fn)(void *);
	void		*ready_arg;
};

static char *
inflight_key(size_t q, const char *name)
{
	char	*k;

	if (asprintf(&k, "%zu/%s", q, name) == -1)
		log_fatal("asprintf");
	return k;
}

static void
rules_unref(struct rules_ref *r)
{
	if (r == NULL || --r->refs > 0)
		return;
	rules_free(r->rules);
	free(r->path);
	free(r);
}

static struct rules_ref *
rules_load(const char *path, const struct rules_limits *rl, char *err, size_t errlen)
{
	struct rules_ref *r;
	struct rules *c;

	if ((c = rules_compile(path, rl, err, errlen)) == NULL)
		return NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		log_fatal("calloc");
	r->rules = c;
	r->path = xstrdup(path);
	r->refs = 1;
	return r;
}

/* ---- workers ---- */

/* Append j to a singly linked job list (head, tail). */
static void
job_append(struct job **head, struct job **tail, struct job *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

/* A finished job goes to the loop: the result list, then a wake-up. */
static int
result_push(struct ingest *ing, struct job *j)
{
	uint64_t one = 1;

	pthread_mutex_lock(&ing->rmu);
	job_append(&ing->rhead, &ing->rtail, j);
	pthread_mutex_unlock(&ing->rmu);
	/* eventfd counter overflow is impossible here */
	return write(ing->evfd, &one, sizeof(one)) < 0 ? -1 : 0;
}

/*
 * The size comes from the file (a sparse file can claim terabytes): no
 * buffer for it is -1 with ENOMEM, so the file waits in new/ and the
 * daemon goes on, rather than exiting on every start.
 */
static int
read_all(int fd, size_t hint, uint8_t **out, size_t *outlen)
{
	size_t	 cap = hint < SIZE_MAX ? hint + 1 : hint, len = 0;
	uint8_t	*buf = malloc(cap), *nbuf;
	ssize_t	 n;

	if (buf == NULL) {
		errno = ENOMEM;
		return -1;
	}
	for (;;) {
		if (len == cap) {
			if (cap > SIZE_MAX / 2 ||
			    (nbuf = realloc(buf, cap * 2)) == NULL) {
				free(buf);
				errno = ENOMEM;
				return -1;
			}
			buf = nbuf;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

/* Remember which file the job read (device, inode, ctime). */
static void
job_identify(struct job *j, const struct stat *sb)
{
	j->dev = sb->st_dev;
	j->ino = sb->st_ino;
	j->ctim = sb->st_ctim;
	j->have_id = 1;
}

/*
 * Is new/NAME still the file the job read?  A file renamed onto the same
 * name meanwhile (a second delivery, a tool) is another message: it must
 * stay.  Gone (ENOENT) counts as the same: there is nothing to remove.
 * XXX a rename between this check and the unlink is not caught; it would
 * take another writer of the same name within microseconds.
 */
static int
job_file_same(const struct queue *q, const struct job *j)
{
	struct stat sb;

	if (!j->have_id)
		return 1;
	if (fstatat(q->newfd, j->name, &sb, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT;
	return sb.st_dev == j->dev && sb.st_ino == j->ino &&
	    sb.st_ctim.tv_sec == j->ctim.tv_sec &&
	    sb.st_ctim.tv_nsec == j->ctim.tv_nsec;
}

static void
job_run(struct job *j)
{
	struct pipeline_in in;
	struct stat sb;
	int	 fd;

	j->kind = JOB_FILE;
	fd = openat(j->dirfd, j->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		j->err = errno;
		if (errno != ELOOP) {
			/* vanished or unreadable: no record, nothing to run */
			j->kind = JOB_SKIP;
			return;
		}
		j->kind = JOB_NOTREG;
		if (fstatat(j->dirfd, j->name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
			j->ctime_us = (int64_t)sb.st_ctim.tv_sec * 1000000 +
			    sb.st_ctim.tv_nsec / 1000;
			job_identify(j, &sb);
		}
		goto build;
	}
	if (fstat(fd, &sb) == -1) {
		j->err = errno;
		j->kind = JOB_SKIP;
		close(fd);
		return;
	}
	j->ctime_us = (int64_t)sb.st_ctim.tv_sec * 1000000 + sb.st_ctim.tv_nsec / 1000;
	j->fsize = (uint64_t)sb.st_size;
	job_identify(j, &sb);
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		if (S_ISDIR(sb.st_mode)) {
			j->err = EISDIR;
			j->kind = JOB_SKIP;
			return;
		}
		j->kind = JOB_NOTREG;
		goto build;
	}
	if ((uint64_t)sb.st_size > j->max_file) {
		/* no map holds it: do not even try to buffer it */
		j->err = EFBIG;
		j->kind = JOB_SKIP;
		close(fd);
		return;
	}
	if (read_all(fd, (size_t)sb.st_size, &j->raw, &j->len) == -1) {
		j->err = errno;
		j->kind = JOB_SKIP;
		close(fd);
		return;
	}
	close(fd);

build:
	memset(&in, 0, sizeof(in));
	in.queue = j->queue;
	in.topic = j->topic;
	in.rules = j->rules ? j->rules->rules : NULL;
	in.rules_path = j->rules ? j->rules->path : NULL;
	in.maildir_name = j->name;
	in.received_at_us = util_now_us();
	in.ctime_us = j->ctime_us;
	if (j->kind == JOB_NOTREG) {
		/* a symlink or device node in new/: no bytes to keep, but a
		 * record says it was there and why it was removed */
		j->rec = pipeline_run(&j->limits, &in, "", 0);
		j->rec->disposition = VMINGEST__DISPOSITION__QUARANTINED;
		rec_set_str(&j->rec->reason, "not a regular file (symlink or "
		    "special file): removed from new/ unread");
		while (j->rec->n_topics > 0)
			vmingest__topic_seq__free_unpacked(
			    j->rec->topics[--j->rec->n_topics], NULL);
		return;
	}
	j->rec = pipeline_run(&j->limits, &in, j->raw, j->len);
}

static void *
worker_main(void *arg)
{
	struct ingest *ing = arg;
	struct job *j;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		pthread_mutex_lock(&ing->wmu);
		while (ing->whead == NULL && !ing->wstop)
			pthread_cond_wait(&ing->wcv, &ing->wmu);
		if (ing->whead == NULL) {
			pthread_mutex_unlock(&ing->wmu);
			break;
		}
		j = ing->whead;
		ing->whead = j->next;
		if (ing->whead == NULL)
			ing->wtail = NULL;
		pthread_mutex_unlock(&ing->wmu);

		job_run(j);
		result_push(ing, j);
	}
	return NULL;
}

static void
job_free(struct job *j)
{
	rules_unref(j->rules);
	record_free(j->rec);
	free(j->packed);
	free(j->raw);
	free(j->name);
	free(j);
}

static void
job_free_list(struct job *j)
{
	struct job *next;

	for (; j != NULL; j = next) {
		next = j->next;
		job_free(j);
	}
}

/* ---- queues ---- */

static int
mkdir_p(const char *path, mode_t mode)
{
	char	 buf[PATH_MAX];
	char	*p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -1;
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

/* Record why a queue cannot be read (why == NULL: it can). */
static void
queue_set_error(size_t qi, const char *why)
{
	pthread_mutex_lock(&g_stats.mu);
	g_stats.queues[qi].readable = why == NULL;
	snprintf(g_stats.queues[qi].error, sizeof(g_stats.queues[qi].error),
	    "%s", why ? why : "");
	pthread_mutex_unlock(&g_stats.mu);
}

static void
queue_fail(size_t qi, const char *what, const char *path)
{
	char	 why[256];

	snprintf(why, sizeof(why), "%s %.200s: %s", what, path, strerror(errno));
	queue_set_error(qi, why);
}

/* Open (or reopen) a queue's Maildir; 0 ok, -1 not usable now. */
static int
queue_open(struct ingest *ing, size_t qi)
{
	struct queue *q = &ing->q[qi];
	static const char *sub[] = { "tmp", "new", "cur" };
	char	 p[PATH_MAX];
	size_t	 i;

	if (q->mdfd != -1)
		return 0;
	for (i = 0; i < 3; i++) {
		if (snprintf(p, sizeof(p), "%s/%s", q->maildir, sub[i]) >= (int)sizeof(p))
			return -1;
		if (access(p, F_OK) == -1 && errno == ENOENT) {
			if (mkdir_p(p, 0770) == -1) {
				queue_fail(qi, "cannot create", p);
				log_warn("queue %s: mkdir %s", q->name, p);
				return -1;
			}
			log_notice("queue %s: created %s", q->name, p);
		}
	}
	if ((q->mdfd = open(q->maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    (q->newfd = openat(q->mdfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    (q->curfd = openat(q->mdfd, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		queue_fail(qi, "cannot open Maildir", q->maildir);
		log_warn("queue %s: open %s", q->name, q->maildir);
		if (q->mdfd != -1)
			close(q->mdfd);
		if (q->newfd != -1)
			close(q->newfd);
		q->mdfd = q->newfd = q->curfd = -1;
		return -1;
	}
	{
		struct stat sb;

		if (fstat(q->newfd, &sb) == 0) {
			q->new_ino = sb.st_ino;
			q->new_dev = sb.st_dev;
		}
	}
	snprintf(p, sizeof(p), "%s/new", q->maildir);
	q->wd = inotify_add_watch(ing->infd, p, IN_MOVED_TO | IN_CREATE |
	    IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
	if (q->wd == -1)
		log_warn("queue %s: inotify %s (rescans only)", q->name, p);
	q->dirty = 1;
	queue_set_error(qi, NULL);
	return 0;
}

static void
queue_close(struct ingest *ing, size_t qi)
{
	struct queue *q = &ing->q[qi];

	if (q->scan != NULL)
		closedir(q->scan);
	q->scan = NULL;
	if (q->wd != -1)
		inotify_rm_watch(ing->infd, q->wd);
	q->wd = -1;
	if (q->curfd != -1)
		close(q->curfd);
	if (q->newfd != -1)
		close(q->newfd);
	if (q->mdfd != -1)
		close(q->mdfd);
	q->mdfd = q->newfd = q->curfd = -1;
}

/* Hand one file to the workers unless it is in flight already. */
static int
dispatch(struct ingest *ing, size_t qi, const char *name)
{
	struct queue *q = &ing->q[qi];
	struct job *j;
	char	*key;

	if (!maildir_name_ok(name))
		return 0;
	key = inflight_key(qi, name);
	if (g_hash_table_contains(ing->inflight, key) ||
	    g_hash_table_contains(ing->ignored, key)) {
		free(key);
		return 0;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL)
		log_fatal("calloc");
	j->q = qi;
	j->name = xstrdup(name);
	j->dirfd = q->newfd;
	j->limits = ing->cf->limits;
	j->max_file = ing->cf->store.map_size < STORE_MAX_VALUE ?
	    ing->cf->store.map_size : STORE_MAX_VALUE;
	snprintf(j->topic, sizeof(j->topic), "%s", q->topic);
	snprintf(j->queue, sizeof(j->queue), "%s", q->name);
	if ((j->rules = q->rules) != NULL)
		j->rules->refs++;
	g_hash_table_insert(ing->inflight, key, j);
	ing->n_inflight++;
	q->inflight++;
	ing->working++;

	pthread_mutex_lock(&ing->wmu);
	job_append(&ing->whead, &ing->wtail, j);
	pthread_cond_signal(&ing->wcv);
	pthread_mutex_unlock(&ing->wmu);
	return 1;
}

/* Continue the incremental scans while there is room in flight. */
static void
scan_step(struct ingest *ing)
{
	struct dirent *de;
	size_t	 qi;
	int	 fd;

	for (qi = 0; qi < ing->nq; qi++) {
		struct queue *q = &ing->q[qi];

		if (q->mdfd == -1) {
			/* not openable: try again at most once a second */
			int64_t now = util_now_us();

			if (now < q->retry_open_us)
				continue;
			if (queue_open(ing, qi) == -1) {
				q->retry_open_us = now + 1000000;
				continue;
			}
		}
		if (q->reopen)
			continue;
		if (q->scan == NULL) {
			if (!q->dirty)
				continue;
			q->dirty = 0;
			if ((fd = openat(q->newfd, ".", O_RDONLY | O_DIRECTORY |
			    O_CLOEXEC)) == -1 || (q->scan = fdopendir(fd)) == NULL) {
				queue_fail(qi, "cannot read new/ of", q->maildir);
				log_warn("queue %s: scan new/", q->name);
				if (fd != -1)
					close(fd);
				continue;
			}
		}
		while (ing->n_inflight < ing->cf->store.inflight) {
			errno = 0;
			if ((de = readdir(q->scan)) == NULL) {
				if (errno != 0) {
					queue_fail(qi, "cannot read new/ of",
					    q->maildir);
					log_warn("queue %s: readdir", q->name);
				} else if (!g_stats.queues[qi].readable)
					queue_set_error(qi, NULL);
				closedir(q->scan);
				q->scan = NULL;
				break;
			}
			if (de->d_type == DT_DIR)
				continue;
			dispatch(ing, qi, de->d_name);
		}
	}
}

/* ---- commit ---- */

static void
take_results(struct ingest *ing)
{
	struct job *j, *next;
	uint64_t v;

	if (read(ing->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("eventfd read");
	pthread_mutex_lock(&ing->rmu);
	j = ing->rhead;
	ing->rhead = ing->rtail = NULL;
	pthread_mutex_unlock(&ing->rmu);
	for (; j != NULL; j = next) {
		next = j->next;
		if (j->kind != JOB_INJECT)
			ing->working--;
		j->t_queued = util_now_us();
		job_append(&ing->bhead, &ing->btail, j);
		if (ing->bn++ == 0)
			ing->boldest_us = j->t_queued;
	}
}

static void
job_done(struct ingest *ing, struct job *j)
{
	char	*key;

	if (j->kind == JOB_INJECT) {
		if (j->done_fn != NULL)
			j->done_fn(j->done_arg, j->rec ? j->rec->seq : j->seq_done);
		return;
	}
	key = inflight_key(j->q, j->name);

	g_hash_table_remove(ing->inflight, key);
	free(key);
	ing->n_inflight--;
	ing->q[j->q].inflight--;
}

static void
drop_topics(Vmingest__Record *rec)
{
	while (rec->n_topics > 0)
		vmingest__topic_seq__free_unpacked(rec->topics[--rec->n_topics], NULL);
}

/*
 * A record too large to store whole: keep identity, reason and raw bytes,
 * and the links to other records (the one it re-ran, the one it repeats).
 */
static void
shrink_record(struct job *j)
{
	Vmingest__Record *r = record_new(), *o = j->rec;

	r->queue = rec_strdup(o->queue);
	r->maildir_name = rec_strdup(o->maildir_name);
	r->topic = rec_strdup(o->topic);
	r->received_at_us = o->received_at_us;
	r->ctime_us = o->ctime_us;
	r->raw_size = o->raw_size;
	r->sha256 = o->sha256;
	o->sha256.data = NULL;
	o->sha256.len = 0;
	r->message_id = rec_strdup(o->message_id);
	r->subject = rec_strdup(o->subject);
	r->reprocessed_from = o->reprocessed_from;
	r->duplicate_of = o->duplicate_of;
	r->disposition = VMINGEST__DISPOSITION__QUARANTINED;
	r->reason = rec_strdup("normalized record exceeds [limits] record_bytes; "
	    "raw message kept");
	record_free(o);
	j->rec = r;
}

/* Store the job's record and raw bytes; a record too big goes in shrunk. */
static int
add_job(struct store_txn *t, struct job *j, size_t record_bytes)
{
	const uint8_t *raw = j->raw ? j->raw : (const uint8_t *)"";
	/* by_name under the name as read: what store_find_name looks up */
	const char *name = j->kind == JOB_INJECT ? NULL : j->name;
	int	 rc;

	rc = store_add_named(t, j->rec, name, raw, j->len, record_bytes,
	    &j->packed, &j->plen);
	if (rc == STORE_E_TOOBIG) {
		shrink_record(j);
		rc = store_add_named(t, j->rec, name, raw, j->len, 0, &j->packed,
		    &j->plen);
	}
	return rc;
}

/*
 * Steps 2-3 of the protocol for the `n` jobs of `first` (committer thread:
 * it touches the jobs and the store only).  Returns 0, or the store error
 * (the transaction is then aborted).
 */
static int
commit_jobs(struct store *st, struct job *first, unsigned n, size_t record_bytes)
{
	struct store_txn *t;
	struct job *j;
	uint8_t	 sha[32];
	uint64_t seq;
	unsigned i;
	int	 rc;

	if ((rc = store_wbegin(st, &t)) != 0)
		return rc;
	for (i = 0, j = first; i < n; i++, j = j->next) {
		/* index lookups fault pages in: give them back as we go */
		if (i % 16 == 15)
			store_trim_resident(st);
		j->already = 0;
		free(j->packed);	/* from a batch that was refused */
		j->packed = NULL;
		if (j->kind == JOB_SKIP)
			continue;
		if (j->kind == JOB_INJECT) {
			/* same bytes as the record it re-runs, by design */
			if ((rc = add_job(t, j, record_bytes)) != 0)
				goto fail;
			continue;
		}
		rc = store_find_name(t, j->queue, j->name, &seq, sha);
		if (rc == 0 && j->rec->sha256.len == 32 &&
		    memcmp(sha, j->rec->sha256.data, 32) == 0) {
			j->already = 1;
			j->rec->seq = seq;
			continue;
		}
		if (rc != 0 && rc != STORE_E_NOTFOUND)
			goto fail;
		/* a symlink or device was not read: it has no bytes to share */
		if (j->kind == JOB_FILE && j->rec->sha256.len == 32 &&
		    j->rec->disposition != VMINGEST__DISPOSITION__DUPLICATE &&
		    store_find_sha(t, j->rec->sha256.data, &seq) == 0) {
			char	 why[64];

			j->rec->disposition = VMINGEST__DISPOSITION__DUPLICATE;
			j->rec->duplicate_of = seq;
			snprintf(why, sizeof(why), "same bytes as seq %llu",
			    (unsigned long long)seq);
			rec_set_str(&j->rec->reason, why);
			drop_topics(j->rec);
		}
		if ((rc = add_job(t, j, record_bytes)) != 0)
			goto fail;
	}
	return store_wcommit(t);
fail:
	store_wabort(t);
	return rc;
}

/*
 * Steps 4-5 for a committed batch.  The records go to the publisher
 * first (they are durable: nothing waits on the files for that), with one
 * wake-up of its thread for the whole batch; then the files are removed
 * and new/ is fsynced.  Dying before the removal leaves files that step 2
 * recognises at the next start.
 */
static void
finish_jobs(struct ingest *ing, struct job *list, int64_t t_commit)
{
	struct job *j;
	char	 esc[300], mid[200], dst[300], why[300];
	size_t	 qi;
	int	 left;

	/* log, count, publish */
	for (j = list; j != NULL; j = j->next) {
		struct queue *q = &ing->q[j->q];

		if (j->kind == JOB_SKIP || j->already)
			continue;
		j->seq_done = j->rec->seq;
		log_escape(esc, sizeof(esc), j->name, strlen(j->name));
		log_escape(mid, sizeof(mid), j->rec->message_id,
		    strlen(j->rec->message_id));
		/* a rule can build the reason from message bytes (variables) */
		log_escape(why, sizeof(why), j->rec->reason, strlen(j->rec->reason));
		log_info("seq=%llu queue=%s topic=%s disposition=%s msgid=<%s> "
		    "size=%zu name=%s%s%s", (unsigned long long)j->rec->seq,
		    q->name, j->rec->topic, disposition_name(j->rec->disposition),
		    mid, j->len, esc, j->rec->reason[0] ? " reason=" : "", why);

		pthread_mutex_lock(&g_stats.mu);
		qi = j->q;
		if (j->rec->disposition < STATS_NDISP)
			g_stats.queues[qi].messages[j->rec->disposition]++;
		g_stats.queues[qi].bytes += j->len;
		g_stats.queues[qi].last_progress_us = t_commit;
		g_stats.queues[qi].ring[(t_commit / 1000000) % 60]++;
		if (j->rec->disposition == VMINGEST__DISPOSITION__QUARANTINED)
			g_stats.quarantined++;
		if (j->rec->seq > g_stats.last_seq)
			g_stats.last_seq = j->rec->seq;
		if (j->ctime_us > 0)
			stats_hist_add(&g_stats.ingest_latency,
			    (double)(t_commit - j->ctime_us) / 1e6);
		pthread_mutex_unlock(&g_stats.mu);

		/* step 4: the publisher takes the record and its packed bytes */
		if (j->rec->disposition == VMINGEST__DISPOSITION__PUBLISHED &&
		    j->rec->n_topics > 0) {
			publisher_submit(ing->pub, j->rec, j->packed, j->plen);
			j->rec = NULL;
			j->packed = NULL;
		}
	}
	publisher_flush(ing->pub);

	/* step 5: remove the files */
	while ((j = list) != NULL) {
		list = j->next;
		j->next = NULL;
		struct queue *q = &ing->q[j->q];

		log_escape(esc, sizeof(esc), j->name, strlen(j->name));
		if (j->kind == JOB_SKIP) {
			if (j->err != ENOENT) {
				char *key = inflight_key(j->q, j->name);

				if (j->err == EFBIG)
					log_warnx("queue %s: %s: %llu bytes, more than "
					    "the store can hold ([store] map_size, "
					    "and at most 4 GiB - 1 a message): left "
					    "in new/", q->name, esc,
					    (unsigned long long)j->fsize);
				else {
					errno = j->err;
					log_warn("queue %s: %s: left in new/ until "
					    "the next rescan", q->name, esc);
				}
				g_hash_table_replace(ing->ignored, key, key);
			}
			job_done(ing, j);
			job_free(j);
			continue;
		}
		left = 0;
		if (j->kind != JOB_INJECT && !job_file_same(q, j)) {
			/* stored what was read; the file there now is another */
			log_warnx("queue %s: %s was replaced in new/ while it was "
			    "being stored; the new file stays and is read next",
			    q->name, esc);
			q->dirty = 1;
			left = 1;
		} else if (j->kind == JOB_INJECT) {
			/* no file: the record re-ran stored bytes */
		} else if (q->keep == CONFIG_KEEP_CUR && j->kind == JOB_FILE) {
			if (maildir_cur_name(j->name, dst, sizeof(dst)) == -1)
				log_warnx("queue %s: %s: name too long for cur/; "
				    "left in new/", q->name, esc);
			else if (renameat(q->newfd, j->name, q->curfd, dst) == -1 &&
			    errno != ENOENT)
				log_warn("queue %s: rename %s to cur/", q->name, esc);
		} else if (unlinkat(q->newfd, j->name, 0) == -1 && errno != ENOENT)
			log_warn("queue %s: unlink %s", q->name, esc);
		if (j->kind != JOB_INJECT)
			q->touched = 1;
		if (j->already && !left) {
			j->seq_done = j->rec->seq;
			log_info("seq=%llu queue=%s name=%s action=removed "
			    "reason=already-stored", (unsigned long long)j->rec->seq,
			    q->name, esc);
		}
		job_done(ing, j);
		job_free(j);
	}
	for (qi = 0; qi < ing->nq; qi++) {
		if (!ing->q[qi].touched)
			continue;
		ing->q[qi].touched = 0;
		if (fsync(ing->q[qi].newfd) == -1)
			log_warn("queue %s: fsync new/", ing->q[qi].name);
		if (ing->q[qi].keep == CONFIG_KEEP_CUR && fsync(ing->q[qi].curfd) == -1)
			log_warn("queue %s: fsync cur/", ing->q[qi].name);
	}
}

static void
set_store_state(int writable, const char *why)
{
	pthread_mutex_lock(&g_stats.mu);
	g_stats.store_writable = writable;
	snprintf(g_stats.store_error, sizeof(g_stats.store_error), "%s",
	    why ? why : "");
	pthread_mutex_unlock(&g_stats.mu);
}

/*
 * The committer: one batch at a time, steps 2-3 (store lookups, adds,
 * the durable commit), then the map trim.  It touches the jobs of the
 * batch and the store, nothing of the loop's.
 */
static void *
committer_main(void *arg)
{
	struct ingest *ing = arg;
	struct job *list;
	sigset_t all;
	uint64_t one = 1;
	int64_t	 t0, t1;
	size_t	 rb;
	unsigned n;
	int	 rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&ing->cmu);
	for (;;) {
		while ((ing->chead == NULL || ing->cdone) && !ing->cstop)
			pthread_cond_wait(&ing->ccv, &ing->cmu);
		if (ing->chead == NULL || ing->cdone)
			break;
		list = ing->chead;
		n = ing->cn;
		rb = ing->crecord_bytes;
		pthread_mutex_unlock(&ing->cmu);

		t0 = util_now_us();
		rc = commit_jobs(ing->st, list, n, rb);
		t1 = util_now_us();
		if (rc == 0)
			/* keep the resident set flat as the store grows (store.h) */
			store_trim_resident(ing->st);

		pthread_mutex_lock(&ing->cmu);
		ing->crc = rc;
		ing->ct0 = t0;
		ing->ct1 = t1;
		ing->cdone = 1;
		pthread_cond_broadcast(&ing->ccv);
		if (write(ing->cevfd, &one, sizeof(one)) != sizeof(one))
			log_warn("committer: eventfd write");
	}
	pthread_mutex_unlock(&ing->cmu);
	return NULL;
}

/*
 * Put the n jobs head..tail back at the front of the batch list, in
 * order (a refused batch, or the set-aside ones), to be tried one at a
 * time.
 */
static void
batch_prepend(struct ingest *ing, struct job *head, struct job *tail, unsigned n)
{
	tail->next = ing->bhead;
	if (ing->bhead == NULL)
		ing->btail = tail;
	ing->bhead = head;
	ing->bn += n;
	ing->boldest_us = head->t_queued;
	ing->batch_limit = 1;
}

/* Hand the first batch_limit jobs of the batch list to the committer. */
static void
commit_start(struct ingest *ing)
{
	struct job *list, *last;
	unsigned n, i;

	n = ing->bn < ing->batch_limit ? ing->bn : ing->batch_limit;
	list = last = ing->bhead;
	for (i = 1; i < n; i++)
		last = last->next;
	ing->bhead = last->next;
	last->next = NULL;
	if (ing->bhead == NULL)
		ing->btail = NULL;
	ing->bn -= n;
	if (ing->bhead != NULL)
		ing->boldest_us = ing->bhead->t_queued;

	pthread_mutex_lock(&ing->cmu);
	ing->chead = list;
	ing->cn = n;
	ing->crecord_bytes = ing->cf->limits.record_bytes;
	ing->cdone = 0;
	pthread_cond_broadcast(&ing->ccv);
	pthread_mutex_unlock(&ing->cmu);
	ing->cbusy = 1;
}

static int commit_due(struct ingest *, int64_t);

/*
 * The committer is done with its batch (wait for it with `wait`): on
 * success finish it, else put it back.  From the loop (wait = 0) the next
 * batch is handed over before this one is finished.
 */
static void
commit_end(struct ingest *ing, int wait)
{
	struct job *list, *last;
	uint64_t v;
	int64_t	 t0, t1;
	unsigned n;
	int	 rc;

	pthread_mutex_lock(&ing->cmu);
	while (wait && !ing->cdone)
		pthread_cond_wait(&ing->ccv, &ing->cmu);
	if (!ing->cdone) {
		pthread_mutex_unlock(&ing->cmu);
		return;
	}
	list = ing->chead;
	n = ing->cn;
	rc = ing->crc;
	t0 = ing->ct0;
	t1 = ing->ct1;
	ing->chead = NULL;
	ing->cn = 0;
	ing->cdone = 0;
	pthread_mutex_unlock(&ing->cmu);
	if (read(ing->cevfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("eventfd read");
	ing->cbusy = 0;

	if (rc != 0 && n > 1) {
		/*
		 * Nothing of it was stored: back to the front, in order, and
		 * one at a time, so that what fits is stored and what does
		 * not is found and set aside.
		 */
		for (last = list; last->next != NULL; last = last->next)
			;
		batch_prepend(ing, list, last, n);
		if (rc != STORE_E_FULL && rc != STORE_E_NOSPC)
			log_warnx("commit failed: %s; trying its %u file(s) one at "
			    "a time", store_strerror(rc), n);
		return;
	}
	if (rc != 0) {
		/*
		 * One file that does not go in (too big for the room left, or
		 * an error): set it aside, its file stays in new/, and go on
		 * with the others; the set-aside are tried again every
		 * RETRY_FULL_MS.  With nothing else to try, ingestion pauses.
		 */
		list->next = NULL;
		if (ing->dn++ == 0) {
			ing->dhead = list;
			ing->dretry_us = t1 + RETRY_FULL_MS * 1000;
		} else
			ing->dtail->next = list;
		ing->dtail = list;
		if (!list->set_aside) {
			char	 esc[300];

			list->set_aside = 1;
			log_escape(esc, sizeof(esc), list->name, strlen(list->name));
			log_warnx("queue %s: %s (%zu bytes) cannot be stored now: "
			    "%s; left in new/ and tried again every %d ms, the "
			    "other files go on", ing->q[list->q].name, esc,
			    list->len, store_strerror(rc), RETRY_FULL_MS);
		}
		if (ing->bn == 0) {
			if (!ing->paused)
				log_warnx("ingestion paused: %s; %u file(s) wait "
				    "in new/, retrying every %d ms",
				    store_strerror(rc), ing->n_inflight,
				    RETRY_FULL_MS);
			ing->paused = 1;
			ing->retry_at_us = ing->dretry_us;
			set_store_state(0, store_strerror(rc));
		}
		return;
	}
	if (ing->paused) {
		log_notice("ingestion resumed: the store has room again");
		ing->paused = 0;
	}
	set_store_state(1, NULL);
	pthread_mutex_lock(&g_stats.mu);
	stats_hist_add(&g_stats.commit_seconds, (double)(t1 - t0) / 1e6);
	pthread_mutex_unlock(&g_stats.mu);
	/* after a refusal, batches grow back: 1, 2, 4, ... batch_max */
	if (ing->batch_limit < ing->cf->store.batch_max)
		ing->batch_limit = ing->batch_limit * 2 < ing->cf->store.batch_max ?
		    ing->batch_limit * 2 : ing->cf->store.batch_max;
	/*
	 * The next batch commits while this one is finished: its records
	 * still reach the publisher first (they are submitted here, the next
	 * batch's only after its commit comes back).
	 */
	if (wait == 0 && commit_due(ing, util_now_us()))
		commit_start(ing);
	finish_jobs(ing, list, t1);
}

/*
 * The set-aside files go to the front of the batch list again when
 * their retry is due (the map may have room now: retention, a file
 * removed), one at a time.
 */
static void
retry_deferred(struct ingest *ing, int64_t now)
{
	if (ing->dn == 0 || ing->cbusy || now < ing->dretry_us)
		return;
	batch_prepend(ing, ing->dhead, ing->dtail, ing->dn);
	ing->dhead = ing->dtail = NULL;
	ing->dn = 0;
}

/* Whether the loop should hand a batch over now. */
static int
commit_due(struct ingest *ing, int64_t now)
{
	retry_deferred(ing, now);
	if (ing->cbusy || ing->bn == 0)
		return 0;
	if (ing->paused && now < ing->retry_at_us)
		return 0;
	return ing->bn >= ing->batch_limit || ing->working == 0 ||
	    now >= ing->boldest_us + (int64_t)ing->cf->store.batch_delay_ms * 1000;
}

/*
 * At the stop: commit everything taken, a batch at a time, waiting for
 * each.  A full store stops it (after one more try, as the loop would).
 */
static void
commit_all(struct ingest *ing)
{
	if (ing->cbusy)
		commit_end(ing, 1);
	ing->paused = 0;
	retry_deferred(ing, INT64_MAX);
	while (ing->bn > 0) {
		commit_start(ing);
		commit_end(ing, 1);
		if (ing->paused)
			break;
	}
	ing->batch_limit = ing->cf->store.batch_max;
}

/* ---- periodic work ---- */

static void
update_stats(struct ingest *ing, int64_t now)
{
	struct store_stat ss;
	struct statvfs vfs;
	size_t	 qi;

	for (qi = 0; qi < ing->nq; qi++) {
		struct queue *q = &ing->q[qi];
		struct queue_stats *qs;
		char	 np[PATH_MAX];
		struct stat now_sb, cur_sb;

		/*
		 * new/ removed or replaced (rm -r new; mkdir new): the open fd
		 * still reads the old, deleted directory and inotify stays
		 * quiet until it is closed.  Compare it with the path.
		 */
		if (q->newfd != -1 && q->inflight == 0 &&
		    snprintf(np, sizeof(np), "%s/new", q->maildir) < (int)sizeof(np) &&
		    (q->reopen || fstat(q->newfd, &cur_sb) == -1 ||
		    cur_sb.st_nlink == 0 || stat(np, &now_sb) == -1 ||
		    now_sb.st_ino != q->new_ino || now_sb.st_dev != q->new_dev)) {
			q->reopen = 0;
			log_warnx("queue %s: %s was removed or replaced; reopening",
			    q->name, np);
			queue_close(ing, qi);
			errno = ENOENT;
			queue_fail(qi, "new/ was replaced in", q->maildir);
			if (queue_open(ing, qi) == -1)
				q->retry_open_us = now + 1000000;
		}
		uint64_t files = 0, sum = 0;
		double	 oldest = 0;
		DIR	*d;
		struct dirent *de;
		int	 fd, k;

		/*
		 * Count new/ and find the oldest file.  Maildir names start
		 * with the delivery time in seconds, which saves a stat per
		 * file; names that do not are stat'ed (bounded).
		 */
		if (q->newfd != -1 && (fd = openat(q->newfd, ".", O_RDONLY |
		    O_DIRECTORY | O_CLOEXEC)) != -1 && (d = fdopendir(fd)) != NULL) {
			long	 minsec = 0;
			unsigned stats_left = 256;

			while ((de = readdir(d)) != NULL && files < 10000000) {
				long	 sec;

				if (!maildir_name_ok(de->d_name) || de->d_type == DT_DIR)
					continue;
				files++;
				if ((sec = maildir_name_time(de->d_name)) == 0) {
					struct stat sb;

					if (stats_left == 0 || fstatat(q->newfd,
					    de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == -1)
						continue;
					stats_left--;
					sec = sb.st_ctim.tv_sec;
				}
				if (minsec == 0 || sec < minsec)
					minsec = sec;
			}
			closedir(d);
			if (minsec > 0 && now / 1000000 > minsec)
				oldest = (double)(now / 1000000 - minsec);
		}
		pthread_mutex_lock(&g_stats.mu);
		qs = &g_stats.queues[qi];
		qs->backlog_files = files;
		qs->backlog_oldest_s = oldest;
		if (files == 0)
			qs->waiting_since_us = 0;
		else if (qs->waiting_since_us == 0)
			qs->waiting_since_us = now;
		qs->ring[(now / 1000000 + 1) % 60] = 0;
		for (k = 0; k < 60; k++)
			sum += qs->ring[k];
		qs->rate_1m = (double)sum / 60.0;
		pthread_mutex_unlock(&g_stats.mu);
	}
	if (store_stat(ing->st, &ss) == 0) {
		pthread_mutex_lock(&g_stats.mu);
		g_stats.map_bytes = ss.map_size;
		g_stats.used_bytes = ss.used_bytes;
		g_stats.last_seq = ss.head_seq;
		pthread_mutex_unlock(&g_stats.mu);
	}
	if (statvfs(store_path(ing->st), &vfs) == 0) {
		pthread_mutex_lock(&g_stats.mu);
		g_stats.disk_free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		g_stats.disk_total_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
		pthread_mutex_unlock(&g_stats.mu);
	}

	/*
	 * systemd watchdog: this runs once a second from the main loop, so a
	 * wedged loop stops the pings and systemd restarts us.  Only when the
	 * unit sets WatchdogSec (WATCHDOG_USEC/WATCHDOG_PID for this pid),
	 * every [daemon] watchdog_s seconds if set, else every second.
	 */
	{
		uint64_t wd_usec, bfiles = 0, seq;
		double	 boldest = 0;
		char	 msg[256];
		int	 n;

		static int64_t last_ping_us;
		int64_t	 every_us = (int64_t)ing->cf->daemon.watchdog_s * 1000000;

		if (sd_watchdog_enabled(0, &wd_usec) > 0 &&
		    (every_us == 0 || now - last_ping_us >= every_us)) {
			last_ping_us = now;
			pthread_mutex_lock(&g_stats.mu);
			for (qi = 0; qi < ing->nq; qi++) {
				bfiles += g_stats.queues[qi].backlog_files;
				if (g_stats.queues[qi].backlog_oldest_s > boldest)
					boldest = g_stats.queues[qi].backlog_oldest_s;
			}
			seq = g_stats.last_seq;
			pthread_mutex_unlock(&g_stats.mu);
			n = snprintf(msg, sizeof(msg), "WATCHDOG=1\nSTATUS=%s: "
			    "backlog %llu file(s), oldest %.0fs, last seq %llu",
			    ing->paused ? "paused (store full)" : "ingesting",
			    (unsigned long long)bfiles, boldest,
			    (unsigned long long)seq);
			if (n > 0 && (size_t)n < sizeof(msg))
				sd_notify(0, msg);
		}
	}
}

static void
handle_inotify(struct ingest *ing)
{
	char	 buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t	 n;
	char	*p;
	size_t	 qi;

	while ((n = read(ing->infd, buf, sizeof(buf))) > 0) {
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW) {
				for (qi = 0; qi < ing->nq; qi++)
					ing->q[qi].dirty = 1;
				continue;
			}
			for (qi = 0; qi < ing->nq; qi++)
				if (ing->q[qi].wd == ev->wd)
					break;
			if (qi == ing->nq)
				continue;
			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
				/* jobs in flight still use the fd: close it
				 * once they are done (update_stats) */
				ing->q[qi].reopen = 1;
				continue;
			}
			if (ev->len == 0 || ing->stopping)
				continue;
			/* fast path: the file named by the event, if there is room */
			if (ing->n_inflight < ing->cf->store.inflight &&
			    ing->q[qi].newfd != -1 && !ing->q[qi].reopen)
				dispatch(ing, qi, ev->name);
			else
				ing->q[qi].dirty = 1;
		}
	}
}

static void
reload(struct ingest *ing)
{
	struct config *ncf;
	char	 err[1024];
	size_t	 qi;

	pthread_mutex_lock(&g_stats.mu);
	g_stats.reloads++;
	pthread_mutex_unlock(&g_stats.mu);
	if (ing->cf->path == NULL) {
		log_notice("SIGHUP: embedded default configuration, nothing to reload");
		return;
	}
	if ((ncf = config_load(ing->cf->path, err, sizeof(err))) == NULL) {
		log_warnx("SIGHUP: %s; keeping the running configuration", err);
		goto failed;
	}
	/* compile every new script first; any failure keeps all old rules */
	struct rules_ref *nr[CONFIG_MAX_QUEUES] = { 0 };
	for (qi = 0; qi < ing->nq; qi++) {
		const struct queue_cfg *qc = config_queue(ncf, ing->q[qi].name);

		if (qc == NULL || qc->rules == NULL)
			continue;
		if ((nr[qi] = rules_load(qc->rules, &ncf->rules, err,
		    sizeof(err))) == NULL) {
			log_warnx("SIGHUP: rules for queue %s: %s; keeping the "
			    "running rules and configuration", ing->q[qi].name, err);
			while (qi-- > 0)
				rules_unref(nr[qi]);
			config_free(ncf);
			goto failed;
		}
	}
	for (qi = 0; qi < ing->nq; qi++) {
		struct queue *q = &ing->q[qi];
		const struct queue_cfg *qc = config_queue(ncf, q->name);

		if (qc == NULL) {
			log_warnx("SIGHUP: queue %s was removed from the file; it "
			    "keeps running until a restart", q->name);
			continue;
		}
		if (strcmp(qc->maildir, q->maildir))
			log_warnx("SIGHUP: queue %s: maildir change needs a "
			    "restart", q->name);
		free(q->topic);
		q->topic = xstrdup(qc->topic);
		q->keep = qc->keep;
		rules_unref(q->rules);
		q->rules = nr[qi];
	}
	if (ncf->n_queues != ing->nq)
		log_warnx("SIGHUP: new queues need a restart");
	if (strcmp(ncf->store.path, ing->cf->store.path) ||
	    ncf->store.map_size != ing->cf->store.map_size ||
	    ncf->publish.n_endpoints != ing->cf->publish.n_endpoints)
		log_warnx("SIGHUP: [store] and [publish] changes need a restart");
	/* what is safe to take now: limits, batching, rules, topics */
	ing->cf->limits = ncf->limits;
	ing->cf->rules = ncf->rules;
	ing->cf->store.batch_max = ncf->store.batch_max;
	ing->cf->store.batch_delay_ms = ncf->store.batch_delay_ms;
	ing->cf->store.rescan_s = ncf->store.rescan_s;
	ing->cf->store.min_free_pct = ncf->store.min_free_pct;
	ing->cf->http.stall_s = ncf->http.stall_s;
	ing->batch_limit = ing->cf->store.batch_max;
	pthread_mutex_lock(&g_stats.mu);
	g_stats.min_free_pct = ncf->store.min_free_pct;
	g_stats.stall_s = ncf->http.stall_s;
	pthread_mutex_unlock(&g_stats.mu);
	config_free(ncf);
	log_notice("SIGHUP: configuration reloaded from %s", ing->cf->path);
	return;
failed:
	pthread_mutex_lock(&g_stats.mu);
	g_stats.reload_failures++;
	pthread_mutex_unlock(&g_stats.mu);
}

/* ---- records from elsewhere (reprocess) ---- */

int
ingest_inject(struct ingest *ing, const char *queue, Vmingest__Record *rec,
    uint8_t *raw, size_t len, void (*done)(void *, uint64_t), void *arg)
{
	struct job *j;
	size_t	 qi;

	for (qi = 0; qi < ing->nq; qi++)
		if (!strcmp(ing->q[qi].name, queue))
			break;
	if (qi == ing->nq)
		qi = 0;		/* a queue since removed: count it on the first */
	if ((j = calloc(1, sizeof(*j))) == NULL)
		log_fatal("calloc");
	j->kind = JOB_INJECT;
	j->q = qi;
	j->name = xstrdup(rec->maildir_name ? rec->maildir_name : "");
	snprintf(j->queue, sizeof(j->queue), "%s", queue);
	j->rec = rec;
	j->raw = raw;
	j->len = len;
	j->ctime_us = 0;
	j->done_fn = done;
	j->done_arg = arg;
	return result_push(ing, j);
}

const struct rules *
ingest_queue_rules(struct ingest *ing, const char *queue, const char **topic)
{
	size_t	 qi;

	for (qi = 0; qi < ing->nq; qi++)
		if (!strcmp(ing->q[qi].name, queue)) {
			if (topic != NULL)
				*topic = ing->q[qi].topic;
			return ing->q[qi].rules ? ing->q[qi].rules->rules : NULL;
		}
	return NULL;
}

/* ---- the loop ---- */

struct ingest *
ingest_new(struct config *cf, struct store *st, struct publisher *pub,
    char *err, size_t errlen)
{
	struct ingest *ing;
	struct epoll_event ev;
	sigset_t mask;
	size_t	 qi;
	unsigned i;
	long	 ncpu;

	if ((ing = calloc(1, sizeof(*ing))) == NULL)
		log_fatal("calloc");
	ing->cf = cf;
	ing->st = st;
	ing->pub = pub;
	ing->nq = cf->n_queues;
	ing->batch_limit = cf->store.batch_max;
	ing->inflight = g_hash_table_new_full(g_str_hash, g_str_equal, free, NULL);
	ing->ignored = g_hash_table_new_full(g_str_hash, g_str_equal, free, NULL);
	pthread_mutex_init(&ing->wmu, NULL);
	pthread_cond_init(&ing->wcv, NULL);
	pthread_mutex_init(&ing->rmu, NULL);
	pthread_mutex_init(&ing->cmu, NULL);
	pthread_cond_init(&ing->ccv, NULL);
	ing->cevfd = -1;

	for (qi = 0; qi < ing->nq; qi++) {
		struct queue *q = &ing->q[qi];
		const struct queue_cfg *qc = &cf->queues[qi];

		q->name = xstrdup(qc->name);
		q->maildir = xstrdup(qc->maildir);
		q->topic = xstrdup(qc->topic);
		q->keep = qc->keep;
		q->mdfd = q->newfd = q->curfd = q->wd = -1;
		if (qc->rules != NULL &&
		    (q->rules = rules_load(qc->rules, &cf->rules, err, errlen)) == NULL) {
			ingest_free(ing);
			return NULL;
		}
	}

	if ((ing->infd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1)
		log_fatal("inotify_init1");
	if ((ing->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1 ||
	    (ing->cevfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		log_fatal("eventfd");
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if ((ing->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		log_fatal("signalfd");
	if ((ing->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		log_fatal("epoll_create1");
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = ing->infd;
	epoll_ctl(ing->epfd, EPOLL_CTL_ADD, ing->infd, &ev);
	ev.data.fd = ing->evfd;
	epoll_ctl(ing->epfd, EPOLL_CTL_ADD, ing->evfd, &ev);
	ev.data.fd = ing->cevfd;
	epoll_ctl(ing->epfd, EPOLL_CTL_ADD, ing->cevfd, &ev);
	ev.data.fd = ing->sigfd;
	epoll_ctl(ing->epfd, EPOLL_CTL_ADD, ing->sigfd, &ev);

	for (qi = 0; qi < ing->nq; qi++)
		if (queue_open(ing, qi) == -1)
			log_warnx("queue %s: not usable yet; retrying at each "
			    "rescan", ing->q[qi].name);

	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	ing->nworkers = cf->daemon.workers ? cf->daemon.workers :
	    (unsigned)(ncpu > 0 ? ncpu : 1);
	if ((ing->workers = calloc(ing->nworkers, sizeof(pthread_t))) == NULL)
		log_fatal("calloc");
	for (i = 0; i < ing->nworkers; i++) {
		if (pthread_create(&ing->workers[i], NULL, worker_main, ing) != 0)
			log_fatal("pthread_create");
		pthread_setname_np(ing->workers[i], "vmi-worker");
	}
	if (pthread_create(&ing->cthr, NULL, committer_main, ing) != 0)
		log_fatal("pthread_create");
	pthread_setname_np(ing->cthr, "vmi-commit");
	ing->cstarted = 1;
	return ing;
}

int
ingest_add_fd(struct ingest *ing, int fd, void (*fn)(int, void *), void *arg)
{
	struct epoll_event ev;

	if (ing->nfds == sizeof(ing->fds) / sizeof(ing->fds[0]))
		return -1;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = fd;
	if (epoll_ctl(ing->epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
		return -1;
	ing->fds[ing->nfds].fd = fd;
	ing->fds[ing->nfds].fn = fn;
	ing->fds[ing->nfds].arg = arg;
	ing->nfds++;
	return 0;
}

void
ingest_del_fd(struct ingest *ing, int fd)
{
	size_t	 i;

	for (i = 0; i < ing->nfds; i++) {
		if (ing->fds[i].fd != fd)
			continue;
		epoll_ctl(ing->epfd, EPOLL_CTL_DEL, fd, NULL);
		ing->fds[i] = ing->fds[--ing->nfds];
		return;
	}
}

int
ingest_add_timer(struct ingest *ing, unsigned every_ms, void (*fn)(void *), void *arg)
{
	if (ing->ntimers == sizeof(ing->timers) / sizeof(ing->timers[0]))
		return -1;
	ing->timers[ing->ntimers].every_us = (int64_t)every_ms * 1000;
	ing->timers[ing->ntimers].next_us = util_now_us() + (int64_t)every_ms * 1000;
	ing->timers[ing->ntimers].fn = fn;
	ing->timers[ing->ntimers].arg = arg;
	ing->ntimers++;
	return 0;
}

struct store *
ingest_store(struct ingest *ing)
{
	return ing->st;
}

const struct config *
ingest_config(struct ingest *ing)
{
	return ing->cf;
}

void
ingest_set_ready_hook(struct ingest *ing, void (*fn)(void *), void *arg)
{
	ing->ready_fn = fn;
	ing->ready_arg = arg;
}

static int
loop_timeout_ms(struct ingest *ing, int64_t now)
{
	int64_t	 until = ing->next_stats_us;

	if (ing->bn > 0 && !ing->paused && !ing->cbusy) {
		int64_t due = ing->boldest_us +
		    (int64_t)ing->cf->store.batch_delay_ms * 1000;
		if (due < until)
			until = due;
	}
	if (ing->paused && !ing->cbusy && ing->retry_at_us < until)
		until = ing->retry_at_us;
	if (ing->dn > 0 && !ing->cbusy && ing->dretry_us < until)
		until = ing->dretry_us;
	if (ing->next_rescan_us < until)
		until = ing->next_rescan_us;
	for (size_t i = 0; i < ing->ntimers; i++)
		if (ing->timers[i].next_us < until)
			until = ing->timers[i].next_us;
	if (until <= now)
		return 0;
	return (int)((until - now + 999) / 1000);
}

static void
shutdown_workers(struct ingest *ing)
{
	struct job *j, *next;
	unsigned i;

	/* jobs not yet started: their files simply stay in new/ */
	pthread_mutex_lock(&ing->wmu);
	j = ing->whead;
	ing->whead = ing->wtail = NULL;
	ing->wstop = 1;
	pthread_cond_broadcast(&ing->wcv);
	pthread_mutex_unlock(&ing->wmu);
	for (; j != NULL; j = next) {
		next = j->next;
		ing->working--;
		job_done(ing, j);
		job_free(j);
	}
	for (i = 0; i < ing->nworkers; i++)
		pthread_join(ing->workers[i], NULL);
	ing->nworkers = 0;
	take_results(ing);
}

int
ingest_run(struct ingest *ing)
{
	struct epoll_event evs[8];
	struct signalfd_siginfo si;
	int64_t	 now;
	int	 n, i;

	now = util_now_us();
	ing->next_stats_us = now;
	ing->next_rescan_us = now + (int64_t)ing->cf->store.rescan_s * 1000000;
	pthread_mutex_lock(&g_stats.mu);
	g_stats.store_open = 1;
	g_stats.store_writable = 1;
	g_stats.epoch = store_epoch(ing->st);
	pthread_mutex_unlock(&g_stats.mu);
	if (ing->ready_fn)
		ing->ready_fn(ing->ready_arg);

	while (!ing->stopping) {
		scan_step(ing);
		now = util_now_us();
		n = epoll_wait(ing->epfd, evs, 8, loop_timeout_ms(ing, now));
		if (n == -1 && errno != EINTR)
			log_fatal("epoll_wait");
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == ing->evfd)
				take_results(ing);
			else if (fd == ing->cevfd)
				commit_end(ing, 0);
			else if (fd != ing->infd && fd != ing->sigfd) {
				size_t k;

				for (k = 0; k < ing->nfds; k++)
					if (ing->fds[k].fd == fd) {
						ing->fds[k].fn(fd, ing->fds[k].arg);
						break;
					}
			}
			else if (fd == ing->infd)
				handle_inotify(ing);
			else if (fd == ing->sigfd) {
				while (read(ing->sigfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGHUP)
						reload(ing);
					else {
						log_notice("signal %u: finishing the "
						    "current batch", si.ssi_signo);
						ing->stopping = 1;
					}
				}
			}
		}
		now = util_now_us();
		if (commit_due(ing, now))
			commit_start(ing);
		if (now >= ing->next_rescan_us) {
			size_t qi;

			for (qi = 0; qi < ing->nq; qi++)
				ing->q[qi].dirty = 1;
			g_hash_table_remove_all(ing->ignored);
			ing->next_rescan_us = now + (int64_t)ing->cf->store.rescan_s * 1000000;
		}
		for (size_t k = 0; k < ing->ntimers; k++)
			if (now >= ing->timers[k].next_us) {
				ing->timers[k].next_us = now + ing->timers[k].every_us;
				ing->timers[k].fn(ing->timers[k].arg);
			}
		if (now >= ing->next_stats_us) {
			update_stats(ing, now);
			ing->next_stats_us = now + STATS_EVERY_MS * 1000;
		}
		pthread_mutex_lock(&g_stats.mu);
		g_stats.tick_us = now;
		pthread_mutex_unlock(&g_stats.mu);
	}

	shutdown_workers(ing);
	commit_all(ing);
	if (ing->bn + ing->dn > 0)
		log_warnx("exiting with %u file(s) uncommitted in new/ (store "
		    "full); they are picked up at the next start",
		    ing->bn + ing->dn);
	log_notice("stopped cleanly");
	return 0;
}

void
ingest_free(struct ingest *ing)
{
	size_t	 qi;

	if (ing == NULL)
		return;
	if (ing->nworkers > 0)
		shutdown_workers(ing);
	if (ing->cstarted) {
		/* ingest_run() committed everything; only a batch still out is
		 * waited for and dropped (its files stay in new/ or were stored) */
		pthread_mutex_lock(&ing->cmu);
		while (ing->cbusy && !ing->cdone)
			pthread_cond_wait(&ing->ccv, &ing->cmu);
		job_free_list(ing->chead);
		ing->chead = NULL;
		ing->cbusy = 0;
		ing->cstop = 1;
		pthread_cond_broadcast(&ing->ccv);
		pthread_mutex_unlock(&ing->cmu);
		pthread_join(ing->cthr, NULL);
		ing->cstarted = 0;
	}
	job_free_list(ing->bhead);
	job_free_list(ing->dhead);
	for (qi = 0; qi < ing->nq; qi++) {
		if (ing->q[qi].name == NULL)
			continue;
		queue_close(ing, qi);
		rules_unref(ing->q[qi].rules);
		free(ing->q[qi].name);
		free(ing->q[qi].maildir);
		free(ing->q[qi].topic);
	}
	if (ing->inflight)
		g_hash_table_destroy(ing->inflight);
	if (ing->ignored)
		g_hash_table_destroy(ing->ignored);
	free(ing->workers);
	free(ing);
}
