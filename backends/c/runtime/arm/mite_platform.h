/*
 * mite_platform.h - the bare-metal Cortex-M platform of mite programs under QEMU (mps2-an386
 * Cortex-M4, mps2-an500 Cortex-M7) or on a board: semihosting output and exit status, and an
 * instruction / cycle counter on SysTick.
 */
#ifndef MITE_PLATFORM_H
#define MITE_PLATFORM_H

#include <stdint.h>

/* Write a NUL-terminated string to the host's console (semihosting SYS_WRITE0). */
void mite_platform_write(const char *s);
/* End the program with an exit status the host sees (semihosting SYS_EXIT_EXTENDED). */
void mite_platform_exit(int status);
/* SysTick ticks since reset (24-bit counter extended by its wrap interrupt). On QEMU's MPS2
 * boards SysTick counts the 25 MHz system clock of virtual time; with `-icount shift=0`
 * (one instruction = 1 ns) one tick is 40 instructions. */
uint64_t mite_platform_ticks(void);
/* Instructions (QEMU -icount shift=0) or cycles (a board at MITE_CPU_HZ) per tick. */
#define MITE_PLATFORM_INSNS_PER_TICK 40u

#endif
