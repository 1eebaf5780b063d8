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

Worker::Worker(struct ev_loop* loop, Log& log, size_t index, Mailbox* control)
    : loop_(loop), log_(log), index_(index), spare_fd_(open_spare()), control_(control), inbox_(loop) {
  trim_timer_.bind<&Worker::on_trim>(loop_, this);
  trim_timer_.start(1.0);
}

void Worker::on_control(std::function<void()> fn) {
  if (control_)
    control_->post(std::move(fn));
  else
    fn();
}

void Worker::on_trim() {
  pipes_.trim();
  trim_timer_.start(1.0);
}

Worker::~Worker() {
  listeners.clear();
  on_empty = nullptr;
  close_all();
}

void Worker::start_session(std::shared_ptr<Service> service, UniqueFd client, const Address& peer,
                           Admission admission) {
  auto* s = new Session(*this, std::move(service), std::move(client), peer, std::move(admission));
  sessions_.push_front(s);
  s->start();
  if (s->done()) reap(s);
}

void Worker::reap(Session* s) {
  sessions_.erase(s);
  delete s;  // gives its places under the connection limits back
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
