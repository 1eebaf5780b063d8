// Two small file helpers: an atomic replace (temporary file, fsync, rename, fsync of the
// directory) and a bounded read of a regular file. Used for the state file and the
// admin token file.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace l4lb {

constexpr size_t kMaxReadFileBytes = 4u << 20;  // 4 MiB

// Writes CONTENT to PATH atomically: a temporary file in the same directory
// (".<name>.<pid>.<n>.tmp", O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600), written in full,
// fsync'd, renamed over PATH, then the directory fsync'd. PATH ends up mode 0600.
// On any failure before the rename the temporary file is removed and PATH is untouched;
// a failure of the last step (the directory's fsync) leaves the new PATH in place and
// no temporary file, and is still reported (false) since durability is not known.
// After a successful write it also removes temporary files of this same PATH left by
// a process that no longer exists (a crash between create and rename), so the
// directory holds nothing else of l4lb's. ERROR: "<what> <file>: <strerror>".
bool write_atomically(const std::string& path, std::string_view content, std::string& error);

// Reads the regular file PATH into OUT (replaced only on success), at most MAX bytes
// (more is an error, never a partial read). False with ERROR on failure; MISSING, when
// given, is set to whether it failed because PATH does not exist (a first start: the
// caller need not warn). Never blocks on a FIFO (not a regular file: an error).
bool read_file(const std::string& path, std::string& out, std::string& error,
               bool* missing = nullptr, size_t max = kMaxReadFileBytes);

// The token in a token_file's CONTENTS: a trailing newline (LF or CRLF, any number of
// them) is ignored. False (with ERROR) when what is left is empty or holds a byte other
// than visible ASCII (0x21-0x7e): such a token could never be sent in a header.
bool token_from_file(std::string_view contents, std::string& token, std::string& error);

}  // namespace l4lb
