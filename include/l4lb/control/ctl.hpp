// `l4lb ctl`: the command-line client of the admin listener (INTERFACE.md "Command line").
//
//   l4lb ctl [-c FILE] COMMAND ...
//     status                             one line per backend: SERVICE BACKEND STATE WEIGHT ACTIVE
//     drain|ready|maint SERVICE BACKEND  PUT /services/S/backends/B/state
//     weight SERVICE BACKEND N|config    PUT /services/S/backends/B/weight
//     close SERVICE BACKEND              DELETE /services/S/backends/B/connections
//
// Exit codes: 0 done; 1 l4lb answered with an error (its message on stderr); 2 bad
// command line; 3 could not reach l4lb or may not write (no admin listener in FILE, an
// invalid FILE, refused, timeout, a broken or non-HTTP answer, 401/403).
//
// Split in pure steps (tested without sockets): parse_args -> build_request ->
// serialize_request -> [exchange: the only I/O] -> parse_response -> interpret.
#pragma once
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "l4lb/base/address.hpp"

namespace l4lb::ctl {

constexpr int kExitOk = 0, kExitAnswerError = 1, kExitUsage = 2, kExitUnreachable = 3;
constexpr const char* kDefaultConfig = "/etc/l4lb/l4lb.yaml";
constexpr size_t kMaxAnswer = 16u << 20;            // 16 MiB: a longer answer is an error
constexpr std::chrono::milliseconds kTimeout{5000};  // connect + send + whole answer

// ------------------------------------------------------------------ command line

enum class Verb { Status, State, Weight, Close };

struct Command {
  Verb verb = Verb::Status;
  std::string config_path = kDefaultConfig;
  std::string service;  // State, Weight, Close
  std::string backend;  // State, Weight, Close: the address as /stats shows it
  std::string value;    // State: "ready"|"drain"|"maint"; Weight: "1".."1000" or "config"
  bool operator==(const Command&) const = default;
};

enum class ParseOutcome { Ok, Help, Usage };

// ARGS are the words after "ctl" ({"-c", "x.yaml", "drain", "web", "127.0.0.1:8001"}).
// Options -c/--config FILE and -h/--help (getopt_long; options may follow the command,
// "--" ends them). Ok: OUT is set. Help: -h was given (the rest is not checked beyond
// the options). Usage: ERROR says what is wrong (exit 2). N of `weight` is checked with
// admin::parse_weight_body and kept in its canonical form ("5", "config").
ParseOutcome parse_args(const std::vector<std::string>& args, Command& out, std::string& error);

// The text of `l4lb ctl --help` (also the tail of `l4lb --help`).
std::string usage_text();

// ------------------------------------------------------------------ request

// S with every byte but the unreserved ones (A-Z a-z 0-9 - . _ ~) as %XX (upper-case).
std::string percent_encode(std::string_view s);

struct Request {
  std::string method;  // "GET", "PUT", "DELETE"
  std::string path;    // "/stats", "/services/web/backends/127.0.0.1%3A8001/state"
  std::string body;    // PUT: "drain", "5", "config"; else empty
  bool write = false;  // PUT/DELETE: needs the token over TCP
  bool operator==(const Request&) const = default;
};

Request build_request(const Command& cmd);

// The bytes sent: HTTP/1.1, "Host: l4lb", "Connection: close", "Authorization: Bearer
// TOKEN" when TOKEN is not empty, Content-Length on PUT and DELETE (0 for DELETE), then
// the body. A TOKEN with a byte outside visible ASCII is left out (it could not be a
// valid header; the config rejects such a token anyway).
std::string serialize_request(const Request& req, std::string_view token);

// ------------------------------------------------------------------ answer

struct Response {
  int status = 0;
  std::string content_type;  // lower-cased header name's value, as sent
  std::string body;
};

// RAW is the whole answer, read until EOF. Strict: "HTTP/1.x DDD reason" then header
// lines ("name: value", CRLF or LF), an empty line, the body: exactly Content-Length
// bytes when the header is there (repeated ones must agree; fewer bytes = truncated,
// more = an error), else everything up to EOF. Transfer-Encoding, a 1xx status, a head
// over 64 KiB or without its end are errors. False with ERROR (a short reason) then.
bool parse_response(std::string_view raw, Response& out, std::string& error);

// The message of an error answer: the "error" string of a JSON {"error": ...} body, else
// the body's first line, else "HTTP <status>"; control bytes replaced by '?', at most
// 512 bytes.
std::string error_message(const Response& r);

// ------------------------------------------------------------------ status table

// /stats JSON -> one line per backend, "SERVICE BACKEND STATE WEIGHT ACTIVE", each column
// padded to its widest value + 2 spaces, trailing spaces trimmed. After the five columns,
// aligned as well and only where they say something: "configured=N" (the file's weight,
// when it differs from the weight in force), "override=state:S,weight:W" (the properties
// set through the admin port), "last_check=TIME" ("-" before the first check). WEIGHT is
// the weight in force, 0 when /stats has none. False with ERROR when STATS_JSON is not a
// JSON object with a "services" list.
bool format_status(std::string_view stats_json, std::string& out, std::string& error);

// Rows of cells -> aligned text, one line per row (columns empty in every row dropped;
// each cell padded to its column's width + 2; no trailing spaces).
std::string align_columns(const std::vector<std::vector<std::string>>& rows);

// ------------------------------------------------------------------ outcome

struct Outcome {
  int exit_code = kExitOk;
  std::string out;  // for stdout (ends in '\n' when not empty)
  std::string err;  // for stderr, without the "l4lb ctl: " prefix; empty on success
};

// What an answer to CMD means: 200 -> 0 and the status table, or "SERVICE BACKEND: state
// drain" / "...: weight 5" / "...: closed 3" (from the answer's JSON, else what was
// asked); 401/403 -> 3 (may not write); any other status -> 1 with error_message().
// A 200 to `status` whose body is not /stats JSON -> 1.
Outcome interpret(const Command& cmd, const Response& r);

// ------------------------------------------------------------------ I/O

struct Target {
  bool is_unix = false;
  std::string unix_path;  // is_unix
  Address tcp;            // else; a wildcard address (0.0.0.0, ::) means its loopback
  std::string display;    // "127.0.0.1:9900", "unix:/run/l4lb/admin.sock" for messages
};

// Connects to TARGET, sends REQUEST, reads the answer until EOF: at most MAX bytes,
// everything within TIMEOUT. False with ERROR ("connect: Connection refused", "timed out
// after 5s", "answer over 16 MiB") on failure.
bool exchange(const Target& target, std::string_view request, std::string& answer,
              std::string& error, std::chrono::milliseconds timeout = kTimeout,
              size_t max = kMaxAnswer);

// `l4lb ctl ...`: ARGV[0] is "ctl", the rest its arguments. Returns the exit code.
int run_ctl(int argc, char** argv);

}  // namespace l4lb::ctl
