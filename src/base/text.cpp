#include "l4lb/base/text.hpp"

namespace l4lb {

std::string_view utf8_prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  while (max > 0 && (static_cast<unsigned char>(s[max]) & 0xC0) == 0x80) --max;
  return s.substr(0, max);
}

std::string quoted(std::string_view s, size_t max, Quoting how) {
  std::string_view shown = how == Quoting::Escaped ? utf8_prefix(s, max) : s.substr(0, max);
  std::string out = "\"";
  for (char c : shown) {
    if (how == Quoting::Escaped && (c == '"' || c == '\\')) out += '\\';
    out += c;
  }
  return out + (shown.size() < s.size() ? "...\"" : "\"");
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace l4lb
