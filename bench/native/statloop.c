/* statloop PATH N: N stat(2) calls on PATH; prints the rate in stats per second. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: statloop PATH N\n"); return 2; }
  long n = atol(argv[2]);
  struct stat st;
  struct timespec a, b;
  if (stat(argv[1], &st) != 0) { perror(argv[1]); return 1; }
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) {
    if (stat(argv[1], &st) != 0) { perror(argv[1]); return 1; }
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
  printf("%.1f\n", n / s);
  return 0;
}
