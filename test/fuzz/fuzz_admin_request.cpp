// The admin port's incremental request parser, and what the admin port does with a
// parsed request: path segments, routing, the write checks (decide()), the body parsers,
// the token compare, and the state file's JSON (the body, and the whole input, read as
// a state file). The first byte picks chunk sizes (from the next bytes) for feeding the
// rest: the outcome must not depend on how the bytes arrive, and must be NeedMore, Done
// (a sane request) or Error (400/411/413/431).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz.hpp"
#include "l4lb/admin/admin_http.hpp"
#include "l4lb/admin/routes.hpp"
#include "l4lb/base/file.hpp"
#include "l4lb/control/state_file.hpp"

using l4lb::http::ParseStatus;
using l4lb::http::RequestParser;
namespace admin = l4lb::admin;
namespace control = l4lb::control;

namespace {

constexpr std::string_view kToken = "s3cr3t";  // the seeds send "Bearer s3cr3t"

bool is_unreserved(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Segments percent-encoded (everything but unreserved bytes) and joined: a path that
// split_path must turn back into the same segments.
std::string encode_path(const std::vector<std::string>& segments) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (const auto& s : segments) {
    out += '/';
    for (char ch : s) {
      auto c = static_cast<unsigned char>(ch);
      if (is_unreserved(c)) {
        out += ch;
      } else {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
  }
  return out;
}

std::string_view trim(std::string_view s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

bool ilower_equals(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

// Reading any text as a state file never fails badly; what it accepts round-trips.
void check_state_file(std::string_view text) {
  control::Overrides o;
  std::string err;
  if (!control::from_json(text, o, err)) {
    FUZZ_CHECK(!err.empty() && o.empty());
    return;
  }
  std::string out = control::to_json(o);
  control::Overrides back;
  FUZZ_CHECK(control::from_json(out, back, err));
  FUZZ_CHECK(back == o);
  FUZZ_CHECK(control::to_json(back) == out);
  for (const auto& [key, v] : o) {
    FUZZ_CHECK(!key.service.empty() && !key.backend.empty() && !v.empty());
    FUZZ_CHECK(!v.weight || (*v.weight >= control::kMinWeight && *v.weight <= control::kMaxWeight));
  }
}

void check_error_response(const l4lb::http::Response& r) {
  FUZZ_CHECK(r.content_type == "application/json");
  FUZZ_CHECK(nlohmann::json::accept(r.body));
  auto j = nlohmann::json::parse(r.body);
  FUZZ_CHECK(j.is_object() && j.size() == 1 && j.contains("error") && j["error"].is_string());
  FUZZ_CHECK((r.status == 405) == !r.allow.empty());
  FUZZ_CHECK((r.status == 401) == (r.www_authenticate == "Bearer"));
  std::string out = l4lb::http::serialize(r, false);
  FUZZ_CHECK(out.rfind("HTTP/1.1 ", 0) == 0);
}

// What the admin port would decide for a complete request, under each configuration.
void check_request(const l4lb::http::Request& req) {
  const bool read = l4lb::http::is_read_method(req.method);

  // The body: exactly Content-Length bytes, never for GET and HEAD, at most 1 KiB.
  if (read) {
    FUZZ_CHECK(req.body.empty());
  } else {
    FUZZ_CHECK(req.body.size() == req.content_length.value_or(0));
    FUZZ_CHECK(req.body.size() <= RequestParser::kMaxBody);
  }
  FUZZ_CHECK(req.authorization_count >= 0);
  FUZZ_CHECK(req.authorization_count > 0 || req.authorization.empty());

  // Path segments: split at every '/', decoded, and re-encoding gives them back.
  std::vector<std::string> segments;
  bool split = l4lb::http::split_path(req.path, segments);
  if (split) {
    size_t slashes = 0;
    for (char c : req.path) slashes += c == '/';
    FUZZ_CHECK(segments.size() == slashes);
    for (const auto& s : segments)
      for (char c : s) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
    std::vector<std::string> again;
    FUZZ_CHECK(l4lb::http::split_path(encode_path(segments), again));
    FUZZ_CHECK(again == segments);
  } else {
    FUZZ_CHECK(segments.empty());
  }

  // Routing: 200 only with the method the endpoint takes, 405 with its Allow.
  admin::Route r = admin::route(req.method, segments);
  FUZZ_CHECK(r.status == 200 || r.status == 404 || r.status == 405);
  if (r.status == 200) {
    FUZZ_CHECK(split);
    admin::Endpoint e = r.action.endpoint;
    if (admin::is_write(e)) {
      FUZZ_CHECK(!r.action.service.empty() && !r.action.backend.empty());
      FUZZ_CHECK(req.method == (e == admin::Endpoint::BackendConnections ? "DELETE" : "PUT"));
      FUZZ_CHECK(segments.size() == 5 && segments[4] == admin::endpoint_name(e));
    } else {
      FUZZ_CHECK(read && r.action.service.empty() && r.action.backend.empty());
      FUZZ_CHECK(segments.size() == 1 && segments[0] == admin::endpoint_name(e));
    }
  } else if (r.status == 405) {
    FUZZ_CHECK(r.allow == "GET, HEAD" || r.allow == "PUT" || r.allow == "DELETE");
  }

  // The Authorization check against a reference reading of "Bearer <token>".
  admin::Auth auth = admin::check_authorization(req, kToken);
  bool right = req.authorization_count == 1 && req.authorization.size() == 7 + kToken.size() &&
               ilower_equals(req.authorization.substr(0, 7), "bearer ") &&
               req.authorization.substr(7) == kToken;
  FUZZ_CHECK((auth == admin::Auth::Ok) == right);
  FUZZ_CHECK((auth == admin::Auth::Missing) == (req.authorization_count == 0));

  // decide(): authorisation (TCP, not GET/HEAD), then path, then method.
  for (bool unix_socket : {false, true}) {
    for (bool has_token : {false, true}) {
      admin::Decision d = admin::decide(req, has_token, has_token ? kToken : "", unix_socket);
      int want = r.status;
      if (!unix_socket && !read) {
        if (!has_token) want = 403;
        else if (auth != admin::Auth::Ok) want = 401;
      }
      if (d.action) {
        FUZZ_CHECK(want == 200 && *d.action == r.action);
      } else {
        FUZZ_CHECK(d.error.status == want);
        check_error_response(d.error);
      }
    }
  }

  // The bodies' parsers.
  control::AdminState state{};
  std::string err;
  if (admin::parse_state_body(req.body, state, err)) {
    FUZZ_CHECK(trim(req.body) == control::admin_state_name(state));
  } else {
    FUZZ_CHECK(!control::parse_admin_state(trim(req.body)));
    check_error_response(admin::json_error(400, err));
  }
  admin::WeightBody w;
  if (admin::parse_weight_body(req.body, w, err)) {
    FUZZ_CHECK(w.config ? trim(req.body) == "config"
                        : w.weight >= 1 && w.weight <= 1000 && trim(req.body) == std::to_string(w.weight));
  }
  FUZZ_CHECK(admin::token_equal(req.body, req.authorization) == (req.body == req.authorization));
  FUZZ_CHECK(admin::token_equal(req.body, req.body));
  std::string token;
  if (l4lb::token_from_file(req.body, token, err)) {
    FUZZ_CHECK(!token.empty() && req.body.rfind(token, 0) == 0);
  }
  check_state_file(req.body);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t nsizes = data[0] % 8 + 1;  // how many chunk-size bytes follow
  if (size < 1 + nsizes) return 0;
  const uint8_t* sizes = data + 1;
  const std::string_view in = fuzz_text(data + 1 + nsizes, size - 1 - nsizes);

  RequestParser whole;
  ParseStatus expected = whole.feed(in);

  RequestParser chunked;
  ParseStatus st = ParseStatus::NeedMore;
  size_t pos = 0, i = 0;
  while (pos < in.size()) {
    size_t n = sizes[i++ % nsizes] % 64;
    if (n == 0) {  // an empty feed, then one byte
      FUZZ_CHECK(chunked.feed({}) == chunked.status());
      n = 1;
    }
    n = std::min(n, in.size() - pos);
    st = chunked.feed(in.substr(pos, n));
    FUZZ_CHECK(st == chunked.status());
    pos += n;
  }
  st = chunked.feed({});
  FUZZ_CHECK(st == expected);
  FUZZ_CHECK(st == ParseStatus::NeedMore || st == ParseStatus::Done || st == ParseStatus::Error);
  FUZZ_CHECK(chunked.head_bytes() <= RequestParser::kMaxHead + 1);
  if (st == ParseStatus::Done) {
    const auto& a = chunked.request();
    const auto& b = whole.request();
    FUZZ_CHECK(a.method == b.method && a.target == b.target && a.path == b.path &&
               a.version_minor == b.version_minor && a.content_length == b.content_length &&
               a.body == b.body && a.authorization == b.authorization &&
               a.authorization_count == b.authorization_count);
    FUZZ_CHECK(!a.method.empty() && !a.path.empty());
    FUZZ_CHECK(a.path[0] == '/' || a.path == "*");
    FUZZ_CHECK(a.version_minor == 0 || a.version_minor == 1);
    check_request(a);
  } else if (st == ParseStatus::Error) {
    int e = chunked.error_status();
    FUZZ_CHECK(e == whole.error_status() && chunked.error_reason() == whole.error_reason());
    FUZZ_CHECK(e == 400 || e == 411 || e == 413 || e == 431);
    // The answer the admin port would send is well formed.
    std::string out = l4lb::http::serialize(l4lb::http::error_response(e, chunked.error_reason()), false);
    FUZZ_CHECK(out.rfind("HTTP/1.1 ", 0) == 0);
  }
  check_state_file(in);
  return 0;
}
