/*
 * host_main.c - the parity harness on the host: cases on stdin, results on stdout.
 */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

#define MAX_ALLOCS 64

static void *allocs[MAX_ALLOCS];
static size_t n_allocs;

int hio_getc(void) { return getchar(); }

void hio_write(const char *s, size_t len) { fwrite(s, 1, len, stdout); }

void *hio_alloc(size_t bytes) {
    void *p;
    if (n_allocs == MAX_ALLOCS) {
        return NULL;
    }
    p = calloc(1, bytes);
    if (p != NULL) {
        allocs[n_allocs++] = p;
    }
    return p;
}

void hio_release(void) {
    while (n_allocs > 0) {
        free(allocs[--n_allocs]);
    }
}

int main(void) {
    long cases = harness_run();
    fflush(stdout);
    if (cases < 0) {
        fprintf(stderr, "harness: malformed input\n");
        return 2;
    }
    fprintf(stderr, "harness: %ld cases\n", cases);
    return 0;
}
