#include "output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "../error.h"

namespace wp {

namespace {

std::string host_name() {
  char h[256] = {0};
  if (gethostname(h, sizeof h - 1) != 0 || !h[0]) return "host";
  std::string s(h);
  for (char& c : s) if (c == '/' || c == '.') c = '_';  // keeps the pattern parseable
  return s;
}

const char* kind_of(mode_t m) {
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISDIR(m)) return "a directory";
  return nullptr;
}

}  // namespace

std::string temp_name(const std::string& dir, const std::string& base) {
  static std::random_device rd;
  char suffix[16];
  snprintf(suffix, sizeof suffix, "%08x", (unsigned)rd());
  return dir + "/." + base + ".wp-" + std::to_string((long)getpid()) + "@" + host_name() + "." + suffix + ".tmp";
}

OutputFile::OutputFile(const std::string& path) : path_(path) {
  dir_ = ".";
  base_ = path;
  auto slash = path.find_last_of('/');
  if (slash != std::string::npos) {
    dir_ = path.substr(0, slash);
    base_ = path.substr(slash + 1);
    if (dir_.empty()) dir_ = "/";
  }
  // Only regular files are replaced: a device node, FIFO, socket or directory at the path is refused.
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (const char* k = kind_of(st.st_mode))
      throw Error(Code::Io, std::string("the output is ") + k + "; weightpress writes regular files only", "", path);
  }
#ifdef O_TMPFILE
  // WEIGHTPRESS_NO_TMPFILE=1 takes the named-temporary path, as on systems without O_TMPFILE (tests use it).
  const char* no_tmpfile = getenv("WEIGHTPRESS_NO_TMPFILE");
  if (!(no_tmpfile && *no_tmpfile && *no_tmpfile != '0')) {
    fd_ = ::open(dir_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd_ >= 0) {
      anonymous_ = true;
      return;
    }
    // ENOENT/ENOTDIR/EACCES... are real errors about the directory; others mean "unsupported here": fall back.
    if (errno == ENOENT || errno == ENOTDIR || errno == EACCES || errno == EROFS || errno == ENOSPC || errno == EDQUOT)
      throw Error(Code::Io, std::string("cannot create the output in ") + dir_ + ": " + std::strerror(errno), "", path);
  }
#endif
  for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
    tmp_ = temp_name(dir_, base_);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) {
    int e = errno;
    tmp_.clear();
    throw Error(Code::Io, std::string("cannot create a temporary file in ") + dir_ + ": " + std::strerror(e), "", path);
  }
}

OutputFile::~OutputFile() { abort(); }

void OutputFile::abort() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!tmp_.empty()) {
    ::unlink(tmp_.c_str());
    tmp_.clear();
  }
  done_ = true;
}

void OutputFile::pwrite_all(const void* p, uint64_t n, uint64_t offset) {
  if (fd_ < 0) throw Error(Code::Argument, "output file is closed", "", path_);
  const char* c = (const char*)p;
  while (n > 0) {
    size_t chunk = (size_t)std::min<uint64_t>(n, 1ull << 30);
    ssize_t w = ::pwrite(fd_, c, chunk, (off_t)offset);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(Code::Io, std::string("write failed: ") + std::strerror(errno), "", path_);
    }
    c += w;
    n -= (uint64_t)w;
    offset += (uint64_t)w;
  }
}

void OutputFile::pread_all(void* p, uint64_t n, uint64_t offset) {
  char* c = (char*)p;
  while (n > 0) {
    ssize_t r = ::pread(fd_, c, (size_t)std::min<uint64_t>(n, 1ull << 30), (off_t)offset);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) throw Error(Code::Io, "re-reading the output failed", "", path_);
    c += r;
    n -= (uint64_t)r;
    offset += (uint64_t)r;
  }
}

void OutputFile::sync() {
  if (fd_ < 0) throw Error(Code::Argument, "output file is closed", "", path_);
  if (::fsync(fd_) != 0) throw Error(Code::Io, std::string("fsync failed: ") + std::strerror(errno), "", path_);
}

void OutputFile::place() {
  if (done_ || fd_ < 0) throw Error(Code::Argument, "output file is closed", "", path_);
  auto fail = [&](const char* what, int e) {
    abort();
    throw Error(Code::Io, std::string(what) + ": " + std::strerror(e), "", path_);
  };
  struct stat st;
  if (::stat(path_.c_str(), &st) == 0) {
    if (const char* k = kind_of(st.st_mode)) {
      abort();
      throw Error(Code::Io, std::string("the output is ") + k + "; weightpress writes regular files only", "", path_);
    }
  }
  if (anonymous_) {
    // Give the unnamed file a name: the target itself when free (atomic, nothing else to undo), or else a
    // temporary name that rename() then moves over the old file.
    std::string fdpath = "/proc/self/fd/" + std::to_string(fd_);
    auto link_to = [&](const std::string& to) {
      if (::linkat(AT_FDCWD, fdpath.c_str(), AT_FDCWD, to.c_str(), AT_SYMLINK_FOLLOW) == 0) return 0;
#ifdef AT_EMPTY_PATH
      if (errno == ENOENT && ::linkat(fd_, "", AT_FDCWD, to.c_str(), AT_EMPTY_PATH) == 0) return 0;
#endif
      return errno;
    };
    int e = link_to(path_);
    if (e == 0) {
      ::close(fd_);
      fd_ = -1;
      done_ = true;
      return;
    }
    if (e != EEXIST) fail("cannot link the output into place", e);
    tmp_ = temp_name(dir_, base_);
    e = link_to(tmp_);
    if (e != 0) {
      tmp_.clear();
      fail("cannot link the output into place", e);
    }
  }
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot rename into place", errno);
  tmp_.clear();
  done_ = true;
}

}  // namespace wp
