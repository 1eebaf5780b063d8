// parse_address, with and without port 0: never crashes; a success formats (to_string)
// to text that parses back to the same address. Host names are never resolved (FUZZ_NO_DNS).
#define FUZZ_NO_DNS
#include <string>

#include "fuzz.hpp"
#include "l4lb/base/address.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = fuzz_text(data, size);
  for (bool allow_zero : {false, true}) {
    l4lb::Address a;
    std::string error;
    if (!l4lb::parse_address(text, a, error, allow_zero)) {
      FUZZ_CHECK(!error.empty());
      continue;
    }
    FUZZ_CHECK(a.family() == AF_INET || a.family() == AF_INET6);
    FUZZ_CHECK(allow_zero || a.port() != 0);
    l4lb::Address b;
    FUZZ_CHECK(l4lb::parse_address(a.to_string(), b, error, allow_zero));
    FUZZ_CHECK(a == b);
    FUZZ_CHECK(b.to_string() == a.to_string());
  }
  return 0;
}
