#include "safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <unordered_set>

#include "../error.h"
#include "json.h"

namespace wp {

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (auto d : shape) n = mul_no_overflow(n, d, "tensor shape");
  return n;
}

namespace {

[[noreturn]] void fail(Code c, const std::string& path, const std::string& tensor, const std::string& msg) {
  throw Error(c, msg, tensor, path);
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto f = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  f->file_ = MappedFile::open(path);
  const uint8_t* base = f->file_->data();
  const uint64_t size = f->file_->size();
  if (size < 8) fail(Code::Format, path, "", "file is " + std::to_string(size) + " bytes, too short for a safetensors header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | base[i];
  if (n > kMaxHeaderBytes) fail(Code::Format, path, "", "header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > size - 8) fail(Code::Format, path, "", "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) + " bytes): truncated?");
  if (n < 2 || base[8] != '{') fail(Code::Format, path, "", "header does not start with '{'");
  json::Value root;
  try {
    root = json::parse((const char*)base + 8, n, true);
  } catch (Error& e) {
    fail(Code::Format, path, e.tensor(), e.what());
  }
  if (root.kind != json::Value::Kind::Object) fail(Code::Format, path, "", "header is not a JSON object");
  f->data_offset_ = 8 + n;
  const uint64_t data_size = size - f->data_offset_;
  for (auto& m : root.members) {
    const std::string& name = m.first;
    const json::Value& v = m.second;
    if (name == "__metadata__") {
      if (v.kind != json::Value::Kind::Object) fail(Code::Format, path, "", "__metadata__ is not an object");
      for (auto& kv : v.members) {
        if (kv.second.kind != json::Value::Kind::String)
          fail(Code::Format, path, "", "__metadata__ value for \"" + kv.first + "\" is not a string");
        f->metadata_.emplace_back(kv.first, kv.second.str);
      }
      continue;
    }
    if (v.kind != json::Value::Kind::Object) fail(Code::Format, path, name, "tensor entry is not an object");
    TensorInfo t;
    t.name = name;
    const json::Value* dt = v.find("dtype");
    const json::Value* sh = v.find("shape");
    const json::Value* off = v.find("data_offsets");
    if (!dt || dt->kind != json::Value::Kind::String) fail(Code::Format, path, name, "missing or non-string dtype");
    if (!sh || sh->kind != json::Value::Kind::Array) fail(Code::Format, path, name, "missing or non-array shape");
    if (!off || off->kind != json::Value::Kind::Array || off->items.size() != 2)
      fail(Code::Format, path, name, "data_offsets must be an array of two integers");
    t.dtype = dtype_from_name(dt->str);
    if (t.dtype == Dtype::Unknown) fail(Code::Dtype, path, name, "unknown dtype \"" + dt->str + "\"");
    for (auto& d : sh->items) {
      if (d.kind != json::Value::Kind::Number || !d.is_integer || d.negative)
        fail(Code::Format, path, name, "shape entries must be non-negative integers");
      t.shape.push_back(d.uint);
    }
    for (int i = 0; i < 2; ++i) {
      auto& o = off->items[(size_t)i];
      if (o.kind != json::Value::Kind::Number || !o.is_integer || o.negative)
        fail(Code::Format, path, name, "data_offsets must be non-negative integers");
    }
    t.begin = off->items[0].uint;
    t.end = off->items[1].uint;
    if (t.end < t.begin) fail(Code::Format, path, name, "data_offsets end before they begin");
    if (t.end > data_size)
      fail(Code::Format, path, name, "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                                         "] run past the data section (" + std::to_string(data_size) + " bytes): truncated?");
    uint64_t expect;
    try {
      expect = mul_no_overflow(t.numel(), dtype_size(t.dtype), "tensor size");
    } catch (Error& e) {
      fail(Code::Format, path, name, e.what());
    }
    if (expect != t.end - t.begin)
      fail(Code::Format, path, name, "holds " + std::to_string(t.end - t.begin) + " bytes but dtype " + dt->str +
                                         " and its shape need " + std::to_string(expect));
    f->tensors_.push_back(std::move(t));
  }
  // Contiguous and non-overlapping, covering the whole data section.
  std::vector<const TensorInfo*> order;
  for (auto& t : f->tensors_) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t at = 0;
  for (auto* t : order) {
    if (t->begin != at)
      fail(Code::Format, path, t->name, t->begin < at ? "data overlaps the previous tensor" : "gap in the data before this tensor");
    at = t->end;
  }
  if (at != data_size)
    fail(Code::Format, path, "", "data section is " + std::to_string(data_size) + " bytes but tensors cover " + std::to_string(at));
  return f;
}

long SafetensorsFile::find(const std::string& name) const {
  for (size_t i = 0; i < tensors_.size(); ++i) if (tensors_[i].name == name) return (long)i;
  return -1;
}

// ---------------------------------------------------------------------------------------------------------
SafetensorsWriter::SafetensorsWriter(const std::string& path, uint64_t reserve_header)
    : path_(path), reserve_((reserve_header + 7) & ~7ull) {
  std::string dir = ".", base = path;
  auto slash = path.find_last_of('/');
  if (slash != std::string::npos) { dir = path.substr(0, slash); base = path.substr(slash + 1); if (dir.empty()) dir = "/"; }
  std::random_device rd;
  for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
    char suffix[32];
    snprintf(suffix, sizeof suffix, ".%08x.tmp", (unsigned)rd());
    tmp_ = dir + "/." + base + suffix;
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) throw Error(Code::Io, std::string("cannot create a temporary file in ") + dir + ": " + std::strerror(errno), "", path);
}

SafetensorsWriter::~SafetensorsWriter() { abort(); }

void SafetensorsWriter::abort() {
  if (done_) return;
  if (fd_ >= 0) { ::close(fd_); fd_ = -1; }
  if (!tmp_.empty()) { ::unlink(tmp_.c_str()); tmp_.clear(); }
  done_ = true;
}

void SafetensorsWriter::write_all(const void* p, uint64_t n, uint64_t offset) {
  const char* c = (const char*)p;
  while (n > 0) {
    size_t chunk = (size_t)std::min<uint64_t>(n, 1ull << 30);
    ssize_t w = ::pwrite(fd_, c, chunk, (off_t)offset);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(Code::Io, std::string("write failed: ") + std::strerror(errno), "", path_);
    }
    c += w; n -= (uint64_t)w; offset += (uint64_t)w;
  }
}

void SafetensorsWriter::add(const std::string& name, Dtype dtype, const std::vector<uint64_t>& shape, const void* data,
                            uint64_t bytes) {
  if (done_) throw Error(Code::Argument, "writer is closed", name, path_);
  if (name == "__metadata__") throw Error(Code::Argument, "a tensor cannot be named __metadata__", name, path_);
  for (auto& e : entries_) if (e.name == name) throw Error(Code::Argument, "duplicate tensor name", name, path_);
  TensorInfo t;
  t.name = name;
  t.dtype = dtype;
  t.shape = shape;
  uint64_t expect = mul_no_overflow(t.numel(), dtype_size(dtype), "tensor size");
  if (expect != bytes)
    throw Error(Code::Argument, "got " + std::to_string(bytes) + " bytes, dtype and shape need " + std::to_string(expect), name, path_);
  t.begin = data_bytes_;
  t.end = data_bytes_ + bytes;
  write_all(data, bytes, 8 + reserve_ + data_bytes_);
  data_bytes_ += bytes;
  entries_.push_back(std::move(t));
}

std::string SafetensorsWriter::header_json() const {
  std::string h = "{";
  bool first = true;
  if (!metadata_.empty()) {
    h += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata_.size(); ++i) {
      if (i) h += ',';
      json::append_quoted(h, metadata_[i].first);
      h += ':';
      json::append_quoted(h, metadata_[i].second);
    }
    h += '}';
    first = false;
  }
  for (auto& t : entries_) {
    if (!first) h += ',';
    first = false;
    json::append_quoted(h, t.name);
    h += ":{\"dtype\":\"";
    h += dtype_name(t.dtype);
    h += "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) { if (i) h += ','; h += std::to_string(t.shape[i]); }
    h += "],\"data_offsets\":[" + std::to_string(t.begin) + "," + std::to_string(t.end) + "]}";
  }
  h += '}';
  return h;
}

void SafetensorsWriter::finish() {
  if (done_) throw Error(Code::Argument, "writer is closed", "", path_);
  std::string h = header_json();
  uint64_t hl = (h.size() + 7) & ~7ull;  // 8-byte aligned header: the data section starts aligned
  if (hl > kMaxHeaderBytes) throw Error(Code::Argument, "header would exceed 100 MB", "", path_);
  if (hl <= reserve_) {
    h.append((size_t)(reserve_ - h.size()), ' ');  // whitespace padding, allowed by the format
    hl = reserve_;
  } else {
    // The header outgrew its reservation: move the data behind a larger one, back to front.
    uint64_t shift = hl - reserve_;
    std::vector<char> buf(1 << 20);
    uint64_t remaining = data_bytes_;
    while (remaining > 0) {
      uint64_t chunk = std::min<uint64_t>(remaining, buf.size());
      uint64_t src = 8 + reserve_ + remaining - chunk;
      ssize_t r = ::pread(fd_, buf.data(), (size_t)chunk, (off_t)src);
      if (r != (ssize_t)chunk) throw Error(Code::Io, "re-reading the temporary file failed", "", path_);
      write_all(buf.data(), chunk, src + shift);
      remaining -= chunk;
    }
    h.append((size_t)(hl - h.size()), ' ');
  }
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = (uint8_t)(hl >> (8 * i));
  write_all(len, 8, 0);
  write_all(h.data(), hl, 8);
  if (::fsync(fd_) != 0) throw Error(Code::Io, std::string("fsync failed: ") + std::strerror(errno), "", path_);
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp_.c_str());
    done_ = true;
    throw Error(Code::Io, std::string("cannot rename into place: ") + std::strerror(e), "", path_);
  }
  done_ = true;
}

}  // namespace wp
