#include "mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "../error.h"

namespace wp {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(Code::Io, std::string("cannot open: ") + std::strerror(errno), "", path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw Error(Code::Io, std::string("cannot stat: ") + std::strerror(e), "", path);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(Code::Io, "not a regular file", "", path);
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = (uint64_t)st.st_size;
  if (f->size_ > 0) {
    // Copy-on-write first, so that a stray write through a JS view changes only our copy. Such a mapping is
    // charged against the commit limit, which can refuse a file larger than memory: then map read-only.
    void* p = mmap(nullptr, f->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) p = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    else f->writable_ = true;
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw Error(Code::Io, std::string("cannot mmap: ") + std::strerror(e), "", path);
    }
    f->data_ = (uint8_t*)p;
  }
  ::close(fd);
  return f;
}

MappedFile::~MappedFile() {
  if (data_) munmap(data_, size_);
}

namespace {
void advise(uint8_t* base, uint64_t size, uint64_t offset, uint64_t length, int advice) {
  if (!base || offset >= size) return;
  long page = sysconf(_SC_PAGESIZE);
  uint64_t start = offset & ~(uint64_t)(page - 1);
  uint64_t end = std::min(size, offset + length);
  if (end > start) madvise(base + start, end - start, advice);
}
}  // namespace

void MappedFile::will_need(uint64_t offset, uint64_t length) const {
  advise(data_, size_, offset, length, MADV_WILLNEED);
}
void MappedFile::dont_need(uint64_t offset, uint64_t length) const {
  // Only the interior pages: a page shared with a neighbouring tensor may still be in use.
  long page = sysconf(_SC_PAGESIZE);
  uint64_t start = (offset + page - 1) & ~(uint64_t)(page - 1);
  uint64_t end = (offset + length) & ~(uint64_t)(page - 1);
  if (end > start) advise(data_, size_, start, end - start, MADV_DONTNEED);
}

}  // namespace wp
