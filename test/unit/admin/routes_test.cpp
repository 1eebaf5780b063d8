// The admin port's routing and write checks (pure): route(), the body parsers, the
// token compare and Authorization check, and decide()'s order of checks.
#include "l4lb/admin/routes.hpp"
#include "l4lb/base/file.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using namespace l4lb;
using admin::Action;
using admin::Auth;
using admin::Endpoint;
using control::AdminState;

namespace {

const std::string kState = "/services/web/backends/127.0.0.1:8001/state";
const std::string kWeight = "/services/web/backends/127.0.0.1:8001/weight";
const std::string kConns = "/services/web/backends/127.0.0.1:8001/connections";

admin::Route route_of(std::string_view method, std::string_view path) {
  std::vector<std::string> segments;
  REQUIRE(http::split_path(path, segments));
  return admin::route(method, segments);
}

http::Request make(std::string method, std::string path, std::vector<std::string> auth = {}) {
  http::Request r;
  r.method = std::move(method);
  r.target = path;
  r.path = std::move(path);
  r.authorization_count = static_cast<int>(auth.size());
  if (!auth.empty()) r.authorization = auth.front();
  return r;
}

std::string error_message(const http::Response& r) {
  auto j = nlohmann::json::parse(r.body);  // throws (fails the test) unless valid JSON
  REQUIRE(j.is_object());
  REQUIRE(j.size() == 1);
  REQUIRE(j["error"].is_string());
  return j["error"].get<std::string>();
}

}  // namespace

// ------------------------------------------------------------------ route()

TEST_CASE("admin routes: read endpoints answer GET and HEAD, other methods 405 with Allow") {
  struct { const char* path; Endpoint e; } reads[] = {
      {"/health", Endpoint::Health}, {"/stats", Endpoint::Stats}, {"/metrics", Endpoint::Metrics}};
  for (auto& [path, e] : reads) {
    INFO(path);
    for (const char* m : {"GET", "HEAD"}) {
      admin::Route r = route_of(m, path);
      CHECK(r.status == 200);
      CHECK(r.action == Action{e, "", ""});
    }
    for (const char* m : {"PUT", "DELETE", "POST", "get", "OPTIONS", "X"}) {
      admin::Route r = route_of(m, path);
      CHECK(r.status == 405);
      CHECK(r.allow == "GET, HEAD");
    }
  }
}

TEST_CASE("admin routes: write endpoints, their one method, GET is 405 too") {
  admin::Route r = route_of("PUT", kState);
  REQUIRE(r.status == 200);
  CHECK(r.action == Action{Endpoint::BackendState, "web", "127.0.0.1:8001"});
  r = route_of("PUT", kWeight);
  REQUIRE(r.status == 200);
  CHECK(r.action == Action{Endpoint::BackendWeight, "web", "127.0.0.1:8001"});
  r = route_of("DELETE", kConns);
  REQUIRE(r.status == 200);
  CHECK(r.action == Action{Endpoint::BackendConnections, "web", "127.0.0.1:8001"});
  for (const char* m : {"GET", "HEAD", "DELETE", "POST", "put", "PATCH"}) {
    INFO(m);
    CHECK(route_of(m, kState).status == 405);
    CHECK(route_of(m, kState).allow == "PUT");
    CHECK(route_of(m, kWeight).allow == "PUT");
  }
  for (const char* m : {"GET", "HEAD", "PUT", "POST", "delete"}) {
    INFO(m);
    CHECK(route_of(m, kConns).status == 405);
    CHECK(route_of(m, kConns).allow == "DELETE");
  }
}

TEST_CASE("admin routes: {backend} percent-decoded; %2F stays in its segment") {
  admin::Route r = route_of("PUT", "/services/web/backends/%5B%3A%3A1%5D%3A8001/state");
  REQUIRE(r.status == 200);
  CHECK(r.action.backend == "[::1]:8001");
  r = route_of("PUT", "/services/web/backends/[::1]:8001/weight");
  REQUIRE(r.status == 200);
  CHECK(r.action.backend == "[::1]:8001");
  r = route_of("DELETE", "/services/a%2Fb/backends/x%2Fy/connections");
  REQUIRE(r.status == 200);
  CHECK(r.action.service == "a/b");
  CHECK(r.action.backend == "x/y");
  r = route_of("GET", "/%68ealth");  // decoded segments are what is matched
  CHECK(r.status == 200);
  CHECK(r.action.endpoint == Endpoint::Health);
}

TEST_CASE("admin routes: other paths are 404, whatever the method") {
  for (const char* path :
       {"/", "/health/", "//health", "/Health", "/stats/x", "/services", "/services/web",
        "/services/web/backends", "/services/web/backends/b", "/services/web/backends/b/",
        "/services/web/backends/b/State", "/services/web/backends/b/state/",
        "/services/web/backends/b/state/x", "/services//backends/b/state",
        "/services/web/backends//state", "/services/web/backend/b/state",
        "/service/web/backends/b/state", "/x/services/web/backends/b/state",
        "/services/web/backends/b/drain"}) {
    for (const char* m : {"GET", "PUT", "DELETE", "POST"}) {
      INFO(m << " " << path);
      CHECK(route_of(m, path).status == 404);
    }
  }
  CHECK(admin::route("GET", {}).status == 404);
}

TEST_CASE("admin routes: endpoint names") {
  CHECK(admin::endpoint_name(Endpoint::BackendState) == "state");
  CHECK(admin::endpoint_name(Endpoint::BackendWeight) == "weight");
  CHECK(admin::endpoint_name(Endpoint::BackendConnections) == "connections");
  CHECK(admin::endpoint_name(Endpoint::Metrics) == "metrics");
  CHECK(admin::is_write(Endpoint::BackendConnections));
  CHECK_FALSE(admin::is_write(Endpoint::Stats));
}

// ------------------------------------------------------------------ bodies

TEST_CASE("admin routes: the state body") {
  AdminState s{};
  std::string err;
  struct { const char* body; AdminState want; } good[] = {
      {"ready", AdminState::Ready}, {"drain", AdminState::Drain}, {"maint", AdminState::Maint},
      {"  drain\n", AdminState::Drain}, {"\r\n\tmaint \r\n", AdminState::Maint}};
  for (auto& [body, want] : good) {
    INFO(body);
    CHECK(admin::parse_state_body(body, s, err));
    CHECK(s == want);
  }
  for (const std::string& body : std::vector<std::string>{"", " ", "Drain", "DRAIN", "drain now", "drai", "drainx", "\"drain\"",
                           "up", "down", "draining", "{\"state\":\"drain\"}", "dr ain", "\vdrain",
                           std::string("drain\0", 6)}) {
    INFO(body);
    err.clear();
    s = AdminState::Maint;
    CHECK_FALSE(admin::parse_state_body(body, s, err));
    CHECK(s == AdminState::Maint);
    CHECK(err == "the body must be ready, drain or maint");
    CHECK(error_message(admin::json_error(400, err)) == err);
  }
}

TEST_CASE("admin routes: the weight body") {
  admin::WeightBody w;
  std::string err;
  CHECK(admin::parse_weight_body("1", w, err));
  CHECK(w == admin::WeightBody{false, 1});
  CHECK(admin::parse_weight_body("1000", w, err));
  CHECK(w == admin::WeightBody{false, 1000});
  CHECK(admin::parse_weight_body(" 42\r\n", w, err));
  CHECK(w == admin::WeightBody{false, 42});
  CHECK(admin::parse_weight_body("config\n", w, err));
  CHECK(w == admin::WeightBody{true, 0});
  for (const char* body : {"", "0", "1001", "9999", "10000", "-1", "+5", "05", "007", "1.0", "1e3",
                           "5 5", "five", "Config", "CONFIG", "config2", "0x10", "99999999999999999999",
                           "\"5\"", "5;"}) {
    INFO(body);
    w = admin::WeightBody{false, 7};
    CHECK_FALSE(admin::parse_weight_body(body, w, err));
    CHECK(w == admin::WeightBody{false, 7});
    CHECK(err == "the body must be an integer 1..1000 or config");
  }
}

TEST_CASE("admin routes: json_error escapes the message and never throws") {
  http::Response r = admin::json_error(400, "a \"quoted\"\n\\ message");
  CHECK(r.status == 400);
  CHECK(r.content_type == "application/json");
  CHECK(error_message(r) == "a \"quoted\"\n\\ message");
  r = admin::json_error(404, "bad \xff utf-8");
  CHECK(error_message(r) == "bad \xef\xbf\xbd utf-8");
}

// ------------------------------------------------------------------ tokens

TEST_CASE("admin routes: token_equal") {
  CHECK(admin::token_equal("", ""));
  CHECK(admin::token_equal("s3cr3t", "s3cr3t"));
  CHECK_FALSE(admin::token_equal("s3cr3t", "s3cr3T"));
  CHECK_FALSE(admin::token_equal("s3cr3t", "X3cr3t"));
  CHECK_FALSE(admin::token_equal("s3cr3t", "s3cr3"));
  CHECK_FALSE(admin::token_equal("s3cr3", "s3cr3t"));
  CHECK_FALSE(admin::token_equal("", "a"));
  CHECK_FALSE(admin::token_equal("a", ""));
  // A shorter string padded with NULs is still a different string.
  CHECK_FALSE(admin::token_equal(std::string_view("ab\0", 3), "ab"));
  CHECK_FALSE(admin::token_equal("ab", std::string_view("ab\0", 3)));
  std::string a(4096, 'k'), b = a;
  CHECK(admin::token_equal(a, b));
  b[4095] = 'j';
  CHECK_FALSE(admin::token_equal(a, b));
  b = a;
  b[0] = 'j';
  CHECK_FALSE(admin::token_equal(a, b));
}

TEST_CASE("admin routes: the token in a token_file") {
  std::string t, err;
  CHECK(token_from_file("s3cr3t\n", t, err));
  CHECK(t == "s3cr3t");
  CHECK(token_from_file("s3cr3t\r\n\n", t, err));
  CHECK(t == "s3cr3t");
  CHECK(token_from_file("abc-_.~+/=", t, err));
  CHECK(t == "abc-_.~+/=");
  for (const std::string& bad : std::vector<std::string>{"", "\n", "\r\n", "two words\n", " lead", "trail \n", "tab\there",
                          "a\nb", std::string("nul\0", 4), "\xc3\xa9t\xc3\xa9"}) {
    INFO(bad);
    t = "kept";
    err.clear();
    CHECK_FALSE(token_from_file(bad, t, err));
    CHECK(t == "kept");
    CHECK_FALSE(err.empty());
  }
}

TEST_CASE("admin routes: the Authorization header") {
  CHECK(admin::check_authorization("Bearer s3cr3t", "s3cr3t") == Auth::Ok);
  CHECK(admin::check_authorization("bearer s3cr3t", "s3cr3t") == Auth::Ok);  // scheme: any case
  CHECK(admin::check_authorization("BEARER s3cr3t", "s3cr3t") == Auth::Ok);
  CHECK(admin::check_authorization("BeArEr s3cr3t", "s3cr3t") == Auth::Ok);
  for (const char* bad : {"Bearer  s3cr3t", "Bearer\ts3cr3t", "Bearer s3cr3t ", "Bearer S3CR3T",
                          "Bearer s3cr3", "Bearer s3cr3tx", "Bearer", "Bearer ", "Bearers3cr3t",
                          "s3cr3t", "Basic s3cr3t", "Basic czNjcjN0", "Token s3cr3t",
                          "Bearer: s3cr3t", " Bearer s3cr3t", ""}) {
    INFO(bad);
    CHECK(admin::check_authorization(bad, "s3cr3t") == Auth::Wrong);
  }
  // An empty token never matches, not even an empty credential.
  CHECK(admin::check_authorization("Bearer ", "") == Auth::Wrong);
  CHECK(admin::check_authorization("Bearer x", "") == Auth::Wrong);
  // The Request form: missing, once, more than once.
  CHECK(admin::check_authorization(make("PUT", "/"), "s3cr3t") == Auth::Missing);
  CHECK(admin::check_authorization(make("PUT", "/", {"Bearer s3cr3t"}), "s3cr3t") == Auth::Ok);
  CHECK(admin::check_authorization(make("PUT", "/", {""}), "s3cr3t") == Auth::Wrong);
  CHECK(admin::check_authorization(make("PUT", "/", {"Bearer s3cr3t", "Bearer s3cr3t"}), "s3cr3t") ==
        Auth::Wrong);
  // Straight from the parser.
  http::RequestParser p;
  REQUIRE(p.feed("DELETE / HTTP/1.1\r\nAuthorization:  Bearer s3cr3t \r\n\r\n") == http::ParseStatus::Done);
  CHECK(admin::check_authorization(p.request(), "s3cr3t") == Auth::Ok);
}

// ------------------------------------------------------------------ decide()

namespace {

struct Row {
  const char* name;
  bool unix_socket;
  bool has_token;
  const char* method;
  std::string path;
  std::vector<std::string> auth;
  int want;             // 200: an action
  const char* allow = "";
};

const std::string kToken = "s3cr3t";
const std::vector<std::string> kRight = {"Bearer s3cr3t"};
const std::vector<std::string> kWrong = {"Bearer nope"};

void check_row(const Row& row) {
  INFO(row.name << ": " << row.method << " " << row.path << (row.unix_socket ? " (unix)" : " (tcp)"));
  admin::Decision d = admin::decide(make(row.method, row.path, row.auth), row.has_token,
                                    row.has_token ? kToken : std::string(), row.unix_socket);
  if (row.want == 200) {
    REQUIRE(d.action);
    return;
  }
  REQUIRE_FALSE(d.action);
  CHECK(d.error.status == row.want);
  CHECK(d.error.content_type == "application/json");
  CHECK_FALSE(error_message(d.error).empty());
  CHECK(d.error.allow == row.allow);
  CHECK(d.error.www_authenticate == (row.want == 401 ? "Bearer" : ""));
  CHECK_FALSE(d.error.allow_get_head);
}

}  // namespace

TEST_CASE("admin routes: decide() on TCP: authorisation, then path, then method") {
  const Row rows[] = {
      // 1. authorisation first: no token_file -> 403, whatever the header, path, method.
      {"no token_file", false, false, "PUT", kState, {}, 403},
      {"no token_file, a token sent", false, false, "PUT", kState, kRight, 403},
      {"no token_file, unknown path", false, false, "PUT", "/nope", {}, 403},
      {"no token_file, wrong method", false, false, "POST", "/stats", {}, 403},
      {"no token_file, DELETE", false, false, "DELETE", kConns, kRight, 403},
      {"no token_file, lowercase get is not GET", false, false, "get", "/health", {}, 403},
      // ... then the header: missing or wrong -> 401.
      {"missing", false, true, "PUT", kState, {}, 401},
      {"wrong", false, true, "PUT", kState, kWrong, 401},
      {"twice", false, true, "PUT", kState, {"Bearer s3cr3t", "Bearer s3cr3t"}, 401},
      {"other scheme", false, true, "DELETE", kConns, {"Basic czNjcjN0"}, 401},
      {"missing, unknown path", false, true, "PUT", "/nope", {}, 401},
      {"wrong, unknown path", false, true, "DELETE", "/services/x", kWrong, 401},
      {"missing, wrong method", false, true, "POST", "/stats", {}, 401},
      {"wrong, wrong method", false, true, "DELETE", kState, kWrong, 401},
      {"missing, bad escape", false, true, "PUT", "/services/%zz/backends/b/state", {}, 401},
      // 2. then the path: 404.
      {"right, unknown path", false, true, "PUT", "/nope", kRight, 404},
      {"right, bad escape", false, true, "PUT", "/services/w%zz/backends/b/state", kRight, 404},
      {"right, control char", false, true, "PUT", "/services/w%00/backends/b/state", kRight, 404},
      {"right, asterisk", false, true, "OPTIONS", "*", kRight, 404},
      {"right, empty backend", false, true, "PUT", "/services/web/backends//state", kRight, 404},
      // 3. then the method: 405 with Allow.
      {"right, POST /stats", false, true, "POST", "/stats", kRight, 405, "GET, HEAD"},
      {"right, DELETE on state", false, true, "DELETE", kState, kRight, 405, "PUT"},
      {"right, PUT on connections", false, true, "PUT", kConns, kRight, 405, "DELETE"},
      {"right, put (lowercase)", false, true, "put", kWeight, kRight, 405, "PUT"},
      // 4. served.
      {"right, PUT state", false, true, "PUT", kState, kRight, 200},
      {"right, PUT weight", false, true, "PUT", kWeight, {"bearer s3cr3t"}, 200},
      {"right, DELETE connections", false, true, "DELETE", kConns, kRight, 200},
      // Reads need no token (one sent, right or wrong, is ignored): path, then method.
      {"GET, no token_file", false, false, "GET", "/stats", {}, 200},
      {"GET, wrong token", false, true, "GET", "/health", kWrong, 200},
      {"HEAD, token twice", false, true, "HEAD", "/metrics", {"a", "b"}, 200},
      {"GET, unknown path", false, false, "GET", "/nope", {}, 404},
      {"GET, bad escape", false, true, "GET", "/st%atus", kWrong, 404},
      {"GET on a write path", false, false, "GET", kState, {}, 405, "PUT"},
      {"GET on a write path, right token", false, true, "GET", kWeight, kRight, 405, "PUT"},
      {"HEAD on connections", false, true, "HEAD", kConns, {}, 405, "DELETE"},
  };
  for (const Row& row : rows) check_row(row);
}

TEST_CASE("admin routes: decide() on a unix socket: no token, path then method") {
  const Row rows[] = {
      {"PUT state", true, false, "PUT", kState, {}, 200},
      {"PUT weight, token configured, none sent", true, true, "PUT", kWeight, {}, 200},
      {"DELETE, a wrong token is ignored", true, true, "DELETE", kConns, kWrong, 200},
      {"GET", true, false, "GET", "/health", {}, 200},
      {"unknown path", true, false, "PUT", "/nope", {}, 404},
      {"bad escape", true, true, "DELETE", "/services/web/backends/%/connections", {}, 404},
      {"wrong method, read path", true, false, "POST", "/stats", {}, 405, "GET, HEAD"},
      {"wrong method, write path", true, false, "GET", kConns, {}, 405, "DELETE"},
      {"lowercase", true, false, "delete", kConns, {}, 405, "DELETE"},
  };
  for (const Row& row : rows) check_row(row);
}

TEST_CASE("admin routes: decide() has the action, decoded") {
  admin::Decision d = admin::decide(
      make("PUT", "/services/web/backends/%5B%3A%3A1%5D%3A8001/weight", kRight), true, kToken, false);
  REQUIRE(d.action);
  CHECK(*d.action == Action{Endpoint::BackendWeight, "web", "[::1]:8001"});
  // An empty token counts as no token_file (403), never as "any empty credential".
  d = admin::decide(make("PUT", kState, {"Bearer "}), true, "", false);
  CHECK(d.error.status == 403);
}

TEST_CASE("admin routes: decide() follows the order for every combination") {
  // An oracle written from INTERFACE.md's sentence, checked over the whole grid.
  const std::vector<std::string> methods = {"GET", "HEAD", "PUT", "DELETE", "POST", "get"};
  const std::vector<std::string> paths = {"/health", "/stats", "/metrics", kState, kWeight, kConns,
                                          "/nope", "/health/", "/services/web/backends/%zz/state"};
  const std::vector<std::vector<std::string>> auths = {{}, kRight, kWrong, {"Bearer s3cr3t", "x"}};
  int checked = 0;
  for (bool unix_socket : {false, true}) {
    for (bool has_token : {false, true}) {
      for (const auto& m : methods) {
        for (const auto& p : paths) {
          for (const auto& a : auths) {
            bool read = m == "GET" || m == "HEAD";
            int want = 0;
            if (!unix_socket && !read) {
              if (!has_token) want = 403;
              else if (a != kRight) want = 401;
            }
            if (want == 0) {
              bool read_path = p == "/health" || p == "/stats" || p == "/metrics";
              bool put_path = p == kState || p == kWeight;
              bool delete_path = p == kConns;
              if (!read_path && !put_path && !delete_path) want = 404;
              else if (read_path ? !read : put_path ? m != "PUT" : m != "DELETE") want = 405;
              else want = 200;
            }
            INFO(m << " " << p << " unix=" << unix_socket << " token=" << has_token
                   << " auth=" << a.size());
            admin::Decision d = admin::decide(make(m, p, a), has_token,
                                              has_token ? kToken : std::string(), unix_socket);
            CHECK((d.action ? 200 : d.error.status) == want);
            ++checked;
          }
        }
      }
    }
  }
  CHECK(checked == 2 * 2 * 6 * 9 * 4);
}
