// Sessions: an exception in a handler ends that one connection, never the process.
#include <doctest/doctest.h>
#include <sys/socket.h>

#include <memory>
#include <new>
#include <string>
#include <vector>

#include "l4lb/balance/service.hpp"
#include "l4lb/base/net.hpp"
#include "l4lb/base/watch.hpp"
#include "l4lb/dataplane/worker.hpp"

using namespace l4lb;

namespace {

// Picks its first member once; every later pick throws, as an allocation could.
class ThrowingSelector final : public Selector {
 public:
  Algorithm algorithm() const override { return Algorithm::RoundRobin; }
  double rebuild(std::span<Backend* const> members) override {
    members_.assign(members.begin(), members.end());
    return 0;
  }
  Backend* pick(const PickContext&, const PickFilter& filter) override {
    if (++picks_ > 1) throw std::bad_alloc();
    for (Backend* b : members_)
      if (filter.ok(b)) return b;
    return nullptr;
  }

 private:
  std::vector<Backend*> members_;
  int picks_ = 0;
};

struct Thrower {
  int calls = 0, errors = 0;
  void on_event(int) {
    ++calls;
    throw std::runtime_error("boom");
  }
  void on_callback_error() { ++errors; }
};

struct Silent {
  int calls = 0;
  void on_timer() {
    ++calls;
    throw 42;
  }
};

}  // namespace

TEST_CASE("an exception in a watcher's handler goes to its owner, never into libev") {
  struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  UniqueFd r(fds[0]), w(fds[1]);
  REQUIRE(::write(w.get(), "x", 1) == 1);
  {
    Thrower t;
    IoWatcher io;
    io.bind<&Thrower::on_event>(loop, &t, r.get());
    io.set(EV_READ);
    Silent s;  // no on_callback_error: the exception is dropped
    TimerWatcher timer;
    timer.bind<&Silent::on_timer>(loop, &s);
    timer.start(0.001);
    ev_run(loop, EVRUN_ONCE);  // the pipe is readable at once
    io.stop();
    ev_run(loop, 0);  // until the timer has fired (then nothing is active)
    CHECK(t.calls >= 1);
    CHECK(t.errors == t.calls);
    CHECK(s.calls == 1);
  }
  ev_loop_destroy(loop);
}

TEST_CASE("an exception in a session's handler resets that connection, counted; the worker goes on") {
  // A backend that never completes a handshake: its accept queue is full, so the kernel
  // drops the SYN and the connect stays in progress until connect_timeout fires.
  Address any, bound;
  std::string err;
  REQUIRE(parse_address("127.0.0.1:0", any, err, true));
  UniqueFd listener = listen_tcp(any, false, 0);
  REQUIRE(listener);
  bound = local_address(listener.get());
  std::vector<UniqueFd> fillers;
  bool in_progress = false;
  for (int i = 0; i < 4 && !in_progress; ++i) fillers.push_back(connect_tcp(bound, in_progress));
  if (!in_progress) {
    MESSAGE("this kernel completed every handshake; the in-progress connect cannot be made here");
    return;
  }
  fillers.pop_back();  // the probe that stayed in progress

  struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
  Log log(LogLevel::Error);
  {
    Worker worker(loop, log);
    ServiceConfig sc;
    sc.name = "web";
    sc.connect_timeout = Millis(20);
    sc.retries = 1;
    sc.health_check.type = HealthType::None;
    BackendConfig bc;
    bc.address = bound;
    bc.address_text = bound.to_string();
    sc.backends.push_back(bc);
    auto backend = std::make_shared<Backend>(bc);
    backend->health = HealthState::Up;
    auto svc = std::make_shared<Service>(
        sc, Pool({backend}, std::make_unique<ThrowingSelector>()), 1);

    int pair[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) == 0);
    UniqueFd client(pair[0]), peer_end(pair[1]);
    bool emptied = false;
    worker.on_empty = [&] {
      emptied = true;
      ev_break(loop, EVBREAK_ALL);
    };
    TimerWatcher deadline;
    struct Stop {
      struct ev_loop* loop;
      void fire() { ev_break(loop, EVBREAK_ALL); }
    } stop{loop};
    deadline.bind<&Stop::fire>(loop, &stop);
    deadline.start(5.0);
    worker.start_session(svc, std::move(client), Address{}, Admission{});
    CHECK(backend->live() == 1);  // connecting
    ev_run(loop, 0);              // the connect times out; the retry's pick throws
    CHECK(emptied);
    CHECK(svc->totals().errors == 1);
    CHECK(backend->live() == 0);
    char c;
    CHECK(::recv(peer_end.get(), &c, 1, 0) <= 0);  // the client's side was closed
  }
  ev_loop_destroy(loop);
}
