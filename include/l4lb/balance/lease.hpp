// Lease: a backend socket and the backend's live count, tied together. The count is
// +1 when the lease is taken (just before connect) and -1 when the socket closes:
// the only code that changes a backend's live count.
#pragma once
#include <memory>
#include <utility>

#include "l4lb/balance/backend.hpp"
#include "l4lb/base/fd.hpp"

namespace l4lb {

class Lease {
 public:
  Lease() = default;
  explicit Lease(std::shared_ptr<Backend> backend) : backend_(std::move(backend)) {
    backend_->live_.fetch_add(1, std::memory_order_relaxed);
    notify();
  }
  // Takes one of B's connections if it is below max_connections: the check and the +1 are
  // one atomic step, so no number of workers can overshoot the limit. Empty if B is full.
  // The load observer is not told yet (the caller may hold the pool's lock): announce().
  static Lease reserve(Backend& b) {
    uint32_t max = b.config.max_connections;
    uint32_t n = b.live_.load(std::memory_order_relaxed);
    do {
      if (max != 0 && n >= max) return {};
    } while (!b.live_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    Lease lease;
    lease.backend_ = b.shared_from_this();
    return lease;
  }
  // Tells the load observer of the +1 of reserve(), outside the pool's lock.
  void announce() {
    if (backend_) notify();
  }
  Lease(Lease&& other) noexcept = default;
  Lease& operator=(Lease&& other) noexcept {
    if (this != &other) {
      end();
      backend_ = std::move(other.backend_);
      socket_ = std::move(other.socket_);
    }
    return *this;
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() { end(); }

  explicit operator bool() const { return static_cast<bool>(backend_); }
  Backend& backend() const { return *backend_; }
  Backend* get() const { return backend_.get(); }
  int fd() const { return socket_.get(); }
  void attach(UniqueFd socket) { socket_ = std::move(socket); }

  // Closes the socket and gives the count back (also done by the destructor).
  void end() {
    socket_.reset();
    if (backend_) {
      backend_->live_.fetch_sub(1, std::memory_order_relaxed);
      notify();
    }
    backend_.reset();
  }

 private:
  void notify() {
    if (LoadObserver* o = backend_->load_observer.load(std::memory_order_acquire)) o->load_changed(*backend_);
  }
  std::shared_ptr<Backend> backend_;
  UniqueFd socket_;
};

}  // namespace l4lb
