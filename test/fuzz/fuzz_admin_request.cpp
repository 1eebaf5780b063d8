// The admin port's incremental request parser. The first byte picks chunk sizes (from
// the next bytes) for feeding the rest: the outcome must not depend on how the bytes
// arrive, and must be NeedMore, Done (a sane request) or Error (400/431).
#include <string>

#include "fuzz.hpp"
#include "l4lb/admin/admin_http.hpp"

using l4lb::http::ParseStatus;
using l4lb::http::RequestParser;

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
               a.version_minor == b.version_minor && a.content_length == b.content_length);
    FUZZ_CHECK(!a.method.empty() && !a.path.empty());
    FUZZ_CHECK(a.path[0] == '/' || a.path == "*");
    FUZZ_CHECK(a.version_minor == 0 || a.version_minor == 1);
  } else if (st == ParseStatus::Error) {
    int e = chunked.error_status();
    FUZZ_CHECK(e == whole.error_status() && chunked.error_reason() == whole.error_reason());
    FUZZ_CHECK(e == 400 || e == 431);
    // The answer the admin port would send is well formed.
    std::string out = l4lb::http::serialize(l4lb::http::error_response(e, chunked.error_reason()), false);
    FUZZ_CHECK(out.rfind("HTTP/1.1 ", 0) == 0);
  }
  return 0;
}
