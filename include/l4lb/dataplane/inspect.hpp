// Inspector: a client of an inspecting address (sni services or accept_proxy) until its
// route is known: the PROXY header first (read and dropped: it is not passed on), then the
// ClientHello, which is only peeked (MSG_PEEK): its bytes stay in the client's socket and
// reach the backend byte for byte like any other. SO_RCVLOWAT makes the kernel wake the
// inspector only when the bytes the next step needs are there, so a client that trickles a
// hello byte by byte costs a few wake-ups, and an inspecting client holds no buffer of its
// own (the worker's one peek buffer serves them all). Ends once: routed (handed to a new
// Session with the client's places under the limits), or unrouted (counted by reason,
// closed). The worker reaps it after its handler returns.
#pragma once
#include <memory>
#include <optional>

#include "l4lb/balance/admission.hpp"
#include "l4lb/base/address.hpp"
#include "l4lb/base/fd.hpp"
#include "l4lb/base/intrusive_list.hpp"
#include "l4lb/base/watch.hpp"
#include "l4lb/dataplane/session.hpp"
#include "l4lb/dataplane/route.hpp"

namespace l4lb {

class Worker;

class Inspector : public ListLinks<Inspector> {
 public:
  Inspector(Worker& worker, std::shared_ptr<const Route> route, UniqueFd client,
            const Address& peer, Seat global, uint64_t accept_us = 0);
  Inspector(const Inspector&) = delete;
  Inspector& operator=(const Inspector&) = delete;

  void start();
  bool done() const { return phase_ == Phase::Done; }
  // Closes the client now; the caller reaps. WHY: its access-log end (a stop, or the
  // client's reset while inspected).
  void abort(AccessEnd why = AccessEnd::Stopped);
  void on_callback_error();  // an exception in a handler: closed, like a client that vanished

 private:
  enum class Phase { Proxy, Hello, Done };
  void on_io(int revents);
  void on_timer();
  void step();
  void wait_for(size_t bytes);  // wake when the socket holds at least BYTES
  void route_to(const std::shared_ptr<Service>& service);
  void fallback(Unrouted why);  // the service without sni, else unrouted WHY
  void unrouted(Unrouted why);
  void reap_if_done();

  Worker& worker_;
  std::shared_ptr<const Route> route_;
  UniqueFd client_;
  Address peer_;                  // the client: the PROXY header's source once read
  std::optional<Address> local_;  // the PROXY header's destination, where there is one
  Seat global_;                   // the client's place under global.max_connections
  uint64_t accept_us_;            // for the access log (0: off)
  std::string sni_;               // the server name the client sent (access log), if any
  ClientOrigin origin() const { return {accept_us_, route_->listen_text, sni_, peeked_ > 0}; }
  Phase phase_;
  size_t peeked_ = 0;             // bytes seen at the last wake-up
  bool lowat_set_ = false;
  void on_rest();                 // reads resume after a wake-up that brought nothing
  IoWatcher io_;
  TimerWatcher timer_;            // inspect_timeout, from accept
  TimerWatcher rest_;             // a short pause of reads (see step())
};

}  // namespace l4lb
