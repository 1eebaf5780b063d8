// parse_config on arbitrary YAML text: never throws or crashes, and reports either a
// config or at most 100 error lines of at most 512 bytes, each one line prefixed with
// the file name. Host names are never resolved (FUZZ_NO_DNS: "cannot resolve").
#define FUZZ_NO_DNS
#include <string>

#include "fuzz.hpp"
#include "l4lb/config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  l4lb::ConfigResult r;
  try {
    r = l4lb::parse_config(fuzz_text(data, size), "fuzz.yaml");
  } catch (...) {
    FUZZ_CHECK(false);
  }
  FUZZ_CHECK(r.ok() == r.errors.empty());
  FUZZ_CHECK(r.errors.size() <= 100);
  for (const std::string& line : r.errors) {
    FUZZ_CHECK(line.size() <= 512);
    FUZZ_CHECK(line.rfind("fuzz.yaml:", 0) == 0);
    FUZZ_CHECK(line.find('\n') == std::string::npos && line.find('\r') == std::string::npos);
  }
  if (r.ok()) {
    for (const auto& s : r.config->services) FUZZ_CHECK(!s.name.empty() && !s.backends.empty());
  }
  return 0;
}
