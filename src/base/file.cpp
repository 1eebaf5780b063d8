#include "l4lb/base/file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <new>
#include <system_error>
#include <vector>

namespace l4lb {

namespace {

std::string sys_error(std::string_view what, const std::string& file, int err) {
  return std::string(what) + " " + file + ": " + std::system_category().message(err);
}

// ".<name>.<pid>.<n>.tmp" -> pid; 0 when NAME is not such a temporary file of BASE.
pid_t temp_owner(std::string_view entry, std::string_view base) {
  std::string prefix = "." + std::string(base) + ".";
  constexpr std::string_view suffix = ".tmp";
  if (entry.size() <= prefix.size() + suffix.size() || entry.substr(0, prefix.size()) != prefix ||
      entry.substr(entry.size() - suffix.size()) != suffix)
    return 0;
  std::string_view mid = entry.substr(prefix.size(), entry.size() - prefix.size() - suffix.size());
  size_t dot = mid.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 10 || dot + 1 == mid.size()) return 0;
  for (size_t i = 0; i < mid.size(); ++i)
    if (i != dot && (mid[i] < '0' || mid[i] > '9')) return 0;
  long long pid = 0;
  for (char c : mid.substr(0, dot)) pid = pid * 10 + (c - '0');
  return pid > 0 && pid <= INT_MAX ? static_cast<pid_t>(pid) : 0;
}

// Removes the temporary files of BASE in DIR whose writer is gone (a crash mid-write).
void remove_stale_temps(const std::string& dir, std::string_view base) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (struct dirent* ent = ::readdir(d)) {
    pid_t pid = temp_owner(ent->d_name, base);
    if (pid == 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) stale.emplace_back(ent->d_name);
  }
  for (const auto& name : stale) ::unlinkat(::dirfd(d), name.c_str(), 0);
  ::closedir(d);
}

}  // namespace

bool write_atomically(const std::string& path, std::string_view content, std::string& error) {
  size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty() || base == "." || base == "..") {
    error = "not a file path: " + path;
    return false;
  }
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  std::string prefix = (slash == std::string::npos ? "" : path.substr(0, slash + 1)) + "." + base + ".";

  static std::atomic<unsigned> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100; ++attempt) {
    tmp = prefix + std::to_string(::getpid()) + "." + std::to_string(counter++) + ".tmp";
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0 || errno != EEXIST) break;
  }
  if (fd < 0) {
    error = sys_error("cannot create", tmp, errno);
    return false;
  }
  auto fail = [&](std::string_view what, const std::string& file) {
    int err = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    error = sys_error(what, file, err);
    return false;
  };
  if (::fchmod(fd, 0600) != 0) return fail("cannot chmod", tmp);  // whatever the umask
  for (size_t done = 0; done < content.size();) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return fail("cannot write", tmp);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot fsync", tmp);
  int closed = ::close(fd);
  fd = -1;  // released even when close fails
  if (closed != 0) return fail("cannot close", tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename onto", path);

  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || ::fsync(dfd) != 0) {
    error = sys_error("cannot fsync directory", dir, errno);
    if (dfd >= 0) ::close(dfd);
    return false;
  }
  ::close(dfd);
  remove_stale_temps(dir, base);
  return true;
}

bool read_file(const std::string& path, std::string& out, std::string& error, bool* missing,
               size_t max) {
  if (missing) *missing = false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    if (missing) *missing = errno == ENOENT;
    error = sys_error("cannot open", path, errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    error = sys_error("cannot stat", path, errno);
    ::close(fd);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    error = path + ": not a regular file";
    ::close(fd);
    return false;
  }
  auto too_big = [&] {
    error = path + ": over " + std::to_string(max) + " bytes";
    ::close(fd);
    return false;
  };
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) > max) return too_big();
  std::string text;
  try {
    text.resize(static_cast<size_t>(st.st_size) + 1);  // one more: a file that grew is seen
  } catch (const std::bad_alloc&) {
    error = path + ": out of memory";
    ::close(fd);
    return false;
  }
  size_t got = 0;
  for (;;) {
    if (got == text.size()) {
      if (text.size() > max) return too_big();
      text.resize(std::min(max + 1, text.size() * 2));
    }
    ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = sys_error("cannot read", path, errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got > max) {
    error = path + ": over " + std::to_string(max) + " bytes";
    return false;
  }
  text.resize(got);
  out = std::move(text);
  return true;
}

bool token_from_file(std::string_view contents, std::string& token, std::string& error) {
  while (!contents.empty() && (contents.back() == '\n' || contents.back() == '\r'))
    contents.remove_suffix(1);
  if (contents.empty()) {
    error = "the token file holds no token";
    return false;
  }
  for (char c : contents) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e) {
      error = "the token must be visible ASCII characters only (no spaces, no control characters)";
      return false;
    }
  }
  token.assign(contents);
  return true;
}

}  // namespace l4lb
