// RAII wrappers over libev watchers: stopped in their destructor, never own an fd.
// A watcher calls a member function of its owner: IoWatcher::bind<&T::method>(owner);
// no exception thrown there reaches libev (see detail::dispatch).
#pragma once
#include <ev.h>

namespace l4lb {

namespace detail {
// Calls OWNER->*METHOD(ARGS...) for libev: an exception never crosses into the loop. The
// owner's on_callback_error() takes it where the owner has one (a session ends, an
// accept loop pauses); else it is dropped here.
template <auto Method, class T, class... A>
void dispatch(T* owner, A... args) noexcept {
  try {
    (owner->*Method)(args...);
  } catch (...) {
    if constexpr (requires(T& t) { t.on_callback_error(); }) {
      try {
        owner->on_callback_error();
      } catch (...) {
      }
    }
  }
}
}  // namespace detail

class IoWatcher {
 public:
  IoWatcher() = default;
  IoWatcher(const IoWatcher&) = delete;
  IoWatcher& operator=(const IoWatcher&) = delete;
  ~IoWatcher() { stop(); }

  template <auto Method, class T>
  void bind(struct ev_loop* loop, T* owner, int fd) {
    stop();
    loop_ = loop;
    ev_io_init(&w_, (&thunk<Method, T>), fd, 0);
    w_.data = owner;
  }
  // Watches exactly EVENTS (EV_READ|EV_WRITE, or 0 to stop). Cheap when unchanged:
  // libev batches the epoll_ctl until the next loop iteration.
  void set(int events) {
    if (events == events_) return;
    if (ev_is_active(&w_)) ev_io_stop(loop_, &w_);
    events_ = events;
    if (events == 0) return;
    ev_io_modify(&w_, events);
    ev_io_start(loop_, &w_);
  }
  void stop() { set(0); }
  int events() const { return events_; }

 private:
  template <auto Method, class T>
  static void thunk(struct ev_loop*, ev_io* w, int revents) {
    detail::dispatch<Method>(static_cast<T*>(w->data), revents);
  }
  struct ev_loop* loop_ = nullptr;
  ev_io w_{};
  int events_ = 0;
};

class TimerWatcher {
 public:
  TimerWatcher() = default;
  TimerWatcher(const TimerWatcher&) = delete;
  TimerWatcher& operator=(const TimerWatcher&) = delete;
  ~TimerWatcher() { stop(); }

  template <auto Method, class T>
  void bind(struct ev_loop* loop, T* owner) {
    stop();
    loop_ = loop;
    ev_init(&w_, (&thunk<Method, T>));
    w_.data = owner;
  }
  // Fires once after SECONDS (restarting if already running).
  void start(double seconds) {
    stop();
    ev_timer_set(&w_, seconds, 0.);
    ev_timer_start(loop_, &w_);
  }
  void stop() {
    if (loop_ && ev_is_active(&w_)) ev_timer_stop(loop_, &w_);
  }
  bool active() const { return ev_is_active(&w_); }

 private:
  template <auto Method, class T>
  static void thunk(struct ev_loop*, ev_timer* w, int) {
    detail::dispatch<Method>(static_cast<T*>(w->data));
  }
  struct ev_loop* loop_ = nullptr;
  ev_timer w_{};
};

class SignalWatcher {
 public:
  SignalWatcher() = default;
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;
  ~SignalWatcher() {
    if (loop_ && ev_is_active(&w_)) ev_signal_stop(loop_, &w_);
  }

  template <auto Method, class T>
  void start(struct ev_loop* loop, T* owner, int signum) {
    loop_ = loop;
    ev_signal_init(&w_, (&thunk<Method, T>), signum);
    w_.data = owner;
    ev_signal_start(loop_, &w_);
  }

 private:
  template <auto Method, class T>
  static void thunk(struct ev_loop*, ev_signal* w, int) {
    detail::dispatch<Method>(static_cast<T*>(w->data), w->signum);
  }
  struct ev_loop* loop_ = nullptr;
  ev_signal w_{};
};

// Waits for one child process to end (default loop only, as libev requires).
class ChildWatcher {
 public:
  ChildWatcher() = default;
  ChildWatcher(const ChildWatcher&) = delete;
  ChildWatcher& operator=(const ChildWatcher&) = delete;
  ~ChildWatcher() { stop(); }

  // Calls OWNER->*Method(pid, status) when PID changes state (exit, signal, stop).
  template <auto Method, class T>
  void start(struct ev_loop* loop, T* owner, int pid) {
    stop();
    loop_ = loop;
    ev_child_init(&w_, (&thunk<Method, T>), pid, 0);
    w_.data = owner;
    ev_child_start(loop_, &w_);
  }
  void stop() {
    if (loop_ && ev_is_active(&w_)) ev_child_stop(loop_, &w_);
  }

 private:
  template <auto Method, class T>
  static void thunk(struct ev_loop*, ev_child* w, int) {
    detail::dispatch<Method>(static_cast<T*>(w->data), w->rpid, w->rstatus);
  }
  struct ev_loop* loop_ = nullptr;
  ev_child w_{};
};

}  // namespace l4lb
