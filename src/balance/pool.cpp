#include "l4lb/balance/pool.hpp"

namespace l4lb {

Pool::Pool(std::vector<std::shared_ptr<Backend>> backends, Algorithm algorithm)
    : Pool(std::move(backends), make_selector(algorithm)) {}

Pool::Pool(std::vector<std::shared_ptr<Backend>> backends, std::unique_ptr<Selector> selector)
    : algorithm_(selector->algorithm()), backends_(std::move(backends)) {
  make_selectors(std::move(selector));
  rebuild(true);
}

Pool::Pool(Pool&& other) noexcept = default;

Pool& Pool::operator=(Pool&& other) noexcept {
  if (this != &other) {
    // The selectors first, while the backends they index are surely alive.
    regular_.reset();
    backup_.reset();
    algorithm_ = other.algorithm_;
    backends_ = std::move(other.backends_);
    regular_ = std::move(other.regular_);
    backup_ = std::move(other.backup_);
    scratch_regular_ = std::move(other.scratch_regular_);
    scratch_backup_ = std::move(other.scratch_backup_);
    regular_members_ = std::move(other.regular_members_);
    backup_members_ = std::move(other.backup_members_);
    tier_ = other.tier_;
    moved_ = other.moved_;
    hint_ = other.hint_;
    other.hint_ = nullptr;
    mu_ = std::move(other.mu_);
  }
  return *this;
}

Pool::~Pool() = default;  // selectors_ go before backends_ (declaration order)

void Pool::make_selectors(std::unique_ptr<Selector> regular) {
  regular_ = std::move(regular);
  backup_ = make_selector(algorithm_);
  regular_->set_lock(mu_.get());
  backup_->set_lock(mu_.get());
}

double Pool::rebuild(bool fresh) {
  scratch_regular_.clear();
  scratch_backup_.clear();
  for (const auto& b : backends_) {
    if (!b->selectable()) continue;
    (b->config.backup ? scratch_backup_ : scratch_regular_).push_back(b.get());
  }
  double regular = regular_->rebuild(scratch_regular_);
  double backup = backup_->rebuild(scratch_backup_);
  Tier tier = !scratch_regular_.empty() ? Tier::Regular
              : !scratch_backup_.empty() ? Tier::Backup
                                         : Tier::None;
  double moved = 0;
  if (algorithm_ == Algorithm::ConsistentHash && !fresh) {
    if (tier != tier_)
      moved = 1;
    else
      moved = tier == Tier::Regular ? regular : tier == Tier::Backup ? backup : 0;
  }
  tier_ = tier;
  // A refresh that changed nothing leaves the last change's figure.
  bool changed = regular_members_.update(scratch_regular_);
  changed = backup_members_.update(scratch_backup_) || changed;
  if (fresh || changed) moved_ = moved;
  return moved;
}

double Pool::refresh() {
  std::lock_guard<std::mutex> lock(*mu_);
  return rebuild(false);
}

double Pool::set_health(Backend& b, HealthState state) {
  bool was_down = b.health == HealthState::Down;
  b.health = state;
  return was_down != (state == HealthState::Down) ? refresh() : 0;
}

double Pool::update(std::vector<std::shared_ptr<Backend>> backends, Algorithm algorithm) {
  std::lock_guard<std::mutex> lock(*mu_);
  // The old backends stay alive until the selectors have let go of them.
  std::vector<std::shared_ptr<Backend>> old = std::move(backends_);
  backends_ = std::move(backends);
  hint_ = nullptr;
  if (algorithm == algorithm_) return rebuild(false);
  regular_.reset();
  backup_.reset();
  algorithm_ = algorithm;
  make_selectors(make_selector(algorithm));
  rebuild(true);
  moved_ = algorithm == Algorithm::ConsistentHash ? 1 : 0;  // a new table
  return moved_;
}

Lease Pool::acquire(const PickContext& ctx, std::span<Backend* const> avoid) {
  PickFilter filter(avoid);
  Lease lease;
  {
    std::lock_guard<std::mutex> lock(*mu_);
    // Backups only when no regular backend can take it (tried ones count as unavailable).
    Backend* b = regular_->pick(ctx, filter);
    if (!b) b = backup_->pick(ctx, filter);
    if (!b) return {};
    hint_ = b;
    // Reserved in the step that checked it: picks are serialized by the lock and only a
    // lease adds to a live count, so the backend the filter found below its limit still is.
    lease = Lease::reserve(*b);
  }
  lease.announce();  // the load observer takes the lock itself
  return lease;
}

bool Pool::any_available() const {
  std::lock_guard<std::mutex> lock(*mu_);
  if (hint_ && hint_->available()) return true;
  for (const auto& b : backends_) {
    if (b->available()) {
      hint_ = b.get();
      return true;
    }
  }
  return false;
}

}  // namespace l4lb
