// WaitQueue: a service's queue of clients waiting for a backend (INTERFACE "Queue"), one
// FIFO shared by every worker, so the client that came first is served first whichever
// worker accepted it. A waiter is a Ticket; the queue never touches the session behind it:
// kick() pops the head and runs its wake() (which only posts to the waiter's own worker),
// outside the queue's lock. A slot that frees (a connection to a full backend ends, a
// backend comes up or is made ready, a reload adds one) kicks the head; a waiter that is
// served and sees more room kicks the next, so a burst of room serves waiters in order; a
// waiter that finds no room after all goes back to the head.
#pragma once
#include <atomic>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>

namespace l4lb {

class WaitQueue {
 public:
  struct Ticket {
    std::function<void()> wake;  // posts to the waiter's worker; called from any thread
    bool queued = false;         // under the queue's lock
    std::list<std::shared_ptr<Ticket>>::iterator at;
  };

  // Adds T at the back (or, for a waiter that found no room after a wake, at the front);
  // false when SIZE waiters already wait (a front push always fits: it held a place).
  bool push(const std::shared_ptr<Ticket>& t, size_t size, bool front = false) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!front && list_.size() >= size) return false;
    t->at = front ? list_.insert(list_.begin(), t) : list_.insert(list_.end(), t);
    t->queued = true;
    count_.store(list_.size(), std::memory_order_relaxed);
    return true;
  }
  // Takes T out, if it is still in (a hang-up, a timeout). O(1).
  void remove(const std::shared_ptr<Ticket>& t) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!t->queued) return;
    list_.erase(t->at);
    t->queued = false;
    count_.store(list_.size(), std::memory_order_relaxed);
  }
  // Wakes the head waiter, if any (it leaves the queue).
  void kick() {
    std::shared_ptr<Ticket> head;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (list_.empty()) return;
      head = list_.front();
      list_.pop_front();
      head->queued = false;
      count_.store(list_.size(), std::memory_order_relaxed);
    }
    head->wake();
  }
  size_t size() const { return count_.load(std::memory_order_relaxed); }

 private:
  mutable std::mutex mu_;
  std::list<std::shared_ptr<Ticket>> list_;
  std::atomic<size_t> count_{0};
};

}  // namespace l4lb
