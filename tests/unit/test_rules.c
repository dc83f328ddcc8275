/*
 * test_rules.c - unit tests of the Sieve engine (lib/rules.c, lib/sieve_*.c).
 *
 * Table-driven: each case is a script, a message and the expected result
 * (topics in order, keep, discard, or a runtime error); each compile error
 * case is a script and the exact "name:line:column: text" expected.  IMS
 * cases build the record by hand (the IMS parser is tested elsewhere).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "record.h"
#include "rules.h"

static const char MSG1[] =
    "Return-Path: <sender@idc.example>\r\n"
    "Delivered-To: rn@vm.example\r\n"
    "From: \"Alice Q\" <alice@Example.COM>\r\n"
    "To: bob@vm.example, \"Carol\" <carol@other.example>\r\n"
    "Cc: undisclosed-recipients:;\r\n"
    "Subject: =?UTF-8?B?UmU6IHBoZCByZXBvcnQ=?=\r\n"
    "X-Num: 42\r\n"
    "X-Multi: one\r\n"
    "X-Multi: two\r\n"
    "X-Folded: first\r\n"
    "  second\r\n"
    "List-Id: Mailing list <ietf-mta-filters@imc.org>\r\n"
    "Sender: owner-ietf-mtgs@ietf.org\r\n"
    "Date: Mon, 1 Dec 2026 10:00:00 +0000\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Hello world, this is the body.\r\n"
    "Station ARCES reporting.\r\n";

static const char MSG_MIME[] =
    "From: a@b.example\n"
    "Subject: mime\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"XX\"\n"
    "\n"
    "preamble\n"
    "--XX\n"
    "Content-Type: text/plain; charset=iso-8859-1\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "caf=E9 au lait\n"
    "--XX\n"
    "Content-Type: application/octet-stream\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "c2VjcmV0IGJpbmFyeQ==\n"
    "--XX--\n";

struct ecase {
	const char *name;
	const char *script;
	const char *msg;	/* NULL: MSG1 */
	const char *topics;	/* comma-joined, in order */
	int	 keep;
	int	 discard;
	const char *error;	/* substring of out->error, or NULL */
};

static Vmingest__RuleResult *
run(const char *script, const char *msg, const Vmingest__Record *rec,
    const struct rules_limits *lim, int *rc)
{
	char	 err[1024];
	struct rules *r;
	Vmingest__RuleResult *out;

	r = rules_compile_buf("t", script, strlen(script), lim, err, sizeof(err));
	if (r == NULL)
		fail_msg("compile failed: %s\n--- script:\n%s", err, script);
	out = malloc(sizeof(*out));
	assert_non_null(out);
	vmingest__rule_result__init(out);
	*rc = rules_eval(r, rec, msg, strlen(msg), out);
	rules_free(r);
	return out;
}

static void
join(char *buf, size_t len, char **v, size_t n)
{
	size_t	 i;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i)
			strncat(buf, ",", len - strlen(buf) - 1);
		strncat(buf, v[i], len - strlen(buf) - 1);
	}
}

static void
check_case(const struct ecase *c, const Vmingest__Record *rec)
{
	Vmingest__RuleResult *out;
	char	 got[1024];
	int	 rc;

	out = run(c->script, c->msg ? c->msg : MSG1, rec, NULL, &rc);
	join(got, sizeof(got), out->topics, out->n_topics);
	if (c->error != NULL) {
		if (rc != -1 || out->error == NULL || strstr(out->error, c->error) == NULL)
			fail_msg("%s: expected error '%s', got rc %d '%s'", c->name,
			    c->error, rc, out->error ? out->error : "");
		assert_int_equal(out->keep, 1);
		assert_int_equal(out->n_topics, 0);
	} else {
		if (rc != 0)
			fail_msg("%s: rc %d error '%s'", c->name, rc, out->error);
		if (strcmp(got, c->topics) != 0 || out->keep != (protobuf_c_boolean)c->keep ||
		    out->discard != (protobuf_c_boolean)c->discard)
			fail_msg("%s: topics '%s' keep %d discard %d, expected '%s' "
			    "keep %d discard %d", c->name, got, out->keep,
			    out->discard, c->topics, c->keep, c->discard);
	}
	vmingest__rule_result__free_unpacked(out, NULL);
}

#define RQ "require [\"fileinto\", \"copy\", \"envelope\", \"regex\", " \
	"\"variables\", \"body\", \"relational\", \"comparator-i;ascii-numeric\"];\n"

static const struct ecase cases[] = {
	/* commands and implicit keep (RFC 5228 2.10.2, 4) */
	{ "empty", "", NULL, "", 1, 0, NULL },
	{ "comments only", "# hash\n/* bracket\n comment */\n", NULL, "", 1, 0, NULL },
	{ "keep", "keep;", NULL, "", 1, 0, NULL },
	{ "discard", "discard;", NULL, "", 0, 1, NULL },
	{ "discard then keep", "discard; keep;", NULL, "", 1, 0, NULL },
	{ "fileinto cancels keep", RQ "fileinto \"rn.phd\";", NULL, "rn.phd", 0, 0, NULL },
	{ "fileinto :copy keeps", RQ "fileinto :copy \"rn.phd\";", NULL, "rn.phd", 1, 0, NULL },
	{ "fileinto twice once", RQ "fileinto \"a\"; fileinto \"a\"; fileinto \"b\";",
	  NULL, "a,b", 0, 0, NULL },
	{ "duplicate fileinto ignored", RQ "fileinto :copy \"a\"; fileinto \"a\";",
	  NULL, "a", 1, 0, NULL },
	{ "fileinto and keep", RQ "fileinto \"a\"; keep;", NULL, "a", 1, 0, NULL },
	{ "discard and fileinto", RQ "discard; fileinto \"a\";", NULL, "a", 0, 0, NULL },
	{ "stop", RQ "fileinto \"a\"; stop; fileinto \"b\";", NULL, "a", 0, 0, NULL },
	{ "stop in block", RQ "if true { stop; } fileinto \"b\";", NULL, "", 1, 0, NULL },
	{ "if else", RQ "if false { fileinto \"a\"; } else { fileinto \"b\"; }",
	  NULL, "b", 0, 0, NULL },
	{ "elsif chain", RQ "if false { fileinto \"a\"; } elsif true { fileinto \"b\"; }"
	  " elsif true { fileinto \"c\"; } else { fileinto \"d\"; }", NULL, "b", 0, 0, NULL },
	{ "nested if", RQ "if true { if false { fileinto \"a\"; } else { if true "
	  "{ fileinto \"b\"; } } }", NULL, "b", 0, 0, NULL },
	/* header test, RFC 2047 decoding, unfolding */
	{ "header is decoded", RQ "if header :is \"subject\" \"Re: phd report\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "header default is", RQ "if header \"subject\" \"re: PHD report\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "header contains casemap", RQ "if header :contains \"Subject\" \"PHD\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "header contains octet", RQ "if header :contains :comparator \"i;octet\" "
	  "\"subject\" \"PHD\" { fileinto \"a\"; }", NULL, "", 1, 0, NULL },
	{ "header octet exact", RQ "if header :is :comparator \"i;octet\" "
	  "\"subject\" \"Re: phd report\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "header matches", RQ "if header :matches \"subject\" \"re: *rep?rt\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "header matches no", RQ "if header :matches \"subject\" \"re: ?\" "
	  "{ fileinto \"a\"; }", NULL, "", 1, 0, NULL },
	{ "header matches escape", RQ "if header :matches \"x-num\" \"4\\\\*\" "
	  "{ fileinto \"a\"; }", NULL, "", 1, 0, NULL },
	{ "header any of several", RQ "if header :is \"x-multi\" \"two\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "header list of names", RQ "if header :is [\"x-none\", \"x-num\"] [\"1\", \"42\"] "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "header missing", RQ "if header :contains \"x-none\" \"\" { fileinto \"a\"; }",
	  NULL, "", 1, 0, NULL },
	{ "header unfolded", RQ "if header :is \"x-folded\" \"first  second\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "header empty key contains", RQ "if header :contains \"subject\" \"\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	/* address test (RFC 5228 5.1) */
	{ "address all", RQ "if address :is \"from\" \"alice@example.com\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "address localpart", RQ "if address :localpart :is \"from\" \"ALICE\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "address domain octet", RQ "if address :domain :comparator \"i;octet\" :is "
	  "\"from\" \"Example.COM\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "address second of list", RQ "if address :domain :is \"to\" \"other.example\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "address display name not matched", RQ "if address :contains \"from\" \"Q\" "
	  "{ fileinto \"a\"; }", NULL, "", 1, 0, NULL },
	{ "address group no list", RQ "if address :all :is \"cc\" "
	  "\"undisclosed-recipients:;\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "address count", RQ "if address :count \"eq\" :comparator \"i;ascii-numeric\" "
	  "[\"to\", \"from\"] \"3\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	/* address lists as Pigeonhole reads them (checked with sieve-test) */
	{ "address invalid: raw for :all", RQ "if address :all :is \"to\" \"Big Bug bb@bug.com\" "
	  "{ fileinto \"a\"; }", "To: Big Bug bb@bug.com\n\nb\n", "a", 0, 0, NULL },
	{ "address invalid: no :domain", RQ "if address :domain :contains \"to\" \"\" "
	  "{ fileinto \"a\"; }", "To: Big Bug bb@bug.com\n\nb\n", "", 1, 0, NULL },
	{ "address list ends at junk", RQ "if address :count \"eq\" :comparator "
	  "\"i;ascii-numeric\" \"to\" \"1\" { fileinto \"a\"; }",
	  "To: a@b.c, localpart, d@e.f\n\nb\n", "a", 0, 0, NULL },
	{ "address then text", RQ "if address :is \"to\" \"a@b.c\" { fileinto \"a\"; }",
	  "To: a@b.c d@e.f\n\nb\n", "a", 0, 0, NULL },
	{ "address @ in display name", RQ "if address :domain :is \"from\" \"x.it\" "
	  "{ fileinto \"a\"; }", "From: j@xyz <j@x.it>\n\nb\n", "", 1, 0, NULL },
	{ "address escaped quote in name", RQ "if address :domain :is \"cc\" \"example.net\" "
	  "{ fileinto \"a\"; }", "Cc: <b@nil.test>, \"Giant; \\\"Big\\\" Box\" "
	  "<s@example.net>\n\nb\n", "a", 0, 0, NULL },
	{ "address group", RQ "if address :count \"eq\" :comparator \"i;ascii-numeric\" "
	  "\"to\" \"3\" { fileinto \"a\"; }", "To: grp: a@b.c, d@e.f;, g@h.i\n\nb\n",
	  "a", 0, 0, NULL },
	{ "address source route", RQ "if address :is \"to\" \"a@b.c\" { fileinto \"a\"; }",
	  "To: <@r1,@r2:a@b.c>\n\nb\n", "a", 0, 0, NULL },
	{ "address quoted localpart", RQ "if address :localpart :is \"to\" \"q u\" "
	  "{ fileinto \"a\"; }", "To: \"q u\"@x.y\n\nb\n", "a", 0, 0, NULL },
	{ "address comments", RQ "if address :is \"to\" \"d@e.f\" { fileinto \"a\"; }",
	  "To: Name <a@b.c>, (c) d@e.f (x)\n\nb\n", "a", 0, 0, NULL },
	{ "address unclosed angle", RQ "if address :domain :is \"to\" \"b.c\" "
	  "{ fileinto \"a\"; }", "To: A <a@b.c\n\nb\n", "", 1, 0, NULL },
	/* RFC 2047 */
	{ "2047 q", RQ "if header :is \"subject\" \"caf\xc3\xa9 au lait\" { fileinto \"a\"; }",
	  "Subject: =?iso-8859-1?q?caf=E9_au?= lait\n\nb\n", "a", 0, 0, NULL },
	{ "2047 adjacent words", RQ "if header :is \"subject\" \"MySurvey.com: Y\" "
	  "{ fileinto \"a\"; }", "Subject: =?UTF-8?B?TXlTdXJ2ZXk=?=\n =?UTF-8?B?LmNvbTogWQ==?=\n\nb\n",
	  "a", 0, 0, NULL },
	{ "2047 text between words kept", RQ "if header :is \"subject\" \"a x b\" "
	  "{ fileinto \"a\"; }", "Subject: =?us-ascii?q?a?= x =?us-ascii?q?b?=\n\nb\n",
	  "a", 0, 0, NULL },
	{ "2047 unknown charset keeps bytes", RQ "if header :is \"subject\" \"abc\" "
	  "{ fileinto \"a\"; }", "Subject: =?x-nonesuch?q?abc?=\n\nb\n", "a", 0, 0, NULL },
	{ "2047 not a word", RQ "if header :is \"subject\" \"=?broken\" { fileinto \"a\"; }",
	  "Subject: =?broken\n\nb\n", "a", 0, 0, NULL },
	{ "empty first line keeps blanks", RQ "if header :is \"date\" \"   <HR>\" "
	  "{ fileinto \"a\"; }", "Date: \r\n   <HR>\r\n\r\nb\r\n", "a", 0, 0, NULL },
	{ "unknown CTE is opaque", RQ "if body :text :contains \"hello\" { fileinto \"a\"; }",
	  "Content-Type: text/plain\nContent-Transfer-Encoding: 7-bit\n\nhello\n", "", 1, 0, NULL },
	/* envelope (RFC 5228 5.4) from the raw Return-Path / Delivered-To */
	{ "envelope from", RQ "if envelope :all :is \"from\" \"sender@idc.example\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "envelope to domain", RQ "if envelope :domain :is \"to\" \"vm.example\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "envelope localpart", RQ "if envelope :localpart :matches \"to\" \"r?\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "envelope null sender", RQ "if envelope :is \"from\" \"\" { fileinto \"a\"; }",
	  "Return-Path: <>\nFrom: x@y.z\n\nb\n", "a", 0, 0, NULL },
	{ "envelope none", RQ "if envelope :contains \"to\" \"\" { fileinto \"a\"; }",
	  "From: x@y.z\n\nb\n", "", 1, 0, NULL },
	{ "envelope x-original-to", RQ "if envelope :is \"to\" \"o@vm.example\" "
	  "{ fileinto \"a\"; }", "X-Original-To: o@vm.example\n\nb\n", "a", 0, 0, NULL },
	/* exists, size, boolean tests */
	{ "exists all", RQ "if exists [\"from\", \"SUBJECT\"] { fileinto \"a\"; }",
	  NULL, "a", 0, 0, NULL },
	{ "exists one missing", RQ "if exists [\"from\", \"x-none\"] { fileinto \"a\"; }",
	  NULL, "", 1, 0, NULL },
	{ "size over", RQ "if size :over 100 { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "size under", RQ "if size :under 100 { fileinto \"a\"; }", NULL, "", 1, 0, NULL },
	{ "size K", RQ "if size :under 1K { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "size exact not over", RQ "if size :over 10 { fileinto \"a\"; }",
	  "A: bc\n\n12\n", "", 1, 0, NULL },
	{ "size exact not under", RQ "if size :under 10 { fileinto \"a\"; }",
	  "A: bc\n\n12\n", "", 1, 0, NULL },
	{ "not", RQ "if not false { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "allof", RQ "if allof (true, exists \"from\", not false) { fileinto \"a\"; }",
	  NULL, "a", 0, 0, NULL },
	{ "allof false", RQ "if allof (true, false) { fileinto \"a\"; }", NULL, "", 1, 0, NULL },
	{ "anyof", RQ "if anyof (false, header :is \"x-num\" \"42\") { fileinto \"a\"; }",
	  NULL, "a", 0, 0, NULL },
	{ "anyof empty-ish", RQ "if anyof (false, false) { fileinto \"a\"; }",
	  NULL, "", 1, 0, NULL },
	/* comparators: i;ascii-numeric (RFC 4790 9.1) and relational (RFC 5231) */
	{ "numeric is", RQ "if header :is :comparator \"i;ascii-numeric\" \"x-num\" \"042\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "numeric value gt", RQ "if header :value \"gt\" :comparator \"i;ascii-numeric\" "
	  "\"x-num\" \"9\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "casemap value gt", RQ "if header :value \"gt\" \"x-num\" \"9\" { fileinto \"a\"; }",
	  NULL, "", 1, 0, NULL },
	{ "numeric non-digit is infinity", RQ "if header :value \"gt\" :comparator "
	  "\"i;ascii-numeric\" \"subject\" \"99999999999999999999\" { fileinto \"a\"; }",
	  NULL, "a", 0, 0, NULL },
	{ "value le", RQ "if header :value \"le\" \"subject\" \"s\" { fileinto \"a\"; }",
	  NULL, "a", 0, 0, NULL },
	{ "value ne", RQ "if header :value \"ne\" \"x-num\" \"42\" { fileinto \"a\"; }",
	  NULL, "", 1, 0, NULL },
	{ "count eq", RQ "if header :count \"eq\" :comparator \"i;ascii-numeric\" "
	  "\"x-multi\" \"2\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "count ge missing", RQ "if header :count \"ge\" :comparator \"i;ascii-numeric\" "
	  "\"x-none\" \"1\" { fileinto \"a\"; }", NULL, "", 1, 0, NULL },
	{ "count lt zero", RQ "if header :count \"lt\" :comparator \"i;ascii-numeric\" "
	  "\"x-none\" \"1\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	/* regex */
	{ "regex", RQ "if header :regex \"subject\" \"^re: (p..) \" { fileinto \"a\"; }",
	  NULL, "a", 0, 0, NULL },
	{ "regex capture", RQ "if header :regex \"subject\" \"^re: ([a-z]+) \" "
	  "{ fileinto \"t.${1}\"; }", NULL, "t.phd", 0, 0, NULL },
	{ "regex octet case", RQ "if header :regex :comparator \"i;octet\" \"subject\" \"PHD\" "
	  "{ fileinto \"a\"; }", NULL, "", 1, 0, NULL },
	{ "regex runtime key", RQ "set \"p\" \"^[0-9]+$\"; if header :regex \"x-num\" \"${p}\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "regex runtime bad", RQ "set \"p\" \"(\"; if header :regex \"x-num\" \"${p}\" "
	  "{ fileinto \"a\"; }", NULL, NULL, 1, 0, "bad regex" },
	/* variables (RFC 5229) */
	{ "set and use", RQ "set \"t\" \"rn\"; fileinto \"${t}.phd\";", NULL, "rn.phd", 0, 0, NULL },
	{ "names case-insensitive", RQ "set \"T\" \"rn\"; fileinto \"${t}.x\";", NULL, "rn.x", 0, 0, NULL },
	{ "unset is empty", RQ "fileinto \"a${nothing}b\";", NULL, "ab", 0, 0, NULL },
	{ "not a reference 2", RQ "set \"v\" \"a${-x}${\";  if string :is \"${v}\" "
	  "\"A${-X}${\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "match vars", RQ "if header :matches \"list-id\" \"*<*@*\" "
	  "{ fileinto \"lists.${2}\"; stop; }", NULL, "lists.ietf-mta-filters", 0, 0, NULL },
	{ "match var 0", RQ "if header :matches \"x-num\" \"4*\" { set \"v\" \"${0}${1}\"; }"
	  " if string :is \"${v}\" \"422\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "match vars kept on failure", RQ "if header :matches \"x-num\" \"*2\" {} "
	  "if header :matches \"x-num\" \"nope*\" {} fileinto \"n${1}\";", NULL, "n4", 0, 0, NULL },
	{ "set lower", RQ "set :lower \"v\" \"AbC\"; if string :is :comparator \"i;octet\" "
	  "\"${v}\" \"abc\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "set upper", RQ "set :upper \"v\" \"AbC\"; if string :is :comparator \"i;octet\" "
	  "\"${v}\" \"ABC\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "set upperfirst lower", RQ "set :upperfirst :lower \"v\" \"juMBlEd lETteRS\"; "
	  "if string :is :comparator \"i;octet\" \"${v}\" \"Jumbled letters\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "set lowerfirst", RQ "set :lowerfirst \"v\" \"ABC\"; if string :is :comparator "
	  "\"i;octet\" \"${v}\" \"aBC\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "set length", RQ "set :length \"v\" \"juMBlEd lETteRS\"; if string :is \"${v}\" "
	  "\"15\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "set quotewildcard", RQ "set :quotewildcard \"v\" \"Rock*\"; if string :is "
	  "\"${v}\" \"Rock\\\\*\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "string matches", RQ "set \"v\" \"a.b\"; if string :matches \"${v}\" \"*.*\" "
	  "{ fileinto \"${2}\"; }", NULL, "b", 0, 0, NULL },
	{ "string count nonempty", RQ "if string :count \"eq\" :comparator "
	  "\"i;ascii-numeric\" [\"\", \"x\", \"\"] \"1\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "runtime invalid topic", RQ "set \"t\" \"Bad Topic\"; fileinto \"${t}\";",
	  NULL, NULL, 1, 0, "is not a valid topic" },
	/* body (RFC 5173) */
	{ "body raw", RQ "if body :raw :contains \"ARCES\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "body default text", RQ "if body :contains \"hello world\" { fileinto \"a\"; }",
	  NULL, "a", 0, 0, NULL },
	{ "body text decoded", RQ "if body :text :contains \"caf\xc3\xa9\" { fileinto \"a\"; }",
	  MSG_MIME, "a", 0, 0, NULL },
	{ "body raw not decoded", RQ "if body :raw :contains \"caf\xc3\xa9\" { fileinto \"a\"; }",
	  MSG_MIME, "", 1, 0, NULL },
	{ "body text skips binary", RQ "if body :text :contains \"secret\" { fileinto \"a\"; }",
	  MSG_MIME, "", 1, 0, NULL },
	{ "body content type", RQ "if body :content \"application/octet-stream\" "
	  ":contains \"secret binary\" { fileinto \"a\"; }", MSG_MIME, "a", 0, 0, NULL },
	{ "body content major", RQ "if body :content \"text\" :contains \"lait\" "
	  "{ fileinto \"a\"; }", MSG_MIME, "a", 0, 0, NULL },
	{ "body content none", RQ "if body :content \"image\" :contains \"\" "
	  "{ fileinto \"a\"; }", MSG_MIME, "", 1, 0, NULL },
	/* strings */
	{ "multi-line string", RQ "if header :is \"x-num\" text:\n42\n.\n { fileinto \"a\"; }",
	  NULL, "", 1, 0, NULL },
	{ "multi-line dot-stuffed", RQ "if body :raw :contains text: # c\n..x\n.\n "
	  "{ fileinto \"a\"; }", "A: b\r\n\r\n.x\r\n", "a", 0, 0, NULL },
	{ "escapes", RQ "if header :is \"x-q\" \"a\\\"b\\\\c\" { fileinto \"a\"; }",
	  "X-Q: a\"b\\c\n\nx\n", "a", 0, 0, NULL },
	/* RFC 5228 section 9 style example, topics instead of folders */
	{ "rfc5228 example", "require \"fileinto\";\n"
	  "if header :is \"Sender\" \"owner-ietf-mtgs@ietf.org\" {\n"
	  "    fileinto \"meetings\";\n"
	  "    if header :contains \"subject\" \"phd\" { keep; }\n"
	  "} elsif address :domain :is [\"From\", \"To\"] \"example.com\" {\n"
	  "    keep;\n"
	  "} elsif anyof (not address :all :contains [\"To\", \"Cc\", \"Bcc\"] "
	  "\"me@example.com\", header :matches \"subject\" "
	  "[\"*make*money*fast*\", \"*university*dipl*mas*\"]) {\n"
	  "    fileinto \"spam\";\n"
	  "} else {\n"
	  "    fileinto \"personal\";\n"
	  "}\n", NULL, "meetings", 1, 0, NULL },
	/* limits at run time */
	{ "actions limit", RQ "if true { fileinto \"a\"; fileinto \"b\"; fileinto \"c\"; "
	  "keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; "
	  "keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; "
	  "keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; "
	  "keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; "
	  "keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; keep; }",
	  NULL, NULL, 1, 0, "actions limit" },
};

static void
test_cases(void **state)
{
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i], NULL);
}

/* ---- compile errors: exact position and text ---- */

struct errcase {
	const char *script;
	const char *err;	/* expected prefix of the error */
};

static const struct errcase errcases[] = {
	{ "foo;", "t:1:1: unknown command 'foo'" },
	{ "keep", "t:1:5: expected ';' after keep, found end of script" },
	{ "keep;\n  fileinto \"a\";", "t:2:3: fileinto needs require \"fileinto\"" },
	{ "require \"vacation\";", "t:1:9: require: unsupported extension 'vacation': "
	  "mail leaves this system only as published records" },
	{ "require \"imap4flags\";", "t:1:9: require: unsupported extension 'imap4flags'" },
	{ "redirect \"a@b.c\";", "t:1:1: 'redirect' is not supported" },
	{ "reject \"no\";", "t:1:1: 'reject' is not supported" },
	{ "keep;\nrequire \"fileinto\";", "t:2:1: require must come before any other command" },
	{ "require \"fileinto\";\nfileinto \"INBOX\";", "t:2:1: fileinto: \"INBOX\" is not "
	  "a valid topic" },
	{ "require \"fileinto\"; fileinto \"a..b\";", "t:1:21: fileinto: \"a..b\" is not" },
	{ "keep;\n\"abc", "t:2:1: unterminated string" },
	{ "keep; /* x", "t:1:7: unterminated comment" },
	{ "if header :is \"a\" text:\nabc\n", "t:1:19: unterminated multi-line string" },
	{ "if header :is \"a\" text: x\nabc\n.\n", "t:1:25: expected end of line after 'text:'" },
	{ "require \"regex\";\nif header :regex \"s\" \"(\" {}", "t:2:4: bad regex \"(\"" },
	{ "require \"regex\";\nif header :regex \"s\" \"(a)\\\\1\" {}", "t:2:4: bad regex" },
	{ "if header :regex \"s\" \"a\" {}", "t:1:11: :regex needs require \"regex\"" },
	{ "require \"comparator-i;ascii-numeric\";\nif header :contains :comparator "
	  "\"i;ascii-numeric\" \"s\" \"1\" {}", "t:2:4: header: comparator 'i;ascii-numeric' "
	  "does not support" },
	{ "if header :comparator \"i;ascii-numeric\" \"s\" \"1\" {}", "t:1:11: comparator "
	  "'i;ascii-numeric' needs require" },
	{ "if header :comparator \"i;foo\" \"s\" \"1\" {}", "t:1:11: unknown comparator 'i;foo'" },
	{ "if header :is :contains \"s\" \"1\" {}", "t:1:15: header: more than one match type" },
	{ "if header :value \"gt\" \"s\" \"1\" {}", "t:1:11: :value needs require \"relational\"" },
	{ "require \"relational\"; if header :value \"xx\" \"s\" \"1\" {}", "t:1:33: unknown "
	  "relational operator 'xx'" },
	{ "if header :foo \"s\" \"1\" {}", "t:1:11: header: unknown or misplaced tag ':foo'" },
	{ "if header \"s\" {}", "t:1:4: header: needs 2 string arguments, got 1" },
	{ "if header \"s\" \"a\" \"b\" {}", "t:1:19: header: unexpected string argument" },
	{ "if header \"bad name\" \"a\" {}", "t:1:4: header: invalid header name 'bad name'" },
	{ "if frobnicate {}", "t:1:4: unknown test 'frobnicate'" },
	{ "if true keep;", "t:1:9: expected '{' to open a block" },
	{ "if true { keep;", "t:1:16: expected '}' to close a block" },
	{ "elsif true {}", "t:1:1: 'elsif' without a preceding 'if'" },
	{ "else {}", "t:1:1: 'else' without a preceding 'if'" },
	{ "if allof (true false) {}", "t:1:16: expected ',' or ')' in test list" },
	{ "if not {}", "t:1:8: expected a test, found '{'" },
	{ "if size 5 {}", "t:1:9: size: expected :over or :under and then a number" },
	{ "if size :over {}", "t:1:4: size: needs :over or :under and a number" },
	{ "if size :over 99999999999999999999999 {}", "t:1:15: number too large" },
	{ "if envelope \"from\" \"a\" {}", "t:1:4: envelope needs require \"envelope\"" },
	{ "require \"envelope\"; if envelope \"auth\" \"a\" {}", "t:1:24: envelope: unknown "
	  "envelope part 'auth'" },
	{ "if body :contains \"a\" {}", "t:1:4: body needs require \"body\"" },
	{ "require \"body\"; if body :content :contains \"a\" {}", "t:1:25: :content needs "
	  "a string list" },
	{ "set \"a\" \"b\";", "t:1:1: set needs require \"variables\"" },
	{ "require \"variables\"; set \"1a\" \"b\";", "t:1:26: set: invalid variable name '1a'" },
	{ "require \"variables\"; set :lower :upper \"a\" \"b\";", "t:1:22: set: :lower and "
	  ":upper together" },
	{ "require \"variables\"; set :foo \"a\" \"b\";", "t:1:26: set: unknown or repeated "
	  "modifier ':foo'" },
	{ "require \"variables\"; set \"a\";", "t:1:22: set: needs a name and a value" },
	{ "require \"variables\"; set \"a\" \"${env.x}\";", "t:1:30: variable namespace in "
	  "'${env.x}' is not supported" },
	{ "require \"fileinto\"; fileinto :flags \"a\";", "t:1:30: fileinto: unknown tag ':flags'" },
	{ "require \"fileinto\"; fileinto :copy \"a\";", "t:1:30: :copy needs require \"copy\"" },
	{ "ims \"a\";", "t:1:1: unknown command 'ims'" },
	{ "if ims \"msg_type\" \"a\" {}", "t:1:4: ims needs require \"vnd.vmingest\"" },
	{ "require \"vnd.vmingest\"; if ims \"nope\" \"a\" {}", "t:1:28: ims: unknown field 'nope'" },
	{ "quarantine \"x\";", "t:1:1: quarantine needs require \"vnd.vmingest\"" },
	{ "require \"vnd.vmingest\"; label;", "t:1:25: label: missing string argument" },
	{ "keep; }", "t:1:7: unexpected '}'" },
	{ "keep; @", "t:1:7: unexpected character '@'" },
	{ "stop 1;", "t:1:6: stop takes no arguments" },
	{ "if header :is [\"a\" \"b\"] \"c\" {}", "t:1:20: expected ',' or ']' in string list" },
	{ "keep;\0", "t:1:6: NUL byte in script" },
};

static void
test_compile_errors(void **state)
{
	size_t	 i;
	char	 err[1024];

	for (i = 0; i < sizeof(errcases) / sizeof(errcases[0]); i++) {
		const struct errcase *c = &errcases[i];
		size_t	 len = strlen(c->script);
		struct rules *r;

		if (strcmp(c->script, "keep;") == 0)
			len = 6;	/* the NUL case */
		err[0] = '\0';
		r = rules_compile_buf("t", c->script, len, NULL, err, sizeof(err));
		if (r != NULL) {
			rules_free(r);
			fail_msg("compiled but should not: %s", c->script);
		}
		if (strncmp(err, c->err, strlen(c->err)) != 0)
			fail_msg("script: %s\n  expected: %s\n  got:      %s", c->script,
			    c->err, err);
	}
}

static void
test_limits_compile(void **state)
{
	struct rules_limits lim;
	char	 err[512], big[4096];
	struct rules *r;
	size_t	 i;

	rules_limits_default(&lim);
	lim.nesting = 2;
	r = rules_compile_buf("t", "if true { if true { if true { keep; } } }", 41,
	    &lim, err, sizeof(err));
	assert_null(r);
	assert_string_equal(err, "t:1:24: tests nested deeper than nesting limit 2");
	r = rules_compile_buf("t", "if true { if true { keep; } }", 29, &lim, err, sizeof(err));
	assert_non_null(r);
	rules_free(r);
	r = rules_compile_buf("t", "if not not not true {}", 22, &lim, err, sizeof(err));
	assert_null(r);
	assert_non_null(strstr(err, "tests nested deeper than nesting limit 2"));

	rules_limits_default(&lim);
	lim.script_bytes = 10;
	r = rules_compile_buf("t", "keep; keep; keep;", 17, &lim, err, sizeof(err));
	assert_null(r);
	assert_string_equal(err, "t:1:1: script is 17 bytes, over script_bytes limit 10");

	rules_limits_default(&lim);
	lim.string_bytes = 8;
	r = rules_compile_buf("t", "if header :is \"a\" \"123456789\" {}", 32, &lim, err,
	    sizeof(err));
	assert_null(r);
	assert_string_equal(err, "t:1:19: string longer than string_bytes limit 8");

	rules_limits_default(&lim);
	lim.regex_bytes = 4;
	r = rules_compile_buf("t", "require \"regex\"; if header :regex \"a\" \"abcdef\" {}",
	    49, &lim, err, sizeof(err));
	assert_null(r);
	assert_non_null(strstr(err, "over regex_bytes limit 4"));

	/* a repetition bound that would make regcomp/regexec costly */
	r = rules_compile_buf("t", "require \"regex\"; if header :regex \"a\" \"(a{1,999})\" {}",
	    53, NULL, err, sizeof(err));
	assert_null(r);
	assert_non_null(strstr(err, "repetition bound over 255"));

	/* many rules are fine */
	for (i = 0; i + 40 < sizeof(big); i += 32)
		memcpy(big + i, "if header :is \"a\" \"b\" { keep; }\n", 32);
	big[i] = '\0';
	r = rules_compile_buf("t", big, strlen(big), NULL, err, sizeof(err));
	assert_non_null(r);
	rules_free(r);
}

static void
test_limits_runtime(void **state)
{
	struct rules_limits lim;
	Vmingest__RuleResult *out;
	int	 rc;

	rules_limits_default(&lim);
	lim.match_bytes = 16;
	out = run("require \"body\"; if body :raw :contains \"x\" { discard; }", MSG1, NULL,
	    &lim, &rc);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(out->error, "over match_bytes limit 16"));
	assert_int_equal(out->keep, 1);
	assert_int_equal(out->discard, 0);
	assert_int_equal(out->n_actions, 1);
	assert_string_equal(out->actions[0], "keep (error)");
	vmingest__rule_result__free_unpacked(out, NULL);

	rules_limits_default(&lim);
	lim.string_bytes = 10;
	out = run("require [\"variables\", \"fileinto\"]; set \"a\" \"12345678\"; "
	    "set \"b\" \"${a}${a}\"; fileinto \"x\";", MSG1, NULL, &lim, &rc);
	assert_int_equal(rc, -1);
	if (strstr(out->error, "t:1:56: expanded string") == NULL)
		fail_msg("got %s", out->error);
	assert_non_null(strstr(out->error, "t:1:56: expanded string of 16 bytes is over "
	    "string_bytes limit 10"));
	assert_int_equal(out->n_topics, 0);
	vmingest__rule_result__free_unpacked(out, NULL);

	/* :regex subjects have their own, smaller bound */
	out = run("require [\"regex\", \"body\"]; if body :raw :regex \"a.*x\" { discard; }",
	    MSG1, NULL, NULL, &rc);
	assert_int_equal(rc, 0);
	vmingest__rule_result__free_unpacked(out, NULL);
	rules_limits_default(&lim);
	assert_int_equal(lim.regex_subject_bytes, 8192);
	lim.regex_subject_bytes = 20;
	out = run("require [\"regex\", \"body\"]; if body :raw :regex \"a.*x\" { discard; }",
	    MSG1, NULL, &lim, &rc);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(out->error, "over regex_subject_bytes limit 20"));
	assert_int_equal(out->keep, 1);
	vmingest__rule_result__free_unpacked(out, NULL);

	/* a pathological glob stays polynomial: this returns quickly */
	{
		char	 msg[8192 + 64], script[256];
		size_t	 i;

		memcpy(msg, "X-A: ", 5);
		for (i = 5; i < 8192; i++)
			msg[i] = 'a';
		memcpy(msg + i, "\n\nb\n", 5);
		snprintf(script, sizeof(script), "if header :matches \"x-a\" "
		    "\"*a*a*a*a*a*a*a*a*a*a*a*a*b\" { discard; }");
		out = run(script, msg, NULL, NULL, &rc);
		assert_int_equal(rc, 0);
		assert_int_equal(out->discard, 0);
		vmingest__rule_result__free_unpacked(out, NULL);
	}
}

/* A header block over LIMIT_HEADER_BYTES is cut there, not scanned on. */
static void
test_header_limit(void **state)
{
	size_t	 n = 200000, i;
	char	*msg = malloc(n + 64);
	Vmingest__RuleResult *out;
	struct rules_limits lim;
	int	 rc;

	rules_limits_default(&lim);
	lim.string_bytes = 1 << 20;	/* so ${1} may hold the whole value */
	memcpy(msg, "X-Big: a\n", 9);
	for (i = 9; i + 3 <= n; i += 3)
		memcpy(msg + i, " b\n", 3);
	memcpy(msg + i, "\nbody\n", 7);
	out = run("require [\"variables\", \"fileinto\", \"relational\", "
	    "\"comparator-i;ascii-numeric\"];\n"
	    "if header :matches \"x-big\" \"*\" { set :length \"n\" \"${1}\"; }\n"
	    "if string :value \"le\" :comparator \"i;ascii-numeric\" \"${n}\" \"102400\" "
	    "{ fileinto \"cut\"; }\n", msg, NULL, &lim, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(out->n_topics, 1);
	vmingest__rule_result__free_unpacked(out, NULL);
	free(msg);
}

/* ---- actions, fired lines, labels, quarantine ---- */

static void
test_result_fields(void **state)
{
	Vmingest__RuleResult *out;
	int	 rc;

	out = run("require [\"fileinto\", \"copy\", \"vnd.vmingest\"];\n"
	    "fileinto :copy \"rn.phd\";\n"
	    "label \"urgent\";\n"
	    "label \"urgent\";\n"
	    "if true {\n"
	    "  quarantine \"no \\\"station\\\"\";\n"
	    "  quarantine \"second\";\n"
	    "}\n", MSG1, NULL, NULL, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(out->script, "t");
	assert_int_equal(out->n_topics, 1);
	assert_int_equal(out->keep, 0);		/* quarantine cancels implicit keep */
	assert_int_equal(out->quarantine, 1);
	assert_string_equal(out->quarantine_reason, "no \"station\"");
	assert_int_equal(out->n_labels, 1);
	assert_string_equal(out->labels[0], "urgent");
	assert_int_equal(out->n_actions, 5);
	assert_string_equal(out->actions[0], "fileinto :copy \"rn.phd\"");
	assert_string_equal(out->actions[1], "label \"urgent\"");
	assert_string_equal(out->actions[3], "quarantine \"no \\\"station\\\"\"");
	assert_int_equal(out->n_fired_lines, 5);
	assert_int_equal(out->fired_lines[0], 2);
	assert_int_equal(out->fired_lines[3], 6);
	assert_int_equal(out->fired_lines[4], 7);
	vmingest__rule_result__free_unpacked(out, NULL);

	out = run("", MSG1, NULL, NULL, &rc);
	assert_int_equal(out->n_actions, 1);
	assert_string_equal(out->actions[0], "keep (implicit)");
	assert_int_equal(out->n_fired_lines, 0);
	vmingest__rule_result__free_unpacked(out, NULL);
}

/* ---- record fields: envelope, size, IMS ---- */

static Vmingest__ImsMessage *
ims_msg(const char *type, const char *id, const char *dtype, const char *sta)
{
	Vmingest__ImsMessage *m = calloc(1, sizeof(*m));
	Vmingest__ImsSection *s = calloc(1, sizeof(*s));
	Vmingest__ImsRequest *q = calloc(1, sizeof(*q));
	Vmingest__RefId *ref = calloc(1, sizeof(*ref));
	Vmingest__ProdId *prod = calloc(1, sizeof(*prod));

	vmingest__ims_message__init(m);
	vmingest__ims_section__init(s);
	vmingest__ims_request__init(q);
	vmingest__ref_id__init(ref);
	vmingest__prod_id__init(prod);
	m->version = rec_strdup("IMS2.0");
	m->msg_type = rec_strdup(type);
	m->msg_id = rec_strdup(id);
	m->source = rec_strdup("CTBTO_IDC");
	ref->id = rec_strdup("REF1");
	ref->source = rec_strdup("ANY_NDC");
	m->ref_id = ref;
	prod->product = rec_strdup("4711");
	prod->delivery = rec_strdup("12");
	m->prod_id = prod;
	m->return_address = rec_strdup("ops@ndc.example");
	m->return_kind = VMINGEST__RETURN_KIND__EMAIL;
	m->complete = 1;
	s->data_type = rec_strdup(dtype);
	s->subtype = rec_strdup("CTBT");
	s->format = rec_strdup("IMS2.0");
	s->sub_format = rec_strdup("");
	rec_push(&s->stations, &s->n_stations, rec_strdup(sta));
	rec_push(&s->channels, &s->n_channels, rec_strdup("BHZ"));
	rec_push(&m->sections, &m->n_sections, s);
	q->keyword = rec_strdup("WAVEFORM");
	q->format = rec_strdup("CM6");
	rec_push(&m->requests, &m->n_requests, q);
	return m;
}

static const struct ecase ims_cases[] = {
	{ "msg_type", "if ims \"msg_type\" \"DATA\" { fileinto \"ims.data\"; }",
	  NULL, "ims.data", 0, 0, NULL },
	{ "second message", "if ims :is \"msg_id\" \"ID-2\" { fileinto \"a\"; }",
	  NULL, "a", 0, 0, NULL },
	{ "data_type", "if ims \"data_type\" \"waveform\" { fileinto \"a\"; }",
	  NULL, "a", 0, 0, NULL },
	{ "station matches", "if ims :matches \"station\" \"ARC*\" { set :lower \"s\" \"${1}\"; "
	  "fileinto \"s.${s}\"; }",
	  NULL, "s.es", 0, 0, NULL },
	{ "channel", "if ims \"channel\" \"bhz\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "request keyword", "if ims \"request\" \"WAVEFORM\" { fileinto \"a\"; }",
	  NULL, "a", 0, 0, NULL },
	{ "format from request", "if ims \"format\" \"cm6\" { fileinto \"a\"; }",
	  NULL, "a", 0, 0, NULL },
	{ "ref ids", "if allof (ims \"ref_id\" \"REF1\", ims \"ref_source\" \"any_ndc\", "
	  "ims \"prod_id\" \"4711\", ims \"delivery\" \"12\") { fileinto \"a\"; }",
	  NULL, "a", 0, 0, NULL },
	{ "return address", "if allof (ims \"return_kind\" \"EMAIL\", ims :contains "
	  "\"return_address\" \"@ndc\") { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "booleans", "if allof (ims \"help\" \"false\", ims \"complete\" \"true\", "
	  "ims \"smime\" \"false\", ims \"bounce\" \"false\", ims \"version\" \"ims2.0\", "
	  "ims \"source\" \"ctbto_idc\", ims \"subtype\" \"ctbt\") { fileinto \"a\"; }",
	  NULL, "a", 0, 0, NULL },
	{ "count", "if ims :value \"eq\" :comparator \"i;ascii-numeric\" \"count\" \"2\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "count values", "if ims :count \"eq\" :comparator \"i;ascii-numeric\" "
	  "\"msg_type\" \"2\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "empty field no value", "if ims :contains \"sub_format\" \"\" { fileinto \"a\"; }",
	  NULL, "", 1, 0, NULL },
	{ "field from variable", "set \"f\" \"station\"; if ims \"${f}\" \"XYZ\" "
	  "{ fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	{ "quarantine", "if not ims \"msg_type\" \"REQUEST\" { quarantine \"no request\"; }",
	  NULL, "", 0, 0, NULL },
};

static void
test_ims(void **state)
{
	Vmingest__Record *rec = record_new();
	size_t	 i;
	char	 buf[2048];

	rec_push(&rec->ims, &rec->n_ims, ims_msg("DATA", "ID-1", "WAVEFORM", "ARCES"));
	rec_push(&rec->ims, &rec->n_ims, ims_msg("DATA", "ID-2", "STATION", "XYZ"));
	for (i = 0; i < sizeof(ims_cases) / sizeof(ims_cases[0]); i++) {
		struct ecase c = ims_cases[i];

		if (c.topics == NULL)
			continue;
		snprintf(buf, sizeof(buf), "require [\"vnd.vmingest\", \"fileinto\", "
		    "\"variables\", \"relational\", \"comparator-i;ascii-numeric\"];\n%s",
		    c.script);
		c.script = buf;
		check_case(&c, rec);
	}
	record_free(rec);
}

static void
test_ims_none(void **state)
{
	static const struct ecase c[] = {
		{ "no ims: false", "require [\"vnd.vmingest\", \"fileinto\"]; "
		  "if ims :contains \"msg_type\" \"\" { fileinto \"a\"; }", NULL, "", 1, 0, NULL },
		{ "no ims: count 0", "require [\"vnd.vmingest\", \"fileinto\", \"relational\", "
		  "\"comparator-i;ascii-numeric\"]; if ims :count \"eq\" :comparator "
		  "\"i;ascii-numeric\" \"msg_type\" \"0\" { fileinto \"mail.other\"; }",
		  NULL, "mail.other", 0, 0, NULL },
		{ "no ims: count field", "require [\"vnd.vmingest\", \"fileinto\", \"relational\", "
		  "\"comparator-i;ascii-numeric\"]; if ims :value \"eq\" :comparator "
		  "\"i;ascii-numeric\" \"count\" \"0\" { fileinto \"a\"; }", NULL, "a", 0, 0, NULL },
	};
	Vmingest__Record *rec = record_new();
	size_t	 i;

	for (i = 0; i < 3; i++)
		check_case(&c[i], rec);
	check_case(&c[0], NULL);
	record_free(rec);
}

static void
test_record_envelope_and_size(void **state)
{
	Vmingest__Record *rec = record_new();
	Vmingest__RuleResult *out;
	int	 rc;

	rec->return_path = rec_strdup("<rec@from.example>");
	rec->delivered_to = rec_strdup("rec@to.example");
	rec->raw_size = 5000;
	out = run("require [\"envelope\", \"fileinto\"];\n"
	    "if envelope :domain :is \"from\" \"from.example\" { fileinto \"f\"; }\n"
	    "if envelope :domain :is \"to\" \"to.example\" { fileinto \"t\"; }\n"
	    "if size :over 4K { fileinto \"big\"; }\n", MSG1, rec, NULL, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(out->n_topics, 3);
	assert_string_equal(out->topics[0], "f");
	assert_string_equal(out->topics[1], "t");
	assert_string_equal(out->topics[2], "big");
	vmingest__rule_result__free_unpacked(out, NULL);
	record_free(rec);
}

/* ---- trace, files, the shipped example ---- */

struct tr {
	int	 n, trues;
	unsigned lastline;
};

static void
trace_fn(void *arg, unsigned line, unsigned col, const char *test, int result)
{
	struct tr *t = arg;

	t->n++;
	t->trues += result == 1;
	t->lastline = line;
}

static void
test_trace(void **state)
{
	char	 err[256];
	const char *s = "if anyof (false, true) { keep; }\nif header :is \"x\" \"y\" {}";
	struct rules *r = rules_compile_buf("t", s, strlen(s), NULL, err, sizeof(err));
	Vmingest__RuleResult out = VMINGEST__RULE_RESULT__INIT;
	struct tr t = { 0, 0, 0 };

	assert_non_null(r);
	assert_int_equal(rules_eval_trace(r, NULL, MSG1, strlen(MSG1), &out, trace_fn, &t), 0);
	assert_int_equal(t.n, 4);	/* false, true, anyof, header */
	assert_int_equal(t.trues, 2);
	assert_int_equal(t.lastline, 2);
	assert_string_equal(rules_name(r), "t");
	/* free the hand-initialised result's contents */
	{
		Vmingest__RuleResult *h = malloc(sizeof(*h));

		*h = out;
		vmingest__rule_result__free_unpacked(h, NULL);
	}
	rules_free(r);
}

static void
test_files(void **state)
{
	char	 err[1024];
	struct rules *r;

	r = rules_compile(TEST_DATA "/rules/none.sieve", NULL, err, sizeof(err));
	assert_null(r);
	assert_non_null(strstr(err, "none.sieve:0:0: cannot open"));
	r = rules_compile(TEST_DATA "/rules/bad.sieve", NULL, err, sizeof(err));
	assert_null(r);
	assert_string_equal(err, TEST_DATA "/rules/bad.sieve:4:5: unknown command 'filein'");
	r = rules_compile(TEST_DATA "/../../config/rules.sieve", NULL, err, sizeof(err));
	if (r == NULL)
		fail_msg("config/rules.sieve: %s", err);
	rules_free(r);
	rules_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_compile_errors),
		cmocka_unit_test(test_limits_compile),
		cmocka_unit_test(test_limits_runtime),
		cmocka_unit_test(test_header_limit),
		cmocka_unit_test(test_result_fields),
		cmocka_unit_test(test_ims),
		cmocka_unit_test(test_ims_none),
		cmocka_unit_test(test_record_envelope_and_size),
		cmocka_unit_test(test_trace),
		cmocka_unit_test(test_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
