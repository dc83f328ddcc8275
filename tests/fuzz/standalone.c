/*
 * standalone.c - a main() for libFuzzer harnesses, so that `make check`
 * replays the saved seed corpus under ASan+UBSan without clang's fuzzer
 * runtime.  Each argument is a file or a directory of files; each file is
 * handed once to LLVMFuzzerTestOneInput().  Prints "N inputs" at the end.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int LLVMFuzzerInitialize(int *, char ***) __attribute__((weak));

static unsigned long ninputs;

static void
run_file(const char *path)
{
	FILE	*f = fopen(path, "rb");
	uint8_t	*buf;
	long	 n;

	if (f == NULL) {
		perror(path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf == NULL || (n > 0 && fread(buf, 1, n, f) != (size_t)n)) {
		perror(path);
		exit(2);
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	ninputs++;
}

int
main(int argc, char **argv)
{
	int	 i;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc; i++) {
		struct stat st;
		DIR	*d;
		struct dirent *de;
		char	 p[4096];

		if (stat(argv[i], &st) == -1) {
			perror(argv[i]);
			return 2;
		}
		if (!S_ISDIR(st.st_mode)) {
			run_file(argv[i]);
			continue;
		}
		if ((d = opendir(argv[i])) == NULL) {
			perror(argv[i]);
			return 2;
		}
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			if (snprintf(p, sizeof(p), "%s/%s", argv[i], de->d_name) >= (int)sizeof(p))
				continue;
			run_file(p);
		}
		closedir(d);
	}
	printf("%lu inputs\n", ninputs);
	return 0;
}
