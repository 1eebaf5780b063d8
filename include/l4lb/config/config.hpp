// The config: plain structs, immutable once loaded. load_config() is the only code
// that knows YAML; everything else sees these structs.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "l4lb/base/address.hpp"
#include "l4lb/base/cidr.hpp"
#include "l4lb/base/duration.hpp"

namespace l4lb {

enum class Algorithm {
  RoundRobin,
  WeightedRoundRobin,
  LeastConnections,
  WeightedLeastConnections,
  Random,
  IpHash,
  ConsistentHash,
};
enum class ProxyProtocol { Off, V1, V2 };
enum class HealthType { Tcp, Http, None };
enum class LogLevel { Error = 3, Warn = 4, Info = 6, Debug = 7 };  // syslog priorities
enum class AccessLogFormat { Logfmt, Json };
// How bulk flows move (global.splice): auto = splice unless the destination is on this
// host and the worker has CPU to spare (then copy); always = splice every bulk flow;
// never = copy only.
enum class SpliceMode { Auto, Always, Never };

std::string_view to_string(Algorithm a);       // "round_robin", ...
std::string_view to_string(ProxyProtocol p);   // "off", "v1", "v2"
std::string_view to_string(HealthType t);      // "tcp", "http", "none"
std::string_view to_string(LogLevel l);        // "error", "warn", "info", "debug"

struct HealthCheckConfig {
  HealthType type = HealthType::Tcp;
  Millis interval{5000};
  Millis timeout{2000};
  int healthy_threshold = 2;    // 1..100
  int unhealthy_threshold = 3;  // 1..100
  std::string path = "/health";
  int expect_status_min = 200;  // 100..599; a single code has min == max
  int expect_status_max = 200;
  std::string host;  // empty: the backend address is used as the Host header
};

struct BackendConfig {
  std::string address_text;  // as written in the file
  Address address;           // resolved at load
  int weight = 1;            // 1..1000
  uint32_t max_connections = 0;  // 0 = unlimited
  bool backup = false;
  bool drain = false;
  // A backend from DNS: the name (resolve: true) or SRV name it came from, as written
  // (without the port). Empty for a backend written in the file.
  std::string resolved_from;
};

// A backend entry whose addresses come from DNS, looked up in the background
// (discovery/): `resolve: true` (A and AAAA of NAME, each address with PORT) or `srv`
// (SRV of NAME, then each target's A and AAAA, with the record's port). Every address is
// one backend with these properties.
struct DnsBackendConfig {
  bool srv = false;
  std::string name;        // the host name or SRV name, as written (never an IP literal)
  uint16_t port = 0;       // resolve: the port written; srv: 0 (each record's own)
  std::string text;        // as written: the address "app.internal:8080", or the SRV name
  int weight = 1;          // 1..1000
  bool weight_given = false;  // srv: false = each record's weight (clamped to 1..1000)
  uint32_t max_connections = 0;
  bool backup = false;
  bool drain = false;
  // What identifies the entry across reloads (its resolved set is kept): kind, name, port.
  std::string key() const {
    return (srv ? "srv:" : "host:") + name + ":" + std::to_string(port);
  }
};

// accept_proxy: clients are front balancers that send a PROXY v1/v2 header first.
struct AcceptProxyConfig {
  std::vector<std::string> from_text;  // as written
  CidrSet from;                        // only these peers may connect
};

// per_source: limits per client address (IPv6 per prefix).
struct PerSourceConfig {
  uint32_t max_connections = 0;  // open connections (queued ones included); 0 = unlimited
  uint32_t rate = 0;             // new connections per second (bursts up to it); 0 = unlimited
  int ipv6_prefix = 64;          // 1..128
  bool operator==(const PerSourceConfig&) const = default;
};

// queue: clients that wait while no backend is available.
struct QueueConfig {
  uint32_t size = 0;        // 0 = no queue: such clients are closed at once
  Millis timeout{5000};     // > 0
};

struct ServiceConfig {
  std::string name;         // [A-Za-z0-9_.-]+, 1..64 chars, unique
  std::string listen_text;  // the first listen address as written in the file
  Address listen;           // the first listen address
  std::vector<std::string> listen_texts;  // every listen address, in file order (listen first)
  std::vector<Address> listens;
  std::vector<std::string> sni;  // TLS server names (exact or "*.suffix") as written
  std::optional<AcceptProxyConfig> accept_proxy;
  Algorithm algorithm = Algorithm::RoundRobin;
  Millis connect_timeout{2000};  // > 0
  Millis idle_timeout{300000};   // 0 = never
  int retries = 2;               // 0..100
  uint32_t max_connections = 0;  // 0 = unlimited
  ProxyProtocol proxy_protocol = ProxyProtocol::Off;
  Millis slow_start{0};          // 0 = none: a backend back in service gets its full share at once
  HealthCheckConfig health_check;
  bool access_log = true;        // log this service's connections when global.access_log is set
  std::vector<std::string> allow_text, deny_text;  // as written
  CidrSet allow;                 // clients let in; empty = everyone
  CidrSet deny;                  // clients closed at once (wins over allow)
  PerSourceConfig per_source;
  QueueConfig queue;
  std::vector<BackendConfig> backends;  // at least one, or one in dns_backends
  std::vector<DnsBackendConfig> dns_backends;  // resolve: true and srv entries, in file order
};

struct AdminConfig {
  std::string listen_text;  // as written: "127.0.0.1:9900" or "unix:/run/l4lb/admin.sock"
  Address listen;           // a TCP listener (when unix_path is empty)
  std::string unix_path;    // a unix socket listener: its absolute path
  std::string token_file;   // as written; empty = none (no write requests over TCP)
  std::string token;        // its contents, read at load (trailing newlines dropped)
  bool is_unix() const { return !unix_path.empty(); }
  bool same_listener(const AdminConfig& o) const {
    return unix_path == o.unix_path && (is_unix() || listen == o.listen);
  }
};

// global.access_log: one record per client connection (log/access_log.hpp).
struct AccessLogConfig {
  std::string path;  // a file (appended to; reopened on SIGUSR1), or "stderr"
  AccessLogFormat format = AccessLogFormat::Logfmt;
  bool operator==(const AccessLogConfig&) const = default;
};

// global.dns: how names of resolve/srv entries are looked up (discovery/).
struct DnsConfig {
  std::vector<std::string> servers;  // "IP:PORT" / "[IPV6]:PORT" as written; empty = /etc/resolv.conf
  std::vector<Address> server_addresses;
  Millis min_ttl{1000};   // > 0
  Millis max_ttl{300000}; // >= min_ttl
  Millis timeout{2000};   // one query to one server; > 0
  bool same_resolver(const DnsConfig& o) const {
    return servers == o.servers && timeout == o.timeout;
  }
};

struct GlobalConfig {
  int workers = 1;                   // 1..1024; "auto" in the file = number of CPUs
  uint32_t max_connections = 65536;  // 0 = unlimited, as for services and backends
  Millis drain_timeout{30000};
  LogLevel log_level = LogLevel::Info;
  Millis inspect_timeout{5000};      // > 0: PROXY header and ClientHello, from accept
  SpliceMode splice = SpliceMode::Auto;
  std::optional<AdminConfig> admin;  // absent = no admin port
  std::string state_file;            // admin overrides kept across restarts; empty = none
  std::optional<AccessLogConfig> access_log;  // absent = no access log
  DnsConfig dns;
};

struct Config {
  GlobalConfig global;
  std::vector<ServiceConfig> services;  // in file order; may be empty
};

// Either a valid Config or the list of every error found, each a finished line:
//   "FILE:LINE:COL: path.to.key: message"   (LINE and COL count from 1)
//   "FILE: message"                         (no position: unreadable, too large, ...)
// At most 100 lines, each at most 512 bytes.
struct ConfigResult {
  std::optional<Config> config;
  std::vector<std::string> errors;
  bool ok() const { return config.has_value(); }
};

// Reads and validates the file at PATH (errors are prefixed with PATH as given).
ConfigResult load_config(const std::string& path);
// Same, from text already in memory; FILE_NAME is used as the error prefix.
ConfigResult parse_config(std::string_view yaml_text, const std::string& file_name);

}  // namespace l4lb
