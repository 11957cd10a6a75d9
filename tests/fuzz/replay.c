/* A main for fuzz targets built without libFuzzer: runs
 * LLVMFuzzerTestOneInput over every file of the directories (or files)
 * given as arguments. With no argument it replays the target's own seed
 * corpus, $WEFT_SRCDIR/tests/fuzz/corpus/NAME for a program named fuzz_NAME,
 * so that `make check` exercises every corpus input. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_FILE (16u << 20)

static int run_file(const char *path, unsigned *count)
{
	FILE *f = fopen(path, "rb");
	unsigned char *data;
	long size;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
	    (unsigned long)size > REPLAY_MAX_FILE || fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		if (f)
			fclose(f);
		return -1;
	}
	/* An exact-size heap copy, so that ASan sees reads past the end. */
	data = malloc(size ? (size_t)size : 1);
	if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		free(data);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(data, (size_t)size);
	free(data);
	(*count)++;
	return 0;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path, unsigned *count)
{
	struct stat st;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	DIR *d;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "replay: %s: no such file or directory\n", path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path, count);
	if ((d = opendir(path)) == NULL) {
		fprintf(stderr, "replay: cannot open %s\n", path);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **p = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*p));
			if (p == NULL) {
				rc = -1;
				break;
			}
			names = p;
		}
		if (asprintf(&names[n], "%s/%s", path, de->d_name) < 0) {
			rc = -1;
			break;
		}
		n++;
	}
	closedir(d);
	/* Sorted, so that a failure is reproducible run to run. */
	if (n)
		qsort(names, n, sizeof(*names), cmp);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0 && run_path(names[i], count) != 0)
			rc = -1;
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	int rc = 0;

	if (argc < 2) {
		const char *src = getenv("WEFT_SRCDIR"), *base = strrchr(argv[0], '/');
		char *dir;
		base = base ? base + 1 : argv[0];
		if (strncmp(base, "lt-", 3) == 0)
			base += 3;
		if (strncmp(base, "fuzz_", 5) != 0) {
			fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
			return 2;
		}
		if (asprintf(&dir, "%s/tests/fuzz/corpus/%s", src ? src : ".", base + 5) < 0)
			return 2;
		rc = run_path(dir, &count);
		printf("replay: %u inputs from %s\n", count, dir);
		free(dir);
		/* A target with no corpus would test nothing. */
		return rc != 0 || count == 0;
	}
	for (int i = 1; i < argc; i++)
		if (run_path(argv[i], &count) != 0)
			rc = 1;
	printf("replay: %u inputs\n", count);
	return rc;
}
