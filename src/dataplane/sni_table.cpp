#include "l4lb/dataplane/sni_table.hpp"

#include "l4lb/base/hash.hpp"

#include "l4lb/dataplane/client_hello.hpp"

namespace l4lb {
namespace {

constexpr uint64_t kSeed = 0xcbf29ce484222325ull;  // FNV-1a 64
constexpr uint64_t kPrime = 0x100000001b3ull;

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

// FNV-1a over the lower-cased bytes taken from the LAST to the first: the hash of a suffix
// extends to the hash of the next longer suffix in one step, so every suffix of a name is
// hashed in one pass.
uint64_t hash_step(uint64_t h, char c) { return (h ^ static_cast<uint8_t>(lower(c))) * kPrime; }

uint64_t suffix_hash(std::string_view s) {
  uint64_t h = kSeed;
  for (size_t i = s.size(); i-- > 0;) h = hash_step(h, s[i]);
  return h;
}

// FNV's low bits mix poorly; the slot comes from all 64 (MurmurHash3's finalizer).
uint64_t mix(uint64_t h) { return fmix64(h); }

bool equal_lower(std::string_view name, std::string_view key) {
  if (name.size() != key.size()) return false;
  for (size_t i = 0; i < key.size(); ++i) {
    if (lower(name[i]) != key[i]) return false;
  }
  return true;
}

std::string_view drop_trailing_dot(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

}  // namespace

bool valid_sni_pattern(std::string_view pattern) {
  if (pattern.starts_with("*.")) pattern.remove_prefix(2);
  return valid_server_name(pattern);
}

std::string sni_pattern_key(std::string_view pattern) {
  std::string key(drop_trailing_dot(pattern));
  for (char& c : key) c = lower(c);
  return key;
}

bool sni_patterns_overlap(std::string_view a, std::string_view b) {
  return sni_pattern_key(a) == sni_pattern_key(b);
}

SniTable::Add SniTable::add(std::string_view pattern, uint32_t service, uint32_t* existing) {
  if (!valid_sni_pattern(pattern)) return Add::Invalid;
  std::string key = sni_pattern_key(pattern);
  const bool wildcard = std::string_view(key).starts_with("*.");
  std::string_view name = std::string_view(key).substr(wildcard ? 2 : 0);
  Index& index = wildcard ? suffix_ : exact_;
  const uint64_t hash = suffix_hash(name);
  if (const Entry* e = lookup(index, hash, name)) {
    if (existing) *existing = e->service;
    return Add::Duplicate;
  }
  entries_.push_back({hash, static_cast<uint32_t>(keys_.size()),
                      static_cast<uint32_t>(name.size()), service});
  keys_ += name;
  insert(index, static_cast<uint32_t>(entries_.size() - 1));
  if (wildcard && name.size() < 256) {
    suffix_lengths_[name.size() / 64] |= uint64_t{1} << (name.size() % 64);
  }
  return Add::Added;
}

const SniTable::Entry* SniTable::lookup(const Index& index, uint64_t hash,
                                        std::string_view name) const {
  if (index.count == 0) return nullptr;
  const size_t mask = index.slots.size() - 1;
  for (size_t i = mix(hash) & mask;; i = (i + 1) & mask) {
    const uint32_t slot = index.slots[i];
    if (slot == 0) return nullptr;
    const Entry& e = entries_[slot - 1];
    if (e.hash == hash && equal_lower(name, std::string_view(keys_).substr(e.offset, e.length))) {
      return &e;
    }
  }
}

void SniTable::insert(Index& index, uint32_t entry) {
  if ((index.count + 1) * 2 > index.slots.size()) {  // keep the load at most 1/2
    std::vector<uint32_t> old = std::move(index.slots);
    index.slots.assign(old.empty() ? 16 : old.size() * 2, 0);
    const size_t mask = index.slots.size() - 1;
    for (uint32_t slot : old) {
      if (slot == 0) continue;
      size_t i = mix(entries_[slot - 1].hash) & mask;
      while (index.slots[i] != 0) i = (i + 1) & mask;
      index.slots[i] = slot;
    }
  }
  const size_t mask = index.slots.size() - 1;
  size_t i = mix(entries_[entry].hash) & mask;
  while (index.slots[i] != 0) i = (i + 1) & mask;
  index.slots[i] = entry + 1;
  ++index.count;
}

std::optional<uint32_t> SniTable::find(std::string_view name) const {
  name = drop_trailing_dot(name);
  if (name.empty() || name.size() > kMaxServerName) return std::nullopt;
  // Walk from the right: at name[i] the hash is that of the suffix name[i..]. A wildcard
  // "*.S" matches where name[i..] = S, name[i-1] = '.', and at least one byte precedes that
  // dot; the longest such S is the last found.
  const Entry* best = nullptr;
  uint64_t h = kSeed;
  for (size_t i = name.size(); i-- > 0;) {
    h = hash_step(h, name[i]);
    if (i >= 2 && name[i - 1] == '.' && has_suffix_length(name.size() - i)) {
      if (const Entry* e = lookup(suffix_, h, name.substr(i))) best = e;
    }
  }
  if (const Entry* e = lookup(exact_, h, name)) return e->service;
  if (best) return best->service;
  return std::nullopt;
}

}  // namespace l4lb
