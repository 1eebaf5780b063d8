#include "l4lb/control/state_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace l4lb::control {

namespace {

using nlohmann::json;

// ------------------------------------------------------------------ reading JSON strictly

constexpr size_t kMaxDepth = 3;  // the root object, "overrides", one entry

// Builds the document like nlohmann's own DOM parser, but refuses duplicate keys and
// nesting deeper than the format has (so a hostile file cannot make deep trees).
class StrictSax : public nlohmann::json_sax<json> {
 public:
  json root;
  std::string error;

  bool null() override { return put(json(nullptr)); }
  bool boolean(bool v) override { return put(json(v)); }
  bool number_integer(number_integer_t v) override { return put(json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return put(json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return put(json(v)); }
  bool string(string_t& v) override { return put(json(std::move(v))); }
  bool binary(binary_t&) override { return fail("binary values are not JSON"); }
  bool start_object(std::size_t) override { return open(json::object()); }
  bool start_array(std::size_t) override { return open(json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    if (stack_.back()->contains(k)) return fail("duplicate key " + json(k).dump());
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) override {
    std::string what = ex.what();
    size_t p = what.find("] ");  // drop "[json.exception.parse_error.101] "
    return fail("invalid JSON: " + (p == std::string::npos ? what : what.substr(p + 2)));
  }

 private:
  bool fail(std::string e) {
    if (error.empty()) error = std::move(e);
    return false;
  }
  json* add(json&& v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    json* top = stack_.back();
    if (top->is_array()) {
      top->push_back(std::move(v));
      return &top->back();
    }
    json& slot = (*top)[key_];
    slot = std::move(v);
    return &slot;
  }
  bool put(json&& v) {
    add(std::move(v));
    return true;
  }
  bool open(json&& v) {
    if (stack_.size() >= kMaxDepth) return fail("nested deeper than the format has");
    stack_.push_back(add(std::move(v)));
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }

  std::vector<json*> stack_;  // the open containers; pointers stay valid (only the top grows)
  std::string key_;
};

// A value as shown in a message: its JSON text, at most about 40 bytes.
std::string shown(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() <= 40) return s;
  size_t n = 37;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // whole UTF-8 only
  return s.substr(0, n) + "...";
}

std::string_view type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_float()) return "a non-integer number";
  if (v.is_number()) return "an integer";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

bool check_entry(const json& e, const std::string& where, BackendKey& key, Override& o,
                 std::string& error) {
  if (!e.is_object()) {
    error = where + ": must be an object, got " + std::string(type_name(e));
    return false;
  }
  for (const auto& [k, v] : e.items()) {
    if (k != "service" && k != "backend" && k != "state" && k != "weight" && k != "file_drain" &&
        k != "file_weight") {
      error = where + ": unknown key " + json(k).dump();
      return false;
    }
  }
  for (const char* name : {"service", "backend"}) {
    auto it = e.find(name);
    if (it == e.end()) {
      error = where + ": missing \"" + name + "\"";
      return false;
    }
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      error = where + "." + name + ": must be a non-empty string, got " + shown(*it);
      return false;
    }
  }
  key.service = e.at("service").get<std::string>();
  key.backend = e.at("backend").get<std::string>();
  o = {};
  if (auto it = e.find("state"); it != e.end() && !it->is_null()) {
    std::optional<AdminState> s;
    if (it->is_string()) s = parse_admin_state(it->get_ref<const std::string&>());
    if (!s) {
      error = where + ".state: must be \"ready\", \"drain\", \"maint\" or null, got " + shown(*it);
      return false;
    }
    o.state = s;
  }
  if (auto it = e.find("weight"); it != e.end() && !it->is_null()) {
    bool ok = false;
    if (it->is_number_unsigned()) {
      auto w = it->get<uint64_t>();
      ok = w >= static_cast<uint64_t>(kMinWeight) && w <= static_cast<uint64_t>(kMaxWeight);
      if (ok) o.weight = static_cast<int>(w);
    }
    if (!ok) {
      error = where + ".weight: must be an integer 1..1000 or null, got " + shown(*it);
      return false;
    }
  }
  if (auto it = e.find("file_drain"); it != e.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      error = where + ".file_drain: must be true, false or null, got " + shown(*it);
      return false;
    }
    o.file_drain = it->get<bool>();
  }
  if (auto it = e.find("file_weight"); it != e.end() && !it->is_null()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() < static_cast<uint64_t>(kMinWeight) ||
        it->get<uint64_t>() > static_cast<uint64_t>(kMaxWeight)) {
      error = where + ".file_weight: must be an integer 1..1000 or null, got " + shown(*it);
      return false;
    }
    o.file_weight = static_cast<int>(it->get<uint64_t>());
  }
  if (o.empty()) {
    error = where + ": overrides nothing (\"state\" and \"weight\" both null)";
    return false;
  }
  return true;
}

bool check_document(const json& root, Overrides& out, std::string& error) {
  if (!root.is_object()) {
    error = "the top level must be an object, got " + std::string(type_name(root));
    return false;
  }
  auto version = root.find("version");
  if (version == root.end()) {
    error = "missing \"version\"";
    return false;
  }
  if (!version->is_number_integer()) {
    error = "version: must be an integer, got " + shown(*version);
    return false;
  }
  if (!version->is_number_unsigned() || version->get<uint64_t>() != static_cast<uint64_t>(kStateFileVersion)) {
    error = "unsupported version " + shown(*version) + " (this l4lb reads version " +
            std::to_string(kStateFileVersion) + ")";
    return false;
  }
  for (const auto& [k, v] : root.items()) {
    if (k != "version" && k != "overrides") {
      error = "unknown key " + json(k).dump();
      return false;
    }
  }
  auto list = root.find("overrides");
  if (list == root.end()) {
    error = "missing \"overrides\"";
    return false;
  }
  if (!list->is_array()) {
    error = "overrides: must be an array, got " + std::string(type_name(*list));
    return false;
  }
  Overrides result;
  for (size_t i = 0; i < list->size(); ++i) {
    std::string where = "overrides[" + std::to_string(i) + "]";
    BackendKey key;
    Override o;
    if (!check_entry((*list)[i], where, key, o, error)) return false;
    if (!result.emplace(key, o).second) {
      error = where + ": a second entry for service " + json(key.service).dump() + " backend " +
              json(key.backend).dump();
      return false;
    }
  }
  out = std::move(result);
  return true;
}

// ------------------------------------------------------------------ files

}  // namespace

std::string to_json(const Overrides& overrides) {
  std::string out = "{\n  \"version\": " + std::to_string(kStateFileVersion) + ",\n  \"overrides\": [";
  bool first = true;
  for (const auto& [key, o] : overrides) {
    if (key.service.empty() || key.backend.empty()) continue;
    int weight = o.weight.value_or(0);  // 0: none (or out of range: left out)
    if (weight < kMinWeight || weight > kMaxWeight) weight = 0;
    if (!o.state && weight == 0) continue;
    std::string line;
    try {
      line = "{\"service\":" + json(key.service).dump(-1, ' ', false, json::error_handler_t::strict) +
             ",\"backend\":" + json(key.backend).dump(-1, ' ', false, json::error_handler_t::strict);
    } catch (const json::type_error&) {
      continue;  // not valid UTF-8: JSON cannot hold it
    }
    line += ",\"state\":";
    line += o.state ? "\"" + std::string(admin_state_name(*o.state)) + "\"" : std::string("null");
    line += ",\"weight\":";
    line += weight != 0 ? std::to_string(weight) : std::string("null");
    if (o.state && o.file_drain) line += std::string(",\"file_drain\":") + (*o.file_drain ? "true" : "false");
    if (weight != 0 && o.file_weight && *o.file_weight >= kMinWeight && *o.file_weight <= kMaxWeight)
      line += ",\"file_weight\":" + std::to_string(*o.file_weight);
    line += "}";
    out += first ? "\n    " : ",\n    ";
    out += line;
    first = false;
  }
  out += first ? "]\n}\n" : "\n  ]\n}\n";
  return out;
}

bool from_json(std::string_view text, Overrides& out, std::string& error) {
  try {
    if (text.size() > kMaxStateFileBytes) {
      error = "over " + std::to_string(kMaxStateFileBytes) + " bytes";
      return false;
    }
    StrictSax sax;
    if (!json::sax_parse(text.begin(), text.end(), &sax, json::input_format_t::json, true, false)) {
      error = sax.error.empty() ? std::string("invalid JSON") : sax.error;
      return false;
    }
    return check_document(sax.root, out, error);
  } catch (const std::exception& ex) {  // bad_alloc, or a surprise from the library
    error = std::string("cannot read: ") + ex.what();
    return false;
  } catch (...) {
    error = "cannot read";
    return false;
  }
}

}  // namespace l4lb::control
