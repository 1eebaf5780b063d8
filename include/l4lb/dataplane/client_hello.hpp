// The server name a TLS client asks for, read from its ClientHello without decrypting
// anything (routing by TLS server name, INTERFACE.md). Pure: reads only the bytes given,
// no I/O, no state between calls; allocates at most the name.
//
// Incremental by re-parsing: the caller keeps every byte the client sent so far (at most
// kMaxRead) and calls parse_client_hello() on all of them after each read, until the status
// is not NeedMore. The answer for a prefix of a byte stream is NeedMore or the answer for the
// whole stream: never a different one.
//
// What is accepted, strictly (RFC 8446 §4.1.2 and §5.1, RFC 5246 §6.2 and §7.4.1.2, RFC 6066 §3):
//   - TLS records of type 22 (handshake), version 3.x (any minor: RFC 8446 says a ClientHello's
//     record version is to be ignored), length 1..16384 (2^14, the plaintext maximum); only
//     handshake records until the ClientHello is complete (one message may span any number of
//     records, each with its own 5-byte header);
//   - a handshake message of type 1 (ClientHello) whose 24-bit length is at most kMaxHello;
//   - a body of: legacy_version 3.x, random (32), session_id (0..32), cipher_suites (even,
//     at least 2 bytes), compression_methods (at least 1), then either nothing (no extensions)
//     or an extensions block that fills the rest of the message exactly, each extension's
//     length fitting in it;
//   - at most one server_name extension (type 0) holding a server_name_list of exactly one
//     entry, of name_type 0 (host_name), whose name is valid_server_name() (OpenSSL and
//     BoringSSL servers also refuse any other list).
// Bytes after the ClientHello (in its last record or after it) are not looked at.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace l4lb {

// Largest ClientHello body: the handshake message's 24-bit length field (its 4-byte header
// not counted). Larger is TooLarge, decided as soon as that header is seen.
constexpr size_t kMaxHello = 16384;

// Most bytes a caller needs to keep: a kMaxHello message with its 4-byte handshake header and
// room for 204 record headers (a real client uses 1 or 2 records; a client splitting a 16 KiB
// hello into more than ~200 records is refused). Only the first kMaxRead bytes of BUF are
// read; a ClientHello that is not complete within them is TooLarge. So NeedMore always comes
// with fewer than kMaxRead bytes.
constexpr size_t kMaxRead = kMaxHello + 1024;

// Longest server name accepted, a trailing dot included.
constexpr size_t kMaxServerName = 255;

enum class HelloStatus {
  NeedMore,   // a valid prefix of a ClientHello: read more, call again
  Done,       // a complete, valid ClientHello; server_name is its name (empty if none)
  NotTls,     // the first record is not a TLS/SSL3 handshake record: its first byte is not 22
              // or its second (version major) is not 3. An SSLv2-compatible hello (first byte
              // with the top bit set, no extensions possible) is NotTls too, as are HTTP, SSH...
  TooLarge,   // a ClientHello longer than kMaxHello, or not complete within kMaxRead bytes
  Malformed,  // a TLS handshake record, but not a ClientHello as described above
};

struct HelloResult {
  HelloStatus status = HelloStatus::NeedMore;
  // Done only: the host_name as the client sent it (case and any trailing dot kept), or empty
  // when the hello has no server_name extension.
  std::string server_name;
  // NeedMore only: the fewest further bytes after which the answer can be Done (at least 1).
  // A caller may wait for that many before calling again, which bounds the parsing work to
  // O(n log n) against a client that sends a byte at a time; it then learns of an error in
  // the bytes received meanwhile at that next call only (or at its inspect timeout).
  size_t need = 0;
};

// Parses the bytes a client sent first. BUF is everything received so far (bytes past
// kMaxRead are ignored).
HelloResult parse_client_hello(std::span<const uint8_t> buf);

// A server name as accepted in a ClientHello (and as the name part of an `sni` pattern):
// 1..255 bytes of ASCII letters, digits, '-', '_' and '.', in labels of 1..63 bytes
// separated by single dots, with at most one trailing dot ("a.b." yes; ".a", "a..b", "."
// no). This is a DNS host name as RFC 6066 says clients send (IDNs as A-labels), with '_'
// allowed (used by some internal hosts) and the trailing dot some clients send; it keeps
// names safe to log unescaped. IP literals: IPv4 passes (digits and dots), IPv6 does not.
bool valid_server_name(std::string_view name);

// "need_more", "done", "not_tls", "too_large", "malformed".
std::string_view hello_status_name(HelloStatus status);

}  // namespace l4lb
