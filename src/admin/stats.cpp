#include "l4lb/admin/stats.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "l4lb/admin/prom.hpp"

#ifndef L4LB_VERSION
#define L4LB_VERSION "0.0.0"
#endif

namespace l4lb {

using ojson = nlohmann::ordered_json;

HealthVerdict health_verdict(const ServerState& state) {
  HealthVerdict v;
  if (state.draining) {
    v.status = 503;
    v.body = ojson{{"status", "stopping"}};
    return v;
  }
  ojson missing = ojson::array();
  for (const auto& svc : state.services)
    if (!svc->pool.any_available()) missing.push_back(svc->config.name);
  if (missing.empty()) {
    v.body = ojson{{"status", "ok"}};
  } else {
    v.status = 503;
    v.body = ojson{{"status", "unavailable"}, {"services", std::move(missing)}};
  }
  return v;
}

std::string_view backend_state(const Backend& b, const ServiceConfig& service) {
  if (b.admin_state() == AdminState::Maint) return "maint";
  if (b.admin_state() == AdminState::Drain) return "draining";
  if (b.health == HealthState::Unknown && service.health_check.type == HealthType::None) return "up";
  return to_string(b.health);
}

std::string rfc3339(double unix_seconds) {
  auto t = static_cast<time_t>(unix_seconds);
  tm utc{};
  ::gmtime_r(&t, &utc);
  char buf[32];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return std::string(buf, n);
}

ojson backend_json(const Backend& b, const ServiceConfig& sc) {
  const HealthRecord& hr = b.health_record;
  const BackendCounters c = b.totals();
  ojson history = ojson::array();
  for (const auto& t : hr.history)
    history.push_back(ojson{{"at", rfc3339(t.at)}, {"from", to_string(t.from)}, {"state", to_string(t.to)}, {"reason", t.reason}});
  ojson out = ojson{
      {"address", b.config.address_text},
      {"state", backend_state(b, sc)},
      {"admin_state", admin_state_name(b.admin_state())},
      {"weight", b.weight()},
      {"configured_weight", b.config.weight},
      {"override", b.override_state || b.override_weight
                       ? ojson{{"state", b.override_state ? ojson(admin_state_name(*b.override_state))
                                                          : ojson(nullptr)},
                               {"weight", b.override_weight ? ojson(*b.override_weight) : ojson(nullptr)}}
                       : ojson(nullptr)},
      {"backup", b.config.backup},
      {"active_connections", b.live()},
      {"total_connections", c.connections},
      {"failed_connections", c.failures},
      {"bytes_in", c.bytes_in},
      {"bytes_out", c.bytes_out},
      {"last_check", hr.last_check > 0 ? ojson(rfc3339(hr.last_check)) : ojson(nullptr)},
      {"last_check_error", hr.last_error.empty() ? ojson(nullptr) : ojson(hr.last_error)},
      // extras
      {"max_connections", b.config.max_connections},
      {"health_checks", ojson{{"success", hr.checks_ok}, {"failure", hr.checks_failed}}},
      {"history", std::move(history)},
      {"slow_start", b.ramp_start >= 0},
  };
  if (!b.config.resolved_from.empty()) out["resolved_from"] = b.config.resolved_from;
  return out;
}

namespace {
ojson rejected_json(const Service& svc) {
  ojson counts = ojson::object();
  for (size_t i = 0; i < kRejectedReasons; ++i)
    counts[std::string(to_string(static_cast<Rejected>(i)))] = svc.rejected(static_cast<Rejected>(i));
  return counts;
}
}  // namespace

ojson stats_json(const ServerState& state, double now) {
  ojson services = ojson::array();
  for (const auto& svc : state.services) {
    const ServiceConfig& sc = svc->config;
    const ServiceCounters c = svc->totals();
    ojson backends = ojson::array();
    for (const auto& b : svc->pool.backends()) backends.push_back(backend_json(*b, sc));
    services.push_back(ojson{
        {"name", sc.name},
        {"listen", sc.listen_text},
        {"listen_all", sc.listen_texts},
        {"sni", sc.sni},
        {"algorithm", to_string(sc.algorithm)},
        {"active_connections", c.active},
        {"total_connections", c.accepted},
        {"refused_connections", c.refused},
        {"queued", svc->queue.size()},
        {"rejected_connections", rejected_json(*svc)},
        {"bytes_in", c.bytes_in},
        {"bytes_out", c.bytes_out},
        {"backends", std::move(backends)},
        // extras
        {"available", svc->pool.any_available()},
        {"health_check", to_string(sc.health_check.type)},
        {"error_connections", c.errors},
    });
  }
  ojson unrouted = ojson::object();
  for (const auto& r : state.routes) {
    if (!r->unrouted) continue;
    ojson counts = ojson::object();
    for (size_t i = 0; i < kUnroutedReasons; ++i)
      counts[std::string(to_string(static_cast<Unrouted>(i)))] = r->unrouted->total(static_cast<Unrouted>(i));
    unrouted[r->listen_text] = std::move(counts);
  }
  double uptime = state.start_time > 0 && now > state.start_time ? now - state.start_time : 0.0;
  uptime = std::round(uptime * 1000.0) / 1000.0;  // milliseconds are enough
  return ojson{
      {"version", L4LB_VERSION},
      {"uptime_seconds", uptime},
      {"config_reloads", state.reloads_ok},
      {"services", std::move(services)},
      {"unrouted", std::move(unrouted)},
      // extras
      {"config_reloads_failed", state.reloads_failed},
      {"config_last_reload_successful", state.last_reload_ok},
      {"config_generation", state.generation},
      {"draining", state.draining},
  };
}

std::string dump_json(const ojson& j) {
  return j.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
}

// ------------------------------------------------------------------ process info

namespace {

bool read_file(const char* path, std::string& out) {
  std::ifstream f(path);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

double boot_time() {
  std::string text;
  if (!read_file("/proc/stat", text)) return 0;
  size_t pos = text.find("\nbtime ");
  if (pos == std::string::npos) return 0;
  return std::strtod(text.c_str() + pos + 7, nullptr);
}

}  // namespace

ProcessInfo read_process_info(double fallback_start) {
  ProcessInfo p;
  p.start_time_seconds = fallback_start;

  if (DIR* d = ::opendir("/proc/self/fd")) {
    int n = 0;
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    p.open_fds = n > 0 ? n - 1 : 0;  // not the fd opendir used
  }
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0)
    p.max_fds = rl.rlim_cur == RLIM_INFINITY ? -1.0 : static_cast<double>(rl.rlim_cur);
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) == 0) {
    p.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                    static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  }

  // /proc/self/stat: "pid (comm) state ppid ..."; fields counted after the ')'.
  std::string stat;
  if (read_file("/proc/self/stat", stat)) {
    size_t close = stat.rfind(')');
    if (close != std::string::npos) {
      std::istringstream in(stat.substr(close + 2));
      std::string field;
      double starttime = 0, vsize = 0, rss = 0;
      for (int i = 3; in >> field && i <= 24; ++i) {  // field 3 is the state
        if (i == 22) starttime = std::strtod(field.c_str(), nullptr);
        if (i == 23) vsize = std::strtod(field.c_str(), nullptr);
        if (i == 24) rss = std::strtod(field.c_str(), nullptr);
      }
      long page = ::sysconf(_SC_PAGESIZE);
      long ticks = ::sysconf(_SC_CLK_TCK);
      p.virtual_memory_bytes = vsize;
      p.resident_memory_bytes = rss * static_cast<double>(page > 0 ? page : 4096);
      double boot = boot_time();
      if (boot > 0 && ticks > 0) p.start_time_seconds = boot + starttime / static_cast<double>(ticks);
    }
  }
  return p;
}

// ------------------------------------------------------------------ /metrics

std::string metrics_text(const ServerState& state, const ProcessInfo& process) {
  using prom::Type;
  prom::Writer w;
  const auto& services = state.services;

  // Every backend of every service, with its labels, for the per-backend families.
  auto each_backend = [&](auto&& fn) {
    for (const auto& svc : services)
      for (const auto& b : svc->pool.backends()) fn(*svc, *b);
  };

  w.family("l4lb_build_info", Type::Gauge, "Build information; always 1.");
  w.sample({{"version", L4LB_VERSION}}, uint64_t{1});

  w.family("l4lb_access_log_dropped_total", Type::Counter,
           "Access-log records dropped: did not fit in the 1 MiB buffer, or lost to a failed write.");
  w.sample({}, state.access_log_dropped());

  w.family("l4lb_config_reloads_total", Type::Counter, "Config reloads (SIGHUP) by result.");
  w.sample({{"result", "success"}}, state.reloads_ok);
  w.sample({{"result", "failure"}}, state.reloads_failed);

  w.family("l4lb_config_last_reload_successful", Type::Gauge,
           "1 if the last config reload succeeded (or none happened yet), else 0.");
  w.sample({}, uint64_t{state.last_reload_ok ? 1u : 0u});

  w.family("l4lb_config_generation", Type::Gauge,
           "The running config's generation: 1 at start, +1 per successful reload.");
  w.sample({}, state.generation);

  w.family("l4lb_draining", Type::Gauge, "1 while draining after SIGTERM, else 0.");
  w.sample({}, uint64_t{state.draining ? 1u : 0u});

  w.family("l4lb_service_connections_active", Type::Gauge,
           "Clients accepted and not yet closed.");
  for (const auto& s : services) w.sample({{"service", s->config.name}}, s->active());

  w.family("l4lb_service_connections_total", Type::Counter,
           "Clients accepted, refused ones included.");
  for (const auto& s : services) w.sample({{"service", s->config.name}}, s->totals().accepted);

  w.family("l4lb_service_connections_refused_total", Type::Counter,
           "Clients closed at once without a backend (none available, or a limit reached).");
  for (const auto& s : services) w.sample({{"service", s->config.name}}, s->totals().refused);

  w.family("l4lb_service_connections_rejected_total", Type::Counter,
           "Clients rejected at admission (reset), by reason; not in refused.");
  for (const auto& s : services)
    for (size_t i = 0; i < kRejectedReasons; ++i)
      w.sample({{"service", s->config.name}, {"reason", std::string(to_string(static_cast<Rejected>(i)))}},
               s->rejected(static_cast<Rejected>(i)));

  w.family("l4lb_service_queue_length", Type::Gauge, "Clients waiting for a backend now.");
  for (const auto& s : services) w.sample({{"service", s->config.name}}, uint64_t{s->queue.size()});

  w.family("l4lb_listener_connections_unrouted_total", Type::Counter,
           "Clients of an inspecting listen address closed without a service, by reason.");
  for (const auto& r : state.routes) {
    if (!r->unrouted) continue;
    for (size_t i = 0; i < kUnroutedReasons; ++i) {
      auto why = static_cast<Unrouted>(i);
      w.sample({{"listen", r->listen_text}, {"reason", std::string(to_string(why))}}, r->unrouted->total(why));
    }
  }

  w.family("l4lb_service_connections_errors_total", Type::Counter,
           "Connections reset because of an internal error (an exception in a handler).");
  for (const auto& s : services) w.sample({{"service", s->config.name}}, s->totals().errors);

  w.family("l4lb_service_bytes_total", Type::Counter,
           "Payload bytes: in = from clients to backends, out = from backends to clients.");
  for (const auto& s : services) {
    const ServiceCounters c = s->totals();
    w.sample({{"service", s->config.name}, {"direction", "in"}}, c.bytes_in);
    w.sample({{"service", s->config.name}, {"direction", "out"}}, c.bytes_out);
  }

  w.family("l4lb_service_available", Type::Gauge,
           "1 if the service has at least one available backend, else 0.");
  for (const auto& s : services)
    w.sample({{"service", s->config.name}}, uint64_t{s->pool.any_available() ? 1u : 0u});

  w.family("l4lb_backend_up", Type::Gauge, "1 unless the backend's health checks mark it down.");
  each_backend([&](const Service& s, const Backend& b) {
    w.sample({{"service", s.config.name}, {"backend", b.config.address_text}},
             uint64_t{b.health != HealthState::Down ? 1u : 0u});
  });

  w.family("l4lb_backend_draining", Type::Gauge,
           "1 if the backend takes no new connections by its admin state (drain or maint), else 0.");
  each_backend([&](const Service& s, const Backend& b) {
    w.sample({{"service", s.config.name}, {"backend", b.config.address_text}},
             uint64_t{b.admin_state() != AdminState::Ready ? 1u : 0u});
  });

  w.family("l4lb_backend_admin_state", Type::Gauge, "1 for the backend's admin state in force.");
  each_backend([&](const Service& s, const Backend& b) {
    for (AdminState st : {AdminState::Ready, AdminState::Drain, AdminState::Maint})
      w.sample({{"service", s.config.name}, {"backend", b.config.address_text},
                {"state", std::string(admin_state_name(st))}},
               uint64_t{b.admin_state() == st ? 1u : 0u});
  });

  w.family("l4lb_backend_weight", Type::Gauge, "The backend's weight in force (override, slow start).");
  each_backend([&](const Service& s, const Backend& b) {
    w.sample({{"service", s.config.name}, {"backend", b.config.address_text}},
             static_cast<uint64_t>(b.weight()));
  });

  w.family("l4lb_backend_connections_active", Type::Gauge,
           "Open backend sockets (connects under way included).");
  each_backend([&](const Service& s, const Backend& b) {
    w.sample({{"service", s.config.name}, {"backend", b.config.address_text}},
             uint64_t{b.live()});
  });

  w.family("l4lb_backend_connections_total", Type::Counter, "Connections established.");
  each_backend([&](const Service& s, const Backend& b) {
    w.sample({{"service", s.config.name}, {"backend", b.config.address_text}},
             b.totals().connections);
  });

  w.family("l4lb_backend_connect_failures_total", Type::Counter,
           "Connect attempts that failed (refused, timed out, ...).");
  each_backend([&](const Service& s, const Backend& b) {
    w.sample({{"service", s.config.name}, {"backend", b.config.address_text}},
             b.totals().failures);
  });

  w.family("l4lb_backend_bytes_total", Type::Counter,
           "Payload bytes: in = from clients to the backend, out = from the backend to clients.");
  each_backend([&](const Service& s, const Backend& b) {
    const BackendCounters c = b.totals();
    w.sample({{"service", s.config.name}, {"backend", b.config.address_text}, {"direction", "in"}},
             c.bytes_in);
    w.sample({{"service", s.config.name}, {"backend", b.config.address_text}, {"direction", "out"}},
             c.bytes_out);
  });

  w.family("l4lb_health_checks_total", Type::Counter,
           "Finished health checks (and failed real connects counted as checks) by result.");
  each_backend([&](const Service& s, const Backend& b) {
    w.sample({{"service", s.config.name}, {"backend", b.config.address_text}, {"result", "success"}},
             b.health_record.checks_ok);
    w.sample({{"service", s.config.name}, {"backend", b.config.address_text}, {"result", "failure"}},
             b.health_record.checks_failed);
  });

  w.family("l4lb_backend_connect_duration_seconds", Type::Histogram,
           "Time from connect() to an established backend connection.");
  each_backend([&](const Service& s, const Backend& b) {
    const ConnectHistogram h = b.connect_times();
    w.histogram({{"service", s.config.name}, {"backend", b.config.address_text}},
                ConnectHistogram::kBounds, h.counts, h.sum);
  });

  w.family("l4lb_dns_lookups_total", Type::Counter,
           "Lookups of DNS backend entries (resolve/srv) by result; empty ones count as failure.");
  for (const auto& [key, c] : state.dns_lookups) {
    w.sample({{"service", key.first}, {"name", key.second}, {"result", "success"}}, c.success);
    w.sample({{"service", key.first}, {"name", key.second}, {"result", "failure"}}, c.failure);
  }
  w.family("l4lb_dns_addresses_refused_total", Type::Counter,
           "Addresses a DNS entry yielded beyond the cap (1000 per entry), not used.");
  for (const auto& [key, c] : state.dns_lookups)
    w.sample({{"service", key.first}, {"name", key.second}}, c.refused);

  w.family("process_open_fds", Type::Gauge, "Number of open file descriptors.");
  w.sample({}, process.open_fds);
  w.family("process_max_fds", Type::Gauge, "Maximum number of open file descriptors.");
  w.sample({}, process.max_fds);
  w.family("process_resident_memory_bytes", Type::Gauge, "Resident memory size in bytes.");
  w.sample({}, process.resident_memory_bytes);
  w.family("process_virtual_memory_bytes", Type::Gauge, "Virtual memory size in bytes.");
  w.sample({}, process.virtual_memory_bytes);
  w.family("process_cpu_seconds_total", Type::Counter, "Total user and system CPU time spent in seconds.");
  w.sample({}, process.cpu_seconds);
  w.family("process_start_time_seconds", Type::Gauge,
           "Start time of the process since unix epoch in seconds.");
  w.sample({}, process.start_time_seconds);

  return w.take();
}

}  // namespace l4lb
