// The admin port's routing and write-request checks, pure (no state, no sockets):
// which endpoint a request names, whether it may be served (authorisation, path,
// method, in INTERFACE.md's order), and the parsers of the write bodies.
//
//   GET|HEAD /health | /stats | /metrics                       read endpoints
//   PUT    /services/{service}/backends/{backend}/state        body ready|drain|maint
//   PUT    /services/{service}/backends/{backend}/weight       body 1..1000|config
//   DELETE /services/{service}/backends/{backend}/connections  no body needed
//
// Paths are matched on their percent-decoded segments (http::split_path): exact
// segments, no normalisation, so "/health/", "//health", "/stats%zz" and an empty
// {service} or {backend} are 404. Methods are case-sensitive ("get" is 405).
// Whether {service} and {backend} exist is the caller's question (404 too).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "l4lb/admin/admin_http.hpp"
#include "l4lb/control/state_file.hpp"

namespace l4lb::admin {

enum class Endpoint { Health, Stats, Metrics, BackendState, BackendWeight, BackendConnections };

// "health", "stats", "metrics", "state", "weight", "connections" (the last path segment).
std::string_view endpoint_name(Endpoint e);

// True for the endpoints that change something (PUT/DELETE, authorisation on TCP).
inline bool is_write(Endpoint e) {
  return e == Endpoint::BackendState || e == Endpoint::BackendWeight ||
         e == Endpoint::BackendConnections;
}

struct Action {
  Endpoint endpoint = Endpoint::Health;
  std::string service;  // decoded; set for the write endpoints only
  std::string backend;  // decoded, as /stats shows it; write endpoints only
  bool operator==(const Action&) const = default;
};

// ------------------------------------------------------------------ routing

struct Route {
  int status = 200;        // 200: ACTION is set; 404: no such path; 405: wrong method
  Action action;           // when 200
  std::string_view allow;  // when 405: the Allow header's value ("GET, HEAD", "PUT", "DELETE")
};

// Maps (METHOD, decoded SEGMENTS) to an action, 404 or 405. Pure.
Route route(std::string_view method, const std::vector<std::string>& segments);

// ------------------------------------------------------------------ authorisation

// A == B, in time that depends only on the two lengths (max of them), never on the
// contents: the position of the first difference does not leak. The lengths do (a
// token's length is not a secret worth the complexity of hiding it).
bool token_equal(std::string_view a, std::string_view b);

enum class Auth { Missing, Wrong, Ok };

// HEADER is an Authorization value: Ok when it is "Bearer <token>" (the scheme in any
// case, exactly one space, the rest equal to TOKEN by token_equal), else Wrong. An empty
// TOKEN never matches. The Request form is Missing without the header, Wrong when it came
// more than once.
Auth check_authorization(std::string_view header, std::string_view token);
Auth check_authorization(const http::Request& req, std::string_view token);

// ------------------------------------------------------------------ the decision

// An answer with a JSON body {"error":"<message>"} (application/json).
http::Response json_error(int status, std::string_view message);

struct Decision {
  std::optional<Action> action;  // set: the request may be served as this action
  http::Response error;          // when ACTION is not set: answer this (401/403/404/405)
};

// Whether REQ (parsed, Done) may be served, in INTERFACE.md's order. On a TCP listener
// (IS_UNIX false) a request whose method is not GET or HEAD is checked for
// authorisation first — 403 when no token_file is configured (HAS_TOKEN false, or an
// empty TOKEN), 401 (with "WWW-Authenticate: Bearer") when the header is missing or
// wrong — then the path (404), then the method (405, with Allow). GET and HEAD, and
// every request on a unix socket, need no token (one given is ignored): path, then
// method. Error bodies are JSON. Body checks (400) and whether the service and backend
// exist (404) come after this, and are the caller's.
Decision decide(const http::Request& req, bool has_token, std::string_view token, bool is_unix);

// ------------------------------------------------------------------ bodies

// PUT .../state: "ready", "drain" or "maint" with any whitespace (space, tab, CR, LF)
// around it. False with ERROR (a message for json_error(400, ...)) otherwise.
bool parse_state_body(std::string_view body, control::AdminState& out, std::string& error);

struct WeightBody {
  bool config = false;  // "config": back to the file's weight
  int weight = 0;       // else control::kMinWeight..kMaxWeight
  bool operator==(const WeightBody&) const = default;
};

// PUT .../weight: a decimal integer 1..1000 (digits only: no sign, no leading zero) or
// "config", with whitespace around it as for the state. False with ERROR otherwise.
// Also what `l4lb ctl weight` accepts for N.
bool parse_weight_body(std::string_view body, WeightBody& out, std::string& error);

}  // namespace l4lb::admin
