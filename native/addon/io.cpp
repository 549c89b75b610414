// N-API face of checkpoint I/O: open (mmap + validate), zero-copy tensor views, and the streaming writer.
#include <memory>
#include <vector>

#include "../core/io/safetensors.h"
#include "common.h"

namespace wpa {

namespace {

using FileRef = std::shared_ptr<wp::SafetensorsFile>;

FileRef& file_of(const Napi::Value& v) {
  if (!v.IsExternal()) throw_arg(v.Env(), "expected a checkpoint handle");
  FileRef* f = v.As<Napi::External<FileRef>>().Data();
  if (!f || !*f) throw_arg(v.Env(), "checkpoint handle is closed");
  return *f;
}

Napi::Value describe(Napi::Env env, const FileRef& f) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("handle", Napi::External<FileRef>::New(env, new FileRef(f), [](Napi::Env, FileRef* p) { delete p; }));
  o.Set("path", f->path());
  o.Set("size", Napi::Number::New(env, (double)f->file()->size()));
  o.Set("dataOffset", Napi::Number::New(env, (double)f->data_offset()));
  o.Set("writableViews", Napi::Boolean::New(env, f->file()->writable()));
  Napi::Array ts = Napi::Array::New(env, f->tensors().size());
  // One key string of each kind, and one value string per dtype, made once: a header may have 10^5 entries.
  const Napi::String k_name = Napi::String::New(env, "name"), k_dtype = Napi::String::New(env, "dtype"),
                     k_shape = Napi::String::New(env, "shape"), k_begin = Napi::String::New(env, "begin"),
                     k_end = Napi::String::New(env, "end");
  std::vector<napi_value> dtypes;
  uint32_t i = 0;
  for (auto& t : f->tensors()) {
    Napi::Object to = Napi::Object::New(env);
    to.Set(k_name, Napi::String::New(env, t.name));
    const size_t di = (size_t)t.dtype;
    if (di >= dtypes.size()) dtypes.resize(di + 1, nullptr);
    if (!dtypes[di]) dtypes[di] = Napi::String::New(env, wp::dtype_name(t.dtype));
    to.Set(k_dtype, Napi::Value(env, dtypes[di]));
    Napi::Array sh = Napi::Array::New(env, t.shape.size());
    for (uint32_t d = 0; d < t.shape.size(); ++d) sh.Set(d, Napi::Number::New(env, (double)t.shape[d]));
    to.Set(k_shape, sh);
    to.Set(k_begin, Napi::Number::New(env, (double)t.begin));
    to.Set(k_end, Napi::Number::New(env, (double)t.end));
    ts.Set(i++, to);
  }
  o.Set("tensors", ts);
  Napi::Object md = Napi::Object::New(env);
  for (auto& kv : f->metadata()) md.Set(kv.first, kv.second);
  o.Set("metadata", md);
  return o;
}

class OpenWorker : public PromiseWorker {
 public:
  OpenWorker(Napi::Env env, std::string path) : PromiseWorker(env), path_(std::move(path)) {}
  void Run() override { file_ = wp::SafetensorsFile::open(path_); }
  Napi::Value Result(Napi::Env env) override { return describe(env, file_); }

 private:
  std::string path_;
  FileRef file_;
};

// open(path) -> Promise<{handle, path, size, dataOffset, tensors, metadata}>
Napi::Value Open(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw_arg(info.Env(), "path must be a string");
  auto* w = new OpenWorker(info.Env(), info[0].As<Napi::String>().Utf8Value());
  return w->Queue();
}

// openSync(path): the same, on the calling thread (small files, tests).
Napi::Value OpenSync(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw_arg(info.Env(), "path must be a string");
  try {
    return describe(info.Env(), wp::SafetensorsFile::open(info[0].As<Napi::String>().Utf8Value()));
  } catch (const wp::Error& e) {
    throw to_js_error(info.Env(), e);
  }
}

// view(handle, index) -> ArrayBuffer over the mapped bytes of tensor `index` (zero-copy). The buffer keeps the
// mapping alive.
Napi::Value View(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FileRef& f = file_of(info[0]);
  if (!info[1].IsNumber()) throw_arg(env, "tensor index must be a number");
  int64_t i = info[1].As<Napi::Number>().Int64Value();
  if (i < 0 || (size_t)i >= f->tensors().size()) throw_arg(env, "tensor index out of range");
  const wp::TensorInfo& t = f->tensors()[(size_t)i];
  size_t len = (size_t)(t.end - t.begin);
  if (len == 0) return Napi::ArrayBuffer::New(env, 0);
  auto* owner = new FileRef(f);
  return Napi::ArrayBuffer::New(env, const_cast<uint8_t*>(f->tensor_data(t)), len,
                                [](Napi::Env, void*, FileRef* o) { delete o; }, owner);
}

// check(handle): throws E_IO naming the file when it shrank while mapped (MappedFile::check).
Napi::Value Check(const Napi::CallbackInfo& info) {
  FileRef& f = file_of(info[0]);
  try {
    f->file()->check();
  } catch (const wp::Error& e) {
    throw to_js_error(info.Env(), e);
  }
  return info.Env().Undefined();
}

// close(handle): drop this handle's reference; the mapping goes when the last view is collected.
Napi::Value Close(const Napi::CallbackInfo& info) {
  if (info[0].IsExternal()) {
    FileRef* f = info[0].As<Napi::External<FileRef>>().Data();
    if (f) f->reset();
  }
  return info.Env().Undefined();
}

// advise(handle, index, "willneed" | "dontneed"): page-cache hints around streaming.
Napi::Value Advise(const Napi::CallbackInfo& info) {
  FileRef& f = file_of(info[0]);
  int64_t i = info[1].As<Napi::Number>().Int64Value();
  if (i < 0 || (size_t)i >= f->tensors().size()) throw_arg(info.Env(), "tensor index out of range");
  const wp::TensorInfo& t = f->tensors()[(size_t)i];
  std::string what = info[2].As<Napi::String>().Utf8Value();
  uint64_t off = f->data_offset() + t.begin, len = t.end - t.begin;
  if (what == "willneed") f->file()->will_need(off, len);
  else f->file()->dont_need(off, len);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------------------
using WriterRef = std::shared_ptr<wp::SafetensorsWriter>;

WriterRef& writer_of(const Napi::Value& v) {
  if (!v.IsExternal()) throw_arg(v.Env(), "expected a writer handle");
  return *v.As<Napi::External<WriterRef>>().Data();
}

// writerOpen(path, reserveHeaderBytes) -> handle
Napi::Value WriterOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_arg(env, "path must be a string");
  uint64_t reserve = info[1].IsNumber() ? (uint64_t)info[1].As<Napi::Number>().Int64Value() : 4096;
  try {
    auto w = std::make_shared<wp::SafetensorsWriter>(info[0].As<Napi::String>().Utf8Value(), reserve);
    return Napi::External<WriterRef>::New(env, new WriterRef(w), [](Napi::Env, WriterRef* p) { delete p; });
  } catch (const wp::Error& e) {
    throw to_js_error(env, e);
  }
}

class WriterWorker : public PromiseWorker {
 public:
  WriterWorker(Napi::Env env, WriterRef w, std::function<void(wp::SafetensorsWriter&)> fn)
      : PromiseWorker(env), w_(std::move(w)), fn_(std::move(fn)) {}
  void Run() override {
    if (!w_) throw wp::Error(wp::Code::Argument, "writer is closed");
    fn_(*w_);
  }

 private:
  WriterRef w_;
  std::function<void(wp::SafetensorsWriter&)> fn_;
};

// writerAdd(handle, name, dtype, shape[], bytes: TypedArray) -> Promise<void>
Napi::Value WriterAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  WriterRef w = writer_of(info[0]);
  std::string name = info[1].As<Napi::String>().Utf8Value();
  wp::Dtype d = dtype_of(env, info[2].As<Napi::String>().Utf8Value());
  if (!info[3].IsArray()) throw_arg(env, "shape must be an array");
  Napi::Array sh = info[3].As<Napi::Array>();
  std::vector<uint64_t> shape;
  for (uint32_t i = 0; i < sh.Length(); ++i) {
    double v = sh.Get(i).As<Napi::Number>().DoubleValue();
    if (!(v >= 0) || v != (double)(uint64_t)v) throw_arg(env, "shape entries must be non-negative integers");
    shape.push_back((uint64_t)v);
  }
  Bytes b = bytes_of(info[4], "tensor data");
  auto* worker = new WriterWorker(env, w, [=](wp::SafetensorsWriter& wr) { wr.add(name, d, shape, b.data, b.size); });
  worker->Keep(info[4]);
  return worker->Queue();
}

// writerFinish(handle, metadata: {[k]: string}) -> Promise<void>
Napi::Value WriterFinish(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  WriterRef w = writer_of(info[0]);
  std::vector<std::pair<std::string, std::string>> md;
  if (info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    Napi::Array keys = o.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
      Napi::Value v = o.Get(k);
      if (!v.IsString()) throw_arg(env, "metadata value for \"" + k + "\" must be a string");
      md.emplace_back(k, v.As<Napi::String>().Utf8Value());
    }
  }
  auto* worker = new WriterWorker(env, w, [md](wp::SafetensorsWriter& wr) {
    wr.set_metadata(md);
    wr.finish();
  });
  return worker->Queue();
}

// writerPlace(handle): link the finished file into place.
Napi::Value WriterPlace(const Napi::CallbackInfo& info) {
  WriterRef& w = writer_of(info[0]);
  try {
    if (!w) throw wp::Error(wp::Code::Argument, "writer is closed");
    w->place();
  } catch (const wp::Error& e) {
    throw to_js_error(info.Env(), e);
  }
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------------------
// The atomic output files of lib/atomic.ts (GGUF exports, indexes, plans): wp::OutputFile.
using OutRef = std::shared_ptr<wp::OutputFile>;

OutRef& out_of(const Napi::Value& v) {
  if (!v.IsExternal()) throw_arg(v.Env(), "expected an output file handle");
  return *v.As<Napi::External<OutRef>>().Data();
}

// outputOpen(path) -> handle
Napi::Value OutputOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_arg(env, "path must be a string");
  try {
    auto f = std::make_shared<wp::OutputFile>(info[0].As<Napi::String>().Utf8Value());
    return Napi::External<OutRef>::New(env, new OutRef(f), [](Napi::Env, OutRef* p) { delete p; });
  } catch (const wp::Error& e) {
    throw to_js_error(env, e);
  }
}

class OutputWorker : public PromiseWorker {
 public:
  OutputWorker(Napi::Env env, OutRef f, std::function<void(wp::OutputFile&)> fn) : PromiseWorker(env), f_(std::move(f)), fn_(std::move(fn)) {}
  void Run() override { fn_(*f_); }

 private:
  OutRef f_;
  std::function<void(wp::OutputFile&)> fn_;
};

// outputWrite(handle, bytes, offset) -> Promise<void>
Napi::Value OutputWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OutRef f = out_of(info[0]);
  Bytes b = bytes_of(info[1], "data");
  if (!info[2].IsNumber()) throw_arg(env, "offset must be a number");
  uint64_t off = (uint64_t)info[2].As<Napi::Number>().Int64Value();
  auto* w = new OutputWorker(env, f, [=](wp::OutputFile& o) { o.pwrite_all(b.data, b.size, off); });
  w->Keep(info[1]);
  return w->Queue();
}

// outputPlace(handle) -> Promise<void>: fsync, then link into place.
Napi::Value OutputPlace(const Napi::CallbackInfo& info) {
  auto* w = new OutputWorker(info.Env(), out_of(info[0]), [](wp::OutputFile& o) {
    o.sync();
    o.place();
  });
  return w->Queue();
}

// outputAbort(handle)
Napi::Value OutputAbort(const Napi::CallbackInfo& info) {
  out_of(info[0])->abort();
  return info.Env().Undefined();
}

// writerAbort(handle): remove the temporary file now.
Napi::Value WriterAbort(const Napi::CallbackInfo& info) {
  WriterRef& w = writer_of(info[0]);
  if (w) w->abort();
  return info.Env().Undefined();
}

}  // namespace

void init_io(Napi::Env env, Napi::Object exports) {
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("openSync", Napi::Function::New(env, OpenSync));
  exports.Set("view", Napi::Function::New(env, View));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("advise", Napi::Function::New(env, Advise));
  exports.Set("writerOpen", Napi::Function::New(env, WriterOpen));
  exports.Set("writerAdd", Napi::Function::New(env, WriterAdd));
  exports.Set("writerFinish", Napi::Function::New(env, WriterFinish));
  exports.Set("writerAbort", Napi::Function::New(env, WriterAbort));
  exports.Set("writerPlace", Napi::Function::New(env, WriterPlace));
  exports.Set("check", Napi::Function::New(env, Check));
  exports.Set("outputOpen", Napi::Function::New(env, OutputOpen));
  exports.Set("outputWrite", Napi::Function::New(env, OutputWrite));
  exports.Set("outputPlace", Napi::Function::New(env, OutputPlace));
  exports.Set("outputAbort", Napi::Function::New(env, OutputAbort));
}

}  // namespace wpa
