#include "l4lb/dataplane/client_hello.hpp"

#include <algorithm>

namespace l4lb {
namespace {

constexpr uint8_t kHandshakeRecord = 22;
constexpr uint8_t kClientHello = 1;
constexpr size_t kRecordHeader = 5;
constexpr size_t kMaxRecord = 16384;  // 2^14, a plaintext record's largest fragment
constexpr size_t kHandshakeHeader = 4;
// Smallest body: legacy_version 2, random 32, session_id 1 + 0, cipher_suites 2 + 2,
// compression_methods 1 + 1.
constexpr size_t kMinBody = 41;
constexpr uint16_t kServerNameExt = 0;
constexpr uint8_t kHostName = 0;

// Reads the handshake message out of the records at the start of IN, byte after byte, in
// order; only the message's bytes (the record headers are checked and skipped). Every read
// first checks that it stays within the message (else Malformed), then takes bytes until IN
// ends (NeedMore, or TooLarge when IN is the kMaxRead cap). A read that returns false has set
// status_ (and need_ for NeedMore); the parse stops there.
class Reader {
 public:
  Reader(std::span<const uint8_t> in, bool capped) : in_(in), capped_(capped) {}

  HelloStatus status() const { return status_; }
  size_t need() const { return need_; }
  size_t left() const { return left_; }  // message bytes not read yet

  bool fail(HelloStatus s) {
    status_ = s;
    return false;
  }

  // The 4-byte handshake header has been read: the message's body is LEN bytes.
  void start_body(size_t len) {
    total_ = kHandshakeHeader + len;
    left_ = len;
  }

  // N (1..3) bytes, big-endian.
  bool number(size_t n, uint32_t& v) {
    if (n > left_) return fail(HelloStatus::Malformed);
    v = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!ready()) return false;
      v = (v << 8) | in_[pos_++];
      --frag_left_;
      consumed(1);
    }
    return true;
  }

  // N bytes copied to OUT (OUT = nullptr: skipped).
  bool take(size_t n, uint8_t* out) {
    if (n > left_) return fail(HelloStatus::Malformed);
    while (n > 0) {
      if (!ready()) return false;
      size_t k = std::min({n, frag_left_, in_.size() - pos_});
      if (out) out = std::copy_n(in_.data() + pos_, k, out);
      pos_ += k;
      frag_left_ -= k;
      consumed(k);
      n -= k;
    }
    return true;
  }

 private:
  void consumed(size_t n) {
    read_ += n;
    left_ -= n;
  }

  // True when a message byte is at IN[pos_]: within a record fragment, reading the next
  // record's header first if the current one is used up.
  bool ready() {
    if (frag_left_ == 0 && !record_header()) return false;
    if (pos_ == in_.size()) return stall();
    return true;
  }

  bool record_header() {
    const size_t avail = in_.size() - pos_;
    // The first record decides whether this is TLS at all; a later one is part of a
    // ClientHello already started, so anything but a handshake record is Malformed.
    const HelloStatus wrong = first_ ? HelloStatus::NotTls : HelloStatus::Malformed;
    if (avail >= 1 && in_[pos_] != kHandshakeRecord) return fail(wrong);
    if (avail >= 2 && in_[pos_ + 1] != 3) return fail(wrong);
    if (avail < kRecordHeader) return stall();
    const size_t len = size_t{in_[pos_ + 3]} << 8 | in_[pos_ + 4];
    if (len == 0 || len > kMaxRecord) return fail(HelloStatus::Malformed);
    pos_ += kRecordHeader;
    frag_left_ = len;
    first_ = false;
    return true;
  }

  // IN has ended before the message did.
  bool stall() {
    if (capped_) return fail(HelloStatus::TooLarge);
    // Message bytes still to come: the rest of the message once its length is known, else
    // at least the rest of the handshake header and the smallest body.
    const size_t rest = total_ ? total_ - read_ : kHandshakeHeader + kMinBody - read_;
    if (frag_left_ == 0) {
      need_ = kRecordHeader - (in_.size() - pos_) + rest;  // inside a record header
    } else {
      need_ = rest <= frag_left_ ? rest : rest + kRecordHeader;  // another record must follow
    }
    return fail(HelloStatus::NeedMore);
  }

  std::span<const uint8_t> in_;
  bool capped_;
  size_t pos_ = 0;        // next byte of IN
  size_t frag_left_ = 0;  // bytes of the current record's fragment not read yet
  bool first_ = true;     // no record header read yet
  size_t read_ = 0;       // message bytes read (its header included)
  size_t total_ = 0;      // message length with its header, once known
  size_t left_ = kHandshakeHeader;  // bytes reads may still take: the header, then the body
  HelloStatus status_ = HelloStatus::NeedMore;
  size_t need_ = 0;
};

bool ascii_name_char(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_';
}

// The ClientHello; NAME/NAME_LEN receive the host_name if there is one.
bool parse_message(Reader& r, uint8_t* name, size_t& name_len) {
  uint32_t v = 0;
  if (!r.number(1, v)) return false;
  if (v != kClientHello) return r.fail(HelloStatus::Malformed);
  if (!r.number(3, v)) return false;
  if (v > kMaxHello) return r.fail(HelloStatus::TooLarge);
  r.start_body(v);

  if (!r.number(2, v)) return false;  // legacy_version
  if (v >> 8 != 3) return r.fail(HelloStatus::Malformed);
  if (!r.take(32, nullptr)) return false;  // random
  if (!r.number(1, v)) return false;       // session_id
  if (v > 32) return r.fail(HelloStatus::Malformed);
  if (!r.take(v, nullptr)) return false;
  if (!r.number(2, v)) return false;  // cipher_suites
  if (v < 2 || v % 2 != 0) return r.fail(HelloStatus::Malformed);
  if (!r.take(v, nullptr)) return false;
  if (!r.number(1, v)) return false;  // compression_methods
  if (v < 1) return r.fail(HelloStatus::Malformed);
  if (!r.take(v, nullptr)) return false;
  if (r.left() == 0) return true;  // no extensions (SSL 3.0 style)

  if (!r.number(2, v)) return false;
  if (v != r.left()) return r.fail(HelloStatus::Malformed);
  bool seen = false;
  while (r.left() > 0) {
    uint32_t type = 0, len = 0;
    if (!r.number(2, type) || !r.number(2, len)) return false;
    if (len > r.left()) return r.fail(HelloStatus::Malformed);
    if (type != kServerNameExt) {
      if (!r.take(len, nullptr)) return false;
      continue;
    }
    // server_name_list<1..2^16-1> of exactly one host_name entry: 2 + 1 + 2 + the name.
    if (seen || len < 2 + 1 + 2) return r.fail(HelloStatus::Malformed);
    seen = true;
    uint32_t list = 0, name_type = 0, n = 0;
    if (!r.number(2, list)) return false;
    if (list != len - 2) return r.fail(HelloStatus::Malformed);
    if (!r.number(1, name_type)) return false;
    if (name_type != kHostName) return r.fail(HelloStatus::Malformed);
    if (!r.number(2, n)) return false;
    if (n != list - 3 || n == 0 || n > kMaxServerName) return r.fail(HelloStatus::Malformed);
    if (!r.take(n, name)) return false;
    name_len = n;
    if (!valid_server_name({reinterpret_cast<const char*>(name), n})) {
      return r.fail(HelloStatus::Malformed);
    }
  }
  return true;
}

}  // namespace

HelloResult parse_client_hello(std::span<const uint8_t> buf) {
  Reader r(buf.first(std::min(buf.size(), kMaxRead)), buf.size() >= kMaxRead);
  uint8_t name[kMaxServerName];
  size_t name_len = 0;
  HelloResult result;
  if (!parse_message(r, name, name_len)) {
    result.status = r.status();
    if (result.status == HelloStatus::NeedMore) result.need = r.need();
    return result;
  }
  result.status = HelloStatus::Done;
  result.server_name.assign(reinterpret_cast<const char*>(name), name_len);
  return result;
}

bool valid_server_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxServerName) return false;
  if (name.back() == '.') name.remove_suffix(1);  // one trailing dot
  if (name.empty()) return false;
  size_t label = 0;
  for (char ch : name) {
    if (ch == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (!ascii_name_char(static_cast<uint8_t>(ch)) || ++label > 63) {
      return false;
    }
  }
  return label > 0;
}

std::string_view hello_status_name(HelloStatus status) {
  switch (status) {
    case HelloStatus::NeedMore: return "need_more";
    case HelloStatus::Done: return "done";
    case HelloStatus::NotTls: return "not_tls";
    case HelloStatus::TooLarge: return "too_large";
    case HelloStatus::Malformed: return "malformed";
  }
  return "unknown";
}

}  // namespace l4lb
