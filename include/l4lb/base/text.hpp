// Text helpers for messages: quoting a value, cutting it short.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace l4lb {

// S cut to at most MAX bytes without splitting a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, size_t max);

// Raw: the bytes as they are, cut at MAX; Escaped: '"' and '\' escaped, cut by utf8_prefix.
enum class Quoting { Raw, Escaped };

// S as shown in a message: in double quotes, cut to MAX bytes with "..." before the last quote.
std::string quoted(std::string_view s, size_t max = 60, Quoting how = Quoting::Raw);

// ASCII case-insensitive equality (header names, schemes).
bool iequals(std::string_view a, std::string_view b);

}  // namespace l4lb
