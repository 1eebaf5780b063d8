// A backend's admin state (INTERFACE "Admin port"): ready (normal), drain (no new
// connections, checks go on), maint (as drain, and no checks). Header-only: the admin
// routes, the state file and the fuzz targets use it without linking anything.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>

namespace l4lb {

enum class AdminState : uint8_t { Ready, Drain, Maint };

inline std::string_view admin_state_name(AdminState s) {
  switch (s) {
    case AdminState::Ready: return "ready";
    case AdminState::Drain: return "drain";
    case AdminState::Maint: return "maint";
  }
  return "ready";
}

// Exactly "ready", "drain" or "maint" (case-sensitive, no whitespace).
inline std::optional<AdminState> parse_admin_state(std::string_view s) {
  if (s == "ready") return AdminState::Ready;
  if (s == "drain") return AdminState::Drain;
  if (s == "maint") return AdminState::Maint;
  return std::nullopt;
}

constexpr int kMinWeight = 1;
constexpr int kMaxWeight = 1000;

}  // namespace l4lb
