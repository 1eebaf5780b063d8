// Shared by the libFuzzer targets (scripts/fuzz.sh builds them with clang++ and
// -fsanitize=fuzzer,address,undefined).
#pragma once
#include <netdb.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

// A violated property: a crash the fuzzer reports and saves (no message, no exception).
#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

inline std::string_view fuzz_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

#ifdef FUZZ_NO_DNS
// parse_address() resolves host names with getaddrinfo; a fuzzer must never query DNS.
// This definition in the fuzz binary takes precedence over libc's (and the sanitizer's
// interceptor): every name is "not found". Numeric addresses never reach getaddrinfo.
extern "C" int getaddrinfo(const char*, const char*, const addrinfo*, addrinfo** res) {
  if (res) *res = nullptr;
  return EAI_NONAME;
}
#endif
