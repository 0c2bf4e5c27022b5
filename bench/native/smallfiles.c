/* smallfiles DIR N SIZE: creates, writes SIZE bytes to and closes N files in DIR; prints milliseconds. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: smallfiles DIR N SIZE\n"); return 2; }
  long n = atol(argv[2]);
  size_t size = (size_t) atol(argv[3]);
  char *data = malloc(size ? size : 1);
  memset(data, 'x', size);
  char path[4096];
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/f%ld", argv[1], i);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) { perror(path); return 1; }
    if (write(fd, data, size) != (ssize_t) size) { perror(path); return 1; }
    if (close(fd) != 0) { perror(path); return 1; }
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.3f\n", ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9) * 1000);
  return 0;
}
