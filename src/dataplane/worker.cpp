#include "l4lb/dataplane/worker.hpp"

#include <fcntl.h>

#include "l4lb/dataplane/listener.hpp"
#include "l4lb/base/net.hpp"
#include "l4lb/balance/service.hpp"
#include "l4lb/dataplane/session.hpp"

namespace l4lb {

namespace {
UniqueFd open_spare() { return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }
}  // namespace

Worker::Worker(struct ev_loop* loop, Log& log, size_t index)
    : loop_(loop), log_(log), index_(index), spare_fd_(open_spare()) {
  trim_timer_.bind<&Worker::on_trim>(loop_, this);
  trim_timer_.start(1.0);
  ev_async_init(&wake_, &Worker::on_wake);
  wake_.data = this;
  ev_async_start(loop_, &wake_);
}

void Worker::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    inbox_.push_back(std::move(fn));
  }
  ev_async_send(loop_, &wake_);
}

void Worker::on_main(std::function<void()> fn) {
  if (main == this)
    fn();
  else
    main->post(std::move(fn));
}

void Worker::on_wake(struct ev_loop*, ev_async* w, int) {
  auto* self = static_cast<Worker*>(w->data);
  std::vector<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> lock(self->inbox_mu_);
    work.swap(self->inbox_);
  }
  for (auto& fn : work) fn();
}

void Worker::on_trim() {
  pipes_.trim();
  trim_timer_.start(1.0);
}

Worker::~Worker() {
  listeners.clear();
  on_empty = nullptr;
  close_all();
  ev_async_stop(loop_, &wake_);
}

void Worker::start_session(std::shared_ptr<Service> service, UniqueFd client, const Address& peer) {
  auto* s = new Session(*this, std::move(service), std::move(client), peer);
  sessions_.push_front(s);
  open_sessions->fetch_add(1, std::memory_order_relaxed);
  s->start();
  if (s->done()) reap(s);
}

void Worker::reap(Session* s) {
  sessions_.erase(s);
  delete s;
  open_sessions->fetch_sub(1, std::memory_order_relaxed);
  if (sessions_.empty() && on_empty) on_empty();
}

void Worker::close_all() {
  while (Session* s = sessions_.front()) {
    s->abort();
    reap(s);
  }
}

bool Worker::warn_resources_now() {
  double now = ev_now(loop_);
  if (now - last_resource_warning_ < 1.0) return false;
  last_resource_warning_ = now;
  return true;
}

bool Worker::shed_one(int listen_fd) {
  if (!spare_fd_) return false;
  spare_fd_.reset();
  Address peer;
  UniqueFd client = accept_tcp(listen_fd, peer);
  bool shed = static_cast<bool>(client);
  client.reset();
  spare_fd_ = open_spare();
  return shed;
}

}  // namespace l4lb
