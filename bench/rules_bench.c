/*
 * rules_bench.c - time rules_eval() per message, in process.
 *
 *   rules_bench SCRIPT ROUNDS MESSAGE...
 *
 * Loads every MESSAGE into memory, normalizes each once into a record
 * (as the daemon does before the rules run), compiles SCRIPT once, then
 * evaluates it ROUNDS times over all messages and prints one line:
 *
 *   ns_per_msg=N cpu_ns_per_msg=C msgs=M rounds=R topics=T keeps=K
 *
 * ns_per_msg is wall-clock time, cpu_ns_per_msg the process CPU time
 * (CLOCK_PROCESS_CPUTIME_ID): on a shared, loaded machine the second is
 * the honest cost of the work, the first includes waiting for a core.
 * The time covers rules_eval() and freeing its RuleResult (what the
 * daemon pays per message for the rules), not reading or normalizing.
 * topics/keeps are the totals of the last round, so that two scripts that
 * should decide alike can be compared.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "limits.h"
#include "normalize.h"
#include "record.h"
#include "rules.h"

static char *
slurp(const char *path, size_t *len)
{
	FILE	*f = fopen(path, "rb");
	char	*b;
	long	 n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == -1 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) == -1 || (b = malloc((size_t)n + 1)) == NULL) {
		fclose(f);
		return NULL;
	}
	if (fread(b, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(b);
		return NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

int
main(int argc, char **argv)
{
	struct limits lim;
	struct rules *r;
	char	 err[1024];
	char	**raw;
	size_t	*len, i, n, topics = 0, keeps = 0;
	Vmingest__Record **rec;
	struct timespec t0, t1, c0, c1;
	long	 rounds, k;
	double	 ns;

	if (argc < 4) {
		fprintf(stderr, "usage: rules_bench SCRIPT ROUNDS MESSAGE...\n");
		return 2;
	}
	rounds = strtol(argv[2], NULL, 10);
	if (rounds < 1)
		rounds = 1;
	normalize_init();
	limits_default(&lim);
	if ((r = rules_compile(argv[1], NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	n = (size_t)(argc - 3);
	raw = calloc(n, sizeof(*raw));
	len = calloc(n, sizeof(*len));
	rec = calloc(n, sizeof(*rec));
	if (raw == NULL || len == NULL || rec == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		if ((raw[i] = slurp(argv[i + 3], &len[i])) == NULL) {
			fprintf(stderr, "%s: cannot read\n", argv[i + 3]);
			return 1;
		}
		rec[i] = record_new();
		normalize_message(&lim, raw[i], len[i], rec[i]);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	for (k = 0; k < rounds; k++) {
		topics = keeps = 0;
		for (i = 0; i < n; i++) {
			Vmingest__RuleResult *out = malloc(sizeof(*out));

			vmingest__rule_result__init(out);
			rules_eval(r, rec[i], raw[i], len[i], out);
			topics += out->n_topics;
			keeps += out->keep;
			vmingest__rule_result__free_unpacked(out, NULL);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
	    ((double)rounds * (double)n);
	printf("ns_per_msg=%.0f cpu_ns_per_msg=%.0f msgs=%zu rounds=%ld topics=%zu "
	    "keeps=%zu\n", ns, ((double)(c1.tv_sec - c0.tv_sec) * 1e9 +
	    (double)(c1.tv_nsec - c0.tv_nsec)) / ((double)rounds * (double)n), n,
	    rounds, topics, keeps);
	for (i = 0; i < n; i++) {
		record_free(rec[i]);
		free(raw[i]);
	}
	free(raw);
	free(len);
	free(rec);
	rules_free(r);
	return 0;
}
