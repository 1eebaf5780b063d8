// least_connections and weighted_least_connections (the same index, keyed on live or on
// live/weight, compared exactly as live_a * weight_b < live_b * weight_a): an indexed
// binary min-heap of the members. Each entry is keyed on the live count it last saw
// (and the weight), ties to the least recently picked. Lease, the only writer of the
// count, calls load_changed() after each +1/-1 and the entry moves up or down, so the
// root is the least loaded member as far as the entries know: a pick takes the root and
// moves it down once (taking the +1 the lease is about to make); the -1 at the end moves
// it up: O(log n) per connection, over a compact array (positions are kept in the
// selector, the Backend only stores its member index).
//
// The hook can miss a change (a Lease that finds no observer while a rebuild re-registers
// the members), so a pick first re-reads the root's count, moving a stale root and
// re-reading the new one, up to kResyncs times; after that it takes the root as it stands.
// When the root is unavailable (full, or down/draining since the last rebuild) or tried,
// a bounded best-first search looks at up to kSearch more entries by their stored keys;
// past that, one linear pass over fresh counts.
#include <algorithm>

#include "l4lb/balance/selectors.hpp"

namespace l4lb {

namespace {
constexpr size_t kSearch = 32;  // entries the best-first search may look at
constexpr int kResyncs = 4;
}  // namespace

LoadHeap::~LoadHeap() {
  for (Backend* b : members_.list())
    if (b->load_observer == this) b->load_observer = nullptr;
}

void LoadHeap::sift_up(size_t pos) {
  Entry e = heap_[pos];
  while (pos > 0) {
    size_t parent = (pos - 1) / 2;
    if (!before(e, heap_[parent])) break;
    put(pos, heap_[parent]);
    pos = parent;
  }
  put(pos, e);
}

void LoadHeap::sift_down(size_t pos) {
  Entry e = heap_[pos];
  size_t n = heap_.size();
  for (;;) {
    size_t child = 2 * pos + 1;
    if (child >= n) break;
    if (child + 1 < n && before(heap_[child + 1], heap_[child])) ++child;
    if (!before(heap_[child], e)) break;
    put(pos, heap_[child]);
    pos = child;
  }
  put(pos, e);
}

void LoadHeap::resync(size_t pos) {
  Entry& e = heap_[pos];
  uint32_t now = backend_at(pos)->live();
  if (now == e.live) return;
  bool up = now < e.live;
  e.live = now;
  if (up)
    sift_up(pos);
  else
    sift_down(pos);
}

void LoadHeap::load_changed(Backend& b) {
  std::unique_lock<std::mutex> guard;
  if (lock_) guard = std::unique_lock<std::mutex>(*lock_);
  uint32_t m = b.load_slot;
  if (m < members_.size() && members_.list()[m] == &b) resync(pos_[m]);
}

double LoadHeap::rebuild(std::span<Backend* const> members) {
  // Tie order of the members that stay (by backend), before the member list changes.
  std::vector<std::pair<Backend*, uint64_t>> kept;
  for (const Entry& e : heap_) kept.emplace_back(members_.list()[e.member], e.last_pick);
  std::vector<Backend*> old = members_.list();
  if (!members_.update(members)) return 0;
  for (Backend* b : old)
    if (b->load_observer == this) b->load_observer = nullptr;
  std::sort(kept.begin(), kept.end());
  const auto& list = members_.list();
  heap_.clear();
  pos_.assign(list.size(), 0);
  for (uint32_t i = 0; i < list.size(); ++i) {
    Backend* b = list[i];
    // A member that stays keeps its place in the rotation of ties; a new one takes its
    // index as its last pick: new ones rotate in config order, ahead only of the equals
    // whose last pick is later than that index.
    uint64_t last_pick = i;
    auto it = std::lower_bound(kept.begin(), kept.end(), std::pair<Backend*, uint64_t>{b, 0});
    if (it != kept.end() && it->first == b) last_pick = it->second;
    auto weight = static_cast<uint32_t>(members_.weights()[i]);  // share, or ramp (unweighted)
    heap_.push_back({last_pick, b->live(), weight, i, b->ramp()});
    pos_[i] = i;
    b->load_observer = this;
    b->load_slot = i;
  }
  if (clock_ < heap_.size()) clock_ = heap_.size();
  for (size_t i = heap_.size() / 2; i-- > 0;) sift_down(i);
  return 0;
}

// The lease that follows adds 1 to the count: the entry takes it now, with its new
// place in the rotation, and moves once; the Lease's report then finds it current.
Backend* LoadHeap::choose(size_t pos) {
  Backend* b = backend_at(pos);
  Entry& e = heap_[pos];
  e.last_pick = ++clock_;
  e.live = b->live() + 1;
  sift_down(pos);
  return b;
}

Backend* LoadHeap::pick(const PickContext&, const PickFilter& filter) {
  size_t n = heap_.size();
  if (n == 0) return nullptr;
  for (int i = 0; i < kResyncs && heap_[0].live != backend_at(0)->live(); ++i) resync(0);
  if (filter.ok(backend_at(0))) return choose(0);

  // Best-first over the heap: the next best entries are children of those seen.
  frontier_.clear();
  auto push_children = [&](size_t p) {
    for (size_t c = 2 * p + 1; c <= 2 * p + 2 && c < n; ++c) frontier_.push_back(static_cast<uint32_t>(c));
  };
  push_children(0);
  for (size_t seen = 0; seen < kSearch && !frontier_.empty(); ++seen) {
    size_t best = 0;
    for (size_t i = 1; i < frontier_.size(); ++i)
      if (before(heap_[frontier_[i]], heap_[frontier_[best]])) best = i;
    size_t pos = frontier_[best];
    frontier_[best] = frontier_.back();
    frontier_.pop_back();
    if (filter.ok(backend_at(pos))) return choose(pos);
    push_children(pos);
  }

  // Many unavailable: the least loaded of the rest, with fresh counts.
  size_t best = n;
  Entry best_key{};
  for (size_t i = 0; i < n; ++i) {
    if (!filter.ok(backend_at(i))) continue;
    Entry key = heap_[i];
    key.live = backend_at(i)->live();
    if (best == n || before(key, best_key)) {
      best = i;
      best_key = key;
    }
  }
  return best == n ? nullptr : choose(best);
}

}  // namespace l4lb
