#include "blas_kernels.h"

#include <stdlib.h>
#include <strings.h>

// A DYNAMIC_ARCH OpenBLAS (Debian's) picks its kernels from the CPU model at load time. A model
// it does not know (a newer CPU, or a VM that reports a generic model) gets the Prescott (SSE3)
// kernels, which run this project's GEMMs at a fraction of what the vector unit does. Before
// main, this constructor replaces that fallback with the kernel set the CPU's feature flags
// support: Cooperlake (AVX-512 with BF16), SkylakeX (AVX-512) or Haswell (AVX2 and FMA), as
// OpenBLAS itself would for a model it knows. It does nothing when OPENBLAS_CORETYPE is set (the
// user's choice), when OpenBLAS chose anything but Prescott, or when the library is not
// DYNAMIC_ARCH (the symbols below are weak, so a build without them links and leaves it alone).

extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));

static const char *chosen = NULL;

const char *fedtrain_blas_kernels_chosen(void) { return chosen; }

#if defined(__x86_64__)
#include <cpuid.h>

static unsigned long long enabled_state(void) {
    unsigned int low, high;
    __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    return ((unsigned long long)high << 32) | low;
}

static const char *supported_kernels(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return NULL;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1;
    if (!osxsave) return NULL;
    unsigned long long state = enabled_state();
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return NULL;
    int avx2 = (b >> 5) & 1;
    int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);  // F, DQ, BW, VL
    unsigned int a1 = 0, b1, c1, d1;
    __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
    int bf16 = (a1 >> 5) & 1;
    // The OS saves the AVX (YMM) state, and for AVX-512 the opmask and ZMM states too.
    if (avx512 && (state & 0xE6) == 0xE6) return bf16 ? "COOPERLAKE" : "SKYLAKEX";
    if (avx2 && fma && (state & 0x6) == 0x6) return "HASWELL";
    return NULL;
}

__attribute__((constructor)) static void choose_kernels(void) {
    if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit || !openblas_get_corename) return;
    if (getenv("OPENBLAS_CORETYPE")) return;
    const char *current = openblas_get_corename();
    if (!current || strcasecmp(current, "Prescott") != 0) return;
    const char *kernels = supported_kernels();
    if (!kernels) return;
    // OpenBLAS reads OPENBLAS_CORETYPE when its dispatch table is initialized again; left set, so
    // that processes this one starts choose the same way.
    setenv("OPENBLAS_CORETYPE", kernels, 0);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    chosen = kernels;
}
#endif
