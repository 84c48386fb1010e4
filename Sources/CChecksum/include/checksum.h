#ifndef FEDTRAIN_CHECKSUM_H
#define FEDTRAIN_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/// zlib's CRC-32 (the gzip polynomial, reflected, inverted in and out) of `count` bytes, continuing
/// `crc` (0 to start): equal to zlib's `crc32_z(crc, bytes, count)` for every input. On CPUs with
/// PCLMULQDQ it folds 64 bytes at a time by carry-less multiplication (Gopal, Ozturk et al., "Fast
/// CRC Computation for Generic Polynomials Using PCLMULQDQ Instruction", Intel 2009); the tail
/// below 16 bytes, and everything on other CPUs, goes to zlib.
uint32_t fedtrain_crc32(uint32_t crc, const uint8_t *bytes, size_t count);

/// The CRC-32 of A followed by B, from `crc_a` (A's), `crc_b` (B's) and B's length: zlib's
/// `crc32_combine`, O(log length) whatever the lengths.
uint32_t fedtrain_crc32_combine(uint32_t crc_a, uint32_t crc_b, size_t length_b);

/// Whether `fedtrain_crc32` folds with PCLMULQDQ on this CPU.
int fedtrain_crc32_is_accelerated(void);

#endif
