// The config loader: the only code that knows yaml-cpp. It parses in two passes:
//  1. an event pass (no tree) that bounds nesting depth and alias expansion, so a
//     hostile file is rejected before anything is built from it;
//  2. YAML::Load, then one walk that checks every key against a table per mapping
//     and collects every error (never stopping at the first).
#include "l4lb/config/config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <functional>
#include <map>
#include <sstream>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>

#include "l4lb/base/file.hpp"
#include "l4lb/base/hosts_file.hpp"
#include "l4lb/base/text.hpp"
#include "l4lb/dataplane/sni_table.hpp"

namespace l4lb {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;
constexpr size_t kMaxDepth = 64;
constexpr size_t kMaxAliasNodes = 10'000;
constexpr size_t kMaxNodes = 100'000;  // bounds the memory of the tree yaml-cpp builds
constexpr size_t kMaxErrors = 100;
constexpr size_t kMaxLineBytes = 512;
constexpr size_t kMaxShown = 60;        // longest value quoted in a message
constexpr size_t kMaxHostNames = 1024;  // distinct names resolved per file
constexpr size_t kMaxDnsEntries = 10'000;  // resolve/srv entries per file (looked up later)
constexpr size_t kMaxDnsServers = 16;

template <class E>
struct Named {
  std::string_view name;
  E value;
};
constexpr Named<Algorithm> kAlgorithms[] = {
    {"round_robin", Algorithm::RoundRobin},
    {"weighted_round_robin", Algorithm::WeightedRoundRobin},
    {"least_connections", Algorithm::LeastConnections},
    {"weighted_least_connections", Algorithm::WeightedLeastConnections},
    {"random", Algorithm::Random},
    {"ip_hash", Algorithm::IpHash},
    {"consistent_hash", Algorithm::ConsistentHash},
};
constexpr Named<ProxyProtocol> kProxyProtocols[] = {
    {"off", ProxyProtocol::Off}, {"v1", ProxyProtocol::V1}, {"v2", ProxyProtocol::V2}};
constexpr Named<HealthType> kHealthTypes[] = {
    {"tcp", HealthType::Tcp}, {"http", HealthType::Http}, {"none", HealthType::None}};
constexpr Named<AccessLogFormat> kAccessLogFormats[] = {{"logfmt", AccessLogFormat::Logfmt},
                                                      {"json", AccessLogFormat::Json}};
constexpr Named<LogLevel> kLogLevels[] = {{"error", LogLevel::Error},
                                          {"warn", LogLevel::Warn},
                                          {"info", LogLevel::Info},
                                          {"debug", LogLevel::Debug}};
constexpr Named<SpliceMode> kSpliceModes[] = {{"auto", SpliceMode::Auto},
                                              {"always", SpliceMode::Always},
                                              {"never", SpliceMode::Never}};

template <class E, size_t N>
std::string_view name_of(const Named<E> (&table)[N], E value) {
  for (const auto& entry : table)
    if (entry.value == value) return entry.name;
  return "?";
}

// A value as shown in a message: quoted and escaped, at most kMaxShown bytes.
std::string quote(std::string_view s) { return quoted(s, kMaxShown, Quoting::Escaped); }

// Control characters become \xNN so one error is always one line.
std::string one_line(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F) {
      static const char hex[] = "0123456789abcdef";
      out += {'\\', 'x', hex[c >> 4], hex[c & 15]};
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

bool parse_int(const std::string& s, long long& v) {
  size_t i = !s.empty() && s[0] == '-';
  if (i == s.size() || s.size() > 18) return false;
  v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  if (s[0] == '-') v = -v;
  return true;
}

// Collects finished error lines and gives them in file order (by position; lines without
// one first; at one position, in the order found), keeping the first kMaxErrors. The walk
// finds most errors in file order already; the checks between services that share a listen
// address run once a service is read, and their errors move back to their keys.
class Errors {
 public:
  explicit Errors(std::string file) : file_(std::move(file)) {}

  void add(const YAML::Mark& mark, std::string_view path, std::string_view message) {
    std::string line = file_ + ":";
    if (!mark.is_null())
      line += std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) + ":";
    line += " ";
    if (!path.empty()) line += std::string(path) + ": ";
    if (mark.is_null())
      push(-1, -1, line + std::string(message));
    else
      push(mark.line, mark.column, line + std::string(message));
  }
  void add(std::string_view message) { push(-1, -1, file_ + ": " + std::string(message)); }
  bool empty() const { return total_ == 0; }
  size_t count() const { return total_; }

  std::vector<std::string> finish() && {
    std::sort(entries_.begin(), entries_.end());
    std::vector<std::string> lines;
    for (Entry& e : entries_) lines.push_back(std::move(e.text));
    if (total_ > kMaxErrors) {
      lines.resize(kMaxErrors - 1);
      lines.push_back(file_ + ": " + std::to_string(total_ - lines.size()) +
                      " more errors not shown");
    }
    return lines;
  }

 private:
  struct Entry {
    int line, column;
    size_t seq = 0;
    std::string text;
    bool operator<(const Entry& o) const {
      return std::tie(line, column, seq) < std::tie(o.line, o.column, o.seq);
    }
  };

  // Keeps the kMaxErrors first in file order among all found (the list stays that short).
  void push(int line_number, int column, const std::string& line) {
    Entry entry{line_number, column, total_++, ""};
    if (entries_.size() == kMaxErrors) {
      auto last = std::max_element(entries_.begin(), entries_.end());
      if (!(entry < *last)) return;
      entries_.erase(last);
    }
    std::string clean = one_line(line);
    if (clean.size() > kMaxLineBytes)
      clean = std::string(utf8_prefix(clean, kMaxLineBytes - 3)) + "...";
    entry.text = std::move(clean);
    entries_.push_back(std::move(entry));
  }

  std::string file_;
  std::vector<Entry> entries_;
  size_t total_ = 0;
};

// Pass 1: walks the event stream, refusing deep nesting and alias bombs. yaml-cpp
// shares an aliased node, so the tree stays small while a walk over it would not:
// count the nodes each alias stands for.
struct LimitExceeded {
  YAML::Mark mark;
  std::string message;
};

class LimitCheck : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { leaf(mark, anchor); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string&) override {
    leaf(mark, anchor);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchor_sizes_.find(anchor);  // absent: an alias inside its own anchor
    size_t size = it == anchor_sizes_.end() ? 1 : it->second;
    aliased_ += size;
    if (aliased_ > kMaxAliasNodes)
      throw LimitExceeded{mark, "aliases expand past " + std::to_string(kMaxAliasNodes) + " nodes"};
    add(0, size);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapEnd() override { close(); }

 private:
  struct Open {
    YAML::anchor_t anchor;
    size_t size;
    int pos;
  };
  // A collection that starts where its parent starts (yaml-cpp reads an unclosed "["
  // as the first key of an implicit mapping) is no deeper than its parent.
  void open(const YAML::Mark& mark, YAML::anchor_t anchor) {
    count(mark);
    if (stack_.empty() || stack_.back().pos != mark.pos) ++depth_;
    if (depth_ > kMaxDepth)
      throw LimitExceeded{mark, "nesting deeper than " + std::to_string(kMaxDepth) + " levels"};
    stack_.push_back({anchor, 1, mark.pos});
  }
  void close() {
    Open done = stack_.back();
    stack_.pop_back();
    if (stack_.empty() || stack_.back().pos != done.pos) --depth_;
    add(done.anchor, done.size);
  }
  void leaf(const YAML::Mark& mark, YAML::anchor_t anchor) {
    count(mark);
    add(anchor, 1);
  }
  void count(const YAML::Mark& mark) {
    if (++nodes_ > kMaxNodes)
      throw LimitExceeded{mark, "more than " + std::to_string(kMaxNodes) + " YAML nodes"};
  }
  // Adds a finished node of SIZE nodes to its parent (and records its anchor's size).
  void add(YAML::anchor_t anchor, size_t size) {
    if (anchor) anchor_sizes_[anchor] = size;
    if (!stack_.empty()) stack_.back().size += size;
  }

  std::vector<Open> stack_;
  size_t depth_ = 0;
  size_t nodes_ = 0;
  std::map<YAML::anchor_t, size_t> anchor_sizes_;
  size_t aliased_ = 0;
};

// Pass 2: the walk. Reader holds the path of the node being read and the state of
// the cross-checks (unique names, listen addresses and who shares them, resolved names).
class Reader;
template <class T>
struct Key {
  std::string_view name;
  bool required;
  std::function<void(Reader&, const YAML::Node&, T&)> read;
};

class Reader {
 public:
  explicit Reader(Errors& errors) : errors_(errors) {}

  // Reports MESSAGE at NODE; an error about the value of a mapping key points at that
  // key (INTERFACE.md's example, "12:7: ...weight: ...", puts the column on the key), which
  // also keeps an empty value ("key:" then a newline, whose mark is the next token's) on
  // its own line. Sequence items, keys and mappings point at themselves.
  void error(const YAML::Node& node, std::string_view message) {
    errors_.add(where(node), path_, message);
  }
  // Where an error about NODE points (see error()).
  YAML::Mark where(const YAML::Node& node) const {
    const YAML::Mark mark = node.Mark();
    bool is_value = !key_mark_.is_null() && mark.pos == value_pos_;
    return is_value ? key_mark_ : mark;
  }
  size_t error_count() const { return errors_.count(); }
  size_t dns_entries = 0;  // resolve/srv backends read so far (bounded by kMaxDnsEntries)
  // Reports MESSAGE at the key KEY of mapping NODE (or at NODE if it has no such key).
  void error_at_key(const YAML::Node& node, std::string_view key, std::string_view message) {
    YAML::Mark mark = node.Mark();
    if (node.IsMap())
      for (const auto& pair : node)
        if (pair.first.IsScalar() && pair.first.Scalar() == key) mark = pair.first.Mark();
    errors_.add(mark, path_, message);
  }

  // Appends ".KEY" or "[INDEX]" to the path for the lifetime of the scope.
  class Scope {
   public:
    Scope(Reader& r, std::string_view key) : r_(r), old_(r.path_.size()) {
      if (!r.path_.empty()) r.path_ += '.';
      r.path_ += utf8_prefix(key, kMaxShown);
      if (key.size() > kMaxShown) r.path_ += "...";
    }
    Scope(Reader& r, size_t index) : r_(r), old_(r.path_.size()) {
      r.path_ += "[" + std::to_string(index) + "]";
    }
    ~Scope() { r_.path_.resize(old_); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Reader& r_;
    size_t old_;
  };

  static std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
      case YAML::NodeType::Map:
        return "a mapping";
      case YAML::NodeType::Sequence:
        return "a sequence";
      case YAML::NodeType::Scalar:
        return quote(node.Scalar());
      default:
        return "nothing";
    }
  }
  void expected(const YAML::Node& node, std::string_view what) {
    error(node, "must be " + std::string(what) + ", got " + describe(node));
  }

  // Reads a mapping: required keys first (reported at the mapping), then every pair
  // in file order: non-string keys, unknown keys (with a hint), duplicates, values.
  template <class T, size_t N>
  void map(const YAML::Node& node, const Key<T> (&keys)[N], T& out) {
    if (!node.IsMap()) return expected(node, "a mapping");
    ValueScope outer(*this);  // errors about this mapping's own keys point at them
    auto find = [&](const YAML::Node& k) -> const Key<T>* {
      for (const auto& key : keys)
        if (k.IsScalar() && key.name == k.Scalar()) return &key;
      return nullptr;
    };
    bool present[N] = {};
    for (const auto& pair : node)
      if (const Key<T>* key = find(pair.first)) present[key - keys] = true;
    for (size_t i = 0; i < N; ++i)
      if (keys[i].required && !present[i])  // at the mapping that lacks it
        errors_.add(node.Mark(), path_, "missing required key \"" + std::string(keys[i].name) + "\"");

    int first_line[N] = {};
    for (const auto& pair : node) {
      const YAML::Node& k = pair.first;
      if (!k.IsScalar()) {
        error(k, "keys must be strings, got " + describe(k));
        continue;
      }
      Scope scope(*this, k.Scalar());
      const Key<T>* key = find(k);
      if (!key) {
        error(k, "unknown key" + hint(k.Scalar(), keys));
      } else if (int& line = first_line[key - keys]; line != 0) {
        error(k, "duplicate key (first at line " + std::to_string(line) + ")");
      } else {
        line = k.Mark().line + 1;
        ValueScope value(*this, k.Mark(), pair.second.Mark().pos);
        key->read(*this, pair.second, out);
      }
    }
  }

  // Reads a sequence, calling READ(item) with the path at "[i]".
  template <class F>
  void sequence(const YAML::Node& node, F&& read) {
    if (!node.IsSequence()) return expected(node, "a sequence");
    ValueScope items(*this);  // an item points at itself
    for (size_t i = 0; i < node.size(); ++i) {
      Scope scope(*this, i);
      read(node[i]);
    }
  }

  template <class I>
  void integer(const YAML::Node& node, I& out, long long lo, long long hi) {
    long long v;
    if (!node.IsScalar() || !parse_int(node.Scalar(), v) || v < lo || v > hi)
      return expected(node, "an integer " + std::to_string(lo) + ".." + std::to_string(hi));
    out = static_cast<I>(v);
  }

  void duration(const YAML::Node& node, Millis& out, bool allow_zero) {
    if (!node.IsScalar()) return expected(node, "a duration such as \"2s\"");
    std::string reason;
    Millis d;
    if (!parse_duration(node.Scalar(), d, reason))
      return error(node, "invalid duration " + quote(node.Scalar()) + ": " + reason);
    if (!allow_zero && d.count() == 0) return expected(node, "greater than 0");
    out = d;
  }

  void boolean(const YAML::Node& node, bool& out) {
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, out))
      expected(node, "true or false");
  }

  template <class E, size_t N>
  void choice(const YAML::Node& node, E& out, const Named<E> (&table)[N]) {
    for (const auto& entry : table)
      if (node.IsScalar() && node.Scalar() == entry.name) return void(out = entry.value);
    std::string names;
    for (const auto& entry : table) names += (names.empty() ? "" : ", ") + std::string(entry.name);
    expected(node, "one of " + names);
  }

  // A string accepted by the predicate ALLOWED.
  template <class P>
  void text(const YAML::Node& node, std::string& out, std::string_view what, P allowed) {
    if (node.IsScalar() && allowed(node.Scalar()))
      out = node.Scalar();
    else
      expected(node, what);
  }

  bool address(const YAML::Node& node, std::string& text_out, Address& out) {
    if (!node.IsScalar()) return expected(node, "an address HOST:PORT"), false;
    const std::string& text = node.Scalar();
    auto cached = resolved_.find(text);
    if (cached == resolved_.end()) {
      Resolved r;
      bool is_name = text[0] != '[' && std::any_of(text.begin(), text.end(), [](char c) {
                       return isalpha(static_cast<unsigned char>(c));
                     });
      if (is_name && ++names_resolved_ > kMaxHostNames)
        r.error = "too many host names to resolve (at most " + std::to_string(kMaxHostNames) +
                  " per file)";
      else
        r.ok = is_name ? resolve_name(text, r) : parse_address(text, r.address, r.error);
      cached = resolved_.emplace(text, r).first;
    }
    if (!cached->second.ok) return error(node, cached->second.error), false;
    text_out = text;
    out = cached->second.address;
    return true;
  }

  // A listen address (a service's, or the admin port's outside a service). It must not
  // overlap one read before (same family and port, and either one a wildcard) unless it is
  // the same address; the same address again is an error for the admin port and within one
  // service, and between services follows the sharing rules (checked in end_service()).
  // True when the address is taken.
  bool listen(const YAML::Node& node, std::string& text_out, Address& out) {
    if (!address(node, text_out, out)) return false;
    const First here{path_, text_out, node.Mark().line + 1};
    const std::string host = out.host_string();
    auto& bucket = listens_[{out.family(), out.port()}];
    auto clash = bucket.find(host);
    if (clash == bucket.end()) clash = bucket.find(out.family() == AF_INET ? "0.0.0.0" : "::");
    if (clash == bucket.end() && out.is_wildcard() && !bucket.empty()) clash = bucket.begin();
    if (clash == bucket.end()) {
      Bound& bound = bucket[host];
      bound.address = out;
      bound.first = here;
      bound.admin = service_ == kNoService;
      if (!bound.admin) take(bound, here, node);
      return true;
    }
    Bound& bound = clash->second;
    if (clash->first != host) {
      error(node, "listen address " + quote(text_out) + " overlaps " + bound.first.where());
      return false;
    }
    // The same address: never twice in one service nor beside the admin port.
    const First* before = nullptr;
    if (bound.admin || service_ == kNoService) before = &bound.first;
    if (auto mine = bound.items.find(service_); mine != bound.items.end()) before = &mine->second;
    if (before) {
      error(node, "duplicate listen address " + quote(text_out) + ", already used by " +
                      before->where());
      return false;
    }
    take(bound, here, node);
    return true;
  }

  // Around the keys of services[INDEX]: the checks between services that share an address
  // need the whole service (its listen, sni and accept_proxy, in any order in the file).
  void begin_service(size_t index) {
    service_ = index;
    proxy_bad_ = false;
    taken_.clear();
  }
  void proxy_failed() { proxy_bad_ = true; }
  void end_service(const YAML::Node& item, const ServiceConfig& s);

  // A service name, unique in the file.
  void service_name(const YAML::Node& node, std::string& out) {
    text(node, out, "a name of [A-Za-z0-9_.-]+, at most 64 characters", [](const std::string& s) {
      return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
        return isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
      });
    });
    if (out.empty()) return;
    auto [it, fresh] = names_.emplace(out, First{path_, out, node.Mark().line + 1});
    if (!fresh)
      error(node, "duplicate service name " + quote(out) + ", first at line " +
                      std::to_string(it->second.line));
  }

 private:
  struct Resolved {
    bool ok = false;
    Address address;
    std::string error;
  };
  struct First {
    std::string path, text;
    int line = 0;
    std::string where() const {
      return path + " " + quote(text) + " at line " + std::to_string(line);
    }
  };
  static constexpr size_t kNoService = SIZE_MAX;  // the admin port
  // One listen address, with every service on it.
  struct Bound {
    Address address;
    First first;                     // the first listen item on it
    bool admin = false;              // the admin port's (no service shares it)
    std::map<size_t, First> items;   // service -> its listen item on this address
    std::vector<size_t> services;    // services checked onto it by end_service()
    std::optional<size_t> fallback;  // the service without sni
    SniTable names;                  // sni pattern -> service, once a second service comes
    bool names_built = false;
  };
  // A listen item of the service being read, checked against the others on its address
  // once the service is read.
  struct Taken {
    Bound* bound;
    First item;
    YAML::Mark mark;
  };
  struct Seen {  // what end_service() needs of a service read before
    std::string name;
    std::vector<std::string> sni;       // its valid sni patterns
    std::optional<CidrSet> proxy_from;  // accept_proxy.from
    bool proxy_bad;                     // accept_proxy had errors: not compared
  };
  void take(Bound& bound, const First& item, const YAML::Node& node) {
    bound.items.emplace(service_, item);
    taken_.push_back({&bound, item, where(node)});
  }
  // The first KEY of mapping MAP and its value (the one read), or nothing.
  static std::optional<std::pair<YAML::Node, YAML::Node>> find_key(const YAML::Node& map,
                                                                   std::string_view key) {
    if (map.IsMap())
      for (const auto& pair : map)
        if (pair.first.IsScalar() && pair.first.Scalar() == key)
          return std::pair<YAML::Node, YAML::Node>(pair.first, pair.second);
    return std::nullopt;
  }
  template <class T, size_t N>
  static std::string hint(const std::string& unknown, const Key<T> (&keys)[N]) {
    if (unknown.size() > 64) return "";
    const Key<T>* best = nullptr;
    size_t best_distance = 3;
    for (const auto& key : keys)
      if (size_t d = edit_distance(unknown, key.name); d < best_distance)
        best = &key, best_distance = d;
    return best ? ", did you mean \"" + std::string(best->name) + "\"?" : "";
  }

  // While a key's value is read: that key's mark and the value's position (see error()).
  class ValueScope {
   public:
    explicit ValueScope(Reader& r, YAML::Mark key = YAML::Mark::null_mark(), int pos = -1)
        : r_(r), key_(std::exchange(r.key_mark_, key)), pos_(std::exchange(r.value_pos_, pos)) {}
    ~ValueScope() {
      r_.key_mark_ = key_;
      r_.value_pos_ = pos_;
    }
    ValueScope(const ValueScope&) = delete;
    ValueScope& operator=(const ValueScope&) = delete;

   private:
    Reader& r_;
    YAML::Mark key_;
    int pos_;
  };

  Errors& errors_;
  std::string path_;
  YAML::Mark key_mark_ = YAML::Mark::null_mark();
  int value_pos_ = -1;
  std::map<std::string, Resolved> resolved_;  // address text -> result
  std::optional<std::optional<HostsFile>> hosts_;  // read at the first name (HostsFile)

  // A HOST:PORT with a host name: /etc/hosts read once (where nsswitch looks there
  // first), else getaddrinfo.
  bool resolve_name(const std::string& text, Resolved& r) {
    HostPort hp;
    if (!parse_host_port(text, hp, r.error)) return false;
    if (!hosts_) hosts_ = HostsFile::load();
    if (const Address* a = *hosts_ ? (*hosts_)->find(hp.host) : nullptr) {
      r.address = *a;
      r.address.set_port(hp.port);
      return true;
    }
    return parse_address(text, r.address, r.error);
  }
  size_t names_resolved_ = 0;
  std::map<std::pair<int, int>, std::map<std::string, Bound>> listens_;  // by host_string
  std::map<std::string, First> names_;
  size_t service_ = kNoService;  // the service being read
  bool proxy_bad_ = false;
  std::vector<Taken> taken_;  // its listen items
  std::vector<Seen> seen_;    // services read, by index
};

// The sharing rules of INTERFACE.md for the service just read (services[SERVICE]) against
// those read before it on each of its addresses: at most one without sni, no sni name
// twice, and the same accept_proxy (same "from" set) or none on all. Each error points at
// this service's conflicting key: its listen item, its sni item, or its accept_proxy.
void Reader::end_service(const YAML::Node& item, const ServiceConfig& s) {
  const std::string base = path_;
  const auto sni_pair = find_key(item, "sni");
  const YAML::Node sni = sni_pair ? sni_pair->second : YAML::Node();
  const bool has_sni = sni.IsSequence() && sni.size() > 0;
  seen_.push_back({s.name, s.sni, std::nullopt, proxy_bad_});
  if (s.accept_proxy) seen_.back().proxy_from = s.accept_proxy->from;
  const Seen& me = seen_.back();
  const std::string rule =
      "; services on one address must all have accept_proxy with the same \"from\", or none";
  auto at_proxy = [&](const std::string& message) {
    const auto key = find_key(item, "accept_proxy");
    errors_.add(key ? key->first.Mark() : item.Mark(), base + ".accept_proxy", message);
  };
  bool proxy_reported = false;
  std::vector<bool> sni_reported(has_sni ? sni.size() : 0);
  for (const Taken& t : taken_) {
    Bound& b = *t.bound;
    const std::string on = " on " + b.address.to_string();
    if (!has_sni) {
      if (b.fallback)
        errors_.add(t.mark, t.item.path,
                    "duplicate listen address " + quote(t.item.text) + ", already used by " +
                        b.items.at(*b.fallback).where());
      else
        b.fallback = service_;
    }
    // The names of an address are gathered once a second service comes (an address of one
    // service, however many names it has, costs nothing here).
    if (!b.services.empty() && !b.names_built) {
      for (size_t other : b.services)
        for (const std::string& pattern : seen_[other].sni)
          b.names.add(pattern, static_cast<uint32_t>(other));
      b.names_built = true;
    }
    if (has_sni && b.names_built) {
      for (size_t j = 0; j < sni.size(); ++j) {
        uint32_t other = 0;
        if (!sni[j].IsScalar() || sni_reported[j] ||
            b.names.add(sni[j].Scalar(), static_cast<uint32_t>(service_), &other) !=
                SniTable::Add::Duplicate ||
            other == service_)
          continue;
        sni_reported[j] = true;
        errors_.add(sni[j].Mark(), base + ".sni[" + std::to_string(j) + "]",
                    quote(sni[j].Scalar()) + " is also a name of service " +
                        quote(seen_[other].name) + on);
      }
    }
    if (!b.services.empty() && !proxy_reported) {
      const Seen& first = seen_[b.services.front()];
      const std::string other = "service " + quote(first.name) + on;
      const bool compare = !me.proxy_bad && !first.proxy_bad;
      if (compare && me.proxy_from != first.proxy_from) {
        proxy_reported = true;
        if (!first.proxy_from)
          at_proxy(other + " has no accept_proxy" + rule);
        else if (!me.proxy_from)
          errors_.add(t.mark, t.item.path,
                      other + " has accept_proxy and this one has none" + rule);
        else
          at_proxy("\"from\" differs from that of " + other + rule);
      }
    }
    b.services.push_back(service_);
  }
  taken_.clear();
  service_ = kNoService;
}

// Key tables, one per mapping, built from these field readers.
template <class T>
using Read = std::function<void(Reader&, const YAML::Node&, T&)>;

template <class T, class I>
Read<T> integer(I T::*field, long long lo, long long hi) {
  return [=](Reader& r, const YAML::Node& n, T& t) { r.integer(n, t.*field, lo, hi); };
}
template <class T>
Read<T> duration(Millis T::*field, bool allow_zero) {
  return [=](Reader& r, const YAML::Node& n, T& t) { r.duration(n, t.*field, allow_zero); };
}
template <class T>
Read<T> boolean(bool T::*field) {
  return [=](Reader& r, const YAML::Node& n, T& t) { r.boolean(n, t.*field); };
}
template <class T, class E, size_t N>
Read<T> choice(E T::*field, const Named<E> (&table)[N]) {
  return [=, &table](Reader& r, const YAML::Node& n, T& t) { r.choice(n, t.*field, table); };
}
// A mapping that may be omitted or left empty (null): then the defaults stay.
template <class T, class S, size_t N>
Read<T> nested(S T::*field, const Key<S> (&keys)[N]) {
  return [=, &keys](Reader& r, const YAML::Node& n, T& t) {
    if (!n.IsNull()) r.map(n, keys, t.*field);
  };
}

bool printable_no_space(const std::string& s) {
  return std::none_of(s.begin(), s.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7F; });
}

void read_expect_status(Reader& r, const YAML::Node& n, HealthCheckConfig& h) {
  const std::string what = "a status code 100..599 or a range like \"200-399\"";
  if (!n.IsScalar()) return r.expected(n, what);
  const std::string& s = n.Scalar();
  size_t dash = s.find('-', 1);
  long long lo, hi;
  if (!parse_int(s.substr(0, dash), lo) ||
      !parse_int(dash == std::string::npos ? s : s.substr(dash + 1), hi) || lo < 0 || hi < 0)
    return r.expected(n, what);
  if (lo < 100 || lo > 599 || hi < 100 || hi > 599)
    return r.error(n, "status codes must be 100..599, got " + quote(s));
  if (lo > hi)
    return r.error(n, "range is reversed (" + std::to_string(lo) + " > " + std::to_string(hi) +
                          "), got " + quote(s));
  h.expect_status_min = static_cast<int>(lo);
  h.expect_status_max = static_cast<int>(hi);
}

const Key<HealthCheckConfig> kHealthKeys[] = {
    {"type", false, choice(&HealthCheckConfig::type, kHealthTypes)},
    {"interval", false, duration(&HealthCheckConfig::interval, false)},
    {"timeout", false, duration(&HealthCheckConfig::timeout, false)},
    {"healthy_threshold", false, integer(&HealthCheckConfig::healthy_threshold, 1, 100)},
    {"unhealthy_threshold", false, integer(&HealthCheckConfig::unhealthy_threshold, 1, 100)},
    {"path", false,
     [](Reader& r, const YAML::Node& n, HealthCheckConfig& h) {
       r.text(
           n, h.path, "a path starting with \"/\" without spaces or control characters",
           [](const std::string& s) { return !s.empty() && s[0] == '/' && printable_no_space(s); });
     }},
    {"expect_status", false, read_expect_status},
    {"host", false,
     [](Reader& r, const YAML::Node& n, HealthCheckConfig& h) {
       r.text(n, h.host, "a host name without spaces or control characters",
              [](const std::string& s) { return printable_no_space(s); });
     }},
};

// One backends[] item while it is read: a fixed address, or a DNS entry (resolve: true,
// or srv). Whether the address is a DNS name to look up later is known before the
// mapping is read (resolve may come after address in the file).
struct BackendItem {
  BackendConfig b;
  DnsBackendConfig dns;
  bool resolve = false;  // resolve: true (peeked before the mapping is read)
  bool has_address = false;
  bool has_srv = false;
};

const Key<BackendItem> kBackendKeys[] = {
    {"address", false,
     [](Reader& r, const YAML::Node& n, BackendItem& item) {
       item.has_address = true;
       if (!item.resolve) return void(r.address(n, item.b.address_text, item.b.address));
       // A DNS name looked up in the background (discovery/): never resolved here.
       if (!n.IsScalar()) return r.expected(n, "an address HOST:PORT");
       HostPort hp;
       std::string error;
       if (!parse_host_port(n.Scalar(), hp, error)) return r.error(n, error);
       if (hp.literal)
         return r.error(n, "resolve: true needs a host name, got the IP address " +
                               quote(n.Scalar()) + " (leave resolve out for a fixed address)");
       item.dns.name = hp.host;
       item.dns.port = hp.port;
       item.dns.text = n.Scalar();
     }},
    {"srv", false,
     [](Reader& r, const YAML::Node& n, BackendItem& item) {
       item.has_srv = true;
       if (!n.IsScalar() || !valid_host_name(n.Scalar()))
         return r.expected(n, "an SRV name such as \"_app._tcp.example.internal\"");
       item.dns.srv = true;
       item.dns.name = n.Scalar();
       item.dns.text = n.Scalar();
     }},
    {"resolve", false,
     [](Reader& r, const YAML::Node& n, BackendItem& item) {
       bool v = false;
       r.boolean(n, v);
     }},
    {"weight", false,
     [](Reader& r, const YAML::Node& n, BackendItem& item) {
       const size_t before = r.error_count();
       r.integer(n, item.b.weight, 1, 1000);
       item.dns.weight_given = r.error_count() == before;
     }},
    {"max_connections", false,
     [](Reader& r, const YAML::Node& n, BackendItem& item) {
       r.integer(n, item.b.max_connections, 0, 10'000'000);
     }},
    {"backup", false, [](Reader& r, const YAML::Node& n, BackendItem& item) { r.boolean(n, item.b.backup); }},
    {"drain", false, [](Reader& r, const YAML::Node& n, BackendItem& item) { r.boolean(n, item.b.drain); }},
};

// The value of KEY in mapping NODE when it is a YAML true.
bool flag_of(const YAML::Node& node, std::string_view key) {
  if (!node.IsMap()) return false;
  for (const auto& pair : node)
    if (pair.first.IsScalar() && pair.first.Scalar() == key) {
      bool v = false;
      return pair.second.IsScalar() && YAML::convert<bool>::decode(pair.second, v) && v;
    }
  return false;
}

void read_backends(Reader& r, const YAML::Node& n, ServiceConfig& s) {
  if (n.IsNull() || (n.IsSequence() && n.size() == 0))
    return r.error(n, "must list at least one backend");
  std::map<std::string, size_t> seen;  // resolved address -> first index
  std::map<std::string, size_t> seen_dns;  // DnsBackendConfig::key() -> first index
  size_t index = 0;
  r.sequence(n, [&](const YAML::Node& item_node) {
    const size_t i = index++;
    BackendItem item;
    item.resolve = flag_of(item_node, "resolve");
    const size_t before = r.error_count();
    r.map(item_node, kBackendKeys, item);
    if (!item_node.IsMap()) return;
    if (item.has_address && item.has_srv)
      return r.error_at_key(item_node, "srv",
                            "give either address or srv, not both (srv names its own ports)");
    if (!item.has_address && !item.has_srv)
      return r.error(item_node, "missing required key \"address\" (or \"srv\")");
    if (item.has_srv && item.resolve)
      return r.error_at_key(item_node, "resolve",
                            "resolve applies to address; an srv entry is always looked up");
    if (r.error_count() != before) return;
    if (item.has_srv || item.resolve) {
      if (++r.dns_entries > kMaxDnsEntries)
        return r.error(item_node, "too many DNS entries (resolve/srv), at most " +
                                      std::to_string(kMaxDnsEntries) + " per file");
      DnsBackendConfig d = std::move(item.dns);
      d.weight = item.b.weight;
      d.max_connections = item.b.max_connections;
      d.backup = item.b.backup;
      d.drain = item.b.drain;
      auto [it, fresh] = seen_dns.emplace(d.key(), i);
      if (!fresh)
        return r.error_at_key(item_node, d.srv ? "srv" : "address",
                              "duplicate DNS entry " + quote(d.text) + " (same as backends[" +
                                  std::to_string(it->second) + "])");
      s.dns_backends.push_back(std::move(d));
      return;
    }
    BackendConfig b = std::move(item.b);
    if (b.address.length != 0) {
      auto [it, fresh] = seen.emplace(b.address.to_string(), i);
      if (!fresh) {
        Reader::Scope scope(r, "address");
        r.error_at_key(item_node, "address", "duplicate backend " + quote(b.address_text) + " (" +
                                            b.address.to_string() + ", same as backends[" +
                                            std::to_string(it->second) + "])");
      }
    }
    s.backends.push_back(std::move(b));
  });
}

// A YAML boolean false ("off" read as YAML 1.1, "false", "no") means off.
void read_proxy_protocol(Reader& r, const YAML::Node& n, ServiceConfig& s) {
  bool on = true;
  if (n.IsScalar() && YAML::convert<bool>::decode(n, on) && !on)
    return void(s.proxy_protocol = ProxyProtocol::Off);
  r.choice(n, s.proxy_protocol, kProxyProtocols);
}

// An address, or a non-empty list of them; listen/listen_text are the first.
void read_listen(Reader& r, const YAML::Node& n, ServiceConfig& s) {
  auto one = [&](const YAML::Node& item) {
    std::string text;
    Address address;
    if (!r.listen(item, text, address)) return;
    s.listen_texts.push_back(std::move(text));
    s.listens.push_back(address);
  };
  if (n.IsScalar()) {
    one(n);
  } else if (n.IsSequence()) {
    if (n.size() == 0) return r.error(n, "must list at least one address");
    r.sequence(n, one);
  } else {
    return r.expected(n, "an address HOST:PORT or a list of them");
  }
  if (!s.listens.empty()) {
    s.listen_text = s.listen_texts.front();
    s.listen = s.listens.front();
  }
}

// TLS server names: "name" or "*.suffix", none twice (sni_patterns_overlap) in one service.
void read_sni(Reader& r, const YAML::Node& n, ServiceConfig& s) {
  if (n.IsNull()) return;
  SniTable seen;
  std::vector<std::string> texts;  // by index in the list
  r.sequence(n, [&](const YAML::Node& item) {
    const uint32_t index = static_cast<uint32_t>(texts.size());
    texts.emplace_back(item.IsScalar() ? item.Scalar() : "");
    if (!item.IsScalar() || !valid_sni_pattern(item.Scalar()))
      return r.expected(item, "a server name such as \"example.com\" or a wildcard such as "
                              "\"*.example.com\"");
    uint32_t first = 0;
    if (seen.add(item.Scalar(), index, &first) == SniTable::Add::Duplicate)
      return r.error(item, "duplicate name " + quote(item.Scalar()) + " (same as sni[" +
                               std::to_string(first) + "] " + quote(texts[first]) + ")");
    s.sni.push_back(item.Scalar());
  });
}

// A list of CIDRs, none twice (as normalized: "::ffff:10.0.0.0/104" is "10.0.0.0/8"), into
// TEXTS and SET; KEY names the list in messages ("from", "allow", "deny").
void read_cidrs(Reader& r, const YAML::Node& n, std::string_view key, std::vector<std::string>& out_texts,
                CidrSet& set) {
  std::map<std::tuple<int, int, std::array<uint8_t, 16>>, size_t> seen;  // -> index
  std::vector<std::string> texts;  // by index in the list
  r.sequence(n, [&](const YAML::Node& item) {
    const size_t i = texts.size();
    texts.emplace_back(item.IsScalar() ? item.Scalar() : "");
    if (!item.IsScalar()) return r.expected(item, "a CIDR such as \"10.0.0.0/8\"");
    Cidr cidr;
    std::string error;
    if (!parse_cidr(item.Scalar(), cidr, error)) return r.error(item, error);
    const Cidr norm = normalized(cidr);
    auto [it, fresh] = seen.emplace(std::tuple(norm.family, norm.prefix, norm.bytes), i);
    if (!fresh)
      return r.error(item, "duplicate CIDR " + quote(item.Scalar()) + " (same network as " +
                               std::string(key) + "[" + std::to_string(it->second) + "] " +
                               quote(texts[it->second]) + ")");
    out_texts.push_back(item.Scalar());
    set.add(cidr);
  });
}

// accept_proxy.from: at least one CIDR.
void read_proxy_from(Reader& r, const YAML::Node& n, AcceptProxyConfig& p) {
  if (n.IsNull() || (n.IsSequence() && n.size() == 0))
    return r.error(n, "must list at least one CIDR");
  read_cidrs(r, n, "from", p.from_text, p.from);
}

const Key<PerSourceConfig> kPerSourceKeys[] = {
    {"max_connections", false, integer(&PerSourceConfig::max_connections, 0, 10'000'000)},
    {"rate", false, integer(&PerSourceConfig::rate, 0, 10'000'000)},
    {"ipv6_prefix", false, integer(&PerSourceConfig::ipv6_prefix, 1, 128)},
};

const Key<QueueConfig> kQueueKeys[] = {
    {"size", false, integer(&QueueConfig::size, 0, 1'000'000)},
    {"timeout", false, duration(&QueueConfig::timeout, false)},
};

const Key<AcceptProxyConfig> kAcceptProxyKeys[] = {
    {"from", true, read_proxy_from},
};

void read_accept_proxy(Reader& r, const YAML::Node& n, ServiceConfig& s) {
  if (n.IsNull()) return;  // as omitted
  const size_t before = r.error_count();
  s.accept_proxy.emplace();
  r.map(n, kAcceptProxyKeys, *s.accept_proxy);
  if (r.error_count() != before) r.proxy_failed();
}

const Key<ServiceConfig> kServiceKeys[] = {
    {"name", true,
     [](Reader& r, const YAML::Node& n, ServiceConfig& s) { r.service_name(n, s.name); }},
    {"listen", true, read_listen},
    {"sni", false, read_sni},
    {"accept_proxy", false, read_accept_proxy},
    {"algorithm", false, choice(&ServiceConfig::algorithm, kAlgorithms)},
    {"connect_timeout", false, duration(&ServiceConfig::connect_timeout, false)},
    {"idle_timeout", false, duration(&ServiceConfig::idle_timeout, true)},
    {"retries", false, integer(&ServiceConfig::retries, 0, 100)},
    {"max_connections", false, integer(&ServiceConfig::max_connections, 0, 10'000'000)},
    {"proxy_protocol", false, read_proxy_protocol},
    {"slow_start", false, duration(&ServiceConfig::slow_start, true)},
    {"access_log", false, boolean(&ServiceConfig::access_log)},
    {"allow", false,
     [](Reader& r, const YAML::Node& n, ServiceConfig& s) {
       if (!n.IsNull()) read_cidrs(r, n, "allow", s.allow_text, s.allow);
     }},
    {"deny", false,
     [](Reader& r, const YAML::Node& n, ServiceConfig& s) {
       if (!n.IsNull()) read_cidrs(r, n, "deny", s.deny_text, s.deny);
     }},
    {"per_source", false, nested(&ServiceConfig::per_source, kPerSourceKeys)},
    {"queue", false, nested(&ServiceConfig::queue, kQueueKeys)},
    {"health_check", false, nested(&ServiceConfig::health_check, kHealthKeys)},
    {"backends", true, read_backends},
};

// admin.listen: HOST:PORT, or unix:/absolute/path (at most 107 bytes, a sun_path).
void read_admin_listen(Reader& r, const YAML::Node& n, AdminConfig& a) {
  if (n.IsScalar() && n.Scalar().starts_with("unix:")) {
    const std::string path = n.Scalar().substr(5);
    if (path.empty() || path[0] != '/' || path.size() > 107 || path.back() == '/' ||
        path.find('\0') != std::string::npos)
      return r.expected(n, "unix:/ABSOLUTE/PATH of at most 107 bytes");
    a.listen_text = n.Scalar();
    a.unix_path = path;
    return;
  }
  r.listen(n, a.listen_text, a.listen);
}

// admin.token_file: read at load, so a reload takes a new token and a bad file is a
// config error here rather than a 401 for everyone later.
void read_token_file(Reader& r, const YAML::Node& n, AdminConfig& a) {
  if (!n.IsScalar()) return r.expected(n, "a file name");
  a.token_file = n.Scalar();
  if (a.token_file.empty()) return;
  std::string contents, error;
  if (!read_file(a.token_file, contents, error, nullptr, 4096))
    return r.error(n, "cannot read the token: " + error);
  if (!token_from_file(contents, a.token, error))
    return r.error(n, quote(a.token_file) + ": " + error);
}

const Key<AccessLogConfig> kAccessLogKeys[] = {
    {"path", true,
     [](Reader& r, const YAML::Node& n, AccessLogConfig& a) {
       r.text(n, a.path, "an absolute file path or \"stderr\"",
              [](const std::string& s) { return s == "stderr" || (s.size() > 1 && s[0] == '/'); });
     }},
    {"format", false, choice(&AccessLogConfig::format, kAccessLogFormats)},
};

const Key<AdminConfig> kAdminKeys[] = {
    {"listen", true, read_admin_listen},
    {"token_file", false, read_token_file},
};

// dns.servers: IP literals with a port (a resolver cannot itself be a name to resolve).
void read_dns_servers(Reader& r, const YAML::Node& n, DnsConfig& d) {
  if (n.IsNull()) return;
  if (n.IsSequence() && n.size() > kMaxDnsServers)
    return r.error(n, "at most " + std::to_string(kMaxDnsServers) + " servers");
  r.sequence(n, [&](const YAML::Node& item) {
    const std::string what = "a resolver address IP:PORT or [IPV6]:PORT (not a name)";
    if (!item.IsScalar()) return r.expected(item, what);
    HostPort hp;
    std::string error;
    if (!parse_host_port(item.Scalar(), hp, error)) return r.error(item, error);
    if (!hp.literal) return r.expected(item, what);
    for (const Address& a : d.server_addresses)
      if (a == hp.address) return r.error(item, "duplicate server " + quote(item.Scalar()));
    d.servers.push_back(item.Scalar());
    d.server_addresses.push_back(hp.address);
  });
}

const Key<DnsConfig> kDnsKeys[] = {
    {"servers", false, read_dns_servers},
    {"min_ttl", false, duration(&DnsConfig::min_ttl, false)},
    {"max_ttl", false, duration(&DnsConfig::max_ttl, false)},
    {"timeout", false, duration(&DnsConfig::timeout, false)},
};

void read_dns(Reader& r, const YAML::Node& n, GlobalConfig& g) {
  if (n.IsNull()) return;
  const size_t before = r.error_count();
  r.map(n, kDnsKeys, g.dns);
  if (r.error_count() == before && g.dns.min_ttl > g.dns.max_ttl)
    r.error(n, "min_ttl (" + format_duration(g.dns.min_ttl) + ") is greater than max_ttl (" +
                   format_duration(g.dns.max_ttl) + ")");
}

void read_workers(Reader& r, const YAML::Node& n, GlobalConfig& g) {
  if (n.IsScalar() && n.Scalar() == "auto") {
    g.workers = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 1024u));
    return;
  }
  long long v;
  if (!n.IsScalar() || !parse_int(n.Scalar(), v) || v < 1 || v > 1024)
    return r.expected(n, "an integer 1..1024 or \"auto\"");
  g.workers = static_cast<int>(v);
}

const Key<GlobalConfig> kGlobalKeys[] = {
    {"workers", false, read_workers},
    {"max_connections", false, integer(&GlobalConfig::max_connections, 0, 10'000'000)},
    {"drain_timeout", false, duration(&GlobalConfig::drain_timeout, true)},
    {"log_level", false, choice(&GlobalConfig::log_level, kLogLevels)},
    {"inspect_timeout", false, duration(&GlobalConfig::inspect_timeout, false)},
    {"splice", false, choice(&GlobalConfig::splice, kSpliceModes)},
    {"admin", false,
     [](Reader& r, const YAML::Node& n, GlobalConfig& g) {
       if (n.IsNull()) return;
       g.admin.emplace();
       r.map(n, kAdminKeys, *g.admin);
     }},
    {"access_log", false,
     [](Reader& r, const YAML::Node& n, GlobalConfig& g) {
       if (n.IsNull()) return;
       g.access_log.emplace();
       r.map(n, kAccessLogKeys, *g.access_log);
     }},
    {"state_file", false,
     [](Reader& r, const YAML::Node& n, GlobalConfig& g) {
       r.text(n, g.state_file, "a file name (absolute)",
              [](const std::string& s) { return s.empty() || s[0] == '/'; });
     }},
    {"dns", false, read_dns},
};

const Key<Config> kTopKeys[] = {
    {"global", false, nested(&Config::global, kGlobalKeys)},
    {"services", false,
     [](Reader& r, const YAML::Node& n, Config& c) {
       if (n.IsNull()) return;
       r.sequence(n, [&](const YAML::Node& item) {
         ServiceConfig s;
         r.begin_service(c.services.size());
         r.map(item, kServiceKeys, s);
         r.end_service(item, s);
         c.services.push_back(std::move(s));
       });
     }},
};

ConfigResult fail(Errors&& errors) {
  return ConfigResult{std::nullopt, std::move(errors).finish()};
}

std::string too_large(size_t bytes) {
  return "file is too large (" + std::to_string(bytes) + " bytes, at most " +
         std::to_string(kMaxFileBytes) + "), not parsed";
}

ConfigResult parse(std::string_view yaml_text, Errors& errors) {
  if (yaml_text.size() > kMaxFileBytes)
    return errors.add(too_large(yaml_text.size())), fail(std::move(errors));
  const std::string text(yaml_text);
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    LimitCheck limits;
    parser.HandleNextDocument(limits);
    if (parser.HandleNextDocument(limits)) errors.add("only one YAML document is allowed");
  } catch (const LimitExceeded& e) {
    errors.add(e.mark, "", e.message);
  } catch (const YAML::DeepRecursion& e) {
    errors.add(e.mark, "", "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
  } catch (const YAML::ParserException& e) {
    errors.add(e.mark, "", "invalid YAML: " + e.msg);
  }
  if (!errors.empty()) return fail(std::move(errors));

  const YAML::Node root = YAML::Load(text);
  if (root.IsNull()) return errors.add("config is empty"), fail(std::move(errors));
  if (!root.IsMap()) {
    errors.add(root.Mark(), "", "top level must be a mapping, got " + Reader::describe(root));
    return fail(std::move(errors));
  }
  Config config;
  Reader reader(errors);
  reader.map(root, kTopKeys, config);
  if (!errors.empty()) return fail(std::move(errors));
  return ConfigResult{std::move(config), {}};
}

}  // namespace

std::string_view to_string(Algorithm a) { return name_of(kAlgorithms, a); }
std::string_view to_string(ProxyProtocol p) { return name_of(kProxyProtocols, p); }
std::string_view to_string(HealthType t) { return name_of(kHealthTypes, t); }
std::string_view to_string(LogLevel l) { return name_of(kLogLevels, l); }

ConfigResult parse_config(std::string_view yaml_text, const std::string& file_name) {
  Errors errors(file_name);
  try {
    return parse(yaml_text, errors);
  } catch (const YAML::Exception& e) {
    errors.add(e.mark, "", "invalid YAML: " + e.msg);
  } catch (const std::exception& e) {
    errors.add(std::string("cannot load: ") + e.what());
  } catch (...) {
    errors.add("cannot load: unknown error");
  }
  return fail(std::move(errors));
}

ConfigResult load_config(const std::string& path) {
  Errors errors(path);
  auto cannot_read = [&](int err) {
    errors.add("cannot read: " + std::error_code(err, std::generic_category()).message());
    return fail(std::move(errors));
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cannot_read(errno);
  struct stat st {};
  if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    int err = S_ISDIR(st.st_mode) ? EISDIR : errno;
    ::close(fd);
    return cannot_read(err);
  }
  if (S_ISREG(st.st_mode) && static_cast<size_t>(st.st_size) > kMaxFileBytes) {
    ::close(fd);
    errors.add(too_large(static_cast<size_t>(st.st_size)));
    return fail(std::move(errors));
  }
  std::string text;
  char buf[65536];
  while (text.size() <= kMaxFileBytes) {  // bounded even for /dev/zero
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return cannot_read(err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return parse_config(text, path);
}

}  // namespace l4lb
