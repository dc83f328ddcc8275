/*
 * ims_finish.c - facts about IMS messages that need the whole mail, and
 * the topic.
 *
 *   ims_finish  index N of M, repeated MSG_IDs, bounce (delivery reports,
 *               MAILER-DAEMON, Return-Path: <>), S/MIME multipart/signed
 *               (structure only: the signature is not verified), HELP
 *               in the Subject of a mail without IMS content
 *   ims_topic   "ims.<msg_type>.<what>" or "mail.other"
 *
 * Error policy: nothing fails; ims_topic returns -1 when buf is too small.
 *
 * SECURITY: reads the record normalize built from hostile mail; loops
 * are bounded by the parts, headers and ims counts, which limits bound.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <glib.h>

#include "ims_int.h"
#include "log.h"
#include "record.h"

/* ---- after all parts ---- */

static int
local_part_is(const char *addr, const char *lp)
{
	size_t	 n = strlen(lp);

	return addr != NULL && strncasecmp(addr, lp, n) == 0 &&
	    (addr[n] == '@' || addr[n] == '\0');
}

/* Delivery reports and mail from MAILER-DAEMON / postmaster. */
static int
bounce_ok(const Vmingest__Record *rec)
{
	size_t	 i, k;

	/* the null reverse-path; normalize strips the angle brackets */
	for (i = 0; i < rec->n_headers; i++) {
		const Vmingest__Header *h = rec->headers[i];
		const uint8_t *v = h->value.data;
		size_t	 n = h->value.len;

		if (h->name == NULL || strcasecmp(h->name, "Return-Path") != 0)
			continue;
		for (k = 0; k < n && (v[k] == ' ' || v[k] == '\t'); k++)
			continue;
		if (n - k >= 2 && v[k] == '<' && v[k + 1] == '>')
			return 1;
	}
	for (i = 0; i < rec->n_from; i++)
		if (local_part_is(rec->from[i]->address, "mailer-daemon") ||
		    local_part_is(rec->from[i]->address, "postmaster"))
			return 1;
	for (i = 0; i < rec->n_parts; i++) {
		const char *ct = rec->parts[i]->content_type;

		if (ct != NULL && (strcasecmp(ct, "multipart/report") == 0 ||
		    strcasecmp(ct, "message/delivery-status") == 0))
			return 1;
	}
	return 0;
}

/*
 * signer[i] = index of the innermost multipart/signed whose signed
 * content (its first child's subtree, in the pre-order parts list) holds
 * part i, or -1.  Cost: parts x mime_depth at most.
 */
static long *
signed_map(const Vmingest__Record *rec)
{
	long	*signer = ims_xmalloc(rec->n_parts * sizeof(long));
	size_t	 i, j;

	for (i = 0; i < rec->n_parts; i++)
		signer[i] = -1;
	for (i = 0; i + 1 < rec->n_parts; i++) {
		const Vmingest__Part *p = rec->parts[i];
		uint32_t d = p->depth;

		if (p->content_type == NULL ||
		    strcasecmp(p->content_type, "multipart/signed") != 0 ||
		    rec->parts[i + 1]->depth != d + 1)
			continue;
		for (j = i + 1; j < rec->n_parts; j++) {
			if (j > i + 1 && rec->parts[j]->depth <= d + 1)
				break;
			signer[j] = (long)i;
		}
	}
	return signer;
}

static void
finish_smime(Vmingest__Record *rec)
{
	long	*signer;
	size_t	 i, j;

	if (rec->n_parts == 0)
		return;
	signer = signed_map(rec);
	for (i = 0; i < rec->n_ims; i++) {
		Vmingest__ImsMessage *m = rec->ims[i];
		const Vmingest__Part *s = NULL;

		for (j = 0; j < rec->n_parts; j++)
			if (rec->parts[j]->path != NULL && m->part_path != NULL &&
			    strcmp(rec->parts[j]->path, m->part_path) == 0)
				break;
		if (j < rec->n_parts) {
			if (signer[j] >= 0)
				s = rec->parts[signer[j]];
		} else if (rec->parts[0]->content_type != NULL &&
		    strcasecmp(rec->parts[0]->content_type,
		    "multipart/signed") == 0)
			s = rec->parts[0];	/* part unknown: mail level */
		if (s == NULL)
			continue;
		m->smime_signed = 1;
		ims_set_str(&m->smime_protocol, rec_strdup(s->protocol));
	}
	free(signer);
}

static void
subject_help(const struct limits *l, Vmingest__Record *rec)
{
	Vmingest__ImsMessage *m;
	const char *s = rec->subject;
	size_t	 n;

	if (s == NULL || rec->n_ims > 0 || l->ims_messages == 0)
		return;
	while (blank_ok(*s))
		s++;
	n = strlen(s);
	while (n > 0 && blank_ok(s[n - 1]))
		n--;
	if (n != 4 || strncasecmp(s, "HELP", 4) != 0)
		return;
	m = ims_xmalloc(sizeof(*m));
	vmingest__ims_message__init(m);
	m->msg_type = rec_strdup("REQUEST");
	m->help = 1;
	m->complete = 1;
	rec_push(&m->warnings, &m->n_warnings,
	    rec_strdup("HELP in the Subject, no message envelope"));
	rec_push(&rec->ims, &rec->n_ims, m);
}

void
ims_finish(const struct limits *l, Vmingest__Record *rec)
{
	size_t	 i, j;
	int	 bounce;
	char	 line[160], q[QUOTE_BUF];

	subject_help(l, rec);
	bounce = bounce_ok(rec);
	for (i = 0; i < rec->n_ims; i++) {
		Vmingest__ImsMessage *m = rec->ims[i];

		m->index = (uint32_t)(i + 1);
		m->count = (uint32_t)rec->n_ims;
		m->bounce = bounce;
		if (m->msg_id == NULL || m->msg_id[0] == '\0')
			continue;
		/* several messages in one mail must have different MSG_IDs */
		for (j = 0; j < i; j++)
			if (rec->ims[j]->msg_id != NULL &&
			    strcmp(rec->ims[j]->msg_id, m->msg_id) == 0)
				break;
		if (j < i && m->n_warnings < l->warnings) {
			snprintf(line, sizeof(line), "MSG_ID \"%s\" repeats "
			    "message %zu of this mail", ims_quote(q, sizeof(q),
			    m->msg_id, strlen(m->msg_id)), j + 1);
			rec_push(&m->warnings, &m->n_warnings,
			    rec_strdup(line));
		}
	}
	finish_smime(rec);
}

/* Append s lower-cased, anything outside [a-z0-9_-] as '_'. */
static int
topic_seg(char *buf, size_t bufsz, size_t *at, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)tolower((unsigned char)*s);

		if (*at + 1 >= bufsz)
			return -1;
		buf[(*at)++] = (isalnum(ch) && ch < 0x80) || ch == '_' ||
		    ch == '-' ? (char)ch : '_';
	}
	buf[*at] = '\0';
	return 0;
}

int
ims_topic(const Vmingest__Record *rec, char *buf, size_t bufsz)
{
	const Vmingest__ImsMessage *m;
	const char *type, *what = "none";
	size_t	 at = 0;

	if (bufsz == 0)
		return -1;
	buf[0] = '\0';
	if (rec->n_ims == 0)
		return snprintf(buf, bufsz, "mail.other") < (int)bufsz ? 0 : -1;
	m = rec->ims[0];
	type = m->msg_type != NULL && m->msg_type[0] != '\0' ?
	    m->msg_type : "unknown";
	if (m->n_sections > 0 && m->sections[0]->data_type[0] != '\0')
		what = m->sections[0]->data_type;
	else if (m->n_requests > 0 && m->requests[0]->keyword[0] != '\0')
		what = m->requests[0]->keyword;
	else if (m->help)
		what = "help";
	if (snprintf(buf, bufsz, "ims.") >= (int)bufsz)
		return -1;
	at = 4;
	if (topic_seg(buf, bufsz, &at, type) == -1 ||
	    at + 1 >= bufsz) {
		buf[0] = '\0';
		return -1;
	}
	buf[at++] = '.';
	buf[at] = '\0';
	if (topic_seg(buf, bufsz, &at, what) == -1) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

