// Backends from DNS in the config: resolve: true, srv, global.dns.
#include <doctest/doctest.h>

#include <string>

#include "l4lb/config/config.hpp"

using namespace l4lb;

namespace {
std::vector<std::string> errors_of(const std::string& yaml) {
  ConfigResult r = parse_config(yaml, "t.yaml");
  CHECK_FALSE(r.ok());
  return r.errors;
}
Config valid(const std::string& yaml) {
  ConfigResult r = parse_config(yaml, "t.yaml");
  for (const auto& e : r.errors) INFO(e);
  REQUIRE(r.ok());
  return *r.config;
}
const std::string kHead = "services:\n  - name: web\n    listen: 127.0.0.1:8080\n    backends:\n";
}  // namespace

TEST_CASE("config dns: resolve and srv entries are read, never looked up at load") {
  Config c = valid(R"(global:
  dns:
    servers: ["127.0.0.1:5353", "[::1]:53"]
    min_ttl: 2s
    max_ttl: 1m
    timeout: 250ms
)" + kHead + R"(      - address: 127.0.0.1:8001
      - address: app.does-not-exist.invalid:8080
        resolve: true
        weight: 3
        backup: true
      - srv: _app._tcp.does-not-exist.invalid
        max_connections: 7
        drain: true
      - resolve: true
        address: other.invalid:9000
)");
  const DnsConfig& d = c.global.dns;
  CHECK(d.servers == std::vector<std::string>{"127.0.0.1:5353", "[::1]:53"});
  CHECK(d.server_addresses.size() == 2);
  CHECK(d.min_ttl == Millis{2000});
  CHECK(d.max_ttl == Millis{60000});
  CHECK(d.timeout == Millis{250});
  const ServiceConfig& s = c.services[0];
  REQUIRE(s.backends.size() == 1);
  REQUIRE(s.dns_backends.size() == 3);
  CHECK(s.dns_backends[0].name == "app.does-not-exist.invalid");
  CHECK(s.dns_backends[0].port == 8080);
  CHECK_FALSE(s.dns_backends[0].srv);
  CHECK(s.dns_backends[0].weight == 3);
  CHECK(s.dns_backends[0].weight_given);
  CHECK(s.dns_backends[0].backup);
  CHECK(s.dns_backends[1].srv);
  CHECK(s.dns_backends[1].name == "_app._tcp.does-not-exist.invalid");
  CHECK(s.dns_backends[1].port == 0);
  CHECK_FALSE(s.dns_backends[1].weight_given);
  CHECK(s.dns_backends[1].max_connections == 7);
  CHECK(s.dns_backends[1].drain);
  CHECK(s.dns_backends[2].name == "other.invalid");  // resolve before address
  CHECK(s.dns_backends[0].key() != s.dns_backends[2].key());
}

TEST_CASE("config dns: defaults, and a service of DNS entries only") {
  Config c = valid(kHead + "      - srv: _x._tcp.example.internal\n");
  CHECK(c.global.dns.servers.empty());
  CHECK(c.global.dns.min_ttl == Millis{1000});
  CHECK(c.global.dns.max_ttl == Millis{300000});
  CHECK(c.global.dns.timeout == Millis{2000});
  CHECK(c.services[0].backends.empty());
  CHECK(c.services[0].dns_backends.size() == 1);
}

TEST_CASE("config dns: bad values, each with its position") {
  struct Case {
    std::string yaml, first;
  };
  const Case cases[] = {
      {kHead + "      - address: 127.0.0.1:80\n        srv: _a._tcp.example\n",
       "t.yaml:6:9: services[0].backends[0]: give either address or srv, not both (srv names its own ports)"},
      {kHead + "      - weight: 2\n",
       "t.yaml:5:9: services[0].backends[0]: missing required key \"address\" (or \"srv\")"},
      {kHead + "      - address: 10.0.0.1:80\n        resolve: true\n",
       "t.yaml:5:9: services[0].backends[0].address: resolve: true needs a host name, got the IP "
       "address \"10.0.0.1:80\" (leave resolve out for a fixed address)"},
      {kHead + "      - srv: _a._tcp.example\n        resolve: true\n",
       "t.yaml:6:9: services[0].backends[0]: resolve applies to address; an srv entry is always looked up"},
      {kHead + "      - srv: \"bad name!\"\n",
       "t.yaml:5:9: services[0].backends[0].srv: must be an SRV name such as "
       "\"_app._tcp.example.internal\", got \"bad name!\""},
      {kHead + "      - address: 127.0.0.1:80\n        resolve: yes please\n",
       "t.yaml:6:9: services[0].backends[0].resolve: must be true or false, got \"yes please\""},
      {kHead + "      - address: a.example:0\n        resolve: true\n",
       "t.yaml:5:9: services[0].backends[0].address: port must be 1..65535, got \"0\""},
      {kHead + "      - srv: _a._tcp.example\n      - srv: _a._tcp.example\n",
       "t.yaml:6:9: services[0].backends[1]: duplicate DNS entry \"_a._tcp.example\" (same as backends[0])"},
      {"global:\n  dns:\n    servers: [dns.example:53]\n" + kHead + "      - address: 127.0.0.1:1\n",
       "t.yaml:3:15: global.dns.servers[0]: must be a resolver address IP:PORT or [IPV6]:PORT (not a "
       "name), got \"dns.example:53\""},
      {"global:\n  dns:\n    servers: [127.0.0.1]\n" + kHead + "      - address: 127.0.0.1:1\n",
       "t.yaml:3:15: global.dns.servers[0]: missing port in \"127.0.0.1\" (expected HOST:PORT)"},
      {"global:\n  dns:\n    min_ttl: 10s\n    max_ttl: 5s\n" + kHead + "      - address: 127.0.0.1:1\n",
       "t.yaml:2:3: global.dns: min_ttl (10s) is greater than max_ttl (5s)"},
      {"global:\n  dns:\n    timeout: 0s\n" + kHead + "      - address: 127.0.0.1:1\n",
       "t.yaml:3:5: global.dns.timeout: must be greater than 0, got \"0s\""},
      {"global:\n  dns:\n    server: []\n" + kHead + "      - address: 127.0.0.1:1\n",
       "t.yaml:3:5: global.dns.server: unknown key, did you mean \"servers\"?"},
  };
  for (const Case& c : cases) {
    INFO(c.yaml);
    auto errors = errors_of(c.yaml);
    REQUIRE_FALSE(errors.empty());
    CHECK(errors[0] == c.first);
  }
}
