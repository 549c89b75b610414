// safetensors: a validating reader over a memory-mapped file, and a writer that streams tensors into a
// temporary file in the target directory and renames it into place.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../dtype.h"
#include "mapped_file.h"
#include "output_file.h"

namespace wp {

struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::Unknown;
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the start of the data section
  uint64_t numel() const;
};

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;  // the reference reader's limit

class SafetensorsFile {
 public:
  // Maps and validates the file (throws Error(Format/Dtype/Io) naming the file and, where it applies, the
  // tensor). Validation follows the reference reader: an 8-byte little-endian header length, header at most
  // 100 MB of JSON, a known dtype, data_offsets in range, sizes equal to dtype size x shape, tensors
  // contiguous and non-overlapping and covering the data section, no duplicate names, __metadata__ a
  // string-to-string map.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in header order
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute offset of the data section
  const uint8_t* tensor_data(const TensorInfo& t) const { return file_->data() + data_offset_ + t.begin; }
  const std::shared_ptr<MappedFile>& file() const { return file_; }
  // Index of a tensor by name, or -1.
  long find(const std::string& name) const;

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<TensorInfo> tensors_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  uint64_t data_offset_ = 0;
};

class SafetensorsWriter {
 public:
  // Creates the output's temporary file (OutputFile: unnamed on Linux) for `path`. `reserve_header` bytes are
  // left for the header; when the final header is larger, finish() rewrites the data behind a bigger one
  // (correct, just slower).
  SafetensorsWriter(const std::string& path, uint64_t reserve_header);
  ~SafetensorsWriter();  // removes the temporary file unless place() succeeded
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Appends one tensor. bytes must equal dtype size x shape. Tensors are stored back to back in call order,
  // so callers keep alignment by writing large-element dtypes first or padding sizes to 8 bytes.
  void add(const std::string& name, Dtype dtype, const std::vector<uint64_t>& shape, const void* data,
           uint64_t bytes);
  void set_metadata(std::vector<std::pair<std::string, std::string>> md) { metadata_ = std::move(md); }
  // Writes the header and flushes to disk; the file is complete but not yet at its path.
  void finish();
  // Links the finished file into place at its path (replacing what is there). After this the writer is closed.
  void place();
  // Removes the temporary file (idempotent).
  void abort();
  const std::string& path() const { return path_; }
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  std::string path_;
  std::unique_ptr<OutputFile> out_;
  uint64_t reserve_ = 0, data_bytes_ = 0;
  std::vector<TensorInfo> entries_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  bool finished_ = false, done_ = false;
  std::string header_json() const;
};

}  // namespace wp
