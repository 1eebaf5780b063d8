// Clock readings, in one place: wall time for what is shown or stored (logs, /stats),
// a clock that never jumps for what is measured.
#pragma once
#include <cstdint>

namespace l4lb {

// Unix time now, in seconds (CLOCK_REALTIME).
double unix_now();

// Microseconds on CLOCK_MONOTONIC (never jumps; its origin is unspecified, often the boot).
uint64_t monotonic_usec();
// The same clock in seconds.
double monotonic_seconds();

}  // namespace l4lb
