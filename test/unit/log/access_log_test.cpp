// The access log: both line formats field by field, and the buffered writer (at least
// once a second, everything at the end, reopen, the 1 MiB bound, failed writes, threads).
#include "l4lb/log/access_log.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace l4lb;
namespace fs = std::filesystem;

namespace {

constexpr double kNewYear2026 = 1767225600.0;  // 2026-01-01T00:00:00Z

AccessRecord sample() {
  AccessRecord r;
  r.end_time = kNewYear2026 + 0.25;
  r.service = "web";
  r.client = "127.0.0.1:5000";
  r.listen = "0.0.0.0:8443";
  r.sni = "app.example.com";
  r.backend = "127.0.0.1:8002";
  r.connect_us = 1500;
  r.duration_us = 2'000'000;
  r.bytes_in = 517;
  r.bytes_out = 4096;
  r.retries = 1;
  r.end = AccessEnd::ClientClosed;
  return r;
}

std::string logfmt(const AccessRecord& r) {
  std::string s;
  format_logfmt(r, s);
  return s;
}

std::string json(const AccessRecord& r) {
  std::string s;
  format_json(r, s);
  return s;
}

// A fresh directory under $TMPDIR (or /tmp), removed with what is in it.
struct TempDir {
  fs::path path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/l4lb-access-log-test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line + "\n");
  return lines;
}

std::unique_ptr<AccessLog> open_log(const std::string& path, size_t workers = 1,
                                    AccessLogFormat format = AccessLogFormat::Logfmt) {
  std::string error;
  auto log = AccessLog::open(path, format, workers, error);
  REQUIRE_MESSAGE(log, error);
  return log;
}

}  // namespace

TEST_CASE("access log ends are spelled as INTERFACE.md lists them") {
  CHECK(to_string(AccessEnd::ClientClosed) == "client_closed");
  CHECK(to_string(AccessEnd::BackendClosed) == "backend_closed");
  CHECK(to_string(AccessEnd::ClientReset) == "client_reset");
  CHECK(to_string(AccessEnd::BackendReset) == "backend_reset");
  CHECK(to_string(AccessEnd::IdleTimeout) == "idle_timeout");
  CHECK(to_string(AccessEnd::ConnectFailed) == "connect_failed");
  CHECK(to_string(AccessEnd::NoBackend) == "no_backend");
  CHECK(to_string(AccessEnd::Rejected) == "rejected");
  CHECK(to_string(AccessEnd::Unrouted) == "unrouted");
  CHECK(to_string(AccessEnd::DrainTimeout) == "drain_timeout");
  CHECK(to_string(AccessEnd::Stopped) == "stopped");
  CHECK(to_string(AccessEnd::AdminClosed) == "admin_closed");
  CHECK(to_string(AccessLogFormat::Logfmt) == "logfmt");
  CHECK(to_string(AccessLogFormat::Json) == "json");
}

TEST_CASE("an access log record in logfmt has every field in the contract's order") {
  CHECK(logfmt(sample()) ==
        "ts=2026-01-01T00:00:00.250Z service=web client=127.0.0.1:5000 listen=0.0.0.0:8443 "
        "sni=app.example.com backend=127.0.0.1:8002 connect_ms=1.5 duration_ms=2000 bytes_in=517 "
        "bytes_out=4096 retries=1 end=client_closed\n");
}

TEST_CASE("access log logfmt values are bare when safe, quoted when not, and empty ones are bare") {
  AccessRecord r;
  r.end_time = kNewYear2026;
  r.client = "[::1]:5000";
  r.listen = "[::]:443";
  r.service = "my web";
  r.sni = "a=b\"c\\";
  r.end = AccessEnd::NoBackend;
  CHECK(logfmt(r) ==
        "ts=2026-01-01T00:00:00.000Z service=\"my web\" client=[::1]:5000 listen=[::]:443 "
        "sni=\"a=b\\\"c\\\\\" backend= connect_ms=0 duration_ms=0 bytes_in=0 bytes_out=0 "
        "retries=0 end=no_backend\n");
}

TEST_CASE("access log durations are milliseconds with up to three decimals") {
  AccessRecord r = sample();
  auto both = [&](uint64_t us, const std::string& shown) {
    r.connect_us = us;
    r.duration_us = us;
    std::string l = logfmt(r), j = json(r);
    CHECK(l.find(" connect_ms=" + shown + " duration_ms=" + shown + " ") != std::string::npos);
    CHECK(j.find("\"connect_ms\":" + shown + ",\"duration_ms\":" + shown + ",") != std::string::npos);
  };
  both(0, "0");
  both(1, "0.001");
  both(123, "0.123");
  both(1500, "1.5");
  both(2000, "2");
  both(12'345'678, "12345.678");
  both(1'000'010, "1000.01");
}

TEST_CASE("access log ts is the end time in RFC 3339 UTC to the nearest millisecond") {
  AccessRecord r = sample();
  auto ts = [&](double t) {
    r.end_time = t;
    std::string l = logfmt(r);
    return l.substr(3, l.find(' ') - 3);
  };
  CHECK(ts(kNewYear2026) == "2026-01-01T00:00:00.000Z");
  CHECK(ts(kNewYear2026 + 0.123) == "2026-01-01T00:00:00.123Z");
  CHECK(ts(kNewYear2026 + 0.9996) == "2026-01-01T00:00:01.000Z");
  CHECK(ts(kNewYear2026 - 0.001) == "2025-12-31T23:59:59.999Z");
  CHECK(ts(0) == "1970-01-01T00:00:00.000Z");
  CHECK(ts(-5) == "1970-01-01T00:00:00.000Z");
}

TEST_CASE("an access log record has a reason only when it was rejected or unrouted") {
  AccessRecord r = sample();
  r.reason = "max_connections";
  for (AccessEnd e : {AccessEnd::ClientClosed, AccessEnd::BackendClosed, AccessEnd::ClientReset,
                      AccessEnd::BackendReset, AccessEnd::IdleTimeout, AccessEnd::ConnectFailed,
                      AccessEnd::NoBackend, AccessEnd::DrainTimeout, AccessEnd::Stopped,
                      AccessEnd::AdminClosed}) {
    r.end = e;
    CHECK(logfmt(r).find("reason") == std::string::npos);
    CHECK(json(r).find("reason") == std::string::npos);
  }
  r.end = AccessEnd::Rejected;
  CHECK(logfmt(r).ends_with(" end=rejected reason=max_connections\n"));
  CHECK(json(r).ends_with(",\"end\":\"rejected\",\"reason\":\"max_connections\"}\n"));
  r.end = AccessEnd::Unrouted;
  r.service.clear();
  r.backend.clear();
  r.reason = "no sni match";
  CHECK(logfmt(r).ends_with(" end=unrouted reason=\"no sni match\"\n"));
  CHECK(logfmt(r).find(" service= client=") != std::string::npos);
  CHECK(logfmt(r).find(" backend= connect_ms=") != std::string::npos);
  CHECK(json(r).ends_with(",\"end\":\"unrouted\",\"reason\":\"no sni match\"}\n"));
}

TEST_CASE("an access log record in json has the same keys in order, counts as numbers, the rest strings") {
  AccessRecord r = sample();
  r.backend.clear();
  CHECK(json(r) ==
        "{\"ts\":\"2026-01-01T00:00:00.250Z\",\"service\":\"web\",\"client\":\"127.0.0.1:5000\","
        "\"listen\":\"0.0.0.0:8443\",\"sni\":\"app.example.com\",\"backend\":\"\",\"connect_ms\":1.5,"
        "\"duration_ms\":2000,\"bytes_in\":517,\"bytes_out\":4096,\"retries\":1,"
        "\"end\":\"client_closed\"}\n");

  r.end = AccessEnd::Rejected;
  r.reason = "rate";
  r.bytes_in = 18446744073709551615u;
  auto j = nlohmann::ordered_json::parse(json(r));
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  CHECK(keys == std::vector<std::string>{"ts", "service", "client", "listen", "sni", "backend",
                                         "connect_ms", "duration_ms", "bytes_in", "bytes_out",
                                         "retries", "end", "reason"});
  for (const char* k : {"connect_ms", "duration_ms", "bytes_in", "bytes_out", "retries"})
    CHECK_MESSAGE(j[k].is_number(), k);
  for (const char* k : {"ts", "service", "client", "listen", "sni", "backend", "end", "reason"})
    CHECK_MESSAGE(j[k].is_string(), k);
  CHECK(j["bytes_in"].get<uint64_t>() == 18446744073709551615u);
  CHECK(j["connect_ms"].get<double>() == 1.5);
}

TEST_CASE("invalid UTF-8 and control bytes in an access log SNI still make one valid line") {
  AccessRecord r = sample();
  // a stray continuation byte, a cut 3-byte sequence, an overlong '/', a surrogate, valid é,
  // a newline, a NUL and a DEL
  static const char raw[] = "a\x80" "b\xE2\x82" "c\xC0\xAF" "d\xED\xA0\x80" "\xC3\xA9" "\n\0\x7f";
  r.sni = std::string(raw, sizeof raw - 1);
  std::string j = json(r);
  auto parsed = nlohmann::json::parse(j);  // throws on invalid UTF-8
  static const char fixed[] = "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD"
                              "d\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "\xC3\xA9" "\n\0\x7f";
  CHECK(parsed["sni"].get<std::string>() == std::string(fixed, sizeof fixed - 1));
  CHECK(j.find('\n') == j.size() - 1);

  std::string l = logfmt(r);
  CHECK(l.find('\n') == l.size() - 1);
  CHECK(l.find(" sni=\"a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD" "c") != std::string::npos);
  CHECK(l.find("\xC3\xA9\\n\\x00\\x7f\" backend=") != std::string::npos);
  // Every other string field gets the same treatment.
  r.sni.clear();
  r.service = "\xFF";
  CHECK(nlohmann::json::parse(json(r))["service"] == "\xEF\xBF\xBD");
  CHECK(logfmt(r).find(" service=\"\xEF\xBF\xBD\" ") != std::string::npos);
}

TEST_CASE("an access log that cannot be opened says why") {
  std::string error;
  auto log = AccessLog::open("/nonexistent-l4lb-dir/access.log", AccessLogFormat::Logfmt, 2, error);
  CHECK_FALSE(log);
  CHECK(error == "open access log /nonexistent-l4lb-dir/access.log: no such file or directory");
}

TEST_CASE("the access log creates its file with mode 0640 at most and appends to what is there") {
  TempDir dir;
  std::string path = dir / "access.log";
  { std::ofstream(path) << "earlier\n"; }
  ::chmod(path.c_str(), 0640);
  { auto log = open_log(path); log->append(0, sample()); }
  CHECK(slurp(path) == "earlier\n" + logfmt(sample()));

  std::string fresh = dir / "fresh.log";
  { auto log = open_log(fresh); }
  struct stat st {};
  REQUIRE(::stat(fresh.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777 & ~0640) == 0);
}

TEST_CASE("the access log writes every buffered record when it stops") {
  TempDir dir;
  std::string path = dir / "access.log";
  auto log = open_log(path, 2, AccessLogFormat::Json);
  CHECK(log->buffer_limit() == AccessLog::kMaxBufferedBytes / 3);
  AccessRecord r = sample();
  for (int i = 0; i < 1000; ++i) {
    r.bytes_in = static_cast<uint64_t>(i);
    log->append(static_cast<size_t>(i % 2), r);
  }
  log->flush_and_stop();
  auto lines = lines_of(slurp(path));
  CHECK(lines.size() == 1000);
  CHECK(log->dropped() == 0);
  // Appended after the stop: written by the destructor.
  log->append(0, sample());
  log.reset();
  CHECK(lines_of(slurp(path)).size() == 1001);
}

TEST_CASE("the access log writes buffered records within a second") {
  TempDir dir;
  std::string path = dir / "access.log";
  auto log = open_log(path, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // any phase of the writer's second
  auto start = std::chrono::steady_clock::now();
  log->append(0, sample());
  auto waited = std::chrono::milliseconds(0);
  while (slurp(path).empty() && waited < std::chrono::milliseconds(2000)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  }
  CHECK(slurp(path) == logfmt(sample()));
  CHECK(waited <= std::chrono::milliseconds(1250));  // 1 s, and time to be scheduled
}

TEST_CASE("the access log reopens its path at once and later records go to the new file") {
  TempDir dir;
  std::string path = dir / "access.log", rotated = dir / "access.log.1";
  auto log = open_log(path);
  AccessRecord a = sample(), b = sample();
  a.client = "10.0.0.1:1";
  b.client = "10.0.0.2:2";
  log->append(0, a);
  REQUIRE(::rename(path.c_str(), rotated.c_str()) == 0);
  std::string error;
  REQUIRE(log->reopen(error));
  CHECK(fs::exists(path));  // created at once, before any record
  log->append(0, b);
  log.reset();
  std::string now = slurp(path), old = slurp(rotated);
  CHECK(now.ends_with(logfmt(b)));
  CHECK(old.find(logfmt(b)) == std::string::npos);
  // A was buffered across the reopen: it is in exactly one of the two files.
  CHECK((now + old).size() == logfmt(a).size() + logfmt(b).size());
  CHECK((now.find(logfmt(a)) != std::string::npos) != (old.find(logfmt(a)) != std::string::npos));
}

TEST_CASE("a failed access log reopen keeps the old file in use") {
  TempDir dir;
  fs::create_directory(dir.path / "logs");
  std::string path = dir / "logs/access.log";
  auto log = open_log(path);
  fs::rename(dir.path / "logs", dir.path / "moved");
  std::string error;
  CHECK_FALSE(log->reopen(error));
  CHECK(error == "open access log " + path + ": no such file or directory");
  log->append(0, sample());
  log.reset();
  CHECK(slurp(dir / "moved/access.log") == logfmt(sample()));
}

TEST_CASE("access log on stderr opens and ignores reopen") {
  std::string error;
  auto log = AccessLog::open("stderr", AccessLogFormat::Logfmt, 1, error);
  REQUIRE(log);
  CHECK(log->reopen(error));
}

TEST_CASE("concurrent access log appends from several workers lose or tear no line") {
  TempDir dir;
  std::string path = dir / "access.log";
  constexpr size_t kWorkers = 4, kEach = 3000;
  auto log = open_log(path, kWorkers);
  std::vector<std::thread> threads;
  for (size_t w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&log, w] {
      AccessRecord r = sample();
      for (size_t i = 0; i < kEach; ++i) {
        r.client = "10.0.0." + std::to_string(w) + ":" + std::to_string(i);
        log->append(w, r);
        if (i % 256 == 0) std::this_thread::yield();
      }
    });
  }
  for (auto& t : threads) t.join();
  log->flush_and_stop();
  std::multiset<std::string> expected;
  for (size_t w = 0; w < kWorkers; ++w) {
    AccessRecord r = sample();
    for (size_t i = 0; i < kEach; ++i) {
      r.client = "10.0.0." + std::to_string(w) + ":" + std::to_string(i);
      expected.insert(logfmt(r));
    }
  }
  auto lines = lines_of(slurp(path));
  size_t intact = 0;
  for (const auto& l : lines) intact += expected.count(l) == 1 ? 1 : 0;
  CHECK(intact == lines.size());                                   // none torn or repeated
  CHECK(std::set<std::string>(lines.begin(), lines.end()).size() == lines.size());
  CHECK(lines.size() + log->dropped() == kWorkers * kEach);        // none lost uncounted
  CHECK(lines.size() > 0);
}

TEST_CASE("the access log buffers at most 1 MiB, and a FIFO nobody reads drops and counts, never blocks") {
  TempDir dir;
  std::string fifo = dir / "stuck";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  int rd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  REQUIRE(rd >= 0);
  int pipe_size = ::fcntl(rd, F_SETPIPE_SZ, 4096);
  if (pipe_size < 0) pipe_size = ::fcntl(rd, F_GETPIPE_SZ);
  REQUIRE(pipe_size > 0);

  constexpr size_t kWorkers = 2;
  auto log = open_log(fifo, kWorkers);  // nobody reads: writes fail (EAGAIN, opened non-blocking)
  const size_t line = logfmt(sample()).size();
  const size_t n = (3u << 20) / line;  // 3 MiB of records, appended faster than written
  for (size_t i = 0; i < n; ++i) log->append(i % kWorkers, sample());
  CHECK(log->dropped() > 0);
  CHECK((n - log->dropped()) * line <= AccessLog::kMaxBufferedBytes + static_cast<size_t>(pipe_size));
  // The stop does not wait on the reader that never comes: what cannot be written is counted.
  log->flush_and_stop();
  std::string got;
  char buf[65536];
  for (ssize_t k; (k = ::read(rd, buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(k));
  ::close(rd);
  const size_t written = lines_of(got).size();
  // Every record written or counted; a line cut by a failed write is in both (at most one).
  CHECK(written + log->dropped() >= n);
  CHECK(written + log->dropped() <= n + 1);
  CHECK(got.size() <= static_cast<size_t>(pipe_size));
  CHECK(log->write_errors() >= 1);
}

TEST_CASE("a failed access log write drops and counts its records and the log carries on") {
  auto log = open_log("/dev/full", 2);  // every write: ENOSPC
  log->append(0, sample());
  log->append(1, sample());
  log->append(1, sample());
  log->flush_and_stop();
  CHECK(log->dropped() == 3);
  CHECK(log->write_errors() >= 1);
  log->append(0, sample());
  log->flush_and_stop();
  CHECK(log->dropped() == 4);
}
