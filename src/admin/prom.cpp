#include "l4lb/admin/prom.hpp"

#include <cmath>

#include <fmt/format.h>

namespace l4lb::prom {

std::string_view to_string(Type t) {
  switch (t) {
    case Type::Counter: return "counter";
    case Type::Gauge: return "gauge";
    case Type::Histogram: return "histogram";
    case Type::Untyped: return "untyped";
  }
  return "untyped";
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

bool Writer::family(std::string_view name, Type type, std::string_view help) {
  if (seen_.count(name)) {
    current_.clear();
    return false;
  }
  seen_.emplace(name);
  current_ = name;
  fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name,
                 escape_help(help), name, to_string(type));
  return true;
}

void Writer::line(std::string_view suffix, Labels labels, const Label* extra,
                  std::string_view value) {
  if (current_.empty()) return;
  out_ += current_;
  out_ += suffix;
  if (labels.size() != 0 || extra) {
    out_ += '{';
    bool first = true;
    auto put = [&](const Label& l) {
      if (!first) out_ += ',';
      first = false;
      out_ += l.first;
      out_ += "=\"";
      out_ += escape_label_value(l.second);
      out_ += '"';
    };
    for (const Label& l : labels) put(l);
    if (extra) put(*extra);
    out_ += '}';
  }
  out_ += ' ';
  out_ += value;
  out_ += '\n';
}

void Writer::sample(Labels labels, double value) { line("", labels, nullptr, format_value(value)); }

void Writer::sample(Labels labels, uint64_t value) {
  line("", labels, nullptr, fmt::format("{}", value));
}

void Writer::histogram(Labels labels, std::span<const double> bounds,
                       std::span<const uint64_t> counts, double sum) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += i < counts.size() ? counts[i] : 0;
    std::string le = i < bounds.size() ? format_value(bounds[i]) : "+Inf";
    Label extra{"le", le};
    line("_bucket", labels, &extra, fmt::format("{}", cumulative));
  }
  line("_sum", labels, nullptr, format_value(sum));
  line("_count", labels, nullptr, fmt::format("{}", cumulative));
}

}  // namespace l4lb::prom
