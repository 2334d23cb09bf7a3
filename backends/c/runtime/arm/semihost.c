/*
 * semihost.c - Arm semihosting calls (BKPT 0xAB in Thumb state) for console output and exit.
 * QEMU needs `-semihosting-config enable=on,target=native` to serve them.
 */
#include "mite_platform.h"

#define SYS_WRITE0 0x04u
#define SYS_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

static uint32_t semihost_call(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void mite_platform_write(const char *s) { (void)semihost_call(SYS_WRITE0, s); }

void mite_platform_exit(int status) {
    uint32_t block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)status;
    for (;;) {
        (void)semihost_call(SYS_EXIT_EXTENDED, block);
    }
}
