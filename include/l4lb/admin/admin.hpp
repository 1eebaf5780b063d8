// AdminServer: the admin port on the control thread's loop: reads (GET /health, /stats,
// /metrics) answered from the ServerState, writes (PUT .../state, PUT .../weight,
// DELETE .../connections) checked here (authorisation, path, method: admin/routes) and
// carried out by its owner (AdminControl). On TCP or on a unix socket. Each connection reads one request head (strict parser, 8 KiB, 5 s), writes one
// answer with non-blocking sends and closes ("Connection: close"). Nothing a client
// does can block the loop: at most 64 connections (a new one closes the oldest, so
// slow clients cannot lock a health check out), every connection has a bounded lifetime,
// and each read is bounded.
#pragma once
#include <ev.h>
#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>

#include "l4lb/admin/admin_http.hpp"
#include "l4lb/admin/routes.hpp"
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

// The answer to a read request (GET/HEAD of /health, /stats, /metrics; pure apart from
// reading /proc for /metrics). HEAD is answered like GET without the body.
http::Response admin_response(const http::Request& req, const ServerState& state, double now);

// What the admin port needs of its owner for write requests.
class AdminControl {
 public:
  // The bearer token write requests over TCP need; empty: none configured (403).
  virtual const std::string& admin_token() const = 0;
  // Carries out ACTION (a write endpoint, authorised) for the request REQ from PEER
  // ("127.0.0.1:40312" or "unix:UID"): 200, 400 (bad body) or 404 (no such service or
  // backend), JSON bodies.
  virtual http::Response admin_write(const admin::Action& action, const http::Request& req,
                                     const std::string& peer) = 0;

 protected:
  ~AdminControl() = default;
};

class AdminServer {
 public:
  // LISTEN_FD: a bound, listening, non-blocking socket (listen_tcp, or listen_unix with
  // UNIX_PATH its path: removed when the server goes, if it is still this socket). STATE
  // is read at each request; CONTROL carries out writes (null: every write is 403). Both
  // must outlive the server.
  AdminServer(struct ev_loop* loop, Log& log, UniqueFd listen_fd, const ServerState& state,
              AdminControl* control = nullptr, std::string unix_path = {}, AdminLimits limits = {});
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  ~AdminServer();  // closes the listener and every open admin connection

  int fd() const { return acceptor_.fd(); }
  // An upgrade handed the socket to a new process: its file stays when this server goes.
  void keep_socket_file() { keep_file_ = true; }
  size_t connection_count() const { return conns_.size(); }
  uint64_t evicted_count() const { return evicted_; }  // closed to make room (limit)

 private:
  class Conn;
  bool on_client(UniqueFd client, const Address& peer);
  void on_shortage(int err);
  void reap(Conn* c);  // the one place a connection is destroyed

  // The answer to REQ (parsed) from PEER.
  http::Response answer(const http::Request& req, const std::string& peer);

  struct ev_loop* loop_;
  Log& log_;
  const ServerState& state_;
  AdminControl* control_;
  std::string unix_path_;  // empty: TCP
  dev_t unix_dev_ = 0;     // the socket file made, to remove only that one
  ino_t unix_ino_ = 0;
  bool keep_file_ = false;
  AdminLimits limits_;
  Acceptor acceptor_;  // the listening socket, batches of 16, EMFILE back-off
  IntrusiveList<Conn> conns_;  // open connections, newest first
  uint64_t evicted_ = 0;
};

}  // namespace l4lb
