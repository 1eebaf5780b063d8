// A tiny writer of the Prometheus text exposition format, version 0.0.4: a family's
// HELP and TYPE lines once, then its samples, label values escaped (\\, \", \n).
// A family started a second time is refused (family() returns false and its samples
// are dropped), so no family is ever emitted twice.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace l4lb::prom {

inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class Type { Counter, Gauge, Histogram, Untyped };
std::string_view to_string(Type t);

using Label = std::pair<std::string_view, std::string_view>;
using Labels = std::initializer_list<Label>;

// A label value escaped for the format: \ -> \\, " -> \", newline -> \n.
std::string escape_label_value(std::string_view v);
// A HELP text escaped for the format: \ -> \\, newline -> \n.
std::string escape_help(std::string_view v);
// A sample value: integers exactly, others shortest round-trip; NaN, +Inf, -Inf.
std::string format_value(double v);

class Writer {
 public:
  // Starts family NAME: writes "# HELP" and "# TYPE". False (and nothing written, the
  // family's samples dropped) if NAME was already started.
  bool family(std::string_view name, Type type, std::string_view help);

  // A sample of the current family: NAME{labels} value.
  void sample(Labels labels, double value);
  void sample(Labels labels, uint64_t value);
  // Histogram: NAME_bucket{labels,le=...} cumulative over BOUNDS then "+Inf", NAME_sum,
  // NAME_count. COUNTS are per bucket (not cumulative), BOUNDS.size() + 1 of them (the
  // last is the +Inf bucket).
  void histogram(Labels labels, std::span<const double> bounds, std::span<const uint64_t> counts,
                 double sum);

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void line(std::string_view suffix, Labels labels, const Label* extra, std::string_view value);

  std::string out_;
  std::string current_;  // the family samples go to; empty when refused
  std::set<std::string, std::less<>> seen_;
};

}  // namespace l4lb::prom
