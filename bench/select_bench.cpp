// select-bench: the per-connection cost of backend selection, for each algorithm at
// 10, 100 and 1,000 backends. One "pick" is what a connection costs the pool: an
// acquire() (selection + Lease +1) and the end of an older lease (-1), with a steady
// load of one open connection per backend and varied client addresses (1 in 4 IPv6)
// for the hashing algorithms. Prints the median ns per pick of several runs.
//
//   build/select-bench [--runs N] [--picks N]
// Exit status 1 when an algorithm takes more than 250 ns per pick at 1,000 backends.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "l4lb/balance/pool.hpp"

using namespace l4lb;

namespace {
constexpr double kBudgetNs = 250;

std::vector<std::shared_ptr<Backend>> make_backends(size_t n) {
  std::vector<std::shared_ptr<Backend>> out;
  for (size_t i = 0; i < n; ++i) {
    BackendConfig bc;
    bc.address_text = "10.2." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + ":8000";
    std::string err;
    if (!parse_address(bc.address_text, bc.address, err)) std::abort();
    bc.weight = 1 + static_cast<int>(i % 10);  // varied weights for the weighted algorithms
    out.push_back(std::make_shared<Backend>(bc));
  }
  return out;
}

std::vector<Address> make_clients(size_t n) {
  std::vector<Address> out(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t x = static_cast<uint32_t>(i) * 2654435761u;
    char text[80];
    if (i % 4 == 3)
      std::snprintf(text, sizeof text, "[2001:db8:%x:%x::%x]:%u", x >> 16, x & 0xffff,
                    static_cast<unsigned>(i), 1024 + static_cast<unsigned>(i % 60000));
    else
      std::snprintf(text, sizeof text, "%u.%u.%u.%u:%u", 1 + (x >> 24) % 223, (x >> 16) & 0xff,
                    (x >> 8) & 0xff, x & 0xff, 1024 + static_cast<unsigned>(i % 60000));
    std::string err;
    if (!parse_address(text, out[i], err, true)) std::abort();
  }
  return out;
}

// Median ns per pick over RUNS runs of PICKS picks. ALGORITHM < 0: lease only (no selection).
double measure(int algorithm, size_t backends, int runs, size_t picks) {
  auto bs = make_backends(backends);
  Pool pool(bs, algorithm < 0 ? Algorithm::RoundRobin : static_cast<Algorithm>(algorithm));
  std::vector<Address> clients = make_clients(4096);
  std::vector<Lease> ring(backends);  // the open connections: one per backend on average
  size_t i = 0;
  auto step = [&] {
    Lease next = algorithm < 0 ? Lease(bs[i % backends])
                               : pool.acquire(PickContext{&clients[i & 4095]});
    ring[i % backends] = std::move(next);  // the oldest connection closes
    ++i;
  };
  for (size_t w = 0; w < std::max<size_t>(picks / 10, 2 * backends); ++w) step();  // warm up
  std::vector<double> ns;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (size_t k = 0; k < picks; ++k) step();
    auto t1 = std::chrono::steady_clock::now();
    ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(picks));
  }
  ring.clear();
  for (const auto& b : bs)
    if (b->live() != 0) std::abort();  // every count came back
  std::sort(ns.begin(), ns.end());
  return ns[ns.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  size_t picks = 1000000;
  for (int a = 1; a < argc; ++a) {
    if (!std::strcmp(argv[a], "--runs") && a + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++a]));
    } else if (!std::strcmp(argv[a], "--picks") && a + 1 < argc) {
      picks = std::max<size_t>(1000, std::strtoull(argv[++a], nullptr, 10));
    } else {
      std::fprintf(stderr, "usage: %s [--runs N] [--picks N]\n", argv[0]);
      return 2;
    }
  }
  const size_t sizes[] = {10, 100, 1000};
  std::printf("ns per pick (acquire + lease end), median of %d runs of %zu picks\n\n", runs, picks);
  std::printf("%-28s %10s %10s %10s\n", "algorithm", "10", "100", "1000");
  bool over = false;
  for (int alg = -1; alg <= static_cast<int>(Algorithm::ConsistentHash); ++alg) {
    std::string name = alg < 0 ? "(lease only, no selection)"
                               : std::string(to_string(static_cast<Algorithm>(alg)));
    std::printf("%-28s", name.c_str());
    double last = 0;
    for (size_t n : sizes) {
      last = measure(alg, n, runs, picks);
      std::printf(" %10.1f", last);
      std::fflush(stdout);
    }
    bool bad = alg >= 0 && last > kBudgetNs;
    over = over || bad;
    std::printf("%s\n", bad ? "   OVER 250 ns" : "");
  }
  return over ? 1 : 0;
}
