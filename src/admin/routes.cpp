#include "l4lb/admin/routes.hpp"

#include "l4lb/base/text.hpp"

#include <nlohmann/json.hpp>

namespace l4lb::admin {

namespace {

constexpr std::string_view kAllowRead = "GET, HEAD";
constexpr std::string_view kAllowPut = "PUT";
constexpr std::string_view kAllowDelete = "DELETE";

std::string_view trim_body(std::string_view s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

Route found(Endpoint e, std::string service = {}, std::string backend = {}) {
  Route r;
  r.action.endpoint = e;
  r.action.service = std::move(service);
  r.action.backend = std::move(backend);
  return r;
}

Route status(int code, std::string_view allow = {}) {
  Route r;
  r.status = code;
  r.allow = allow;
  return r;
}

}  // namespace

std::string_view endpoint_name(Endpoint e) {
  switch (e) {
    case Endpoint::Health: return "health";
    case Endpoint::Stats: return "stats";
    case Endpoint::Metrics: return "metrics";
    case Endpoint::BackendState: return "state";
    case Endpoint::BackendWeight: return "weight";
    case Endpoint::BackendConnections: return "connections";
  }
  return "health";
}

Route route(std::string_view method, const std::vector<std::string>& segments) {
  if (segments.size() == 1) {
    const std::string& s = segments[0];
    Endpoint e;
    if (s == "health") {
      e = Endpoint::Health;
    } else if (s == "stats") {
      e = Endpoint::Stats;
    } else if (s == "metrics") {
      e = Endpoint::Metrics;
    } else {
      return status(404);
    }
    if (!http::is_read_method(method)) return status(405, kAllowRead);
    return found(e);
  }
  if (segments.size() == 5 && segments[0] == "services" && segments[2] == "backends" &&
      !segments[1].empty() && !segments[3].empty()) {
    const std::string& last = segments[4];
    if (last == "state" || last == "weight") {
      if (method != "PUT") return status(405, kAllowPut);
      return found(last == "state" ? Endpoint::BackendState : Endpoint::BackendWeight, segments[1],
                   segments[3]);
    }
    if (last == "connections") {
      if (method != "DELETE") return status(405, kAllowDelete);
      return found(Endpoint::BackendConnections, segments[1], segments[3]);
    }
  }
  return status(404);
}

bool token_equal(std::string_view a, std::string_view b) {
  // Every byte position up to the longer length is visited and folded into DIFF; the
  // compiler cannot stop early because DIFF is volatile. The branches on I depend only
  // on the lengths.
  size_t n = a.size() > b.size() ? a.size() : b.size();
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  return diff == 0;
}

Auth check_authorization(std::string_view header, std::string_view token) {
  constexpr std::string_view scheme = "Bearer";
  if (token.empty()) return Auth::Wrong;
  if (header.size() < scheme.size() + 2 || !iequals(header.substr(0, scheme.size()), scheme) ||
      header[scheme.size()] != ' ')
    return Auth::Wrong;
  std::string_view credentials = header.substr(scheme.size() + 1);  // a second space stays in it
  return token_equal(credentials, token) ? Auth::Ok : Auth::Wrong;
}

Auth check_authorization(const http::Request& req, std::string_view token) {
  if (req.authorization_count == 0) return Auth::Missing;
  if (req.authorization_count > 1) return Auth::Wrong;
  return check_authorization(req.authorization, token);
}

http::Response json_error(int status, std::string_view message) {
  http::Response r;
  r.status = status;
  r.content_type = "application/json";
  nlohmann::json body = {{"error", std::string(message)}};
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

Decision decide(const http::Request& req, bool has_token, std::string_view token, bool is_unix) {
  Decision d;
  if (!is_unix && !http::is_read_method(req.method)) {
    if (!has_token || token.empty()) {
      d.error = json_error(403, "write requests over TCP need global.admin.token_file");
      return d;
    }
    Auth a = check_authorization(req, token);
    if (a != Auth::Ok) {
      d.error = json_error(401, a == Auth::Missing ? "missing Authorization: Bearer <token>"
                                                   : "wrong token");
      d.error.www_authenticate = "Bearer";
      return d;
    }
  }
  std::vector<std::string> segments;
  Route r = http::split_path(req.path, segments) ? route(req.method, segments) : status(404);
  if (r.status == 404) {
    d.error = json_error(404, "no such path");
  } else if (r.status == 405) {
    d.error = json_error(405, "method not allowed (allowed: " + std::string(r.allow) + ")");
    d.error.allow = std::string(r.allow);
  } else {
    d.action = std::move(r.action);
  }
  return d;
}

bool parse_state_body(std::string_view body, control::AdminState& out, std::string& error) {
  std::optional<control::AdminState> s = control::parse_admin_state(trim_body(body));
  if (!s) {
    error = "the body must be ready, drain or maint";
    return false;
  }
  out = *s;
  return true;
}

bool parse_weight_body(std::string_view body, WeightBody& out, std::string& error) {
  std::string_view v = trim_body(body);
  if (v == "config") {
    out = WeightBody{true, 0};
    return true;
  }
  bool ok = !v.empty() && v.size() <= 4 && v.front() != '0';  // 4 digits: no overflow
  int n = 0;
  for (size_t i = 0; ok && i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') ok = false;
    n = n * 10 + (v[i] - '0');
  }
  if (!ok || n < control::kMinWeight || n > control::kMaxWeight) {
    error = "the body must be an integer 1..1000 or config";
    return false;
  }
  out = WeightBody{false, n};
  return true;
}

}  // namespace l4lb::admin
