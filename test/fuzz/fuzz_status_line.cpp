// check_status_line against a few expected ranges: never crashes, and the verdict is
// consistent (Pass only inside the range, NeedMore only before a full line under 8 KiB).
#include "fuzz.hpp"
#include "l4lb/health/http_probe.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static constexpr int kRanges[][2] = {{200, 200}, {200, 399}, {100, 599}, {500, 300}};
  const std::string_view in = fuzz_text(data, size);
  for (const auto& r : kRanges) {
    l4lb::StatusVerdict v = l4lb::check_status_line(in, r[0], r[1]);
    switch (v.kind) {
      case l4lb::StatusVerdict::Pass:
        FUZZ_CHECK(v.status >= r[0] && v.status <= r[1] && v.status >= 100 && v.status <= 599);
        FUZZ_CHECK(in.find('\n') != std::string_view::npos);
        break;
      case l4lb::StatusVerdict::NeedMore:
        FUZZ_CHECK(in.find('\n') == std::string_view::npos && in.size() < l4lb::kMaxStatusLine);
        break;
      case l4lb::StatusVerdict::Fail:
        FUZZ_CHECK(!v.reason.empty());
        break;
      default:
        FUZZ_CHECK(false);
    }
  }
  return 0;
}
