// Mailbox: work posted to an event loop from any thread, run on that loop's thread
// between its events (an ev_async wakes it). How the control thread and the data
// workers talk without waiting for each other.
#pragma once
#include <ev.h>

#include <functional>
#include <mutex>
#include <vector>

namespace l4lb {

class Mailbox {
 public:
  explicit Mailbox(struct ev_loop* loop) : loop_(loop) {
    ev_async_init(&wake_, &Mailbox::on_wake);
    wake_.data = this;
    ev_async_start(loop_, &wake_);
  }
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;
  ~Mailbox() { ev_async_stop(loop_, &wake_); }

  // Runs FN on the loop's thread soon; callable from any thread.
  // Out of memory, the work is dropped (never thrown at the poster, which may be a
  // session's close path).
  void post(std::function<void()> fn) noexcept {
    try {
      std::lock_guard<std::mutex> lock(mu_);
      inbox_.push_back(std::move(fn));
    } catch (...) {
      return;
    }
    ev_async_send(loop_, &wake_);
  }

 private:
  static void on_wake(struct ev_loop*, ev_async* w, int) {
    auto* self = static_cast<Mailbox*>(w->data);
    std::vector<std::function<void()>> work;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      work.swap(self->inbox_);
    }
    for (auto& fn : work) {
      try {
        fn();
      } catch (...) {
        // A posted task that throws loses only itself (never crosses into libev).
      }
    }
  }
  struct ev_loop* loop_;
  std::mutex mu_;
  std::vector<std::function<void()>> inbox_;
  ev_async wake_{};
};

}  // namespace l4lb
