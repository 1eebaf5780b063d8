// parse_duration: never crashes; a success is within 0..30 days and format_duration
// of it parses back to the same value (and formatting that is stable).
#include <string>

#include "fuzz.hpp"
#include "l4lb/base/duration.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  l4lb::Millis d{-1};
  std::string error;
  if (!l4lb::parse_duration(fuzz_text(data, size), d, error)) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  FUZZ_CHECK(d.count() >= 0 && d.count() <= int64_t{30} * 24 * 3600 * 1000);
  const std::string text = l4lb::format_duration(d);
  l4lb::Millis again{-1};
  FUZZ_CHECK(l4lb::parse_duration(text, again, error));
  FUZZ_CHECK(again == d);
  FUZZ_CHECK(l4lb::format_duration(again) == text);
  return 0;
}
