// AdminServer: the read-only admin port (GET /health, /stats, /metrics) on the event
// loop. Each connection reads one request head (strict parser, 8 KiB, 5 s), writes one
// answer with non-blocking sends and closes ("Connection: close"). Nothing a client
// does can block the loop: at most 64 connections (a new one closes the oldest, so
// slow clients cannot lock a health check out), every connection has a bounded lifetime,
// and each read is bounded.
#pragma once
#include <ev.h>

#include <cstddef>
#include <memory>

#include "l4lb/admin/admin_http.hpp"
#include "l4lb/base/acceptor.hpp"
#include "l4lb/base/fd.hpp"
#include "l4lb/base/intrusive_list.hpp"
#include "l4lb/log/log.hpp"
#include "l4lb/control/server_state.hpp"
#include "l4lb/base/watch.hpp"

namespace l4lb {

struct AdminLimits {
  size_t max_connections = 64;   // open admin connections; a new one closes the oldest
  double request_timeout = 5.0;  // seconds from accept to a complete request head
  double write_timeout = 10.0;   // seconds to send the answer once it is ready
  double linger_timeout = 1.0;   // seconds to wait for the client's FIN after the answer
};

// The answer to one parsed request (routing; pure apart from reading /proc for
// /metrics). HEAD is answered like GET without the body.
http::Response admin_response(const http::Request& req, const ServerState& state, double now);

class AdminServer {
 public:
  // LISTEN_FD: a bound, listening, non-blocking socket (listen_tcp). STATE is read at
  // each request and must outlive the server.
  AdminServer(struct ev_loop* loop, Log& log, UniqueFd listen_fd, const ServerState& state,
              AdminLimits limits = {});
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  ~AdminServer();  // closes the listener and every open admin connection

  int fd() const { return acceptor_.fd(); }
  size_t connection_count() const { return conns_.size(); }
  uint64_t evicted_count() const { return evicted_; }  // closed to make room (limit)

 private:
  class Conn;
  bool on_client(UniqueFd client, const Address& peer);
  void on_shortage(int err);
  void reap(Conn* c);  // the one place a connection is destroyed

  struct ev_loop* loop_;
  Log& log_;
  const ServerState& state_;
  AdminLimits limits_;
  Acceptor acceptor_;  // the listening socket, batches of 16, EMFILE back-off
  IntrusiveList<Conn> conns_;  // open connections, newest first
  uint64_t evicted_ = 0;
};

}  // namespace l4lb
