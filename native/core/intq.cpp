#include "intq.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "error.h"
#include "metrics.h"
#include "pack.h"

namespace wp {

namespace {

constexpr uint64_t kUnitElems = 1u << 16;  // elements per work unit (whole groups)
constexpr double kF16MinNormal = 6.103515625e-05;  // 2^-14
constexpr double kF16Max = 65504.0;

inline uint64_t align8(uint64_t b) { return (b + 7) & ~(uint64_t)7; }

size_t scale_size(Dtype d) { return d == Dtype::F32 ? 4 : 2; }

// Rounds to 11 significant bits (F16's precision), nearest even, keeping F32's exponent range.
float round_f16_precision(float v) {
  uint32_t x;
  std::memcpy(&x, &v, 4);
  if ((x & 0x7f800000u) == 0x7f800000u) return v;
  x += 0xfffu + ((x >> 13) & 1u);
  x &= ~0x1fffu;
  float r;
  std::memcpy(&r, &x, 4);
  return r;
}

float round_scale(double s, Dtype d, bool f16_precision = false) {
  if (d == Dtype::F32 && f16_precision) return round_f16_precision((float)s);
  switch (d) {
    case Dtype::F16: return f16_to_f32(f32_to_f16((float)s));
    case Dtype::BF16: return bf16_to_f32(f32_to_bf16((float)s));
    default: return (float)s;
  }
}

void put_scale(uint8_t* base, uint64_t g, float s, Dtype d) {
  if (d == Dtype::F32) { std::memcpy(base + g * 4, &s, 4); return; }
  uint16_t h = d == Dtype::F16 ? f32_to_f16(s) : f32_to_bf16(s);
  std::memcpy(base + g * 2, &h, 2);
}

float get_scale(const uint8_t* base, uint64_t g, Dtype d) {
  if (d == Dtype::F32) { float s; std::memcpy(&s, base + g * 4, 4); return s; }
  uint16_t h;
  std::memcpy(&h, base + g * 2, 2);
  return d == Dtype::F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

// One group's quantizer: scale (as stored) and zero point z (the code of 0).
struct Q {
  float s = 0;
  int z = 0;
};

constexpr size_t kChunk = 4096;  // elements loaded at a time (a multiple of 8: packed codes start on a byte)

// One group's weights, read in chunks from the tensor (no copy of the group: a group may be a whole row or tensor).
struct Group {
  const void* data;
  Dtype dtype;
  uint64_t begin, n;
  const float* w;  // importance of the group's elements, or null
  template <class F>
  void each(F&& f) const {  // f(x, w, i0, m): chunk of m values starting at group element i0
    float buf[kChunk];
    for (uint64_t i0 = 0; i0 < n; i0 += kChunk) {
      const size_t m = (size_t)std::min<uint64_t>(kChunk, n - i0);
      load_f32(data, dtype, begin + i0, m, buf);
      f(buf, w ? w + i0 : nullptr, i0, m);
    }
  }
};

// std::nearbyint (round half to even) without the libm call, for values whose result is clamped to [0, 255] after:
// v is first clamped to +-2^50 (which changes no clamped result), then (v + 1.5*2^52) - 1.5*2^52 rounds it to an
// integer in the default rounding mode exactly as nearbyint does (wp_core builds without -ffast-math and with
// -ffp-contract=off, so the two operations stay as written).
inline double rint_bounded(double v) {
  constexpr double kBound = 0x1p50, kShift = 0x1.8p52;
  v = std::min(std::max(v, -kBound), kBound);
  return (v + kShift) - kShift;
}

inline int code_of(float x, double inv, int z, int L) {
  const double t = rint_bounded((double)x * inv) + z;
  return (int)std::min<double>(L, std::max<double>(0, t));
}

class Encoder {
 public:
  Encoder(const IntParams& p) : p_(p), L_((1 << p.bits) - 1), half_(1 << (p.bits - 1)) {}

  // Weighted squared error of the group under q (codes u = clamp(rint(x / s) + z)).
  double eval(const Group& g, const Q& q) const {
    double d = 0;
    const double inv = q.s == 0 ? 0 : 1.0 / (double)q.s;
    g.each([&](const float* x, const float* w, uint64_t, size_t m) {
      for (size_t i = 0; i < m; ++i) {
        const float r = q.s == 0 ? 0.f : q.s * (float)(code_of(x[i], inv, q.z, L_) - q.z);
        const double e = (double)x[i] - (double)r;
        d += (w ? (double)w[i] : 1.0) * e * e;
      }
    });
    return d;
  }

  // The scale for value s rounded to the stored dtype; Range when it does not fit (a non-zero group only).
  float stored(double s, uint64_t gi) const {
    if (p_.scale_dtype == Dtype::F16 && (s > kF16Max || s < kF16MinNormal))
      throw Error(Code::Range, "group " + std::to_string(gi) + ": its scale " + num(s) + " is outside F16's normal range [6.1e-05, 65504]");
    float r = round_scale(s, p_.scale_dtype, p_.f16_precision);
    if (!std::isfinite(r) || r <= 0) throw Error(Code::Range, "group " + std::to_string(gi) + ": its scale " + num(s) + " does not fit " + dtype_name(p_.scale_dtype));
    return r;
  }

  // The min-max quantizer of range [lo, hi] (lo <= 0 <= hi, not both 0); m the signed largest magnitude.
  Q from_range(double lo, double hi, double m, uint64_t gi) const {
    Q q;
    if (p_.symmetric) {
      // The signed largest magnitude onto the end level of its sign: -2^(b-1) for a negative one, 2^(b-1)-1 for a
      // positive one (the symmetric grid has one more negative level).
      q.s = stored(m < 0 ? -m / half_ : m / (half_ - 1), gi);
      q.z = half_;
    } else {
      q.s = stored((hi - lo) / L_, gi);
      q.z = (int)std::min<double>(L_, std::max<double>(0, rint_bounded(-lo / q.s)));
    }
    return q;
  }

  // The stored least-squares scale for zero point z and codes c (false when degenerate or out of range).
  bool ls_scale(double sxq, double sqq, Q& q) const {
    if (!(sqq > 0) || !(sxq > 0)) return false;
    const double s = sxq / sqq;
    if (p_.scale_dtype == Dtype::F16 && (s > kF16Max || s < kF16MinNormal)) return false;
    const float r = round_scale(s, p_.scale_dtype, p_.f16_precision);
    if (!std::isfinite(r) || r <= 0) return false;
    q.s = r;
    return true;
  }

  // Least-squares refit to the codes that q assigns: asymmetric, first the affine fit x ~ a u + c giving
  // z = rint(-c / a); then the scale for the zero point.
  bool refit(const Group& g, Q& q) const {
    const double inv = 1.0 / (double)q.s;
    double sw = 0, su = 0, sx = 0, suu = 0, sux = 0;
    g.each([&](const float* x, const float* w, uint64_t, size_t m) {
      for (size_t i = 0; i < m; ++i) {
        const double ww = w ? w[i] : 1.0, u = code_of(x[i], inv, q.z, L_);
        sw += ww; su += ww * u; sx += ww * x[i]; suu += ww * u * u; sux += ww * u * x[i];
      }
    });
    Q r = q;
    if (!p_.symmetric) {
      const double det = sw * suu - su * su;
      if (det > 0) {
        const double a = (sw * sux - su * sx) / det, c = (sx - a * su) / sw;
        if (a > 0) r.z = (int)std::min<double>(L_, std::max<double>(0, rint_bounded(-c / a)));
      }
    }
    // sum w x (u - z) and sum w (u - z)^2 from the sums above (codes of q, zero point r.z).
    const double z = r.z;
    const double sxq = sux - z * sx, sqq = suu - 2 * z * su + z * z * sw;
    if (!ls_scale(sxq, sqq, r)) return false;
    q = r;
    return true;
  }

  // The least-squares scale for the codes q assigns with zero point q.z.
  bool refit_scale(const Group& g, Q& q) const {
    const double inv = 1.0 / (double)q.s;
    double sxq = 0, sqq = 0;
    g.each([&](const float* x, const float* w, uint64_t, size_t m) {
      for (size_t i = 0; i < m; ++i) {
        const double ww = w ? w[i] : 1.0, d = (double)code_of(x[i], inv, q.z, L_) - q.z;
        sxq += ww * x[i] * d;
        sqq += ww * d * d;
      }
    });
    return ls_scale(sxq, sqq, q);
  }

  // The group's quantizer (codes are assigned from it afterwards) and its weighted error.
  Q group(const Group& g, uint64_t gi, double* err) const {
    double lo = 0, hi = 0, m = 0;
    g.each([&](const float* x, const float*, uint64_t i0, size_t n) {
      for (size_t i = 0; i < n; ++i) {
        if (!std::isfinite(x[i])) throw Error(Code::NonFinite, "NaN or Inf at element " + std::to_string(g.begin + i0 + i));
        lo = std::min<double>(lo, x[i]);
        hi = std::max<double>(hi, x[i]);
        if (std::fabs(x[i]) > std::fabs(m)) m = x[i];
      }
    });
    if (lo == 0 && hi == 0) {  // all zero: scale 0, codes at the zero point
      Q q;
      q.z = p_.symmetric ? half_ : 0;
      *err = 0;
      return q;
    }
    Q best = from_range(lo, hi, m, gi);
    double bd = eval(g, best);
    if (!p_.mse) { *err = bd; return best; }
    for (int k = 1; k <= p_.grid; ++k) {
      const double f = 1.0 - (double)k / (2.0 * p_.grid);
      Q q;
      try {
        q = from_range(lo * f, hi * f, m * f, gi);
      } catch (const Error&) {
        break;  // shrinking further leaves the scale dtype's range
      }
      const double d = eval(g, q);
      if (d < bd) { bd = d; best = q; }
    }
    for (int it = 0; it < p_.refits; ++it) {
      Q q = best;
      if (!refit(g, q)) break;
      const double d = eval(g, q);
      if (!(d < bd)) break;
      bd = d; best = q;
    }
    // Asymmetric: the neighbouring zero points, each with its least-squares scale, while one lowers the error
    // (the shrunk ranges above keep the zero point where the full range puts it).
    for (int it = 0; !p_.symmetric && it < 2 * p_.refits; ++it) {
      bool moved = false;
      for (int dz : {-1, 1}) {
        Q q = best;
        q.z += dz;
        if (q.z < 0 || q.z > L_ || !refit_scale(g, q)) continue;
        const double d = eval(g, q);
        if (d < bd) { bd = d; best = q; moved = true; break; }
      }
      if (!moved) break;
    }
    *err = bd;
    return best;
  }

  int levels() const { return L_; }

 private:
  static std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3g", v);
    return b;
  }
  const IntParams& p_;
  const int L_, half_;
};

}  // namespace

IntLayout int_layout(uint64_t numel, uint64_t cols, const IntParams& p) {
  WP_THROW_IF_NOT(p.bits >= 2 && p.bits <= 8, Argument, "bits must be 2 to 8, got " + std::to_string(p.bits));
  WP_THROW_IF_NOT(p.group_size >= 1, Argument, "the group size must be at least 1");
  WP_THROW_IF_NOT(p.pack_bits == 0 || p.pack_bits == 8 || p.pack_bits == p.bits, Argument, "pack_bits must be 0, 8 or bits");
  WP_THROW_IF_NOT(p.scale_dtype == Dtype::F16 || p.scale_dtype == Dtype::BF16 || p.scale_dtype == Dtype::F32, Argument, "scales must be F16, BF16 or F32");
  WP_THROW_IF_NOT(p.grid >= 0 && p.refits >= 0, Argument, "grid and refits must be non-negative");
  IntLayout L;
  if (numel == 0) return L;
  WP_THROW_IF_NOT(cols >= 1 && numel % cols == 0, Argument, "rows of " + std::to_string(cols) + " do not tile " + std::to_string(numel) + " elements");
  L.rows = numel / cols;
  L.cols = cols;
  const uint64_t G = std::min<uint64_t>(p.group_size, cols);
  L.groups_per_row = (cols + G - 1) / G;
  L.groups = L.rows * L.groups_per_row;
  const int pb = p.pack_bits ? p.pack_bits : p.bits;
  L.codes_bytes = packed_bytes(numel, pb);
  L.scales_bytes = align8(L.groups * scale_size(p.scale_dtype));
  L.zeros_bytes = p.symmetric ? 0 : packed_bytes(L.groups, p.bits);
  L.bits = (double)numel * p.bits + (double)L.groups * (8.0 * scale_size(p.scale_dtype) + (p.symmetric ? 0 : p.bits));
  return L;
}

void int_quantize(const IntTensorIn& in, const IntParams& p, const IntOut& out, const Context& ctx, IntStats* stats) {
  const IntLayout L = int_layout(in.numel, in.cols, p);
  WP_THROW_IF_NOT(out.codes_bytes >= L.codes_bytes && out.scales_bytes >= L.scales_bytes && out.zeros_bytes >= L.zeros_bytes,
                  Argument, "output buffers are smaller than int_layout says");
  IntStats st;
  st.n = in.numel;
  st.groups = L.groups;
  st.bits = L.bits;
  if (in.numel == 0) { if (stats) *stats = st; return; }
  const int pb = p.pack_bits ? p.pack_bits : p.bits;
  const uint64_t G = std::min<uint64_t>(p.group_size, L.cols);
  const uint64_t gpr = L.groups_per_row;
  // Work units of whole groups; a group is (row, j) and never crosses a row.
  const uint64_t per_unit = std::max<uint64_t>(1, kUnitElems / G);
  const uint64_t units = (L.groups + per_unit - 1) / per_unit;
  std::vector<ErrorSums> sums(units);
  std::vector<double> wd(units, 0.0);
  std::vector<uint64_t> zg(units, 0);
  std::vector<uint8_t> zeros(p.symmetric ? 0 : L.groups);
  // Codes are packed straight into the output when every group starts on a byte (a multiple of 8 elements, or one
  // byte per code); otherwise written one byte each and packed afterwards.
  const bool direct = pb == 8 || (L.cols % 8 == 0 && (G % 8 == 0 || gpr == 1)) || L.groups == 1;
  std::vector<uint8_t> bytes(direct ? 0 : in.numel);
  if (pb != 8) std::memset(out.codes, 0, L.codes_bytes);
  std::memset(out.scales, 0, L.scales_bytes);
  Encoder enc(p);
  const int Lv = enc.levels();
  std::atomic<uint64_t> done{0};
  parallel_for(ctx, units, [&](size_t u) {
    const uint64_t g0 = u * per_unit, g1 = std::min<uint64_t>(L.groups, g0 + per_unit);
    uint8_t cb[kChunk];
    float gbuf[kChunk];
    for (uint64_t g = g0; g < g1; ++g) {
      const uint64_t r = g / gpr, j = g % gpr;
      const uint64_t b = r * L.cols + j * G, n = std::min<uint64_t>(G, L.cols - j * G);
      const float* w = nullptr;
      if (in.importance) {
        double tot = 0;
        for (uint64_t i = 0; i < n; ++i) {
          const float v = in.importance[b + i];
          if (!(v >= 0) || !std::isfinite(v)) throw Error(Code::NonFinite, "importance at element " + std::to_string(b + i) + " must be finite and non-negative");
          tot += v;
        }
        if (tot > 0) w = in.importance + b;  // a group with no importance anywhere: plain squared error
      }
      // A group that fits one chunk is converted to F32 once (the MSE search reads it some 40 times), and its
      // finiteness checked here with the element's index in the tensor; larger groups are read chunk by chunk.
      Group grp{in.data, in.dtype, b, n, w};
      if (n <= kChunk && in.dtype != Dtype::F32) {
        load_f32(in.data, in.dtype, b, n, gbuf);
        for (uint64_t i = 0; i < n; ++i)
          if (!std::isfinite(gbuf[i])) throw Error(Code::NonFinite, "NaN or Inf at element " + std::to_string(b + i));
        grp = Group{gbuf, Dtype::F32, 0, n, w};
      }
      double e = 0;
      const Q q = enc.group(grp, g, &e);
      put_scale(out.scales, g, q.s, p.scale_dtype);
      if (!p.symmetric) zeros[g] = (uint8_t)q.z;
      if (q.s == 0) ++zg[u];
      wd[u] += e;
      // The codes, and the error of what is stored.
      const double inv = q.s == 0 ? 0 : 1.0 / (double)q.s;
      grp.each([&](const float* x, const float*, uint64_t i0, size_t m) {
        for (size_t i = 0; i < m; ++i) {
          const int c = q.s == 0 ? q.z : code_of(x[i], inv, q.z, Lv);
          cb[i] = (uint8_t)c;
          sums[u].add(x[i], q.s * (float)(c - q.z));
        }
        const uint64_t e0 = b + i0;
        if (pb == 8) std::memcpy(out.codes + e0, cb, m);
        else if (direct) pack_bits(cb, m, pb, out.codes + e0 / 8 * pb);
        else std::memcpy(bytes.data() + e0, cb, m);
      });
    }
    const uint64_t d = done.fetch_add(g1 - g0) + (g1 - g0);
    if (ctx.progress) ctx.progress((double)d, (double)L.groups);
  });
  if (!direct) {
    const uint64_t chunk = 1u << 20;  // a multiple of 8: every chunk starts on a byte boundary
    parallel_for(ctx, (in.numel + chunk - 1) / chunk, [&](size_t c) {
      const uint64_t b = c * chunk, n = std::min<uint64_t>(chunk, in.numel - b);
      pack_bits(bytes.data() + b, n, pb, out.codes + b / 8 * pb);
    });
  }
  if (!p.symmetric) {
    std::memset(out.zeros, 0, L.zeros_bytes);
    pack_bits(zeros.data(), L.groups, p.bits, out.zeros);
  }
  ErrorSums all;
  for (uint64_t u = 0; u < units; ++u) {
    all.merge(sums[u]);
    st.weighted_distortion += wd[u];
    st.zero_groups += zg[u];
  }
  st.sse = all.sse;
  st.signal = all.signal;
  st.max_abs_err = all.max_abs;
  if (stats) *stats = st;
}

uint64_t int_dequantize(const IntSource& src, const IntParams& p, Dtype out_dtype, void* out, const Context& ctx) {
  const IntLayout L = int_layout(src.numel, src.cols, p);
  WP_THROW_IF_NOT(src.codes_bytes >= (src.numel * (uint64_t)(p.pack_bits ? p.pack_bits : p.bits) + 7) / 8, Format, "the codes are shorter than the tensor needs");
  WP_THROW_IF_NOT(src.scales_bytes >= L.groups * scale_size(p.scale_dtype), Format, "the scales are shorter than the tensor needs");
  WP_THROW_IF_NOT(p.symmetric || src.zeros_bytes >= (L.groups * (uint64_t)p.bits + 7) / 8, Format, "the zero points are shorter than the tensor needs");
  if (src.numel == 0) return 0;
  const int pb = p.pack_bits ? p.pack_bits : p.bits;
  const uint64_t G = std::min<uint64_t>(p.group_size, L.cols);
  const uint64_t gpr = L.groups_per_row;
  std::vector<float> scales(L.groups);
  std::vector<uint8_t> zeros(L.groups, (uint8_t)(1 << (p.bits - 1)));
  for (uint64_t g = 0; g < L.groups; ++g) {
    scales[g] = get_scale(src.scales, g, p.scale_dtype);
    if (!std::isfinite(scales[g])) throw Error(Code::Format, "group " + std::to_string(g) + " has a non-finite scale");
  }
  if (!p.symmetric) unpack_bits(src.zeros, L.groups, p.bits, zeros.data());
  const size_t osz = dtype_size(out_dtype);
  const uint64_t chunk = 1u << 16;
  std::atomic<uint64_t> saturated{0};
  parallel_for(ctx, (src.numel + chunk - 1) / chunk, [&](size_t c) {
    const uint64_t b = c * chunk, n = std::min<uint64_t>(chunk, src.numel - b);
    std::vector<uint8_t> u(n);
    if (pb == 8) std::memcpy(u.data(), src.codes + b, n);
    else unpack_bits(src.codes + b / 8 * pb, n, pb, u.data());
    std::vector<float> v(n);
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t e = b + i, r = e / L.cols, g = r * gpr + (e % L.cols) / G;
      v[i] = scales[g] * (float)((int)u[i] - (int)zeros[g]);
    }
    saturated.fetch_add(store_from_float(v.data(), n, out_dtype, (char*)out + b * osz, src.overflow), std::memory_order_relaxed);
  });
  return saturated.load();
}

}  // namespace wp
