#include "safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
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

// What a file that is not safetensors looks like, from its first bytes: "" when it is nothing we know.
std::string looks_like(const uint8_t* b, uint64_t size) {
  if (size >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4)
    return "a zip archive (a PyTorch checkpoint saved by torch.save, e.g. pytorch_model.bin?)";
  if (size >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5) return "a Python pickle (a legacy PyTorch checkpoint, e.g. pytorch_model.bin?)";
  if (size >= 4 && b[0] == 'G' && b[1] == 'G' && b[2] == 'U' && b[3] == 'F') return "a GGUF file";
  if (size >= 8 && b[0] == 0x89 && b[1] == 'H' && b[2] == 'D' && b[3] == 'F') return "an HDF5 file (a Keras checkpoint?)";
  if (size >= 6 && b[0] == 0x93 && b[1] == 'N' && b[2] == 'U' && b[3] == 'M' && b[4] == 'P' && b[5] == 'Y') return "a NumPy .npy file";
  return "";
}

// The format error of a file whose start is not a safetensors header: named after what it looks like, if known.
[[noreturn]] void not_safetensors(const std::string& path, const uint8_t* b, uint64_t size, const std::string& msg) {
  std::string kind = looks_like(b, size);
  if (!kind.empty()) fail(Code::Format, path, "", "not a safetensors file: it looks like " + kind + "; convert it to safetensors first");
  fail(Code::Format, path, "", msg);
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
  if (n > kMaxHeaderBytes) not_safetensors(path, base, size, "header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > size - 8) not_safetensors(path, base, size, "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) + " bytes): truncated?");
  // JSON whitespace may precede the object (the reference reader parses the header with serde_json).
  uint64_t first = 8;
  while (first < 8 + n && (base[first] == ' ' || base[first] == '\t' || base[first] == '\n' || base[first] == '\r')) ++first;
  if (first == 8 + n || base[first] != '{') not_safetensors(path, base, size, "header does not start with '{'");
  // The reference reader takes the header as UTF-8 text (str::from_utf8): anything else is no header.
  size_t bad = 0;
  if (!json::valid_utf8((const char*)base + 8, n, &bad))
    fail(Code::Format, path, "", "header is not valid UTF-8 (at byte " + std::to_string(8 + bad) + ")");
  f->data_offset_ = 8 + n;
  const uint64_t data_size = size - f->data_offset_;
  // The header is read member by member (json::parse_members): each tensor entry becomes a TensorInfo at once and
  // its JSON is dropped, so memory and time stay linear and small in the number of entries. A problem with an
  // entry is reported only once the whole header has parsed as JSON, as before: syntax errors come first, then
  // the first bad entry in file order.
  std::exception_ptr bad_entry;
  auto entry = [&](std::string& name, json::Value& v) {
    if (name == "__metadata__") {
      if (v.kind == json::Value::Kind::Null) return;  // the reference reader's Option: null is no metadata
      if (v.kind != json::Value::Kind::Object) fail(Code::Format, path, "", "__metadata__ is not an object");
      for (auto& kv : v.members) {
        if (kv.second.kind != json::Value::Kind::String)
          fail(Code::Format, path, "", "__metadata__ value for \"" + kv.first + "\" is not a string");
        f->metadata_.emplace_back(kv.first, kv.second.str);
      }
      return;
    }
    if (v.kind != json::Value::Kind::Object) fail(Code::Format, path, name, "tensor entry is not an object");
    TensorInfo t;
    const json::Value* dt = v.find("dtype");
    const json::Value* sh = v.find("shape");
    const json::Value* off = v.find("data_offsets");
    if (!dt || dt->kind != json::Value::Kind::String) fail(Code::Format, path, name, "missing or non-string dtype");
    if (!sh || sh->kind != json::Value::Kind::Array) fail(Code::Format, path, name, "missing or non-array shape");
    if (!off || off->kind != json::Value::Kind::Array || off->items.size() != 2)
      fail(Code::Format, path, name, "data_offsets must be an array of two integers");
    t.dtype = dtype_from_name(dt->str);
    if (t.dtype == Dtype::Unknown) fail(Code::Dtype, path, name, "unknown dtype \"" + dt->str + "\"");
    t.shape.reserve(sh->items.size());
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
    t.name = std::move(name);
    f->tensors_.push_back(std::move(t));
  };
  try {
    json::parse_members((const char*)base + 8, n, [&](std::string& name, json::Value& v) {
      if (bad_entry) return;
      try {
        entry(name, v);
      } catch (Error&) {
        bad_entry = std::current_exception();
      }
    }, true);
  } catch (Error& e) {
    fail(Code::Format, path, e.tensor(), e.what());
  }
  if (bad_entry) std::rethrow_exception(bad_entry);
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
  f->file_->check();  // the header was read from the mapping: it must not have shrunk meanwhile
  return f;
}

long SafetensorsFile::find(const std::string& name) const {
  for (size_t i = 0; i < tensors_.size(); ++i) if (tensors_[i].name == name) return (long)i;
  return -1;
}

// ---------------------------------------------------------------------------------------------------------
SafetensorsWriter::SafetensorsWriter(const std::string& path, uint64_t reserve_header)
    : path_(path), out_(std::make_unique<OutputFile>(path)), reserve_((reserve_header + 7) & ~7ull) {}

SafetensorsWriter::~SafetensorsWriter() { abort(); }

void SafetensorsWriter::abort() {
  if (done_) return;
  out_->abort();
  done_ = true;
}

void SafetensorsWriter::add(const std::string& name, Dtype dtype, const std::vector<uint64_t>& shape, const void* data,
                            uint64_t bytes) {
  if (done_ || finished_) throw Error(Code::Argument, "writer is closed", name, path_);
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
  out_->pwrite_all(data, bytes, 8 + reserve_ + data_bytes_);
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
  if (done_ || finished_) throw Error(Code::Argument, "writer is closed", "", path_);
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
      out_->pread_all(buf.data(), chunk, src);
      out_->pwrite_all(buf.data(), chunk, src + shift);
      remaining -= chunk;
    }
    h.append((size_t)(hl - h.size()), ' ');
  }
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = (uint8_t)(hl >> (8 * i));
  out_->pwrite_all(len, 8, 0);
  out_->pwrite_all(h.data(), hl, 8);
  out_->sync();
  finished_ = true;
}

void SafetensorsWriter::place() {
  if (done_ || !finished_) throw Error(Code::Argument, done_ ? "writer is closed" : "writer is not finished", "", path_);
  done_ = true;
  out_->place();  // on failure it has removed the temporary file
}

}  // namespace wp
