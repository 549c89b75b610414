// A read-only view of a whole file through mmap (private, copy-on-write: writes through a view never reach
// the file). Shared by every tensor view taken from it; unmapped when the last owner lets go.
//
// A file truncated while mapped would kill the process with SIGBUS on the next read past its new end. Every
// mapping is registered with a SIGBUS handler (installed once, chaining to the one it replaces for faults
// outside our mappings) that maps a zero page over the faulting page and marks the file: the read goes on with
// zeros, and check() then reports the file as an Error(Io) naming it. Callers check() after reading (lib/
// checkpoint.ts does after each tensor and before any output is placed), so no garbage is ever kept.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace wp {

class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // False when the file was too large for a copy-on-write mapping: views are then read-only memory.
  bool writable() const { return writable_; }
  // False when the file shrank below its mapped size (now, or at a read the SIGBUS guard caught).
  bool intact() const;
  // Throws Error(Io) naming the file unless intact().
  void check() const;
  // Tell the kernel a range will be read soon, sequentially (a hint; never fails).
  void will_need(uint64_t offset, uint64_t length) const;
  // Let the kernel drop the pages of a range we are done with (a hint; never fails).
  void dont_need(uint64_t offset, uint64_t length) const;

 private:
  MappedFile() = default;
  std::string path_;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  bool writable_ = false;
  int fd_ = -1;    // kept open to fstat the file in intact()
  int slot_ = -1;  // its entry in the SIGBUS guard's table
};

}  // namespace wp
