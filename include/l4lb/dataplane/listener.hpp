// Listener: accepts the clients of one service, applies the connection limits, and
// hands each client to the worker as a new session. Out of fds, it pauses.
#pragma once
#include <memory>

#include "l4lb/base/acceptor.hpp"
#include "l4lb/base/fd.hpp"

namespace l4lb {

class Worker;
struct Service;

class Listener {
 public:
  Listener(Worker& worker, std::shared_ptr<Service> service, UniqueFd fd);
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  const std::shared_ptr<Service>& service() const { return service_; }
  void set_service(std::shared_ptr<Service> s) { service_ = std::move(s); }
  // Accepts every client already waiting in the queue (before the listener closes on
  // a drain, so that none of them is reset).
  void accept_pending();

 private:
  bool on_client(UniqueFd client, const Address& peer);
  void on_shortage(int err);

  Worker& worker_;
  std::shared_ptr<Service> service_;
  Acceptor acceptor_;  // the listening socket, batches of 64, EMFILE back-off
};

}  // namespace l4lb
