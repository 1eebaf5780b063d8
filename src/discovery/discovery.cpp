#include "l4lb/discovery/discovery.hpp"

#include <algorithm>
#include <set>

namespace l4lb::dns {

// One lookup of an entry: its queries in flight and what they found so far.
struct Discovery::Lookup {
  explicit Lookup(size_t& in_flight) : in_flight_(in_flight) { ++in_flight_; }
  ~Lookup() { --in_flight_; }
  Lookup(const Lookup&) = delete;
  Lookup& operator=(const Lookup&) = delete;
  size_t& in_flight_;
  uint64_t id = 0;
  size_t pending = 0;        // queries not answered yet
  size_t answered = 0;       // queries a server answered
  std::vector<Resolved> found;
  uint32_t ttl = UINT32_MAX;
  size_t refused = 0;
  std::string error;         // the last query error
};

struct Discovery::Entry {
  Discovery* owner = nullptr;
  std::string key;
  std::string service;
  DnsBackendConfig config;
  bool resolved = false;          // a good set was found once
  bool waiting = false;           // in waiting_ for a slot
  std::vector<Resolved> current;  // the last good set (normalized)
  std::unique_ptr<Lookup> lookup;  // in flight, or null
  TimerWatcher timer;              // the next lookup
  void on_timer() { owner->start(*this); }
};

Discovery::Discovery(struct ev_loop* loop, Log& log, LookupTable& counts, OnChange on_change)
    : loop_(loop), log_(log), counts_(counts), on_change_(std::move(on_change)) {}

Discovery::~Discovery() {
  resolver_.reset();  // drops callbacks before the entries go
  entries_.clear();
}

std::string Discovery::key_of(const std::string& service, const DnsBackendConfig& d) {
  return service + '\n' + d.key();
}

void Discovery::configure(const Config& cfg) {
  const bool new_resolver = !resolver_ || !config_.same_resolver(cfg.global.dns);
  config_ = cfg.global.dns;
  if (new_resolver) {
    resolver_.reset();  // its pending callbacks are dropped
    bool any = false;
    for (const ServiceConfig& sc : cfg.services) any = any || !sc.dns_backends.empty();
    if (any) {
      resolver_ = std::make_unique<Resolver>(loop_, config_);
      if (!resolver_->init_error().empty())
        log_.error("dns failed", {{"reason", resolver_->init_error()}});
    }
  }
  std::map<std::string, std::unique_ptr<Entry>> entries;
  for (const ServiceConfig& sc : cfg.services)
    for (const DnsBackendConfig& d : sc.dns_backends) {
      const std::string key = key_of(sc.name, d);
      auto it = entries_.find(key);
      if (it != entries_.end()) {
        it->second->config = d;  // weight, backup... apply through expand()
        entries.emplace(key, std::move(it->second));
        continue;
      }
      auto e = std::make_unique<Entry>();
      e->owner = this;
      e->key = key;
      e->service = sc.name;
      e->config = d;
      e->timer.bind<&Entry::on_timer>(loop_, e.get());
      entries.emplace(key, std::move(e));
    }
  entries_ = std::move(entries);  // gone entries (and their timers) go here
  // Counts of names no longer in the file go with them (the table stays bounded).
  std::set<std::pair<std::string, std::string>> names;
  for (const auto& [key, e] : entries_) names.emplace(e->service, e->config.name);
  std::erase_if(counts_, [&](const auto& kv) { return !names.count(kv.first); });
  for (auto& [key, e] : entries_)
    if (!e->resolved && !e->lookup && !e->timer.active() && !e->waiting)
      start(*e);  // new
    else if (new_resolver && e->lookup)
      start(*e);  // its queries went with the old resolver
  pump();
}

void Discovery::pump() {
  while (!waiting_.empty() && in_flight_ < kMaxInFlight) {
    const std::string key = std::move(waiting_.front());
    waiting_.pop_front();
    auto it = entries_.find(key);
    if (it == entries_.end() || !it->second->waiting) continue;  // gone since
    it->second->waiting = false;
    launch(*it->second);
  }
}

void Discovery::expand(ServiceConfig& sc) const {
  dns::expand(sc, [&](const DnsBackendConfig& d) -> const std::vector<Resolved>* {
    auto it = entries_.find(key_of(sc.name, d));
    return it != entries_.end() && it->second->resolved ? &it->second->current : nullptr;
  });
}

void Discovery::start(Entry& e) {
  e.timer.stop();
  e.lookup.reset();  // a lookup of it in flight (old resolver) gives its slot back
  if (in_flight_ >= kMaxInFlight) {
    if (!e.waiting) waiting_.push_back(e.key);
    e.waiting = true;
    return;
  }
  e.waiting = false;
  launch(e);
}

void Discovery::launch(Entry& e) {
  e.lookup = std::make_unique<Lookup>(in_flight_);
  const uint64_t id = e.lookup->id = next_lookup_++;
  const std::string key = e.key;
  // A callback finds its entry by key and lookup id: an entry gone or looked up anew
  // since ignores it.
  auto find = [this, key, id]() -> Entry* {
    auto it = entries_.find(key);
    return it != entries_.end() && it->second->lookup && it->second->lookup->id == id
               ? it->second.get()
               : nullptr;
  };
  if (!e.config.srv) {
    resolve_host(e, e.config.name, e.config.port, 0);
    return;
  }
  e.lookup->pending = 1;
  resolver_->query(e.config.name, Resolver::Type::SRV, [this, find](Resolver::Answer&& a) {
    Entry* entry = find();
    if (!entry) return;
    Lookup& l = *entry->lookup;
    l.ttl = std::min(l.ttl, a.ttl);
    l.refused += a.refused;
    if (!a.ok || a.srv.empty()) {
      if (!a.ok) l.error = a.error;
      else l.error = a.error.empty() ? "no SRV records" : a.error;
      l.pending = 0;
      return finish(*entry);
    }
    // Each distinct target once; its addresses with each record's port and weight.
    std::map<std::string, std::vector<std::pair<uint16_t, int>>> targets;
    for (const Resolver::Srv& s : a.srv) targets[s.target].push_back({s.port, static_cast<int>(s.weight)});
    // From here on the targets' queries decide whether the lookup succeeded.
    l.pending = 0;
    for (auto& [target, ports] : targets) l.pending += 2 * ports.size();
    ++l.pending;  // held while the queries are issued (a callback may come at once)
    for (auto& [target, ports] : targets)
      for (auto [port, weight] : ports) resolve_host(*entry, target, port, srv_weight(static_cast<unsigned>(weight)));
    done_query(*entry);
  });
}

// Queries A and AAAA of HOST; each address found joins the lookup with PORT and WEIGHT.
// The caller has counted these two queries in pending (or none are pending: then this
// counts them itself).
void Discovery::resolve_host(Entry& e, const std::string& host, uint16_t port, int weight) {
  Lookup& l = *e.lookup;
  if (l.pending == 0) l.pending = 2 + 1;  // resolve: true: A, AAAA, and the hold below
  const std::string key = e.key;
  const uint64_t id = l.id;
  for (Resolver::Type t : {Resolver::Type::A, Resolver::Type::AAAA})
    resolver_->query(host, t, [this, key, id, port, weight](Resolver::Answer&& a) {
      auto it = entries_.find(key);
      if (it == entries_.end() || !it->second->lookup || it->second->lookup->id != id) return;
      Entry& entry = *it->second;
      Lookup& lk = *entry.lookup;
      if (a.ok) {
        ++lk.answered;
        if (!a.addresses.empty()) lk.ttl = std::min(lk.ttl, a.ttl);
        for (Address addr : a.addresses) {
          if (addr.family() == AF_INET)
            reinterpret_cast<sockaddr_in*>(&addr.storage)->sin_port = htons(port);
          else
            reinterpret_cast<sockaddr_in6*>(&addr.storage)->sin6_port = htons(port);
          lk.found.push_back({addr, weight});
        }
        if (!a.error.empty()) lk.error = a.error;
      } else {
        lk.error = a.error;
      }
      lk.refused += a.refused;
      done_query(entry);
    });
  if (!e.config.srv) done_query(e);  // releases the hold
}

void Discovery::done_query(Entry& e) {
  if (--e.lookup->pending == 0) finish(e);
}

void Discovery::finish(Entry& e) {
  conclude(e);  // the lookup is gone: its slot is free
  pump();
}

void Discovery::conclude(Entry& e) {
  std::unique_ptr<Lookup> l = std::move(e.lookup);
  LookupCounts& counts = counts_[{e.service, e.config.name}];
  l->refused += normalize(l->found);
  counts.refused += l->refused;
  if (l->answered == 0 || l->found.empty()) {
    ++counts.failure;
    std::string reason = l->answered == 0 ? (l->error.empty() ? "no answer" : l->error)
                                          : "no address" + (l->error.empty() ? "" : " (" + l->error + ")");
    log_.warn("dns failed", {{"service", e.service}, {"name", e.config.name}, {"reason", reason},
                             {"kept", std::to_string(e.current.size())}});
    e.timer.start(to_seconds(config_.min_ttl));
    return;
  }
  ++counts.success;
  const Millis next = clamp_ttl(l->ttl == UINT32_MAX ? 0 : l->ttl, config_.min_ttl, config_.max_ttl);
  e.timer.start(to_seconds(next));
  if (e.resolved && l->found == e.current) return;  // nothing changed: no rebuild
  const Diff d = diff(e.current, l->found);
  e.current = std::move(l->found);
  e.resolved = true;
  std::vector<LogField> fields{{"service", e.service}, {"name", e.config.name},
                               {"added", join(d.added)}, {"removed", join(d.removed)}};
  if (l->refused) fields.push_back({"refused", std::to_string(l->refused)});
  log_.write(LogLevel::Info, "dns changed", fields);
  const std::string service = e.service;  // ON_CHANGE may reconfigure (not this entry)
  on_change_(service);
}

}  // namespace l4lb::dns
