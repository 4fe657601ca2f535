/* standalone_main.c — runs a libFuzzer target's LLVMFuzzerTestOneInput over files, without
 * libFuzzer, so the corpora (which hold every crash input ever found, as regressions) are
 * replayed by the ordinary unit-test build under ASan/UBSan with any compiler.
 * Usage: fuzz_regress_<stem> FILE_OR_DIR... ; prints a cmocka-style summary line. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (1 << 20)

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  uint8_t *data = malloc(FUZZ_MAX_INPUT);
  size_t n = data ? fread(data, 1, FUZZ_MAX_INPUT, f) : 0;
  fclose(f);
  if (!data) return -1;
  /* Exact-size copy so ASan catches reads past the end. */
  uint8_t *exact = malloc(n ? n : 1);
  memcpy(exact, data, n);
  free(data);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

int main(int argc, char **argv) {
  int files = 0, errors = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      errors++;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      errors += run_file(argv[i]) != 0;
      files++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char p[4096];
      snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
      errors += run_file(p) != 0;
      files++;
    }
    if (d) closedir(d);
  }
  printf("replayed %d inputs\n", files);
  if (errors || files == 0) {
    printf("[  FAILED  ] 1 test(s), listed below:\n");
    return 1;
  }
  printf("[  PASSED  ] 1 test(s).\n");
  return 0;
}
