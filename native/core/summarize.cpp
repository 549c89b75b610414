#include "summarize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "error.h"

namespace wp {

double WeightedPoints::total_weight() const {
  double s = 0;
  for (double v : w) s += v;
  return s;
}

template <typename K>
void radix_sort(std::vector<K>& keys, std::vector<float>* payload) {
  constexpr int kBits = 8;
  constexpr int kPasses = sizeof(K);
  const size_t n = keys.size();
  if (n < 2) return;
  std::vector<K> tmp(n);
  std::vector<float> ptmp(payload ? n : 0);
  for (int pass = 0; pass < kPasses; ++pass) {
    const int shift = pass * kBits;
    size_t count[256] = {0};
    for (size_t i = 0; i < n; ++i) ++count[(keys[i] >> shift) & 0xff];
    if (count[(keys[0] >> shift) & 0xff] == n) continue;  // this digit is constant: skip the pass
    size_t pos = 0;
    for (int b = 0; b < 256; ++b) { size_t c = count[b]; count[b] = pos; pos += c; }
    if (payload) {
      for (size_t i = 0; i < n; ++i) {
        size_t dst = count[(keys[i] >> shift) & 0xff]++;
        tmp[dst] = keys[i];
        ptmp[dst] = (*payload)[i];
      }
      payload->swap(ptmp);
    } else {
      for (size_t i = 0; i < n; ++i) tmp[count[(keys[i] >> shift) & 0xff]++] = keys[i];
    }
    keys.swap(tmp);
  }
}
template void radix_sort<uint16_t>(std::vector<uint16_t>&, std::vector<float>*);
template void radix_sort<uint32_t>(std::vector<uint32_t>&, std::vector<float>*);
template void radix_sort<uint64_t>(std::vector<uint64_t>&, std::vector<float>*);

size_t hist16_first_non_finite(const uint64_t* hist, Dtype d) {
  const uint16_t mask = d == Dtype::F16 ? 0x7c00u : 0x7f80u;
  for (size_t h = 0; h < 65536; ++h)
    if (hist[h] && ((uint16_t)h & mask) == mask) return h;
  return 65536;
}

void points_from_hist16(const uint64_t* hist, Dtype d, WeightedPoints& out) {
  out.clear();
  for (uint32_t k = 0; k < 65536; ++k) {  // in key order = ascending value
    uint16_t h = unkey16((uint16_t)k);
    if (!hist[h]) continue;
    double x = d == Dtype::F16 ? f16_to_f32(h) : bf16_to_f32(h);
    if (!out.x.empty() && out.x.back() == x) out.w.back() += (double)hist[h];
    else { out.x.push_back(x); out.w.push_back((double)hist[h]); }
  }
}

void merge_points(WeightedPoints& acc, const WeightedPoints& add) {
  WeightedPoints out;
  out.x.reserve(acc.size() + add.size());
  out.w.reserve(acc.size() + add.size());
  size_t i = 0, j = 0;
  while (i < acc.size() || j < add.size()) {
    if (j >= add.size() || (i < acc.size() && acc.x[i] < add.x[j])) { out.x.push_back(acc.x[i]); out.w.push_back(acc.w[i]); ++i; }
    else if (i >= acc.size() || add.x[j] < acc.x[i]) { out.x.push_back(add.x[j]); out.w.push_back(add.w[j]); ++j; }
    else { out.x.push_back(acc.x[i]); out.w.push_back(acc.w[i] + add.w[j]); ++i; ++j; }
  }
  acc = std::move(out);
}

void throw_non_finite_at(const void* data, Dtype d, size_t begin, size_t end) {
  size_t i = first_non_finite(data, d, begin, end);
  double v = i < end ? load_as_double(data, d, i) : NAN;
  throw Error(Code::NonFinite, std::string(std::isnan(v) ? "NaN" : "Inf") + " at element " + std::to_string(i));
}

size_t first_non_finite(const void* data, Dtype d, size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i)
    if (!std::isfinite(load_as_double(data, d, i))) return i;
  return end;
}

namespace {

[[noreturn]] void throw_non_finite(const void* data, Dtype d, size_t begin, size_t end) { throw_non_finite_at(data, d, begin, end); }

void check_importance(const float* imp, size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i) {
    float v = imp[i];
    if (!(v >= 0) || !std::isfinite(v))
      throw Error(Code::NonFinite, "importance is " + std::to_string(v) + " at element " + std::to_string(i) +
                                       " (it must be finite and non-negative)");
  }
}

// 16-bit float codes (F16 or BF16) are non-finite when the exponent field is all ones.
inline bool nonfinite16(uint16_t h, Dtype d) {
  return d == Dtype::F16 ? (h & 0x7c00u) == 0x7c00u : (h & 0x7f80u) == 0x7f80u;
}
inline double decode16(uint16_t h, Dtype d) { return d == Dtype::F16 ? f16_to_f32(h) : bf16_to_f32(h); }

void summarize16(const uint16_t* v, Dtype d, size_t begin, size_t end, const float* imp, WeightedPoints& out) {
  const size_t n = end - begin;
  const void* base = v;
  if (n >= 16384) {  // exact histogram over the 65,536 codes
    std::vector<double> hw(65536, 0.0);
    if (imp) {
      for (size_t i = begin; i < end; ++i) hw[key16(v[i])] += imp[i];
    } else {
      std::vector<uint32_t> hc(65536, 0);
      for (size_t i = begin; i < end; ++i) ++hc[key16(v[i])];
      for (size_t b = 0; b < 65536; ++b) hw[b] = hc[b];
    }
    for (size_t b = 0; b < 65536; ++b) {
      if (hw[b] == 0) continue;
      uint16_t h = unkey16((uint16_t)b);
      if (nonfinite16(h, d)) throw_non_finite(base, d, begin, end);
      double x = decode16(h, d);
      if (!out.x.empty() && out.x.back() == x) {  // +0 and -0 are one value
        out.w.back() += hw[b];
      } else {
        out.x.push_back(x);
        out.w.push_back(hw[b]);
      }
    }
    // A value present only with zero importance contributes no weight: such values were skipped above, but
    // a NaN with zero importance must still be reported.
    if (imp) for (size_t i = begin; i < end; ++i) if (nonfinite16(v[i], d)) throw_non_finite(base, d, begin, end);
    return;
  }
  // Small slices (groups of 128, short rows) are summarized by the million: the keys live in the thread's scratch,
  // and without importance (no payload whose order would matter) a comparison sort of a few hundred keys beats
  // the radix sort's two passes over 256 counters. Either way the keys come out ascending: the same points.
  thread_local std::vector<uint16_t> keys;
  std::vector<float> pw;
  keys.resize(n);
  for (size_t i = 0; i < n; ++i) keys[i] = key16(v[begin + i]);
  if (imp) pw.assign(imp + begin, imp + end);
  if (!imp && n <= 1024) std::sort(keys.begin(), keys.end());
  else radix_sort(keys, imp ? &pw : nullptr);
  for (size_t i = 0; i < n; ++i) {
    uint16_t h = unkey16(keys[i]);
    if (nonfinite16(h, d)) throw_non_finite(base, d, begin, end);
    double x = decode16(h, d);
    double w = imp ? pw[i] : 1.0;
    if (!out.x.empty() && out.x.back() == x) out.w.back() += w;
    else if (w > 0) { out.x.push_back(x); out.w.push_back(w); }
  }
}

template <typename F, typename K>
void summarize_wide(const F* v, size_t begin, size_t end, const float* imp, WeightedPoints& out) {
  const size_t n = end - begin;
  std::vector<K> keys(n);
  std::vector<float> pw;
  for (size_t i = 0; i < n; ++i) {
    F f = v[begin + i];
    if (!std::isfinite(f)) throw_non_finite(v, sizeof(F) == 4 ? Dtype::F32 : Dtype::F64, begin, end);
    if (f == 0) f = 0;  // fold -0 into +0
    K bits;
    std::memcpy(&bits, &f, sizeof(F));
    keys[i] = sizeof(K) == 4 ? (K)key32((uint32_t)bits) : (K)key64((uint64_t)bits);
  }
  if (imp) pw.assign(imp + begin, imp + end);
  radix_sort(keys, imp ? &pw : nullptr);
  for (size_t i = 0; i < n; ++i) {
    K bits = sizeof(K) == 4 ? (K)unkey32((uint32_t)keys[i]) : (K)unkey64((uint64_t)keys[i]);
    F f;
    std::memcpy(&f, &bits, sizeof(F));
    double x = f;
    double w = imp ? pw[i] : 1.0;
    if (!out.x.empty() && out.x.back() == x) out.w.back() += w;
    else if (w > 0) { out.x.push_back(x); out.w.push_back(w); }
  }
}

}  // namespace

void summarize_slice(const void* data, Dtype d, size_t begin, size_t end, const float* importance,
                     WeightedPoints& out) {
  out.clear();
  if (importance) check_importance(importance, begin, end);
  switch (d) {
    case Dtype::F16:
    case Dtype::BF16: summarize16((const uint16_t*)data, d, begin, end, importance, out); break;
    case Dtype::F32: summarize_wide<float, uint32_t>((const float*)data, begin, end, importance, out); break;
    case Dtype::F64: summarize_wide<double, uint64_t>((const double*)data, begin, end, importance, out); break;
    default: throw Error(Code::Dtype, std::string("cannot quantize dtype ") + dtype_name(d));
  }
  // Drop zero-weight values the 16-bit histogram path may have merged in.
  size_t k = 0;
  for (size_t i = 0; i < out.x.size(); ++i)
    if (out.w[i] > 0) { out.x[k] = out.x[i]; out.w[k] = out.w[i]; ++k; }
  out.x.resize(k);
  out.w.resize(k);
}

}  // namespace wp
