/*
 * startup.c - reset handler and vector table of mite's Cortex-M programs (ARMv7-M: Cortex-M4
 * and Cortex-M7): enables the FPU, copies .data from flash, zeroes .bss, starts SysTick, runs
 * main() and exits through semihosting with its return value. Faults print a FAIL line and
 * exit with status 3.
 */
#include <stdint.h>

#include "mite_platform.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYSTICK_RELOAD 0x00FFFFFFu
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)

static volatile uint32_t systick_wraps;

void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);

void Reset_Handler(void) {
    uint32_t *src = &__data_load, *dst = &__data_start;
    /* Full access to CP10 / CP11 (the FPU) before any float instruction. */
    SCB_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    while (dst < &__data_end) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start; dst < &__bss_end; dst++) {
        *dst = 0;
    }
    SYST_RVR = SYSTICK_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* processor clock, interrupt on wrap, enabled */
    while (SYST_CVR == 0) {
        /* the first reload of the counter happens on its next clock edge */
    }
    mite_platform_exit(main());
}

void SysTick_Handler(void) { systick_wraps++; }

uint64_t mite_platform_ticks(void) {
    uint32_t wraps, cvr, pending;
    do {
        wraps = systick_wraps;
        cvr = SYST_CVR;
        pending = SCB_ICSR & ICSR_PENDSTSET;
    } while (wraps != systick_wraps);
    /* A wrap whose interrupt has not run yet: the counter has reloaded (cvr is high). */
    if (pending != 0 && cvr > SYSTICK_RELOAD / 2u) {
        wraps++;
    }
    return (uint64_t)wraps * (SYSTICK_RELOAD + 1u) + (SYSTICK_RELOAD - cvr);
}

void Fault_Handler(void) {
    mite_platform_write("mite-selftest: FAIL processor fault\n");
    mite_platform_exit(3);
}

void Default_Handler(void) {
    mite_platform_write("mite-selftest: FAIL unexpected interrupt\n");
    mite_platform_exit(3);
}

typedef void (*vector)(void);

/* Initial stack pointer, then the 15 system exceptions; external interrupts are unused. */
__attribute__((section(".isr_vector"), used)) static const vector vectors[16] = {
    (vector)(uintptr_t)&__stack_top,
    Reset_Handler,
    Fault_Handler,   /* NMI */
    Fault_Handler,   /* HardFault */
    Fault_Handler,   /* MemManage */
    Fault_Handler,   /* BusFault */
    Fault_Handler,   /* UsageFault */
    0, 0, 0, 0,      /* reserved */
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,               /* reserved */
    Default_Handler, /* PendSV */
    SysTick_Handler,
};
