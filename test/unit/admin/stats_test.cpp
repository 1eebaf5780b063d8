// /health, /stats and /metrics over a hand-built ServerState.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "l4lb/admin/stats.hpp"
#include "l4lb/base/clock.hpp"
#include "l4lb/balance/admission.hpp"
#include "l4lb/balance/service.hpp"
#include "../balance/selectors/selector_test_helpers.hpp"

namespace l4lb_test {
std::vector<std::string> check_exposition(const std::string& text);  // prom_test.cpp
}

using namespace l4lb;
using l4lb::testing::set_drain;
using l4lb::testing::set_weight;
using json = nlohmann::json;

namespace {

std::shared_ptr<Backend> backend(const std::string& addr) {
  BackendConfig bc;
  bc.address_text = addr;
  std::string err;
  REQUIRE(parse_address(addr, bc.address, err));
  return std::make_shared<Backend>(bc);
}

std::shared_ptr<Service> service(const std::string& name, const std::string& listen,
                                 std::vector<std::shared_ptr<Backend>> bs,
                                 HealthType type = HealthType::Tcp) {
  ServiceConfig sc;
  sc.name = name;
  sc.listen_text = listen;
  sc.algorithm = Algorithm::LeastConnections;
  sc.health_check.type = type;
  for (const auto& b : bs) sc.backends.push_back(b->config);
  return std::make_shared<Service>(sc, Pool(std::move(bs), Algorithm::LeastConnections));
}

HealthRecord::Transition transition(double at, HealthState to, std::string reason) {
  HealthRecord::Transition t{};
  t.at = at;
  t.to = to;
  t.reason = std::move(reason);
  return t;
}

struct World {
  ServerState state;
  std::vector<Seat> seats;  // the clients counted active
  std::shared_ptr<Backend> a = backend("127.0.0.1:8001");
  std::shared_ptr<Backend> b = backend("127.0.0.1:8002");
  std::shared_ptr<Backend> c = backend("[::1]:8003");
  World() {
    state.start_time = 1767225600.0;  // 2026-01-01T00:00:00Z
    state.reloads_ok = 2;
    state.reloads_failed = 1;
    state.last_reload_ok = false;
    state.generation = 3;
    a->health = HealthState::Up;
    set_weight(*a, 2);
    BackendSlot& as = a->slot(0);
    as.connections.add(80);
    as.failures.add(1);
    as.bytes_in.add(512);
    as.bytes_out.add(2048);
    a->health_record.last_check = 1767225600.0;
    a->health_record.checks_ok = 10;
    a->health_record.checks_failed = 1;
    a->health_record.history.push_back(transition(1767225500.0, HealthState::Down, "connect: refused"));
    a->health_record.history.push_back(transition(1767225590.0, HealthState::Up, ""));
    as.observe_connect(0.0002);
    as.observe_connect(0.003);
    as.observe_connect(7);
    b->health = HealthState::Down;
    b->health_record.last_check = 1767225601.9;
    b->health_record.last_error = "connect: connection refused";
    c->config.backup = true;
    set_drain(*c, true);
    auto web = service("web", "0.0.0.0:8080", {a, b, c});
    ServiceSlot& ws = web->slot(0);
    ws.accepted.add(120);
    ws.refused.add(2);
    for (int i = 0; i < 3; ++i) seats.push_back(Seat::take(web->active_count(), 0));  // 3 active
    ws.bytes_in.add(1024);
    ws.bytes_out.add(4096);
    state.services.push_back(web);
    auto db = service("db", "127.0.0.1:5432", {backend("127.0.0.1:9001")}, HealthType::None);
    state.services.push_back(db);
  }
};

}  // namespace

TEST_CASE("stats: rfc3339") {
  CHECK(rfc3339(1767225600.0) == "2026-01-01T00:00:00Z");
  CHECK(rfc3339(1767225601.9) == "2026-01-01T00:00:01Z");
  CHECK(rfc3339(0) == "1970-01-01T00:00:00Z");
}

TEST_CASE("stats: the JSON of INTERFACE.md, every key present") {
  World w;
  json j = json::parse(dump_json(stats_json(w.state, 1767225612.5)));
  CHECK(j["version"] == "0.1.0");
  CHECK(j["uptime_seconds"].get<double>() == doctest::Approx(12.5));
  CHECK(j["config_reloads"] == 2);
  REQUIRE(j["services"].size() == 2);
  const json& web = j["services"][0];
  for (const char* key : {"name", "listen", "algorithm", "active_connections", "total_connections",
                          "refused_connections", "bytes_in", "bytes_out", "backends"})
    CHECK_MESSAGE(web.contains(key), key);
  CHECK(web["name"] == "web");
  CHECK(web["listen"] == "0.0.0.0:8080");
  CHECK(web["algorithm"] == "least_connections");
  CHECK(web["active_connections"] == 3);
  CHECK(web["total_connections"] == 120);
  CHECK(web["refused_connections"] == 2);
  CHECK(web["bytes_in"] == 1024);
  CHECK(web["bytes_out"] == 4096);
  REQUIRE(web["backends"].size() == 3);
  for (const json& be : web["backends"])
    for (const char* key : {"address", "state", "weight", "backup", "active_connections",
                            "total_connections", "failed_connections", "bytes_in", "bytes_out",
                            "last_check", "last_check_error"})
      CHECK_MESSAGE(be.contains(key), key);
  const json& a = web["backends"][0];
  CHECK(a["address"] == "127.0.0.1:8001");
  CHECK(a["state"] == "up");
  CHECK(a["weight"] == 2);
  CHECK(a["backup"] == false);
  CHECK(a["active_connections"] == 0);
  CHECK(a["total_connections"] == 80);
  CHECK(a["failed_connections"] == 1);
  CHECK(a["bytes_in"] == 512);
  CHECK(a["bytes_out"] == 2048);
  CHECK(a["last_check"] == "2026-01-01T00:00:00Z");
  CHECK(a["last_check_error"].is_null());
  CHECK(a["health_checks"] == json{{"success", 10}, {"failure", 1}});
  REQUIRE(a["history"].size() == 2);
  CHECK(a["history"][0] == json{{"at", "2025-12-31T23:58:20Z"}, {"from", "unknown"}, {"state", "down"}, {"reason", "connect: refused"}});
  CHECK(a["history"][1]["state"] == "up");
  const json& b = web["backends"][1];
  CHECK(b["state"] == "down");
  CHECK(b["last_check"] == "2026-01-01T00:00:01Z");
  CHECK(b["last_check_error"] == "connect: connection refused");
  const json& c = web["backends"][2];
  CHECK(c["address"] == "[::1]:8003");
  CHECK(c["state"] == "draining");
  CHECK(c["backup"] == true);
  CHECK(c["last_check"].is_null());
  CHECK(c["history"] == json::array());
  // health_check none: not yet marked is "up".
  CHECK(j["services"][1]["backends"][0]["state"] == "up");
  CHECK(j["services"][1]["backends"][0]["last_check"].is_null());
}

TEST_CASE("stats: keys follow INTERFACE.md's order; invalid UTF-8 does not throw") {
  World w;
  w.b->health_record.last_error = "bad \xff\xfe bytes";
  std::string text;
  REQUIRE_NOTHROW(text = dump_json(stats_json(w.state, 0)));
  CHECK(text.rfind(R"({"version":"0.1.0","uptime_seconds":0.0,"config_reloads":2,"services":[{"name":"web",)", 0) == 0);
  CHECK(json::parse(text)["services"][0]["backends"][1]["last_check_error"] == "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
}

TEST_CASE("stats: an empty state") {
  ServerState s;
  json j = json::parse(dump_json(stats_json(s, 100)));
  CHECK(j["services"] == json::array());
  CHECK(j["config_reloads"] == 0);
  CHECK(health_verdict(s).status == 200);
  CHECK(dump_json(health_verdict(s).body) == R"({"status":"ok"})");
}

TEST_CASE("health: ok, unavailable naming the services, stopping") {
  World w;
  HealthVerdict v = health_verdict(w.state);
  CHECK(v.status == 200);
  CHECK(dump_json(v.body) == R"({"status":"ok"})");
  w.a->health = HealthState::Down;  // web: a down, b down, c draining
  v = health_verdict(w.state);
  CHECK(v.status == 503);
  CHECK(dump_json(v.body) == R"({"status":"unavailable","services":["web"]})");
  w.state.draining = true;
  v = health_verdict(w.state);
  CHECK(v.status == 503);
  CHECK(dump_json(v.body) == R"({"status":"stopping"})");
}

TEST_CASE("metrics: strict format, every family, every backend from the start") {
  World w;
  ProcessInfo p;
  p.open_fds = 12;
  p.max_fds = 1024;
  p.resident_memory_bytes = 4096000;
  p.cpu_seconds = 0.25;
  p.start_time_seconds = 1767225600;
  std::string text = metrics_text(w.state, p);
  std::vector<std::string> problems = l4lb_test::check_exposition(text);
  for (const auto& pr : problems) INFO(pr);
  CHECK_MESSAGE(problems.empty(), text);
  for (const char* family :
       {"l4lb_service_connections_active gauge", "l4lb_service_connections_total counter",
        "l4lb_service_connections_refused_total counter", "l4lb_backend_up gauge",
        "l4lb_backend_connections_active gauge", "l4lb_backend_connections_total counter",
        "l4lb_backend_connect_failures_total counter", "l4lb_backend_bytes_total counter",
        "l4lb_health_checks_total counter", "l4lb_config_reloads_total counter",
        "l4lb_build_info gauge", "l4lb_config_last_reload_successful gauge",
        "l4lb_backend_connect_duration_seconds histogram", "process_open_fds gauge",
        "process_max_fds gauge", "process_resident_memory_bytes gauge",
        "process_cpu_seconds_total counter", "process_start_time_seconds gauge"})
    CHECK_MESSAGE(text.find(std::string("\n# TYPE ") + family + "\n") != std::string::npos, family);
  for (const char* line : {
           "l4lb_build_info{version=\"0.1.0\"} 1\n",
           "l4lb_config_reloads_total{result=\"success\"} 2\n",
           "l4lb_config_reloads_total{result=\"failure\"} 1\n",
           "l4lb_config_last_reload_successful 0\n",
           "l4lb_service_connections_active{service=\"web\"} 3\n",
           "l4lb_service_connections_total{service=\"web\"} 120\n",
           "l4lb_service_connections_refused_total{service=\"web\"} 2\n",
           "l4lb_service_connections_total{service=\"db\"} 0\n",
           "l4lb_backend_up{service=\"web\",backend=\"127.0.0.1:8001\"} 1\n",
           "l4lb_backend_up{service=\"web\",backend=\"127.0.0.1:8002\"} 0\n",
           "l4lb_backend_up{service=\"web\",backend=\"[::1]:8003\"} 1\n",
           "l4lb_backend_connections_total{service=\"web\",backend=\"127.0.0.1:8001\"} 80\n",
           "l4lb_backend_connect_failures_total{service=\"web\",backend=\"127.0.0.1:8001\"} 1\n",
           "l4lb_backend_bytes_total{service=\"web\",backend=\"127.0.0.1:8001\",direction=\"in\"} 512\n",
           "l4lb_backend_bytes_total{service=\"web\",backend=\"127.0.0.1:8001\",direction=\"out\"} 2048\n",
           "l4lb_health_checks_total{service=\"web\",backend=\"127.0.0.1:8001\",result=\"success\"} 10\n",
           "l4lb_health_checks_total{service=\"web\",backend=\"127.0.0.1:8001\",result=\"failure\"} 1\n",
           // a backend that never saw a connection is there, at 0
           "l4lb_backend_connections_total{service=\"db\",backend=\"127.0.0.1:9001\"} 0\n",
           "l4lb_backend_bytes_total{service=\"db\",backend=\"127.0.0.1:9001\",direction=\"out\"} 0\n",
           "l4lb_backend_connect_duration_seconds_bucket{service=\"db\",backend=\"127.0.0.1:9001\",le=\"+Inf\"} 0\n",
           // the histogram of a: 0.0002 -> le 0.0005; 0.003 -> le 0.005; 7 -> +Inf only
           "l4lb_backend_connect_duration_seconds_bucket{service=\"web\",backend=\"127.0.0.1:8001\",le=\"0.0005\"} 1\n",
           "l4lb_backend_connect_duration_seconds_bucket{service=\"web\",backend=\"127.0.0.1:8001\",le=\"0.0025\"} 1\n",
           "l4lb_backend_connect_duration_seconds_bucket{service=\"web\",backend=\"127.0.0.1:8001\",le=\"0.005\"} 2\n",
           "l4lb_backend_connect_duration_seconds_bucket{service=\"web\",backend=\"127.0.0.1:8001\",le=\"5\"} 2\n",
           "l4lb_backend_connect_duration_seconds_bucket{service=\"web\",backend=\"127.0.0.1:8001\",le=\"+Inf\"} 3\n",
           "l4lb_backend_connect_duration_seconds_count{service=\"web\",backend=\"127.0.0.1:8001\"} 3\n",
           "process_open_fds 12\n",
           "process_cpu_seconds_total 0.25\n",
       })
    CHECK_MESSAGE(text.find(line) != std::string::npos, line);
}

TEST_CASE("metrics: an empty state is still a valid exposition") {
  ServerState s;
  std::string text = metrics_text(s, read_process_info(0));
  CHECK(l4lb_test::check_exposition(text).empty());
  CHECK(text.find("l4lb_build_info{version=\"0.1.0\"} 1\n") != std::string::npos);
}

TEST_CASE("process info from /proc/self") {
  ProcessInfo p = read_process_info(1);
  CHECK(p.open_fds >= 3);
  CHECK(p.max_fds >= p.open_fds);
  CHECK(p.resident_memory_bytes > 1e5);
  CHECK(p.start_time_seconds > 1.6e9);
  CHECK(p.start_time_seconds <= unix_now() + 1);
}
