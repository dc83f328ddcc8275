/*
 * publish_bench.c - measurements for bench/publish.sh (issue 3).
 *
 *   publish_bench mkstore DIR N SIZE
 *       build a store of N PUBLISHED records of about SIZE packed bytes
 *       (topic bench.data) directly through lib/store.h
 *   publish_bench replay PUB REPLAY N
 *       one libvmingest-client subscriber from the start until N records;
 *       JSON: records, seconds, records/s, MB/s (packed record bytes)
 *   publish_bench baseline N SIZE
 *       bare libzmq PUB/SUB over tcp loopback in this process, the same
 *       frames (topic, ~40-byte envelope, SIZE body), no HWM drops
 *   publish_bench latency PUB REPLAY MAILDIR NSUBS RATE COUNT
 *       NSUBS subscribers "from now"; deliver COUNT mails (tmp/ -> new/) at
 *       RATE/s; latency = subscriber's clock at vmi_sub_next() minus the
 *       clock read just before rename(2) into new/ (looked up by the
 *       record's maildir_name); JSON p50/p90/p99/max.  The file's ctime is
 *       not used: ext4 stamps it from the coarse clock, up to one tick
 *       (4 ms at HZ=250) before the rename; its figures are shown apart
 *   publish_bench ingest PUB REPLAY MAILDIR STORE NSUBS COUNT [NICE|idle]
 *       NSUBS subscribers connected and live; rename COUNT prepared mails
 *       into new/ at once; time until the store head has moved by COUNT
 *       (read-only store polling); JSON rate and what each subscriber got,
 *       the daemon's CPU per message (PB_DAEMON_PID), all of it and its
 *       publishing side alone (threads vmi-publish, vmi-replay and ZeroMQ's),
 *       and the packed size of the last record.  With NICE the subscriber
 *       threads and their ZeroMQ I/O threads run at that nice value; with
 *       "idle" in SCHED_IDLE, standing for consumers on other machines:
 *       they get only CPU time no daemon thread wants, and a daemon thread
 *       that wakes up preempts them at once (a nice 19 thread keeps a
 *       share and is not always preempted)
 *   publish_bench fanout NSUBS COUNT SIZE
 *       bare libzmq: a PUB socket in this process sends COUNT messages of
 *       the daemon's frames (topic, ~40-byte envelope, SIZE body) over tcp
 *       loopback to NSUBS SUB sockets in child processes (SCHED_IDLE, no
 *       HWM on either side); JSON: this process's CPU per message (the
 *       sending thread and its ZeroMQ I/O thread): what fan-out to NSUBS
 *       TCP peers costs libzmq and the kernel, whoever publishes
 *
 * Subscribers are warmed up before measuring: mails are delivered one by
 * one until every subscriber has received one (so all are live).
 *
 * SECURITY: a bench tool; writes only files it generates.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "log.h"
#include "record.h"
#include "store.h"
#include "vmingest-client.h"

#define MAX_SUBS	64

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
real_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
sleep_us(int64_t us)
{
	struct timespec ts;

	if (us <= 0)
		return;
	ts.tv_sec = us / 1000000;
	ts.tv_nsec = (us % 1000000) * 1000;
	nanosleep(&ts, NULL);
}

static int
mkstore(const char *dir, long n, long size)
{
	struct store *st;
	struct store_txn *t = NULL;
	char	*text;
	long	 i;
	int	 rc;

	if ((rc = store_open(&st, dir, (size_t)n * (size_t)size * 3 + (64u << 20),
	    STORE_EXCL)) != 0) {
		fprintf(stderr, "mkstore: %s: %s\n", dir, store_strerror(rc));
		return 1;
	}
	if ((text = malloc((size_t)size + 1)) == NULL)
		return 1;
	for (i = 0; i < size; i++)
		text[i] = (i % 73 == 72) ? '\n' : (char)('a' + i % 26);
	text[size - 300 > 0 ? size - 300 : 0] = '\0';
	for (i = 0; i < n; i++) {
		Vmingest__Record *rec = record_new();
		Vmingest__TopicSeq *ts = malloc(sizeof(*ts));
		Vmingest__Part *p = malloc(sizeof(*p));
		char	 subj[64];

		snprintf(subj, sizeof(subj), "bench %ld", i);
		rec->queue = rec_strdup("default");
		rec->topic = rec_strdup("bench.data");
		rec->subject = rec_strdup(subj);
		rec->received_at_us = rec->ctime_us = real_us();
		rec->disposition = VMINGEST__DISPOSITION__PUBLISHED;
		vmingest__part__init(p);
		p->path = rec_strdup("1");
		p->content_type = rec_strdup("text/plain");
		p->text = rec_strdup(text);
		rec_push(&rec->parts, &rec->n_parts, p);
		vmingest__topic_seq__init(ts);
		ts->topic = rec_strdup("bench.data");
		rec_push(&rec->topics, &rec->n_topics, ts);
		if (t == NULL && (rc = store_wbegin(st, &t)) != 0)
			break;
		if ((rc = store_add(t, rec, "x\n", 2, 0)) != 0)
			break;
		record_free(rec);
		if ((i + 1) % 2000 == 0 || i + 1 == n) {
			if ((rc = store_wcommit(t)) != 0)
				break;
			t = NULL;
		}
	}
	free(text);
	store_close(st);
	if (rc != 0) {
		fprintf(stderr, "mkstore: %s\n", store_strerror(rc));
		return 1;
	}
	return 0;
}

static struct vmi_sub *
sub_open(const char *pub, const char *rep, int from)
{
	struct vmi_sub_opts o;
	struct vmi_sub *s;
	char	 err[512];

	memset(&o, 0, sizeof(o));
	o.endpoint = pub;
	o.replay_endpoint = rep;
	o.from = from;
	o.credit = 4096;
	if (vmi_sub_open(&s, &o, err, sizeof(err)) != VMI_OK) {
		fprintf(stderr, "subscriber: %s\n", err);
		exit(1);
	}
	return s;
}

static int
replay(const char *pub, const char *rep, long n)
{
	struct vmi_sub *s = sub_open(pub, rep, VMI_FROM_START);
	struct vmi_msg m;
	int64_t	 t0 = 0, t1;
	long	 got = 0;
	double	 bytes = 0, sec;

	while (got < n) {
		int	 rc = vmi_sub_next(s, &m, 10000);

		if (rc != VMI_OK) {
			fprintf(stderr, "replay: %s after %ld\n", vmi_strerror(rc), got);
			return 1;
		}
		if (got == 0)
			t0 = mono_us();
		bytes += (double)vmingest__record__get_packed_size(m.rec);
		vmi_msg_clear(&m);
		got++;
	}
	t1 = mono_us();
	sec = (double)(t1 - t0) / 1e6;
	printf("{\"records\": %ld, \"seconds\": %.3f, \"records_per_s\": %.0f, "
	    "\"mb_per_s\": %.1f, \"record_bytes\": %.0f}\n", got, sec,
	    (double)(got - 1) / sec, bytes / sec / 1e6, bytes / (double)got);
	vmi_sub_close(s);
	return 0;
}

struct base_arg {
	void	*ctx;
	char	 ep[256];
	long	 n;
	double	 sec;
};

static void *
base_sub(void *arg)
{
	struct base_arg *a = arg;
	void	*s = zmq_socket(a->ctx, ZMQ_SUB);
	int	 zero = 0;
	long	 got = 0;
	int64_t	 t0 = 0;
	zmq_msg_t m;

	zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof(zero));
	zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
	zmq_connect(s, a->ep);
	zmq_msg_init(&m);
	while (got < a->n) {
		if (zmq_msg_recv(&m, s, 0) == -1)
			break;
		if (!zmq_msg_more(&m)) {
			if (got == 0)
				t0 = mono_us();
			got++;
		}
	}
	a->sec = (double)(mono_us() - t0) / 1e6;
	zmq_msg_close(&m);
	zmq_close(s);
	return NULL;
}

/* n messages of the daemon's three frames (topic, ~40-byte envelope, body). */
static void
send_frames(void *pub, long n, long size)
{
	char	*body, env[40];
	long	 i;

	if ((body = calloc(1, (size_t)size)) == NULL)
		exit(1);
	memset(env, 'e', sizeof(env));
	for (i = 0; i < n; i++) {
		zmq_send(pub, "bench.data", 10, ZMQ_SNDMORE);
		zmq_send(pub, env, sizeof(env), ZMQ_SNDMORE);
		zmq_send(pub, body, (size_t)size, 0);
	}
	free(body);
}

static int
baseline(long n, long size)
{
	struct base_arg a;
	pthread_t thr;
	void	*pub;
	char	 ev[64];
	size_t	 len = sizeof(a.ep);
	int	 zero = 0;

	memset(&a, 0, sizeof(a));
	a.ctx = zmq_ctx_new();
	a.n = n;
	pub = zmq_socket(a.ctx, ZMQ_XPUB);
	zmq_setsockopt(pub, ZMQ_SNDHWM, &zero, sizeof(zero));
	zmq_bind(pub, "tcp://127.0.0.1:*");
	zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, a.ep, &len);
	pthread_create(&thr, NULL, base_sub, &a);
	zmq_recv(pub, ev, sizeof(ev), 0);	/* the subscription arrived */
	send_frames(pub, n, size);
	pthread_join(thr, NULL);
	printf("{\"records\": %ld, \"seconds\": %.3f, \"records_per_s\": %.0f, "
	    "\"mb_per_s\": %.1f}\n", n, a.sec, (double)(n - 1) / a.sec,
	    (double)n * (double)size / a.sec / 1e6);
	zmq_close(pub);
	zmq_ctx_term(a.ctx);
	return 0;
}

/* ---- live subscribers for latency / ingest ---- */

struct lsub {
	pthread_t thr;
	struct vmi_sub *s;
	volatile long got;		/* records received */
	volatile uint64_t last_seq;
	volatile int stop;
	volatile int opened;
	const char *pub, *rep;
	uint64_t measure_after;		/* seq: samples only above it */
	int64_t	*lat;			/* us, rename -> next() */
	int64_t	*plat;			/* us, daemon's send -> next() */
	int64_t	*clat;			/* us, file ctime -> next() */
	long	 nlat, cap;
};

static int lsub_nice;	/* nice value of subscriber threads (ingest mode) */
static int lsub_idle;	/* subscriber threads in SCHED_IDLE (ingest mode) */

/* This thread (and the threads it creates from now on) in SCHED_IDLE. */
static void
sched_idle_self(void)
{
	struct sched_param sp = { 0 };

	if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
		perror("sched_setscheduler SCHED_IDLE");
}

/* latency mode: real_us() just before each rename into new/, by index */
static int64_t *renamed_at;
static long renamed_n;

/* The delivery index in a maildir name "pbPID.I", or -1. */
static long
name_index(const char *name)
{
	const char *dot;
	char	*end;
	long	 i;

	if (name == NULL || strncmp(name, "pb", 2) != 0 ||
	    (dot = strchr(name, '.')) == NULL)
		return -1;
	i = strtol(dot + 1, &end, 10);
	if (*end != '\0' || i < 0 || i >= renamed_n)
		return -1;
	return i;
}

static void *
lsub_main(void *arg)
{
	struct lsub *l = arg;
	struct vmi_msg m;

	/* before the open: the client's ZeroMQ I/O thread inherits it */
	if (lsub_idle)
		sched_idle_self();
	else if (lsub_nice != 0 &&
	    setpriority(PRIO_PROCESS, (id_t)gettid(), lsub_nice) != 0)
		perror("setpriority");
	l->s = sub_open(l->pub, l->rep, VMI_FROM_NOW);
	l->opened = 1;

	while (!l->stop) {
		int	 rc = vmi_sub_next(l->s, &m, 100);
		int64_t	 now = real_us();

		if (rc == VMI_E_TIMEOUT)
			continue;
		if (rc != VMI_OK) {
			fprintf(stderr, "subscriber: %s\n", vmi_strerror(rc));
			break;
		}
		if (l->measure_after && m.seq > l->measure_after && l->nlat < l->cap) {
			long	 i = name_index(m.rec->maildir_name);

			if (i >= 0 && renamed_at[i] > 0) {
				l->plat[l->nlat] = now - m.sent_at_us;
				l->clat[l->nlat] = now - m.rec->ctime_us;
				l->lat[l->nlat++] = now - renamed_at[i];
			}
		}
		l->last_seq = m.seq;
		l->got++;
		vmi_msg_clear(&m);
	}
	return NULL;
}

static void
write_mail(const char *dir, const char *sub, long i, char *path, size_t plen)
{
	char	 buf[2048];
	int	 fd, n;

	n = snprintf(buf, sizeof(buf), "From: bench@example.org\nTo: ops@example.org\n"
	    "Subject: bench %ld\nMessage-ID: <%ld.%ld.pb@example.org>\n\n"
	    "%0900ld\n%0900ld\n", i, i, (long)getpid(), i, i);
	snprintf(path, plen, "%s/%s/pb%ld.%ld", dir, sub, (long)getpid(), i);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) == -1 ||
	    write(fd, buf, (size_t)n) != n || close(fd) != 0) {
		perror(path);
		exit(1);
	}
}

static void
deliver(const char *md, long i)
{
	char	 tmp[4096], dst[4096];

	write_mail(md, "tmp", i, tmp, sizeof(tmp));
	snprintf(dst, sizeof(dst), "%s/new/pb%ld.%ld", md, (long)getpid(), i);
	if (i < renamed_n)
		renamed_at[i] = real_us();
	if (rename(tmp, dst) != 0) {
		perror("rename");
		exit(1);
	}
}

/* Deliver one mail at a time until every subscriber got one; returns the next i. */
static long
warm_up(const char *md, struct lsub *ls, int n, long i)
{
	int	 k, all;
	int64_t	 t;

	do {
		long	 base[MAX_SUBS];

		for (k = 0; k < n; k++)
			base[k] = ls[k].got;
		deliver(md, i++);
		t = mono_us();
		do {
			all = 1;
			for (k = 0; k < n; k++)
				if (ls[k].got == base[k])
					all = 0;
			if (!all)
				sleep_us(2000);
		} while (!all && mono_us() - t < 1000000);
	} while (!all && i < 200);
	return i;
}

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void
start_subs(struct lsub *ls, int n, const char *pub, const char *rep, long cap)
{
	int	 k;

	for (k = 0; k < n; k++) {
		memset(&ls[k], 0, sizeof(ls[k]));
		ls[k].pub = pub;
		ls[k].rep = rep;
		ls[k].cap = cap;
		if (cap > 0 && ((ls[k].lat = calloc((size_t)cap, sizeof(int64_t))) == NULL ||
		    (ls[k].plat = calloc((size_t)cap, sizeof(int64_t))) == NULL ||
		    (ls[k].clat = calloc((size_t)cap, sizeof(int64_t))) == NULL))
			exit(1);
		pthread_create(&ls[k].thr, NULL, lsub_main, &ls[k]);
	}
	for (k = 0; k < n; k++)
		while (!ls[k].opened)
			sleep_us(1000);
}

static void
stop_subs(struct lsub *ls, int n)
{
	int	 k;

	for (k = 0; k < n; k++)
		ls[k].stop = 1;
	for (k = 0; k < n; k++) {
		pthread_join(ls[k].thr, NULL);
		vmi_sub_close(ls[k].s);
	}
}

static int
latency(const char *pub, const char *rep, const char *md, int nsubs, long rate,
    long count)
{
	struct lsub ls[MAX_SUBS];
	int64_t	*all, *pall, *call, t0, due;
	long	 i, j, n = 0, base;
	int	 k;
	uint64_t after = 0;

	/* warm_up() delivers at most 200 mails before the measured ones */
	renamed_n = count + 200;
	if ((renamed_at = calloc((size_t)renamed_n, sizeof(int64_t))) == NULL)
		return 1;
	start_subs(ls, nsubs, pub, rep, count);
	base = warm_up(md, ls, nsubs, 0);
	for (k = 0; k < nsubs; k++)
		if (ls[k].last_seq > after)
			after = ls[k].last_seq;
	for (k = 0; k < nsubs; k++)
		ls[k].measure_after = after;
	t0 = mono_us();
	for (i = 0; i < count; i++) {
		due = t0 + i * 1000000 / rate;
		sleep_us(due - mono_us());
		deliver(md, base + i);
	}
	/* wait for every subscriber to have every measured record */
	t0 = mono_us();
	for (k = 0; k < nsubs; k++)
		while (ls[k].nlat < count && mono_us() - t0 < 30000000)
			sleep_us(5000);
	stop_subs(ls, nsubs);
	all = calloc((size_t)(nsubs * count) + 1, sizeof(int64_t));
	pall = calloc((size_t)(nsubs * count) + 1, sizeof(int64_t));
	call = calloc((size_t)(nsubs * count) + 1, sizeof(int64_t));
	if (all == NULL || pall == NULL || call == NULL)
		return 1;
	for (k = 0; k < nsubs; k++) {
		for (j = 0; j < ls[k].nlat; j++) {
			pall[n] = ls[k].plat[j];
			call[n] = ls[k].clat[j];
			all[n++] = ls[k].lat[j];
		}
		free(ls[k].lat);
		free(ls[k].plat);
		free(ls[k].clat);
	}
	qsort(all, (size_t)n, sizeof(int64_t), cmp64);
	qsort(pall, (size_t)n, sizeof(int64_t), cmp64);
	qsort(call, (size_t)n, sizeof(int64_t), cmp64);
	if (n == 0) {
		fprintf(stderr, "latency: no samples\n");
		return 1;
	}
	printf("{\"subscribers\": %d, \"rate\": %ld, \"messages\": %ld, \"samples\": %ld, "
	    "\"expected\": %ld, \"p50_ms\": %.2f, \"p90_ms\": %.2f, \"p99_ms\": %.2f, "
	    "\"max_ms\": %.2f, \"pub_p50_ms\": %.2f, \"pub_p99_ms\": %.2f, "
	    "\"ctime_p50_ms\": %.2f, \"ctime_p99_ms\": %.2f}\n",
	    nsubs, rate, count, n, (long)nsubs * count,
	    all[n / 2] / 1e3, all[n * 9 / 10] / 1e3, all[n * 99 / 100] / 1e3,
	    all[n - 1] / 1e3, pall[n / 2] / 1e3, pall[n * 99 / 100] / 1e3,
	    call[n / 2] / 1e3, call[n * 99 / 100] / 1e3);
	free(all);
	free(pall);
	free(call);
	free(renamed_at);
	renamed_at = NULL;
	renamed_n = 0;
	return 0;
}

/* The daemon's publishing side: its PUB and replay threads and ZeroMQ's. */
static int
publishing_thread(const char *comm)
{
	return strcmp(comm, "vmi-publish") == 0 || strcmp(comm, "vmi-replay") == 0 ||
	    strncmp(comm, "ZMQbg/", 6) == 0;
}

/*
 * CPU time so far of the threads of `pid` (those whose name `only`
 * accepts, or all), ns (schedstat); -1 unknown.
 */
static int64_t
proc_cpu_ns_of(long pid, int (*only)(const char *))
{
	char	 path[64], sp[400];
	struct dirent *de;
	DIR	*d;
	FILE	*f;
	long long ns, sum = 0;

	snprintf(path, sizeof(path), "/proc/%ld/task", pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (only != NULL) {
			char	 comm[64] = "";

			snprintf(sp, sizeof(sp), "%s/%s/comm", path, de->d_name);
			if ((f = fopen(sp, "r")) == NULL)
				continue;
			if (fgets(comm, sizeof(comm), f) != NULL)
				comm[strcspn(comm, "\n")] = '\0';
			fclose(f);
			if (!only(comm))
				continue;
		}
		snprintf(sp, sizeof(sp), "%s/%s/schedstat", path, de->d_name);
		if ((f = fopen(sp, "r")) == NULL)
			continue;
		if (fscanf(f, "%lld", &ns) == 1)
			sum += ns;
		fclose(f);
	}
	closedir(d);
	return sum;
}

static int64_t
proc_cpu_ns(long pid)
{
	return proc_cpu_ns_of(pid, NULL);
}

/* CPU time of this thread or process (clock id), ns. */
static int64_t
clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t
head_of(struct store *st)
{
	struct store_rtxn *r;
	uint64_t h;

	if (store_rbegin(st, &r) != 0)
		return 0;
	h = store_head(r);
	store_rend(r);
	return h;
}

static int
ingest(const char *pub, const char *rep, const char *md, const char *storedir,
    int nsubs, long count)
{
	struct lsub ls[MAX_SUBS];
	struct store *st;
	char	 path[4096], dst[4096];
	struct store_rtxn *r;
	const void *rv;
	size_t	 rlen = 0;
	uint64_t h0;
	int64_t	 t0, t1, d0 = -1, d1 = -1, p0 = -1, p1 = -1, s0, s1, m0, m1;
	long	 i, base = 0, mingot = -1, dpid = 0;
	int	 k;

	/* the daemon's pid (PB_DAEMON_PID), for its CPU time in the run */
	if (getenv("PB_DAEMON_PID") != NULL)
		dpid = atol(getenv("PB_DAEMON_PID"));

	start_subs(ls, nsubs, pub, rep, 0);
	if (nsubs > 0)
		base = warm_up(md, ls, nsubs, 0);
	/* prepared in tmp/, where the daemon does not look */
	for (i = 0; i < count; i++)
		write_mail(md, "tmp", 100000 + i, path, sizeof(path));
	if (store_open(&st, storedir, 0, STORE_RDONLY) != 0) {
		fprintf(stderr, "ingest: cannot open %s\n", storedir);
		return 1;
	}
	while ((h0 = head_of(st)) < (uint64_t)base)
		sleep_us(2000);
	for (k = 0; k < nsubs; k++)
		ls[k].got = 0;
	if (dpid > 0) {
		d0 = proc_cpu_ns(dpid);
		p0 = proc_cpu_ns_of(dpid, publishing_thread);
	}
	s0 = proc_cpu_ns((long)getpid());
	m0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	t0 = mono_us();
	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/tmp/pb%ld.%ld", md, (long)getpid(),
		    100000 + i);
		snprintf(dst, sizeof(dst), "%s/new/pb%ld.%ld", md, (long)getpid(),
		    100000 + i);
		if (rename(path, dst) != 0) {
			perror("rename");
			return 1;
		}
	}
	while (head_of(st) < h0 + (uint64_t)count)
		sleep_us(2000);
	t1 = mono_us();
	/* let the subscribers finish, then count */
	for (k = 0; k < nsubs; k++) {
		int64_t	 t = mono_us();

		while (ls[k].got < count && mono_us() - t < 30000000)
			sleep_us(5000);
	}
	/* CPU from the first rename until every subscriber has everything */
	if (dpid > 0) {
		d1 = proc_cpu_ns(dpid);
		p1 = proc_cpu_ns_of(dpid, publishing_thread);
	}
	s1 = proc_cpu_ns((long)getpid());
	m1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	stop_subs(ls, nsubs);
	for (k = 0; k < nsubs; k++)
		if (mingot < 0 || ls[k].got < mingot)
			mingot = ls[k].got;
	if (store_rbegin(st, &r) == 0) {
		if (store_get(r, store_head(r), &rv, &rlen) != 0)
			rlen = 0;
		store_rend(r);
	}
	store_close(st);
	/* subscribers: this process minus its main thread (renames, polling) */
	printf("{\"subscribers\": %d, \"messages\": %ld, \"seconds\": %.3f, "
	    "\"messages_per_s\": %.0f, \"min_received\": %ld, "
	    "\"daemon_cpu_us_per_msg\": %.1f, \"publishing_cpu_us_per_msg\": %.1f, "
	    "\"subscribers_cpu_us_per_msg\": %.1f, \"record_bytes\": %zu}\n",
	    nsubs, count,
	    (double)(t1 - t0) / 1e6, (double)count / ((double)(t1 - t0) / 1e6),
	    nsubs ? mingot : 0,
	    d0 >= 0 && d1 >= 0 ? (double)(d1 - d0) / 1e3 / (double)count : -1.0,
	    p0 >= 0 && p1 >= 0 ? (double)(p1 - p0) / 1e3 / (double)count : -1.0,
	    (double)((s1 - s0) - (m1 - m0)) / 1e3 / (double)count, rlen);
	return 0;
}

/*
 * Bare libzmq fan-out: this process's PUB to nsubs SUB sockets in child
 * processes.  The children are SCHED_IDLE so that, on a small machine,
 * they take as little as possible from the sender; only the sender's CPU
 * is reported.
 */
static int
fanout(int nsubs, long n, long size)
{
	char	 ep[256], ev[64];
	size_t	 len = sizeof(ep);
	void	*ctx, *pub;
	int	 zero = 0, one = 1, k, st, bad = 0;
	int64_t	 c0, c1, t0, t1;
	pid_t	 pid;

	ctx = zmq_ctx_new();
	pub = zmq_socket(ctx, ZMQ_XPUB);
	zmq_setsockopt(pub, ZMQ_SNDHWM, &zero, sizeof(zero));
	/* every subscription reaches us, not just the first of a topic */
	zmq_setsockopt(pub, ZMQ_XPUB_VERBOSE, &one, sizeof(one));
	if (zmq_bind(pub, "tcp://127.0.0.1:*") != 0 ||
	    zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, ep, &len) != 0) {
		fprintf(stderr, "fanout: bind: %s\n", zmq_strerror(errno));
		return 1;
	}
	for (k = 0; k < nsubs; k++) {
		if ((pid = fork()) == -1) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			/* a fresh context: the parent's may not cross a fork */
			void	*c, *s;
			zmq_msg_t m;
			long	 got = 0;

			sched_idle_self();
			c = zmq_ctx_new();
			s = zmq_socket(c, ZMQ_SUB);
			zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof(zero));
			zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
			zmq_connect(s, ep);
			zmq_msg_init(&m);
			while (got < n && zmq_msg_recv(&m, s, 0) != -1)
				if (!zmq_msg_more(&m))
					got++;
			_exit(got == n ? 0 : 1);
		}
	}
	for (k = 0; k < nsubs; k++)
		zmq_recv(pub, ev, sizeof(ev), 0);	/* every subscription arrived */
	c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	t0 = mono_us();
	send_frames(pub, n, size);
	while (wait(&st) > 0)
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad++;
	t1 = mono_us();
	c1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	printf("{\"subscribers\": %d, \"messages\": %ld, \"body_bytes\": %ld, "
	    "\"sender_cpu_us_per_msg\": %.2f, \"seconds\": %.3f, "
	    "\"incomplete_subscribers\": %d}\n", nsubs, n, size,
	    (double)(c1 - c0) / 1e3 / (double)n, (double)(t1 - t0) / 1e6, bad);
	zmq_close(pub);
	zmq_ctx_term(ctx);
	return bad ? 1 : 0;
}

int
main(int argc, char **argv)
{
	log_init("publish_bench", 0);
	log_set_quiet(1);
	if (argc == 5 && !strcmp(argv[1], "mkstore"))
		return mkstore(argv[2], atol(argv[3]), atol(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "replay"))
		return replay(argv[2], argv[3], atol(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "baseline"))
		return baseline(atol(argv[2]), atol(argv[3]));
	if (argc == 8 && !strcmp(argv[1], "latency"))
		return latency(argv[2], argv[3], argv[4], atoi(argv[5]), atol(argv[6]),
		    atol(argv[7]));
	if (argc == 5 && !strcmp(argv[1], "fanout"))
		return fanout(atoi(argv[2]), atol(argv[3]), atol(argv[4]));
	if ((argc == 8 || argc == 9) && !strcmp(argv[1], "ingest")) {
		if (argc == 9 && !strcmp(argv[8], "idle"))
			lsub_idle = 1;
		else if (argc == 9)
			lsub_nice = atoi(argv[8]);
		return ingest(argv[2], argv[3], argv[4], argv[5], atoi(argv[6]),
		    atol(argv[7]));
	}
	fprintf(stderr, "usage: see the comment at the top of bench/publish_bench.c\n");
	return 2;
}
