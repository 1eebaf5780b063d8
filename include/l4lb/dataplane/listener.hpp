// Listener: accepts the clients of one listen address on one worker. An address with one
// plain service hands each client to it at once (connect at accept); one that inspects
// (sni services, accept_proxy) hands it to an Inspector first. The global connection limit
// is reserved here, at accept. Out of fds, it pauses.
#pragma once
#include <memory>

#include "l4lb/base/acceptor.hpp"
#include "l4lb/base/fd.hpp"
#include "l4lb/dataplane/route.hpp"

namespace l4lb {

class Worker;

class Listener {
 public:
  Listener(Worker& worker, std::shared_ptr<const Route> route, UniqueFd fd);
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  const std::shared_ptr<const Route>& route() const { return route_; }
  void set_route(std::shared_ptr<const Route> r) { route_ = std::move(r); }
  int fd() const { return acceptor_.fd(); }
  // Accepts every client already waiting in the queue (before the listener closes on
  // a drain, so that none of them is reset).
  void accept_pending();

 private:
  bool on_client(UniqueFd client, const Address& peer);
  void on_shortage(int err);

  Worker& worker_;
  std::shared_ptr<const Route> route_;
  Acceptor acceptor_;  // the listening socket, batches of 64, EMFILE back-off
};

}  // namespace l4lb
