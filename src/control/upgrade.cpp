#include "l4lb/control/upgrade.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "l4lb/base/net.hpp"

extern char** environ;

namespace l4lb::upgrade {

using nlohmann::json;

// ------------------------------------------------------------------ fd names

std::string listen_fd_name(const Address& address, size_t worker) {
  std::string a = address.to_string();
  for (char& c : a)
    if (c == ':') c = '_';
  return "listen@w" + std::to_string(worker) + "@" + a;
}

std::optional<size_t> listen_fd_worker(std::string_view name) {
  constexpr std::string_view kPrefix = "listen@w";
  if (name.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  name.remove_prefix(kPrefix.size());
  size_t at = name.find('@');
  if (at == 0 || at == std::string_view::npos || at > 6) return std::nullopt;
  size_t w = 0;
  for (char c : name.substr(0, at)) {
    if (c < '0' || c > '9') return std::nullopt;
    w = w * 10 + static_cast<size_t>(c - '0');
  }
  return w;
}

bool fd_name_valid(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name)
    if (c < 0x21 || c > 0x7e || c == ':') return false;
  return true;
}

std::string join_fd_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += ':';
    out += names[i];
  }
  return out;
}

std::vector<std::string> split_fd_names(std::string_view text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  size_t start = 0;
  for (;;) {
    size_t colon = text.find(':', start);
    out.emplace_back(text.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  return out;
}

// ------------------------------------------------------------------ state document

namespace {
const char* health_name(HealthState h) {
  switch (h) {
    case HealthState::Up: return "up";
    case HealthState::Down: return "down";
    default: return "unknown";
  }
}
bool parse_health(const std::string& s, HealthState& out) {
  if (s == "up") out = HealthState::Up;
  else if (s == "down") out = HealthState::Down;
  else if (s == "unknown") out = HealthState::Unknown;
  else return false;
  return true;
}
}  // namespace

std::string to_json(const Handover& h) {
  json doc = json::object();
  doc["version"] = kHandoverVersion;
  doc["reloads_ok"] = h.reloads_ok;
  doc["reloads_failed"] = h.reloads_failed;
  json list = json::array();
  for (const BackendState& b : h.backends) {
    json e = json::object();
    e["service"] = b.service;
    e["backend"] = b.backend;
    e["health"] = health_name(b.health);
    e["streak"] = b.streak;
    e["last_check"] = b.last_check;
    e["last_error"] = b.last_error;
    e["checks_ok"] = b.checks_ok;
    e["checks_failed"] = b.checks_failed;
    e["state"] = b.override_state ? json(std::string(admin_state_name(*b.override_state))) : json(nullptr);
    e["weight"] = b.override_weight ? json(*b.override_weight) : json(nullptr);
    e["file_drain"] = b.file_drain ? json(*b.file_drain) : json(nullptr);
    e["file_weight"] = b.file_weight ? json(*b.file_weight) : json(nullptr);
    list.push_back(std::move(e));
  }
  doc["backends"] = std::move(list);
  // Names are ASCII (config); anything else is replaced rather than thrown.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

bool from_json(std::string_view text, Handover& out, std::string& error) {
  try {
    json doc = json::parse(text.begin(), text.end());
    if (!doc.is_object()) throw std::runtime_error("not an object");
    if (doc.value("version", 0) != kHandoverVersion)
      throw std::runtime_error("unknown version");
    Handover h;
    h.reloads_ok = doc.at("reloads_ok").get<uint64_t>();
    h.reloads_failed = doc.at("reloads_failed").get<uint64_t>();
    const json& list = doc.at("backends");
    if (!list.is_array()) throw std::runtime_error("backends: not an array");
    for (const json& e : list) {
      BackendState b;
      b.service = e.at("service").get<std::string>();
      b.backend = e.at("backend").get<std::string>();
      if (!parse_health(e.at("health").get<std::string>(), b.health))
        throw std::runtime_error("backends: bad health");
      b.streak = e.at("streak").get<int>();
      b.last_check = e.at("last_check").get<double>();
      b.last_error = e.at("last_error").get<std::string>();
      b.checks_ok = e.at("checks_ok").get<uint64_t>();
      b.checks_failed = e.at("checks_failed").get<uint64_t>();
      if (!e.at("state").is_null()) {
        std::optional<AdminState> st = parse_admin_state(e.at("state").get<std::string>());
        if (!st) throw std::runtime_error("backends: bad state");
        b.override_state = st;
      }
      if (!e.at("weight").is_null()) b.override_weight = e.at("weight").get<int>();
      if (!e.at("file_drain").is_null()) b.file_drain = e.at("file_drain").get<bool>();
      if (!e.at("file_weight").is_null()) b.file_weight = e.at("file_weight").get<int>();
      h.backends.push_back(std::move(b));
    }
    out = std::move(h);
    return true;
  } catch (const std::exception& ex) {
    error = std::string("state document: ") + ex.what();
    return false;
  }
}

// ------------------------------------------------------------------ inherited sockets

InheritedFds InheritedFds::from_environment() {
  InheritedFds out;
  char** names = nullptr;
  int n = ::sd_listen_fds_with_names(1, &names);  // unsets LISTEN_*; fds get FD_CLOEXEC
  for (int i = 0; i < n; ++i)
    out.add(UniqueFd(SD_LISTEN_FDS_START + i), names && names[i] ? names[i] : "unknown");
  if (names) {
    for (int i = 0; i < n; ++i) std::free(names[i]);
    std::free(names);
  }
  return out;
}

void InheritedFds::add(UniqueFd fd, std::string name) {
  Entry e;
  e.worker = listen_fd_worker(name);
  e.name = std::move(name);
  int listening = 0, domain = 0;
  socklen_t len = sizeof listening;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening) {
    len = sizeof domain;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_DOMAIN, &domain, &len);
    if (domain == AF_INET || domain == AF_INET6) {
      e.listening_tcp = true;
      e.address = local_address(fd.get());
      set_proxy_options(fd.get());  // as listen_tcp: accepted sockets inherit them (systemd's too)
    } else if (domain == AF_UNIX) {
      sockaddr_un sun{};
      socklen_t sl = sizeof sun;
      if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sun), &sl) == 0 &&
          sl > offsetof(sockaddr_un, sun_path) && sun.sun_path[0] != '\0') {
        e.listening_unix = true;
        e.path.assign(sun.sun_path, ::strnlen(sun.sun_path, sizeof sun.sun_path));
      }
    }
    // Accepting must never block a loop: whoever passed it, it is non-blocking here.
    int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK);
  }
  e.fd = std::move(fd);
  entries_.push_back(std::move(e));
}

UniqueFd InheritedFds::take_tcp(const Address& address, size_t worker) {
  Entry* fallback = nullptr;
  for (Entry& e : entries_) {
    if (!e.fd || !e.listening_tcp || !(e.address == address)) continue;
    if (e.worker == worker) return std::move(e.fd);
    if (!e.worker && !fallback) fallback = &e;
  }
  return fallback ? std::move(fallback->fd) : UniqueFd();
}

UniqueFd InheritedFds::take_unix(const std::string& path) {
  for (Entry& e : entries_)
    if (e.fd && e.listening_unix && e.path == path) return std::move(e.fd);
  return UniqueFd();
}

UniqueFd InheritedFds::take_named(std::string_view name) {
  for (Entry& e : entries_)
    if (e.fd && e.name == name) return std::move(e.fd);
  return UniqueFd();
}

size_t InheritedFds::left() const {
  size_t n = 0;
  for (const Entry& e : entries_) n += e.fd ? 1 : 0;
  return n;
}

size_t InheritedFds::close_rest() {
  size_t n = left();
  entries_.clear();
  return n;
}

// ------------------------------------------------------------------ spawning

bool own_command(std::string& exe, std::vector<std::string>& argv, std::string& error) {
  char buf[PATH_MAX + 1];
  ssize_t n = ::readlink("/proc/self/exe", buf, PATH_MAX);
  if (n <= 0) {
    error = std::string("readlink /proc/self/exe: ") + std::strerror(errno);
    return false;
  }
  exe.assign(buf, static_cast<size_t>(n));
  constexpr std::string_view kDeleted = " (deleted)";
  if (exe.size() > kDeleted.size() && exe.ends_with(kDeleted)) exe.resize(exe.size() - kDeleted.size());
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  argv.clear();
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\0', start);
    if (end == std::string::npos) end = all.size();
    argv.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  if (argv.empty()) {
    error = "cannot read /proc/self/cmdline";
    return false;
  }
  return true;
}

namespace {
// Async-signal-safe decimal formatting into BUF (at least 21 bytes); returns the end.
char* put_decimal(char* buf, unsigned long v) {
  char tmp[21];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *buf++ = tmp[--n];
  *buf = '\0';
  return buf;
}
}  // namespace

pid_t spawn(const std::string& exe, const std::vector<std::string>& argv,
            const std::vector<PassFd>& fds, int error_fd_index, std::string& error) {
  // Everything the child needs is made here: between fork and exec it only calls
  // async-signal-safe functions (other threads may hold the allocator's lock).
  std::vector<std::string> names;
  for (const PassFd& f : fds) names.push_back(f.name);
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    std::string_view v(*e);
    if (v.starts_with("LISTEN_PID=") || v.starts_with("LISTEN_FDS=") || v.starts_with("LISTEN_FDNAMES="))
      continue;
    env_strings.emplace_back(v);
  }
  env_strings.push_back("LISTEN_FDS=" + std::to_string(fds.size()));
  env_strings.push_back("LISTEN_FDNAMES=" + join_fd_names(names));
  std::string pid_var(sizeof "LISTEN_PID=" - 1 + 24, '\0');
  std::memcpy(pid_var.data(), "LISTEN_PID=", sizeof "LISTEN_PID=" - 1);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(pid_var.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (std::string& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);
  std::vector<int> sources, tmp(fds.size(), -1);
  for (const PassFd& f : fds) sources.push_back(f.source);
  const int n = static_cast<int>(fds.size());

  pid_t pid = ::fork();
  if (pid < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    return -1;
  }
  if (pid > 0) return pid;

  // ---- child
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  put_decimal(pid_var.data() + sizeof "LISTEN_PID=" - 1, static_cast<unsigned long>(::getpid()));
  // First above the target range, so that no source is overwritten before it is moved.
  for (int i = 0; i < n; ++i) {
    tmp[i] = ::fcntl(sources[i], F_DUPFD_CLOEXEC, SD_LISTEN_FDS_START + n);
    if (tmp[i] < 0) ::_exit(127);
  }
  for (int i = 0; i < n; ++i)
    if (::dup2(tmp[i], SD_LISTEN_FDS_START + i) < 0) ::_exit(127);  // dup2: no FD_CLOEXEC
  // Nothing else of this process leaks into the new one.
  ::close_range(static_cast<unsigned>(SD_LISTEN_FDS_START + n), ~0u, CLOSE_RANGE_CLOEXEC);
  ::execve(exe.c_str(), argp.data(), envp.data());
  int err = errno;
  if (error_fd_index >= 0 && error_fd_index < n) {
    char msg[1 + sizeof err];
    msg[0] = 'E';
    std::memcpy(msg + 1, &err, sizeof err);
    ssize_t w = ::write(SD_LISTEN_FDS_START + error_fd_index, msg, sizeof msg);
    (void)w;
  }
  ::_exit(127);
}

}  // namespace l4lb::upgrade
