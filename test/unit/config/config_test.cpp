#include "l4lb/config/config.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include <stdlib.h>
#include <unistd.h>

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
  CHECK(r.errors.empty());
  return *r.config;
}

// A minimal valid service, indented to sit under "services:".
const std::string kService = R"(
  - name: web
    listen: 127.0.0.1:8080
    backends:
      - address: 127.0.0.1:8001
)";

}  // namespace

TEST_CASE("config: a full file, every key read into the structs") {
  Config c = valid(R"(# every key, none at its default
global:
  workers: 4
  max_connections: 1000
  drain_timeout: 1m30s
  log_level: debug
  admin:
    listen: 127.0.0.1:9900
services:
  - name: web.1_a-b
    listen: 0.0.0.0:8080
    algorithm: weighted_least_connections
    connect_timeout: 250ms
    idle_timeout: 0
    retries: 0
    max_connections: 10000000
    proxy_protocol: v2
    health_check:
      type: http
      interval: 1.5
      timeout: 1s
      healthy_threshold: 1
      unhealthy_threshold: 100
      path: /healthz?full=1
      expect_status: "200-399"
      host: example.internal
    backends:
      - address: 127.0.0.1:8001
        weight: 1000
        max_connections: 100
        backup: yes
        drain: true
      - address: "[::1]:8002"
  - name: db
    listen: "[::]:3306"
    algorithm: consistent_hash
    proxy_protocol: off
    health_check: {type: none, expect_status: 204}
    backends: [{address: "localhost:3307", weight: 5}]
)");
  CHECK(c.global.workers == 4);
  CHECK(c.global.max_connections == 1000);
  CHECK(c.global.drain_timeout == Millis{90'000});
  CHECK(c.global.log_level == LogLevel::Debug);
  REQUIRE(c.global.admin.has_value());
  CHECK(c.global.admin->listen_text == "127.0.0.1:9900");
  CHECK(c.global.admin->listen.to_string() == "127.0.0.1:9900");

  REQUIRE(c.services.size() == 2);
  const ServiceConfig& web = c.services[0];
  CHECK(web.name == "web.1_a-b");
  CHECK(web.listen_text == "0.0.0.0:8080");
  CHECK(web.listen.is_wildcard());
  CHECK(web.listen.port() == 8080);
  CHECK(web.algorithm == Algorithm::WeightedLeastConnections);
  CHECK(web.connect_timeout == Millis{250});
  CHECK(web.idle_timeout == Millis{0});
  CHECK(web.retries == 0);
  CHECK(web.max_connections == 10'000'000);
  CHECK(web.proxy_protocol == ProxyProtocol::V2);
  const HealthCheckConfig& hc = web.health_check;
  CHECK(hc.type == HealthType::Http);
  CHECK(hc.interval == Millis{1500});
  CHECK(hc.timeout == Millis{1000});
  CHECK(hc.healthy_threshold == 1);
  CHECK(hc.unhealthy_threshold == 100);
  CHECK(hc.path == "/healthz?full=1");
  CHECK(hc.expect_status_min == 200);
  CHECK(hc.expect_status_max == 399);
  CHECK(hc.host == "example.internal");
  REQUIRE(web.backends.size() == 2);
  CHECK(web.backends[0].address_text == "127.0.0.1:8001");
  CHECK(web.backends[0].address.to_string() == "127.0.0.1:8001");
  CHECK(web.backends[0].weight == 1000);
  CHECK(web.backends[0].max_connections == 100);
  CHECK(web.backends[0].backup);
  CHECK(web.backends[0].drain);
  CHECK(web.backends[1].address.to_string() == "[::1]:8002");
  CHECK(web.backends[1].weight == 1);

  const ServiceConfig& db = c.services[1];
  CHECK(db.name == "db");
  CHECK(db.listen.to_string() == "[::]:3306");
  CHECK(db.algorithm == Algorithm::ConsistentHash);
  CHECK(db.proxy_protocol == ProxyProtocol::Off);
  CHECK(db.health_check.type == HealthType::None);
  CHECK(db.health_check.expect_status_min == 204);
  CHECK(db.health_check.expect_status_max == 204);
  REQUIRE(db.backends.size() == 1);
  CHECK(db.backends[0].address_text == "localhost:3307");
  CHECK(db.backends[0].address.to_string() == "127.0.0.1:3307");
  CHECK(db.backends[0].weight == 5);
}

TEST_CASE("config: omitted keys take the documented defaults") {
  Config c = valid("services:" + kService);
  CHECK(c.global.workers == 1);
  CHECK(c.global.max_connections == 65536);
  CHECK(c.global.drain_timeout == Millis{30'000});
  CHECK(c.global.log_level == LogLevel::Info);
  CHECK_FALSE(c.global.admin.has_value());
  REQUIRE(c.services.size() == 1);
  const ServiceConfig& s = c.services[0];
  CHECK(s.algorithm == Algorithm::RoundRobin);
  CHECK(s.connect_timeout == Millis{2000});
  CHECK(s.idle_timeout == Millis{300'000});
  CHECK(s.retries == 2);
  CHECK(s.max_connections == 0);
  CHECK(s.proxy_protocol == ProxyProtocol::Off);
  CHECK(s.health_check.type == HealthType::Tcp);
  CHECK(s.health_check.interval == Millis{5000});
  CHECK(s.health_check.timeout == Millis{2000});
  CHECK(s.health_check.healthy_threshold == 2);
  CHECK(s.health_check.unhealthy_threshold == 3);
  CHECK(s.health_check.path == "/health");
  CHECK(s.health_check.expect_status_min == 200);
  CHECK(s.health_check.expect_status_max == 200);
  CHECK(s.health_check.host.empty());
  CHECK(s.backends[0].weight == 1);
  CHECK(s.backends[0].max_connections == 0);
  CHECK_FALSE(s.backends[0].backup);
  CHECK_FALSE(s.backends[0].drain);
}

TEST_CASE("config: small valid variations") {
  CHECK(valid("global:\n  log_level: warn\n").services.empty());
  CHECK(valid("services: []\n").global.splice == SpliceMode::Auto);
  CHECK(valid("global: {splice: always}\n").global.splice == SpliceMode::Always);
  CHECK(valid("global: {splice: never}\n").global.splice == SpliceMode::Never);
  CHECK(valid("services: []\n").services.empty());
  CHECK(valid("global:\nservices:\n").services.empty());  // empty values = omitted
  CHECK(valid("global: {workers: auto}\n").global.workers ==
        static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  CHECK(valid("global: {workers: 1024}\n").global.workers == 1024);
  CHECK(valid("global: {admin: }\n").global.admin == std::nullopt);
  for (const char* off : {"off", "false", "\"off\"", "no"})
    CHECK(valid("services:" + kService + "    proxy_protocol: " + off + "\n")
              .services[0]
              .proxy_protocol == ProxyProtocol::Off);
  CHECK(valid("services:" + kService + "    proxy_protocol: v1\n").services[0].proxy_protocol ==
        ProxyProtocol::V1);
  CHECK(valid("services:" + kService + "    health_check: {interval: 5}\n")
            .services[0]
            .health_check.interval == Millis{5000});
  // The same port on two specific addresses does not overlap; nor does IPv4 vs IPv6.
  CHECK(valid("services:" + kService +
              "  - {name: b, listen: 127.0.0.2:8080, backends: [{address: 127.0.0.1:1}]}\n"
              "  - {name: c, listen: \"[::]:8080\", backends: [{address: 127.0.0.1:1}]}\n")
            .services.size() == 3);
  // Anchors and aliases within the budget are fine.
  Config c = valid(
      "services:\n  - &s {name: a, listen: 127.0.0.1:1, backends: &b [{address: 127.0.0.1:1}]}\n"
      "  - {name: b, listen: 127.0.0.1:2, backends: *b}\n");
  CHECK(c.services[1].backends[0].address.to_string() == "127.0.0.1:1");
}

// Each bad file: the complete first error line, and how many errors in all.
struct BadCase {
  const char* what;
  std::string yaml;
  std::string first;
  size_t count = 1;
};

TEST_CASE("config: bad files, each error with its line, column, path and reason") {
  const std::string head = "services:" + kService;  // service 0 spans lines 2..5
  const BadCase cases[] = {
      {"invalid YAML", "services: [a, b\n",
       "t.yaml:2:1: invalid YAML: end of sequence flow not found"},
      {"invalid YAML, tab indent", "global:\n\tworkers: 1\n",
       "t.yaml:2:9: invalid YAML: illegal map value"},
      {"not a mapping", "- a\n- b\n", "t.yaml:1:1: top level must be a mapping, got a sequence"},
      {"scalar document", "hello\n", "t.yaml:1:1: top level must be a mapping, got \"hello\""},
      {"empty", "", "t.yaml: config is empty"},
      {"only comments", "# nothing\n\n", "t.yaml: config is empty"},
      {"two documents", "global: {}\n---\nglobal: {}\n",
       "t.yaml: only one YAML document is allowed"},
      {"unknown key with hint", head + "    algoritm: random\n",
       "t.yaml:6:5: services[0].algoritm: unknown key, did you mean \"algorithm\"?"},
      {"unknown key without hint", head + "    colour: red\n",
       "t.yaml:6:5: services[0].colour: unknown key"},
      {"unknown top-level key with hint", "servics: []\n",
       "t.yaml:1:1: servics: unknown key, did you mean \"services\"?"},
      {"non-string key", "? [a]\n: 1\n", "t.yaml:1:3: keys must be strings, got a sequence"},
      {"services not a sequence", "services: {name: web}\n",
       "t.yaml:1:1: services: must be a sequence, got a mapping"},
      {"service not a mapping", "services: [web]\n",
       "t.yaml:1:12: services[0]: must be a mapping, got \"web\""},
      {"global not a mapping", "global: 3\n", "t.yaml:1:1: global: must be a mapping, got \"3\""},
      {"bool not a bool", head + "        backup: maybe\n",
       "t.yaml:6:9: services[0].backends[0].backup: must be true or false, got \"maybe\""},
      {"weight garbage", head + "        weight: heavy\n",
       "t.yaml:6:9: services[0].backends[0].weight: must be an integer 1..1000, got \"heavy\""},
      {"weight too big", head + "        weight: 1001\n",
       "t.yaml:6:9: services[0].backends[0].weight: must be an integer 1..1000, got \"1001\""},
      {"weight zero", head + "        weight: 0\n",
       "t.yaml:6:9: services[0].backends[0].weight: must be an integer 1..1000, got \"0\""},
      {"weight a mapping", head + "        weight: {a: 1}\n",
       "t.yaml:6:9: services[0].backends[0].weight: must be an integer 1..1000, got a mapping"},
      {"weight empty", head + "        weight:\n",
       "t.yaml:6:9: services[0].backends[0].weight: must be an integer 1..1000, got nothing"},
      {"backend max_connections", head + "        max_connections: 10000001\n",
       "t.yaml:6:9: services[0].backends[0].max_connections: must be an integer 0..10000000, got "
       "\"10000001\""},
      {"port out of range",
       "services:\n  - name: web\n    listen: 127.0.0.1:99999\n    backends: [{address: "
       "127.0.0.1:1}]\n",
       "t.yaml:3:5: services[0].listen: port must be 1..65535, got \"99999\""},
      {"backend port zero",
       "services:\n  - name: web\n    listen: 127.0.0.1:80\n    backends: [{address: "
       "127.0.0.1:0}]\n",
       "t.yaml:4:17: services[0].backends[0].address: port must be 1..65535, got \"0\""},
      {"address without port", "global:\n  admin: {listen: 127.0.0.1}\n",
       "t.yaml:2:11: global.admin.listen: missing port in \"127.0.0.1\" (expected HOST:PORT)"},
      {"address bad brackets", "global:\n  admin:\n    listen: \"[::1:80\"\n",
       "t.yaml:3:5: global.admin.listen: missing \"]\" in \"[::1:80\" (expected [IPV6]:PORT)"},
      {"threshold zero", head + "    health_check:\n      healthy_threshold: 0\n",
       "t.yaml:7:7: services[0].health_check.healthy_threshold: must be an integer 1..100, got "
       "\"0\""},
      {"threshold too big", head + "    health_check:\n      unhealthy_threshold: 101\n",
       "t.yaml:7:7: services[0].health_check.unhealthy_threshold: must be an integer 1..100, got "
       "\"101\""},
      {"retries negative", head + "    retries: -1\n",
       "t.yaml:6:5: services[0].retries: must be an integer 0..100, got \"-1\""},
      {"retries too many", head + "    retries: 101\n",
       "t.yaml:6:5: services[0].retries: must be an integer 0..100, got \"101\""},
      {"retries fractional", head + "    retries: 1.5\n",
       "t.yaml:6:5: services[0].retries: must be an integer 0..100, got \"1.5\""},
      {"workers zero", "global:\n  workers: 0\n",
       "t.yaml:2:3: global.workers: must be an integer 1..1024 or \"auto\", got \"0\""},
      {"workers too many", "global:\n  workers: 1025\n",
       "t.yaml:2:3: global.workers: must be an integer 1..1024 or \"auto\", got \"1025\""},
      {"global max_connections negative", "global:\n  max_connections: -1\n",
       "t.yaml:2:3: global.max_connections: must be an integer 0..10000000, got \"-1\""},
      {"service max_connections", head + "    max_connections: -5\n",
       "t.yaml:6:5: services[0].max_connections: must be an integer 0..10000000, got \"-5\""},
      {"bad duration unit", head + "    connect_timeout: 5sec\n",
       "t.yaml:6:5: services[0].connect_timeout: invalid duration \"5sec\": unknown unit \"sec\" "
       "(use ms, s, m, h)"},
      {"negative duration", "global:\n  drain_timeout: -1s\n",
       "t.yaml:2:3: global.drain_timeout: invalid duration \"-1s\": must not be negative"},
      {"duration over 30 days", "global:\n  drain_timeout: 31d\n",
       "t.yaml:2:3: global.drain_timeout: invalid duration \"31d\": unknown unit \"d\" (use ms, "
       "s, m, h)"},
      {"duration too long", "global:\n  drain_timeout: 721h\n",
       "t.yaml:2:3: global.drain_timeout: invalid duration \"721h\": exceeds the maximum of 30 "
       "days"},
      {"zero interval", head + "    health_check: {interval: 0s}\n",
       "t.yaml:6:20: services[0].health_check.interval: must be greater than 0, got \"0s\""},
      {"zero connect_timeout", head + "    connect_timeout: 0\n",
       "t.yaml:6:5: services[0].connect_timeout: must be greater than 0, got \"0\""},
      {"duplicate service name",
       head + "  - name: web\n    listen: 127.0.0.1:8081\n    backends: [{address: 127.0.0.1:1}]\n",
       "t.yaml:6:5: services[1].name: duplicate service name \"web\", first at line 2"},
      {"duplicate listen",
       head + "  - name: api\n    listen: 127.0.0.1:8080\n    backends: [{address: 127.0.0.1:1}]\n",
       "t.yaml:7:5: services[1].listen: duplicate listen address \"127.0.0.1:8080\", already used "
       "by "
       "services[0].listen \"127.0.0.1:8080\" at line 3"},
      {"overlapping wildcard listen",
       head + "  - name: api\n    listen: 0.0.0.0:8080\n    backends: [{address: 127.0.0.1:1}]\n",
       "t.yaml:7:5: services[1].listen: listen address \"0.0.0.0:8080\" overlaps "
       "services[0].listen "
       "\"127.0.0.1:8080\" at line 3"},
      {"specific listen under an earlier wildcard",
       "services:\n  - {name: a, listen: \"[::]:80\", backends: [{address: 127.0.0.1:1}]}\n"
       "  - {name: b, listen: \"[::1]:80\", backends: [{address: 127.0.0.1:1}]}\n",
       "t.yaml:3:15: services[1].listen: listen address \"[::1]:80\" overlaps services[0].listen "
       "\"[::]:80\" at line 2"},
      {"admin listen clashes with a service",
       head + "global:\n  admin:\n    listen: 0.0.0.0:8080\n",
       "t.yaml:8:5: global.admin.listen: listen address \"0.0.0.0:8080\" overlaps "
       "services[0].listen "
       "\"127.0.0.1:8080\" at line 3"},
      {"missing backends", "services:\n  - name: web\n    listen: 127.0.0.1:80\n",
       "t.yaml:2:5: services[0]: missing required key \"backends\""},
      {"empty backends", "services:\n  - name: web\n    listen: 127.0.0.1:80\n    backends: []\n",
       "t.yaml:4:5: services[0].backends: must list at least one backend"},
      {"null backends", "services:\n  - name: web\n    listen: 127.0.0.1:80\n    backends:\n",
       "t.yaml:4:5: services[0].backends: must list at least one backend"},
      {"missing name",
       "services:\n  - listen: 127.0.0.1:80\n    backends: [{address: 127.0.0.1:1}]\n",
       "t.yaml:2:5: services[0]: missing required key \"name\""},
      {"missing listen", "services:\n  - name: web\n    backends: [{address: 127.0.0.1:1}]\n",
       "t.yaml:2:5: services[0]: missing required key \"listen\""},
      {"missing address",
       "services:\n  - name: web\n    listen: 127.0.0.1:80\n    backends:\n      - weight: 2\n",
       "t.yaml:5:9: services[0].backends[0]: missing required key \"address\" (or \"srv\")"},
      {"missing admin listen", "global:\n  admin: {}\n",
       "t.yaml:2:10: global.admin: missing required key \"listen\""},
      {"unknown algorithm", head + "    algorithm: fastest\n",
       "t.yaml:6:5: services[0].algorithm: must be one of round_robin, weighted_round_robin, "
       "least_connections, weighted_least_connections, random, ip_hash, consistent_hash, got "
       "\"fastest\""},
      {"unknown health type", head + "    health_check:\n      type: icmp\n",
       "t.yaml:7:7: services[0].health_check.type: must be one of tcp, http, none, got \"icmp\""},
      {"unknown log level", "global: {log_level: verbose}\n",
       "t.yaml:1:10: global.log_level: must be one of error, warn, info, debug, got \"verbose\""},
      {"unknown splice mode", "global: {splice: sometimes}\n",
       "t.yaml:1:10: global.splice: must be one of auto, always, never, got \"sometimes\""},
      {"expect_status reversed", head + "    health_check:\n      expect_status: \"399-200\"\n",
       "t.yaml:7:7: services[0].health_check.expect_status: range is reversed (399 > 200), got "
       "\"399-200\""},
      {"expect_status out of range", head + "    health_check:\n      expect_status: 600\n",
       "t.yaml:7:7: services[0].health_check.expect_status: status codes must be 100..599, got "
       "\"600\""},
      {"expect_status range out of range",
       head + "    health_check:\n      expect_status: 99-200\n",
       "t.yaml:7:7: services[0].health_check.expect_status: status codes must be 100..599, got "
       "\"99-200\""},
      {"expect_status garbage", head + "    health_check:\n      expect_status: ok\n",
       "t.yaml:7:7: services[0].health_check.expect_status: must be a status code 100..599 or a "
       "range "
       "like \"200-399\", got \"ok\""},
      {"health path", head + "    health_check: {path: health}\n",
       "t.yaml:6:20: services[0].health_check.path: must be a path starting with \"/\" without "
       "spaces or "
       "control characters, got \"health\""},
      {"health path with a space", head + "    health_check: {path: \"/a b\"}\n",
       "t.yaml:6:20: services[0].health_check.path: must be a path starting with \"/\" without "
       "spaces or "
       "control characters, got \"/a b\""},
      {"health host with a control character", head + "    health_check: {host: \"a\\tb\"}\n",
       "t.yaml:6:20: services[0].health_check.host: must be a host name without spaces or control "
       "characters, got \"a\\x09b\""},
      {"duplicate key", head + "    retries: 1\n    retries: 2\n",
       "t.yaml:7:5: services[0].retries: duplicate key (first at line 6)"},
      {"duplicate backend", head + "      - address: localhost:8001\n",
       "t.yaml:6:9: services[0].backends[1].address: duplicate backend \"localhost:8001\" "
       "(127.0.0.1:8001, "
       "same as backends[0])"},
      {"bad proxy_protocol", head + "    proxy_protocol: v3\n",
       "t.yaml:6:5: services[0].proxy_protocol: must be one of off, v1, v2, got \"v3\""},
      {"proxy_protocol true", head + "    proxy_protocol: on\n",
       "t.yaml:6:5: services[0].proxy_protocol: must be one of off, v1, v2, got \"on\""},
      {"bad service name",
       "services:\n  - name: web site\n    listen: 127.0.0.1:80\n    backends: [{address: "
       "127.0.0.1:1}]\n",
       "t.yaml:2:5: services[0].name: must be a name of [A-Za-z0-9_.-]+, at most 64 characters, "
       "got \"web site\""},
      {"service name too long",
       "services:\n  - name: " + std::string(65, 'a') +
           "\n    listen: 127.0.0.1:80\n    backends: [{address: 127.0.0.1:1}]\n",
       "t.yaml:2:5: services[0].name: must be a name of [A-Za-z0-9_.-]+, at most 64 characters, "
       "got \"" +
           std::string(60, 'a') + "...\""},
      {"alias bomb",
       "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, "
       "*c]\n"
       "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
       "t.yaml:4:36: aliases expand past 10000 nodes"},
      {"100 levels of [", std::string(100, '[') + std::string(100, ']'),
       "t.yaml:1:65: nesting deeper than 64 levels"},
      {"100 unclosed [", std::string(100, '['), "t.yaml:1:65: nesting deeper than 64 levels"},
      {"5000 levels of [", std::string(5000, '['), "t.yaml:1:65: nesting deeper than 64 levels"},
      {"too many nodes",
       "x: [" +
           [] {
             std::string s;
             for (int i = 0; i < 100'001; ++i) s += "1,";
             return s;
           }() +
           "]\n",
       "t.yaml:1:199999: more than 100000 YAML nodes"},
      {"three errors in one file",
       "global: {workers: 0}\nservices:\n  - name: web\n    listen: 127.0.0.1:80\n    backends:\n"
       "      - {address: 127.0.0.1:1, weight: 0}\n      - {address: 127.0.0.1:2, drain: 3}\n",
       "t.yaml:1:10: global.workers: must be an integer 1..1024 or \"auto\", got \"0\"", 3},
  };
  for (const BadCase& c : cases) {
    INFO(c.what);
    std::vector<std::string> errors = errors_of(c.yaml);
    REQUIRE_FALSE(errors.empty());
    CHECK(errors[0] == c.first);
    CHECK(errors.size() == c.count);
  }
}

TEST_CASE("config: every error in a file is reported, in file order") {
  std::vector<std::string> errors = errors_of(R"(global:
  workers: many
  log_level: loud
services:
  - name: web
    listen: 127.0.0.1:80
    algoritm: random
    backends:
      - address: 127.0.0.1:1
        weight: heavy
  - name: web
    listen: 127.0.0.1:80
    backends: []
)");
  const std::vector<std::string> expected = {
      "t.yaml:2:3: global.workers: must be an integer 1..1024 or \"auto\", got \"many\"",
      "t.yaml:3:3: global.log_level: must be one of error, warn, info, debug, got \"loud\"",
      "t.yaml:7:5: services[0].algoritm: unknown key, did you mean \"algorithm\"?",
      "t.yaml:10:9: services[0].backends[0].weight: must be an integer 1..1000, got \"heavy\"",
      "t.yaml:11:5: services[1].name: duplicate service name \"web\", first at line 5",
      "t.yaml:12:5: services[1].listen: duplicate listen address \"127.0.0.1:80\", already used "
      "by "
      "services[0].listen \"127.0.0.1:80\" at line 6",
      "t.yaml:13:5: services[1].backends: must list at least one backend",
  };
  CHECK(errors == expected);
}

TEST_CASE("config: more than 100 errors are capped at 100 lines") {
  std::string yaml = "global:\n";
  for (int i = 0; i < 150; ++i) yaml += "  key" + std::to_string(i) + ": 1\n";
  std::vector<std::string> errors = errors_of(yaml);
  REQUIRE(errors.size() == 100);
  CHECK(errors[0] == "t.yaml:2:3: global.key0: unknown key");
  CHECK(errors[98] == "t.yaml:100:3: global.key98: unknown key");
  CHECK(errors[99] == "t.yaml: 51 more errors not shown");
}

TEST_CASE("config: long values are cut, every line at most 512 bytes") {
  std::string yaml = "global:\n  " + std::string(1000, 'k') + ": 1\n  log_level: \"" +
                     std::string(2000, 'x') + "\\n\"\n";
  ConfigResult r = parse_config(yaml, std::string(600, 'f') + ".yaml");
  REQUIRE(r.errors.size() == 2);
  for (const auto& e : r.errors) {
    CHECK(e.size() <= 512);
    CHECK(e.find('\n') == std::string::npos);
  }
  r = parse_config(yaml, "t.yaml");
  CHECK(r.errors[0] == "t.yaml:2:3: global." + std::string(60, 'k') + "...: unknown key");
  CHECK(r.errors[1] ==
        "t.yaml:3:3: global.log_level: must be one of error, warn, info, debug, got \"" +
            std::string(60, 'x') + "...\"");
}

TEST_CASE("config: a file over 1 MiB is refused without parsing") {
  std::string big(1024 * 1024 + 1, '#');
  ConfigResult r = parse_config(big, "t.yaml");
  CHECK_FALSE(r.ok());
  CHECK(r.errors == std::vector<std::string>{
                        "t.yaml: file is too large (1048577 bytes, at most 1048576), not parsed"});

  std::string path = "/tmp/l4lb-config-test-big.yaml";
  std::ofstream(path) << big;
  r = load_config(path);
  CHECK(r.errors == std::vector<std::string>{
                        path + ": file is too large (1048577 bytes, at most 1048576), not parsed"});
  std::remove(path.c_str());
}

TEST_CASE("config: load_config reads a file and reports unreadable ones") {
  ConfigResult r = load_config("/nonexistent/l4lb.yaml");
  CHECK_FALSE(r.ok());
  CHECK(r.errors ==
        std::vector<std::string>{"/nonexistent/l4lb.yaml: cannot read: No such file or directory"});

  r = load_config("/");
  CHECK(r.errors == std::vector<std::string>{"/: cannot read: Is a directory"});

  std::string path = "/tmp/l4lb-config-test-ok.yaml";
  std::ofstream(path) << "services:" << kService;
  r = load_config(path);
  CHECK(r.ok());
  CHECK(r.config->services.at(0).name == "web");
  std::ofstream(path) << "global: {workers: x}\n";
  r = load_config(path);
  CHECK(r.errors ==
        std::vector<std::string>{
            path + ":1:10: global.workers: must be an integer 1..1024 or \"auto\", got \"x\""});
  std::remove(path.c_str());
}

TEST_CASE("config: hostile input never throws and stays bounded") {
  // A self-referencing anchor, garbage bytes, an unclosed quote: one clean error each.
  for (std::string yaml :
       {std::string("a: &a [*a]\n"), std::string("\x01\xff\xfe: [\n", 7),
        std::string("a: \"unclosed\n"), std::string("*x\n"), std::string(3000, '{'),
        std::string("- - - - - - - -\n"), std::string("services: &s [*s]\n")}) {
    ConfigResult r;
    CHECK_NOTHROW(r = parse_config(yaml, "t.yaml"));
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.errors.empty());
  }
  CHECK(parse_config("services: &s [*s]\n", "t.yaml").errors ==
        std::vector<std::string>{"t.yaml:1:11: services[0]: must be a mapping, got a sequence"});
  // Determinism: the same text gives the same lines.
  std::string yaml =
      "services:\n  - {name: a, listen: x:1, backends: [{address: 127.0.0.1:1, weight: 0}]}\n";
  CHECK(parse_config(yaml, "t.yaml").errors == parse_config(yaml, "t.yaml").errors);
}

TEST_CASE("config: enum names") {
  CHECK(to_string(Algorithm::WeightedRoundRobin) == "weighted_round_robin");
  CHECK(to_string(Algorithm::IpHash) == "ip_hash");
  CHECK(to_string(ProxyProtocol::Off) == "off");
  CHECK(to_string(ProxyProtocol::V2) == "v2");
  CHECK(to_string(HealthType::Http) == "http");
  CHECK(to_string(LogLevel::Warn) == "warn");
}

TEST_CASE("config: INTERFACE.md's example error, at the key of the bad value") {
  // weight sits at line 12, column 7: the position names the key, as in the contract's
  // "conf/bad.yaml:12:7: services[0].backends[1].weight: ..." (a value cannot start at 7).
  const std::string yaml =
      "# an example with a mistake\n"
      "global:\n"
      "  log_level: info\n"
      "services:\n"
      "  - name: web\n"
      "    listen: 127.0.0.1:8080\n"
      "    algorithm: round_robin\n"
      "    backends:\n"
      "    - address: 127.0.0.1:8001\n"
      "      weight: 2\n"
      "    - address: 127.0.0.1:8002\n"
      "      weight: heavy\n";
  ConfigResult r = parse_config(yaml, "conf/bad.yaml");
  CHECK(r.errors == std::vector<std::string>{
                        "conf/bad.yaml:12:7: services[0].backends[1].weight: must be an integer "
                        "1..1000, got \"heavy\""});
  // An empty value points at its key too, not at the next line's token.
  r = parse_config("services:\n  - name: web\n    listen:\n    backends:\n      - address: 127.0.0.1:1\n",
                   "t.yaml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].rfind("t.yaml:3:5: services[0].listen: ", 0) == 0);
}

TEST_CASE("config: global.max_connections 0 means unlimited, as for services and backends") {
  ConfigResult r = parse_config("global:\n  max_connections: 0\nservices:" + kService, "t.yaml");
  REQUIRE(r.ok());
  CHECK(r.config->global.max_connections == 0);
}

// --- listen lists, sni, accept_proxy, inspect_timeout, and shared listen addresses ---

namespace {

// A service in flow style on one line: "  - {name: NAME, listen: LISTEN, EXTRA backends: ...}".
std::string svc(const std::string& name, const std::string& listen, const std::string& extra = "") {
  return "  - {name: " + name + ", listen: " + listen + ", " + extra +
         (extra.empty() ? "" : ", ") + "backends: [{address: 127.0.0.1:1}]}\n";
}

}  // namespace

TEST_CASE("config: the new keys' defaults") {
  Config c = valid("services:" + kService);
  CHECK(c.global.inspect_timeout == Millis{5000});
  const ServiceConfig& s = c.services.at(0);
  CHECK(s.sni.empty());
  CHECK_FALSE(s.accept_proxy.has_value());
  CHECK(s.listen_texts == std::vector<std::string>{"127.0.0.1:8080"});
  REQUIRE(s.listens.size() == 1);
  CHECK(s.listens[0] == s.listen);
  CHECK(s.listen_text == "127.0.0.1:8080");
  // Empty values are as omitted.
  c = valid("global: {inspect_timeout: 250ms}\nservices:\n" +
            svc("web", "127.0.0.1:8080", "sni: , accept_proxy: "));
  CHECK(c.global.inspect_timeout == Millis{250});
  CHECK(c.services[0].sni.empty());
  CHECK_FALSE(c.services[0].accept_proxy.has_value());
  CHECK(valid("services:\n" + svc("web", "127.0.0.1:8080", "sni: []")).services[0].sni.empty());
}

TEST_CASE("config: listen as a string or a list of addresses") {
  Config c = valid(R"(global:
  inspect_timeout: 1.5
services:
  - name: web
    listen:
      - 0.0.0.0:8443
      - "[::]:8443"
      - localhost:9443
    backends: [{address: 127.0.0.1:1}]
  - name: api
    listen: [127.0.0.2:80]
    backends: [{address: 127.0.0.1:1}]
)");
  CHECK(c.global.inspect_timeout == Millis{1500});
  const ServiceConfig& web = c.services.at(0);
  CHECK(web.listen_texts ==
        std::vector<std::string>{"0.0.0.0:8443", "[::]:8443", "localhost:9443"});
  REQUIRE(web.listens.size() == 3);
  CHECK(web.listens[0].to_string() == "0.0.0.0:8443");
  CHECK(web.listens[1].to_string() == "[::]:8443");
  CHECK(web.listens[2].to_string() == "127.0.0.1:9443");
  CHECK(web.listen_text == "0.0.0.0:8443");  // listen/listen_text: the first
  CHECK(web.listen == web.listens[0]);
  const ServiceConfig& api = c.services.at(1);
  CHECK(api.listen_texts == std::vector<std::string>{"127.0.0.2:80"});
  CHECK(api.listen.to_string() == "127.0.0.2:80");
}

TEST_CASE("config: sni and accept_proxy read into the structs") {
  Config c = valid(R"(services:
  - name: web
    listen: 0.0.0.0:443
    sni: [www.example.com, "*.Example.COM.", example.com]
    accept_proxy:
      from: [10.0.0.0/8, "fd00::/8", 192.0.2.7]
    backends: [{address: 127.0.0.1:1}]
)");
  const ServiceConfig& s = c.services.at(0);
  CHECK(s.sni == std::vector<std::string>{"www.example.com", "*.Example.COM.", "example.com"});
  REQUIRE(s.accept_proxy.has_value());
  CHECK(s.accept_proxy->from_text ==
        std::vector<std::string>{"10.0.0.0/8", "fd00::/8", "192.0.2.7"});
  CHECK(s.accept_proxy->from.size() == 3);
  Address a;
  std::string error;
  REQUIRE(parse_address("10.200.0.1:1", a, error));
  CHECK(s.accept_proxy->from.contains(a));
  REQUIRE(parse_address("192.0.2.8:1", a, error));
  CHECK_FALSE(s.accept_proxy->from.contains(a));
  REQUIRE(parse_address("[fdff::1]:1", a, error));
  CHECK(s.accept_proxy->from.contains(a));
}

TEST_CASE("config: services that may share a listen address") {
  // One without sni beside ones with sni; an exact name beside a wildcard that covers it,
  // and a wildcard beside a longer one: no overlap.
  Config c = valid("services:\n" + svc("web", "0.0.0.0:443") +
                   svc("a", "0.0.0.0:443", "sni: [a.example.com, \"*.a.example.com\"]") +
                   svc("b", "0.0.0.0:443", "sni: [\"*.example.com\"]") +
                   svc("c", "\"[::]:443\"", "sni: [a.example.com]"));
  CHECK(c.services.size() == 4);
  // sni alone on its address, and services that all have sni.
  valid("services:\n" + svc("a", "127.0.0.1:443", "sni: [a.example.com]"));
  valid("services:\n" + svc("a", "127.0.0.1:443", "sni: [a.example.com]") +
        svc("b", "127.0.0.1:443", "sni: [b.example.com]"));
  // The same address written two ways is one address.
  valid("services:\n" + svc("a", "localhost:443") +
        svc("b", "127.0.0.1:443", "sni: [b.example.com]"));
  // Lists: shared on one address, alone on another.
  c = valid("services:\n" + svc("a", "[127.0.0.1:443, 127.0.0.1:8443]") +
            svc("b", "[127.0.0.2:443, 127.0.0.1:443]", "sni: [b.example.com]"));
  CHECK(c.services[1].listen_text == "127.0.0.2:443");
  // accept_proxy on all of them, the same set written differently (order, repetition of
  // the same network as IPv4-mapped, a bare address for a /128).
  valid("services:\n" + svc("a", "127.0.0.1:443", "accept_proxy: {from: [10.0.0.0/8, \"::1\"]}") +
        svc("b", "127.0.0.1:443",
            "sni: [b.example.com], accept_proxy: {from: [\"::1/128\", \"::ffff:10.0.0.0/104\"]}"));
  // accept_proxy may differ between services on different addresses.
  valid("services:\n" + svc("a", "127.0.0.1:443", "accept_proxy: {from: [10.0.0.0/8]}") +
        svc("b", "127.0.0.1:444") + svc("c", "127.0.0.1:445", "accept_proxy: {from: [::1]}"));
}

TEST_CASE("config: bad listen lists, sni, accept_proxy and inspect_timeout") {
  const std::string head = "services:" + kService;  // service 0 spans lines 2..5
  const BadCase cases[] = {
      {"empty listen list",
       "services:\n  - name: web\n    listen: []\n    backends: [{address: 127.0.0.1:1}]\n",
       "t.yaml:3:5: services[0].listen: must list at least one address"},
      {"listen a mapping",
       "services:\n  - name: web\n    listen: {a: 1}\n    backends: [{address: 127.0.0.1:1}]\n",
       "t.yaml:3:5: services[0].listen: must be an address HOST:PORT or a list of them, got a "
       "mapping"},
      {"listen item a list",
       "services:\n  - name: web\n    listen: [[127.0.0.1:80]]\n    backends: [{address: "
       "127.0.0.1:1}]\n",
       "t.yaml:3:14: services[0].listen[0]: must be an address HOST:PORT, got a sequence"},
      {"listen item bad port",
       "services:\n  - name: web\n    listen:\n      - 127.0.0.1:80\n      - 127.0.0.1:0\n"
       "    backends: [{address: 127.0.0.1:1}]\n",
       "t.yaml:5:9: services[0].listen[1]: port must be 1..65535, got \"0\""},
      {"the same address twice in one list",
       "services:\n  - name: web\n    listen:\n      - 127.0.0.1:80\n      - localhost:80\n"
       "    backends: [{address: 127.0.0.1:1}]\n",
       "t.yaml:5:9: services[0].listen[1]: duplicate listen address \"localhost:80\", already used "
       "by services[0].listen[0] \"127.0.0.1:80\" at line 4"},
      {"the same address twice in one list with sni",
       "services:\n" + svc("a", "127.0.0.1:80", "sni: [a.example.com]") +
           "  - name: web\n    listen: [127.0.0.1:80, 127.0.0.1:80]\n    sni: [b.example.com]\n"
           "    backends: [{address: 127.0.0.1:1}]\n",
       "t.yaml:4:28: services[1].listen[1]: duplicate listen address \"127.0.0.1:80\", already "
       "used by services[1].listen[0] \"127.0.0.1:80\" at line 4"},
      {"overlapping addresses in one list",
       "services:\n  - name: web\n    listen: [0.0.0.0:80, 127.0.0.1:80]\n    backends: "
       "[{address: 127.0.0.1:1}]\n",
       "t.yaml:3:26: services[0].listen[1]: listen address \"127.0.0.1:80\" overlaps "
       "services[0].listen[0] \"0.0.0.0:80\" at line 3"},
      {"overlapping addresses with sni on both",
       "services:\n" + svc("a", "0.0.0.0:443", "sni: [a.example.com]") +
           svc("b", "127.0.0.1:443", "sni: [b.example.com]"),
       "t.yaml:3:15: services[1].listen: listen address \"127.0.0.1:443\" overlaps "
       "services[0].listen \"0.0.0.0:443\" at line 2"},
      {"two services without sni, in a list",
       "services:\n" + svc("a", "127.0.0.1:443") + svc("b", "[127.0.0.2:443, 127.0.0.1:443]"),
       "t.yaml:3:39: services[1].listen[1]: duplicate listen address \"127.0.0.1:443\", already "
       "used by services[0].listen \"127.0.0.1:443\" at line 2"},
      {"a second service without sni after one with sni",
       "services:\n" + svc("a", "127.0.0.1:443", "sni: [a.example.com]") +
           svc("b", "127.0.0.1:443") + svc("c", "127.0.0.1:443"),
       "t.yaml:4:15: services[2].listen: duplicate listen address \"127.0.0.1:443\", already used "
       "by services[1].listen \"127.0.0.1:443\" at line 3"},
      {"admin port on a service's address with sni",
       "services:\n" + svc("a", "127.0.0.1:443", "sni: [a.example.com]") +
           "global:\n  admin: {listen: 127.0.0.1:443}\n",
       "t.yaml:4:11: global.admin.listen: duplicate listen address \"127.0.0.1:443\", already "
       "used by services[0].listen \"127.0.0.1:443\" at line 2"},
      {"a service on the admin port's address",
       "global:\n  admin: {listen: 127.0.0.1:443}\nservices:\n" +
           svc("a", "127.0.0.1:443", "sni: [a.example.com]"),
       "t.yaml:4:15: services[0].listen: duplicate listen address \"127.0.0.1:443\", already used "
       "by global.admin.listen \"127.0.0.1:443\" at line 2"},
      {"sni name of another service on the address",
       "services:\n" + svc("web", "0.0.0.0:443", "sni: [a.example.com]") +
           svc("api", "[127.0.0.1:80, 0.0.0.0:443]", "sni: [b.example.com, A.Example.COM.]"),
       "t.yaml:3:75: services[1].sni[1]: \"A.Example.COM.\" is also a name of service \"web\" on "
       "0.0.0.0:443"},
      {"sni wildcard of another service on the address, block style",
       "services:\n" + svc("web", "0.0.0.0:443") +
           svc("a", "0.0.0.0:443", "sni: [\"*.example.com\"]") +
           "  - name: b\n    listen: 0.0.0.0:443\n    sni:\n      - b.example.com\n"
           "      - \"*.example.com\"\n    backends: [{address: 127.0.0.1:1}]\n",
       "t.yaml:8:9: services[2].sni[1]: \"*.example.com\" is also a name of service \"a\" on "
       "0.0.0.0:443"},
      {"sni name twice in one service",
       head + "    sni: [a.example.com, b.example.com, A.example.com.]\n",
       "t.yaml:6:41: services[0].sni[2]: duplicate name \"A.example.com.\" (same as sni[0] "
       "\"a.example.com\")"},
      {"sni not a list", head + "    sni: example.com\n",
       "t.yaml:6:5: services[0].sni: must be a sequence, got \"example.com\""},
      {"sni pattern with a wildcard inside", head + "    sni: [\"a.*.example.com\"]\n",
       "t.yaml:6:11: services[0].sni[0]: must be a server name such as \"example.com\" or a "
       "wildcard such as \"*.example.com\", got \"a.*.example.com\""},
      {"sni pattern *", head + "    sni: [\"*\"]\n",
       "t.yaml:6:11: services[0].sni[0]: must be a server name such as \"example.com\" or a "
       "wildcard such as \"*.example.com\", got \"*\""},
      {"sni pattern *.", head + "    sni: [\"*.\"]\n",
       "t.yaml:6:11: services[0].sni[0]: must be a server name such as \"example.com\" or a "
       "wildcard such as \"*.example.com\", got \"*.\""},
      {"sni pattern with a space", head + "    sni: [\"exa mple.com\"]\n",
       "t.yaml:6:11: services[0].sni[0]: must be a server name such as \"example.com\" or a "
       "wildcard such as \"*.example.com\", got \"exa mple.com\""},
      {"sni pattern empty", head + "    sni: [\"\"]\n",
       "t.yaml:6:11: services[0].sni[0]: must be a server name such as \"example.com\" or a "
       "wildcard such as \"*.example.com\", got \"\""},
      {"sni label over 63 bytes", head + "    sni: [" + std::string(64, 'a') + ".com]\n",
       "t.yaml:6:11: services[0].sni[0]: must be a server name such as \"example.com\" or a "
       "wildcard such as \"*.example.com\", got \"" + std::string(60, 'a') + "...\""},
      {"sni pattern a mapping", head + "    sni: [{a: 1}]\n",
       "t.yaml:6:11: services[0].sni[0]: must be a server name such as \"example.com\" or a "
       "wildcard such as \"*.example.com\", got a mapping"},
      {"sni key typo", head + "    snl: [a.example.com]\n",
       "t.yaml:6:5: services[0].snl: unknown key, did you mean \"sni\"?"},
      {"accept_proxy a list", head + "    accept_proxy: [10.0.0.0/8]\n",
       "t.yaml:6:5: services[0].accept_proxy: must be a mapping, got a sequence"},
      {"accept_proxy without from", head + "    accept_proxy: {}\n",
       "t.yaml:6:19: services[0].accept_proxy: missing required key \"from\""},
      {"accept_proxy unknown key",
       head + "    accept_proxy:\n      from: [10.0.0.0/8]\n      form: x\n",
       "t.yaml:8:7: services[0].accept_proxy.form: unknown key, did you mean \"from\"?"},
      {"accept_proxy.from empty", head + "    accept_proxy: {from: []}\n",
       "t.yaml:6:20: services[0].accept_proxy.from: must list at least one CIDR"},
      {"accept_proxy.from null", head + "    accept_proxy:\n      from:\n",
       "t.yaml:7:7: services[0].accept_proxy.from: must list at least one CIDR"},
      {"accept_proxy.from a string", head + "    accept_proxy: {from: 10.0.0.0/8}\n",
       "t.yaml:6:20: services[0].accept_proxy.from: must be a sequence, got \"10.0.0.0/8\""},
      {"accept_proxy.from host bits",
       head + "    accept_proxy:\n      from: [10.0.0.0/8, 10.1.2.3/16]\n",
       "t.yaml:7:26: services[0].accept_proxy.from[1]: host bits set past the /16 prefix in "
       "\"10.1.2.3/16\" (the network is \"10.1.0.0/16\", one address is \"10.1.2.3/32\")"},
      {"accept_proxy.from a name", head + "    accept_proxy:\n      from:\n        - localhost\n",
       "t.yaml:8:11: services[0].accept_proxy.from[0]: \"localhost\" is not an IP address (a CIDR "
       "takes no host names), in \"localhost\""},
      {"accept_proxy.from brackets", head + "    accept_proxy:\n      from: [\"[::1]/128\"]\n",
       "t.yaml:7:14: services[0].accept_proxy.from[0]: write an IPv6 CIDR without brackets, e.g. "
       "\"::1/128\", got \"[::1]/128\""},
      {"accept_proxy.from item a mapping", head + "    accept_proxy:\n      from: [{a: 1}]\n",
       "t.yaml:7:14: services[0].accept_proxy.from[0]: must be a CIDR such as \"10.0.0.0/8\", got "
       "a mapping"},
      {"accept_proxy.from the same network twice",
       head + "    accept_proxy:\n      from: [10.0.0.0/8, 192.0.2.1, \"::ffff:10.0.0.0/104\"]\n",
       "t.yaml:7:37: services[0].accept_proxy.from[2]: duplicate CIDR \"::ffff:10.0.0.0/104\" "
       "(same network as from[0] \"10.0.0.0/8\")"},
      {"accept_proxy on the later service only",
       "services:\n" + svc("web", "127.0.0.1:443") +
           svc("api", "127.0.0.1:443", "sni: [a.example.com], accept_proxy: {from: [10.0.0.0/8]}"),
       "t.yaml:3:62: services[1].accept_proxy: service \"web\" on 127.0.0.1:443 has no "
       "accept_proxy; services on one address must all have accept_proxy with the same \"from\", "
       "or none"},
      {"accept_proxy on the earlier service only",
       "services:\n" + svc("web", "127.0.0.1:443", "accept_proxy: {from: [10.0.0.0/8]}") +
           svc("api", "[127.0.0.1:80, 127.0.0.1:443]", "sni: [a.example.com]"),
       "t.yaml:3:40: services[1].listen[1]: service \"web\" on 127.0.0.1:443 has accept_proxy and "
       "this one has none; services on one address must all have accept_proxy with the same "
       "\"from\", or none"},
      {"accept_proxy with another from",
       "services:\n" + svc("web", "127.0.0.1:443", "accept_proxy: {from: [10.0.0.0/8]}") +
           svc("api", "127.0.0.1:443", "sni: [a.example.com], accept_proxy: {from: [10.0.0.0/9]}"),
       "t.yaml:3:62: services[1].accept_proxy: \"from\" differs from that of service \"web\" on "
       "127.0.0.1:443; services on one address must all have accept_proxy with the same "
       "\"from\", or none"},
      {"accept_proxy compared with the first service on the address",
       "services:\n" + svc("web", "127.0.0.1:443", "accept_proxy: {from: [10.0.0.0/8]}") +
           svc("a", "127.0.0.1:443", "sni: [a.example.com], accept_proxy: {from: [10.0.0.0/8]}") +
           svc("b", "127.0.0.1:443", "sni: [b.example.com], accept_proxy: {from: [\"::/0\"]}"),
       "t.yaml:4:60: services[2].accept_proxy: \"from\" differs from that of service \"web\" on "
       "127.0.0.1:443; services on one address must all have accept_proxy with the same "
       "\"from\", or none"},
      {"inspect_timeout zero", "global:\n  inspect_timeout: 0s\n",
       "t.yaml:2:3: global.inspect_timeout: must be greater than 0, got \"0s\""},
      {"inspect_timeout too long", "global:\n  inspect_timeout: 721h\n",
       "t.yaml:2:3: global.inspect_timeout: invalid duration \"721h\": exceeds the maximum of 30 "
       "days"},
      {"inspect_timeout garbage", "global:\n  inspect_timeout: soon\n",
       "t.yaml:2:3: global.inspect_timeout: invalid duration \"soon\": expected a number at "
       "\"soon\""},
  };
  for (const BadCase& c : cases) {
    INFO(c.what);
    INFO(c.yaml);
    std::vector<std::string> errors = errors_of(c.yaml);
    for (const auto& e : errors) INFO(e);
    REQUIRE_FALSE(errors.empty());
    CHECK(errors[0] == c.first);
    CHECK(errors.size() == c.count);
  }
}

TEST_CASE("config: a conflict between services is reported once per key, in file order") {
  // api shares two addresses with web; both lack sni: one error per listen item. Its sni-less
  // conflict comes before a later error of the same service, and the name conflict of b
  // (found once b is read) before b's bad retries.
  std::vector<std::string> errors = errors_of(R"(services:
  - name: web
    listen: [127.0.0.1:443, 127.0.0.1:8443]
    accept_proxy: {from: [10.0.0.0/8]}
    backends: [{address: 127.0.0.1:1}]
  - name: api
    listen: [127.0.0.1:443, 127.0.0.1:8443]
    retries: -1
    backends: [{address: 127.0.0.1:1}]
  - name: b
    sni: [a.example.com, a.example.com]
    listen: [127.0.0.1:443, 127.0.0.1:8443]
    retries: 101
    accept_proxy: {from: [10.0.0.0/8]}
    backends: [{address: 127.0.0.1:1}]
  - name: c
    listen: [127.0.0.1:443, 127.0.0.1:8443]
    accept_proxy: {from: [10.0.0.0/8]}
    sni: [A.EXAMPLE.COM]
    backends: [{address: 127.0.0.1:1}]
)");
  const std::vector<std::string> expected = {
      "t.yaml:7:14: services[1].listen[0]: duplicate listen address \"127.0.0.1:443\", already "
      "used by services[0].listen[0] \"127.0.0.1:443\" at line 3",
      "t.yaml:7:14: services[1].listen[0]: service \"web\" on 127.0.0.1:443 has accept_proxy and "
      "this one has none; services on one address must all have accept_proxy with the same "
      "\"from\", or none",
      "t.yaml:7:29: services[1].listen[1]: duplicate listen address \"127.0.0.1:8443\", already "
      "used by services[0].listen[1] \"127.0.0.1:8443\" at line 3",
      "t.yaml:8:5: services[1].retries: must be an integer 0..100, got \"-1\"",
      "t.yaml:11:26: services[2].sni[1]: duplicate name \"a.example.com\" (same as sni[0] "
      "\"a.example.com\")",
      "t.yaml:13:5: services[2].retries: must be an integer 0..100, got \"101\"",
      "t.yaml:19:11: services[3].sni[0]: \"A.EXAMPLE.COM\" is also a name of service \"b\" on "
      "127.0.0.1:443",
  };
  CHECK(errors == expected);
}

TEST_CASE("config: errors are given in file order, the first 100 of them") {
  // Conflicts found after a service is read go back to their place; with more than 100
  // errors the first 99 in file order are kept.
  std::string yaml = "services:\n";
  for (int i = 0; i < 120; ++i)
    yaml += "  - {name: s" + std::to_string(1000 + i) +
            ", listen: 127.0.0.1:443, retries: -1, backends: [{address: 127.0.0.1:1}]}\n";
  std::vector<std::string> errors = errors_of(yaml);
  REQUIRE(errors.size() == 100);
  CHECK(errors[0] == "t.yaml:2:42: services[0].retries: must be an integer 0..100, got \"-1\"");
  CHECK(errors[1] ==
        "t.yaml:3:19: services[1].listen: duplicate listen address \"127.0.0.1:443\", already "
        "used by services[0].listen \"127.0.0.1:443\" at line 2");
  CHECK(errors[2] == "t.yaml:3:42: services[1].retries: must be an integer 0..100, got \"-1\"");
  CHECK(errors[97].rfind("t.yaml:51:19: services[49].listen: ", 0) == 0);
  CHECK(errors[98] == "t.yaml:51:42: services[49].retries: must be an integer 0..100, got \"-1\"");
  CHECK(errors[99] == "t.yaml: 140 more errors not shown");
}

TEST_CASE("config: runtime control keys (admin unix socket, token_file, state_file, slow_start)") {
  char dir[] = "/tmp/l4lb-cfg-XXXXXX";
  REQUIRE(mkdtemp(dir));
  const std::string token = std::string(dir) + "/token";
  { std::ofstream(token) << "s3cret\n"; }
  Config c = valid("global:\n  admin:\n    listen: unix:/run/l4lb/admin.sock\n    token_file: " + token +
                   "\n  state_file: /var/lib/l4lb/state.json\nservices:\n  - name: web\n"
                   "    listen: 127.0.0.1:8080\n    slow_start: 30s\n    backends:\n"
                   "      - address: 127.0.0.1:8001\n");
  REQUIRE(c.global.admin);
  CHECK(c.global.admin->is_unix());
  CHECK(c.global.admin->unix_path == "/run/l4lb/admin.sock");
  CHECK(c.global.admin->listen_text == "unix:/run/l4lb/admin.sock");
  CHECK(c.global.admin->token == "s3cret");
  CHECK(c.global.state_file == "/var/lib/l4lb/state.json");
  CHECK(c.services[0].slow_start == Millis(30000));

  Config d = valid("services:" + kService);
  CHECK(d.services[0].slow_start == Millis(0));
  CHECK(d.global.state_file.empty());

  auto first = [](const std::vector<std::string>& errs) { return errs.empty() ? "" : errs.front(); };
  CHECK(first(errors_of("global:\n  admin:\n    listen: unix:relative.sock\n")) ==
        "t.yaml:3:5: global.admin.listen: must be unix:/ABSOLUTE/PATH of at most 107 bytes, got \"unix:relative.sock\"");
  CHECK(first(errors_of("global:\n  admin:\n    listen: 127.0.0.1:9900\n    token_file: " +
                        std::string(dir) + "/missing\n"))
            .find("global.admin.token_file: cannot read the token: cannot open") != std::string::npos);
  { std::ofstream(token) << "two words\n"; }
  CHECK(first(errors_of("global:\n  admin:\n    listen: 127.0.0.1:9900\n    token_file: " + token + "\n"))
            .find("visible ASCII") != std::string::npos);
  CHECK(first(errors_of("global:\n  state_file: relative.json\n")).find("global.state_file") != std::string::npos);
  CHECK(first(errors_of("services:" + kService + "    slow_start: fast\n")).find("slow_start") != std::string::npos);
  std::remove(token.c_str());
  ::rmdir(dir);
}

TEST_CASE("config: admission keys (allow, deny, per_source, queue) and the access log") {
  Config c = valid(R"(global:
  access_log: {path: /var/log/l4lb/access.log, format: json}
services:
  - name: web
    listen: 127.0.0.1:8080
    allow: [10.0.0.0/8, "2001:db8::/32", 192.0.2.7]
    deny: [10.6.6.0/24]
    per_source: {max_connections: 50, rate: 20, ipv6_prefix: 56}
    queue: {size: 100, timeout: 2s}
    access_log: false
    backends:
      - address: 127.0.0.1:8001
)");
  const ServiceConfig& s = c.services[0];
  CHECK(s.allow_text.size() == 3);
  CHECK(s.deny_text == std::vector<std::string>{"10.6.6.0/24"});
  Address a;
  std::string err;
  REQUIRE(parse_address("10.6.6.1:1", a, err));
  CHECK(s.deny.contains(a));
  CHECK(s.allow.contains(a));
  CHECK(s.per_source.max_connections == 50);
  CHECK(s.per_source.rate == 20);
  CHECK(s.per_source.ipv6_prefix == 56);
  CHECK(s.queue.size == 100);
  CHECK(s.queue.timeout == Millis(2000));
  CHECK_FALSE(s.access_log);
  REQUIRE(c.global.access_log);
  CHECK(c.global.access_log->path == "/var/log/l4lb/access.log");
  CHECK(c.global.access_log->format == AccessLogFormat::Json);

  Config d = valid("services:" + kService);
  CHECK(d.services[0].access_log);
  CHECK(d.services[0].queue.size == 0);
  CHECK(d.services[0].per_source.ipv6_prefix == 64);
  CHECK_FALSE(d.global.access_log);

  auto first = [](const std::vector<std::string>& errs) { return errs.empty() ? "" : errs.front(); };
  CHECK(first(errors_of("services:" + kService + "    allow: [10.0.0.0/33]\n")).find("services[0].allow[0]") != std::string::npos);
  CHECK(first(errors_of("services:" + kService + "    deny: [10.0.0.0/8, 10.0.0.0/8]\n")).find("duplicate CIDR") != std::string::npos);
  CHECK(first(errors_of("services:" + kService + "    per_source: {ipv6_prefix: 0}\n")).find("ipv6_prefix") != std::string::npos);
  CHECK(first(errors_of("services:" + kService + "    queue: {timeout: 0s}\n")).find("queue.timeout") != std::string::npos);
  CHECK(first(errors_of("global:\n  access_log: {path: relative.log}\n")).find("global.access_log.path") != std::string::npos);
  CHECK(first(errors_of("global:\n  access_log: {format: text}\n")).find("global.access_log") != std::string::npos);
}
