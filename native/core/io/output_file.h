// An output file that appears at its path complete or not at all, and that a killed process does not leave
// behind. On Linux it is created unnamed (O_TMPFILE) in the target's directory and linked into place by place():
// SIGKILL at any point before that leaves nothing. Where O_TMPFILE is unsupported (other systems, some file
// systems) it is a hidden temporary file of our own naming (kTempPattern), renamed into place; a later run removes
// the ones a dead process of this host left (lib/atomic.ts, removeStaleTemps).
#pragma once
#include <cstdint>
#include <string>

namespace wp {

// Temporary names: "." + target's base name + ".wp-" + pid + "@" + host + "." + 8 hex digits + ".tmp".
std::string temp_name(const std::string& dir, const std::string& base);

class OutputFile {
 public:
  // Opens the temporary file for `path` (throws Error(Io) naming `path` when it cannot).
  explicit OutputFile(const std::string& path);
  ~OutputFile();  // abort() unless placed
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void pwrite_all(const void* p, uint64_t n, uint64_t offset);
  // Reads exactly n bytes at offset (throws Error(Io) on a short read).
  void pread_all(void* p, uint64_t n, uint64_t offset);
  // Flushes the data to disk.
  void sync();
  // Links (or renames) the finished file into place at `path`, replacing what is there; then closed.
  void place();
  // Closes and removes the temporary file; idempotent, safe after place().
  void abort();

  const std::string& path() const { return path_; }
  // True when the file is unnamed until place() (O_TMPFILE).
  bool anonymous() const { return anonymous_; }

 private:
  std::string path_, dir_, base_, tmp_;
  int fd_ = -1;
  bool anonymous_ = false, done_ = false;
};

}  // namespace wp
