// Upgrade: fd names (systemd's rules), the state document's round trip, and adoption of
// inherited listening sockets by address and worker.
#include "l4lb/control/upgrade.hpp"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include "l4lb/base/net.hpp"

using namespace l4lb;
using namespace l4lb::upgrade;

namespace {
Address addr(const char* text) {
  Address a;
  std::string err;
  REQUIRE(parse_address(text, a, err, true));
  return a;
}
}  // namespace

TEST_CASE("listen fd names carry the worker and are valid systemd names") {
  std::string v4 = listen_fd_name(addr("127.0.0.1:8080"), 0);
  CHECK(v4 == "listen@w0@127.0.0.1_8080");
  std::string v6 = listen_fd_name(addr("[::1]:443"), 12);
  CHECK(v6 == "listen@w12@[__1]_443");
  CHECK(fd_name_valid(v4));
  CHECK(fd_name_valid(v6));
  CHECK(fd_name_valid(std::string(kAdminName)));
  CHECK(listen_fd_worker(v4) == 0u);
  CHECK(listen_fd_worker(v6) == 12u);
  CHECK_FALSE(listen_fd_worker("admin"));
  CHECK_FALSE(listen_fd_worker("listen@w@x"));
  CHECK_FALSE(listen_fd_worker("listen@wx@x"));
  CHECK_FALSE(listen_fd_worker("listen@w1"));
  CHECK_FALSE(listen_fd_worker("unknown"));
  CHECK_FALSE(fd_name_valid(""));
  CHECK_FALSE(fd_name_valid("a:b"));
  CHECK_FALSE(fd_name_valid("a b"));
  CHECK_FALSE(fd_name_valid(std::string(256, 'a')));
}

TEST_CASE("LISTEN_FDNAMES joins and splits on colons") {
  std::vector<std::string> names{"listen@w0@127.0.0.1_80", "admin", "state", "ready"};
  CHECK(join_fd_names(names) == "listen@w0@127.0.0.1_80:admin:state:ready");
  CHECK(split_fd_names(join_fd_names(names)) == names);
  CHECK(split_fd_names("").empty());
  CHECK(split_fd_names("a::b") == std::vector<std::string>{"a", "", "b"});
}

TEST_CASE("the state document round-trips") {
  Handover h;
  h.reloads_ok = 7;
  h.reloads_failed = 2;
  BackendState a;
  a.service = "web";
  a.backend = "127.0.0.1:8001";
  a.health = HealthState::Down;
  a.streak = -3;
  a.last_check = 1764768000.25;
  a.last_error = "connect: connection refused";
  a.checks_ok = 10;
  a.checks_failed = 3;
  a.override_state = AdminState::Drain;
  a.file_drain = false;
  BackendState b;
  b.service = "db";
  b.backend = "[::1]:5432";
  b.health = HealthState::Up;
  b.streak = 4;
  b.override_weight = 5;
  b.file_weight = 1;
  BackendState c;
  c.service = "db";
  c.backend = "10.0.0.1:5432";
  h.backends = {a, b, c};
  std::string text = to_json(h);
  Handover back;
  std::string err;
  REQUIRE_MESSAGE(from_json(text, back, err), err);
  CHECK(back == h);
  CHECK(to_json(back) == text);
}

TEST_CASE("a bad state document is refused, the output untouched") {
  Handover out;
  out.reloads_ok = 42;
  std::string err;
  for (const char* bad : {"", "[]", "{", R"({"version":2,"reloads_ok":0,"reloads_failed":0,"backends":[]})",
                          R"({"version":1,"reloads_ok":0,"reloads_failed":0})",
                          R"({"version":1,"reloads_ok":0,"reloads_failed":0,"backends":[{"service":"a"}]})",
                          R"({"version":1,"reloads_ok":0,"reloads_failed":0,"backends":[{"service":"a","backend":"b","health":"sick","streak":0,"last_check":0,"last_error":"","checks_ok":0,"checks_failed":0,"state":null,"weight":null,"file_drain":null,"file_weight":null}]})"}) {
    CAPTURE(bad);
    CHECK_FALSE(from_json(bad, out, err));
    CHECK_FALSE(err.empty());
    CHECK(out.reloads_ok == 42);
  }
}

TEST_CASE("inherited sockets are adopted by address and worker, the rest closed") {
  Address any = addr("127.0.0.1:0");
  UniqueFd s0 = listen_tcp(any, true);
  REQUIRE(s0);
  Address bound = local_address(s0.get());
  UniqueFd s1 = listen_tcp(bound, true);
  REQUIRE(s1);
  UniqueFd other = listen_tcp(any, false);
  REQUIRE(other);
  int pipefd[2];
  REQUIRE(::pipe(pipefd) == 0);
  ::close(pipefd[1]);
  const int fd0 = s0.get(), fd1 = s1.get();

  InheritedFds fds;
  fds.add(std::move(s1), listen_fd_name(bound, 1));
  fds.add(std::move(s0), listen_fd_name(bound, 0));
  fds.add(std::move(other), "unknown");
  fds.add(UniqueFd(pipefd[0]), "state");
  CHECK(fds.size() == 4);
  UniqueFd w0 = fds.take_tcp(bound, 0);
  UniqueFd w1 = fds.take_tcp(bound, 1);
  CHECK(w0.get() == fd0);
  CHECK(w1.get() == fd1);
  CHECK_FALSE(fds.take_tcp(bound, 2));            // none left for a third worker: bind anew
  CHECK_FALSE(fds.take_unix("/nonexistent"));
  UniqueFd st = fds.take_named("state");
  CHECK(st.get() == pipefd[0]);
  CHECK_FALSE(fds.take_named("state"));
  CHECK(fds.left() == 1);                        // "other": not in the config
  CHECK(fds.close_rest() == 1);
  CHECK(fds.left() == 0);
}

TEST_CASE("an unnamed inherited socket (socket activation) serves any worker of its address") {
  UniqueFd s = listen_tcp(addr("127.0.0.1:0"), false);
  REQUIRE(s);
  Address bound = local_address(s.get());
  InheritedFds fds;
  fds.add(std::move(s), "unknown");
  CHECK(fds.take_tcp(bound, 0));
}

TEST_CASE("an inherited unix socket is matched by its path") {
  std::string path = "/tmp/l4lb-upgrade-test-" + std::to_string(::getpid()) + ".sock";
  std::string err;
  UniqueFd s = listen_unix(path, err);
  REQUIRE_MESSAGE(s, err);
  InheritedFds fds;
  fds.add(std::move(s), "admin");
  CHECK_FALSE(fds.take_unix(path + ".other"));
  CHECK(fds.take_unix(path));
  ::unlink(path.c_str());
}
