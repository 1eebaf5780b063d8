#include <doctest/doctest.h>

#include "l4lb/base/hosts_file.hpp"

using namespace l4lb;

TEST_CASE("the hosts table answers as the config loader takes getaddrinfo's answer") {
  HostsFile t = HostsFile::parse(
      "# comment line\n"
      "127.0.0.1\tlocalhost\n"
      "::1 localhost ip6-localhost   # trailing comment\n"
      "fe80::1%eth0 linklocal\n"
      "10.0.0.1 Web1.Example.COM web1 # alias\n"
      "10.0.0.2 web1\n"                  // a second line: the first IPv4 one wins
      "2001:db8::5 six\n"
      "not-an-address ignored\n"
      "   \n"
      "192.0.2.7 last-line-no-newline");
  REQUIRE(t.find("localhost"));
  CHECK(t.find("localhost")->to_string() == "127.0.0.1:0");  // IPv4 over IPv6
  CHECK(t.find("ip6-localhost")->to_string() == "[::1]:0");
  CHECK(t.find("web1.example.com")->to_string() == "10.0.0.1:0");  // case-insensitive
  CHECK(t.find("WEB1")->to_string() == "10.0.0.1:0");
  CHECK(t.find("six")->to_string() == "[2001:db8::5]:0");
  CHECK(t.find("linklocal")->to_string() == "[fe80::1]:0");
  CHECK(t.find("last-line-no-newline")->to_string() == "192.0.2.7:0");
  CHECK(t.find("ignored") == nullptr);
  CHECK(t.find("comment") == nullptr);
  CHECK(t.find("nowhere") == nullptr);
  CHECK(t.find("web1.") == nullptr);  // as glibc's files source: no match, asked elsewhere
}

TEST_CASE("the hosts table is used only where nsswitch looks in files first") {
  CHECK(HostsFile::files_first("hosts: files dns\n"));
  CHECK(HostsFile::files_first("passwd: files\nhosts:          files mdns4_minimal [NOTFOUND=return] dns myhostname\n"));
  CHECK_FALSE(HostsFile::files_first("hosts: dns files\n"));
  CHECK_FALSE(HostsFile::files_first("hosts: resolve [!UNAVAIL=return] files\n"));
  CHECK_FALSE(HostsFile::files_first("passwd: files\n"));  // no hosts line: glibc's default is dns first
  CHECK_FALSE(HostsFile::files_first("# hosts: files dns\n"));
  CHECK_FALSE(HostsFile::files_first("hosts:\n"));
}

TEST_CASE("an unreadable nsswitch.conf or hosts file leaves every name to getaddrinfo") {
  CHECK_FALSE(HostsFile::load("/nonexistent/hosts", "/nonexistent/nsswitch.conf"));
}

#include <fstream>
#include <map>
#include <sstream>

TEST_CASE("on this machine, the hosts table gives getaddrinfo's answer for every name it has") {
  std::optional<HostsFile> t = HostsFile::load();
  if (!t) return;  // nsswitch does not look in files first here: the table is not used
  std::ifstream in("/etc/hosts");
  std::stringstream text;
  text << in.rdbuf();
  // Every name of the file, asked both ways (getaddrinfo with AF_UNSPEC, first IPv4 kept).
  // A name on several lines is left out: getaddrinfo may sort its addresses (RFC 3484),
  // the table keeps the file's first.
  std::map<std::string, int> lines_naming;
  auto each_name = [&](auto&& f) {
    std::istringstream lines(text.str());
    for (std::string line; std::getline(lines, line);) {
      line = line.substr(0, line.find('#'));
      std::istringstream fields(line);
      std::string address, name;
      if (!(fields >> address)) continue;
      while (fields >> name) f(name);
    }
  };
  each_name([&](const std::string& name) { ++lines_naming[name]; });
  size_t compared = 0;
  each_name([&](const std::string& name) {
    if (lines_naming[name] > 1 || compared >= 200) return;
    {
      Address theirs;
      std::string error;
      if (!parse_address(name + ":80", theirs, error)) return;  // not a valid host name for us
      const Address* mine = t->find(name);
      REQUIRE_MESSAGE(mine, name, " resolves to ", theirs.to_string(), " but is not in the table");
      Address expected = *mine;
      expected.set_port(80);
      CHECK_MESSAGE(expected == theirs, name, ": table ", expected.to_string(), ", getaddrinfo ",
                    theirs.to_string());
      ++compared;
    }
  });
  MESSAGE("compared ", compared, " names");
}
