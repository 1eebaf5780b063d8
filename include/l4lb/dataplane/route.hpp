// Route: what one listen address does with a client, built once per config by the control
// thread and shared (read-only) by that address's listener on every worker. An address with
// one plain service connects at accept; one with `sni` services or `accept_proxy` inspects
// first (PROXY header, then ClientHello) and then picks the service.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "l4lb/balance/service.hpp"
#include "l4lb/base/address.hpp"
#include "l4lb/base/cidr.hpp"
#include "l4lb/base/counters.hpp"
#include "l4lb/base/duration.hpp"
#include "l4lb/dataplane/sni_table.hpp"

namespace l4lb {

// Why a client was closed without a service (INTERFACE.md's unrouted reasons).
enum class Unrouted { NoMatch, NotTls, Timeout, TooLarge, BadProxy, UntrustedProxy };
constexpr size_t kUnroutedReasons = 6;
std::string_view to_string(Unrouted r);  // "no_match", ...

// What one worker counts for one inspecting address.
struct alignas(64) UnroutedSlot {
  Counter by_reason[kUnroutedReasons];
};

// Counts that live as long as the address stays in the config (kept over reloads).
struct UnroutedCounts {
  explicit UnroutedCounts(size_t workers) : slots(workers) {}
  PerWorker<UnroutedSlot> slots;
  uint64_t total(Unrouted r) const {
    uint64_t n = 0;
    for (size_t w = 0; w < slots.size(); ++w)
      n += slots.at(w).by_reason[static_cast<size_t>(r)].get();
    return n;
  }
};

struct Route {
  Address listen;
  std::string listen_text;
  std::vector<std::shared_ptr<Service>> services;  // every service on this address
  std::shared_ptr<Service> fallback;               // the one without sni (may be null)
  SniTable names;                                  // sni pattern -> index in services
  bool read_hello = false;                         // some service has sni
  std::optional<CidrSet> proxy_from;               // accept_proxy: trusted front balancers
  Millis inspect_timeout{5000};
  std::shared_ptr<UnroutedCounts> unrouted;        // set where the address inspects
  bool access_log = false;                         // some service on it logs (unrouted clients)

  bool inspects() const { return read_hello || proxy_from.has_value(); }
  // The service for a ClientHello's server name (empty: none sent): the best sni match,
  // else the fallback (null: unrouted, no_match).
  const std::shared_ptr<Service>& for_name(std::string_view name) const {
    if (!name.empty())
      if (std::optional<uint32_t> i = names.find(name)) return services[*i];
    return fallback;
  }
};

}  // namespace l4lb
