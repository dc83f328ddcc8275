/*
 * test_ims.c - unit tests for lib/ims.c: one test per piece of the
 * grammar with messages written here, golden dumps of the messages in
 * tests/data/ims/, and the real corpus in ../shared/corpus/ims (env
 * VMI_CORPUS; those tests skip with a message when it is absent).
 *
 * VMI_UPDATE_GOLDEN=1 rewrites tests/data/ims/ *.expect from the current
 * output (review the diff before committing).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "ims.h"
#include "normalize.h"
#include "record.h"

static struct limits L;

static Vmingest__Record *
parse_n(const char *text, size_t len)
{
	Vmingest__Record *r = record_new();

	ims_parse_part(&L, r, "1", text, len);
	ims_finish(&L, r);
	return r;
}

static Vmingest__Record *
parse(const char *text)
{
	return parse_n(text, strlen(text));
}

static int
has_warning(const Vmingest__ImsMessage *m, const char *sub)
{
	size_t	 i;

	for (i = 0; i < m->n_warnings; i++)
		if (strstr(m->warnings[i], sub) != NULL)
			return 1;
	return 0;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE	*f = fopen(path, "rb");
	char	*b;
	long	 n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)n + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	b[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void
t_envelope(void **state)
{
	Vmingest__Record *r = parse(
	    "BEGIN IMS2.0\n"
	    "MSG_TYPE DATA\n"
	    "MSG_ID abc_123 MY_NDC\n"
	    "REF_ID req-9 CTBT_IDC PART 2 OF 3\n"
	    "PROD_ID 1234 56\n"
	    "E-MAIL a.b@ndc.example.org\n"
	    "DATA_TYPE LOG\n"
	    "hello\n"
	    "STOP\n");
	Vmingest__ImsMessage *m;

	assert_int_equal(r->n_ims, 1);
	m = r->ims[0];
	assert_string_equal(m->version, "IMS2.0");
	assert_string_equal(m->msg_type, "DATA");
	assert_string_equal(m->msg_id, "abc_123");
	assert_string_equal(m->source, "MY_NDC");
	assert_non_null(m->ref_id);
	assert_string_equal(m->ref_id->id, "req-9");
	assert_string_equal(m->ref_id->source, "CTBT_IDC");
	assert_int_equal(m->ref_id->part, 2);
	assert_int_equal(m->ref_id->of, 3);
	assert_non_null(m->prod_id);
	assert_string_equal(m->prod_id->product, "1234");
	assert_string_equal(m->prod_id->delivery, "56");
	assert_string_equal(m->return_address, "a.b@ndc.example.org");
	assert_int_equal(m->return_kind, VMINGEST__RETURN_KIND__EMAIL);
	assert_true(m->complete);
	assert_int_equal(m->n_warnings, 0);
	assert_int_equal(m->index, 1);
	assert_int_equal(m->count, 1);
	assert_string_equal(m->part_path, "1");
	record_free(r);
}

/* Keywords in any case, leading blanks, CRLF, blank lines; ids as sent. */
static void
t_lexical(void **state)
{
	Vmingest__Record *r = parse(
	    "\r\n\r\n   begin ims1.0\r\n"
	    "\tmsg_type   request \r\n"
	    "\r\n"
	    "  Msg_Id  MiXeD-42   some_Src\r\n"
	    "e-mail x@y.example\r\n"
	    "Time 2000/1/9 1:00 to 2000/1/9 1:15\r\n"
	    "wAvEfOrM iMs1.0:Cm6\r\n"
	    "sToP\r\n");
	Vmingest__ImsMessage *m;

	assert_int_equal(r->n_ims, 1);
	m = r->ims[0];
	assert_string_equal(m->version, "ims1.0");
	assert_string_equal(m->msg_type, "REQUEST");
	assert_string_equal(m->msg_id, "MiXeD-42");
	assert_string_equal(m->source, "some_Src");
	assert_int_equal(m->n_requests, 1);
	assert_string_equal(m->requests[0]->keyword, "WAVEFORM");
	assert_string_equal(m->requests[0]->format, "IMS1.0");
	assert_string_equal(m->requests[0]->sub_format, "CM6");
	assert_int_equal(m->requests[0]->n_environment, 1);
	assert_string_equal(m->requests[0]->environment[0],
	    "TIME 2000/1/9 1:00 to 2000/1/9 1:15");
	assert_true(m->complete);
	assert_int_equal(m->n_warnings, 0);
	record_free(r);
}

static void
t_continuation_and_comments(void **state)
{
	Vmingest__Record *r = parse(
	    "% a comment before the message\n"
	    "BEGIN IMS2.0\n"
	    "% comment in the envelope\n"
	    "MSG_TYPE REQUEST\n"
	    "MSG_ID \\\n"
	    "  joined_id\n"
	    "STA_LIST ABC,\\\n"
	    "DEF\n"
	    "  % indented comment, FROBNICATE\n"
	    "STATION IMS2.0\n"
	    "STOP\n");
	Vmingest__ImsMessage *m = r->ims[0];

	assert_int_equal(r->n_ims, 1);
	assert_string_equal(m->msg_id, "joined_id");
	assert_int_equal(m->n_requests, 1);
	assert_string_equal(m->requests[0]->keyword, "STATION");
	assert_int_equal(m->requests[0]->n_environment, 1);
	assert_string_equal(m->requests[0]->environment[0], "STA_LIST ABC,DEF");
	assert_int_equal(m->n_warnings, 0);
	record_free(r);
}

/* Several messages; junk between STOP and BEGIN ignored; N of M. */
static void
t_several_messages(void **state)
{
	Vmingest__Record *r = parse(
	    "BEGIN GSE2.0\nMSG_TYPE DATA\nMSG_ID one\nDATA_TYPE LOG\nx\nSTOP\n"
	    "FROBNICATE this is not IMS\nDATA_TYPE BULLETIN\nSTOP\n"
	    "BEGIN GSE2.1\nMSG_TYPE DATA\nMSG_ID two\nDATA_TYPE COMMENT\nSTOP\n");

	assert_int_equal(r->n_ims, 2);
	assert_string_equal(r->ims[0]->msg_id, "one");
	assert_string_equal(r->ims[1]->msg_id, "two");
	assert_int_equal(r->ims[0]->n_sections, 1);
	assert_int_equal(r->ims[1]->n_sections, 1);
	assert_int_equal(r->ims[0]->index, 1);
	assert_int_equal(r->ims[1]->index, 2);
	assert_int_equal(r->ims[0]->count, 2);
	assert_int_equal(r->ims[1]->count, 2);
	assert_int_equal(r->ims[0]->n_warnings, 0);
	assert_int_equal(r->ims[1]->n_warnings, 0);
	record_free(r);
}

static void
t_missing_stop(void **state)
{
	Vmingest__Record *r = parse(
	    "BEGIN IMS2.0\nMSG_TYPE DATA\nMSG_ID a1\nDATA_TYPE BULLETIN\nx\n"
	    "BEGIN IMS2.0\nMSG_TYPE DATA\nMSG_ID a2\nDATA_TYPE LOG\ny\n");

	assert_int_equal(r->n_ims, 2);
	assert_false(r->ims[0]->complete);
	assert_false(r->ims[1]->complete);
	assert_true(has_warning(r->ims[0], "missing STOP"));
	assert_true(has_warning(r->ims[1], "missing STOP"));
	/* the first section ends where the second BEGIN starts */
	assert_int_equal(r->ims[0]->sections[0]->length,
	    strlen("DATA_TYPE BULLETIN\nx\n"));
	record_free(r);
}

static void
t_no_ims(void **state)
{
	char	 topic[64];
	Vmingest__Record *r = parse(
	    "Hello,\n\nBegin forwarded message:\n\nFrom: someone\n"
	    "begin 644 file.uu\nSTOP\n");

	assert_int_equal(r->n_ims, 0);
	assert_int_equal(ims_topic(r, topic, sizeof(topic)), 0);
	assert_string_equal(topic, "mail.other");
	record_free(r);
	r = parse_n("", 0);
	assert_int_equal(r->n_ims, 0);
	record_free(r);
}

/* A BEGIN without a proper version is a message when MSG_TYPE follows. */
static void
t_begin_bad_version(void **state)
{
	Vmingest__Record *r = parse("BEGIN\n\nMSG_TYPE DATA\nMSG_ID z\n"
	    "DATA_TYPE LOG\nSTOP\n");

	assert_int_equal(r->n_ims, 1);
	assert_string_equal(r->ims[0]->version, "");
	assert_true(has_warning(r->ims[0], "bad BEGIN version"));
	record_free(r);
}

/* An ERROR_LOG section quoting the request, BEGIN..STOP (GSE2.1 4.0-3). */
static void
t_log_echo(void **state)
{
	const char *text =
	    "BEGIN GSE2.1\nMSG_TYPE DATA\nMSG_ID 1243 GSE_IDC\n"
	    "REF_ID 1040 ANY_NDC\n"
	    "DATA_TYPE ERROR_LOG GSE2.1\n"
	    "  An error was detected in the following request message:\n"
	    "  BEGIN GSE2.1\n  MSG_TYPE request\n  MSG_ID 1040 ANY_NDC\n"
	    "  TIME 94/03/01 TO 94/03/02\n  *** Unrecognized time format ***\n"
	    "  DATA_TYPE LOG\n  STA_LIST ARA0\n  WAVEFORM\n  STOP\n"
	    "DATA_TYPE LOG GSE2.1\nquoted again:\nBEGIN GSE2.1\nMSG_TYPE x\n"
	    "STOP\n"
	    "STOP\n"
	    "BEGIN GSE2.1\nMSG_TYPE DATA\nMSG_ID 7\nDATA_TYPE WAVEFORM\n"
	    "BEGIN GSE2.1\nMSG_TYPE DATA\nMSG_ID 8\nDATA_TYPE LOG\n"
	    "BEGIN IMS2.0\n";
	Vmingest__Record *r = parse(text);
	Vmingest__ImsMessage *m;

	assert_int_equal(r->n_ims, 3);
	m = r->ims[0];
	assert_true(m->complete);
	assert_int_equal(m->n_sections, 2);
	assert_string_equal(m->sections[0]->data_type, "ERROR_LOG");
	assert_string_equal(m->sections[1]->data_type, "LOG");
	assert_int_equal(m->sections[1]->offset + m->sections[1]->length,
	    strstr(text, "STOP\nSTOP\n") + 5 - text);
	assert_int_equal(m->n_warnings, 0);
	/* outside LOG sections a BEGIN still means the STOP was missing */
	assert_false(r->ims[1]->complete);
	assert_string_equal(r->ims[2]->msg_id, "8");
	assert_true(has_warning(r->ims[2], "quoted in a LOG section has no STOP"));
	record_free(r);
}

static void
t_grammar_warnings(void **state)
{
	char	 longline[1200];
	char	 text[4096];
	Vmingest__Record *r;
	Vmingest__ImsMessage *m;

	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	snprintf(text, sizeof(text),
	    "BEGIN IMS2.0\n"
	    "MSG_TYPE REQUEST\n"
	    "MSG_ID this_id_is_much_longer_than_twenty\n"
	    "E-MAIL not-an-address\n"
	    "TIME 2024/13/01 TO 2024/12/01\n"
	    "LAT 10 TO north\n"
	    "STA_LIST A+B\n"
	    "FROBNICATE 1\n"
	    "WAVEFORM ims2.0::cm6\n"
	    "BULLETIN %s\n"
	    "STOP\n", longline);
	r = parse(text);
	m = r->ims[0];
	assert_true(has_warning(m, "MSG_ID id is 34 characters"));
	assert_true(has_warning(m, "bad E-MAIL address"));
	assert_true(has_warning(m, "line 5: bad date/time \"2024/13/01\""));
	assert_true(has_warning(m, "bad range in LAT"));
	assert_true(has_warning(m, "bad list in STA_LIST"));
	assert_true(has_warning(m, "unknown keyword \"FROBNICATE\""));
	assert_true(has_warning(m, "bad format \"ims2.0::cm6\""));
	assert_true(has_warning(m, "line 10: line longer than 1024 bytes"));
	assert_true(m->complete);
	/* the bad lines are still described where they can be */
	assert_int_equal(m->n_requests, 2);
	record_free(r);
}

static void
t_envelope_order(void **state)
{
	Vmingest__Record *r = parse("BEGIN IMS1.0\nMSG_TYPE REQUEST\n"
	    "MSG_ID x\nPROD_ID 1 2\nREF_ID 3\nHELP\nSTOP\n");

	assert_true(has_warning(r->ims[0], "REF_ID line out of order"));
	assert_true(r->ims[0]->help);
	record_free(r);
	r = parse("BEGIN IMS1.0\nMSG_TYPE REQUEST\nMSG_ID x\n"
	    "E-MAIL AutoDRM@idc.example\nHELP\nSTOP\n");
	assert_true(has_warning(r->ims[0], "mailer address: no reply"));
	record_free(r);
	r = parse("BEGIN IMS1.0\nMSG_TYPE DATA\nMSG_ID x\nDATA_TYPE LOG\n"
	    "REF_ID 3\nSTOP\n");
	/* inside a section REF_ID is data, not envelope */
	assert_int_equal(r->ims[0]->n_warnings, 0);
	assert_null(r->ims[0]->ref_id);
	record_free(r);
}

static void
t_dates(void **state)
{
	static const struct {
		const char *line;
		int	 ok;
	} cases[] = {
		{ "TIME 1994/02 to 1994/03", 1 },
		{ "TIME 1994/02/01 23:14:19.7 TO 1994/03/01 12", 1 },
		{ "TIME 1994/2/1 23:14:19.7 to 1994/3/1 12", 1 },
		{ "TIME 2024/02/29 TO", 1 },
		{ "TIME NOW TO FOREVER", 1 },
		{ "TIME", 1 },
		{ "TIME 2023/02/29 TO 2023/03/01", 0 },
		{ "TIME 1999/04/01/04 to 1999/05/01", 0 },
		{ "TIME 1999/04/01 25:00 to 1999/05/01", 0 },
		{ "TIME 1999/04/01", 0 },
		{ "TIME 1999/04/01 TO 1999/05/01 TO 2000/01/01", 0 },
		{ "TIME 1999/04/01 10:61 TO 1999/05/01", 0 },
	};
	char	 text[256];
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Vmingest__Record *r;
		int	 warned;

		snprintf(text, sizeof(text), "BEGIN IMS1.0\nMSG_TYPE REQUEST\n"
		    "MSG_ID d\n%s\nBULLETIN IMS1.0\nSTOP\n", cases[i].line);
		r = parse(text);
		warned = has_warning(r->ims[0], "TIME");
		if (warned == cases[i].ok)
			fail_msg("%s: expected %s", cases[i].line,
			    cases[i].ok ? "no warning" : "a warning");
		record_free(r);
	}
}

/* Offsets and lengths of sections within the text given. */
static void
t_section_offsets(void **state)
{
	const char *text =
	    "preamble\r\nBEGIN IMS2.0\r\nMSG_TYPE DATA\r\nMSG_ID o\r\n"
	    "DATA_TYPE BULLETIN IMS1.0:SHORT\r\nline\r\n"
	    "DATA_TYPE arrival:automatic IMS1.0\r\nline2\r\n"
	    "STOP\r\ntrailer\r\n";
	Vmingest__Record *r = parse(text);
	Vmingest__ImsMessage *m = r->ims[0];
	const char *s1 = strstr(text, "DATA_TYPE BULLETIN");
	const char *s2 = strstr(text, "DATA_TYPE arrival");
	const char *stop = strstr(text, "STOP");

	assert_int_equal(m->n_sections, 2);
	assert_int_equal(m->sections[0]->offset, s1 - text);
	assert_int_equal(m->sections[0]->length, s2 - s1);
	assert_int_equal(m->sections[1]->offset, s2 - text);
	assert_int_equal(m->sections[1]->length, stop - s2);
	assert_string_equal(m->sections[0]->data_type, "BULLETIN");
	assert_string_equal(m->sections[0]->format, "IMS1.0");
	assert_string_equal(m->sections[0]->sub_format, "SHORT");
	assert_string_equal(m->sections[1]->data_type, "ARRIVAL");
	assert_string_equal(m->sections[1]->subtype, "AUTOMATIC");
	assert_string_equal(m->sections[1]->part_path, "1");
	assert_int_equal(m->n_warnings, 0);
	record_free(r);
}

static void
t_wid2(void **state)
{
	Vmingest__Record *r = parse(
	    "BEGIN IMS2.0\nMSG_TYPE DATA\nMSG_ID w\n"
	    "DATA_TYPE WAVEFORM IMS2.0:CM6\n"
	    "WID2 2024/05/01 00:00:00.000 ARCES BHZ      CM6     2400   40.000000   1.00e+00   1.000 STS-2   -1.0  0.0\n"
	    "DAT2\nWID2 is not here\nSTOP\n"
	    "CHK2 1\n"
	    "WID2 2024/05/01 00:01:00.000 ARCES BHN      CM6     1200   40.000000   1.00e+00   1.000 STS-2    0.0 90.0\n"
	    "WID2 2024/04/30 23:59:00 NOA shz\n"
	    "STOP\n");
	Vmingest__ImsSection *s = r->ims[0]->sections[0];

	/* a DAT2 line "STOP" ends the message: what a reader would do too */
	assert_int_equal(r->ims[0]->n_sections, 1);
	assert_int_equal(s->n_stations, 1);
	assert_string_equal(s->stations[0], "ARCES");
	assert_int_equal(s->n_channels, 1);
	assert_string_equal(s->channels[0], "BHZ");
	assert_int_equal(s->start_unix, 1714521600);		/* 2024-05-01 */
	assert_int_equal(s->end_unix, 1714521600 + 60);	/* 2400 / 40 Hz */
	record_free(r);

	r = parse(
	    "BEGIN IMS2.0\nMSG_TYPE DATA\nMSG_ID w\n"
	    "DATA_TYPE WAVEFORM IMS2.0:CM6\n"
	    "WID2 2024/05/01 00:00:00.000 ARCES BHZ      CM6     2400   40.000000   1.00e+00   1.000 STS-2   -1.0  0.0\n"
	    "DAT2\n+-0A\nCHK2 1\n"
	    "WID2 2024/05/01 00:01:00.000 ARCES BHN      CM6     4800   40.000000   1.00e+00   1.000 STS-2    0.0 90.0\n"
	    "WID2 2024/04/30 23:59:00 NOA shz\n"
	    "WID2 2024/13/30 23:59:00 NOA shz\n"
	    "STOP\n");
	s = r->ims[0]->sections[0];
	assert_int_equal(s->n_stations, 2);
	assert_string_equal(s->stations[1], "NOA");
	assert_int_equal(s->n_channels, 3);
	assert_string_equal(s->channels[1], "BHN");
	assert_string_equal(s->channels[2], "shz");
	assert_int_equal(s->start_unix, 1714521600 - 60);
	assert_int_equal(s->end_unix, 1714521600 + 60 + 120);
	assert_true(has_warning(r->ims[0], "bad WID2 date/time"));
	record_free(r);
}

static void
t_phd(void **state)
{
	size_t	 len;
	char	 path[512];
	char	*text;
	Vmingest__Record *r;
	Vmingest__ImsSection *s;

	snprintf(path, sizeof(path), "%s/ims/data_phd.msg", TEST_DATA);
	text = slurp(path, &len);
	assert_non_null(text);
	r = parse_n(text, len);
	assert_int_equal(r->n_ims, 1);
	s = r->ims[0]->sections[0];
	assert_string_equal(s->data_type, "SAMPLEPHD");
	assert_string_equal(s->format, "");
	assert_int_equal(s->n_stations, 1);
	assert_string_equal(s->stations[0], "XXX99");
	assert_string_equal(s->channels[0], "XXX99_001");
	/* collection 2024-03-30 08:56 .. acquisition end 03-31 09:14 + 72000 s */
	assert_int_equal(s->start_unix, 1711788960);
	assert_int_equal(s->end_unix, 1711876440 + 72000);
	assert_int_equal(r->ims[0]->n_warnings, 0);
	record_free(r);
	free(text);

	/* only a #Header: the transmit time is the range */
	r = parse("BEGIN IMS2.0\nMSG_TYPE DATA\nMSG_ID p\nDATA_TYPE QCPHD\n"
	    "#Header\nST1 DET1 P U FULL\nref\nids\n2024/04/01 00:00:10\nSTOP\n");
	s = r->ims[0]->sections[0];
	assert_int_equal(s->start_unix, 1711929610);
	assert_int_equal(s->end_unix, 1711929610);
	record_free(r);
}

/* Environment in force per request line; reset with an empty keyword. */
static void
t_request_environment(void **state)
{
	size_t	 len;
	char	 path[512];
	char	*text;
	Vmingest__Record *r;
	Vmingest__ImsMessage *m;

	snprintf(path, sizeof(path), "%s/ims/request_waveform.msg", TEST_DATA);
	text = slurp(path, &len);
	assert_non_null(text);
	r = parse_n(text, len);
	m = r->ims[0];
	assert_int_equal(m->n_requests, 2);
	assert_int_equal(m->requests[0]->n_environment, 3);
	assert_string_equal(m->requests[0]->environment[0],
	    "TIME 2024/05/01 00:00 TO 2024/05/01 01:00:00.5");
	assert_string_equal(m->requests[0]->environment[1],
	    "STA_LIST ARCES, FINES, NOA");
	assert_string_equal(m->requests[0]->environment[2], "CHAN_LIST BH*");
	assert_int_equal(m->requests[1]->n_environment, 2);
	assert_string_equal(m->requests[1]->environment[1], "CHAN_LIST BH*");
	assert_string_equal(m->requests[1]->keyword, "BULLETIN");
	assert_string_equal(m->requests[1]->subtype, "REB");
	assert_string_equal(m->requests[1]->sub_format, "SHORT");
	assert_int_equal(m->n_warnings, 0);
	record_free(r);
	free(text);
}

static void
t_help(void **state)
{
	char	 topic[64];
	Vmingest__Record *r = parse("\n  help \n\n");

	assert_int_equal(r->n_ims, 1);
	assert_true(r->ims[0]->help);
	assert_string_equal(r->ims[0]->msg_type, "REQUEST");
	assert_int_equal(ims_topic(r, topic, sizeof(topic)), 0);
	assert_string_equal(topic, "ims.request.help");
	record_free(r);

	/* "help" in prose is not a request */
	r = parse("Please help me with the IMS format\nhelp\n");
	assert_int_equal(r->n_ims, 0);
	record_free(r);

	/* Subject-only HELP */
	r = record_new();
	r->subject = rec_strdup(" HELP ");
	ims_finish(&L, r);
	assert_int_equal(r->n_ims, 1);
	assert_true(r->ims[0]->help);
	assert_int_equal(r->ims[0]->index, 1);
	record_free(r);
}

static void
t_topic(void **state)
{
	char	 topic[64];
	Vmingest__Record *r = parse("BEGIN IMS2.0\nMSG_TYPE DATA\nMSG_ID t\n"
	    "DATA_TYPE SAMPLEPHD\nSTOP\n");

	assert_int_equal(ims_topic(r, topic, sizeof(topic)), 0);
	assert_string_equal(topic, "ims.data.samplephd");
	assert_int_equal(ims_topic(r, topic, 10), -1);
	record_free(r);

	r = parse("BEGIN IMS2.0\nMSG_TYPE WEIRD.TYPE/\xc3\xa9\nMSG_ID t\n"
	    "DATA_TYPE FOO.BAR\nSTOP\n");
	assert_int_equal(ims_topic(r, topic, sizeof(topic)), 0);
	assert_string_equal(topic, "ims.weird_type___.foo_bar");
	assert_true(has_warning(r->ims[0], "unknown MSG_TYPE"));
	assert_true(has_warning(r->ims[0], "unknown DATA_TYPE"));
	record_free(r);

	r = parse("BEGIN IMS2.0\nMSG_TYPE REQUEST\nMSG_ID t\n"
	    "TIME 2024/01/01 TO 2024/01/02\nwaveform:raw ims2.0\nSTOP\n");
	assert_int_equal(ims_topic(r, topic, sizeof(topic)), 0);
	assert_string_equal(topic, "ims.request.waveform");
	record_free(r);

	/* nothing to name: "none"; no MSG_TYPE: "unknown" */
	r = parse("BEGIN IMS2.0\nMSG_TYPE DATA\nMSG_ID t\nSTOP\n");
	assert_int_equal(ims_topic(r, topic, sizeof(topic)), 0);
	assert_string_equal(topic, "ims.data.none");
	record_free(r);
	r = parse("BEGIN IMS2.0\nMSG_ID t\nDATA_TYPE LOG\nSTOP\n");
	assert_int_equal(ims_topic(r, topic, sizeof(topic)), 0);
	assert_string_equal(topic, "ims.unknown.log");
	assert_true(has_warning(r->ims[0], "missing MSG_TYPE"));
	record_free(r);
}

static void
t_limits(void **state)
{
	struct limits l = L;
	Vmingest__Record *r;
	const char *two = "BEGIN IMS2.0\nMSG_TYPE DATA\nMSG_ID a\n"
	    "DATA_TYPE LOG\nDATA_TYPE LOG\nDATA_TYPE LOG\nSTOP\n"
	    "BEGIN IMS2.0\nMSG_TYPE REQUEST\nMSG_ID b\n"
	    "BULLETIN\nORIGIN\nARRIVAL\nSTOP\n";
	const char *sta = "BEGIN IMS2.0\nMSG_TYPE DATA\nMSG_ID s\n"
	    "DATA_TYPE WAVEFORM\n"
	    "WID2 2024/05/01 00:00:00 A1 BHZ\n"
	    "WID2 2024/05/01 00:00:00 A2 BHZ\n"
	    "WID2 2024/05/01 00:00:00 A3 BHZ\nSTOP\n";
	const char *many = "BEGIN IMS2.0\nMSG_TYPE DATA\nMSG_ID w\n"
	    "X1\nX2\nX3\nX4\nX5\nSTOP\n";

	l.ims_sections = 2;
	l.ims_requests = 1;
	r = record_new();
	ims_parse_part(&l, r, "1", two, strlen(two));
	ims_finish(&l, r);
	assert_int_equal(r->n_ims, 2);
	assert_int_equal(r->ims[0]->n_sections, 2);
	assert_true(has_warning(r->ims[0], "ims_sections"));
	assert_int_equal(r->ims[1]->n_requests, 1);
	assert_true(has_warning(r->ims[1], "ims_requests"));
	record_free(r);

	l = L;
	l.ims_messages = 1;
	r = record_new();
	ims_parse_part(&l, r, "1", two, strlen(two));
	ims_parse_part(&l, r, "2", two, strlen(two));
	ims_finish(&l, r);
	assert_int_equal(r->n_ims, 1);
	assert_int_equal(r->n_warnings, 1);	/* once, not per part */
	assert_non_null(strstr(r->warnings[0], "ims_messages"));
	record_free(r);

	l = L;
	l.ims_stations = 2;
	r = record_new();
	ims_parse_part(&l, r, "1", sta, strlen(sta));
	assert_int_equal(r->ims[0]->sections[0]->n_stations, 2);
	assert_int_equal(r->ims[0]->sections[0]->n_channels, 1);
	assert_true(has_warning(r->ims[0], "ims_stations"));
	record_free(r);

	l = L;
	l.warnings = 3;
	r = record_new();
	ims_parse_part(&l, r, "1", many, strlen(many));
	assert_int_equal(r->ims[0]->n_warnings, 3);
	assert_true(has_warning(r->ims[0], "too many warnings"));
	record_free(r);
}

static Vmingest__Part *
mkpart(const char *path, const char *ct, uint32_t depth, const char *proto)
{
	Vmingest__Part *p = malloc(sizeof(*p));

	vmingest__part__init(p);
	p->path = rec_strdup(path);
	p->content_type = rec_strdup(ct);
	p->depth = depth;
	p->protocol = rec_strdup(proto);
	return p;
}

static const char *ims_text = "BEGIN IMS1.0\nMSG_TYPE DATA\nMSG_ID s\n"
    "DATA_TYPE LOG\nSTOP\n";

static void
t_smime(void **state)
{
	Vmingest__Record *r = record_new();

	/* multipart/signed: [text (signed), signature]; plus an unsigned part */
	rec_push(&r->parts, &r->n_parts, mkpart("0", "multipart/mixed", 0, ""));
	rec_push(&r->parts, &r->n_parts, mkpart("1", "multipart/signed", 1,
	    "application/x-pkcs7-signature"));
	rec_push(&r->parts, &r->n_parts, mkpart("1.1", "text/plain", 2, ""));
	rec_push(&r->parts, &r->n_parts, mkpart("1.2",
	    "application/x-pkcs7-signature", 2, ""));
	rec_push(&r->parts, &r->n_parts, mkpart("2", "text/plain", 1, ""));
	ims_parse_part(&L, r, "1.1", ims_text, strlen(ims_text));
	ims_parse_part(&L, r, "2", ims_text, strlen(ims_text));
	ims_finish(&L, r);
	assert_int_equal(r->n_ims, 2);
	assert_true(r->ims[0]->smime_signed);
	assert_string_equal(r->ims[0]->smime_protocol,
	    "application/x-pkcs7-signature");
	assert_false(r->ims[1]->smime_signed);
	assert_string_equal(r->ims[1]->smime_protocol, "");
	assert_string_equal(r->ims[1]->part_path, "2");
	assert_int_equal(r->ims[1]->index, 2);
	/* both messages say MSG_ID s */
	assert_true(has_warning(r->ims[1], "repeats message 1"));
	assert_false(r->ims[0]->bounce);
	record_free(r);

	/* the signature part itself is not signed content */
	r = record_new();
	rec_push(&r->parts, &r->n_parts, mkpart("1", "multipart/signed", 0,
	    "application/pkcs7-signature"));
	rec_push(&r->parts, &r->n_parts, mkpart("1.1", "text/plain", 1, ""));
	rec_push(&r->parts, &r->n_parts, mkpart("1.2", "text/plain", 1, ""));
	ims_parse_part(&L, r, "1.2", ims_text, strlen(ims_text));
	ims_finish(&L, r);
	assert_false(r->ims[0]->smime_signed);
	record_free(r);
}

static void
t_bounce(void **state)
{
	Vmingest__Record *r = record_new();
	Vmingest__Address *a = malloc(sizeof(*a));
	Vmingest__Header *h;

	vmingest__address__init(a);
	a->address = rec_strdup("MAILER-DAEMON@idc.example");
	rec_push(&r->from, &r->n_from, a);
	ims_parse_part(&L, r, "1", ims_text, strlen(ims_text));
	ims_finish(&L, r);
	assert_true(r->ims[0]->bounce);
	record_free(r);

	r = record_new();
	h = malloc(sizeof(*h));
	vmingest__header__init(h);
	h->name = rec_strdup("Return-Path");
	h->value.data = (uint8_t *)rec_strdup(" <>");
	h->value.len = 3;
	rec_push(&r->headers, &r->n_headers, h);
	ims_parse_part(&L, r, "1", ims_text, strlen(ims_text));
	ims_finish(&L, r);
	assert_true(r->ims[0]->bounce);
	record_free(r);

	/* an ordinary Return-Path is no bounce */
	r = record_new();
	h = malloc(sizeof(*h));
	vmingest__header__init(h);
	h->name = rec_strdup("Return-Path");
	h->value.data = (uint8_t *)rec_strdup("<ops@ndc.example>");
	h->value.len = 17;
	rec_push(&r->headers, &r->n_headers, h);
	ims_parse_part(&L, r, "1", ims_text, strlen(ims_text));
	ims_finish(&L, r);
	assert_false(r->ims[0]->bounce);
	record_free(r);

	r = record_new();
	rec_push(&r->parts, &r->n_parts, mkpart("1", "multipart/report", 0, ""));
	ims_parse_part(&L, r, "1", ims_text, strlen(ims_text));
	ims_finish(&L, r);
	assert_true(r->ims[0]->bounce);
	record_free(r);
}

/* ---- golden dumps: tests/data/ims/NAME.msg -> NAME.expect ---- */

static char *
dump_ims(const Vmingest__Record *r)
{
	json_t	*arr = json_array();
	char	*s, *out, topic[128];
	size_t	 i, n;

	for (i = 0; i < r->n_ims; i++)
		json_array_append_new(arr, pb_to_json(&r->ims[i]->base, 0));
	s = json_dumps(arr, JSON_INDENT(2));
	json_decref(arr);
	assert_int_equal(ims_topic(r, topic, sizeof(topic)), 0);
	n = strlen(s) + strlen(topic) + 16;
	out = malloc(n);
	snprintf(out, n, "topic %s\n%s\n", topic, s);
	free(s);
	return out;
}

static void
t_golden(void **state)
{
	char	 dir[512], in[1024], exp[1024];
	DIR	*d;
	struct dirent *de;
	int	 n = 0, update = getenv("VMI_UPDATE_GOLDEN") != NULL;

	snprintf(dir, sizeof(dir), "%s/ims", TEST_DATA);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t	 len, elen, nl = strlen(de->d_name);
		char	*text, *want, *got;
		Vmingest__Record *r;

		if (nl < 5 || strcmp(de->d_name + nl - 4, ".msg") != 0)
			continue;
		snprintf(in, sizeof(in), "%s/%s", dir, de->d_name);
		snprintf(exp, sizeof(exp), "%s/%.*s.expect", dir,
		    (int)(nl - 4), de->d_name);
		text = slurp(in, &len);
		assert_non_null(text);
		r = parse_n(text, len);
		got = dump_ims(r);
		if (update) {
			FILE *f = fopen(exp, "w");

			assert_non_null(f);
			fputs(got, f);
			fclose(f);
		}
		want = slurp(exp, &elen);
		if (want == NULL)
			fail_msg("%s: no golden file %s", in, exp);
		if (strcmp(want, got) != 0)
			fail_msg("%s differs from %s; got:\n%s", in, exp, got);
		free(want);
		free(got);
		free(text);
		record_free(r);
		n++;
	}
	closedir(d);
	assert_true(n >= 5);
}

/* ---- the real corpus ---- */

static const char *
corpus_dir(char *buf, size_t bufsz)
{
	const char *env = getenv("VMI_CORPUS");

	if (env != NULL && env[0] != '\0')
		snprintf(buf, bufsz, "%s/ims", env);
	else
		snprintf(buf, bufsz, "%s/../../../shared/corpus/ims", TEST_DATA);
	DIR	*d = opendir(buf);

	if (d == NULL)
		return NULL;
	closedir(d);
	return buf;
}

/* Parse, topic and pack every regular file of dir; returns the count. */
static int
corpus_walk(const char *dir)
{
	char	 path[2048];
	DIR	*d = opendir(dir);
	struct dirent *de;
	int	 n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t	 len, pblen;
		char	*text, topic[128];
		Vmingest__Record *r;
		uint8_t	*pb;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) == -1 || !S_ISREG(st.st_mode))
			continue;
		text = slurp(path, &len);
		assert_non_null(text);
		r = parse_n(text, len);
		assert_int_equal(ims_topic(r, topic, sizeof(topic)), 0);
		assert_int_equal(record_pack(r, &pb, &pblen), 0);
		free(pb);
		record_free(r);
		free(text);
		n++;
	}
	closedir(d);
	return n;
}

/* Every corpus file, the specs in ref/ (full of examples) included. */
static void
t_corpus_all(void **state)
{
	char	 dir[1024], sub[1100];
	int	 n;

	if (corpus_dir(dir, sizeof(dir)) == NULL) {
		print_message("SKIP: IMS corpus %s not found\n", dir);
		skip();
	}
	n = corpus_walk(dir);
	snprintf(sub, sizeof(sub), "%s/ref", dir);
	n += corpus_walk(sub);
	snprintf(sub, sizeof(sub), "%s/requests", dir);
	n += corpus_walk(sub);
	assert_true(n > 40);
}

/* requests/INDEX.tsv: "expected to parse" -> no warning; errors -> the one. */
static void
t_corpus_requests(void **state)
{
	static const struct {
		const char *file;
		const char *warning;
	} errors[] = {
		{ "rnpicker_test_req_17_L513.msg", "bad E-MAIL address" },
		{ "rnpicker_test_req_19_L542.msg", "missing STOP" },
		{ "rnpicker_test_req_20_L554.msg", "bad date/time" },
		{ "rnpicker_test_req_22_L578.msg", "bad format" },
		{ "rnpicker_test_req_23_L590.msg", "bad list in STA_LIST" },
		{ "rnpicker_test_req_31_L773.msg", "REF_ID line out of order" },
	};
	char	 dir[1024], path[2400], line[1024];
	FILE	*idx;
	int	 n = 0, nerr = 0;

	if (corpus_dir(dir, sizeof(dir)) == NULL) {
		print_message("SKIP: IMS corpus %s not found\n", dir);
		skip();
	}
	snprintf(path, sizeof(path), "%s/requests/INDEX.tsv", dir);
	idx = fopen(path, "r");
	assert_non_null(idx);
	while (fgets(line, sizeof(line), idx) != NULL) {
		char	*tab = strchr(line, '\t'), *text;
		const char *want = NULL;
		size_t	 len, i;
		Vmingest__Record *r;
		Vmingest__ImsMessage *m;
		int	 err;

		if (line[0] == '#' || tab == NULL)
			continue;
		*tab = '\0';
		err = strncmp(tab + 1, "expects", 7) == 0;
		for (i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
			if (strcmp(errors[i].file, line) == 0)
				want = errors[i].warning;
		if (err && want == NULL)
			fail_msg("%s: an error case without an expected warning",
			    line);
		if (!err && want != NULL)
			fail_msg("%s: INDEX says it parses", line);
		snprintf(path, sizeof(path), "%s/requests/%s", dir, line);
		text = slurp(path, &len);
		assert_non_null(text);
		r = parse_n(text, len);
		if (r->n_ims != 1)
			fail_msg("%s: %zu IMS messages", line, r->n_ims);
		m = r->ims[0];
		assert_string_equal(m->msg_type, "REQUEST");
		assert_true(m->n_requests >= 1);
		if (err) {
			if (!has_warning(m, want))
				fail_msg("%s: no warning \"%s\"", line, want);
			if (m->n_warnings != 1)
				fail_msg("%s: %zu warnings, first \"%s\"", line,
				    m->n_warnings, m->warnings[0]);
			nerr++;
		} else if (m->n_warnings != 0)
			fail_msg("%s: unexpected warning \"%s\"", line,
			    m->warnings[0]);
		record_free(r);
		free(text);
		n++;
	}
	fclose(idx);
	assert_int_equal(nerr, 6);
	assert_true(n >= 30);
}

/* The real station mail, IMS text taken as it stands in the file. */
static void
t_corpus_station(void **state)
{
	char	 dir[1024], path[2048];
	size_t	 len, i;
	char	*text;
	Vmingest__Record *r;
	Vmingest__ImsMessage *m;
	Vmingest__ImsSection *s;
	static const char *chans[] = { "HHZ", "HHN", "HHE" };

	if (corpus_dir(dir, sizeof(dir)) == NULL) {
		print_message("SKIP: IMS corpus %s not found\n", dir);
		skip();
	}
	snprintf(path, sizeof(path), "%s/station-AS036-signed-waveform.eml",
	    dir);
	text = slurp(path, &len);
	assert_non_null(text);
	r = record_new();
	/* the MIME tree normalize would give it (hand-built until it does) */
	rec_push(&r->parts, &r->n_parts, mkpart("1", "multipart/signed", 0,
	    "application/x-pkcs7-signature"));
	rec_push(&r->parts, &r->n_parts, mkpart("1.1", "text/plain", 1, ""));
	rec_push(&r->parts, &r->n_parts, mkpart("1.2",
	    "application/x-pkcs7-signature", 1, ""));
	ims_parse_part(&L, r, "1.1", text, len);
	ims_finish(&L, r);
	assert_int_equal(r->n_ims, 1);
	m = r->ims[0];
	assert_string_equal(m->version, "IMS1.0");
	assert_string_equal(m->msg_type, "DATA");
	assert_string_equal(m->msg_id, "IMS_SSI");
	assert_string_equal(m->source, "200703220047210000");
	assert_non_null(m->ref_id);
	assert_string_equal(m->ref_id->id, "20182949");
	assert_string_equal(m->ref_id->source, "CTBT_IDC");
	assert_true(m->complete);
	assert_int_equal(m->n_sections, 1);
	s = m->sections[0];
	assert_string_equal(s->data_type, "WAVEFORM");
	assert_string_equal(s->format, "IMS1.0");
	assert_string_equal(s->sub_format, "CM6");
	assert_int_equal(s->n_stations, 1);
	assert_string_equal(s->stations[0], "IDI");
	assert_int_equal(s->n_channels, 3);
	for (i = 0; i < 3; i++)
		assert_string_equal(s->channels[i], chans[i]);
	/* 2007/03/21 22:23:00.004, 110400 samples at 80 Hz */
	assert_int_equal(s->start_unix, 1174515780);
	assert_int_equal(s->end_unix, 1174515780 + 1380);
	assert_memory_equal(text + s->offset, "DATA_TYPE WAVEFORM", 18);
	assert_memory_equal(text + s->offset + s->length, "STOP", 4);
	assert_true(m->smime_signed);
	assert_string_equal(m->smime_protocol, "application/x-pkcs7-signature");
	/* the one deviation: the swapped MSG_ID fields */
	assert_int_equal(m->n_warnings, 1);
	assert_true(has_warning(m, "MSG_ID source is 18 characters"));
	record_free(r);
	free(text);
}

/* The same mail through normalize_message (GMime): MIME tree, decoding. */
static void
t_corpus_station_normalize(void **state)
{
	char	 dir[1024], path[2048], topic[64];
	size_t	 len;
	char	*raw;
	Vmingest__Record *r;
	Vmingest__ImsMessage *m;
	Vmingest__ImsSection *s;

	if (corpus_dir(dir, sizeof(dir)) == NULL) {
		print_message("SKIP: IMS corpus %s not found\n", dir);
		skip();
	}
	snprintf(path, sizeof(path), "%s/station-AS036-signed-waveform.eml",
	    dir);
	raw = slurp(path, &len);
	assert_non_null(raw);
	normalize_init();
	r = record_new();
	assert_int_equal(normalize_message(&L, raw, len, r), 0);
	assert_int_equal(r->n_ims, 1);
	m = r->ims[0];
	assert_string_equal(m->version, "IMS1.0");
	assert_string_equal(m->msg_type, "DATA");
	assert_string_equal(m->ref_id->id, "20182949");
	assert_true(m->complete);
	assert_int_equal(m->index, 1);
	assert_int_equal(m->count, 1);
	assert_true(m->smime_signed);
	assert_string_equal(m->smime_protocol, "application/x-pkcs7-signature");
	assert_int_equal(m->n_sections, 1);
	s = m->sections[0];
	assert_int_equal(s->n_channels, 3);
	assert_string_equal(s->stations[0], "IDI");
	assert_int_equal(s->start_unix, 1174515780);
	assert_int_equal(s->end_unix, 1174515780 + 1380);
	/* the message lies in the first part of the multipart/signed */
	assert_string_equal(m->part_path, "1");
	assert_string_equal(s->part_path, "1");
	assert_int_equal(ims_topic(r, topic, sizeof(topic)), 0);
	assert_string_equal(topic, "ims.data.waveform");
	record_free(r);
	free(raw);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_envelope),
		cmocka_unit_test(t_lexical),
		cmocka_unit_test(t_continuation_and_comments),
		cmocka_unit_test(t_several_messages),
		cmocka_unit_test(t_missing_stop),
		cmocka_unit_test(t_no_ims),
		cmocka_unit_test(t_begin_bad_version),
		cmocka_unit_test(t_log_echo),
		cmocka_unit_test(t_grammar_warnings),
		cmocka_unit_test(t_envelope_order),
		cmocka_unit_test(t_dates),
		cmocka_unit_test(t_section_offsets),
		cmocka_unit_test(t_wid2),
		cmocka_unit_test(t_phd),
		cmocka_unit_test(t_request_environment),
		cmocka_unit_test(t_help),
		cmocka_unit_test(t_topic),
		cmocka_unit_test(t_limits),
		cmocka_unit_test(t_smime),
		cmocka_unit_test(t_bounce),
		cmocka_unit_test(t_golden),
		cmocka_unit_test(t_corpus_all),
		cmocka_unit_test(t_corpus_requests),
		cmocka_unit_test(t_corpus_station),
		cmocka_unit_test(t_corpus_station_normalize),
	};

	limits_default(&L);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
