#include "mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

#include "../error.h"

namespace wp {

namespace {

// The SIGBUS guard: a fixed table of live mappings, read lock-free by the handler.
constexpr int kSlots = 4096;
struct Slot {
  std::atomic<uintptr_t> base{0};
  std::atomic<uint64_t> size{0};
  std::atomic<int> faulted{0};
};
Slot g_slots[kSlots];
struct sigaction g_previous;
std::once_flag g_installed;
uintptr_t g_page = 4096;  // set before the handler is installed (sysconf is not async-signal-safe)
std::mutex g_table;

void on_sigbus(int sig, siginfo_t* info, void* uctx) {
  const uintptr_t a = (uintptr_t)info->si_addr;
  for (auto& s : g_slots) {
    const uintptr_t b = s.base.load(std::memory_order_acquire);
    if (b && a >= b && a < b + s.size.load(std::memory_order_relaxed)) {
      // Past the end of a file that shrank: read zeros from here on, and remember it for check().
      const uintptr_t page = a & ~(g_page - 1);
      void* p = mmap((void*)page, (size_t)g_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      if (p != MAP_FAILED) {
        s.faulted.store(1, std::memory_order_release);
        return;
      }
      break;
    }
  }
  // Not ours (or no page to put there): what would have happened without us.
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) return g_previous.sa_sigaction(sig, info, uctx);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    return g_previous.sa_handler(sig);
  }
  signal(SIGBUS, SIG_DFL);  // the fault repeats on return and ends the process as it would have
}

void install_guard() {
  std::call_once(g_installed, [] {
    g_page = (uintptr_t)sysconf(_SC_PAGESIZE);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous);
  });
}

int register_mapping(const uint8_t* base, uint64_t size) {
  install_guard();
  std::lock_guard<std::mutex> lock(g_table);
  for (int i = 0; i < kSlots; ++i) {
    if (g_slots[i].base.load(std::memory_order_relaxed) == 0) {
      g_slots[i].faulted.store(0);
      g_slots[i].size.store(size);
      g_slots[i].base.store((uintptr_t)base, std::memory_order_release);
      return i;
    }
  }
  return -1;  // table full: this mapping is unguarded (4096 files mapped at once)
}

}  // namespace

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
    f->slot_ = register_mapping(f->data_, f->size_);
  }
  f->fd_ = fd;
  return f;
}

MappedFile::~MappedFile() {
  if (slot_ >= 0) {
    std::lock_guard<std::mutex> lock(g_table);
    g_slots[slot_].base.store(0, std::memory_order_release);
  }
  if (data_) munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
}

bool MappedFile::intact() const {
  if (slot_ >= 0 && g_slots[slot_].faulted.load(std::memory_order_acquire)) return false;
  struct stat st;
  return fd_ < 0 || fstat(fd_, &st) != 0 || (uint64_t)st.st_size >= size_;
}

void MappedFile::check() const {
  if (intact()) return;
  struct stat st;
  std::string now = fd_ >= 0 && fstat(fd_, &st) == 0 ? std::to_string((uint64_t)st.st_size) : "fewer";
  throw Error(Code::Io, "the file shrank from " + std::to_string(size_) + " to " + now +
                            " bytes while it was being read (truncated or rewritten in place)", "", path_);
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
