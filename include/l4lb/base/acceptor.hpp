// Acceptor: the accept loop of one listening socket, shared by the data listeners and the
// admin port. Each readable event accepts up to BATCH clients and hands each to its owner;
// out of fds or memory (resource_shortage), it tells the owner, stops watching and
// resumes after PAUSE seconds.
#pragma once
#include <ev.h>

#include <cerrno>
#include <utility>

#include "l4lb/base/address.hpp"
#include "l4lb/base/fd.hpp"
#include "l4lb/base/watch.hpp"

namespace l4lb {

class Acceptor {
 public:
  Acceptor() = default;
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Takes FD (bound, listening, non-blocking) and watches it. A client goes to
  // OWNER->OnClient(UniqueFd client, const Address& peer), which returns false to end the
  // batch; a shortage to OWNER->OnShortage(int err), before the pause.
  template <auto OnClient, auto OnShortage, class T>
  void start(struct ev_loop* loop, T* owner, UniqueFd fd, int batch, double pause) {
    stop();
    fd_ = std::move(fd);
    owner_ = owner;
    on_client_ = &client_thunk<OnClient, T>;
    on_shortage_ = &shortage_thunk<OnShortage, T>;
    batch_ = batch;
    pause_seconds_ = pause;
    io_.bind<&Acceptor::on_readable>(loop, this, fd_.get());
    pause_.bind<&Acceptor::on_resume>(loop, this);
    io_.set(EV_READ);
  }

  int fd() const { return fd_.get(); }
  // Accepts up to one batch now; false once the queue is empty, accepting paused, or the
  // owner ended the batch. EINTR, ECONNABORTED, EPROTO and EPERM skip to the next client.
  bool accept_batch();
  // Stops watching, and the pause; the socket stays open until the Acceptor is destroyed.
  void stop() {
    io_.stop();
    pause_.stop();
  }
  // An exception while handing a client over (bad_alloc): that client is closed (its
  // socket is RAII) and accepting pauses as for any other shortage of memory.
  void on_callback_error() { shortage(ENOMEM); }

 private:
  template <auto Method, class T>
  static bool client_thunk(void* owner, UniqueFd client, const Address& peer) {
    return (static_cast<T*>(owner)->*Method)(std::move(client), peer);
  }
  template <auto Method, class T>
  static void shortage_thunk(void* owner, int err) {
    (static_cast<T*>(owner)->*Method)(err);
  }
  void on_readable(int) { accept_batch(); }
  void shortage(int err);
  void on_resume() { io_.set(EV_READ); }

  UniqueFd fd_;
  void* owner_ = nullptr;
  bool (*on_client_)(void*, UniqueFd, const Address&) = nullptr;
  void (*on_shortage_)(void*, int) = nullptr;
  int batch_ = 1;
  double pause_seconds_ = 0;
  // Watchers last: destroyed (stopped) before the socket above is closed.
  IoWatcher io_;
  TimerWatcher pause_;
};

}  // namespace l4lb
