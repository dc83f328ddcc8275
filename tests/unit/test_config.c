/* test_config.c - vmingestd.conf parsing (lib/config.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

static char path[256];

static struct config *
load_text(const char *text, char *err, size_t errlen)
{
	FILE	*f;

	snprintf(path, sizeof(path), "/tmp/vmi-test-config-%d.conf", (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return config_load(path, err, errlen);
}

static void
test_embedded_default(void **state)
{
	char	 err[512];
	struct config *cf = config_load(NULL, err, sizeof(err));

	assert_non_null(cf);
	assert_null(cf->path);
	assert_string_equal(cf->daemon.state_dir, "./var/vmingest");
	assert_string_equal(cf->store.path, "./var/vmingest/store");
	assert_int_equal(cf->n_queues, 1);
	assert_string_equal(cf->queues[0].name, "default");
	assert_string_equal(cf->queues[0].maildir, "./var/maildir");
	assert_string_equal(cf->queues[0].topic, "auto");
	assert_int_equal(cf->store.batch_max, 256);
	assert_int_equal(cf->limits.message_bytes, 50u << 20);
	assert_string_equal(cf->http.listen, "127.0.0.1:8425");
	assert_int_equal(cf->publish.n_endpoints, 1);
	assert_string_equal(cf->publish.endpoints[0], "tcp://127.0.0.1:8426");
	assert_int_equal(cf->daemon.allow_root, 1);
	config_free(cf);
}

static void
test_values(void **state)
{
	char	 err[512];
	struct config *cf = load_text(
	    "; comment\n"
	    "[daemon]\nstate_dir = /srv/vm\nuser = vmingest\n"
	    "[store]\nmap_size = 2G\nbatch_max = 10\n"
	    "[limits]\nheader_count = 50\ntext_bytes = 4K\n"
	    "[publish]\nendpoint = tcp://127.0.0.1:1, ipc:///tmp/x.sock\n"
	    "allow_insecure = yes\n"
	    "[queue rms]\nmaildir = /m/rms\ntopic = rn.phd\nkeep = cur\n"
	    "[queue seismic]\nmaildir = /m/seismic\nrules = /etc/r.sieve\n",
	    err, sizeof(err));

	assert_non_null(cf);
	assert_string_equal(cf->store.path, "/srv/vm/store");
	assert_string_equal(cf->daemon.control_socket, "/srv/vm/control.sock");
	assert_int_equal(cf->store.map_size, (size_t)2 << 30);
	assert_int_equal(cf->store.batch_max, 10);
	assert_int_equal(cf->limits.header_count, 50);
	assert_int_equal(cf->limits.text_bytes, 4096);
	assert_int_equal(cf->publish.n_endpoints, 2);
	assert_string_equal(cf->publish.endpoints[1], "ipc:///tmp/x.sock");
	assert_int_equal(cf->publish.allow_insecure, 1);
	assert_int_equal(cf->daemon.allow_root, 0);
	assert_int_equal(cf->n_queues, 2);
	assert_int_equal(cf->queues[0].keep, CONFIG_KEEP_CUR);
	assert_string_equal(config_queue(cf, "seismic")->rules, "/etc/r.sieve");
	assert_string_equal(config_queue(cf, "seismic")->topic, "auto");
	assert_null(config_queue(cf, "nope"));
	config_free(cf);
	unlink(path);
}

static void
test_errors(void **state)
{
	static const struct { const char *text, *want; } cases[] = {
		{ "[store]\nmap_sise = 1G\n", ":2: [store] map_sise: unknown key" },
		{ "[nosuch]\nx = 1\n", ":2: [nosuch] x: unknown section" },
		{ "[store]\nbatch_max = lots\n", ":2: [store] batch_max: not a number" },
		{ "[store]\n\nbatch_max = 0\n", ":3: [store] batch_max: 0 out of range 1..100000" },
		{ "[store]\nmap_size = 12Q\n", ":2: [store] map_size: not a size" },
		{ "[daemon]\nallow_root = maybe\n", ":2: [daemon] allow_root: not a boolean" },
		{ "[queue a]\nmaildir = /m\ntopic = Bad.Topic\n", ":3: [queue a] topic: \"Bad.Topic\" is not a topic" },
		{ "[queue a]\nmaildir = /m\nkeep = all\n", ":3: [queue a] keep: must be none or cur" },
		{ "[queue a]\nmaildir = /m\n[queue a]\nmaildir = /n\n", ":4: [queue a] maildir: maildir given twice for queue \"a\"" },
		{ "[queue a/b]\nmaildir = /m\n", "must be 1-64 of" },
		{ "[queue a]\ntopic = x\n", "[queue a] maildir: missing" },
		{ "[daemon]\nuser = x\n", "no [queue NAME] section" },
		{ "[publish]\nendpoint = udp://x\n[queue a]\nmaildir=/m\n", "tcp:// or ipc://" },
		{ "[publish]\ncurve_secret_key_file = /k\n[queue a]\nmaildir=/m\n", "go together" },
		{ "[store\nx=1\n", ":1: syntax error" },
		/* two queues draining one Maildir would store each file twice */
		{ "[queue a]\nmaildir = /m\n[queue b]\nmaildir = /m/\n", "queues a and b share maildir" },
		{ "[publish]\nendpoint = \n[queue a]\nmaildir=/m\n", "[publish] endpoint: no endpoint" },
		{ "[publish]\nendpoint = ,\n[queue a]\nmaildir=/m\n", "[publish] endpoint: no endpoint" },
	};
	char	 err[512];
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cf = load_text(cases[i].text, err, sizeof(err));

		if (cf != NULL || strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i,
			    cf ? "(loaded)" : err, cases[i].want);
		/* errors name the file */
		assert_non_null(strstr(err, path));
	}
	unlink(path);
	assert_null(config_load("/nonexistent/vmingestd.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "No such file"));
}

/*
 * inih reads at most INI_MAX_LINE (200) bytes a line and parses the rest
 * as a line of its own: the tail of a long comment became a key.
 */
static void
test_long_line_refused(void **state)
{
	char	 err[512], text[1024], pad[300];
	struct config *cf;

	memset(pad, 'x', 197);
	pad[197] = '\0';
	snprintf(text, sizeof(text), "[store]\n; %sbatch_max = 7\n"
	    "[queue a]\nmaildir = /m\n", pad);
	cf = load_text(text, err, sizeof(err));
	if (cf != NULL)
		fail_msg("loaded, batch_max %u", cf->store.batch_max);
	assert_non_null(strstr(err, ":2: line longer than"));
	/* a long value is not cut short either */
	snprintf(text, sizeof(text), "[queue a]\nmaildir = /m\nrules = /%s%s\n",
	    pad, pad);
	assert_null(load_text(text, err, sizeof(err)));
	assert_non_null(strstr(err, ":3: line longer than"));
	unlink(path);
}

static void
test_sizes_and_topics(void **state)
{
	size_t	 v;

	assert_int_equal(config_parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(config_parse_size("16MiB", &v), 0);
	assert_int_equal(v, 16u << 20);
	assert_int_equal(config_parse_size("3", &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(config_parse_size("-1", &v), -1);
	assert_int_equal(config_parse_size("1X", &v), -1);
	assert_int_equal(config_parse_size("", &v), -1);
	assert_int_equal(config_parse_size("99999999999999999999", &v), -1);

	assert_int_equal(config_topic_ok("rn.phd.sample"), 1);
	assert_int_equal(config_topic_ok("seismic.waveform"), 1);
	assert_int_equal(config_topic_ok("a_b-c.d0"), 1);
	assert_int_equal(config_topic_ok(""), 0);
	assert_int_equal(config_topic_ok("rn..phd"), 0);
	assert_int_equal(config_topic_ok(".rn"), 0);
	assert_int_equal(config_topic_ok("rn."), 0);
	assert_int_equal(config_topic_ok("RN.phd"), 0);
	assert_int_equal(config_topic_ok("rn phd"), 0);
}

/* config/vmingestd.conf loads and documents every key the parser knows. */
static void
test_sample_documents_every_key(void **state)
{
	char	 err[512], line[1024], file[512], sec[1100] = "";
	struct config *cf, *def;
	FILE	*dump, *f;
	char	*buf = NULL;
	size_t	 len = 0;
	int	 missing = 0;

	snprintf(file, sizeof(file), "%s/../../config/vmingestd.conf", TEST_DATA);
	cf = config_load(file, err, sizeof(err));
	if (cf == NULL)
		fail_msg("%s", err);
	config_free(cf);

	def = config_load(NULL, err, sizeof(err));
	assert_non_null(def);
	dump = open_memstream(&buf, &len);
	config_dump(def, dump);
	fclose(dump);
	config_free(def);

	f = fopen(file, "r");
	assert_non_null(f);
	{
		char	*text = NULL;
		size_t	 tlen = 0;
		FILE	*all = open_memstream(&text, &tlen);
		int	 c;

		while ((c = fgetc(f)) != EOF)
			fputc(c, all);
		fclose(all);
		fclose(f);
		/* every "[section]" key in the dump must appear as "key =" */
		FILE *d = fmemopen(buf, len, "r");
		while (fgets(line, sizeof(line), d) != NULL) {
			char	 key[128], want[160];

			if (line[0] == '[') {
				snprintf(sec, sizeof(sec), "%s", line);
				continue;
			}
			if (strncmp(sec, "[queue", 6) == 0)
				break;
			if (sscanf(line, "%127s =", key) != 1)
				continue;
			snprintf(want, sizeof(want), "\n%s =", key);
			if (strstr(text, want) == NULL) {
				print_error("config/vmingestd.conf lacks %s", key);
				missing++;
			}
		}
		fclose(d);
		free(text);
	}
	free(buf);
	assert_int_equal(missing, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_embedded_default),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_sizes_and_topics),
		cmocka_unit_test(test_long_line_refused),
		cmocka_unit_test(test_sample_documents_every_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
