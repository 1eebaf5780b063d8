// The state file (global.state_file): the admin overrides kept across restarts, pure
// (JSON in and out; the file itself is written with base/file.hpp's write_atomically).
//
// An override is held per (service, backend address as /stats shows it): an optional
// admin state (ready|drain|maint) and an optional weight (1..1000). The file:
//
//   {
//     "version": 1,
//     "overrides": [
//       {"service":"web","backend":"127.0.0.1:8001","state":"drain","weight":null,"file_drain":false},
//       {"service":"web","backend":"[::1]:8002","state":null,"weight":5,"file_weight":1}
//     ]
//   }
//
// (one entry a line, sorted by service, then backend, bytewise; "state"/"weight" null
// when not overridden; entries that override nothing are left out).
// Reading is strict: it never throws, and rejects (whole file, with a message naming
// the place, e.g. "overrides[2].weight: must be an integer 1..1000, got 0") invalid JSON
// or UTF-8, duplicate keys, unknown keys, a missing or unknown "version", wrong types
// (a weight of 5.0 or "5" is wrong), states other than the three names, weights out of
// 1..1000, empty service or backend, two entries for the same backend, an entry that
// overrides nothing, and nesting deeper than the format has.
#pragma once
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "l4lb/balance/admin_state.hpp"

namespace l4lb::control {

// AdminState, its names and the weight bounds live in balance/admin_state.hpp.
using l4lb::AdminState;
using l4lb::admin_state_name;
using l4lb::parse_admin_state;
using l4lb::kMinWeight;
using l4lb::kMaxWeight;

struct Override {
  std::optional<AdminState> state;
  std::optional<int> weight;  // kMinWeight..kMaxWeight
  // What the config file said of that property when the override was made (written as
  // "file_drain"/"file_weight"; optional when read): at start, an override whose file
  // value has changed since is dropped — the later intent stands, as over a reload.
  std::optional<bool> file_drain;
  std::optional<int> file_weight;
  bool empty() const { return !state && !weight; }
  bool operator==(const Override&) const = default;
};

struct BackendKey {
  std::string service;
  std::string backend;  // as /stats shows it: "127.0.0.1:8001", "[::1]:8001"
  auto operator<=>(const BackendKey&) const = default;
};

using Overrides = std::map<BackendKey, Override>;

constexpr int kStateFileVersion = 1;
constexpr size_t kMaxStateFileBytes = 4u << 20;  // 4 MiB

// The file's text (ends in a newline). Stable: the same overrides give the same bytes.
// Whatever OVERRIDES holds, from_json accepts the result: what the format cannot hold
// (callers' bugs) is left out — an entry that overrides nothing, an empty service or
// backend, a name that is not valid UTF-8 (config names and addresses are ASCII); a
// weight outside 1..1000 is written as null. Never throws but std::bad_alloc.
std::string to_json(const Overrides& overrides);

// Parses TEXT into OUT (replaced only on success). False with ERROR set, OUT untouched,
// on anything the format does not allow (see the top of this file). Never throws.
bool from_json(std::string_view text, Overrides& out, std::string& error);

}  // namespace l4lb::control
