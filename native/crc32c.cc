// CRC-32C with runtime dispatch between the SSE4.2 crc32 instruction and a portable table version.
#include "crc32c.h"

#include <cstdlib>
#include <cstring>

namespace tetcd {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

struct Tables {
  uint32_t t[8][256];
  Tables() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
      for (int s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    }
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = ~crc;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = __builtin_ia32_crc32qi(static_cast<uint32_t>(c), *p++);
    n--;
  }
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = __builtin_ia32_crc32qi(static_cast<uint32_t>(c), *p++);
    n--;
  }
  return ~static_cast<uint32_t>(c);
}

bool HasSse42() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#endif

using CrcFn = uint32_t (*)(uint32_t, const uint8_t*, size_t);

CrcFn Choose() {
#if defined(__x86_64__) || defined(__i386__)
  // TETCD_CRC32C_SOFTWARE=1 forces the table path so the fallback can be exercised on SSE4.2 machines.
  const char* force = std::getenv("TETCD_CRC32C_SOFTWARE");
  if ((force == nullptr || force[0] != '1') && HasSse42()) return Crc32cHardware;
#endif
  return Crc32cSoftware;
}

CrcFn Chosen() {
  static const CrcFn fn = Choose();
  return fn;
}

}  // namespace

uint32_t Crc32cSoftware(uint32_t crc, const uint8_t* p, size_t n) {
  const Tables& tb = GetTables();
  uint32_t c = ~crc;
  while (n >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;  // little-endian hosts only; asserted in record.h
    c = tb.t[7][lo & 0xFF] ^ tb.t[6][(lo >> 8) & 0xFF] ^ tb.t[5][(lo >> 16) & 0xFF] ^ tb.t[4][lo >> 24] ^
        tb.t[3][hi & 0xFF] ^ tb.t[2][(hi >> 8) & 0xFF] ^ tb.t[1][(hi >> 16) & 0xFF] ^ tb.t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = (c >> 8) ^ tb.t[0][(c ^ *p++) & 0xFF];
    n--;
  }
  return ~c;
}

uint32_t Crc32c(uint32_t crc, const uint8_t* p, size_t n) { return Chosen()(crc, p, n); }

const char* Crc32cImpl() { return Chosen() == Crc32cSoftware ? "software" : "sse4.2"; }

}  // namespace tetcd
