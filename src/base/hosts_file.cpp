#include "l4lb/base/hosts_file.hpp"

#include <arpa/inet.h>

#include "l4lb/base/file.hpp"

namespace l4lb {
namespace {

constexpr size_t kMaxFileBytes = 64 << 20;  // a hosts file of a million names still fits

std::optional<std::string> read_text(const char* path) {
  std::string text, error;
  if (!read_file(path, text, error, nullptr, kMaxFileBytes)) return std::nullopt;
  return text;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Splits LINE (comment removed) into fields separated by blanks.
template <class F>
void for_each_field(std::string_view line, F&& f) {
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    size_t j = i;
    while (j < line.size() && !is_space(line[j])) ++j;
    if (j > i && !f(line.substr(i, j - i))) return;
    i = j;
  }
}

template <class F>
void for_each_line(std::string_view text, F&& f) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    f(line);
  }
}

}  // namespace

bool HostsFile::files_first(std::string_view nsswitch) {
  bool first = false;
  for_each_line(nsswitch, [&](std::string_view line) {
    size_t i = 0;
    while (i < line.size() && is_space(line[i])) ++i;
    line = line.substr(i);
    if (line.substr(0, 6) != "hosts:") return;
    first = false;
    for_each_field(line.substr(6), [&](std::string_view source) {
      first = source == "files";
      return false;  // only the first source counts
    });
  });
  return first;
}

HostsFile HostsFile::parse(std::string_view text) {
  HostsFile table;
  for_each_line(text, [&](std::string_view line) {
    std::optional<Address> address;
    bool v4 = false;
    for_each_field(line, [&](std::string_view field) {
      if (!address) {  // the address: IPv4 or IPv6 (an IPv6 scope "%eth0" is not kept)
        std::string ip(field.substr(0, field.find('%')));
        in_addr a4{};
        in6_addr a6{};
        Address a;
        if (inet_pton(AF_INET, ip.c_str(), &a4) == 1) {
          auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage);
          sin->sin_family = AF_INET;
          sin->sin_addr = a4;
          a.length = sizeof(sockaddr_in);
          v4 = true;
        } else if (inet_pton(AF_INET6, ip.c_str(), &a6) == 1) {
          auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
          sin6->sin6_family = AF_INET6;
          sin6->sin6_addr = a6;
          a.length = sizeof(sockaddr_in6);
        } else {
          return false;  // not an address: the line is skipped, as glibc does
        }
        address = a;
        return true;
      }
      Entry& e = table.names_[lower(field)];
      std::optional<Address>& slot = v4 ? e.v4 : e.v6;
      if (!slot) slot = address;
      return true;
    });
  });
  return table;
}

std::optional<HostsFile> HostsFile::load(const char* hosts_path, const char* nsswitch_path) {
  std::optional<std::string> nsswitch = read_text(nsswitch_path);
  if (!nsswitch || !files_first(*nsswitch)) return std::nullopt;
  std::optional<std::string> hosts = read_text(hosts_path);
  if (!hosts) return std::nullopt;
  return parse(*hosts);
}

const Address* HostsFile::find(std::string_view name) const {
  auto it = names_.find(lower(name));
  if (it == names_.end()) return nullptr;
  return it->second.v4 ? &*it->second.v4 : &*it->second.v6;
}

}  // namespace l4lb
