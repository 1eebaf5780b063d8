// SniTable: exact names, wildcards of any depth, the longest suffix, case and trailing dots,
// against a brute-force matcher on random names, and at 1,000 names (ns per lookup printed).
#include "l4lb/dataplane/sni_table.hpp"

#include <doctest/doctest.h>

#include <cctype>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "l4lb/dataplane/client_hello.hpp"

using l4lb::SniTable;

namespace {

constexpr uint32_t kNone = 0xffffffff;

uint32_t find(const SniTable& t, std::string_view name) { return t.find(name).value_or(kNone); }

SniTable table(std::initializer_list<std::pair<const char*, uint32_t>> patterns) {
  SniTable t;
  for (const auto& ps : patterns) {
    INFO(ps.first);
    REQUIRE(t.add(ps.first, ps.second) == SniTable::Add::Added);
  }
  return t;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The rules of sni_table.hpp written the slow, obvious way.
uint32_t reference(const std::vector<std::pair<std::string, uint32_t>>& patterns,
                   std::string name) {
  name = lower(name);
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (name.empty()) return kNone;
  uint32_t best = kNone;
  size_t best_len = 0;
  for (auto [p, s] : patterns) {
    p = lower(p);
    if (!p.empty() && p.back() == '.') p.pop_back();
    if (p == name) return s;
    if (p.starts_with("*.")) {
      std::string suffix = p.substr(1);  // ".example.com", with at least a byte before it
      if (name.size() > suffix.size() && name.ends_with(suffix) && suffix.size() > best_len) {
        best = s;
        best_len = suffix.size();
      }
    }
  }
  return best;
}

}  // namespace

TEST_CASE("sni table: exact names") {
  SniTable t = table({{"api.example.com", 1}, {"example.com", 2}, {"localhost", 3}});
  CHECK(find(t, "api.example.com") == 1);
  CHECK(find(t, "example.com") == 2);
  CHECK(find(t, "localhost") == 3);
  CHECK(find(t, "www.example.com") == kNone);
  CHECK(find(t, "api.example.co") == kNone);
  CHECK(find(t, "pi.example.com") == kNone);
  CHECK(find(t, "xapi.example.com") == kNone);
  CHECK(find(t, "com") == kNone);
  CHECK(t.size() == 3);
}

TEST_CASE("sni table: case-insensitive, one trailing dot ignored on both sides") {
  SniTable t = table({{"API.Example.COM", 1}, {"db.example.com.", 2}, {"*.Apps.Example.com.", 3}});
  for (const char* n :
       {"api.example.com", "API.EXAMPLE.COM", "Api.Example.Com.", "api.example.com."}) {
    INFO(n);
    CHECK(find(t, n) == 1);
  }
  CHECK(find(t, "db.example.com") == 2);
  CHECK(find(t, "DB.EXAMPLE.COM.") == 2);
  CHECK(find(t, "x.apps.example.com") == 3);
  CHECK(find(t, "X.APPS.EXAMPLE.COM.") == 3);
  CHECK(find(t, "api.example.com..") == kNone);  // only one dot is dropped
  CHECK(find(t, ".") == kNone);
  CHECK(find(t, "") == kNone);
}

TEST_CASE("sni table: a wildcard matches one or more labels, never the bare suffix") {
  SniTable t = table({{"*.example.com", 7}});
  CHECK(find(t, "a.example.com") == 7);
  CHECK(find(t, "a.b.example.com") == 7);
  CHECK(find(t, "a.b.c.d.e.example.com") == 7);
  CHECK(find(t, "example.com") == kNone);
  CHECK(find(t, "example.com.") == kNone);
  CHECK(find(t, "aexample.com") == kNone);
  CHECK(find(t, "a.example.com.evil") == kNone);
  CHECK(find(t, "a.example.org") == kNone);
  CHECK(find(t, ".example.com") == kNone);  // nothing before the dot
  SniTable tld = table({{"*.com", 1}});
  CHECK(find(tld, "example.com") == 1);
  CHECK(find(tld, "com") == kNone);
}

TEST_CASE("sni table: exact first, then the longest matching suffix") {
  SniTable t = table({{"*.example.com", 1},
                      {"*.eu.example.com", 2},
                      {"*.db.eu.example.com", 3},
                      {"www.eu.example.com", 4},
                      {"example.com", 5}});
  CHECK(find(t, "a.example.com") == 1);
  CHECK(find(t, "a.us.example.com") == 1);
  CHECK(find(t, "a.eu.example.com") == 2);
  CHECK(find(t, "db.eu.example.com") == 2);  // "*.db.eu..." needs a label before "db"
  CHECK(find(t, "x.db.eu.example.com") == 3);
  CHECK(find(t, "y.x.db.eu.example.com") == 3);
  CHECK(find(t, "www.eu.example.com") == 4);  // exact beats both wildcards that cover it
  CHECK(find(t, "a.www.eu.example.com") == 2);
  CHECK(find(t, "example.com") == 5);
  CHECK(find(t, "eu.example.com") == 1);
  // Insertion order does not matter.
  SniTable r = table({{"example.com", 5},
                      {"www.eu.example.com", 4},
                      {"*.db.eu.example.com", 3},
                      {"*.eu.example.com", 2},
                      {"*.example.com", 1}});
  for (const char* n : {"a.example.com", "a.eu.example.com", "x.db.eu.example.com",
                        "www.eu.example.com", "example.com", "nope.org"}) {
    INFO(n);
    CHECK(find(r, n) == find(t, n));
  }
}

TEST_CASE("sni table: an empty table, long and odd names") {
  SniTable empty;
  CHECK(empty.empty());
  CHECK(find(empty, "a.example.com") == kNone);
  SniTable t = table({{"*.b", 1}});
  std::string longest(253, 'a');
  longest += ".b";  // 255 bytes
  CHECK(find(t, longest) == 1);
  CHECK(find(t, longest + ".") == 1);
  CHECK(find(t, "a" + longest) == kNone);  // 256 bytes: more than any ClientHello carries
  CHECK(find(t, std::string("x\0.b", 4)) == 1);  // not validated: the rules, literally
}

TEST_CASE("sni table: invalid patterns and duplicates are refused") {
  SniTable t;
  for (const char* p : {"", ".", "*", "*.", "**.a", "a.*.b", "*a.b", "a*.b", "*.*.b", "a..b",
                        ".a", "a b", "a/b", "*.a..", "[::1]"}) {
    INFO('"' << p << '"');
    CHECK_FALSE(l4lb::valid_sni_pattern(p));
    CHECK(t.add(p, 1) == SniTable::Add::Invalid);
  }
  CHECK(t.empty());
  uint32_t holder = kNone;
  REQUIRE(t.add("Api.Example.com", 1) == SniTable::Add::Added);
  CHECK(t.add("api.example.com.", 2, &holder) == SniTable::Add::Duplicate);
  CHECK(holder == 1);
  REQUIRE(t.add("*.example.com", 3) == SniTable::Add::Added);
  CHECK(t.add("*.EXAMPLE.com.", 4, &holder) == SniTable::Add::Duplicate);
  CHECK(holder == 3);
  CHECK(t.add("example.com", 5) == SniTable::Add::Added);  // not the wildcard's key
  CHECK(t.size() == 3);
  CHECK(find(t, "api.example.com") == 1);
}

TEST_CASE("sni table: which patterns overlap (INTERFACE.md)") {
  using l4lb::sni_patterns_overlap;
  CHECK(sni_patterns_overlap("a.example.com", "a.example.com"));
  CHECK(sni_patterns_overlap("A.Example.COM", "a.example.com."));
  CHECK(sni_patterns_overlap("*.example.com", "*.EXAMPLE.com."));
  CHECK_FALSE(sni_patterns_overlap("a.example.com", "*.example.com"));  // the exact one wins
  CHECK_FALSE(sni_patterns_overlap("*.a.example.com", "*.example.com"));  // the longer wins
  CHECK_FALSE(sni_patterns_overlap("example.com", "*.example.com"));
  CHECK_FALSE(sni_patterns_overlap("a.example.com", "b.example.com"));
  CHECK_FALSE(sni_patterns_overlap("a.example.com", "a.example.com.."));
  CHECK(l4lb::sni_pattern_key("*.Example.COM.") == "*.example.com");
  CHECK(l4lb::sni_pattern_key("x.") == "x");
}

TEST_CASE("sni table: agrees with a brute-force matcher on random names") {
  std::mt19937 rng(99);
  const char* labels[] = {"a", "b", "c", "A", "B"};
  auto random_name = [&](int max_labels) {
    std::string n;
    int k = 1 + rng() % max_labels;
    for (int i = 0; i < k; ++i) n += std::string(i ? "." : "") + labels[rng() % 5];
    if (rng() % 8 == 0) n += '.';
    return n;
  };
  for (int round = 0; round < 200; ++round) {
    SniTable t;
    std::vector<std::pair<std::string, uint32_t>> patterns;
    for (uint32_t s = 0; s < 12; ++s) {
      std::string p = (rng() % 2 ? "*." : "") + random_name(4);
      if (t.add(p, s) == SniTable::Add::Added) patterns.push_back({p, s});
    }
    for (int q = 0; q < 200; ++q) {
      std::string n = random_name(6);
      INFO("round " << round << ": " << n);
      REQUIRE(find(t, n) == reference(patterns, n));
    }
  }
}

TEST_CASE("sni table: 1,000 names, and the time of a lookup") {
  SniTable t;
  std::vector<std::pair<std::string, uint32_t>> patterns;
  for (uint32_t i = 0; i < 500; ++i) {
    std::string exact = "svc" + std::to_string(i) + ".region" + std::to_string(i % 7) +
                        ".example.com";
    std::string wild = "*.tenant" + std::to_string(i) + ".apps.example.net";
    REQUIRE(t.add(exact, i) == SniTable::Add::Added);
    REQUIRE(t.add(wild, 1000 + i) == SniTable::Add::Added);
    patterns.push_back({exact, i});
    patterns.push_back({wild, 1000 + i});
  }
  REQUIRE(t.size() == 1000);
  std::vector<std::string> queries;
  for (uint32_t i = 0; i < 500; ++i) {
    const std::string r = ".region" + std::to_string(i % 7) + ".example.com";
    queries.push_back("svc" + std::to_string(i) + r);
    queries.push_back("SVC" + std::to_string(i) + r + ".");
    queries.push_back("web.tenant" + std::to_string(i) + ".apps.example.net");
    queries.push_back("a.b.c.tenant" + std::to_string(i) + ".Apps.Example.NET");
    queries.push_back("tenant" + std::to_string(i) + ".apps.example.net");  // no match
    queries.push_back("svc" + std::to_string(i) + ".elsewhere.example.org");  // no match
  }
  for (size_t q = 0; q < queries.size(); ++q) {
    INFO(queries[q]);
    const uint32_t i = static_cast<uint32_t>(q / 6);
    const uint32_t want[] = {i, i, 1000 + i, 1000 + i, kNone, kNone};
    REQUIRE(find(t, queries[q]) == want[q % 6]);
    REQUIRE(find(t, queries[q]) == reference(patterns, queries[q]));
  }

  // Not an assertion: the figure, for the record (the cost is O(name length), see the header).
  uint64_t sum = 0;
  const int kRounds = 200;
  auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < kRounds; ++r) {
    for (const std::string& q : queries) sum += t.find(q).value_or(7);
  }
  auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
                .count();
  MESSAGE("sni table, 1,000 patterns: " << ns / (kRounds * queries.size())
                                        << " ns per lookup (names of 3-7 labels; checksum "
                                        << sum << ")");
}
