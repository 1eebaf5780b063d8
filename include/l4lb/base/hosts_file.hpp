// /etc/hosts, read once for a whole config. glibc's getaddrinfo reads the entire file
// for every name it is asked (a config of 1,000 backends named in a 1,000-line hosts
// file: a million lines parsed per reload, ~80% of a reload's CPU). Where
// /etc/nsswitch.conf looks in `files` first, a name found here is the answer
// getaddrinfo would give first, so the config loader asks this table before
// getaddrinfo; names not in it go to getaddrinfo as before (DNS, other sources).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "l4lb/base/address.hpp"

namespace l4lb {

class HostsFile {
 public:
  // The table of HOSTS_PATH, or none where NSSWITCH_PATH's `hosts:` line does not
  // start with `files` (or a file cannot be read: then getaddrinfo answers everything).
  static std::optional<HostsFile> load(const char* hosts_path = "/etc/hosts",
                                       const char* nsswitch_path = "/etc/nsswitch.conf");
  // Whether an nsswitch.conf text looks up host names in `files` first.
  static bool files_first(std::string_view nsswitch);
  // The table of a hosts file's TEXT.
  static HostsFile parse(std::string_view text);

  // NAME's address (port 0), as the loader takes getaddrinfo's answer: the first IPv4
  // address of a line naming it (name or alias, case-insensitive), else the first IPv6
  // one. Null when no line names it.
  const Address* find(std::string_view name) const;
  size_t size() const { return names_.size(); }

 private:
  struct Entry {
    std::optional<Address> v4, v6;
  };
  std::unordered_map<std::string, Entry> names_;  // lower-case names
};

}  // namespace l4lb
