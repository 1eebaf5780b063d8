// `l4lb ctl` (pure parts, and the bounded exchange against a local socket): the command
// line and its exit 2 cases, the request it sends (checked against the admin port's own
// parser and routing), the answer parser, the status table, and the exit code each
// answer maps to.
#include "l4lb/control/ctl.hpp"

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "l4lb/admin/admin_http.hpp"
#include "l4lb/admin/routes.hpp"
#include "l4lb/base/net.hpp"

using namespace l4lb;
using namespace std::string_literals;
using ctl::Command;
using ctl::ParseOutcome;
using ctl::Verb;

namespace {

ParseOutcome parse(std::vector<std::string> args, Command& cmd, std::string& error) {
  return ctl::parse_args(args, cmd, error);
}

Command parsed(std::vector<std::string> args) {
  Command cmd;
  std::string error;
  ParseOutcome got = ctl::parse_args(args, cmd, error);
  INFO("error: " << error);
  REQUIRE(got == ParseOutcome::Ok);
  return cmd;
}

ctl::Response answer(int status, std::string body) {
  ctl::Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

Command write_cmd(Verb verb, std::string value = "") {
  Command c;
  c.verb = verb;
  c.service = "web";
  c.backend = "127.0.0.1:8001";
  c.value = std::move(value);
  return c;
}

const char* kStats = R"({"version":"0.1.0","uptime_seconds":12.5,"config_reloads":1,
 "services":[
  {"name":"web","listen":"0.0.0.0:8080","backends":[
    {"address":"127.0.0.1:8001","state":"up","weight":2,"active_connections":2,"last_check":null},
    {"address":"[::1]:8002","state":"draining","weight":10,"active_connections":113,"last_check":null}]},
  {"name":"database","listen":"0.0.0.0:5432","backends":[
    {"address":"10.0.0.1:5432","state":"down","weight":1,"active_connections":0,"last_check":null}]}]})";

}  // namespace

// ------------------------------------------------------------------ command line

TEST_CASE("ctl: parse_args takes each command with its operands, -c before or after it") {
  Command c = parsed({"status"});
  CHECK(c.verb == Verb::Status);
  CHECK(c.config_path == "/etc/l4lb/l4lb.yaml");

  for (const char* state : {"drain", "ready", "maint"}) {
    c = parsed({"-c", "x.yaml", state, "web", "127.0.0.1:8001"});
    CHECK(c == Command{Verb::State, "x.yaml", "web", "127.0.0.1:8001", state});
  }
  c = parsed({"weight", "web", "[::1]:8001", "5", "--config", "y.yaml"});
  CHECK(c == Command{Verb::Weight, "y.yaml", "web", "[::1]:8001", "5"});
  c = parsed({"--config=z.yaml", "weight", "web", "b:1", "config"});
  CHECK(c == Command{Verb::Weight, "z.yaml", "web", "b:1", "config"});
  CHECK(parsed({"weight", "web", "b:1", "1000"}).value == "1000");
  CHECK(parsed({"weight", "web", "b:1", "1"}).value == "1");
  c = parsed({"close", "web", "127.0.0.1:8001"});
  CHECK(c == Command{Verb::Close, "/etc/l4lb/l4lb.yaml", "web", "127.0.0.1:8001", ""});
  // "--" ends the options: a service whose name starts with '-' can still be named.
  c = parsed({"-c", "x.yaml", "--", "drain", "-svc", "127.0.0.1:8001"});
  CHECK(c.service == "-svc");
  // The last -c wins.
  CHECK(parsed({"-c", "a.yaml", "-c", "b.yaml", "status"}).config_path == "b.yaml");
}

TEST_CASE("ctl: parse_args refuses a bad command line with a reason (exit 2)") {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"bogus"},
      {"Status"},
      {"status", "extra"},
      {"drain"},
      {"drain", "web"},
      {"drain", "web", "127.0.0.1:8001", "extra"},
      {"ready", "web"},
      {"maint", "", "127.0.0.1:8001"},
      {"maint", "web", ""},
      {"weight", "web", "127.0.0.1:8001"},
      {"weight", "web", "127.0.0.1:8001", "5", "6"},
      {"weight", "web", "127.0.0.1:8001", "0"},
      {"weight", "web", "127.0.0.1:8001", "1001"},
      {"weight", "web", "127.0.0.1:8001", "05"},
      {"weight", "web", "127.0.0.1:8001", "+5"},
      {"weight", "web", "127.0.0.1:8001", "1.5"},
      {"weight", "web", "127.0.0.1:8001", "five"},
      {"weight", "web", "127.0.0.1:8001", "Config"},
      {"weight", "web", "127.0.0.1:8001", ""},
      {"weight", "web", "127.0.0.1:8001", "99999999999999999999"},
      {"weight", "web", "127.0.0.1:8001", "-5"},  // read as an option: unknown, exit 2 too
      {"close", "web"},
      {"close", "web", "127.0.0.1:8001", "now"},
      {"-c"},
      {"status", "-c"},
      {"-c", "", "status"},
      {"--nope", "status"},
      {"-x", "status"},
      {"--config"},
  };
  for (const auto& args : bad) {
    std::string joined;
    for (const auto& a : args) joined += "[" + a + "] ";
    INFO("args: " << joined);
    Command c;
    std::string error;
    CHECK(parse(args, c, error) == ParseOutcome::Usage);
    CHECK(!error.empty());
  }
  Command c;
  std::string error;
  REQUIRE(parse({"weight", "web", "b:1", "0"}, c, error) == ParseOutcome::Usage);
  CHECK(error == "N must be an integer 1..1000 or config, got \"0\"");
  REQUIRE(parse({"frobnicate"}, c, error) == ParseOutcome::Usage);
  CHECK(error == "unknown command \"frobnicate\"");
  REQUIRE(parse({"drain", "web"}, c, error) == ParseOutcome::Usage);
  CHECK(error == "drain needs SERVICE BACKEND");
  REQUIRE(parse({"status", "now"}, c, error) == ParseOutcome::Usage);
  CHECK(error == "status takes no arguments, got more");
}

TEST_CASE("ctl: -h and --help ask for the usage, which names every command and exit code") {
  Command c;
  std::string error;
  CHECK(parse({"-h"}, c, error) == ParseOutcome::Help);
  CHECK(parse({"--help"}, c, error) == ParseOutcome::Help);
  CHECK(parse({"drain", "--help"}, c, error) == ParseOutcome::Help);
  CHECK(parse({"-c", "x.yaml", "-h", "status"}, c, error) == ParseOutcome::Help);
  CHECK(parse({"-h", "--nope"}, c, error) == ParseOutcome::Usage);  // a bad option still is
  std::string u = ctl::usage_text();
  for (const char* word : {"status", "drain|ready|maint", "weight", "close", "-c, --config",
                           "/etc/l4lb/l4lb.yaml", "Exit codes"})
    CHECK(u.find(word) != std::string::npos);
  // Parsing twice in a row works (getopt's state is reset each time).
  CHECK(parsed({"-c", "a.yaml", "status"}).config_path == "a.yaml");
  CHECK(parsed({"-c", "b.yaml", "status"}).config_path == "b.yaml");
}

// ------------------------------------------------------------------ request

TEST_CASE("ctl: percent_encode leaves only unreserved bytes, and the admin port decodes it back") {
  CHECK(ctl::percent_encode("web") == "web");
  CHECK(ctl::percent_encode("a-b.c_d~e09AZ") == "a-b.c_d~e09AZ");
  CHECK(ctl::percent_encode("127.0.0.1:8001") == "127.0.0.1%3A8001");
  CHECK(ctl::percent_encode("[::1]:8001") == "%5B%3A%3A1%5D%3A8001");
  CHECK(ctl::percent_encode("a/b c%+?#") == "a%2Fb%20c%25%2B%3F%23");
  CHECK(ctl::percent_encode(std::string("\xff\x80\x00", 3)) == "%FF%80%00");
  CHECK(ctl::percent_encode("") == "");

  for (std::string s : {"127.0.0.1:8001", "[fe80::1%eth0]:80", "a/b", "x y", "%2F", "é"}) {
    INFO(s);
    std::vector<std::string> segments;
    REQUIRE(http::split_path("/" + ctl::percent_encode(s), segments));
    CHECK(segments == std::vector<std::string>{s});
  }
}

TEST_CASE("ctl: build_request maps each command to its method, path and body") {
  Command status;
  CHECK(ctl::build_request(status) == ctl::Request{"GET", "/stats", "", false});
  CHECK(ctl::build_request(write_cmd(Verb::State, "drain")) ==
        ctl::Request{"PUT", "/services/web/backends/127.0.0.1%3A8001/state", "drain", true});
  CHECK(ctl::build_request(write_cmd(Verb::Weight, "5")) ==
        ctl::Request{"PUT", "/services/web/backends/127.0.0.1%3A8001/weight", "5", true});
  CHECK(ctl::build_request(write_cmd(Verb::Weight, "config")).body == "config");
  CHECK(ctl::build_request(write_cmd(Verb::Close)) ==
        ctl::Request{"DELETE", "/services/web/backends/127.0.0.1%3A8001/connections", "", true});
  Command v6 = write_cmd(Verb::State, "maint");
  v6.backend = "[::1]:8001";
  CHECK(ctl::build_request(v6).path == "/services/web/backends/%5B%3A%3A1%5D%3A8001/state");
}

TEST_CASE("ctl: serialize_request is HTTP/1.1 with Host, Connection: close, the token only when given") {
  CHECK(ctl::serialize_request(ctl::Request{"GET", "/stats", "", false}, "") ==
        "GET /stats HTTP/1.1\r\nHost: l4lb\r\nConnection: close\r\n\r\n");
  ctl::Request put{"PUT", "/services/web/backends/b/state", "drain", true};
  CHECK(ctl::serialize_request(put, "s3cret") ==
        "PUT /services/web/backends/b/state HTTP/1.1\r\nHost: l4lb\r\n"
        "Authorization: Bearer s3cret\r\nContent-Length: 5\r\nConnection: close\r\n\r\ndrain");
  CHECK(ctl::serialize_request(put, "").find("Authorization") == std::string::npos);
  ctl::Request del{"DELETE", "/services/web/backends/b/connections", "", true};
  CHECK(ctl::serialize_request(del, "") ==
        "DELETE /services/web/backends/b/connections HTTP/1.1\r\nHost: l4lb\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n");
  // A token that could not be a header value is never sent (no header injection).
  CHECK(ctl::serialize_request(put, "a\r\nX-Evil: 1").find("Evil") == std::string::npos);
  CHECK(ctl::serialize_request(put, "a b").find("Authorization") == std::string::npos);
}

TEST_CASE("ctl: what ctl sends is what the admin port parses, authorises and routes") {
  const std::string token = "0123456789abcdef";
  struct Case {
    Command cmd;
    admin::Endpoint endpoint;
  };
  Command v6 = write_cmd(Verb::Weight, "config");
  v6.service = "db.main-1";
  v6.backend = "[::1]:5432";
  const std::vector<Case> cases = {
      {Command{}, admin::Endpoint::Stats},
      {write_cmd(Verb::State, "drain"), admin::Endpoint::BackendState},
      {write_cmd(Verb::Weight, "1000"), admin::Endpoint::BackendWeight},
      {write_cmd(Verb::Close), admin::Endpoint::BackendConnections},
      {v6, admin::Endpoint::BackendWeight},
  };
  for (const auto& c : cases) {
    ctl::Request req = ctl::build_request(c.cmd);
    INFO(req.method << " " << req.path);
    http::RequestParser p;
    REQUIRE(p.feed(ctl::serialize_request(req, req.write ? token : "")) == http::ParseStatus::Done);
    const http::Request& got = p.request();
    CHECK(got.method == req.method);
    CHECK(got.body == req.body);
    admin::Decision d = admin::decide(got, true, token, false);
    REQUIRE(d.action.has_value());
    CHECK(d.action->endpoint == c.endpoint);
    if (req.write) {
      CHECK(d.action->service == c.cmd.service);
      CHECK(d.action->backend == c.cmd.backend);
    }
    if (c.endpoint == admin::Endpoint::BackendState) {
      control::AdminState s;
      std::string why;
      CHECK(admin::parse_state_body(got.body, s, why));
    }
    if (c.endpoint == admin::Endpoint::BackendWeight) {
      admin::WeightBody w;
      std::string why;
      CHECK(admin::parse_weight_body(got.body, w, why));
    }
  }
}

// ------------------------------------------------------------------ answer

TEST_CASE("ctl: parse_response reads the status, Content-Length body or body up to EOF") {
  ctl::Response r;
  std::string error;
  REQUIRE(ctl::parse_response("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "Content-Length: 2\r\nConnection: close\r\n\r\n{}",
                              r, error));
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  CHECK(r.body == "{}");

  REQUIRE(ctl::parse_response("HTTP/1.0 404 Not Found\r\n\r\nno such thing\n", r, error));
  CHECK(r.status == 404);
  CHECK(r.body == "no such thing\n");

  // Bare LF line ends, header names in any case, equal repeated lengths, no reason phrase.
  REQUIRE(ctl::parse_response("HTTP/1.1 401\ncontent-length:  3 \nCONTENT-LENGTH: 3\n\nabc", r,
                              error));
  CHECK(r.status == 401);
  CHECK(r.body == "abc");

  REQUIRE(ctl::parse_response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", r, error));
  CHECK(r.body.empty());
}

TEST_CASE("ctl: parse_response refuses truncated, oversized and non-HTTP answers") {
  const std::vector<std::string> bad = {
      "",
      "HTTP/1.1 200 OK",
      "HTTP/1.1 200 OK\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
      "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
      "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n"s,
      "HTTP/1.1 100 Continue\r\n\r\n",
      "HTTP/1.1 600 Nope\r\n\r\n",
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 200OK\r\n\r\n",
      "HTTP/1.2 200 OK\r\n\r\n",
      "HTTP/2 200\r\n\r\n",
      "http/1.1 200 OK\r\n\r\n",
      "SSH-2.0-OpenSSH_9.2p1\r\n",
      "\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: " + std::string(70000, 'a') + "\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: " + std::string(70000, 'a'),
  };
  for (const auto& raw : bad) {
    INFO("answer: " << raw.substr(0, 80));
    ctl::Response r;
    std::string error;
    CHECK_FALSE(ctl::parse_response(raw, r, error));
    CHECK(!error.empty());
  }
}

TEST_CASE("ctl: error_message takes the JSON error text, else the body's first line, sanitised") {
  CHECK(ctl::error_message(answer(404, R"({"error":"no such backend"})")) == "no such backend");
  CHECK(ctl::error_message(answer(400, "{\"error\":\"bad\\u001b[31m body\"}")) == "bad?[31m body");
  CHECK(ctl::error_message(answer(404, "404 Not Found: no such path\n")) ==
        "404 Not Found: no such path");
  CHECK(ctl::error_message(answer(500, "")) == "HTTP 500");
  CHECK(ctl::error_message(answer(500, R"({"error":42})")) == R"({"error":42})");
  CHECK(ctl::error_message(answer(500, std::string(2000, 'x'))).size() == 512);
}

// ------------------------------------------------------------------ status table

TEST_CASE("ctl: status aligns columns to the widest value plus two spaces, one line per backend") {
  std::string out, error;
  REQUIRE(ctl::format_status(kStats, out, error));
  CHECK(out ==
        "web       127.0.0.1:8001  up        2   2    last_check=-\n"
        "web       [::1]:8002      draining  10  113  last_check=-\n"
        "database  10.0.0.1:5432   down      1   0    last_check=-\n");
}

TEST_CASE("ctl: status keeps five plain columns first; configured=, override=, last_check= after") {
  const char* stats = R"({"services":[{"name":"web","backends":[
    {"address":"127.0.0.1:8001","state":"draining","weight":5,"configured_weight":2,
     "active_connections":1,"override":{"state":"drain","weight":5},
     "last_check":"2026-01-01T00:00:00Z"},
    {"address":"127.0.0.1:8002","state":"up","weight":3,"configured_weight":3,
     "active_connections":0,"override":null,"last_check":null},
    {"address":"127.0.0.1:8003","state":"maint","weight":1,"configured_weight":1,
     "active_connections":0,"override":{"state":"maint","weight":null},"last_check":null}]}]})";
  std::string out, error;
  REQUIRE(ctl::format_status(stats, out, error));
  // configured= is 12 wide (+2), override=... 29 (+2): empty cells are padded too.
  CHECK(out ==
        "web  127.0.0.1:8001  draining  5  1  configured=2  override=state:drain,weight:5  "s +
        "last_check=2026-01-01T00:00:00Z\n"
        "web  127.0.0.1:8002  up        3  0  " + std::string(14 + 31, ' ') +
        "last_check=-\n"
        "web  127.0.0.1:8003  maint     1  0  " + std::string(14, ' ') + "override=state:maint" +
        std::string(31 - 20, ' ') +
        "last_check=-\n");

  // No "weight" (an l4lb older than the field): WEIGHT is 0; other fields missing: "-".
  REQUIRE(ctl::format_status(
      R"({"services":[{"name":"web","backends":[{"address":"127.0.0.1:8001"}]}]})", out, error));
  CHECK(out == "web  127.0.0.1:8001  -  0  -  last_check=-\n");

  // Blanks and control bytes in a value never break the columns.
  REQUIRE(ctl::format_status(
      R"({"services":[{"name":"a b","backends":[{"address":"x\u001by","state":"up","weight":1,"active_connections":0,"last_check":null}]}]})",
      out, error));
  CHECK(out == "a?b  x?y  up  1  0  last_check=-\n");
}

TEST_CASE("ctl: status prints nothing without backends and refuses what is not /stats") {
  std::string out = "x", error;
  REQUIRE(ctl::format_status(R"({"services":[]})", out, error));
  CHECK(out.empty());
  REQUIRE(ctl::format_status(R"({"services":[{"name":"web","backends":[]}]})", out, error));
  CHECK(out.empty());
  for (const char* bad : {"", "not json", "[]", "{}", R"({"services":{}})", "{\"services\":[", "null"}) {
    INFO(bad);
    CHECK_FALSE(ctl::format_status(bad, out, error));
    CHECK(!error.empty());
  }
}

TEST_CASE("ctl: align_columns drops columns empty everywhere and trims each line's end") {
  CHECK(ctl::align_columns({}) == "");
  CHECK(ctl::align_columns({{"a", "", "bb"}, {"ccc", "", "d"}}) == "a    bb\nccc  d\n");
  CHECK(ctl::align_columns({{"a", "x"}, {"b"}}) == "a  x\nb\n");
  CHECK(ctl::align_columns({{"a", "", "z"}, {"b", "y", ""}}) == "a     z\nb  y\n");
}

// ------------------------------------------------------------------ outcome

TEST_CASE("ctl: a 200 answer is exit 0 with a short line from its JSON") {
  ctl::Outcome o = ctl::interpret(write_cmd(Verb::State, "drain"),
                                  answer(200, R"({"address":"127.0.0.1:8001","admin_state":"drain"})"));
  CHECK(o.exit_code == 0);
  CHECK(o.out == "web 127.0.0.1:8001: state drain\n");
  CHECK(o.err.empty());
  o = ctl::interpret(write_cmd(Verb::Weight, "config"), answer(200, R"({"weight":2})"));
  CHECK(o.exit_code == 0);
  CHECK(o.out == "web 127.0.0.1:8001: weight 2\n");
  o = ctl::interpret(write_cmd(Verb::Close), answer(200, R"({"closed":3})"));
  CHECK(o.exit_code == 0);
  CHECK(o.out == "web 127.0.0.1:8001: closed 3\n");
  // Without the fields: what was asked for.
  o = ctl::interpret(write_cmd(Verb::State, "maint"), answer(200, "ok"));
  CHECK(o.out == "web 127.0.0.1:8001: state maint\n");
  o = ctl::interpret(write_cmd(Verb::Weight, "7"), answer(200, "{}"));
  CHECK(o.out == "web 127.0.0.1:8001: weight 7\n");
  o = ctl::interpret(write_cmd(Verb::Close), answer(200, ""));
  CHECK(o.out == "web 127.0.0.1:8001: closed\n");

  o = ctl::interpret(Command{}, answer(200, kStats));
  CHECK(o.exit_code == 0);
  std::string table, error;
  REQUIRE(ctl::format_status(kStats, table, error));
  CHECK(o.out == table);
  CHECK(std::count(o.out.begin(), o.out.end(), '\n') == 3);
}

TEST_CASE("ctl: 401 and 403 are exit 3, other errors exit 1 with l4lb's message") {
  struct Case {
    int status;
    std::string body;
    int exit_code;
    std::string message;  // contained in err
  };
  const std::vector<Case> cases = {
      {401, R"({"error":"missing or wrong token"})", 3, "missing or wrong token"},
      {403, R"({"error":"no token_file"})", 3, "no token_file"},
      {404, R"({"error":"no such backend"})", 1, "no such backend"},
      {404, "404 Not Found: no such path\n", 1, "no such path"},
      {400, R"({"error":"the body must be ready, drain or maint"})", 1, "the body must be"},
      {405, R"({"error":"method not allowed"})", 1, "method not allowed"},
      {413, "", 1, "HTTP 413"},
      {500, "boom", 1, "boom"},
      {503, R"({"status":"stopping"})", 1, "stopping"},
  };
  for (const auto& c : cases) {
    INFO(c.status << " " << c.body);
    for (Command cmd : {write_cmd(Verb::State, "drain"), write_cmd(Verb::Close)}) {
      ctl::Outcome o = ctl::interpret(cmd, answer(c.status, c.body));
      CHECK(o.exit_code == c.exit_code);
      CHECK(o.out.empty());
      CHECK(o.err.find(c.message) != std::string::npos);
    }
  }
  // A 200 to status that is not /stats: l4lb answered, but not with what was asked.
  ctl::Outcome o = ctl::interpret(Command{}, answer(200, "<html>"));
  CHECK(o.exit_code == 1);
  CHECK(o.out.empty());
  CHECK(!o.err.empty());
}

// ------------------------------------------------------------------ exchange (I/O)

namespace {

// A one-shot TCP server on 127.0.0.1: accepts one client, reads what it sends (up to
// the end of its head and body, or a short pause), then does ACT with the socket.
struct OneShot {
  Address addr;
  UniqueFd listener;
  std::thread thread;
  std::string received;

  template <class Act>
  explicit OneShot(Act act) {
    Address any;
    std::string err;
    REQUIRE(parse_address("127.0.0.1:0", any, err, true));
    listener = listen_tcp(any);
    REQUIRE(listener);
    addr = local_address(listener.get());
    thread = std::thread([this, act] {
      pollfd p{listener.get(), POLLIN, 0};
      if (::poll(&p, 1, 5000) != 1) return;
      int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      char buf[4096];
      while (true) {
        pollfd q{fd, POLLIN, 0};
        if (::poll(&q, 1, 200) != 1) break;
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) break;
        received.append(buf, static_cast<size_t>(n));
        if (received.find("\r\n\r\n") != std::string::npos) break;
      }
      act(fd);
      ::close(fd);
    });
  }
  ~OneShot() {
    if (thread.joinable()) thread.join();
  }
  ctl::Target target() const {
    ctl::Target t;
    t.tcp = addr;
    t.display = addr.to_string();
    return t;
  }
};

void send_text(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

TEST_CASE("ctl: exchange sends the request and reads the answer until EOF") {
  const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
  std::string got, error;
  {
    OneShot server([&](int fd) { send_text(fd, reply); });
    REQUIRE(ctl::exchange(server.target(), "GET /stats HTTP/1.1\r\n\r\n", got, error));
    server.thread.join();
    CHECK(server.received == "GET /stats HTTP/1.1\r\n\r\n");
  }
  CHECK(got == reply);
}

TEST_CASE("ctl: exchange gives up after its timeout, past its size bound, and when refused") {
  using std::chrono::milliseconds;
  std::string got, error;
  {  // Never answers (holds the connection open until the client gave up).
    std::atomic<bool> done{false};
    OneShot server([&](int fd) {
      for (int i = 0; i < 300 && !done; ++i) ::poll(nullptr, 0, 10);
    });
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(ctl::exchange(server.target(), "GET /stats HTTP/1.1\r\n\r\n", got, error,
                              milliseconds(300)));
    auto took = std::chrono::steady_clock::now() - t0;
    done = true;
    CHECK(error == "timed out after 300ms");
    CHECK(took >= milliseconds(290));
    CHECK(took < milliseconds(2000));
  }
  {  // Answers more than the bound.
    OneShot server([&](int fd) { send_text(fd, std::string(200000, 'x')); });
    CHECK_FALSE(ctl::exchange(server.target(), "GET /stats HTTP/1.1\r\n\r\n", got, error,
                              milliseconds(3000), 100000));
    CHECK(error.find("answer over") == 0);
  }
  {  // Bound but not listening (the port stays ours): refused, at once.
    UniqueFd bound(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(bound);
    Address any;
    REQUIRE(parse_address("127.0.0.1:0", any, error, true));
    REQUIRE(::bind(bound.get(), any.sa(), any.length) == 0);
    ctl::Target t;
    t.tcp = local_address(bound.get());
    CHECK_FALSE(ctl::exchange(t, "GET / HTTP/1.1\r\n\r\n", got, error, milliseconds(2000)));
    CHECK(error.find("connect: ") == 0);
  }
  {  // A unix socket path where nothing is.
    ctl::Target t;
    t.is_unix = true;
    t.unix_path = "/nonexistent/l4lb-ctl-test.sock";
    CHECK_FALSE(ctl::exchange(t, "GET / HTTP/1.1\r\n\r\n", got, error, milliseconds(2000)));
    CHECK(error.find("connect: ") == 0);
  }
}

TEST_CASE("ctl: exchange speaks over a unix socket too") {
  const char* base = std::getenv("TMPDIR");
  std::string dir = std::string(base && *base ? base : "/tmp") + "/l4lb-ctl-test.XXXXXX";
  REQUIRE(::mkdtemp(dir.data()) != nullptr);
  std::string path = dir + "/admin.sock";
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(listener);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof(sun.sun_path));
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
  REQUIRE(::listen(listener.get(), 4) == 0);
  std::string received;
  std::thread server([&] {
    int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    char buf[1024];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) received.assign(buf, static_cast<size_t>(n));
    send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"closed\":3}");
    ::close(fd);
  });
  ctl::Target t;
  t.is_unix = true;
  t.unix_path = path;
  std::string got, error;
  bool ok = ctl::exchange(t, "DELETE /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", got, error);
  server.join();
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
  REQUIRE(ok);
  CHECK(received == "DELETE /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  ctl::Response r;
  REQUIRE(ctl::parse_response(got, r, error));
  CHECK(ctl::interpret(write_cmd(Verb::Close), r).out == "web 127.0.0.1:8001: closed 3\n");
}
