// Per-source admission: allow/deny precedence, the per-address open count (IPv6 per prefix,
// IPv4-mapped as IPv4), the token bucket on an injected clock, LRU forgetting at capacity
// (never an entry with open connections), reloads that keep counts, and several threads
// admitting and releasing at once. (Run under SANITIZE=thread too: scripts/tsan.sh.)
#include "l4lb/balance/source_limits.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

using namespace l4lb;

namespace {

Address addr(const std::string& text) {
  Address a;
  std::string error;
  bool ok = parse_address(text, a, error, true);
  INFO(text << ": " << error);
  REQUIRE(ok);
  return a;
}

CidrSet cidrs(std::initializer_list<const char*> texts) {
  CidrSet set;
  for (const char* t : texts) {
    Cidr c;
    std::string error;
    REQUIRE(parse_cidr(t, c, error));
    set.add(c);
  }
  return set;
}

SourceLimitsConfig limits(uint32_t max_connections, double rate = 0, int ipv6_prefix = 64) {
  SourceLimitsConfig c;
  c.max_connections = max_connections;
  c.rate = rate;
  c.ipv6_prefix = ipv6_prefix;
  return c;
}

SourceLimits::Options small(size_t capacity, size_t shards = 1) {
  SourceLimits::Options o;
  o.capacity = capacity;
  o.shards = shards;
  o.seed = 42;
  return o;
}

// Admits CLIENT at NOW and keeps its seat in HELD; returns the reason (None when admitted).
SourceReject take(SourceLimits& t, const std::string& client, double now,
                  std::vector<SourceSeat>& held) {
  SourceVerdict v = t.admit(addr(client), now);
  if (v) held.push_back(std::move(v.seat));
  return v.reject;
}

SourceKey key_of(const std::string& client, int prefix) {
  SourceKey k;
  REQUIRE(source_key(addr(client), prefix, k));
  return k;
}

// Runs FN(thread index) on THREADS threads at once.
template <class Fn>
void on_threads(int threads, Fn fn) {
  std::atomic<int> ready{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < threads) {
      }
      fn(t);
    });
  for (auto& th : ts) th.join();
}

}  // namespace

// ---- allow / deny ----------------------------------------------------------------------------

TEST_CASE("an access list with no allow and no deny entries lets everyone in") {
  AccessList acl;
  CHECK(acl.lets_everyone_in());
  CHECK(acl.check(addr("192.0.2.1:1")) == AccessVerdict::Ok);
  CHECK(acl.check(addr("[2001:db8::1]:1")) == AccessVerdict::Ok);
}

TEST_CASE("a non-empty allow list lets in only the clients inside it") {
  AccessList acl(cidrs({"10.0.0.0/8", "2001:db8::/32"}), {});
  CHECK(acl.check(addr("10.1.2.3:1")) == AccessVerdict::Ok);
  CHECK(acl.check(addr("[2001:db8:1::5]:1")) == AccessVerdict::Ok);
  CHECK(acl.check(addr("11.0.0.1:1")) == AccessVerdict::Denied);
  CHECK(acl.check(addr("[2001:db9::1]:1")) == AccessVerdict::Denied);
}

TEST_CASE("deny wins over allow, and a deny list alone denies only its clients") {
  AccessList both(cidrs({"10.0.0.0/8"}), cidrs({"10.9.0.0/16", "10.1.1.1"}));
  CHECK(both.check(addr("10.1.2.3:1")) == AccessVerdict::Ok);
  CHECK(both.check(addr("10.9.0.7:1")) == AccessVerdict::Denied);
  CHECK(both.check(addr("10.1.1.1:1")) == AccessVerdict::Denied);
  CHECK(both.check(addr("10.1.1.2:1")) == AccessVerdict::Ok);
  // The same address both allowed and denied exactly: denied.
  AccessList same(cidrs({"192.0.2.7"}), cidrs({"192.0.2.7/32"}));
  CHECK(same.check(addr("192.0.2.7:1")) == AccessVerdict::Denied);
  AccessList deny_only({}, cidrs({"192.0.2.0/24"}));
  CHECK(deny_only.check(addr("192.0.2.1:1")) == AccessVerdict::Denied);
  CHECK(deny_only.check(addr("198.51.100.1:1")) == AccessVerdict::Ok);
}

TEST_CASE("an IPv4-mapped IPv6 client is allowed and denied as its IPv4 address") {
  AccessList acl(cidrs({"10.0.0.0/8"}), cidrs({"10.6.6.6"}));
  CHECK(acl.check(addr("[::ffff:10.1.2.3]:1")) == AccessVerdict::Ok);
  CHECK(acl.check(addr("[::ffff:10.6.6.6]:1")) == AccessVerdict::Denied);
  CHECK(acl.check(addr("[::ffff:11.0.0.1]:1")) == AccessVerdict::Denied);
}

TEST_CASE("access lists with the same entries compare equal whatever their order") {
  CHECK(AccessList(cidrs({"10.0.0.0/8", "::1"}), cidrs({"192.0.2.1"})) ==
        AccessList(cidrs({"::1/128", "10.0.0.0/8"}), cidrs({"192.0.2.1/32"})));
  CHECK_FALSE(AccessList(cidrs({"10.0.0.0/8"}), {}) == AccessList({}, cidrs({"10.0.0.0/8"})));
}

// ---- keys ------------------------------------------------------------------------------------

TEST_CASE("a source key is the IPv4 address, the IPv6 prefix, or the IPv4 address of a mapped one") {
  CHECK(key_of("192.0.2.1:1000", 64) == key_of("192.0.2.1:2000", 64));  // ports do not matter
  CHECK_FALSE(key_of("192.0.2.1:1", 64) == key_of("192.0.2.2:1", 64));
  CHECK(key_of("[2001:db8:1:2:aaaa::1]:1", 64) == key_of("[2001:db8:1:2:bbbb::9]:1", 64));
  CHECK_FALSE(key_of("[2001:db8:1:2::1]:1", 64) == key_of("[2001:db8:1:3::1]:1", 64));
  CHECK(key_of("[::ffff:192.0.2.1]:1", 64) == key_of("192.0.2.1:1", 64));
  CHECK(key_of("[::ffff:192.0.2.1]:1", 8) == key_of("192.0.2.1:1", 8));  // not truncated
  // IPv4 and IPv6 keys never meet: :: and 0.0.0.0, ::/96 and the mapped range.
  CHECK_FALSE(key_of("[::]:1", 96) == key_of("0.0.0.0:1", 96));
  CHECK_FALSE(key_of("[::1:0:0]:1", 80) == key_of("0.0.0.0:1", 80));
  // The prefix is clamped to 1..128.
  CHECK(key_of("[2001:db8::1]:1", 0) == key_of("[::1]:1", 1));
  CHECK(key_of("[2001:db8::1]:1", 200) == key_of("[2001:db8::1]:1", 128));
  Address unix_like;  // neither IPv4 nor IPv6
  SourceKey k;
  CHECK_FALSE(source_key(unix_like, 64, k));
}

TEST_CASE("reason names are the /stats reasons") {
  CHECK(std::string(reason_name(SourceReject::Limit)) == "source_limit");
  CHECK(std::string(reason_name(SourceReject::Rate)) == "source_rate");
  CHECK(std::string(reason_name(SourceReject::None)).empty());
}

// ---- max_connections -------------------------------------------------------------------------

TEST_CASE("an address may hold max_connections open connections and gets one back when a seat ends") {
  SourceLimits t(limits(2));
  std::vector<SourceSeat> held;
  CHECK(take(t, "192.0.2.1:1000", 0, held) == SourceReject::None);
  CHECK(take(t, "192.0.2.1:1001", 0, held) == SourceReject::None);
  CHECK(take(t, "192.0.2.1:1002", 0, held) == SourceReject::Limit);
  CHECK(take(t, "192.0.2.1:1003", 0, held) == SourceReject::Limit);
  CHECK(t.open_connections(addr("192.0.2.1:1")) == 2);  // the rejected took no place
  CHECK(take(t, "192.0.2.2:1000", 0, held) == SourceReject::None);  // another address
  held.erase(held.begin());  // one seat ends
  CHECK(t.open_connections(addr("192.0.2.1:1")) == 1);
  CHECK(take(t, "192.0.2.1:1004", 0, held) == SourceReject::None);
  CHECK(take(t, "192.0.2.1:1005", 0, held) == SourceReject::Limit);
  held.clear();
  CHECK(t.open_connections(addr("192.0.2.1:1")) == 0);
  CHECK(t.tracked() == 0);  // no rate: an idle entry is dropped at once
}

TEST_CASE("a seat gives its place back once, whether moved, reset or destroyed") {
  SourceLimits t(limits(1));
  const Address a = addr("192.0.2.1:1");
  SourceVerdict v = t.admit(a, 0);
  REQUIRE(v);
  REQUIRE(v.seat);
  SourceSeat moved(std::move(v.seat));
  CHECK_FALSE(v.seat);
  CHECK(t.open_connections(a) == 1);
  SourceSeat assigned;
  assigned = std::move(moved);
  CHECK(t.open_connections(a) == 1);
  assigned = std::move(assigned);  // self-move keeps it
  CHECK(t.open_connections(a) == 1);
  assigned.reset();
  CHECK(t.open_connections(a) == 0);
  assigned.reset();  // twice: nothing
  // Assigning over a held seat gives the old place back.
  SourceSeat first = t.admit(a, 0).seat;
  REQUIRE(first);
  const Address b = addr("192.0.2.2:1");
  SourceSeat second = t.admit(b, 0).seat;
  first = std::move(second);
  CHECK(t.open_connections(a) == 0);
  CHECK(t.open_connections(b) == 1);
}

TEST_CASE("IPv6 clients in one /64 share a count and clients in other /64s do not") {
  SourceLimits t(limits(2));
  std::vector<SourceSeat> held;
  CHECK(take(t, "[2001:db8:0:1::1]:1", 0, held) == SourceReject::None);
  CHECK(take(t, "[2001:db8:0:1:ffff:ffff:ffff:ffff]:1", 0, held) == SourceReject::None);
  CHECK(take(t, "[2001:db8:0:1::2]:1", 0, held) == SourceReject::Limit);
  CHECK(take(t, "[2001:db8:0:2::1]:1", 0, held) == SourceReject::None);
  CHECK(take(t, "[2001:db8:0:0:ffff::1]:1", 0, held) == SourceReject::None);
}

TEST_CASE("ipv6_prefix groups IPv6 clients by other prefix lengths: /48, /128, /1") {
  SUBCASE("/48") {
    SourceLimits t(limits(1, 0, 48));
    std::vector<SourceSeat> held;
    CHECK(take(t, "[2001:db8:aa:1::1]:1", 0, held) == SourceReject::None);
    CHECK(take(t, "[2001:db8:aa:ffff::1]:1", 0, held) == SourceReject::Limit);
    CHECK(take(t, "[2001:db8:ab::1]:1", 0, held) == SourceReject::None);
  }
  SUBCASE("/128") {
    SourceLimits t(limits(1, 0, 128));
    std::vector<SourceSeat> held;
    CHECK(take(t, "[2001:db8::1]:1", 0, held) == SourceReject::None);
    CHECK(take(t, "[2001:db8::1]:2", 0, held) == SourceReject::Limit);
    CHECK(take(t, "[2001:db8::2]:1", 0, held) == SourceReject::None);
  }
  SUBCASE("/1: the whole lower half of the space is one source") {
    SourceLimits t(limits(1, 0, 1));
    std::vector<SourceSeat> held;
    CHECK(take(t, "[2001:db8::1]:1", 0, held) == SourceReject::None);
    CHECK(take(t, "[3fff::1]:1", 0, held) == SourceReject::Limit);
    CHECK(take(t, "[fe80::1]:1", 0, held) == SourceReject::None);
  }
  SUBCASE("an odd length: /57") {
    SourceLimits t(limits(1, 0, 57));
    std::vector<SourceSeat> held;
    CHECK(take(t, "[2001:db8:0:0::1]:1", 0, held) == SourceReject::None);
    CHECK(take(t, "[2001:db8:0:7f::1]:1", 0, held) == SourceReject::Limit);  // bit 57 clear
    CHECK(take(t, "[2001:db8:0:80::1]:1", 0, held) == SourceReject::None);   // bit 57 set
  }
}

TEST_CASE("an IPv4-mapped IPv6 client shares the count of its IPv4 address") {
  SourceLimits t(limits(2, 0, 8));
  std::vector<SourceSeat> held;
  CHECK(take(t, "192.0.2.1:1", 0, held) == SourceReject::None);
  CHECK(take(t, "[::ffff:192.0.2.1]:1", 0, held) == SourceReject::None);
  CHECK(take(t, "[::ffff:192.0.2.1]:2", 0, held) == SourceReject::Limit);
  CHECK(take(t, "192.0.2.1:3", 0, held) == SourceReject::Limit);
  // Not truncated by ipv6_prefix: another IPv4 address is another source.
  CHECK(take(t, "[::ffff:192.0.2.2]:1", 0, held) == SourceReject::None);
  CHECK(t.open_connections(addr("192.0.2.1:9")) == 2);
}

TEST_CASE("with both limits 0 nothing is tracked and everyone is admitted") {
  SourceLimits t(limits(0, 0));
  std::vector<SourceSeat> held;
  for (int i = 0; i < 100; ++i) {
    SourceVerdict v = t.admit(addr("192.0.2.1:1"), 0);
    CHECK(v.ok());
    CHECK_FALSE(v.seat);
  }
  CHECK(t.tracked() == 0);
  CHECK(t.untracked() == 0);  // not "untracked for lack of room"
}

// ---- rate ------------------------------------------------------------------------------------

TEST_CASE("a new address may open rate connections at once, then one per 1/rate seconds") {
  SourceLimits t(limits(0, 4));  // 4/s: a token every 0.25 s, bursts of 4
  std::vector<SourceSeat> held;
  const std::string c = "198.51.100.7:1";
  for (int i = 0; i < 4; ++i) CHECK(take(t, c, 100.0, held) == SourceReject::None);
  CHECK(take(t, c, 100.0, held) == SourceReject::Rate);
  CHECK(take(t, c, 100.2, held) == SourceReject::Rate);  // 0.8 of a token
  CHECK(take(t, c, 100.25, held) == SourceReject::None);
  CHECK(take(t, c, 100.25, held) == SourceReject::Rate);
  CHECK(take(t, c, 100.5, held) == SourceReject::None);
  // A long pause refills to at most rate tokens, not more.
  for (int i = 0; i < 4; ++i) CHECK(take(t, c, 200.0, held) == SourceReject::None);
  CHECK(take(t, c, 200.0, held) == SourceReject::Rate);
  // Tokens do not depend on open connections: releasing them gives none back.
  held.clear();
  CHECK(take(t, c, 200.0, held) == SourceReject::Rate);
  // Other addresses have their own full bucket.
  CHECK(take(t, "198.51.100.8:1", 200.0, held) == SourceReject::None);
}

TEST_CASE("a rejected connection takes no token, whether over the rate or over max_connections") {
  SourceLimits t(limits(1, 2));
  std::vector<SourceSeat> held;
  const std::string c = "198.51.100.7:1";
  CHECK(take(t, c, 0.0, held) == SourceReject::None);
  for (int i = 0; i < 50; ++i) CHECK(take(t, c, 0.0, held) == SourceReject::Limit);
  CHECK(t.tokens(addr(c)) == doctest::Approx(1.0));  // the limit's rejections took none
  held.clear();
  CHECK(take(t, c, 0.0, held) == SourceReject::None);
  held.clear();
  for (int i = 0; i < 50; ++i) CHECK(take(t, c, 0.1, held) == SourceReject::Rate);
  // Hammering while empty does not push the next token further away: it comes at 0.5 s.
  CHECK(take(t, c, 0.5, held) == SourceReject::None);
}

TEST_CASE("refills are exact enough at rates whose periods are not binary fractions") {
  SourceLimits t(limits(0, 10));  // a token every 0.1 s
  std::vector<SourceSeat> held;
  const std::string c = "198.51.100.7:1";
  double now = 10.0;
  for (int i = 0; i < 10; ++i) CHECK(take(t, c, now, held) == SourceReject::None);
  CHECK(take(t, c, now, held) == SourceReject::Rate);
  int admitted = 0;
  for (int step = 1; step <= 100; ++step) {  // 10 s in steps of 0.1 s: one each
    now = 10.0 + step * 0.1;
    admitted += take(t, c, now, held) == SourceReject::None;
    CHECK(take(t, c, now, held) == SourceReject::Rate);
  }
  CHECK(admitted == 100);
}

TEST_CASE("a reading of now older than the address's last one adds no tokens and takes none back") {
  SourceLimits t(limits(0, 2));  // workers read the clock before the lock: order may vary
  std::vector<SourceSeat> held;
  const std::string c = "198.51.100.7:1";
  CHECK(take(t, c, 5.0, held) == SourceReject::None);
  CHECK(take(t, c, 5.0, held) == SourceReject::None);
  CHECK(take(t, c, 4.0, held) == SourceReject::Rate);  // a second behind: no refill
  CHECK(take(t, c, 5.5, held) == SourceReject::None);  // and the stamp did not go back
  CHECK(take(t, c, 5.5, held) == SourceReject::Rate);
}

TEST_CASE("a rate below one per second lets one connection through every 1/rate seconds") {
  SourceLimits t(limits(0, 0.5));
  std::vector<SourceSeat> held;
  const std::string c = "198.51.100.7:1";
  CHECK(take(t, c, 0.0, held) == SourceReject::None);
  CHECK(take(t, c, 1.0, held) == SourceReject::Rate);
  CHECK(take(t, c, 2.0, held) == SourceReject::None);
  CHECK(take(t, c, 100.0, held) == SourceReject::None);
  CHECK(take(t, c, 100.0, held) == SourceReject::Rate);  // the bucket holds 1, not 49
}

// ---- capacity and forgetting -----------------------------------------------------------------

TEST_CASE("at capacity the least recently seen idle address is forgotten first") {
  SourceLimits t(limits(0, 1), small(3));  // 1/s: one connection uses an address's token
  std::vector<SourceSeat> held;
  for (const char* c : {"192.0.2.1:1", "192.0.2.2:1", "192.0.2.3:1"}) {
    SourceSeat s = t.admit(addr(c), 0).seat;
    CHECK(s);
  }  // each ends at once: all idle, oldest first: .1 .2 .3
  CHECK(t.tracked() == 3);
  // Seeing .1 again (even rejected) makes it the newest: .2 is now the oldest.
  CHECK(take(t, "192.0.2.1:1", 0.1, held) == SourceReject::Rate);
  CHECK(take(t, "192.0.2.4:1", 0.1, held) == SourceReject::None);  // forgets .2
  held.clear();
  CHECK(t.evicted() == 1);
  CHECK(t.tracked() == 3);
  CHECK(take(t, "192.0.2.1:1", 0.2, held) == SourceReject::Rate);  // remembered: no token
  CHECK(take(t, "192.0.2.3:1", 0.2, held) == SourceReject::Rate);  // remembered
  CHECK(take(t, "192.0.2.2:1", 0.2, held) == SourceReject::None);  // forgotten: a full bucket
  CHECK(t.evicted() == 2);                                         // (it took .4's place)
  CHECK(t.untracked() == 0);
}

TEST_CASE("an address with open connections is never forgotten; with no idle entry a new one is admitted untracked") {
  SourceLimits t(limits(1, 100), small(2));
  std::vector<SourceSeat> held;
  CHECK(take(t, "192.0.2.1:1", 0, held) == SourceReject::None);  // busy
  {
    std::vector<SourceSeat> brief;
    CHECK(take(t, "192.0.2.2:1", 0, brief) == SourceReject::None);
  }  // .2 idle now, though .1 is older
  CHECK(take(t, "192.0.2.3:1", 0, held) == SourceReject::None);  // takes .2's place, not .1's
  CHECK(t.evicted() == 1);
  CHECK(t.open_connections(addr("192.0.2.1:1")) == 1);
  CHECK(take(t, "192.0.2.1:1", 0, held) == SourceReject::Limit);  // its count holds
  // Now both entries are busy: a new address is let in without a count, and counted as such.
  SourceVerdict v = t.admit(addr("192.0.2.4:1"), 0);
  CHECK(v.ok());
  CHECK_FALSE(v.seat);
  CHECK(t.untracked() == 1);
  CHECK(t.admit(addr("192.0.2.4:1"), 0).ok());  // no limit applies to it meanwhile
  CHECK(t.untracked() == 2);
  CHECK(t.tracked() == 2);
  CHECK(t.evicted() == 1);
  // Busy entries keep their counts whatever came by.
  CHECK(t.open_connections(addr("192.0.2.1:1")) == 1);
  CHECK(t.open_connections(addr("192.0.2.3:1")) == 1);
  // Once room frees up, the new address is tracked.
  held.erase(held.begin());  // .1's connection ends: .1 is idle, evictable
  SourceVerdict w = t.admit(addr("192.0.2.4:1"), 0);
  CHECK(w.seat);
  CHECK(take(t, "192.0.2.4:1", 0, held) == SourceReject::Limit);
  held.clear();
  w.seat.reset();
  CHECK(t.open_connections(addr("192.0.2.3:1")) == 0);
  CHECK(t.open_connections(addr("192.0.2.4:1")) == 0);
}

TEST_CASE("a table at capacity stays at capacity over many addresses, split over shards") {
  SourceLimits t(limits(0, 5), small(10, 4));
  CHECK(t.shards() == 4);
  for (int i = 0; i < 10000; ++i) {
    char text[32];
    std::snprintf(text, sizeof text, "10.%d.%d.%d:1", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
    SourceVerdict v = t.admit(addr(text), 0);
    CHECK(v.seat);  // idle entries are always there to give way
  }
  CHECK(t.tracked() == 10);
  CHECK(t.evicted() == 10000 - 10);
  CHECK(t.untracked() == 0);
}

TEST_CASE("shards are chosen by capacity unless set: 64 at the default, 1 for a small table") {
  SourceLimits big(limits(1));
  CHECK(big.capacity() == SourceLimits::kDefaultCapacity);
  CHECK(big.shards() == 64);
  CHECK(big.tracked() == 0);
  CHECK(SourceLimits(limits(1), small(100, 0)).shards() == 1);
  CHECK(SourceLimits(limits(1), small(3, 8)).shards() == 2);     // at most the capacity
  CHECK(SourceLimits(limits(1), small(1000, 6)).shards() == 4);  // a power of two
  CHECK(SourceLimits(limits(1), small(0)).capacity() == 1);
}

// ---- reload ----------------------------------------------------------------------------------

TEST_CASE("reconfigure applies new limits to known addresses and keeps their counts and tokens") {
  SourceLimits t(limits(2, 4));
  std::vector<SourceSeat> held;
  const std::string c = "192.0.2.1:1";
  CHECK(take(t, c, 0, held) == SourceReject::None);
  CHECK(take(t, c, 0, held) == SourceReject::None);
  CHECK(take(t, c, 0, held) == SourceReject::Limit);

  t.reconfigure(limits(3, 4));
  CHECK(t.config().max_connections == 3);
  CHECK(t.open_connections(addr(c)) == 2);
  CHECK(take(t, c, 0, held) == SourceReject::None);  // the 3rd of 3
  CHECK(take(t, c, 0, held) == SourceReject::Limit);

  t.reconfigure(limits(1, 4));  // below the open count: nobody new until they end
  CHECK(take(t, c, 10, held) == SourceReject::Limit);
  held.pop_back();
  held.pop_back();
  CHECK(take(t, c, 10, held) == SourceReject::Limit);  // 1 open, max 1
  held.clear();
  CHECK(t.open_connections(addr(c)) == 0);

  // Rate: the bucket keeps its tokens, capped at the new rate, and refills at the new rate.
  t.reconfigure(limits(0, 2));
  CHECK(take(t, c, 10, held) == SourceReject::None);  // 4 tokens at 10 s, cut to 2
  CHECK(take(t, c, 10, held) == SourceReject::None);
  CHECK(take(t, c, 10, held) == SourceReject::Rate);
  CHECK(take(t, c, 10.5, held) == SourceReject::None);  // 2/s: one per 0.5 s
  CHECK(take(t, c, 10.5, held) == SourceReject::Rate);
}

TEST_CASE("reconfigure to unlimited and back: open seats still give their places back") {
  SourceLimits t(limits(1));
  const Address a = addr("192.0.2.1:1");
  SourceSeat s = t.admit(a, 0).seat;
  REQUIRE(s);
  t.reconfigure(limits(0, 0));
  CHECK_FALSE(t.admit(a, 0).seat);  // untracked while unlimited
  t.reconfigure(limits(1));
  CHECK(t.admit(a, 0).reject == SourceReject::Limit);  // the seat from before still counts
  s.reset();
  CHECK(t.open_connections(a) == 0);
  CHECK(t.admit(a, 0).ok());
}

TEST_CASE("entries made while the rate was 0 have a full bucket when a rate comes") {
  SourceLimits t(limits(5, 0));
  std::vector<SourceSeat> held;
  const std::string c = "192.0.2.1:1";
  CHECK(take(t, c, 0, held) == SourceReject::None);
  t.reconfigure(limits(5, 2));
  CHECK(take(t, c, 0, held) == SourceReject::None);
  CHECK(take(t, c, 0, held) == SourceReject::None);
  CHECK(take(t, c, 0, held) == SourceReject::Rate);
}

// ---- several workers -------------------------------------------------------------------------

TEST_CASE("several threads admitting and releasing never take an address past max_connections") {
  constexpr int kThreads = 4, kRounds = 20000, kAddresses = 6;
  constexpr uint32_t kMax = 3;
  SourceLimits t(limits(kMax), small(64, 8));
  std::vector<Address> clients;
  for (int i = 0; i < kAddresses; ++i) clients.push_back(addr("192.0.2." + std::to_string(i + 1) + ":1"));
  clients.push_back(addr("[2001:db8:0:1::1]:1"));
  clients.push_back(addr("[2001:db8:0:1::2]:1"));  // the same /64 as the one before
  const std::vector<int> source = {0, 1, 2, 3, 4, 5, 6, 6};
  std::vector<std::atomic<uint32_t>> inflight(kAddresses + 1), high(kAddresses + 1);
  std::atomic<uint64_t> admitted{0}, rejected{0}, wrong_reason{0}, untracked{0};

  on_threads(kThreads, [&](int th) {
    struct Held {
      SourceSeat seat;
      int source;
    };
    std::vector<Held> held;
    uint64_t x = 0x9e3779b97f4a7c15ull * (th + 1);
    for (int i = 0; i < kRounds; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      // Thread 0 favours address 0 with everyone; others spread, with an own favourite.
      const size_t c = (x % 3 == 0) ? static_cast<size_t>(th) % clients.size() : x % clients.size();
      SourceVerdict v = t.admit(clients[c], i * 1e-6);
      if (!v) {
        (v.reject == SourceReject::Limit ? rejected : wrong_reason).fetch_add(1, std::memory_order_relaxed);
      } else if (!v.seat) {
        untracked.fetch_add(1, std::memory_order_relaxed);
      } else {
        admitted.fetch_add(1, std::memory_order_relaxed);
        const int s = source[c];
        // The seat is held, so the table's count is at least this: it must not pass kMax.
        const uint32_t now_in = inflight[s].fetch_add(1) + 1;
        uint32_t h = high[s].load();
        while (now_in > h && !high[s].compare_exchange_weak(h, now_in)) {
        }
        held.push_back({std::move(v.seat), s});
      }
      if (!held.empty() && (held.size() > 4 || (x >> 20) % 5 == 0)) {  // give back at times
        const size_t k = (x >> 32) % held.size();
        inflight[held[k].source].fetch_sub(1);  // before the place is given back
        held.erase(held.begin() + static_cast<long>(k));
      }
    }
    for (Held& h : held) {
      inflight[h.source].fetch_sub(1);
      h.seat.reset();
    }
  });
  for (int s = 0; s <= kAddresses; ++s) {
    INFO("source " << s);
    CHECK(high[s].load() <= kMax);
    CHECK(inflight[s].load() == 0);
  }
  CHECK(high[0].load() == kMax);  // the limit was reached...
  CHECK(rejected.load() > 0);     // ...and checked
  CHECK(wrong_reason.load() == 0);  // no rate: never source_rate
  CHECK(admitted.load() > 0);
  CHECK(untracked.load() == 0);
  for (const Address& a : clients) CHECK(t.open_connections(a) == 0);
  CHECK(t.tracked() == 0);  // no rate: every idle entry was dropped
}

TEST_CASE("several threads churning many addresses through a small table end with every count at 0") {
  constexpr int kThreads = 4, kRounds = 20000, kAddresses = 200;
  constexpr uint32_t kMax = 2;
  SourceLimits t(limits(kMax, 1e6), small(64, 4));  // forces evictions all the time
  std::vector<Address> clients;
  for (int i = 0; i < kAddresses; ++i)
    clients.push_back(addr(i % 2 ? "[2001:db8:" + std::to_string(i) + "::1]:1"
                                 : "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ":1"));
  std::vector<std::atomic<uint32_t>> inflight(kAddresses), high(kAddresses);
  std::atomic<uint64_t> clock{0};
  on_threads(kThreads, [&](int th) {
    std::vector<std::pair<SourceSeat, int>> held;
    uint64_t x = 0x2545F4914F6CDD1Dull * (th + 7);
    for (int i = 0; i < kRounds; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      const int c = static_cast<int>(x % kAddresses);
      SourceVerdict v = t.admit(clients[c], static_cast<double>(clock.fetch_add(1)) * 1e-6);
      if (v && v.seat) {
        const uint32_t now_in = inflight[c].fetch_add(1) + 1;
        uint32_t h = high[c].load();
        while (now_in > h && !high[c].compare_exchange_weak(h, now_in)) {
        }
        held.emplace_back(std::move(v.seat), c);
      }
      if (held.size() > 3 || (x >> 24) % 3 == 0) {
        if (!held.empty()) {
          inflight[held.front().second].fetch_sub(1);
          held.erase(held.begin());
        }
      }
    }
    for (auto& [seat, c] : held) {
      inflight[c].fetch_sub(1);
      seat.reset();
    }
  });
  for (int c = 0; c < kAddresses; ++c) {
    CHECK(high[c].load() <= kMax);
    CHECK(t.open_connections(clients[c]) == 0);
  }
  CHECK(t.evicted() > 0);
  CHECK(t.tracked() <= 64);
}

// ---- cost ------------------------------------------------------------------------------------

TEST_CASE("a table of the default capacity keeps every address seen below it (time per admission printed)") {
  SourceLimits t(limits(4, 100));  // 1,000,000 addresses, 64 shards
  std::vector<Address> clients;
  for (int i = 0; i < 20000; ++i) {
    char text[64];
    if (i % 4 == 3)
      std::snprintf(text, sizeof text, "[2001:db8:%x:%x::1]:1", i >> 16, i & 0xffff);
    else
      std::snprintf(text, sizeof text, "10.%d.%d.%d:1", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
    clients.push_back(addr(text));
  }
  constexpr int kOps = 60000;
  std::vector<SourceSeat> ring(64);
  const auto start = std::chrono::steady_clock::now();
  uint64_t ok = 0;
  for (int i = 0; i < kOps; ++i) {
    SourceVerdict v = t.admit(clients[static_cast<size_t>(i) * 7919 % clients.size()], i * 1e-5);
    ok += v.ok();
    ring[i % ring.size()] = std::move(v.seat);  // releases an older one
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / kOps;
  MESSAGE("source limits: " << ns << " ns per admission + release, " << t.tracked() << " addresses");
  CHECK(ok > 0);
  CHECK(t.tracked() == clients.size());
}
