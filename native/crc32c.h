// CRC-32C (Castagnoli), the checksum of every WAL record: SSE4.2 instruction when the CPU has it,
// a slicing-by-8 table otherwise; the choice is made once at run time.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tetcd {

/** Extends `crc` (0 to start) over `n` bytes at `p`; chaining calls equals one call over the concatenation. */
uint32_t Crc32c(uint32_t crc, const uint8_t* p, size_t n);

/** "sse4.2" or "software": which implementation Crc32c dispatches to on this machine. */
const char* Crc32cImpl();

/** The table implementation, exported so tests can compare it against the hardware one. */
uint32_t Crc32cSoftware(uint32_t crc, const uint8_t* p, size_t n);

}  // namespace tetcd
