// Upgrade (SIGUSR2) and socket inheritance (systemd socket activation and fd store).
//
// Sockets pass between processes with systemd's LISTEN_FDS convention: fds 3..3+N-1,
// LISTEN_PID the receiver's pid, LISTEN_FDNAMES their names, ':'-separated. systemd allows
// no ':' in a name (and at most 255 printable ASCII characters), so names are:
//   listen@w<WORKER>@<ADDRESS with ':' as '_'>   a data listener of one worker, e.g.
//                                                "listen@w0@127.0.0.1_8080", "listen@w1@[__1]_8080"
//   admin                                        the admin listener (TCP or unix socket)
//   state                                        an upgrade's state document (a memfd)
//   ready                                        an upgrade's ready pipe (write end)
// A listening socket is matched to the config by its own address (getsockname), not by
// its name, so sockets named by a systemd .socket unit (or unnamed) are adopted too; the
// "#w" part of the name only says which worker's SO_REUSEPORT socket it is.
//
// The state document (JSON, pure functions below) carries what the new process must not
// re-learn: the reload count, and per backend (service, address as /stats shows it) its
// health, consecutive check results, last check, counts, and admin overrides with the
// config file values they were made against (as the state file).
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "l4lb/balance/admin_state.hpp"
#include "l4lb/balance/backend.hpp"
#include "l4lb/base/address.hpp"
#include "l4lb/base/fd.hpp"

namespace l4lb::upgrade {

constexpr double kReadyTimeout = 10.0;  // seconds for the new process to signal ready
constexpr std::string_view kAdminName = "admin", kStateName = "state", kReadyName = "ready";

// ------------------------------------------------------------------ fd names (pure)

// "listen@w0@127.0.0.1_8080".
std::string listen_fd_name(const Address& address, size_t worker);
// The worker index of a listen@w<N>@... name; nullopt for any other name.
std::optional<size_t> listen_fd_worker(std::string_view name);
// What systemd accepts as a name (FDNAME=, LISTEN_FDNAMES): 1..255 printable ASCII, no ':'.
bool fd_name_valid(std::string_view name);
// "a:b:c" <-> {"a","b","c"}.
std::string join_fd_names(const std::vector<std::string>& names);
std::vector<std::string> split_fd_names(std::string_view text);

// ------------------------------------------------------------------ state document (pure)

struct BackendState {
  std::string service;
  std::string backend;  // as /stats shows it
  HealthState health = HealthState::Unknown;
  int streak = 0;
  double last_check = 0;
  std::string last_error;
  uint64_t checks_ok = 0, checks_failed = 0;
  std::optional<AdminState> override_state;
  std::optional<int> override_weight;
  std::optional<bool> file_drain;  // the file's drain when the state override was made
  std::optional<int> file_weight;  // the file's weight when the weight override was made
  bool operator==(const BackendState&) const = default;
};

struct Handover {
  uint64_t reloads_ok = 0;
  uint64_t reloads_failed = 0;
  std::vector<BackendState> backends;
  bool operator==(const Handover&) const = default;
};

constexpr int kHandoverVersion = 1;

std::string to_json(const Handover& h);
// Parses TEXT into OUT; false with ERROR (OUT untouched) on anything else. Never throws.
bool from_json(std::string_view text, Handover& out, std::string& error);

// ------------------------------------------------------------------ inherited sockets

// The fds passed with LISTEN_FDS (checked against LISTEN_PID, then unset from the
// environment). Each is taken at most once; what is left is closed with this object.
class InheritedFds {
 public:
  InheritedFds() = default;
  static InheritedFds from_environment();
  // For tests and callers that hold fds: adopts FD under NAME.
  void add(UniqueFd fd, std::string name);

  // A TCP listening socket bound to ADDRESS: the one named for WORKER if there is one,
  // else one whose name names no worker. Empty if none.
  UniqueFd take_tcp(const Address& address, size_t worker);
  // A unix listening socket bound to PATH.
  UniqueFd take_unix(const std::string& path);
  // The fd named NAME (state, ready).
  UniqueFd take_named(std::string_view name);
  size_t size() const { return entries_.size(); }
  size_t left() const;
  // Closes every fd not taken; returns how many.
  size_t close_rest();

 private:
  struct Entry {
    UniqueFd fd;
    std::string name;
    bool listening_tcp = false, listening_unix = false;
    Address address;
    std::string path;
    std::optional<size_t> worker;
  };
  std::vector<Entry> entries_;
};

// ------------------------------------------------------------------ spawning the new process

// One fd to pass: SOURCE (stays open in the caller) becomes fd 3+index under NAME.
struct PassFd {
  int source;
  std::string name;
};

// The executable at /proc/self/exe's path now (" (deleted)" taken off when the file was
// replaced), and this process's arguments.
bool own_command(std::string& exe, std::vector<std::string>& argv, std::string& error);

// fork + exec EXE with ARGV and this environment (LISTEN_* replaced), FDS at 3.. with
// LISTEN_PID the child's pid. If exec fails the child writes 'E' and the errno (an int) to
// the fd at ERROR_FD_INDEX (if >= 0) and exits 127. Returns the pid, or -1 with ERROR.
pid_t spawn(const std::string& exe, const std::vector<std::string>& argv,
            const std::vector<PassFd>& fds, int error_fd_index, std::string& error);

}  // namespace l4lb::upgrade
