// The Prometheus text writer, and a strict checker of the exposition format 0.0.4
// (also used by stats_test.cpp on the whole /metrics output).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "l4lb/admin/prom.hpp"

namespace l4lb_test {

namespace {
bool alpha_(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool digit(char c) { return c >= '0' && c <= '9'; }
// [a-zA-Z_:][a-zA-Z0-9_:]*
bool is_metric_name(const std::string& s) {
  if (s.empty() || !(alpha_(s[0]) || s[0] == ':')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return alpha_(c) || digit(c) || c == ':'; });
}
// [a-zA-Z_][a-zA-Z0-9_]*
bool is_label_name(const std::string& s) {
  if (s.empty() || !alpha_(s[0])) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return alpha_(c) || digit(c); });
}
// [+-]?(D+(.D*)?|.D+)([eE][+-]?D+)? | NaN | [+-]Inf
bool is_number(const std::string& s) {
  if (s == "NaN" || s == "+Inf" || s == "-Inf") return true;
  size_t i = 0, n = s.size();
  if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
  size_t int_digits = 0, frac_digits = 0;
  while (i < n && digit(s[i])) ++i, ++int_digits;
  if (i < n && s[i] == '.') {
    ++i;
    while (i < n && digit(s[i])) ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < n && digit(s[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == n;
}
bool is_timestamp(const std::string& s) {
  size_t i = !s.empty() && s[0] == '-' ? 1 : 0;
  return i < s.size() && std::all_of(s.begin() + static_cast<long>(i), s.end(), digit);
}
}  // namespace

// Every problem found, one line each ("line N: ..."); empty when the text is valid:
// HELP and TYPE once per family and before its samples, a family's samples in one
// block, valid metric and label names, label syntax and escapes, counters named
// *_total and not negative, no duplicate series, histogram buckets cumulative, with
// increasing `le` ending in +Inf, and _count equal to the +Inf bucket.
std::vector<std::string> check_exposition(const std::string& text) {
  std::vector<std::string> problems;
  auto bad = [&](size_t line, const std::string& msg) {
    if (problems.size() < 50) problems.push_back("line " + std::to_string(line) + ": " + msg);
  };
  static const std::set<std::string> types{"counter", "gauge", "histogram", "summary", "untyped"};

  struct Family {
    std::string type;
    bool help = false, typed = false, samples = false, closed = false;
  };
  struct Hist {
    std::vector<std::pair<double, double>> buckets;  // (le, value) in order
    std::optional<double> count, sum;
    size_t line = 0;
  };
  std::map<std::string, Family> families;
  std::map<std::string, Hist> hists;  // family + labels without le
  std::set<std::string> series;
  std::string current;

  if (text.empty()) bad(0, "empty exposition");
  else if (text.back() != '\n') bad(0, "does not end with a newline");

  auto enter = [&](size_t ln, const std::string& name) {
    if (name == current) return;
    if (!current.empty()) families[current].closed = true;
    if (families[name].closed) bad(ln, "family " + name + " appears in two blocks");
    current = name;
  };

  size_t ln = 0, pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++ln;
    if (line.empty()) {
      bad(ln, "empty line");
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      bool help = line[2] == 'H';
      std::string rest = line.substr(7);
      size_t sp = rest.find(' ');
      std::string name = rest.substr(0, sp);
      std::string arg = sp == std::string::npos ? "" : rest.substr(sp + 1);
      if (!is_metric_name(name)) bad(ln, "bad metric name '" + name + "'");
      enter(ln, name);
      Family& f = families[name];
      if (f.samples) bad(ln, (help ? "HELP" : "TYPE") + std::string(" after samples of ") + name);
      if (help) {
        if (f.help) bad(ln, "second HELP for " + name);
        f.help = true;
        for (size_t i = 0; i < arg.size(); ++i)
          if (arg[i] == '\\' && (i + 1 >= arg.size() || (arg[i + 1] != '\\' && arg[i + 1] != 'n')))
            bad(ln, "bad escape in HELP");
          else if (arg[i] == '\\')
            ++i;
      } else {
        if (f.typed) bad(ln, "second TYPE for " + name);
        f.typed = true;
        f.type = arg;
        if (!types.count(arg)) bad(ln, "unknown type '" + arg + "'");
        if (arg == "counter" && (name.size() < 6 || name.substr(name.size() - 6) != "_total"))
          bad(ln, "counter " + name + " does not end in _total");
      }
      continue;
    }
    if (line[0] == '#') continue;  // a comment

    // name{labels} value [timestamp]
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    std::string name = line.substr(0, i);
    if (!is_metric_name(name)) {
      bad(ln, "bad metric name '" + name + "'");
      continue;
    }
    std::map<std::string, std::string> labels;
    if (i < line.size() && line[i] == '{') {
      ++i;
      bool ok = true;
      while (ok && i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) { ok = false; break; }
        std::string lname = line.substr(i, eq - i);
        if (!is_label_name(lname) || lname.rfind("__", 0) == 0) {
          bad(ln, "bad label name '" + lname + "'");
          ok = false;
          break;
        }
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') { ok = false; break; }
        ++i;
        std::string value;
        bool closed = false;
        while (i < line.size()) {
          char c = line[i++];
          if (c == '"') { closed = true; break; }
          if (c == '\\') {
            if (i >= line.size()) break;
            char e = line[i++];
            if (e == '\\') value += '\\';
            else if (e == '"') value += '"';
            else if (e == 'n') value += '\n';
            else { bad(ln, "bad escape in a label value"); ok = false; break; }
          } else {
            value += c;
          }
        }
        if (!ok) break;
        if (!closed) { ok = false; break; }
        if (!labels.emplace(lname, value).second) bad(ln, "label " + lname + " twice");
        if (i < line.size() && line[i] == ',') {
          ++i;
          if (i < line.size() && line[i] == '}') { ok = false; break; }  // no trailing comma
        } else if (i >= line.size() || line[i] != '}') {
          ok = false;
        }
      }
      if (!ok || i >= line.size() || line[i] != '}') {
        bad(ln, "bad label set");
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      bad(ln, "no value");
      continue;
    }
    std::string rest = line.substr(i + 1);
    std::string value_text = rest.substr(0, rest.find(' '));
    if (!is_number(value_text)) {
      bad(ln, "bad value '" + value_text + "'");
      continue;
    }
    if (rest.find(' ') != std::string::npos) {
      std::string ts = rest.substr(rest.find(' ') + 1);
      if (!is_timestamp(ts)) bad(ln, "bad timestamp");
    }
    double value = value_text == "NaN"    ? NAN
                   : value_text == "+Inf" ? INFINITY
                   : value_text == "-Inf" ? -INFINITY
                                          : std::strtod(value_text.c_str(), nullptr);

    // Which family?
    std::string fam, suffix;
    if (families.count(name) && families[name].typed) {
      fam = name;
    } else {
      for (std::string s : {"_bucket", "_sum", "_count"}) {
        if (name.size() > s.size() && name.substr(name.size() - s.size()) == s) {
          std::string base = name.substr(0, name.size() - s.size());
          auto it = families.find(base);
          if (it != families.end() &&
              (it->second.type == "histogram" || (it->second.type == "summary" && s != "_bucket"))) {
            fam = base;
            suffix = s;
          }
        }
      }
    }
    if (fam.empty()) {
      bad(ln, "sample " + name + " without a TYPE line before it");
      continue;
    }
    if (fam != current) bad(ln, "sample of " + fam + " outside its family's block");
    Family& f = families[fam];
    f.samples = true;
    if (!f.help) bad(ln, "sample of " + fam + " without a HELP line before it");
    if (f.type == "counter" && !(value >= 0)) bad(ln, "negative counter");

    std::string key = name + "{";
    for (const auto& [k, v] : labels) key += k + "=\"" + v + "\",";
    if (!series.insert(key).second) bad(ln, "duplicate series " + key + "}");

    if (f.type == "histogram") {
      std::string hkey = fam + "{";
      for (const auto& [k, v] : labels)
        if (k != "le") hkey += k + "=\"" + v + "\",";
      Hist& h = hists[hkey];
      if (h.line == 0) h.line = ln;
      if (suffix == "_bucket") {
        auto le = labels.find("le");
        if (le == labels.end()) {
          bad(ln, "bucket without le");
          continue;
        }
        double bound = le->second == "+Inf" ? INFINITY : std::strtod(le->second.c_str(), nullptr);
        if (!is_number(le->second)) bad(ln, "bad le '" + le->second + "'");
        if (!h.buckets.empty()) {
          if (!(bound > h.buckets.back().first)) bad(ln, "le not increasing");
          if (value < h.buckets.back().second) bad(ln, "buckets not cumulative");
        }
        h.buckets.emplace_back(bound, value);
      } else if (suffix == "_count") {
        h.count = value;
      } else if (suffix == "_sum") {
        h.sum = value;
      } else {
        bad(ln, "histogram sample without _bucket/_sum/_count");
      }
    }
  }
  for (const auto& [name, f] : families) {
    if (!f.typed) bad(0, "family " + name + " has no TYPE");
    if (!f.help) bad(0, "family " + name + " has no HELP");
  }
  for (const auto& [key, h] : hists) {
    if (h.buckets.empty() || !std::isinf(h.buckets.back().first))
      bad(h.line, "histogram " + key + " does not end with le=\"+Inf\"");
    if (!h.count) bad(h.line, "histogram " + key + " has no _count");
    else if (!h.buckets.empty() && *h.count != h.buckets.back().second)
      bad(h.line, "histogram " + key + " _count differs from the +Inf bucket");
    if (!h.sum) bad(h.line, "histogram " + key + " has no _sum");
  }
  return problems;
}

}  // namespace l4lb_test

using namespace l4lb;
using l4lb_test::check_exposition;

TEST_CASE("prom: label values and HELP are escaped") {
  CHECK(prom::escape_label_value(R"(a\b"c)") == R"(a\\b\"c)");
  CHECK(prom::escape_label_value("x\ny") == "x\\ny");
  CHECK(prom::escape_label_value("plain 127.0.0.1:80") == "plain 127.0.0.1:80");
  CHECK(prom::escape_help("a\\b\nc \"q\"") == "a\\\\b\\nc \"q\"");
  prom::Writer w;
  w.family("t_gauge", prom::Type::Gauge, "help with \\ and\nnewline");
  w.sample({{"name", "we\"ird\\na\nme"}}, 1.5);
  CHECK(w.text() ==
        "# HELP t_gauge help with \\\\ and\\nnewline\n# TYPE t_gauge gauge\n"
        "t_gauge{name=\"we\\\"ird\\\\na\\nme\"} 1.5\n");
  CHECK(check_exposition(w.text()).empty());
}

TEST_CASE("prom: values") {
  CHECK(prom::format_value(0) == "0");
  CHECK(prom::format_value(3) == "3");
  CHECK(prom::format_value(0.0005) == "0.0005");
  CHECK(prom::format_value(12.25) == "12.25");
  CHECK(prom::format_value(NAN) == "NaN");
  CHECK(prom::format_value(INFINITY) == "+Inf");
  CHECK(prom::format_value(-INFINITY) == "-Inf");
  prom::Writer w;
  w.family("big_total", prom::Type::Counter, "h");
  w.sample({}, uint64_t{18446744073709551615u});
  CHECK(w.text().find("big_total 18446744073709551615\n") != std::string::npos);
}

TEST_CASE("prom: HELP and TYPE once per family; a family started twice is refused") {
  prom::Writer w;
  CHECK(w.family("a_total", prom::Type::Counter, "first"));
  w.sample({{"x", "1"}}, uint64_t{1});
  w.sample({{"x", "2"}}, uint64_t{2});
  CHECK(w.family("b", prom::Type::Gauge, "second"));
  w.sample({}, 0.5);
  CHECK_FALSE(w.family("a_total", prom::Type::Counter, "again"));
  w.sample({{"x", "3"}}, uint64_t{3});  // dropped
  std::string t = w.text();
  CHECK(t ==
        "# HELP a_total first\n# TYPE a_total counter\na_total{x=\"1\"} 1\na_total{x=\"2\"} 2\n"
        "# HELP b second\n# TYPE b gauge\nb 0.5\n");
  CHECK(check_exposition(t).empty());
}

TEST_CASE("prom: histograms are cumulative with le labels, +Inf, _sum and _count") {
  prom::Writer w;
  w.family("lat_seconds", prom::Type::Histogram, "latency");
  const double bounds[] = {0.1, 1, 2.5};
  const uint64_t counts[] = {2, 0, 3, 1};  // per bucket, last = +Inf
  w.histogram({{"svc", "a"}}, bounds, counts, 7.25);
  CHECK(w.text() ==
        "# HELP lat_seconds latency\n# TYPE lat_seconds histogram\n"
        "lat_seconds_bucket{svc=\"a\",le=\"0.1\"} 2\n"
        "lat_seconds_bucket{svc=\"a\",le=\"1\"} 2\n"
        "lat_seconds_bucket{svc=\"a\",le=\"2.5\"} 5\n"
        "lat_seconds_bucket{svc=\"a\",le=\"+Inf\"} 6\n"
        "lat_seconds_sum{svc=\"a\"} 7.25\n"
        "lat_seconds_count{svc=\"a\"} 6\n");
  CHECK(check_exposition(w.text()).empty());
}

TEST_CASE("exposition checker: catches what it must") {
  auto fails = [](const std::string& text) { return !check_exposition(text).empty(); };
  const std::string ok = "# HELP a_total h\n# TYPE a_total counter\na_total{x=\"1\"} 1\n";
  CHECK_FALSE(fails(ok));
  CHECK(fails("a_total 1\n"));                                          // no HELP/TYPE
  CHECK(fails("# TYPE a_total counter\na_total 1\n"));                  // no HELP
  CHECK(fails("# HELP a_total h\n# TYPE a_total counter\na_total 1\n# HELP a_total h\n"));
  CHECK(fails("# HELP a h\n# TYPE a counter\na 1\n"));                  // counter not _total
  CHECK(fails(ok + "a_total{x=\"1\"} 2\n"));                            // duplicate series
  CHECK(fails(ok + "# HELP b h\n# TYPE b gauge\nb 1\na_total{x=\"2\"} 1\n"));  // split block
  CHECK(fails("# HELP a_total h\n# TYPE a_total counter\na_total{x=1} 1\n"));  // unquoted
  CHECK(fails("# HELP a_total h\n# TYPE a_total counter\na_total{1x=\"1\"} 1\n"));
  CHECK(fails("# HELP a_total h\n# TYPE a_total counter\na_total{x=\"\\t\"} 1\n"));
  CHECK(fails("# HELP a_total h\n# TYPE a_total counter\na_total{x=\"1\",} 1\n"));
  CHECK(fails("# HELP a_total h\n# TYPE a_total counter\na_total -1\n"));
  CHECK(fails("# HELP a-b h\n# TYPE a-b gauge\na-b 1\n"));
  CHECK(fails("# HELP g h\n# TYPE g gauge\ng one\n"));
  CHECK(fails("# HELP g h\n# TYPE g gauge\ng 1e\n"));
  CHECK(fails("# HELP g h\n# TYPE g gauge\ng .\n"));
  CHECK_FALSE(fails("# HELP g h\n# TYPE g gauge\ng{a=\"x\"} -1.5e+3\ng{a=\"y\"} .5\ng{a=\"z\"} NaN\n"));
  CHECK(fails("# HELP g h\n# TYPE g gauge\ng 1"));                      // no final newline
  const std::string hist = "# HELP h h\n# TYPE h histogram\n";
  CHECK_FALSE(fails(hist + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"));
  CHECK(fails(hist + "h_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"));
  CHECK(fails(hist + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"2\"} 2\nh_sum 3\nh_count 2\n"));
  CHECK(fails(hist + "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
                     "h_sum 3\nh_count 2\n"));
  CHECK(fails(hist + "h_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 1\n"));
  CHECK(fails(hist + "h_bucket{le=\"+Inf\"} 2\nh_count 2\n"));          // no _sum
}
