#include "l4lb/control/ctl.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "l4lb/admin/routes.hpp"
#include "l4lb/base/duration.hpp"
#include "l4lb/base/fd.hpp"
#include "l4lb/base/text.hpp"
#include "l4lb/config/config.hpp"

namespace l4lb::ctl {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kMaxMessage = 512;

// Control bytes (and, where SPACES is set, blanks) as '?': what l4lb or the user sent must
// neither drive the terminal nor break a column.
std::string printable(std::string_view s, bool spaces_too = false) {
  std::string out(s);
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || (spaces_too && u == ' ')) c = '?';
  }
  return out;
}

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

bool is_tchar(unsigned char c) {
  return is_unreserved(c) || std::strchr("!#$%&'*+^`|", c) != nullptr;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

json parse_json(std::string_view text) {
  return json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
}

// A JSON value as a table cell: strings as they are, numbers as JSON writes them.
std::string cell(const json& v, std::string_view missing = "-") {
  if (v.is_string()) return printable(v.get<std::string>(), true);
  if (v.is_number()) return v.dump();
  return std::string(missing);
}

const json& member(const json& obj, const char* key) {
  static const json null_value;
  if (!obj.is_object()) return null_value;
  auto it = obj.find(key);
  return it == obj.end() ? null_value : *it;
}

}  // namespace

// ------------------------------------------------------------------ command line

std::string usage_text() {
  return std::string(
             "Usage: l4lb ctl [-c FILE] COMMAND ...\n"
             "Talk to the running l4lb through its admin listener (global.admin in FILE).\n"
             "\n"
             "  status                             one line per backend:\n"
             "                                     SERVICE BACKEND STATE WEIGHT ACTIVE\n"
             "  drain|ready|maint SERVICE BACKEND  set a backend's admin state\n"
             "  weight SERVICE BACKEND N|config    set a backend's weight (1..1000), or go back\n"
             "                                     to the file's\n"
             "  close SERVICE BACKEND              reset that backend's open connections\n"
             "\n"
             "  -c, --config FILE   config file (default ") +
         kDefaultConfig +
         ")\n"
         "  -h, --help          this help\n"
         "\n"
         "BACKEND is the address as /stats shows it (127.0.0.1:8001, [::1]:8001).\n"
         "Exit codes: 0 done, 1 l4lb answered with an error, 2 bad command line,\n"
         "3 could not reach l4lb or may not write (no admin listener, refused, 401/403).\n";
}

ParseOutcome parse_args(const std::vector<std::string>& args, Command& out, std::string& error) {
  // getopt wants mutable C strings and permutes the pointers: a private copy.
  std::vector<std::string> words;
  words.reserve(args.size() + 1);
  words.push_back("ctl");
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  const int argc = static_cast<int>(words.size());

  static const option long_opts[] = {
      {"config", required_argument, nullptr, 'c'},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  Command cmd;
  bool help = false;
  optind = 0;  // GNU: a full re-initialisation (main or an earlier call may have used getopt)
  opterr = 0;
  int opt;
  while ((opt = ::getopt_long(argc, argv.data(), ":c:h", long_opts, nullptr)) != -1) {
    switch (opt) {
      case 'c': cmd.config_path = optarg; break;
      case 'h': help = true; break;
      case ':': error = "option -c/--config needs a FILE"; return ParseOutcome::Usage;
      default:
        if (optopt != 0)
          error = std::string("unknown option -") + static_cast<char>(optopt);
        else
          error = "unknown option " + l4lb::quoted(printable(argv[optind - 1]));
        return ParseOutcome::Usage;
    }
  }
  if (help) return ParseOutcome::Help;
  if (cmd.config_path.empty()) {
    error = "option -c/--config needs a FILE";
    return ParseOutcome::Usage;
  }

  std::vector<std::string> pos(argv.begin() + optind, argv.begin() + argc);
  if (pos.empty()) {
    error = "no COMMAND given";
    return ParseOutcome::Usage;
  }
  const std::string verb = pos.front();
  pos.erase(pos.begin());
  auto want = [&](size_t n, const char* what) {
    if (pos.size() == n) return true;
    error = verb + (n == 0 ? std::string(" takes no arguments") : std::string(" needs ") + what) +
            (pos.size() > n ? ", got more" : "");
    return false;
  };

  if (verb == "status") {
    if (!want(0, "")) return ParseOutcome::Usage;
    cmd.verb = Verb::Status;
  } else if (verb == "drain" || verb == "ready" || verb == "maint") {
    if (!want(2, "SERVICE BACKEND")) return ParseOutcome::Usage;
    cmd.verb = Verb::State;
    cmd.value = verb;
  } else if (verb == "weight") {
    if (!want(3, "SERVICE BACKEND N|config")) return ParseOutcome::Usage;
    admin::WeightBody w;
    std::string why;
    if (!admin::parse_weight_body(pos[2], w, why)) {
      error = "N must be an integer 1..1000 or config, got " + l4lb::quoted(printable(pos[2]));
      return ParseOutcome::Usage;
    }
    cmd.verb = Verb::Weight;
    cmd.value = w.config ? "config" : std::to_string(w.weight);
  } else if (verb == "close") {
    if (!want(2, "SERVICE BACKEND")) return ParseOutcome::Usage;
    cmd.verb = Verb::Close;
  } else {
    error = "unknown command " + l4lb::quoted(printable(verb));
    return ParseOutcome::Usage;
  }
  if (cmd.verb != Verb::Status) {
    if (pos[0].empty() || pos[1].empty()) {
      error = pos[0].empty() ? "SERVICE must not be empty" : "BACKEND must not be empty";
      return ParseOutcome::Usage;
    }
    cmd.service = pos[0];
    cmd.backend = pos[1];
  }
  out = std::move(cmd);
  return ParseOutcome::Ok;
}

// ------------------------------------------------------------------ request

std::string percent_encode(std::string_view s) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c)) {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xF];
    }
  }
  return out;
}

Request build_request(const Command& cmd) {
  Request r;
  if (cmd.verb == Verb::Status) {
    r.method = "GET";
    r.path = "/stats";
    return r;
  }
  const std::string base =
      "/services/" + percent_encode(cmd.service) + "/backends/" + percent_encode(cmd.backend);
  r.write = true;
  switch (cmd.verb) {
    case Verb::State:
      r.method = "PUT";
      r.path = base + "/state";
      r.body = cmd.value;
      break;
    case Verb::Weight:
      r.method = "PUT";
      r.path = base + "/weight";
      r.body = cmd.value;
      break;
    case Verb::Close:
      r.method = "DELETE";
      r.path = base + "/connections";
      break;
    case Verb::Status: break;
  }
  return r;
}

std::string serialize_request(const Request& req, std::string_view token) {
  std::string out = req.method + " " + req.path + " HTTP/1.1\r\nHost: l4lb\r\n";
  bool token_ok = !token.empty() && std::all_of(token.begin(), token.end(), [](char c) {
    return c > 0x20 && c < 0x7f;
  });
  if (token_ok) out += "Authorization: Bearer " + std::string(token) + "\r\n";
  if (req.method != "GET" && req.method != "HEAD")
    out += "Content-Length: " + std::to_string(req.body.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  out += req.body;
  return out;
}

// ------------------------------------------------------------------ answer

bool parse_response(std::string_view raw, Response& out, std::string& error) {
  if (raw.empty()) {
    error = "empty answer";
    return false;
  }
  size_t pos = 0;
  // The next line without its LF (and CR); false at the end of RAW (no LF: truncated).
  auto next_line = [&](std::string_view& line) {
    size_t nl = raw.find('\n', pos);
    if (nl == std::string_view::npos || nl >= kMaxHead) return false;
    line = raw.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    return true;
  };
  auto bad_bytes = [](std::string_view line) {
    return std::any_of(line.begin(), line.end(), [](char c) {
      auto u = static_cast<unsigned char>(c);
      return (u < 0x20 && u != '\t') || u == 0x7f;
    });
  };
  auto incomplete = [&] {
    error = raw.size() >= kMaxHead ? "answer head over 64 KiB" : "truncated answer (no end of head)";
    return false;
  };

  std::string_view line;
  if (!next_line(line)) return incomplete();
  // "HTTP/1.1 200 OK": version, one space, three digits, then nothing or a space + reason.
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || (line[7] != '0' && line[7] != '1') ||
      line[8] != ' ' || !std::isdigit(static_cast<unsigned char>(line[9])) ||
      !std::isdigit(static_cast<unsigned char>(line[10])) ||
      !std::isdigit(static_cast<unsigned char>(line[11])) || (line.size() > 12 && line[12] != ' ') ||
      bad_bytes(line)) {
    error = "not an HTTP/1.x answer: " + l4lb::quoted(printable(line.substr(0, 40)));
    return false;
  }
  int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (status < 200 || status > 599) {
    error = "unexpected status " + std::to_string(status);
    return false;
  }

  Response r;
  r.status = status;
  bool have_length = false;
  uint64_t length = 0;
  while (true) {
    if (!next_line(line)) return incomplete();
    if (line.empty()) break;
    size_t colon = line.find(':');
    std::string_view name = colon == std::string_view::npos ? line : line.substr(0, colon);
    if (colon == std::string_view::npos || name.empty() || bad_bytes(line) ||
        !std::all_of(name.begin(), name.end(),
                     [](char c) { return is_tchar(static_cast<unsigned char>(c)); })) {
      error = "bad header line " + l4lb::quoted(printable(line.substr(0, 40)));
      return false;
    }
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (iequals(name, "Content-Length")) {
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(),
                       [](char c) { return c >= '0' && c <= '9'; })) {
        error = "bad Content-Length " + l4lb::quoted(printable(value));
        return false;
      }
      uint64_t n = std::stoull(std::string(value));
      if (have_length && n != length) {
        error = "conflicting Content-Length headers";
        return false;
      }
      have_length = true;
      length = n;
    } else if (iequals(name, "Transfer-Encoding")) {
      error = "Transfer-Encoding in the answer (not supported)";
      return false;
    } else if (iequals(name, "Content-Type")) {
      r.content_type = std::string(value);
    }
  }
  std::string_view body = raw.substr(pos);
  if (have_length && body.size() < length) {
    error = "truncated answer: " + std::to_string(body.size()) + " of " + std::to_string(length) +
            " body bytes";
    return false;
  }
  if (have_length && body.size() > length) {
    error = "answer longer than its Content-Length";
    return false;
  }
  r.body = std::string(body);
  out = std::move(r);
  return true;
}

std::string error_message(const Response& r) {
  std::string msg;
  json j = parse_json(r.body);
  const json& e = member(j, "error");
  if (e.is_string()) {
    msg = e.get<std::string>();
  } else {
    std::string_view b = r.body;
    b = b.substr(0, b.find('\n'));
    while (!b.empty() && (b.back() == '\r' || b.back() == ' ' || b.back() == '\t')) b.remove_suffix(1);
    while (!b.empty() && (b.front() == ' ' || b.front() == '\t')) b.remove_prefix(1);
    msg = std::string(b);
  }
  if (msg.empty()) msg = "HTTP " + std::to_string(r.status);
  return printable(utf8_prefix(msg, kMaxMessage));
}

// ------------------------------------------------------------------ status table

std::string align_columns(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (row.size() > width.size()) width.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (width[c] == 0) continue;  // empty in every row: no column at all
      line += row[c];
      line.append(width[c] - row[c].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

bool format_status(std::string_view stats_json, std::string& out, std::string& error) {
  json j = parse_json(stats_json);
  if (j.is_discarded() || !j.is_object()) {
    error = "/stats is not a JSON object";
    return false;
  }
  const json& services = member(j, "services");
  if (!services.is_array()) {
    error = "/stats has no \"services\" list";
    return false;
  }
  std::vector<std::vector<std::string>> rows;
  for (const json& s : services) {
    const json& backends = member(s, "backends");
    if (!backends.is_array()) continue;
    std::string name = cell(member(s, "name"));
    for (const json& b : backends) {
      const json& weight = member(b, "weight");
      const json& configured = member(b, "configured_weight");
      std::vector<std::string> row{name, cell(member(b, "address")), cell(member(b, "state")),
                                   weight.is_number() ? weight.dump() : "0",
                                   cell(member(b, "active_connections"))};
      // The extras: configured=, override=, last_check= (empty cells: nothing to say).
      row.push_back(configured.is_number() && weight.is_number() && configured != weight
                        ? "configured=" + configured.dump()
                        : "");
      std::string ov;
      const json& o = member(b, "override");
      for (const char* key : {"state", "weight"}) {
        const json& v = member(o, key);
        if (v.is_null()) continue;
        ov += (ov.empty() ? "" : ",") + std::string(key) + ":" + cell(v, "?");
      }
      row.push_back(ov.empty() ? "" : "override=" + ov);
      row.push_back("last_check=" + cell(member(b, "last_check")));
      rows.push_back(std::move(row));
    }
  }
  out = align_columns(rows);
  return true;
}

// ------------------------------------------------------------------ outcome

Outcome interpret(const Command& cmd, const Response& r) {
  Outcome o;
  if (r.status == 401 || r.status == 403) {
    o.exit_code = kExitUnreachable;
    o.err = "may not write: " + error_message(r) +
            (r.status == 401 ? " (401: the token in token_file is missing or not l4lb's)"
                             : " (403: l4lb has no token_file; writes over TCP are refused)");
    return o;
  }
  if (r.status < 200 || r.status > 299) {
    o.exit_code = kExitAnswerError;
    o.err = error_message(r);
    return o;
  }
  if (cmd.verb == Verb::Status) {
    std::string why;
    if (!format_status(r.body, o.out, why)) {
      o.exit_code = kExitAnswerError;
      o.err = "unexpected answer to GET /stats: " + why;
    }
    return o;
  }
  json j = parse_json(r.body);
  std::string what = printable(cmd.service, true) + " " + printable(cmd.backend, true) + ": ";
  switch (cmd.verb) {
    case Verb::State: {
      const json& v = member(j, "admin_state");
      what += "state " + (v.is_string() ? cell(v) : cmd.value);
      break;
    }
    case Verb::Weight: {
      const json& v = member(j, "weight");
      what += "weight " + (v.is_number() ? v.dump() : cmd.value);
      break;
    }
    case Verb::Close: {
      const json& v = member(j, "closed");
      what += "closed" + (v.is_number() ? " " + v.dump() : std::string());
      break;
    }
    case Verb::Status: break;
  }
  o.out = what + "\n";
  return o;
}

// ------------------------------------------------------------------ I/O

namespace {

// Waits for EVENTS on FD until DEADLINE: 1 ready, 0 timed out, -1 error (errno).
int wait_for(int fd, short events, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return 0;
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count() + 1, 1 << 30)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n;
    return 1;  // readable/writable, or POLLERR/POLLHUP: the next call says which
  }
}

std::string sys_error(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

}  // namespace

bool exchange(const Target& target, std::string_view request, std::string& answer,
              std::string& error, std::chrono::milliseconds timeout, size_t max) {
  const auto deadline = Clock::now() + timeout;
  const std::string timed_out = "timed out after " + format_duration(timeout);
  UniqueFd fd;

  if (target.is_unix) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (target.unix_path.size() >= sizeof(sun.sun_path)) {
      error = "unix socket path too long";
      return false;
    }
    std::memcpy(sun.sun_path, target.unix_path.c_str(), target.unix_path.size() + 1);
    fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
      error = sys_error("socket", errno);
      return false;
    }
    // A unix connect completes at once or fails; EAGAIN (backlog full) is retried.
    while (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) {
        error = sys_error("connect", errno);
        return false;
      }
      if (Clock::now() >= deadline) {
        error = timed_out;
        return false;
      }
      ::poll(nullptr, 0, 10);
    }
  } else {
    Address addr = target.tcp;
    if (addr.is_wildcard()) {  // 0.0.0.0 / [::]: this host, through its loopback
      if (addr.family() == AF_INET6) {
        reinterpret_cast<sockaddr_in6*>(&addr.storage)->sin6_addr = in6addr_loopback;
      } else {
        reinterpret_cast<sockaddr_in*>(&addr.storage)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      }
    }
    fd.reset(::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
      error = sys_error("socket", errno);
      return false;
    }
    int rc;
    do rc = ::connect(fd.get(), addr.sa(), addr.length);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      if (errno != EINPROGRESS) {
        error = sys_error("connect", errno);
        return false;
      }
      int w = wait_for(fd.get(), POLLOUT, deadline);
      if (w <= 0) {
        error = w == 0 ? timed_out : sys_error("poll", errno);
        return false;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err != 0) {
        error = sys_error("connect", err);
        return false;
      }
    }
  }

  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int w = wait_for(fd.get(), POLLOUT, deadline);
      if (w <= 0) {
        error = w == 0 ? timed_out : sys_error("poll", errno);
        return false;
      }
      continue;
    }
    // The peer may have answered (e.g. 401) and closed before taking it all: read on.
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) break;
    error = sys_error("send", errno);
    return false;
  }

  std::string got;
  char buf[64 * 1024];
  while (true) {
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      if (got.size() + static_cast<size_t>(n) > max) {
        error = "answer over " + std::to_string(max >> 20) + " MiB";
        return false;
      }
      got.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int w = wait_for(fd.get(), POLLIN, deadline);
      if (w <= 0) {
        error = w == 0 ? timed_out : sys_error("poll", errno);
        return false;
      }
      continue;
    }
    // A reset after the answer (l4lb closed with bytes of ours unread): the answer's own
    // length tells whether it is complete.
    if (errno == ECONNRESET && !got.empty()) break;
    error = sys_error("recv", errno);
    return false;
  }
  answer = std::move(got);
  return true;
}

// ------------------------------------------------------------------ run

int run_ctl(int argc, char** argv) {
  std::vector<std::string> args(argv + std::min(argc, 1), argv + argc);
  Command cmd;
  std::string error;
  switch (parse_args(args, cmd, error)) {
    case ParseOutcome::Help:
      std::fputs(usage_text().c_str(), stdout);
      return kExitOk;
    case ParseOutcome::Usage:
      std::fprintf(stderr,
                   "l4lb ctl: %s\n"
                   "Usage: l4lb ctl [-c FILE] status|drain|ready|maint|weight|close ... "
                   "(l4lb ctl --help for more)\n",
                   error.c_str());
      return kExitUsage;
    case ParseOutcome::Ok: break;
  }

  ConfigResult loaded = load_config(cmd.config_path);
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.c_str());
    std::fprintf(stderr, "l4lb ctl: %s is invalid: cannot tell where l4lb's admin listener is\n",
                 cmd.config_path.c_str());
    return kExitUnreachable;
  }
  const auto& admin = loaded.config->global.admin;
  if (!admin) {
    std::fprintf(stderr, "l4lb ctl: %s has no admin listener (global.admin.listen)\n",
                 cmd.config_path.c_str());
    return kExitUnreachable;
  }
  Target target;
  target.is_unix = admin->is_unix();
  target.unix_path = admin->unix_path;
  target.tcp = admin->listen;
  target.display = target.is_unix ? "unix:" + admin->unix_path : admin->listen.to_string();

  Request req = build_request(cmd);
  // Over TCP a write carries the token; on a unix socket its file mode is the guard.
  std::string_view token = !target.is_unix && req.write ? std::string_view(admin->token) : "";
  std::string raw;
  if (!exchange(target, serialize_request(req, token), raw, error)) {
    std::fprintf(stderr, "l4lb ctl: cannot reach l4lb at %s: %s\n", target.display.c_str(),
                 error.c_str());
    return kExitUnreachable;
  }
  Response resp;
  if (!parse_response(raw, resp, error)) {
    std::fprintf(stderr, "l4lb ctl: bad answer from %s: %s\n", target.display.c_str(),
                 error.c_str());
    return kExitUnreachable;
  }
  Outcome o = interpret(cmd, resp);
  std::fputs(o.out.c_str(), stdout);
  std::fflush(stdout);
  if (!o.err.empty()) std::fprintf(stderr, "l4lb ctl: %s\n", o.err.c_str());
  return o.exit_code;
}

}  // namespace l4lb::ctl
