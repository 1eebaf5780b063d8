// l4lb: command line, process setup (signals, fd limit), then the server's loop.
#include <getopt.h>
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "l4lb/config/config.hpp"
#include "l4lb/log/log.hpp"
#include "l4lb/control/ctl.hpp"
#include "l4lb/control/server.hpp"
#include "l4lb/control/upgrade.hpp"

namespace {

constexpr int kExitOk = 0, kExitBadConfig = 1, kExitUsage = 2, kExitCannotStart = 3;
constexpr const char* kDefaultConfig = "/etc/l4lb/l4lb.yaml";

void usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: l4lb [-c FILE] [-t] [--version] [-h]\n"
               "       l4lb ctl [-c FILE] COMMAND ...\n"
               "Layer-4 TCP load balancer.\n"
               "\n"
               "  -c, --config FILE   config file (default %s)\n"
               "  -t, --check         validate the config and exit; prints \"FILE: ok\" on success;\n"
               "                      binds nothing\n"
               "      --version       print \"l4lb %s\" and exit\n"
               "  -h, --help          this help\n"
               "\n"
               "Signals: SIGHUP reloads the config (an invalid one is rejected, the running one\n"
               "kept); SIGUSR1 reopens the access log; SIGTERM/SIGINT stop gracefully (a second\n"
               "one stops at once); SIGUSR2 upgrades: starts the executable now at the same path\n"
               "with the same arguments, hands it the listening sockets and state, and drains\n"
               "once it is ready. Listening sockets passed with LISTEN_FDS (an upgrade, systemd\n"
               "socket activation or its fd store) are used instead of binding anew.\n"
               "Exit codes: 0 ok, 1 invalid config, 2 bad command line, 3 could not start.\n"
               "\n"
               "l4lb ctl talks to the running l4lb through its admin listener (read from FILE):\n"
               "  status | drain|ready|maint SERVICE BACKEND | weight SERVICE BACKEND N|config |\n"
               "  close SERVICE BACKEND   (l4lb ctl --help for details and its exit codes)\n",
               kDefaultConfig, L4LB_VERSION);
}

// Lets the process hold as many connections as the hard limit allows.
void raise_fd_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // "l4lb ctl ...": the admin client, with a command line of its own.
  if (argc >= 2 && std::strcmp(argv[1], "ctl") == 0) return l4lb::ctl::run_ctl(argc - 1, argv + 1);
  std::string config_path = kDefaultConfig;
  bool check_only = false;
  static const option long_opts[] = {
      {"config", required_argument, nullptr, 'c'},
      {"check", no_argument, nullptr, 't'},
      {"version", no_argument, nullptr, 'V'},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  int opt;
  bool version = false, help = false;
  while ((opt = ::getopt_long(argc, argv, "c:th", long_opts, nullptr)) != -1) {
    switch (opt) {
      case 'c': config_path = optarg; break;
      case 't': check_only = true; break;
      case 'V': version = true; break;
      case 'h': help = true; break;
      default: usage(stderr); return kExitUsage;
    }
  }
  // The whole command line is checked before any option acts: "--version extra" is bad too.
  if (optind < argc) {
    std::fprintf(stderr, "l4lb: unexpected argument \"%s\"\n", argv[optind]);
    usage(stderr);
    return kExitUsage;
  }
  if (help) {
    usage(stdout);
    return kExitOk;
  }
  if (version) {
    std::printf("l4lb %s\n", L4LB_VERSION);
    return kExitOk;
  }

  l4lb::ConfigResult loaded = l4lb::load_config(config_path);
  if (!loaded.ok()) {
    l4lb::Log errors(l4lb::LogLevel::Error);  // "<3>" first under journald
    for (const auto& e : loaded.errors) errors.plain(l4lb::LogLevel::Error, e);
    return kExitBadConfig;
  }
  if (check_only) {
    std::printf("%s: ok\n", config_path.c_str());
    return kExitOk;
  }
  const l4lb::Config& cfg = *loaded.config;
  // Sockets handed over (an upgrade, systemd): taken now, closed when unused.
  l4lb::upgrade::InheritedFds inherited = l4lb::upgrade::InheritedFds::from_environment();

  std::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  l4lb::Log log(cfg.global.log_level);
  log.info("start", {{"version", L4LB_VERSION}, {"config", config_path}});

  struct ev_loop* loop = ev_default_loop(EVFLAG_AUTO);
  if (!loop) {
    log.error("cannot start", {{"reason", "no event loop backend"}});
    return kExitCannotStart;
  }
  int code;
  {
    l4lb::Server server(loop, log, config_path);
    std::string error;
    if (!server.start(cfg, error, &inherited)) {
      log.error("cannot start", {{"reason", error}});
      return kExitCannotStart;
    }
    code = server.run();
  }
  log.info("stop", {{"exit_code", std::to_string(code)}});
  return code;
}
