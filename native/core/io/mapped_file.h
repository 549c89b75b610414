// A read-only view of a whole file through mmap (private, copy-on-write: writes through a view never reach
// the file). Shared by every tensor view taken from it; unmapped when the last owner lets go.
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
};

}  // namespace wp
