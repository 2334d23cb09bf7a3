/*
 * harness.h - the kernel parity harness: reads cases (text tokens), runs the C kernels, writes
 * two lines per case (status, outputs). The platform supplies the I/O and the memory.
 */
#ifndef MITE_HARNESS_H
#define MITE_HARNESS_H

#include <stddef.h>

/* Next input character, or -1 at the end. */
int hio_getc(void);
/* Write len bytes of output. */
void hio_write(const char *s, size_t len);
/* Zeroed memory for one case, or NULL; everything is released by hio_release. */
void *hio_alloc(size_t bytes);
/* Release the memory of the case. */
void hio_release(void);

/* Runs every case of the input; returns the number of cases, or -1 on a malformed input. */
long harness_run(void);

#endif
