// WAL record framing shared by the writer thread and the addon entry points. The TypeScript reader in
// src/wal/record.ts implements the same layout; change both together.
//
// A record is 8-byte aligned:  [0..4) payload length u32 LE | [4] type | [5..8) zero |
//   [8..12) data CRC u32 LE | [12..16) header CRC u32 LE | payload | zero padding | 0xA5 marker
// total size = align8(16 + length + 1). The data CRC is CRC-32C over everything after the header
// (payload, padding, marker), seeded with the previous record's data CRC, so the records form one chain.
// The header CRC covers bytes [0..12) and makes a damaged length detectable before it is trusted.
// The final non-zero marker is what tells a torn tail (marker never written: zero) from a flipped bit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "crc32c.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the WAL format is little-endian and so is this code");

namespace tetcd {

constexpr size_t kHeaderBytes = 16;
constexpr uint8_t kMarker = 0xA5;
constexpr uint32_t kPayloadBytesMax = 1u << 30;

enum RecordType : uint8_t {
  kTypeCrcCarry = 1,  // first record of every segment: payload = the chain value at the end of the previous one
  kTypeMetadata = 2,  // opaque bytes given at create; repeated at the start of every segment
  kTypeHardState = 3,
  kTypeEntry = 4,
  kTypeSnapshot = 5,
};

inline size_t RecordBytes(uint32_t payloadBytes) { return (kHeaderBytes + payloadBytes + 1 + 7) & ~size_t{7}; }

inline uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline void StoreU32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

/** Checks that [p, p+n) is a sequence of whole, well-formed records (CRCs not yet filled). Returns the number of
 *  records, or -1 with `why` set. `allowCarry` is false for buffers from JavaScript: only the writer makes carries. */
inline long ValidateFrames(const uint8_t* p, size_t n, bool allowCarry, const char** why) {
  long count = 0;
  size_t off = 0;
  while (off < n) {
    if (n - off < kHeaderBytes) { *why = "truncated record header"; return -1; }
    const uint32_t len = LoadU32(p + off);
    const uint8_t type = p[off + 4];
    if (type < kTypeCrcCarry || type > kTypeSnapshot || (type == kTypeCrcCarry && !allowCarry)) {
      *why = "bad record type";
      return -1;
    }
    if (p[off + 5] != 0 || p[off + 6] != 0 || p[off + 7] != 0) { *why = "reserved header bytes not zero"; return -1; }
    if (len > kPayloadBytesMax) { *why = "record too large"; return -1; }
    const size_t size = RecordBytes(len);
    if (size > n - off) { *why = "record extends past the buffer"; return -1; }
    if (p[off + size - 1] != kMarker) { *why = "record marker missing"; return -1; }
    off += size;
    count++;
  }
  return count;
}

/** Fills the data and header CRCs of the well-formed records in [p, p+n), continuing `*chain`.
 *  Calls onRecord(type, payload, length) for each record so the caller can remember what it needs. */
template <typename OnRecord>
inline void FillFrames(uint8_t* p, size_t n, uint32_t* chain, OnRecord&& onRecord) {
  size_t off = 0;
  while (off < n) {
    uint8_t* rec = p + off;
    const uint32_t len = LoadU32(rec);
    const size_t size = RecordBytes(len);
    const uint8_t type = rec[4];
    // A carry record is checksummed on its own (seed 0), so a segment can be verified without its predecessor.
    // (Seeding it with the value it carries would not do: CRC-32C cancels a change made to both the seed and the
    // first four bytes.)
    const uint32_t seed = type == kTypeCrcCarry ? 0 : *chain;
    const uint32_t dataCrc = Crc32c(seed, rec + kHeaderBytes, size - kHeaderBytes);
    StoreU32(rec + 8, dataCrc);
    StoreU32(rec + 12, Crc32c(0, rec, 12));
    // A carry record restates the chain; it does not advance it, so the JavaScript side (which never sees
    // carries) and the reader agree on the chain value of every other record.
    if (type == kTypeCrcCarry) {
      *chain = LoadU32(rec + kHeaderBytes);
    } else {
      *chain = dataCrc;
    }
    onRecord(type, rec + kHeaderBytes, len);
    off += size;
  }
}

/** Writes one unfilled record (CRCs zero) at p, which must have RecordBytes(len) bytes. */
inline size_t EncodeRecord(uint8_t* p, uint8_t type, const uint8_t* payload, uint32_t len) {
  const size_t size = RecordBytes(len);
  std::memset(p, 0, size);
  StoreU32(p, len);
  p[4] = type;
  if (len > 0) std::memcpy(p + kHeaderBytes, payload, len);
  p[size - 1] = kMarker;
  return size;
}

}  // namespace tetcd
