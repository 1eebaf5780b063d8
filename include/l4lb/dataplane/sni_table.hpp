// Which service takes a TLS server name, among the `sni` patterns of the services on one
// listen address (INTERFACE.md, "Routing by TLS server name"). Built once per config, then
// only read (safe to read from several threads at once).
//
// Patterns are an exact name ("api.example.com") or a wildcard ("*.example.com"); the name
// part is a valid_server_name() (client_hello.hpp). Matching is case-insensitive (ASCII) and
// ignores one trailing dot on the pattern and on the name. An exact pattern wins; otherwise
// the LONGEST wildcard suffix that matches: "*.example.com" matches "a.example.com" and
// "a.b.example.com" (one or more labels before ".example.com"), not "example.com".
//
// Cost of find(), whatever the number of patterns: one pass over the name (at most
// kMaxServerName = 255 bytes: lower-casing and hashing every suffix at once, from the right),
// then one probe of the exact-name hash table and one probe of the suffix hash table per dot
// in the name where a wildcard of that suffix's length exists (open addressing, load at most
// 1/2: O(1) expected each), and a byte comparison only where a full 64-bit hash matches. So
// O(length of the name), no allocation: ~100 ns or less at 1,000 patterns (the unit test
// prints the figure).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace l4lb {

// "name" or "*.name" with a valid_server_name() NAME ("*", "a.*.b", "*a.b", "*.": no).
bool valid_sni_pattern(std::string_view pattern);

// PATTERN lower-cased (ASCII) without one trailing dot: "*.Example.COM." -> "*.example.com".
std::string sni_pattern_key(std::string_view pattern);

// True when two patterns may not both be on one listen address (INTERFACE.md): equal after
// lower-casing and dropping a trailing dot. An exact name and a wildcard that covers it do not
// overlap (the exact one wins), nor do two wildcards of which one covers the other (the longer
// suffix wins).
bool sni_patterns_overlap(std::string_view a, std::string_view b);

class SniTable {
 public:
  enum class Add {
    Added,
    Invalid,    // not a valid_sni_pattern()
    Duplicate,  // overlaps a pattern added before (*EXISTING, if given, is its service)
  };

  // PATTERN -> SERVICE (any number the caller chooses, e.g. an index in its services).
  Add add(std::string_view pattern, uint32_t service, uint32_t* existing = nullptr);

  // The service whose pattern matches NAME best (see above), if any. NAME is meant to be a
  // valid_server_name() (as parse_client_hello() gives); any other is matched by the same
  // rules taken literally: "*.S" matches a name ending in ".S" with at least one byte before
  // that dot. A NAME longer than kMaxServerName (after one trailing dot is dropped) or empty
  // matches nothing.
  std::optional<uint32_t> find(std::string_view name) const;

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    uint64_t hash;    // suffix_hash of the key
    uint32_t offset;  // key bytes in keys_ (lower-case, no trailing dot, no "*.")
    uint32_t length;
    uint32_t service;
  };
  // An open-addressing index into entries_: 0 empty, else entry number + 1.
  struct Index {
    std::vector<uint32_t> slots;
    size_t count = 0;
  };

  const Entry* lookup(const Index& index, uint64_t hash, std::string_view name) const;
  void insert(Index& index, uint32_t entry);

  bool has_suffix_length(size_t n) const {
    return n < 256 && (suffix_lengths_[n / 64] >> (n % 64)) & 1;
  }

  std::vector<Entry> entries_;
  std::string keys_;
  Index exact_;
  Index suffix_;  // wildcards, by the part after "*."
  uint64_t suffix_lengths_[4] = {};  // bit N: a wildcard's part after "*." has N bytes
};

}  // namespace l4lb
