/*
 * store.c - the durable log in LMDB (see store.h for the layout).
 *
 * Durability: the environment is opened without MDB_NOSYNC/MDB_NOMETASYNC,
 * so mdb_txn_commit() returns only after the data and meta pages are on
 * disk.  The daemon removes a Maildir file only after that.
 *
 * Sequences: meta "next_seq" is read in every write transaction and
 * written back with it, so seq stays gap-free across crashes (a batch that
 * did not commit never happened) and across retention (which deletes old
 * records but never touches next_seq).  Per-topic heads live in `topics`
 * and move in the same transaction as the record.
 *
 * Error policy: LMDB codes are mapped to STORE_E_*; the LMDB text is
 * logged once where it happens.  MDB_MAP_FULL and ENOSPC are not fatal:
 * the caller aborts and retries later.
 *
 * SECURITY: keys and values come from our own packing; a record read back
 * is unpacked by protobuf-c, which validates it.  The store directory must
 * be private to the daemon's user.
 */
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "log.h"
#include "record.h"
#include "store.h"
#include "util.h"

struct store {
	MDB_env	*env;
	MDB_dbi	 records, raw, by_sha, by_name, by_topic, by_time, topics, meta;
	MDB_dbi	 reprocessed;	/* old seq -> the record that re-ran it */
	int	 have_reprocessed;	/* a store made before it may lack it */
	uint64_t epoch;
	int64_t	 created_us;
	int	 lockfd;
	int	 rdonly;
	char	*path;
	void	*map_base;	/* for store_trim_resident */
	size_t	 map_len;
	size_t	 page_size;
};

struct store_txn {
	struct store *st;
	MDB_txn	*txn;
	uint64_t next_seq;
};

struct store_rtxn {
	struct store *st;
	MDB_txn	*txn;
	int	 active;
};

struct store_cursor {
	struct store_rtxn *r;
	MDB_cursor *c;
	uint64_t from;
	int	 started;
};

static int
maperr(int rc, const char *what)
{
	switch (rc) {
	case 0:
		return 0;
	case MDB_NOTFOUND:
		return STORE_E_NOTFOUND;
	case MDB_MAP_FULL:
		log_warnx("store: %s: map full (raise [store] map_size)", what);
		return STORE_E_FULL;
	case ENOSPC:
	case EDQUOT:
		log_warnx("store: %s: %s", what, mdb_strerror(rc));
		return STORE_E_NOSPC;
	case MDB_READERS_FULL:
		return STORE_E_READERS;
	case EACCES:
	case EPERM:
		return STORE_E_PERM;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		log_warnx("store: %s: %s", what, mdb_strerror(rc));
		return STORE_E_CORRUPT;
	default:
		log_warnx("store: %s: %s", what, mdb_strerror(rc));
		return STORE_E_IO;
	}
}

const char *
store_strerror(int e)
{
	switch (e) {
	case 0: return "success";
	case STORE_E_NOTFOUND: return "not found";
	case STORE_E_FULL: return "store map is full (raise [store] map_size)";
	case STORE_E_NOSPC: return "no space left on the store's disk";
	case STORE_E_LOCKED: return "store is in use by another vmingestd";
	case STORE_E_IO: return "store I/O error";
	case STORE_E_CORRUPT: return "store is corrupt";
	case STORE_E_SCHEMA: return "store was written by a newer vmingest (schema)";
	case STORE_E_NOSTORE: return "no store there";
	case STORE_E_TOOBIG: return "record larger than [limits] record_bytes";
	case STORE_E_READERS: return "too many store readers";
	case STORE_E_PERM: return "permission denied (readers need group read "
	    "on the store and data.mdb, group write on lock.mdb: be in the "
	    "store's group)";
	}
	return "unknown store error";
}

static void
be64(uint8_t *p, uint64_t v)
{
	int	 i;

	for (i = 7; i >= 0; i--) {
		p[i] = v & 0xff;
		v >>= 8;
	}
}

static uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	int	 i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t
val_u64(const MDB_val *v)
{
	uint64_t x = 0;

	if (v->mv_size == sizeof(x))
		memcpy(&x, v->mv_data, sizeof(x));
	return x;
}

static int
meta_get_u64(MDB_txn *txn, MDB_dbi meta, const char *key, uint64_t *out)
{
	MDB_val	 k = { strlen(key), (void *)(uintptr_t)key }, v;
	int	 rc;

	if ((rc = mdb_get(txn, meta, &k, &v)) != 0)
		return rc;
	if (v.mv_size != sizeof(*out))
		return MDB_CORRUPTED;
	memcpy(out, v.mv_data, sizeof(*out));
	return 0;
}

static int
meta_put_u64(MDB_txn *txn, MDB_dbi meta, const char *key, uint64_t val)
{
	MDB_val	 k = { strlen(key), (void *)(uintptr_t)key };
	MDB_val	 v = { sizeof(val), &val };

	return mdb_put(txn, meta, &k, &v, 0);
}

static uint64_t
random64(void)
{
	uint64_t v = 0;
	int	 fd;

	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) != -1) {
		if (read(fd, &v, sizeof(v)) != sizeof(v))
			v = 0;
		close(fd);
	}
	if (v == 0)
		v = (uint64_t)util_now_us() ^ ((uint64_t)getpid() << 32);
	return v ? v : 1;
}

static void find_map(struct store *);

int
store_open(struct store **out, const char *path, size_t map_size, int flags)
{
	struct store *st;
	MDB_txn	*txn = NULL;
	unsigned envflags = MDB_NOTLS;
	unsigned dbflags;
	uint64_t schema = 0, epoch = 0, created = 0, next = 0, restore;
	char	 lockpath[4096];
	struct stat sb;
	int	 rc, ret;

	*out = NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		log_fatal("calloc");
	st->lockfd = -1;
	st->rdonly = (flags & STORE_RDONLY) != 0;
	if ((st->path = strdup(path)) == NULL)
		log_fatal("strdup");

	if (st->rdonly) {
		if (stat(path, &sb) == -1) {
			ret = errno == EACCES ? STORE_E_PERM : STORE_E_NOSTORE;
			goto fail;
		}
		if (!S_ISDIR(sb.st_mode)) {
			ret = STORE_E_NOSTORE;
			goto fail;
		}
		snprintf(lockpath, sizeof(lockpath), "%s/data.mdb", path);
		if (access(lockpath, R_OK) == -1) {
			ret = errno == EACCES ? STORE_E_PERM : STORE_E_NOSTORE;
			goto fail;
		}
		envflags |= MDB_RDONLY;
	} else if (mkdir(path, 0750) == -1 && errno != EEXIST) {
		log_warn("store: mkdir %s", path);
		ret = STORE_E_IO;
		goto fail;
	}

	if (flags & STORE_EXCL) {
		if (snprintf(lockpath, sizeof(lockpath), "%s/vmingestd.lock",
		    path) >= (int)sizeof(lockpath)) {
			ret = STORE_E_IO;
			goto fail;
		}
		st->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (st->lockfd == -1) {
			log_warn("store: %s", lockpath);
			ret = STORE_E_IO;
			goto fail;
		}
		if (flock(st->lockfd, LOCK_EX | LOCK_NB) == -1) {
			ret = errno == EWOULDBLOCK ? STORE_E_LOCKED : STORE_E_IO;
			goto fail;
		}
	}

	if ((rc = mdb_env_create(&st->env)) != 0) {
		ret = maperr(rc, "env_create");
		goto fail;
	}
	mdb_env_set_maxdbs(st->env, 16);
	mdb_env_set_maxreaders(st->env, 256);
	if (map_size > 0 && (rc = mdb_env_set_mapsize(st->env, map_size)) != 0) {
		ret = maperr(rc, "set_mapsize");
		goto fail;
	}
	if ((rc = mdb_env_open(st->env, path, envflags, 0640)) != 0) {
		ret = maperr(rc, "env_open");
		goto fail;
	}
	/*
	 * Operators in the store's group read it (vmingest list/show/replay):
	 * that takes group read on the directory and data.mdb and, for an
	 * LMDB reader, group write on lock.mdb (its reader table).  Nobody
	 * else.  Set here, whatever the umask, by the owner's writable open.
	 */
	if (!st->rdonly && (flags & STORE_EXCL)) {
		char	 p[4096];

		if (chmod(path, 0750) == -1 ||
		    (snprintf(p, sizeof(p), "%s/data.mdb", path) < (int)sizeof(p) &&
		    chmod(p, 0640) == -1) ||
		    (snprintf(p, sizeof(p), "%s/lock.mdb", path) < (int)sizeof(p) &&
		    chmod(p, 0660) == -1))
			log_warn("store: %s: cannot make it readable by its group",
			    path);
	}
	/*
	 * A daemon killed with readers open leaves their slots behind while
	 * another process (a CLI reader) keeps the environment open: they
	 * would pin old pages and the map would fill.  Clear them.
	 */
	if (flags & STORE_EXCL) {
		int	 dead = 0;

		if (mdb_reader_check(st->env, &dead) == 0 && dead > 0)
			log_notice("store: %s: cleared %d reader slot(s) of dead "
			    "processes", path, dead);
	}

	if ((rc = mdb_txn_begin(st->env, NULL, st->rdonly ? MDB_RDONLY : 0,
	    &txn)) != 0) {
		ret = maperr(rc, "txn_begin");
		goto fail;
	}
	dbflags = st->rdonly ? 0 : MDB_CREATE;
	if ((rc = mdb_dbi_open(txn, "meta", dbflags, &st->meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "records", dbflags | MDB_INTEGERKEY, &st->records)) != 0 ||
	    (rc = mdb_dbi_open(txn, "raw", dbflags | MDB_INTEGERKEY, &st->raw)) != 0 ||
	    (rc = mdb_dbi_open(txn, "by_sha256", dbflags, &st->by_sha)) != 0 ||
	    (rc = mdb_dbi_open(txn, "by_name", dbflags, &st->by_name)) != 0 ||
	    (rc = mdb_dbi_open(txn, "by_topic", dbflags, &st->by_topic)) != 0 ||
	    (rc = mdb_dbi_open(txn, "by_time", dbflags, &st->by_time)) != 0 ||
	    (rc = mdb_dbi_open(txn, "topics", dbflags, &st->topics)) != 0) {
		ret = rc == MDB_NOTFOUND ? STORE_E_NOSTORE : maperr(rc, "dbi_open");
		goto fail;
	}
	/* added later: a read-only open of an older store goes without it */
	rc = mdb_dbi_open(txn, "reprocessed", dbflags | MDB_INTEGERKEY,
	    &st->reprocessed);
	if (rc == 0)
		st->have_reprocessed = 1;
	else if (rc != MDB_NOTFOUND || !st->rdonly) {
		ret = maperr(rc, "dbi_open");
		goto fail;
	}

	rc = meta_get_u64(txn, st->meta, "schema", &schema);
	if (rc == MDB_NOTFOUND && !st->rdonly) {
		/* a new store: its epoch tells subscribers this is a new stream */
		epoch = random64();
		created = (uint64_t)util_now_us();
		if ((rc = meta_put_u64(txn, st->meta, "schema", STORE_SCHEMA)) != 0 ||
		    (rc = meta_put_u64(txn, st->meta, "epoch", epoch)) != 0 ||
		    (rc = meta_put_u64(txn, st->meta, "created_us", created)) != 0 ||
		    (rc = meta_put_u64(txn, st->meta, "next_seq", 1)) != 0) {
			ret = maperr(rc, "init meta");
			goto fail;
		}
		schema = STORE_SCHEMA;
	} else if (rc != 0) {
		ret = rc == MDB_NOTFOUND ? STORE_E_NOSTORE : maperr(rc, "meta");
		goto fail;
	} else {
		if ((rc = meta_get_u64(txn, st->meta, "epoch", &epoch)) != 0 ||
		    (rc = meta_get_u64(txn, st->meta, "next_seq", &next)) != 0) {
			ret = maperr(rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc, "meta");
			goto fail;
		}
		meta_get_u64(txn, st->meta, "created_us", &created);
		/*
		 * A backup put back in place rewinds the log: the seqs after
		 * its head will be given again to other mail.  Subscribers
		 * must see a new stream, never mix the two: a new epoch.
		 */
		if (!st->rdonly && meta_get_u64(txn, st->meta, "restore", &restore) == 0) {
			uint64_t old = epoch;
			MDB_val	 rk = { 7, (void *)"restore" };

			epoch = random64();
			if ((rc = meta_put_u64(txn, st->meta, "epoch", epoch)) != 0 ||
			    (rc = mdb_del(txn, st->meta, &rk, NULL)) != 0) {
				ret = maperr(rc, "meta");
				goto fail;
			}
			log_notice("store: %s is a backup put in place: new epoch "
			    "%016llx (was %016llx); subscribers must start again "
			    "in the new stream", path, (unsigned long long)epoch,
			    (unsigned long long)old);
		}
	}
	if (schema > STORE_SCHEMA) {
		ret = STORE_E_SCHEMA;
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		txn = NULL;
		ret = maperr(rc, "open commit");
		goto fail;
	}
	txn = NULL;
	{
		MDB_stat ms;

		mdb_env_stat(st->env, &ms);
		st->page_size = ms.ms_psize;
	}
	find_map(st);
	st->epoch = epoch;
	st->created_us = (int64_t)created;
	*out = st;
	return 0;

fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	store_close(st);
	return ret;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	if (st->env != NULL)
		mdb_env_close(st->env);
	if (st->lockfd != -1)
		close(st->lockfd);
	free(st->path);
	free(st);
}

uint64_t
store_epoch(const struct store *st)
{
	return st->epoch;
}

const char *
store_path(const struct store *st)
{
	return st->path;
}

/*
 * Drop the page-table entries of the map.  The kernel maps pages around
 * every page LMDB reads (fault-around), so a writer's resident set grows
 * with the store, not with its work.  The pages stay in the page cache
 * and the file; a reader that touches one again takes a minor fault and
 * sees the same bytes, so this is safe with readers in other threads.
 */
void
store_trim_resident(struct store *st)
{
	MDB_envinfo info;
	size_t	 len;

	if (st->map_base == NULL || mdb_env_info(st->env, &info) != 0)
		return;
	len = (size_t)(info.me_last_pgno + 1) * st->page_size;
	if (len > st->map_len)
		len = st->map_len;
	if (madvise(st->map_base, len, MADV_DONTNEED) == -1)
		log_warn("store: madvise");
}

/*
 * Where LMDB mapped data.mdb (mdb_env_info gives the address only with
 * MDB_FIXEDMAP): the /proc/self/maps line with the file's inode.
 */
static void
find_map(struct store *st)
{
	char	 path[4096], line[4096 + 256];
	struct stat sb;
	FILE	*f;

	if (snprintf(path, sizeof(path), "%s/data.mdb", st->path) >= (int)sizeof(path) ||
	    stat(path, &sb) == -1 || (f = fopen("/proc/self/maps", "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi, ino;

		if (sscanf(line, "%lx-%lx %*s %*s %*s %lu", &lo, &hi, &ino) != 3 ||
		    ino != (unsigned long)sb.st_ino || strstr(line, "/data.mdb") == NULL)
			continue;
		st->map_base = (void *)lo;
		st->map_len = hi - lo;
		break;
	}
	fclose(f);
}

int
store_stat(struct store *st, struct store_stat *ss)
{
	struct store_rtxn *r;
	MDB_envinfo info;
	MDB_stat ms;
	int	 rc;

	memset(ss, 0, sizeof(*ss));
	mdb_env_info(st->env, &info);
	mdb_env_stat(st->env, &ms);
	ss->epoch = st->epoch;
	ss->created_us = st->created_us;
	ss->map_size = info.me_mapsize;
	ss->page_size = ms.ms_psize;
	ss->used_bytes = (size_t)(info.me_last_pgno + 1) * ms.ms_psize;
	if ((rc = store_rbegin(st, &r)) != 0)
		return rc;
	ss->head_seq = store_head(r);
	ss->first_seq = store_first(r);
	if (mdb_stat(r->txn, st->records, &ms) == 0)
		ss->records = ms.ms_entries;
	if (mdb_stat(r->txn, st->raw, &ms) == 0)
		ss->raw_bytes = (uint64_t)(ms.ms_branch_pages + ms.ms_leaf_pages +
		    ms.ms_overflow_pages) * ms.ms_psize;
	store_rend(r);
	return 0;
}

/* ---- writes ---- */

int
store_wbegin(struct store *st, struct store_txn **out)
{
	struct store_txn *t;
	int	 rc;

	*out = NULL;
	if (st->rdonly)
		return STORE_E_IO;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		log_fatal("calloc");
	t->st = st;
	if ((rc = mdb_txn_begin(st->env, NULL, 0, &t->txn)) != 0) {
		free(t);
		return maperr(rc, "wbegin");
	}
	if ((rc = meta_get_u64(t->txn, st->meta, "next_seq", &t->next_seq)) != 0) {
		mdb_txn_abort(t->txn);
		free(t);
		return maperr(rc, "next_seq");
	}
	*out = t;
	return 0;
}

uint64_t
store_wnext_seq(struct store_txn *t)
{
	return t->next_seq;
}

#define TOPIC_KEY_MAX	300	/* a topic (< 256 bytes), NUL, 8 bytes */

static int
name_key(char *buf, size_t bufsz, const char *queue, const char *name, MDB_val *k)
{
	int	 n = snprintf(buf, bufsz, "%s/%s", queue, name);

	if (n < 0 || (size_t)n >= bufsz || n > 500)	/* LMDB max key 511 */
		return -1;
	k->mv_size = (size_t)n;
	k->mv_data = buf;
	return 0;
}

int
store_mark_restore(struct store *st)
{
	MDB_txn	*txn;
	int	 rc;

	if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0)
		return maperr(rc, "txn_begin");
	if ((rc = meta_put_u64(txn, st->meta, "restore", 1)) != 0) {
		mdb_txn_abort(txn);
		return maperr(rc, "meta");
	}
	return maperr(mdb_txn_commit(txn), "commit");
}

int
store_find_reprocessed(struct store_rtxn *r, uint64_t seq, uint64_t *newseq)
{
	size_t	 s = (size_t)seq;
	MDB_val	 k = { sizeof(s), &s }, v;
	int	 rc;

	if (!r->st->have_reprocessed)
		return STORE_E_NOTFOUND;
	if ((rc = mdb_get(r->txn, r->st->reprocessed, &k, &v)) != 0)
		return maperr(rc, "reprocessed");
	*newseq = val_u64(&v);
	return 0;
}

/* by_topic's key: topic NUL topic_seq (big-endian); -1 if too long. */
static int
topic_key(uint8_t buf[TOPIC_KEY_MAX], const char *topic, uint64_t ts, MDB_val *k)
{
	size_t	 tl = strlen(topic);

	if (tl + 9 > TOPIC_KEY_MAX)
		return -1;
	memcpy(buf, topic, tl);
	buf[tl] = '\0';
	be64(buf + tl + 1, ts);
	k->mv_size = tl + 9;
	k->mv_data = buf;
	return 0;
}

/* by_time's key: received_at_us, seq (both big-endian). */
static void
time_key(uint8_t buf[16], uint64_t us, uint64_t seq, MDB_val *k)
{
	be64(buf, us);
	be64(buf + 8, seq);
	k->mv_size = 16;
	k->mv_data = buf;
}

int
store_find_name(struct store_txn *t, const char *queue, const char *name,
    uint64_t *seq, uint8_t sha[32])
{
	MDB_val	 k, v, kk, rv;
	char	 buf[600];
	Vmingest__Record *rec;
	size_t	 s;
	int	 rc;

	if (name_key(buf, sizeof(buf), queue, name, &k) == -1)
		return STORE_E_NOTFOUND;
	if ((rc = mdb_get(t->txn, t->st->by_name, &k, &v)) != 0)
		return maperr(rc, "by_name");
	*seq = val_u64(&v);
	s = (size_t)*seq;
	kk.mv_size = sizeof(s);
	kk.mv_data = &s;
	if ((rc = mdb_get(t->txn, t->st->records, &kk, &rv)) != 0)
		return maperr(rc, "records");
	if ((rec = record_unpack(rv.mv_data, rv.mv_size)) == NULL)
		return STORE_E_CORRUPT;
	memset(sha, 0, 32);
	if (rec->sha256.len == 32)
		memcpy(sha, rec->sha256.data, 32);
	record_free(rec);
	return 0;
}

int
store_find_sha(struct store_txn *t, const uint8_t sha[32], uint64_t *seq)
{
	MDB_val	 k = { 32, (void *)(uintptr_t)sha }, v;
	int	 rc;

	if ((rc = mdb_get(t->txn, t->st->by_sha, &k, &v)) != 0)
		return maperr(rc, "by_sha256");
	*seq = val_u64(&v);
	return 0;
}

static int
topic_next(struct store_txn *t, const char *topic, uint64_t *ts)
{
	MDB_val	 k = { strlen(topic), (void *)(uintptr_t)topic }, v;
	uint64_t head = 0;
	int	 rc;

	rc = mdb_get(t->txn, t->st->topics, &k, &v);
	if (rc == 0)
		head = val_u64(&v);
	else if (rc != MDB_NOTFOUND)
		return rc;
	head++;
	v.mv_size = sizeof(head);
	v.mv_data = &head;
	if ((rc = mdb_put(t->txn, t->st->topics, &k, &v, 0)) != 0)
		return rc;
	*ts = head;
	return 0;
}

/*
 * Put back the heads topic_next() moved for the first n topics of rec (a
 * record refused before it was written): the caller may go on with the
 * transaction, and a head left moved would be a topic_seq with no record.
 */
static int
topic_undo(struct store_txn *t, Vmingest__Record *rec, size_t n)
{
	MDB_val	 k, v;
	uint64_t head;
	int	 rc;

	while (n-- > 0) {
		k.mv_size = strlen(rec->topics[n]->topic);
		k.mv_data = rec->topics[n]->topic;
		head = rec->topics[n]->topic_seq - 1;
		rec->topics[n]->topic_seq = 0;
		v.mv_size = sizeof(head);
		v.mv_data = &head;
		rc = head == 0 ? mdb_del(t->txn, t->st->topics, &k, NULL) :
		    mdb_put(t->txn, t->st->topics, &k, &v, 0);
		if (rc != 0)
			return maperr(rc, "topic seq");
	}
	return 0;
}

int
store_add(struct store_txn *t, Vmingest__Record *rec, const void *raw,
    size_t len, size_t record_limit)
{
	return store_add_packed(t, rec, raw, len, record_limit, NULL, NULL);
}

int
store_add_packed(struct store_txn *t, Vmingest__Record *rec, const void *raw,
    size_t len, size_t record_limit, uint8_t **packed_out, size_t *plen_out)
{
	return store_add_named(t, rec, NULL, raw, len, record_limit, packed_out,
	    plen_out);
}

int
store_add_named(struct store_txn *t, Vmingest__Record *rec, const char *name,
    const void *raw, size_t len, size_t record_limit, uint8_t **packed_out,
    size_t *plen_out)
{
	struct store *st = t->st;
	uint8_t	*packed = NULL;
	uint8_t	 tk[8 + 8], topkey[TOPIC_KEY_MAX];
	size_t	 plen, seqk, i;
	char	 nbuf[600];
	MDB_val	 k, v;
	const char *what;
	int	 rc;

	rec->seq = t->next_seq;
	for (i = 0; i < rec->n_topics; i++) {
		if ((rc = topic_next(t, rec->topics[i]->topic,
		    &rec->topics[i]->topic_seq)) != 0)
			return maperr(rc, "topic seq");
	}
	if (record_pack(rec, &packed, &plen) != 0) {
		free(packed);
		return STORE_E_IO;
	}
	if (record_limit > 0 && plen > record_limit) {
		free(packed);
		if ((rc = topic_undo(t, rec, rec->n_topics)) != 0)
			return rc;
		return STORE_E_TOOBIG;
	}

	seqk = (size_t)rec->seq;
	k.mv_size = sizeof(seqk);
	k.mv_data = &seqk;
	v.mv_size = plen;
	v.mv_data = packed;
	if ((rc = mdb_put(t->txn, st->records, &k, &v, MDB_APPEND)) != 0) {
		what = "put record";
		goto fail;
	}
	v.mv_size = len;
	v.mv_data = (void *)(uintptr_t)raw;
	if ((rc = mdb_put(t->txn, st->raw, &k, &v, MDB_APPEND)) != 0) {
		what = "put raw";
		goto fail;
	}

	v.mv_size = sizeof(rec->seq);
	v.mv_data = &rec->seq;
	if (rec->sha256.len == 32 && rec->disposition != VMINGEST__DISPOSITION__DUPLICATE) {
		k.mv_size = 32;
		k.mv_data = rec->sha256.data;
		rc = mdb_put(t->txn, st->by_sha, &k, &v, MDB_NOOVERWRITE);
		if (rc != 0 && rc != MDB_KEYEXIST) {
			what = "put by_sha256";
			goto fail;
		}
		/*
		 * On MDB_KEYEXIST LMDB points v at the existing value (the
		 * first record's seq): the indexes below want this record's.
		 */
		v.mv_size = sizeof(rec->seq);
		v.mv_data = &rec->seq;
	}
	if (name == NULL)
		name = rec->maildir_name;
	if (rec->queue != NULL && name != NULL && name[0] != '\0' &&
	    name_key(nbuf, sizeof(nbuf), rec->queue, name, &k) == 0) {
		if ((rc = mdb_put(t->txn, st->by_name, &k, &v, 0)) != 0) {
			what = "put by_name";
			goto fail;
		}
	}
	for (i = 0; i < rec->n_topics; i++) {
		if (topic_key(topkey, rec->topics[i]->topic,
		    rec->topics[i]->topic_seq, &k) == -1)
			continue;
		if ((rc = mdb_put(t->txn, st->by_topic, &k, &v, 0)) != 0) {
			what = "put by_topic";
			goto fail;
		}
	}
	if (rec->reprocessed_from != 0 && st->have_reprocessed) {
		size_t	 ok = (size_t)rec->reprocessed_from;

		k.mv_size = sizeof(ok);
		k.mv_data = &ok;
		v.mv_size = sizeof(rec->seq);
		v.mv_data = &rec->seq;
		if ((rc = mdb_put(t->txn, st->reprocessed, &k, &v, 0)) != 0) {
			what = "put reprocessed";
			goto fail;
		}
	}
	time_key(tk, (uint64_t)rec->received_at_us, rec->seq, &k);
	v.mv_size = 0;
	v.mv_data = (void *)"";
	if ((rc = mdb_put(t->txn, st->by_time, &k, &v, 0)) != 0) {
		what = "put by_time";
		goto fail;
	}

	t->next_seq++;
	if (packed_out != NULL) {
		*packed_out = packed;
		*plen_out = plen;
	} else
		free(packed);
	return 0;
fail:
	free(packed);
	return maperr(rc, what);
}

int
store_put_record(struct store_txn *t, const Vmingest__Record *rec)
{
	uint8_t	*packed;
	size_t	 plen, seqk = (size_t)rec->seq;
	MDB_val	 k = { sizeof(seqk), &seqk }, v;
	int	 rc;

	if (record_pack(rec, &packed, &plen) != 0) {
		free(packed);
		return STORE_E_IO;
	}
	v.mv_size = plen;
	v.mv_data = packed;
	rc = mdb_put(t->txn, t->st->records, &k, &v, 0);
	free(packed);
	return maperr(rc, "put record");
}

int
store_wcommit(struct store_txn *t)
{
	int	 rc;

	rc = meta_put_u64(t->txn, t->st->meta, "next_seq", t->next_seq);
	if (rc != 0) {
		mdb_txn_abort(t->txn);
		free(t);
		return maperr(rc, "next_seq");
	}
	rc = mdb_txn_commit(t->txn);
	free(t);
	return maperr(rc, "commit");
}

void
store_wabort(struct store_txn *t)
{
	if (t == NULL)
		return;
	mdb_txn_abort(t->txn);
	free(t);
}

/* ---- reads ---- */

int
store_rbegin(struct store *st, struct store_rtxn **out)
{
	struct store_rtxn *r;
	int	 rc;

	*out = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		log_fatal("calloc");
	r->st = st;
	if ((rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &r->txn)) != 0) {
		free(r);
		return maperr(rc, "rbegin");
	}
	r->active = 1;
	*out = r;
	return 0;
}

void
store_rend(struct store_rtxn *r)
{
	if (r == NULL)
		return;
	mdb_txn_abort(r->txn);
	free(r);
}

void
store_rreset(struct store_rtxn *r)
{
	if (r->active) {
		mdb_txn_reset(r->txn);
		r->active = 0;
	}
}

int
store_rrenew(struct store_rtxn *r)
{
	int	 rc;

	if (r->active)
		store_rreset(r);
	if ((rc = mdb_txn_renew(r->txn)) != 0)
		return maperr(rc, "renew");
	r->active = 1;
	return 0;
}

uint64_t
store_head(struct store_rtxn *r)
{
	uint64_t next = 1;

	if (meta_get_u64(r->txn, r->st->meta, "next_seq", &next) != 0)
		return 0;
	return next - 1;
}

uint64_t
store_first(struct store_rtxn *r)
{
	MDB_cursor *c;
	MDB_val	 k, v;
	size_t	 s = 0;

	if (mdb_cursor_open(r->txn, r->st->records, &c) != 0)
		return 0;
	if (mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0 && k.mv_size == sizeof(s))
		memcpy(&s, k.mv_data, sizeof(s));
	mdb_cursor_close(c);
	return (uint64_t)s;
}

uint64_t
store_first_raw(struct store_rtxn *r)
{
	MDB_cursor *c;
	MDB_val	 k, v;
	size_t	 s = 0;

	if (mdb_cursor_open(r->txn, r->st->raw, &c) != 0)
		return 0;
	if (mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0 && k.mv_size == sizeof(s))
		memcpy(&s, k.mv_data, sizeof(s));
	mdb_cursor_close(c);
	return (uint64_t)s;
}

static int
get_seq(struct store_rtxn *r, MDB_dbi dbi, uint64_t seq, const void **p, size_t *len)
{
	size_t	 s = (size_t)seq;
	MDB_val	 k = { sizeof(s), &s }, v;
	int	 rc;

	if ((rc = mdb_get(r->txn, dbi, &k, &v)) != 0)
		return maperr(rc, "get");
	*p = v.mv_data;
	*len = v.mv_size;
	return 0;
}

int
store_get(struct store_rtxn *r, uint64_t seq, const void **rec, size_t *len)
{
	return get_seq(r, r->st->records, seq, rec, len);
}

int
store_get_raw(struct store_rtxn *r, uint64_t seq, const void **raw, size_t *len)
{
	return get_seq(r, r->st->raw, seq, raw, len);
}

int
store_get_record(struct store_rtxn *r, uint64_t seq, Vmingest__Record **out)
{
	const void *p = NULL;
	size_t	 n = 0;
	int	 rc;

	*out = NULL;
	if ((rc = store_get(r, seq, &p, &n)) != 0)
		return rc;
	if ((*out = record_unpack(p, n)) == NULL)
		return STORE_E_CORRUPT;
	return 0;
}

int
store_cursor_open(struct store_rtxn *r, uint64_t from, struct store_cursor **out)
{
	struct store_cursor *c;
	int	 rc;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		log_fatal("calloc");
	c->r = r;
	c->from = from ? from : 1;
	if ((rc = mdb_cursor_open(r->txn, r->st->records, &c->c)) != 0) {
		free(c);
		return maperr(rc, "cursor");
	}
	*out = c;
	return 0;
}

int
store_cursor_next(struct store_cursor *c, uint64_t *seq, const void **rec,
    size_t *len)
{
	size_t	 s = (size_t)c->from;
	MDB_val	 k = { sizeof(s), &s }, v;
	int	 rc;

	if (!c->started) {
		rc = mdb_cursor_get(c->c, &k, &v, MDB_SET_RANGE);
		c->started = 1;
	} else
		rc = mdb_cursor_get(c->c, &k, &v, MDB_NEXT);
	if (rc != 0)
		return maperr(rc, "cursor");
	memcpy(&s, k.mv_data, sizeof(s));
	*seq = (uint64_t)s;
	*rec = v.mv_data;
	*len = v.mv_size;
	return 0;
}

void
store_cursor_close(struct store_cursor *c)
{
	if (c == NULL)
		return;
	mdb_cursor_close(c->c);
	free(c);
}

int
store_topic_find(struct store_rtxn *r, const char *topic, uint64_t ts,
    uint64_t *seq, uint64_t *found_ts)
{
	uint8_t	 key[TOPIC_KEY_MAX];
	size_t	 tl = strlen(topic);
	MDB_cursor *c;
	MDB_val	 k, v;
	int	 rc;

	if (topic_key(key, topic, ts, &k) == -1)
		return STORE_E_NOTFOUND;
	if ((rc = mdb_cursor_open(r->txn, r->st->by_topic, &c)) != 0)
		return maperr(rc, "cursor");
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && (k.mv_size != tl + 9 || memcmp(k.mv_data, key, tl + 1)))
		rc = MDB_NOTFOUND;
	if (rc == 0) {
		*seq = val_u64(&v);
		if (found_ts != NULL)
			*found_ts = get_be64((const uint8_t *)k.mv_data + tl + 1);
	}
	mdb_cursor_close(c);
	return maperr(rc, "by_topic");
}

int
store_topics(struct store_rtxn *r, store_topic_fn fn, void *arg)
{
	MDB_cursor *c;
	MDB_val	 k, v;
	char	 name[300];
	int	 rc, op = MDB_FIRST;

	if ((rc = mdb_cursor_open(r->txn, r->st->topics, &c)) != 0)
		return maperr(rc, "cursor");
	while ((rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		if (k.mv_size >= sizeof(name))
			continue;
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = '\0';
		if (fn(name, val_u64(&v), arg) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : maperr(rc, "topics");
}

int
store_time_seek(struct store_rtxn *r, int64_t us, uint64_t *seq)
{
	uint8_t	 key[16];
	MDB_cursor *c;
	MDB_val	 k, v;
	int	 rc;

	time_key(key, (uint64_t)(us < 0 ? 0 : us), 0, &k);
	if ((rc = mdb_cursor_open(r->txn, r->st->by_time, &c)) != 0)
		return maperr(rc, "cursor");
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && k.mv_size == 16)
		*seq = get_be64((const uint8_t *)k.mv_data + 8);
	mdb_cursor_close(c);
	return maperr(rc, "by_time");
}

/* An index entry already gone is fine; any other error stops the prune. */
static int
del_ok(int rc)
{
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Delete key k of db if it points at seq. */
static int
del_if_points(MDB_txn *txn, MDB_dbi db, MDB_val *k, uint64_t seq)
{
	MDB_val	 v;
	int	 rc;

	if ((rc = mdb_get(txn, db, k, &v)) != 0)
		return del_ok(rc);
	if (val_u64(&v) != seq)
		return 0;
	return del_ok(mdb_del(txn, db, k, NULL));
}

/* Drop the index entries that point at record seq (retention). */
static int
unindex(struct store_txn *t, const Vmingest__Record *rec, uint64_t seq)
{
	struct store *st = t->st;
	uint8_t	 key[TOPIC_KEY_MAX];
	char	 nbuf[600];
	size_t	 i, sk = (size_t)seq;
	MDB_val	 k;
	int	 rc;

	if (rec->sha256.len == 32) {
		k.mv_size = 32;
		k.mv_data = rec->sha256.data;
		if ((rc = del_if_points(t->txn, st->by_sha, &k, seq)) != 0)
			return rc;
	}
	for (i = 0; i < rec->n_topics; i++) {
		if (topic_key(key, rec->topics[i]->topic,
		    rec->topics[i]->topic_seq, &k) == -1)
			continue;
		if ((rc = del_ok(mdb_del(t->txn, st->by_topic, &k, NULL))) != 0)
			return rc;
	}
	time_key(key, (uint64_t)rec->received_at_us, seq, &k);
	if ((rc = del_ok(mdb_del(t->txn, st->by_time, &k, NULL))) != 0)
		return rc;
	/*
	 * by_name may point at a later record of the same file (a reprocessed
	 * one): only an entry for this seq goes.  XXX a name that was not
	 * UTF-8 is indexed as read (store_add_named) and recorded repaired: its
	 * entry stays, pointing at nothing (store_find_name finds no record).
	 */
	if (rec->queue && rec->maildir_name &&
	    name_key(nbuf, sizeof(nbuf), rec->queue, rec->maildir_name, &k) == 0 &&
	    (rc = del_if_points(t->txn, st->by_name, &k, seq)) != 0)
		return rc;
	if (st->have_reprocessed) {
		k.mv_size = sizeof(sk);
		k.mv_data = &sk;
		if ((rc = del_ok(mdb_del(t->txn, st->reprocessed, &k, NULL))) != 0)
			return rc;
	}
	return 0;
}

int
store_prune(struct store *st, uint64_t before_seq, size_t max, int raw_only,
    uint64_t *done, uint64_t *bytes)
{
	struct store_txn *t;
	MDB_cursor *c;
	MDB_val	 k, v;
	size_t	 s;
	int	 rc;

	*done = 0;
	*bytes = 0;
	if ((rc = store_wbegin(st, &t)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(t->txn, raw_only ? st->raw : st->records, &c)) != 0) {
		store_wabort(t);
		return maperr(rc, "cursor");
	}
	while (*done < max && (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
		Vmingest__Record *rec;
		MDB_val	 rk, rv;

		memcpy(&s, k.mv_data, sizeof(s));
		if ((uint64_t)s >= before_seq)
			break;
		rk.mv_size = sizeof(s);
		rk.mv_data = &s;
		if (!raw_only) {
			if ((rec = record_unpack(v.mv_data, v.mv_size)) != NULL) {
				rc = unindex(t, rec, (uint64_t)s);
				record_free(rec);
				if (rc != 0)
					break;
			}
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				break;
			if (mdb_get(t->txn, st->raw, &rk, &rv) == 0) {
				*bytes += rv.mv_size;
				if ((rc = del_ok(mdb_del(t->txn, st->raw, &rk, NULL))) != 0)
					break;
			}
		} else {
			*bytes += v.mv_size;
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				break;
		}
		(*done)++;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		/* a full map shows here too: deleting needs free pages */
		store_wabort(t);
		*done = 0;
		return maperr(rc, "prune");
	}
	return store_wcommit(t);
}

int
store_copy(struct store *st, const char *dir, int compact)
{
	int	 rc;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		log_warn("mkdir %s", dir);
		return STORE_E_IO;
	}
	rc = mdb_env_copy2(st->env, dir, compact ? MDB_CP_COMPACT : 0);
	return maperr(rc, "copy");
}
