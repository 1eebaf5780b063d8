// parse_client_hello: never crashes or reads past the input (each prefix is parsed from a
// heap copy of exactly its size), and
//   - a prefix's answer is NeedMore or the whole input's answer (same name), fed the way a
//     caller feeds it: in chunks of pseudo-random sizes, waiting for NEED bytes at a time;
//   - NEED is a lower bound: NEED - 1 more bytes never make it Done;
//   - an answer other than NeedMore stays when bytes are appended;
//   - Done gives a valid_server_name() or no name; NeedMore only below kMaxRead bytes;
//   - a Done hello re-encoded in records of another size (1..256 bytes, chosen from the
//     input) is Done with the same name, or TooLarge when the records pass kMaxRead.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz.hpp"
#include "l4lb/dataplane/client_hello.hpp"

namespace {

using l4lb::HelloResult;
using l4lb::HelloStatus;

HelloResult parse(const uint8_t* data, size_t n) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[n ? n : 1]);
  if (n) std::memcpy(copy.get(), data, n);
  return l4lb::parse_client_hello({copy.get(), n});
}

bool same(const HelloResult& a, const HelloResult& b) {
  return a.status == b.status && a.server_name == b.server_name;
}

// The handshake message at the start of records that parsed Done (so well formed; the last
// record may be cut short after the message's end).
std::vector<uint8_t> message_of(const uint8_t* data, size_t size) {
  std::vector<uint8_t> msg;
  size_t i = 0, total = 0;
  while (total == 0 || msg.size() < total) {
    FUZZ_CHECK(i + 5 <= size);
    size_t len = size_t{data[i + 3]} << 8 | data[i + 4];
    FUZZ_CHECK(len > 0);
    len = std::min(len, size - i - 5);
    msg.insert(msg.end(), data + i + 5, data + i + 5 + len);
    i += 5 + len;
    if (total == 0 && msg.size() >= 4) total = 4 + (size_t{msg[1]} << 16 | msg[2] << 8 | msg[3]);
  }
  msg.resize(total);
  return msg;
}

uint32_t mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352d;
  x ^= x >> 15;
  x *= 0x846ca68b;
  return x ^ (x >> 16);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const HelloResult full = parse(data, size);
  if (full.status == HelloStatus::NeedMore) {
    FUZZ_CHECK(full.need >= 1 && size < l4lb::kMaxRead && full.server_name.empty());
  } else {
    FUZZ_CHECK(full.need == 0);
  }
  if (full.status == HelloStatus::Done) {
    FUZZ_CHECK(full.server_name.empty() || l4lb::valid_server_name(full.server_name));
  } else {
    FUZZ_CHECK(full.server_name.empty());
  }

  // Appending a byte changes no decided answer.
  if (full.status != HelloStatus::NeedMore) {
    std::vector<uint8_t> more(data, data + size);
    more.push_back(0x16);
    FUZZ_CHECK(same(parse(more.data(), more.size()), full));
  }

  // Fed as a caller would: chunks of 1..64 bytes (from a hash of the input), at least NEED.
  uint32_t seed = 0x9e3779b9;
  for (size_t i = 0; i < size && i < 64; ++i) seed = mix(seed ^ data[i]);
  size_t n = 0;
  for (int step = 0;; ++step) {
    const HelloResult r = parse(data, n);
    if (r.status != HelloStatus::NeedMore) {
      FUZZ_CHECK(same(r, full));
      break;
    }
    FUZZ_CHECK(r.need >= 1 && r.server_name.empty());
    if (n + r.need - 1 <= size && r.need > 1) {
      FUZZ_CHECK(parse(data, n + r.need - 1).status != HelloStatus::Done);
    }
    if (n == size) {
      FUZZ_CHECK(full.status == HelloStatus::NeedMore);
      break;
    }
    seed = mix(seed + step);
    size_t chunk = 1 + seed % 64;
    n = std::min(size, n + std::max(chunk, r.need));
  }

  // Re-encoded in records of another size.
  if (full.status == HelloStatus::Done) {
    const std::vector<uint8_t> msg = message_of(data, size);
    const size_t rec = 1 + mix(seed) % 256;
    std::vector<uint8_t> in;
    for (size_t i = 0; i < msg.size(); i += rec) {
      const size_t k = std::min(rec, msg.size() - i);
      const uint8_t head[5] = {22, 3, 3, static_cast<uint8_t>(k >> 8), static_cast<uint8_t>(k)};
      in.insert(in.end(), head, head + 5);
      in.insert(in.end(), msg.begin() + i, msg.begin() + i + k);
    }
    const HelloResult again = parse(in.data(), in.size());
    if (in.size() > l4lb::kMaxRead) {
      FUZZ_CHECK(again.status == HelloStatus::TooLarge);
    } else {
      FUZZ_CHECK(same(again, full));
    }
  }
  return 0;
}
