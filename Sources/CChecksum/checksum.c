#include "checksum.h"

#include <zlib.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

// Folding constants of the reflected gzip polynomial (the paper's k1..k5, with the Barrett
// constants P(x)' and u'): x^(4*128+32), x^(4*128-32), x^(128+32), x^(128-32), x^64 mod P, shifted.
static const uint64_t k1k2[2] __attribute__((aligned(16))) = {0x0154442bd4, 0x01c6e41596};
static const uint64_t k3k4[2] __attribute__((aligned(16))) = {0x01751997d0, 0x00ccaa009e};
static const uint64_t k5k0[2] __attribute__((aligned(16))) = {0x0163cd6124, 0x0000000000};
static const uint64_t barrett[2] __attribute__((aligned(16))) = {0x01db710641, 0x01f7011641};

/// The CRC state (not inverted) after `count` bytes, count >= 64 and a multiple of 16.
__attribute__((target("pclmul,sse4.1")))
static uint32_t fold(uint32_t state, const uint8_t *bytes, size_t count) {
    __m128i a = _mm_loadu_si128((const __m128i *)(bytes + 0));
    __m128i b = _mm_loadu_si128((const __m128i *)(bytes + 16));
    __m128i c = _mm_loadu_si128((const __m128i *)(bytes + 32));
    __m128i d = _mm_loadu_si128((const __m128i *)(bytes + 48));
    a = _mm_xor_si128(a, _mm_cvtsi32_si128((int)state));
    __m128i k = _mm_load_si128((const __m128i *)k1k2);
    bytes += 64;
    count -= 64;
    // Four lanes, each folded 512 bits forward per step.
    while (count >= 64) {
        __m128i al = _mm_clmulepi64_si128(a, k, 0x00), bl = _mm_clmulepi64_si128(b, k, 0x00);
        __m128i cl = _mm_clmulepi64_si128(c, k, 0x00), dl = _mm_clmulepi64_si128(d, k, 0x00);
        a = _mm_clmulepi64_si128(a, k, 0x11);
        b = _mm_clmulepi64_si128(b, k, 0x11);
        c = _mm_clmulepi64_si128(c, k, 0x11);
        d = _mm_clmulepi64_si128(d, k, 0x11);
        a = _mm_xor_si128(_mm_xor_si128(a, al), _mm_loadu_si128((const __m128i *)(bytes + 0)));
        b = _mm_xor_si128(_mm_xor_si128(b, bl), _mm_loadu_si128((const __m128i *)(bytes + 16)));
        c = _mm_xor_si128(_mm_xor_si128(c, cl), _mm_loadu_si128((const __m128i *)(bytes + 32)));
        d = _mm_xor_si128(_mm_xor_si128(d, dl), _mm_loadu_si128((const __m128i *)(bytes + 48)));
        bytes += 64;
        count -= 64;
    }
    // The four lanes into one, then 128 bits at a time.
    k = _mm_load_si128((const __m128i *)k3k4);
    __m128i low = _mm_clmulepi64_si128(a, k, 0x00);
    a = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(a, k, 0x11), low), b);
    low = _mm_clmulepi64_si128(a, k, 0x00);
    a = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(a, k, 0x11), low), c);
    low = _mm_clmulepi64_si128(a, k, 0x00);
    a = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(a, k, 0x11), low), d);
    while (count >= 16) {
        low = _mm_clmulepi64_si128(a, k, 0x00);
        a = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(a, k, 0x11), low), _mm_loadu_si128((const __m128i *)bytes));
        bytes += 16;
        count -= 16;
    }
    // 128 bits to 64, then Barrett reduction to 32.
    const __m128i mask = _mm_setr_epi32(~0, 0, ~0, 0);
    __m128i t = _mm_clmulepi64_si128(a, k, 0x10);
    a = _mm_xor_si128(_mm_srli_si128(a, 8), t);
    k = _mm_loadl_epi64((const __m128i *)k5k0);
    t = _mm_srli_si128(a, 4);
    a = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(a, mask), k, 0x00), t);
    k = _mm_load_si128((const __m128i *)barrett);
    t = _mm_clmulepi64_si128(_mm_and_si128(a, mask), k, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, mask), k, 0x00);
    return (uint32_t)_mm_extract_epi32(_mm_xor_si128(a, t), 1);
}

int fedtrain_crc32_is_accelerated(void) {
    static int known = -1;  // threads may race to fill it in: they all store the same value
    int answer = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (answer < 0) {
        unsigned int eax, ebx, ecx, edx;
        answer = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_PCLMUL) && (ecx & bit_SSE4_1);
        __atomic_store_n(&known, answer, __ATOMIC_RELAXED);
    }
    return answer;
}

uint32_t fedtrain_crc32(uint32_t crc, const uint8_t *bytes, size_t count) {
    // zlib answers 0 for a NULL buffer (an empty Swift array has none), not the CRC so far.
    if (count == 0) return crc;
    if (count >= 64 && fedtrain_crc32_is_accelerated()) {
        size_t folded = count & ~(size_t)15;
        crc = ~fold(~crc, bytes, folded);
        bytes += folded;
        count -= folded;
    }
    return (uint32_t)crc32_z(crc, bytes, count);
}

#else

int fedtrain_crc32_is_accelerated(void) { return 0; }

uint32_t fedtrain_crc32(uint32_t crc, const uint8_t *bytes, size_t count) { return count == 0 ? crc : (uint32_t)crc32_z(crc, bytes, count); }

#endif

uint32_t fedtrain_crc32_combine(uint32_t crc_a, uint32_t crc_b, size_t length_b) {
    return (uint32_t)crc32_combine(crc_a, crc_b, (z_off_t)length_b);
}
