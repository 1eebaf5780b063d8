// The state file: its JSON (stable out, strict in) and the atomic write / bounded read.
#include "l4lb/control/state_file.hpp"
#include "l4lb/base/file.hpp"

#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <string>
#include <vector>

using namespace l4lb::control;
using l4lb::read_file;
using l4lb::write_atomically;

namespace {

Overrides sample() {
  Overrides o;
  o[{"web", "127.0.0.1:8002"}] = Override{AdminState::Maint, std::nullopt};
  o[{"web", "127.0.0.1:8001"}] = Override{AdminState::Drain, 5};
  o[{"db", "[::1]:5432"}] = Override{std::nullopt, 1000};
  o[{"api", "10.0.0.1:80"}] = Override{AdminState::Ready, 1};
  return o;
}

// A fresh directory under $TMPDIR (or /tmp), removed with what is in it.
struct TempDir {
  std::string path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/l4lb-state-test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { remove_all(path); }
  static void remove_all(const std::string& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
      for (const auto& e : list(p)) remove_all(p + "/" + e);
      ::rmdir(p.c_str());
    } else {
      ::unlink(p.c_str());
    }
  }
  static std::set<std::string> list(const std::string& dir) {
    std::set<std::string> names;
    if (DIR* d = ::opendir(dir.c_str())) {
      while (struct dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.insert(n);
      }
      ::closedir(d);
    }
    return names;
  }
  std::set<std::string> names() const { return list(path); }
};

std::string slurp(const std::string& path) {
  std::string out, err;
  REQUIRE(read_file(path, out, err));
  return out;
}

void put_file(const std::string& path, std::string_view text, mode_t mode = 0644) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fd);
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// FROM_JSON rejects TEXT, leaves OUT as it was, and says something containing NEEDLE.
void check_rejected(const std::string& text, std::string_view needle) {
  INFO("text: " << text);
  Overrides out = sample();
  std::string err;
  CHECK_FALSE(from_json(text, out, err));
  CHECK(out == sample());
  INFO("error: " << err);
  CHECK(err.find(needle) != std::string::npos);
}

std::string one_entry(std::string_view fields) {
  return R"({"version":1,"overrides":[{)" + std::string(fields) + "}]}";
}

}  // namespace

// ------------------------------------------------------------------ JSON

TEST_CASE("state file: to_json is stable, sorted, versioned, one entry a line") {
  std::string text = to_json(sample());
  CHECK(text ==
        "{\n"
        "  \"version\": 1,\n"
        "  \"overrides\": [\n"
        "    {\"service\":\"api\",\"backend\":\"10.0.0.1:80\",\"state\":\"ready\",\"weight\":1},\n"
        "    {\"service\":\"db\",\"backend\":\"[::1]:5432\",\"state\":null,\"weight\":1000},\n"
        "    {\"service\":\"web\",\"backend\":\"127.0.0.1:8001\",\"state\":\"drain\",\"weight\":5},\n"
        "    {\"service\":\"web\",\"backend\":\"127.0.0.1:8002\",\"state\":\"maint\",\"weight\":null}\n"
        "  ]\n"
        "}\n");
  // Insertion order does not matter.
  Overrides all = sample(), reversed;
  for (auto it = all.rbegin(); it != all.rend(); ++it) reversed.insert(*it);
  CHECK(to_json(reversed) == text);
  CHECK(to_json({}) == "{\n  \"version\": 1,\n  \"overrides\": []\n}\n");
}

TEST_CASE("state file: round trip") {
  Overrides in = sample();
  Overrides out;
  std::string err;
  REQUIRE(from_json(to_json(in), out, err));
  CHECK(out == in);
  REQUIRE(from_json(to_json({}), out, err));
  CHECK(out.empty());
  // Names that need escaping survive too.
  Overrides odd;
  odd[{"we\"b\\", "h\xc3\xa9:1"}] = Override{AdminState::Drain, std::nullopt};
  odd[{"a\nb", "\t"}] = Override{std::nullopt, 3};
  REQUIRE(from_json(to_json(odd), out, err));
  CHECK(out == odd);
}

TEST_CASE("state file: to_json leaves out what the format cannot hold") {
  Overrides o;
  o[{"web", "a:1"}] = Override{};                          // overrides nothing
  o[{"", "a:1"}] = Override{AdminState::Drain, {}};        // no service
  o[{"web", ""}] = Override{AdminState::Drain, {}};        // no backend
  o[{"bad\xff", "a:1"}] = Override{AdminState::Drain, {}};  // not UTF-8
  o[{"web", "b:1"}] = Override{std::nullopt, 0};           // weight out of range: nothing left
  o[{"web", "c:1"}] = Override{AdminState::Maint, 1001};   // weight dropped, state kept
  Overrides out;
  std::string err;
  REQUIRE(from_json(to_json(o), out, err));
  Overrides want;
  want[{"web", "c:1"}] = Override{AdminState::Maint, std::nullopt};
  CHECK(out == want);
}

TEST_CASE("state file: optional properties may be absent or null") {
  Overrides out;
  std::string err;
  REQUIRE(from_json(one_entry(R"("service":"web","backend":"a:1","state":"drain")"), out, err));
  CHECK(out.at({"web", "a:1"}) == Override{AdminState::Drain, std::nullopt});
  REQUIRE(from_json(one_entry(R"("weight":7,"backend":"a:1","service":"web","state":null)"), out, err));
  CHECK(out.at({"web", "a:1"}) == Override{std::nullopt, 7});
  REQUIRE(from_json(" \n{\"overrides\":[],\"version\":1}\n\n", out, err));
  CHECK(out.empty());
}

TEST_CASE("state file: corrupt JSON is rejected, never thrown") {
  std::string good = to_json(sample());
  for (const char* text : {"", " ", "{", "}", "nul", "null", "[]", "\"x\"", "1", "{}x", "{} {}",
                           "{\"version\":1,\"overrides\":[]", "{\"version\":1,\"overrides\":[],}",
                           "{\"version\":1,'overrides':[]}", "{\"version\":01,\"overrides\":[]}",
                           "{\"version\":1,\"overrides\":[]} // c", "\xef\xbb\xbf\xff"}) {
    INFO(text);
    Overrides out = sample();
    std::string err;
    CHECK_FALSE(from_json(text, out, err));
    CHECK(out == sample());
    CHECK_FALSE(err.empty());
  }
  // Every truncation of a good file.
  for (size_t n = 0; n + 1 < good.size(); ++n) {
    if (good.substr(n).find_first_not_of(" \n") == std::string::npos) break;
    Overrides out;
    std::string err;
    INFO(n);
    CHECK_FALSE(from_json(std::string_view(good).substr(0, n), out, err));
  }
  check_rejected(R"({"version":1,"overrides":[{"service":"w\xff","backend":"a","state":"drain"}]})",
                 "invalid JSON");
  check_rejected("{\"version\":1,\"overrides\":[],\"version\":1}", "duplicate key \"version\"");
  check_rejected(one_entry(R"("service":"web","backend":"a:1","state":"drain","state":"maint")"),
                 "duplicate key \"state\"");
}

TEST_CASE("state file: wrong types are rejected") {
  check_rejected("[]", "the top level must be an object");
  check_rejected(R"({"version":"1","overrides":[]})", "version: must be an integer");
  check_rejected(R"({"version":1.0,"overrides":[]})", "version: must be an integer");
  check_rejected(R"({"version":true,"overrides":[]})", "version: must be an integer");
  check_rejected(R"({"version":null,"overrides":[]})", "version: must be an integer");
  check_rejected(R"({"version":1,"overrides":{}})", "overrides: must be an array");
  check_rejected(R"({"version":1,"overrides":null})", "overrides: must be an array");
  check_rejected(R"({"version":1,"overrides":["web"]})", "overrides[0]: must be an object");
  check_rejected(one_entry(R"("service":5,"backend":"a:1","state":"drain")"), "overrides[0].service");
  check_rejected(one_entry(R"("service":"web","backend":null,"state":"drain")"), "overrides[0].backend");
  check_rejected(one_entry(R"("service":"","backend":"a:1","state":"drain")"), "non-empty string");
  check_rejected(one_entry(R"("service":"web","backend":"a:1","state":1)"), "overrides[0].state");
  check_rejected(one_entry(R"("service":"web","backend":"a:1","state":true)"), "overrides[0].state");
  check_rejected(one_entry(R"("service":"web","backend":"a:1","state":["drain"])"), "nested deeper");
  check_rejected(one_entry(R"("service":"web","backend":"a:1","weight":"5")"), "overrides[0].weight");
  check_rejected(one_entry(R"("service":"web","backend":"a:1","weight":5.0)"), "overrides[0].weight");
  check_rejected(one_entry(R"("service":"web","backend":"a:1","weight":false)"), "overrides[0].weight");
  check_rejected(R"({"version":1,"overrides":[[[]]]})", "nested deeper");
  check_rejected(std::string(10000, '[') + std::string(10000, ']'), "nested deeper");
}

TEST_CASE("state file: bad states and weights out of range are rejected") {
  for (const char* s : {"\"Drain\"", "\"draining\"", "\"up\"", "\"\"", "\" drain\""}) {
    check_rejected(one_entry(std::string(R"("service":"web","backend":"a:1","state":)") + s),
                   "overrides[0].state: must be \"ready\", \"drain\", \"maint\" or null, got");
  }
  for (const char* w : {"0", "1001", "-1", "-1000", "1e3", "18446744073709551616", "4294967297",
                        "65536001"}) {
    check_rejected(one_entry(std::string(R"("service":"web","backend":"a:1","weight":)") + w),
                   "overrides[0].weight: must be an integer 1..1000 or null, got");
  }
  Overrides out;
  std::string err;
  CHECK(from_json(one_entry(R"("service":"web","backend":"a:1","weight":1)"), out, err));
  CHECK(from_json(one_entry(R"("service":"web","backend":"a:1","weight":1000)"), out, err));
}

TEST_CASE("state file: unknown versions, unknown keys, missing keys") {
  for (const char* v : {"0", "2", "-1", "100000000000000000000"}) {
    INFO(v);
    Overrides out;
    std::string err;
    CHECK_FALSE(from_json(std::string(R"({"version":)") + v + R"(,"overrides":[]})", out, err));
    CHECK((err.find("unsupported version") != std::string::npos ||
           err.find("must be an integer") != std::string::npos));
  }
  check_rejected(R"({"version":2,"overrides":[],"new":1})", "unsupported version 2 (this l4lb reads version 1)");
  check_rejected(R"({"overrides":[]})", "missing \"version\"");
  check_rejected(R"({"version":1})", "missing \"overrides\"");
  check_rejected(R"({"version":1,"overrides":[],"extra":null})", "unknown key \"extra\"");
  check_rejected(one_entry(R"("service":"web","backend":"a:1","state":"drain","note":"x")"),
                 "overrides[0]: unknown key \"note\"");
  check_rejected(one_entry(R"("backend":"a:1","state":"drain")"), "overrides[0]: missing \"service\"");
  check_rejected(one_entry(R"("service":"web","state":"drain")"), "overrides[0]: missing \"backend\"");
}

TEST_CASE("state file: an entry that overrides nothing, or a second entry for a backend") {
  check_rejected(one_entry(R"("service":"web","backend":"a:1")"), "overrides[0]: overrides nothing");
  check_rejected(one_entry(R"("service":"web","backend":"a:1","state":null,"weight":null)"),
                 "overrides nothing");
  check_rejected(R"({"version":1,"overrides":[)"
                 R"({"service":"web","backend":"a:1","state":"drain"},)"
                 R"({"service":"web","backend":"a:2","state":"drain"},)"
                 R"({"service":"web","backend":"a:1","weight":3}]})",
                 "overrides[2]: a second entry for service \"web\" backend \"a:1\"");
  Overrides out;
  std::string err;
  // The same backend address in two services is two backends.
  CHECK(from_json(R"({"version":1,"overrides":[)"
                  R"({"service":"a","backend":"x:1","state":"drain"},)"
                  R"({"service":"b","backend":"x:1","state":"drain"}]})",
                  out, err));
  CHECK(out.size() == 2);
}

TEST_CASE("state file: over 4 MiB is rejected without parsing") {
  std::string big = R"({"version":1,"overrides":[]})" + std::string(kMaxStateFileBytes, ' ');
  check_rejected(big, "over 4194304 bytes");
}

// ------------------------------------------------------------------ files

TEST_CASE("state file: write_atomically writes, replaces, mode 0600, nothing left beside it") {
  TempDir d;
  std::string path = d.path + "/state.json";
  std::string err;
  REQUIRE(write_atomically(path, "first\n", err));
  CHECK(slurp(path) == "first\n");
  CHECK(mode_of(path) == 0600);
  CHECK(d.names() == std::set<std::string>{"state.json"});
  // Over an existing file with other permissions: replaced (a new inode), 0600.
  put_file(path, "old", 0644);
  struct stat before {};
  REQUIRE(::stat(path.c_str(), &before) == 0);
  REQUIRE(write_atomically(path, to_json(sample()), err));
  struct stat after {};
  REQUIRE(::stat(path.c_str(), &after) == 0);
  CHECK(before.st_ino != after.st_ino);
  CHECK(mode_of(path) == 0600);
  Overrides back;
  REQUIRE(from_json(slurp(path), back, err));
  CHECK(back == sample());
  REQUIRE(write_atomically(path, "", err));  // empty content is content
  CHECK(slurp(path).empty());
  for (int i = 0; i < 20; ++i) REQUIRE(write_atomically(path, std::to_string(i), err));
  CHECK(slurp(path) == "19");
  CHECK(d.names() == std::set<std::string>{"state.json"});
  // Under a restrictive umask too.
  mode_t old_mask = ::umask(0277);
  bool ok = write_atomically(path, "masked", err);
  ::umask(old_mask);
  REQUIRE(ok);
  CHECK(mode_of(path) == 0600);
}

TEST_CASE("state file: a directory that does not exist is an error, nothing created") {
  TempDir d;
  std::string err;
  CHECK_FALSE(write_atomically(d.path + "/missing/state.json", "x", err));
  CHECK(err.find("cannot create") != std::string::npos);
  CHECK(err.find("No such file or directory") != std::string::npos);
  CHECK(d.names().empty());
}

TEST_CASE("state file: a target that is a directory is an error, the temporary file removed") {
  TempDir d;
  std::string target = d.path + "/state.json";
  REQUIRE(::mkdir(target.c_str(), 0700) == 0);
  std::string err;
  CHECK_FALSE(write_atomically(target, "x", err));
  CHECK(err.find("cannot rename onto " + target) != std::string::npos);
  CHECK(d.names() == std::set<std::string>{"state.json"});
  // A non-empty directory stays as it was too.
  put_file(target + "/keep", "k");
  CHECK_FALSE(write_atomically(target, "x", err));
  CHECK(d.names() == std::set<std::string>{"state.json"});
  CHECK(TempDir::list(target) == std::set<std::string>{"keep"});
  // A path that names a directory outright.
  CHECK_FALSE(write_atomically(d.path + "/", "x", err));
  CHECK_FALSE(write_atomically(d.path + "/..", "x", err));
  CHECK_FALSE(write_atomically("", "x", err));
  CHECK(d.names() == std::set<std::string>{"state.json"});
}

TEST_CASE("state file: temporary files of a dead writer are removed, a live one's kept") {
  TempDir d;
  std::string path = d.path + "/state.json";
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  int st = 0;
  REQUIRE(::waitpid(child, &st, 0) == child);  // CHILD's pid is now free (reused: kept, harmless)
  std::string dead = ".state.json." + std::to_string(child) + ".0.tmp";
  std::string live = ".state.json." + std::to_string(::getppid()) + ".3.tmp";
  std::string mine = ".state.json." + std::to_string(::getpid()) + ".999999.tmp";
  std::vector<std::string> unrelated = {"other.json", ".other.json.1.0.tmp", ".state.json.x.0.tmp",
                                        ".state.json.12.tmp", "state.json.1.0.tmp"};
  for (const auto& n : {dead, live, mine}) put_file(d.path + "/" + n, "partial");
  for (const auto& n : unrelated) put_file(d.path + "/" + n, "not ours");
  std::string err;
  REQUIRE(write_atomically(path, "v", err));
  std::set<std::string> want(unrelated.begin(), unrelated.end());
  want.insert({"state.json", live, mine});
  CHECK(d.names() == want);
}

TEST_CASE("state file: read_file") {
  TempDir d;
  std::string out = "kept", err;
  bool missing = false;
  CHECK_FALSE(read_file(d.path + "/none.json", out, err, &missing));
  CHECK(missing);
  CHECK(out == "kept");
  CHECK(err.find("No such file or directory") != std::string::npos);
  CHECK_FALSE(read_file(d.path, out, err, &missing));  // a directory
  CHECK_FALSE(missing);
  CHECK(err.find("not a regular file") != std::string::npos);
  std::string fifo = d.path + "/fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_FALSE(read_file(fifo, out, err, &missing));  // returns at once, no writer needed
  CHECK(err.find("not a regular file") != std::string::npos);
  std::string f = d.path + "/f";
  put_file(f, "");
  REQUIRE(read_file(f, out, err, &missing));
  CHECK(out.empty());
  std::string text(100000, 'x');
  put_file(f, text);
  REQUIRE(read_file(f, out, err));
  CHECK(out == text);
  out = "kept";
  CHECK(read_file(f, out, err, nullptr, 100000));
  CHECK_FALSE(read_file(f, out, err, nullptr, 99999));
  CHECK(err.find("over 99999 bytes") != std::string::npos);
  // The default bound: 4 MiB.
  put_file(f, std::string(kMaxStateFileBytes + 1, ' '));
  out = "kept";
  CHECK_FALSE(read_file(f, out, err));
  CHECK(out == "kept");
  put_file(f, std::string(kMaxStateFileBytes, ' '));
  CHECK(read_file(f, out, err));
  CHECK(out.size() == kMaxStateFileBytes);
}

TEST_CASE("state file: the file's values at override time round-trip and are checked") {
  Overrides o;
  Override d{AdminState::Drain, 5, false, 1};
  o[{"web", "127.0.0.1:8001"}] = d;
  o[{"web", "127.0.0.1:8002"}] = Override{std::nullopt, 3, std::nullopt, std::nullopt};
  const std::string text = to_json(o);
  CHECK(text.find(R"("state":"drain","weight":5,"file_drain":false,"file_weight":1})") != std::string::npos);
  Overrides back;
  std::string err;
  REQUIRE(from_json(text, back, err));
  CHECK(back == o);
  // Older files (no file_* keys) still read; bad values are rejected with their place.
  REQUIRE(from_json(R"({"version":1,"overrides":[{"service":"a","backend":"b:1","state":"maint","weight":null}]})", back, err));
  CHECK_FALSE(back.begin()->second.file_drain);
  CHECK_FALSE(from_json(R"({"version":1,"overrides":[{"service":"a","backend":"b:1","state":"maint","file_drain":1}]})", back, err));
  CHECK(err.find("overrides[0].file_drain") != std::string::npos);
  CHECK_FALSE(from_json(R"({"version":1,"overrides":[{"service":"a","backend":"b:1","weight":2,"file_weight":0}]})", back, err));
  CHECK(err.find("overrides[0].file_weight") != std::string::npos);
}
