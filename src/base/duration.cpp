#include "l4lb/base/duration.hpp"

#include <algorithm>
#include <cstdint>

#include "l4lb/base/text.hpp"

namespace l4lb {
namespace {

constexpr int64_t kMaxMillis = int64_t{30} * 24 * 3600 * 1000;  // 30 days
constexpr std::string_view kUnits = "(use ms, s, m, h)";
constexpr size_t kShown = 20;  // longest part of the text quoted in a message

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Milliseconds per unit, or 0 for an unknown unit.
int64_t unit_millis(std::string_view unit) {
  if (unit == "ms") return 1;
  if (unit == "s") return 1000;
  if (unit == "m") return 60 * 1000;
  if (unit == "h") return 3600 * 1000;
  return 0;
}

// Reads "12", "1.5", ".5" at the front of TEXT; returns how many chars it took
// (0 when there is no digit). WHOLE/FRAC/FRAC_SCALE receive the value; digits past
// the 9th fraction digit and whole parts past 10^13 are clamped (both beyond 30 days' reach).
size_t read_number(std::string_view text, int64_t& whole, int64_t& frac, int64_t& frac_scale) {
  size_t i = 0;
  bool any = false;
  whole = 0, frac = 0, frac_scale = 1;
  for (; i < text.size() && is_digit(text[i]); ++i, any = true)
    whole = std::min<int64_t>(whole * 10 + (text[i] - '0'), int64_t{10'000'000'000'000});
  if (i < text.size() && text[i] == '.') {
    ++i;
    for (; i < text.size() && is_digit(text[i]); ++i, any = true) {
      if (frac_scale < 1'000'000'000) frac = frac * 10 + (text[i] - '0'), frac_scale *= 10;
    }
  }
  return any ? i : 0;
}

}  // namespace

bool parse_duration(std::string_view text, Millis& out, std::string& error) {
  if (text.empty()) return error = "empty duration", false;
  if (text[0] == '-') return error = "must not be negative", false;
  int64_t total = 0;
  size_t pos = 0;
  bool bare = true;  // a lone number without a unit means seconds
  while (pos < text.size()) {
    int64_t whole, frac, scale;
    size_t n = read_number(text.substr(pos), whole, frac, scale);
    if (n == 0) return error = "expected a number at " + quoted(text.substr(pos), kShown), false;
    std::string_view number = text.substr(pos, n);
    pos += n;
    size_t u = pos;
    while (pos < text.size() && is_alpha(text[pos])) ++pos;
    std::string_view unit = text.substr(u, pos - u);
    int64_t per = 1000;
    if (unit.empty()) {
      if (!bare || pos < text.size())
        return error = "missing unit after " + quoted(number, kShown) + " " + std::string(kUnits),
               false;
    } else {
      bare = false;
      per = unit_millis(unit);
      if (per == 0)
        return error = "unknown unit " + quoted(unit, kShown) + " " + std::string(kUnits), false;
    }
    if (whole > kMaxMillis) return error = "exceeds the maximum of 30 days", false;
    total += whole * per + frac * per / scale;
    if (total > kMaxMillis) return error = "exceeds the maximum of 30 days", false;
    bare = false;
  }
  out = Millis{total};
  return true;
}

std::string format_duration(Millis d) {
  int64_t ms = d.count();
  if (ms < 0) return "-" + format_duration(Millis{-ms});
  if (ms == 0) return "0s";
  if (ms < 1000) return std::to_string(ms) + "ms";
  std::string out;
  int64_t h = ms / 3'600'000, m = ms / 60'000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
  if (h) out += std::to_string(h) + "h";
  if (m) out += std::to_string(m) + "m";
  if (s || frac) {
    out += std::to_string(s);
    if (frac) {
      std::string f = std::to_string(frac + 1000).substr(1);  // "050" for 50ms
      while (f.back() == '0') f.pop_back();
      out += "." + f;
    }
    out += "s";
  }
  return out;
}

}  // namespace l4lb
