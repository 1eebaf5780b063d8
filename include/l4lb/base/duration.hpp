// Durations in the config: "250ms", "2s", "5m", "1h", compounds such as "1m30s",
// or a bare number of seconds ("30", "1.5").
#pragma once
#include <chrono>
#include <string>
#include <string_view>

namespace l4lb {

using Millis = std::chrono::milliseconds;

// Parses TEXT into OUT. On failure returns false and sets ERROR to a short reason
// (e.g. `unknown unit "sec"`). Values above 30 days are rejected; sub-millisecond
// fractions are rounded down.
bool parse_duration(std::string_view text, Millis& out, std::string& error);

// "250ms", "2s", "1m30s": the shortest exact form, for logs and /stats.
std::string format_duration(Millis d);

// D in seconds, as libev's timers take it.
inline double to_seconds(Millis d) { return static_cast<double>(d.count()) / 1000.0; }

}  // namespace l4lb
