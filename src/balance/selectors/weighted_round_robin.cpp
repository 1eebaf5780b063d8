// weighted_round_robin: nginx's smooth weighted round robin (ngx_http_upstream_round_robin.c:
// each round every member's current weight grows by its weight, the largest is chosen,
// first in config order on a tie, and loses the total). The sequence repeats after
// sum(weights)/gcd picks, so rebuild() precomputes one period and a pick is O(1):
// the next schedule entry. An unavailable or tried entry is stepped over (the
// schedule, bounded), then the members are walked.
//
// Building the period fast: members of equal weight always have equal current weight
// up to their pick counts, so within a weight group the member picked least often and
// first in config order leads, i.e. a group picks its members in rotation. Each step
// compares only the groups: O(period x groups) instead of O(period x members).
#include <algorithm>
#include <map>
#include <numeric>
#include <queue>

#include "l4lb/balance/selectors.hpp"

namespace l4lb {

namespace {
constexpr size_t kScheduleWalk = 64;

std::vector<uint32_t> exact_schedule(const std::vector<int>& w, uint64_t period) {
  // Groups of equal weight, as flat arrays: the inner loop is a scan for the maximum.
  std::map<int, size_t> index;
  std::vector<std::vector<uint32_t>> members;  // per group, config order
  for (uint32_t i = 0; i < w.size(); ++i) {
    auto [it, fresh] = index.emplace(w[i], members.size());
    if (fresh) members.emplace_back();
    members[it->second].push_back(i);
  }
  const size_t groups = members.size();
  const auto total = static_cast<int64_t>(period);
  std::vector<int64_t> weight(groups), base(groups, 0);  // current weight = t * weight - base
  std::vector<uint32_t> next(groups, 0), leader(groups);  // leader = members[g][next[g]]
  for (size_t g = 0; g < groups; ++g) {
    weight[g] = w[members[g][0]];
    leader[g] = members[g][0];
  }
  std::vector<uint32_t> out;
  out.reserve(period);
  for (int64_t t = 1; t <= total; ++t) {
    size_t best = 0;
    int64_t best_cw = t * weight[0] - base[0];
    for (size_t g = 1; g < groups; ++g) {
      int64_t cw = t * weight[g] - base[g];
      if (cw > best_cw || (cw == best_cw && leader[g] < leader[best])) {
        best = g;
        best_cw = cw;
      }
    }
    out.push_back(leader[best]);
    // The leader was picked: the next member of its group leads; after a whole turn of
    // the group, each of its members has been picked once more.
    if (++next[best] == members[best].size()) {
      next[best] = 0;
      base[best] += total;
    }
    leader[best] = members[best][next[best]];
  }
  return out;
}

// Earliest deadline first with midpoint deadlines (k + 1/2) / w: the same counts per
// period, spread as evenly; used only where the exact build would take too long.
std::vector<uint32_t> edf_schedule(const std::vector<int>& w, uint64_t period) {
  struct Item {
    uint64_t k;
    uint32_t weight;
    uint32_t member;
  };
  auto later = [](const Item& a, const Item& b) {
    uint64_t da = (2 * a.k + 1) * b.weight, db = (2 * b.k + 1) * a.weight;
    return da != db ? da > db : a.member > b.member;
  };
  std::priority_queue<Item, std::vector<Item>, decltype(later)> q(later);
  for (uint32_t i = 0; i < w.size(); ++i) q.push({0, static_cast<uint32_t>(w[i]), i});
  std::vector<uint32_t> out;
  out.reserve(period);
  while (out.size() < period) {
    Item it = q.top();
    q.pop();
    out.push_back(it.member);
    ++it.k;
    q.push(it);
  }
  return out;
}
}  // namespace

std::vector<uint32_t> WeightedRoundRobin::schedule(const std::vector<int>& weights) {
  if (weights.empty()) return {};
  std::vector<int> w = weights;
  uint64_t total = 0;
  for (int x : w) total += static_cast<uint64_t>(std::max(x, 1));
  if (total > kMaxPeriod) {  // keep the table small: scale the weights down
    for (int& x : w)
      x = static_cast<int>(std::max<uint64_t>(1, static_cast<uint64_t>(x) * kMaxPeriod / total));
  }
  int g = 0;
  for (int& x : w) g = std::gcd(g, x = std::max(x, 1));
  total = 0;
  for (int& x : w) total += static_cast<uint64_t>(x /= g);
  std::vector<int> distinct = w;
  std::sort(distinct.begin(), distinct.end());
  uint64_t groups = static_cast<uint64_t>(std::unique(distinct.begin(), distinct.end()) - distinct.begin());
  if (groups * total <= kExactBudget) return exact_schedule(w, total);
  return edf_schedule(w, total);
}

double WeightedRoundRobin::rebuild(std::span<Backend* const> members) {
  if (members_.update(members)) {
    schedule_ = schedule(members_.weights());
    pos_ = 0;
  }
  return 0;
}

Backend* WeightedRoundRobin::pick(const PickContext&, const PickFilter& filter) {
  const auto& list = members_.list();
  size_t len = schedule_.size();
  if (len == 0) return nullptr;
  size_t steps = std::min(len, kScheduleWalk);
  for (size_t i = 0; i < steps; ++i) {
    Backend* b = list[schedule_[pos_]];
    if (++pos_ == len) pos_ = 0;
    if (filter.ok(b)) return b;
  }
  // Many unavailable in a row: walk the members from where the schedule stands.
  size_t n = list.size();
  for (size_t i = 0, k = schedule_[pos_]; i < n; ++i, k = k + 1 == n ? 0 : k + 1)
    if (filter.ok(list[k])) return list[k];
  return nullptr;
}

}  // namespace l4lb
