// parse_client_hello against hellos captured from real clients (client_hello_vectors.hpp), fed
// whole, in every prefix, and re-encoded across records; then hellos built field by field to
// hit every rule of the parser (client_hello.hpp), and a mutation pass for the prefix property.
#include "l4lb/dataplane/client_hello.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "client_hello_vectors.hpp"

using l4lb::HelloResult;
using l4lb::HelloStatus;
using l4lb::kMaxHello;
using l4lb::kMaxRead;
using l4lb::parse_client_hello;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes unhex(std::string_view hex) {
  auto digit = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(digit(hex[i]) << 4 | digit(hex[i + 1])));
  }
  return out;
}

Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }

// Parses a copy of IN[0, N) in a heap block of exactly N bytes (so that AddressSanitizer,
// under make SANITIZE=1, catches any read past the input).
HelloResult parse(const uint8_t* in, size_t n) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[n ? n : 1]);
  if (n) std::memcpy(copy.get(), in, n);
  return parse_client_hello({copy.get(), n});
}
HelloResult parse(const Bytes& in) { return parse(in.data(), in.size()); }
HelloResult parse(const Bytes& in, size_t n) { return parse(in.data(), n); }

HelloStatus status(const Bytes& in) { return parse(in).status; }

std::string name_of(HelloStatus s) { return std::string(l4lb::hello_status_name(s)); }

void put8(Bytes& b, size_t v) { b.push_back(static_cast<uint8_t>(v)); }
void put16(Bytes& b, size_t v) {
  put8(b, v >> 8);
  put8(b, v);
}
void put24(Bytes& b, size_t v) {
  put8(b, v >> 16);
  put16(b, v & 0xffff);
}
void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }

// The handshake bytes carried by RECORDS (whole records of type 22).
Bytes handshake_of(const Bytes& records) {
  Bytes out;
  size_t i = 0;
  while (i < records.size()) {
    REQUIRE(i + 5 <= records.size());
    REQUIRE(records[i] == 22);
    size_t n = size_t{records[i + 3]} << 8 | records[i + 4];
    REQUIRE(i + 5 + n <= records.size());
    out.insert(out.end(), records.begin() + i + 5, records.begin() + i + 5 + n);
    i += 5 + n;
  }
  return out;
}

// MESSAGE in records of the given sizes (the last size repeats as needed).
Bytes in_records(const Bytes& message, const std::vector<size_t>& sizes,
                 uint16_t version = 0x0301) {
  Bytes out;
  size_t i = 0, k = 0;
  while (i < message.size()) {
    size_t n = std::min(sizes[std::min(k++, sizes.size() - 1)], message.size() - i);
    put8(out, 22);
    put16(out, version);
    put16(out, n);
    out.insert(out.end(), message.begin() + i, message.begin() + i + n);
    i += n;
  }
  return out;
}
Bytes in_records(const Bytes& message, size_t size, uint16_t version = 0x0301) {
  return in_records(message, std::vector<size_t>{size}, version);
}

// A ClientHello built field by field.
struct Hello {
  uint16_t version = 0x0303;
  Bytes random = Bytes(32, 0xab);
  Bytes session_id = Bytes(32, 0x5e);
  Bytes ciphers = {0x13, 0x01, 0x13, 0x02, 0x13, 0x03};
  Bytes compression = {0};
  bool extension_block = true;
  std::vector<std::pair<uint16_t, Bytes>> extensions;

  Bytes body() const {
    Bytes b;
    put16(b, version);
    append(b, random);
    put8(b, session_id.size());
    append(b, session_id);
    put16(b, ciphers.size());
    append(b, ciphers);
    put8(b, compression.size());
    append(b, compression);
    if (!extension_block) return b;
    Bytes ext;
    for (const auto& [type, data] : extensions) {
      put16(ext, type);
      put16(ext, data.size());
      append(ext, data);
    }
    put16(b, ext.size());
    append(b, ext);
    return b;
  }
  Bytes message() const {
    Bytes b = body(), m;
    put8(m, 1);
    put24(m, b.size());
    append(m, b);
    return m;
  }
  Bytes records(size_t size = 16384) const { return in_records(message(), size); }
};

// server_name extension data: a list of (name_type, name) entries.
Bytes sni_data(const std::vector<std::pair<uint8_t, std::string>>& entries) {
  Bytes list;
  for (const auto& [type, name] : entries) {
    put8(list, type);
    put16(list, name.size());
    append(list, bytes_of(name));
  }
  Bytes d;
  put16(d, list.size());
  append(d, list);
  return d;
}
Bytes sni_data(const std::string& name) { return sni_data({{0, name}}); }

// A typical TLS 1.3 hello carrying NAME, with other extensions around the server_name.
Hello hello_with(const std::string& name) {
  Hello h;
  h.extensions = {{0x000b, {1, 0}},                            // ec_point_formats
                  {0x0000, sni_data(name)},                    // server_name
                  {0x000a, {0, 2, 0, 0x1d}},                   // supported_groups: x25519
                  {0x002b, {2, 3, 4}},                         // supported_versions: 1.3
                  {0x0033, {0, 0x24, 0, 0x1d, 0, 0x20}}};      // key_share, share below
  h.extensions.back().second.resize(2 + 0x24, 0x42);
  return h;
}

// Every prefix of IN (whole, valid: IN parses to WANT) is NeedMore, with a NEED that never
// passes the first complete length (FULL: IN's size unless bytes follow the hello).
void check_every_prefix(const Bytes& in, const std::string& want, size_t full) {
  for (size_t n = 0; n < full; ++n) {
    HelloResult r = parse(in, n);
    INFO("prefix of " << n << " of " << full << " bytes: " << name_of(r.status));
    REQUIRE(r.status == HelloStatus::NeedMore);
    REQUIRE(r.need >= 1);
    REQUIRE(n + r.need <= full);
    REQUIRE(r.server_name.empty());
  }
  for (size_t n = full; n <= in.size(); ++n) {
    HelloResult r = parse(in, n);
    REQUIRE(r.status == HelloStatus::Done);
    REQUIRE(r.server_name == want);
  }
}

}  // namespace

// ---------------------------------------------------------------- captured hellos

TEST_CASE("client hello: every capture parses to the name its client sent") {
  for (const auto& c : hello_vectors::kCaptures) {
    INFO(std::string(c.name) << " (" << std::string(c.how) << ")");
    Bytes in = unhex(c.hex);
    HelloResult r = parse(in);
    CHECK(name_of(r.status) == "done");
    CHECK(r.server_name == c.server_name);
    CHECK(r.need == 0);
  }
}

TEST_CASE("client hello: the captures cover what they claim") {
  auto get = [](std::string_view name) {
    for (const auto& c : hello_vectors::kCaptures) {
      if (c.name == name) return unhex(c.hex);
    }
    FAIL("no capture " << std::string(name));
    return Bytes{};
  };
  // TLS 1.2 and 1.3 (supported_versions 0x0304 offered), with and without a name.
  Bytes t13 = get("openssl_tls13_sni");
  const uint8_t versions[] = {0, 0x2b, 0, 3, 2, 3, 4};
  CHECK(std::search(t13.begin(), t13.end(), std::begin(versions), std::end(versions)) !=
        t13.end());
  // A post-quantum-sized hello is larger than one Ethernet TCP segment (MSS 1460) and holds
  // a 1216-byte X25519MLKEM768 (0x11ec) share.
  Bytes pq = get("synthetic_pq_keyshare");
  CHECK(pq.size() > 1460);
  const uint8_t share[] = {0x11, 0xec, 0x04, 0xc0};
  CHECK(std::search(pq.begin(), pq.end(), std::begin(share), std::end(share)) != pq.end());
  // The two-record one: a 16384-byte body (exactly kMaxHello) in records of 16384 and 4 bytes.
  Bytes two = get("python_two_records");
  CHECK(two.size() == 5 + 16384 + 5 + 4);
  CHECK(handshake_of(two).size() == 4 + kMaxHello);
  // Java sends record version 3.3, the others 3.1.
  CHECK(get("java_sni")[2] == 3);
  CHECK(get("curl_sni")[2] == 1);
}

TEST_CASE("client hello: every prefix of every capture is NeedMore, then Done") {
  for (const auto& c : hello_vectors::kCaptures) {
    INFO(std::string(c.name));
    Bytes in = unhex(c.hex);
    check_every_prefix(in, std::string(c.server_name), in.size());
  }
}

TEST_CASE("client hello: bytes after the hello are not looked at") {
  for (const auto& c : hello_vectors::kCaptures) {
    INFO(std::string(c.name));
    Bytes in = unhex(c.hex);
    const size_t full = in.size();
    append(in, bytes_of("\x14\x03\x03\x00\x01\x01 then anything at all: GET / HTTP/1.1\r\n"));
    check_every_prefix(in, std::string(c.server_name), full);
  }
}

TEST_CASE("client hello: a last record that goes on past the hello need not be complete") {
  // The record holding the hello's end declares 100 bytes more than the hello: they are not
  // needed (they would be the client's next message).
  Bytes msg = handshake_of(unhex(hello_vectors::openssl_tls13_sni));
  Bytes in = {22, 3, 1};
  put16(in, msg.size() + 100);
  append(in, msg);
  check_every_prefix(in, "example.com", in.size());
  in.resize(in.size() + 100, 0xcc);
  CHECK(parse(in).server_name == "example.com");
}

TEST_CASE("client hello: NEED counts the rest of the message and record headers still due") {
  Bytes in = unhex(hello_vectors::python_sni_alpn);  // one record of 512: a 508-byte body
  REQUIRE(in.size() == 517);
  CHECK(parse(in, 0).need == 5 + 4 + 41);  // a header, and the smallest hello
  CHECK(parse(in, 3).need == 2 + 4 + 41);
  CHECK(parse(in, 5).need == 4 + 41);
  CHECK(parse(in, 9).need == 508);  // the body's length is known
  CHECK(parse(in, 100).need == 417);
  CHECK(parse(in, 516).need == 1);

  // In records of 100 bytes, the first one ends before the message does: another header.
  Bytes msg = handshake_of(in);
  Bytes split = in_records(msg, 100);
  CHECK(parse(split, 5 + 50).need == (512 - 50) + 5);
  CHECK(parse(split, 5 + 100).need == 5 + 412);  // between records
  CHECK(parse(split, 5 + 100 + 2).need == 3 + 412);
  CHECK(parse(split, split.size() - 1).need == 1);
}

TEST_CASE("client hello: a capture re-encoded across two records, split at every point") {
  for (std::string_view name : {"python_sni_alpn", "openssl_tls12_sni", "java_sni"}) {
    INFO(std::string(name));
    const auto& c = *std::find_if(std::begin(hello_vectors::kCaptures),
                                  std::end(hello_vectors::kCaptures),
                                  [&](const auto& v) { return v.name == name; });
    Bytes msg = handshake_of(unhex(c.hex));
    for (size_t first = 1; first < msg.size(); ++first) {
      Bytes in = in_records(msg, {first, msg.size()});
      HelloResult r = parse(in);
      INFO("first record " << first << " bytes");
      REQUIRE(r.status == HelloStatus::Done);
      REQUIRE(r.server_name == c.server_name);
    }
  }
}

TEST_CASE("client hello: captures re-encoded in records of 1..64 bytes (and larger)") {
  std::vector<size_t> sizes;
  for (size_t n = 1; n <= 64; ++n) sizes.push_back(n);
  for (size_t n : {100, 255, 256, 1000, 4096, 16384}) sizes.push_back(n);
  for (const auto& c : hello_vectors::kCaptures) {
    INFO(std::string(c.name));
    Bytes msg = handshake_of(unhex(c.hex));
    for (size_t n : sizes) {
      INFO("records of " << n << " bytes");
      Bytes in = in_records(msg, n, n % 2 ? 0x0301 : 0x0303);
      if (in.size() > kMaxRead) {  // a 16 KiB hello in small records: see kMaxRead
        CHECK(parse(in).status == HelloStatus::TooLarge);
        continue;
      }
      HelloResult r = parse(in);
      REQUIRE(r.status == HelloStatus::Done);
      REQUIRE(r.server_name == c.server_name);
    }
  }
  // Every prefix of one fragmented into 1-, 7- and 64-byte records, the name split across
  // records on the way.
  Bytes msg = handshake_of(unhex(hello_vectors::node_sni));
  for (size_t n : {1, 7, 64}) {
    INFO("records of " << n << " bytes, every prefix");
    Bytes in = in_records(msg, n);
    check_every_prefix(in, "node.example.net", in.size());
  }
}

TEST_CASE("client hello: the 16 KiB hello in small records fits kMaxRead, or is TooLarge") {
  Bytes msg = handshake_of(unhex(hello_vectors::python_two_records));
  REQUIRE(msg.size() == 4 + kMaxHello);
  Bytes fits = in_records(msg, 100);  // 164 records: 820 bytes of headers
  REQUIRE(fits.size() <= kMaxRead);
  CHECK(parse(fits).server_name == "two-records.example");
  Bytes over = in_records(msg, 50);  // 328 records: 1640 bytes of headers
  REQUIRE(over.size() > kMaxRead);
  CHECK(parse(over).status == HelloStatus::TooLarge);
  CHECK(parse(over, kMaxRead - 1).status == HelloStatus::NeedMore);
  CHECK(parse(over, kMaxRead).status == HelloStatus::TooLarge);  // decided on kMaxRead bytes
  // Whatever follows the first kMaxRead bytes is not read: a Done there stays Done.
  append(fits, Bytes(kMaxRead, 0xee));
  CHECK(parse(fits).server_name == "two-records.example");
}

// ---------------------------------------------------------------- sizes

TEST_CASE("client hello: a handshake body over kMaxHello is TooLarge once its header is in") {
  Bytes big = unhex(hello_vectors::too_large_head);  // a real 20290-byte hello's start
  CHECK(parse(big, 8).status == HelloStatus::NeedMore);
  CHECK(parse(big, 9).status == HelloStatus::TooLarge);
  CHECK(parse(big).status == HelloStatus::TooLarge);

  Bytes head = {22, 3, 1, 0x40, 0, 1};  // a 16384-byte record starting a ClientHello
  Bytes at = head, over = head;
  put24(at, kMaxHello);
  put24(over, kMaxHello + 1);
  CHECK(parse(at).status == HelloStatus::NeedMore);
  CHECK(parse(at).need == kMaxHello + 5);  // the record holds 16380 of it: one more record
  CHECK(parse(over).status == HelloStatus::TooLarge);
  Bytes huge = head;
  put24(huge, 0xffffff);
  CHECK(parse(huge).status == HelloStatus::TooLarge);
  // The header itself split over records: still decided as soon as its 4 bytes are in.
  Bytes msg = {1};
  put24(msg, kMaxHello + 1);
  msg.resize(100, 0);
  Bytes split = in_records(msg, 1);
  CHECK(parse(split, 5 * 4 + 3).status == HelloStatus::NeedMore);
  CHECK(parse(split, 5 * 4 + 4).status == HelloStatus::TooLarge);
}

TEST_CASE("client hello: a hello of exactly kMaxHello bytes is Done, built or captured") {
  Hello h = hello_with("edge.example");
  Bytes pad(kMaxHello - h.body().size() - 4, 0);  // padding extension (21) fills the rest
  h.extensions.push_back({21, pad});
  REQUIRE(h.body().size() == kMaxHello);
  CHECK(parse(h.records()).server_name == "edge.example");
  h.extensions.back().second.push_back(0);
  CHECK(parse(h.records()).status == HelloStatus::TooLarge);
}

// ---------------------------------------------------------------- not TLS

TEST_CASE("client hello: other protocols are NotTls at their first byte or two") {
  const char* texts[] = {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
                         "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "*1\r\n$4\r\nPING\r\n", "\r\n"};
  for (const char* t : texts) {
    INFO(t);
    CHECK(status(bytes_of(t)) == HelloStatus::NotTls);
    CHECK(parse(bytes_of(t), 1).status == HelloStatus::NotTls);
  }
  // SSLv2-compatible ClientHello (2-byte header with the top bit set, msg type 1, version 3.1).
  Bytes v2 = {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10};
  v2.resize(0x30, 0x07);
  CHECK(status(v2) == HelloStatus::NotTls);
  // A PostgreSQL SSLRequest, a TLS alert record, a record version 2.0, a handshake record
  // "version" 0x16 0x16 ...
  CHECK(status({0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f}) == HelloStatus::NotTls);
  CHECK(status({21, 3, 1, 0, 2, 2, 40}) == HelloStatus::NotTls);
  CHECK(status({22, 2, 0, 0, 10}) == HelloStatus::NotTls);
  CHECK(status({22, 22}) == HelloStatus::NotTls);
  // Too little to tell.
  CHECK(status({}) == HelloStatus::NeedMore);
  CHECK(status({22}) == HelloStatus::NeedMore);
  CHECK(status({22, 3}) == HelloStatus::NeedMore);
  // Random bytes: NotTls unless they start 22, 3.
  std::mt19937 rng(777);
  for (int i = 0; i < 1000; ++i) {
    Bytes b(1 + rng() % 64);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    if (b[0] == 22) b[0] = 23;
    REQUIRE(status(b) == HelloStatus::NotTls);
  }
}

// ---------------------------------------------------------------- malformed

TEST_CASE("client hello: the hellos the tests build are valid") {
  CHECK(parse(hello_with("a.example").records()).server_name == "a.example");
  Hello plain;  // no extensions block at all (SSL 3.0 / early TLS style)
  plain.extension_block = false;
  CHECK(parse(plain.records()).status == HelloStatus::Done);
  CHECK(parse(plain.records()).server_name.empty());
  Hello empty;  // an empty extensions block
  CHECK(parse(empty.records()).status == HelloStatus::Done);
  Hello minimal;  // the smallest: 41 bytes
  minimal.session_id.clear();
  minimal.ciphers = {0, 0x2f};
  minimal.extension_block = false;
  REQUIRE(minimal.body().size() == 41);
  CHECK(parse(minimal.records()).status == HelloStatus::Done);
  Hello ssl3 = hello_with("old.example");
  ssl3.version = 0x0300;
  CHECK(parse(ssl3.records()).server_name == "old.example");
  // Unknown and GREASE extensions, an empty one, many compression methods.
  Hello odd = hello_with("odd.example");
  odd.extensions.insert(odd.extensions.begin(), {0x0a0a, {}});
  odd.extensions.push_back({0xfafa, {0}});
  odd.compression = {1, 0};
  CHECK(parse(odd.records()).server_name == "odd.example");
}

TEST_CASE("client hello: records that break the rules are Malformed") {
  Bytes msg = hello_with("r.example").message();
  Bytes in = in_records(msg, 40);
  auto patched = [&](size_t at, uint8_t v) {
    Bytes b = in;
    b[at] = v;
    return parse(b).status;
  };
  CHECK(parse(in).status == HelloStatus::Done);
  CHECK(patched(45, 23) == HelloStatus::Malformed);  // second record: application data
  CHECK(patched(45, 20) == HelloStatus::Malformed);  // change_cipher_spec
  CHECK(patched(46, 2) == HelloStatus::Malformed);   // second record: version 2.x
  Bytes zero = {22, 3, 1, 0, 0};                     // an empty record
  CHECK(status(zero) == HelloStatus::Malformed);
  Bytes later_zero = in;
  later_zero[48] = 0;
  later_zero[49] = 0;
  CHECK(status(later_zero) == HelloStatus::Malformed);
  Bytes overflow = {22, 3, 1, 0x40, 0x01, 1};  // 16385 > 2^14
  CHECK(status(overflow) == HelloStatus::Malformed);
  // A handshake message other than ClientHello.
  for (uint8_t type : {0, 2, 11, 16, 20}) {
    Bytes b = in;
    b[5] = type;
    CHECK(status(b) == HelloStatus::Malformed);
  }
}

TEST_CASE("client hello: fields out of their bounds are Malformed") {
  auto st = [](const Hello& h) { return parse(h.records()).status; };
  Hello base = hello_with("f.example");
  REQUIRE(st(base) == HelloStatus::Done);
  {
    Hello h = base;
    h.version = 0x0203;
    CHECK(st(h) == HelloStatus::Malformed);
    h.version = 0x0403;
    CHECK(st(h) == HelloStatus::Malformed);
  }
  {
    Hello h = base;
    h.session_id.assign(33, 1);
    CHECK(st(h) == HelloStatus::Malformed);
  }
  {
    Hello h = base;
    h.ciphers = {0x13};
    CHECK(st(h) == HelloStatus::Malformed);
    h.ciphers = {0x13, 0x01, 0x13};
    CHECK(st(h) == HelloStatus::Malformed);
    h.ciphers.clear();
    CHECK(st(h) == HelloStatus::Malformed);
  }
  {
    Hello h = base;
    h.compression.clear();
    CHECK(st(h) == HelloStatus::Malformed);
  }
  // Lengths that disagree with their container, in a built hello patched in place.
  Bytes msg = base.message();
  const size_t ext_len_at = 4 + 2 + 32 + 1 + 32 + 2 + 6 + 1 + 1;  // the extensions length
  REQUIRE((size_t{msg[ext_len_at]} << 8 | msg[ext_len_at + 1]) == msg.size() - ext_len_at - 2);
  auto with = [&](size_t at, size_t v16) {
    Bytes m = msg;
    m[at] = static_cast<uint8_t>(v16 >> 8);
    m[at + 1] = static_cast<uint8_t>(v16);
    return parse(in_records(m, 16384)).status;
  };
  const size_t ext_len = msg.size() - ext_len_at - 2;
  CHECK(with(ext_len_at, ext_len + 1) == HelloStatus::Malformed);
  CHECK(with(ext_len_at, ext_len - 1) == HelloStatus::Malformed);
  CHECK(with(ext_len_at, 0) == HelloStatus::Malformed);
  CHECK(with(ext_len_at, 0xffff) == HelloStatus::Malformed);
  const size_t first_ext_len_at = ext_len_at + 2 + 2;  // ec_point_formats, 2 bytes of data
  CHECK(with(first_ext_len_at, 2) == HelloStatus::Done);
  CHECK(with(first_ext_len_at, 3) == HelloStatus::Malformed);  // eats into the next one
  CHECK(with(first_ext_len_at, ext_len) == HelloStatus::Malformed);  // past the block
  CHECK(with(first_ext_len_at, 0xffff) == HelloStatus::Malformed);
  // The message length one byte off its body: the extensions block no longer fills the rest
  // of the message, whether the extra byte is there or not.
  Bytes shorter = msg, longer = msg;
  REQUIRE(msg[3] > 0);
  REQUIRE(msg[3] < 255);
  shorter[3] -= 1;
  longer[3] += 1;
  CHECK(parse(in_records(shorter, 16384)).status == HelloStatus::Malformed);
  CHECK(parse(in_records(longer, 16384)).status == HelloStatus::Malformed);
  longer.push_back(0);
  CHECK(parse(in_records(longer, 16384)).status == HelloStatus::Malformed);
  // A body too short for its fixed fields, and one byte after compression_methods.
  Bytes tiny = {1, 0, 0, 10, 3, 3};
  tiny.resize(14, 0);
  CHECK(parse(in_records(tiny, 16384)).status == HelloStatus::Malformed);
  Hello stray = base;
  stray.extension_block = false;
  Bytes sm = stray.message();
  sm.push_back(0);
  sm[3] += 1;
  CHECK(parse(in_records(sm, 16384)).status == HelloStatus::Malformed);
}

TEST_CASE("client hello: server_name extensions that break RFC 6066 are Malformed") {
  auto st = [](const Bytes& sni) {
    Hello h = hello_with("x");
    h.extensions[1].second = sni;
    return parse(h.records()).status;
  };
  CHECK(st(sni_data("ok.example")) == HelloStatus::Done);
  CHECK(st({}) == HelloStatus::Malformed);                          // no list
  CHECK(st({0, 0}) == HelloStatus::Malformed);                      // an empty list
  CHECK(st(sni_data({{1, "ok.example"}})) == HelloStatus::Malformed);  // not host_name
  CHECK(st(sni_data({{0, "a.example"}, {0, "b.example"}})) == HelloStatus::Malformed);
  CHECK(st(sni_data({{0, "a.example"}, {1, "b"}})) == HelloStatus::Malformed);
  CHECK(st(sni_data({{0, ""}})) == HelloStatus::Malformed);  // an empty name
  Bytes bad_list = sni_data("ok.example");
  bad_list[1] += 1;
  CHECK(st(bad_list) == HelloStatus::Malformed);
  bad_list[1] -= 2;
  CHECK(st(bad_list) == HelloStatus::Malformed);
  Bytes bad_name = sni_data("ok.example");
  bad_name[4] -= 1;  // the name's length, one short of the list
  CHECK(st(bad_name) == HelloStatus::Malformed);
  // Two server_name extensions.
  Hello twice = hello_with("a.example");
  twice.extensions.push_back({0, sni_data("b.example")});
  CHECK(parse(twice.records()).status == HelloStatus::Malformed);
}

TEST_CASE("client hello: server names with characters or shapes not accepted are Malformed") {
  auto name = [](const std::string& n) {
    HelloResult r = parse(hello_with(n).records());
    return r.status == HelloStatus::Done ? r.server_name : "(" + name_of(r.status) + ")";
  };
  const std::string bad = "(malformed)";
  CHECK(name("Mixed-Case.Example.COM") == "Mixed-Case.Example.COM");
  CHECK(name("under_score.example") == "under_score.example");
  CHECK(name("trailing.dot.") == "trailing.dot.");
  CHECK(name("localhost") == "localhost");
  CHECK(name("192.0.2.1") == "192.0.2.1");
  CHECK(name("xn--bcher-kva.example") == "xn--bcher-kva.example");
  CHECK(name(std::string(63, 'a') + ".example") == std::string(63, 'a') + ".example");
  std::string longest;  // 255 bytes in labels of 63
  while (longest.size() < 255) longest += (longest.empty() ? "" : ".") + std::string(63, 'b');
  longest.resize(255);
  CHECK(name(longest) == longest);
  CHECK(name(longest + "b") == bad);              // 256 bytes
  CHECK(name(std::string(64, 'a') + ".x") == bad);  // a 64-byte label
  std::string dots;  // "a.a. ... a." : 256 bytes with the trailing dot, 255 without
  for (int i = 0; i < 128; ++i) dots += "a.";
  CHECK(name(dots) == bad);
  dots.pop_back();
  CHECK(name(dots) == dots);
  CHECK(name("-") == "-");  // the characters are checked, not where hyphens stand
  for (const std::string& n : std::vector<std::string>{
           "a b.example", "a\tb", std::string("a\0b", 3), std::string("\0", 1), "a/b", "a:b",
           "[::1]", "a*b", "*.example.com", "caf\xc3\xa9.example", "a\x7f", "a\"b", "a\\b",
           "a%2eb", ".", "..", ".a", "a..b", "a.b.."}) {
    INFO(n);
    CHECK(name(n) == bad);
  }
}

TEST_CASE("client hello: valid_server_name and hello_status_name") {
  using l4lb::valid_server_name;
  CHECK(valid_server_name("a"));
  CHECK(valid_server_name("a."));
  CHECK(valid_server_name("A-1_b.c"));
  CHECK_FALSE(valid_server_name(""));
  CHECK_FALSE(valid_server_name("."));
  CHECK_FALSE(valid_server_name("a.."));
  CHECK_FALSE(valid_server_name("*.a"));
  CHECK_FALSE(valid_server_name(std::string(256, 'a')));
  CHECK(name_of(HelloStatus::NeedMore) == "need_more");
  CHECK(name_of(HelloStatus::Done) == "done");
  CHECK(name_of(HelloStatus::NotTls) == "not_tls");
  CHECK(name_of(HelloStatus::TooLarge) == "too_large");
  CHECK(name_of(HelloStatus::Malformed) == "malformed");
}

// ---------------------------------------------------------------- the prefix property

TEST_CASE("client hello: mutated captures: every prefix is NeedMore or the whole input's answer") {
  std::mt19937 rng(20240);
  std::vector<Bytes> seeds;
  for (const auto& c : hello_vectors::kCaptures) {
    Bytes b = unhex(c.hex);
    if (b.size() < 4096) seeds.push_back(b);
  }
  int done = 0, failed = 0;
  for (int round = 0; round < 3000; ++round) {
    Bytes in = seeds[rng() % seeds.size()];
    int edits = 1 + rng() % 3;
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % in.size();
      switch (rng() % 3) {
        case 0: in[at] = static_cast<uint8_t>(rng()); break;
        case 1: in[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        default: in.resize(at + 1 + rng() % (in.size() - at)); break;
      }
    }
    HelloResult whole = parse(in);
    (whole.status == HelloStatus::Done ? done : failed)++;
    for (int k = 0; k < 8; ++k) {
      size_t n = rng() % (in.size() + 1);
      HelloResult r = parse(in, n);
      INFO("round " << round << ", prefix " << n << ": " << name_of(r.status) << " vs "
                    << name_of(whole.status));
      if (r.status == HelloStatus::NeedMore) {
        REQUIRE(r.need >= 1);
        if (whole.status == HelloStatus::Done) REQUIRE(n + r.need <= in.size());
        continue;
      }
      REQUIRE(r.status == whole.status);
      REQUIRE(r.server_name == whole.server_name);
    }
  }
  MESSAGE("mutated hellos: " << done << " still done, " << failed << " not");
}
