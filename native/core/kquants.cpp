// llama.cpp's K-quants and 32-weight block formats (see kquants.h). The searches follow ggml-quants.c's published
// definitions step by step in F32 arithmetic (the build has -ffp-contract=off), so that a tensor quantized here
// loses what llama-quantize's own quantizer loses (bench/RESULTS.md, "block": Q4_K reproduces llama.cpp's SQNR).
#include "kquants.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace wp {

namespace {

constexpr int QK_K = 256;
constexpr float GROUP_EPS = 1e-15f;

// Round to nearest, ties to even, through a float add of 1.5 x 2^23 (ggml's nearest_int). ggml asserts
// |v| <= 4194303; the argument is clamped to that range here first (only a degenerate scale gets there, and its
// code is clamped to the format's range afterwards anyway).
inline int nearest(float v) {
  if (!(v > -4194303.f)) v = -4194303.f;  // also NaN
  if (v > 4194303.f) v = 4194303.f;
  float t = v + 12582912.f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

inline uint16_t to_f16(float v) {
  uint16_t h = f32_to_f16(v);
  if ((h & 0x7c00u) == 0x7c00u) throw Error(Code::Range, "a block scale of " + std::to_string(v) + " is beyond F16's range (65504)");
  return h;
}

inline void put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline uint16_t get16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }

// Symmetric levels -nmax..nmax-1 (stored as l + nmax) with a weighted least-squares scale, trying 19 scales
// around -nmax / max (ggml's make_qx_quants, rmse_type 1: weights x² unless qw is given).
float qx_search(int n, int nmax, const float* x, int8_t* L, const float* qw) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    float ax = std::fabs(x[i]);
    if (ax > amax) { amax = ax; max = x[i]; }
  }
  if (amax < GROUP_EPS) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  auto weight = [&](int i) { return qw ? qw[i] : x[i] * x[i]; };
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = std::max(-nmax, std::min(nmax - 1, nearest(iscale * x[i])));
    L[i] = (int8_t)(l + nmax);
    float w = weight(i);
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = std::max(-nmax, std::min(nmax - 1, nearest(iscale * x[i])));
      float w = weight(i);
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = (int8_t)(nmax + std::max(-nmax, std::min(nmax - 1, nearest(iscale * x[i]))));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Asymmetric levels 0..nmax with x ≈ scale·l − the_min: start from the min–max grid, then nstep + 1 grids with
// iscale = (rmin + rdelta·is + nmax) / (max − min), each followed by the weighted least-squares (scale, min) of
// its assignment; the least weighted squared error wins (ggml's make_qkx2_quants; qkx3 when `guarded`, which
// also lets weights be null = x², and guards the code of a value against a fitted min near max).
float qkx_search(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min, uint8_t* Laux,
                 float rmin, float rdelta, int nstep, bool guarded) {
  auto weight = [&](int i) { return weights ? weights[i] : x[i] * x[i]; };
  float min = x[0], max = x[0];
  float sum_w = weight(0);
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    float w = weight(i);
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (guarded ? max <= min : max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest(iscale * (x[i] - min));
    L[i] = (uint8_t)std::max(0, std::min(nmax, l));
    float diff = scale * L[i] + min - x[i];
    best_error += weight(i) * (diff * diff);
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l;
      if (guarded) {
        const float v = iscale * (x[i] - min);
        l = v > 0 ? nearest(std::min(v, (float)nmax)) : 0;
      } else {
        l = std::max(0, std::min(nmax, nearest(iscale * (x[i] - min))));
      }
      Laux[i] = (uint8_t)l;
      float w = weight(i);
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float err = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        err += weight(i) * (diff * diff);
      }
      if (err < best_error) {
        std::memcpy(L, Laux, n);
        best_error = err;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Non-negative values (sub-block scales or mins) onto codes 0..nmax under one scale, weighted: 9 starting scales,
// then coordinate-wise code changes that raise (Σwxl)²/Σwl² (ggml's make_qp_quants). Returns the scale.
float qp_search(int n, int nmax, const float* x, uint8_t* L, const float* w) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
  if (max < GROUP_EPS) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = nmax / max;
  for (int i = 0; i < n; ++i) L[i] = (uint8_t)nearest(iscale * x[i]);
  float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    float diff = x[i] - scale * L[i];
    best_mse += w[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    float iscale_is = (0.1f * is + nmax) / max;
    float scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      int l = std::min(nmax, nearest(iscale_is * x[i]));
      float diff = x[i] - scale_is * l;
      mse += w[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = std::min(nmax, nearest(iscale * x[i]));
    L[i] = (uint8_t)l;
    sumlx += w[i] * x[i] * l;
    suml2 += w[i] * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      float slx = sumlx - w[i] * x[i] * L[i];
      float sl2 = suml2 - w[i] * L[i] * L[i];
      if (slx > 0 && sl2 > 0) {
        int nl = std::min(nmax, nearest(x[i] * sl2 / slx));
        if (nl != L[i]) {
          slx += w[i] * x[i] * nl;
          sl2 += w[i] * nl * nl;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = (uint8_t)nl;
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// The 12 bytes of 8 (scale, min) 6-bit code pairs of Q4_K / Q5_K (ggml's get_scale_min_k4 reads them back).
void put_scale_min(uint8_t* s, const uint8_t* ls, const uint8_t* lm) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] = ls[j];
      s[j + 4] = lm[j];
    } else {
      s[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
      s[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
  }
}
inline void get_scale_min(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q4_K / Q5_K (nmax 15 / 31): 8 sub-blocks of 32 with a (scale, min) each, 6-bit codes under F16 d and dmin.
// Writes the super-block's d, dmin and scales (its first 16 bytes) and the 256 codes into L.
void k_asym_superblock(const float* x, const float* qw, int nmax, uint8_t* head, uint8_t* L) {
  uint8_t Laux[32], Ls[8], Lm[8];
  float weights[32], sw[8], mins[8], scales[8];
  float d_block, m_block;
  if (!qw) {  // quantize_row_q4_K_ref / q5_K_ref
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
      float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
      scales[j] = nmax == 15 ? qkx_search(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20, false)
                             : qkx_search(32, 31, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.5f, 0.1f, 15, false);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
      Ls[j] = (uint8_t)std::min(63, (int)(uint8_t)nearest(inv_scale * scales[j]));
      Lm[j] = (uint8_t)std::min(63, (int)(uint8_t)nearest(inv_min * mins[j]));
    }
    d_block = max_scale / 63.f;
    m_block = max_min / 63.f;
  } else {  // quantize_row_q4_K_impl / q5_K_impl
    float sum_x2 = 0;
    for (int l = 0; l < QK_K; ++l) sum_x2 += x[l] * x[l];
    float sigma2 = 2 * sum_x2 / QK_K;
    for (int j = 0; j < 8; ++j) {
      for (int l = 0; l < 32; ++l) weights[l] = qw[32 * j + l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
      float sumw = 0;
      for (int l = 0; l < 32; ++l) sumw += weights[l];
      sw[j] = sumw;
      scales[j] = qkx_search(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, true);
    }
    d_block = qp_search(8, 63, scales, Ls, sw);
    m_block = qp_search(8, 63, mins, Lm, sw);
    for (int j = 0; j < 8; ++j) {
      Ls[j] = std::min<uint8_t>(63, Ls[j]);
      Lm[j] = std::min<uint8_t>(63, Lm[j]);
    }
  }
  put_scale_min(head + 4, Ls, Lm);
  uint16_t dh = to_f16(d_block), mh = to_f16(m_block);
  put16(head, dh);
  put16(head + 2, mh);
  const float d = f16_to_f32(dh), dmin = f16_to_f32(mh);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    get_scale_min(j, head + 4, &sc, &m);
    const float dd = d * sc;
    if (!dd) continue;
    const float dm = dmin * m;
    for (int i = 0; i < 32; ++i) L[32 * j + i] = (uint8_t)std::max(0, std::min(nmax, nearest((x[32 * j + i] + dm) / dd)));
  }
}

void q4_k_row(const float* x, const float* qw, uint64_t n, uint8_t* y) {
  uint8_t L[QK_K];
  for (uint64_t b = 0; b < n / QK_K; ++b, x += QK_K, y += 144) {
    k_asym_superblock(x, qw ? qw + b * QK_K : nullptr, 15, y, L);
    uint8_t* q = y + 16;
    for (int j = 0; j < QK_K; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
  }
}

void q5_k_row(const float* x, const float* qw, uint64_t n, uint8_t* y) {
  uint8_t L[QK_K];
  for (uint64_t b = 0; b < n / QK_K; ++b, x += QK_K, y += 176) {
    k_asym_superblock(x, qw ? qw + b * QK_K : nullptr, 31, y, L);
    uint8_t* qh = y + 16;
    uint8_t* ql = y + 48;
    std::memset(qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int s = 0; s < QK_K; s += 64, ql += 32) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[s + j], l2 = L[s + j + 32];
        if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
        if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
        ql[j] = (uint8_t)(l1 | (l2 << 4));
      }
      m1 <<= 2;
      m2 <<= 2;
    }
  }
}

// Q6_K: 16 sub-blocks of 16, symmetric 6-bit codes (l + 32), int8 sub-block scales under an F16 d
// (quantize_row_q6_K_ref; with importance make_qx_quants weighs by the importance alone, as _impl does).
void q6_k_row(const float* x, const float* qw, uint64_t n, uint8_t* y) {
  int8_t L[QK_K];
  float scales[16];
  for (uint64_t b = 0; b < n / QK_K; ++b, x += QK_K, y += 210) {
    float max_scale = 0, max_abs = 0;
    for (int ib = 0; ib < 16; ++ib) {
      const float s = qx_search(16, 32, x + 16 * ib, L + 16 * ib, qw ? qw + b * QK_K + 16 * ib : nullptr);
      scales[ib] = s;
      if (std::fabs(s) > max_abs) { max_abs = std::fabs(s); max_scale = s; }
    }
    if (max_abs < GROUP_EPS) {
      std::memset(y, 0, 210);
      continue;
    }
    float iscale = -128.f / max_scale;
    uint16_t dh = to_f16(1 / iscale);
    int8_t* sc = reinterpret_cast<int8_t*>(y + 192);
    for (int ib = 0; ib < 16; ++ib) sc[ib] = (int8_t)std::min(127, nearest(iscale * scales[ib]));
    put16(y + 208, dh);
    const float d0 = f16_to_f32(dh);
    for (int j = 0; j < 16; ++j) {
      float d = d0 * sc[j];
      if (!d) continue;
      for (int i = 0; i < 16; ++i) L[16 * j + i] = (int8_t)(std::max(-32, std::min(31, nearest(x[16 * j + i] / d))) + 32);
    }
    uint8_t* ql = y;
    uint8_t* qh = y + 128;
    for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
        ql[l] = (uint8_t)(q1 | (q3 << 4));
        ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
        qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}

// Q8_0: d = absmax / 127, codes round(x / d) (half away from zero); importance unused, as in llama.cpp.
void q8_0_row(const float* x, const float*, uint64_t n, uint8_t* y) {
  for (uint64_t b = 0; b < n / 32; ++b, x += 32, y += 34) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    put16(y, to_f16(d));
    for (int j = 0; j < 32; ++j) y[2 + j] = (uint8_t)(int8_t)std::round(x[j] * id);
  }
}

void put_q5_bits(const uint8_t* L, uint8_t* qh4, uint8_t* qs) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = (uint8_t)((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
    qh |= ((L[j] & 0x10u) >> 4) << j;
    qh |= ((L[j + 16] & 0x10u) >> 4) << (j + 16);
  }
  std::memcpy(qh4, &qh, 4);
}

float row_sigma2(const float* x, uint64_t n) {
  float s = 0;
  for (uint64_t j = 0; j < n; ++j) s += x[j] * x[j];
  return s / n;
}

// Q5_0: symmetric, codes 0..31 decoding to (q − 16)·d. Without importance d = (signed absmax) / −16
// (quantize_row_q5_0_ref); with it, make_qx_quants weighted by importance × sqrt(σ²_row + x²).
void q5_0_row(const float* x, const float* qw, uint64_t n, uint8_t* y) {
  uint8_t L[32];
  float weight[32];
  const float sigma2 = qw ? row_sigma2(x, n) : 0;
  for (uint64_t b = 0; b < n / 32; ++b, x += 32, y += 22) {
    if (!qw) {
      float amax = 0, max = 0;
      for (int j = 0; j < 32; ++j)
        if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
      const float d = max / -16;
      const float id = d ? 1.0f / d : 0.0f;
      put16(y, to_f16(d));
      for (int j = 0; j < 32; ++j) L[j] = (uint8_t)std::min(31, (int)(int8_t)(x[j] * id + 16.5f));
    } else {
      const float* w = qw + b * 32;
      for (int j = 0; j < 32; ++j) weight[j] = w[j] * std::sqrt(sigma2 + x[j] * x[j]);
      int8_t Ls[32];
      const float d = qx_search(32, 16, x, Ls, weight);
      put16(y, to_f16(d));
      for (int j = 0; j < 32; ++j) L[j] = (uint8_t)Ls[j];
    }
    put_q5_bits(L, y + 2, y + 6);
  }
}

// Q5_1: asymmetric, x = d·q + m. Without importance d = (max − min) / 31, m = min (quantize_row_q5_1_ref); with
// it, make_qkx3_quants weighted by importance × sqrt(σ²_row + x²).
void q5_1_row(const float* x, const float* qw, uint64_t n, uint8_t* y) {
  uint8_t L[32], Laux[32];
  float weight[32];
  const float sigma2 = qw ? row_sigma2(x, n) : 0;
  for (uint64_t b = 0; b < n / 32; ++b, x += 32, y += 24) {
    if (!qw) {
      float min = x[0], max = x[0];
      for (int j = 1; j < 32; ++j) { min = std::min(min, x[j]); max = std::max(max, x[j]); }
      const float d = (max - min) / 31;
      const float id = d ? 1.0f / d : 0.0f;
      put16(y, to_f16(d));
      put16(y + 2, to_f16(min));
      for (int j = 0; j < 32; ++j) L[j] = (uint8_t)((x[j] - min) * id + 0.5f);
    } else {
      const float* w = qw + b * 32;
      for (int j = 0; j < 32; ++j) weight[j] = w[j] * std::sqrt(sigma2 + x[j] * x[j]);
      float the_min;
      const float d = qkx_search(32, 31, x, weight, L, &the_min, Laux, -0.9f, 0.05f, 36, true);
      put16(y, to_f16(d));
      put16(y + 2, to_f16(-the_min));
    }
    put_q5_bits(L, y + 4, y + 8);
  }
}

// ---- decoders (ggml's dequantize_row_*) ----

void dq_q4_k(const uint8_t* b, float* y) {
  const float d = f16_to_f32(get16(b)), min = f16_to_f32(get16(b + 2));
  const uint8_t* q = b + 16;
  for (int j = 0, is = 0; j < QK_K; j += 64, q += 32, is += 2) {
    uint8_t sc, m;
    get_scale_min(is, b + 4, &sc, &m);
    const float d1 = d * sc, m1 = min * m;
    get_scale_min(is + 1, b + 4, &sc, &m);
    const float d2 = d * sc, m2 = min * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
  }
}

void dq_q5_k(const uint8_t* b, float* y) {
  const float d = f16_to_f32(get16(b)), min = f16_to_f32(get16(b + 2));
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0, is = 0; j < QK_K; j += 64, ql += 32, is += 2, u1 <<= 2, u2 <<= 2) {
    uint8_t sc, m;
    get_scale_min(is, b + 4, &sc, &m);
    const float d1 = d * sc, m1 = min * m;
    get_scale_min(is + 1, b + 4, &sc, &m);
    const float d2 = d * sc, m2 = min * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
  }
}

void dq_q6_k(const uint8_t* b, float* y) {
  const float d = f16_to_f32(get16(b + 208));
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = (int8_t)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = (int8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * sc[is] * q1;
      y[l + 32] = d * sc[is + 2] * q2;
      y[l + 64] = d * sc[is + 4] * q3;
      y[l + 96] = d * sc[is + 6] * q4;
    }
  }
}

void dq_q8_0(const uint8_t* b, float* y) {
  const float d = f16_to_f32(get16(b));
  for (int j = 0; j < 32; ++j) y[j] = (int8_t)b[2 + j] * d;
}

void dq_q5(const uint8_t* b, float* y, bool with_min) {
  const float d = f16_to_f32(get16(b));
  const float m = with_min ? f16_to_f32(get16(b + 2)) : 0.f;
  const uint8_t* qhp = b + (with_min ? 4 : 2);
  const uint8_t* qs = qhp + 4;
  uint32_t qh;
  std::memcpy(&qh, qhp, 4);
  for (int j = 0; j < 16; ++j) {
    const int x0 = (qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10);
    const int x1 = (qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
    if (with_min) {
      y[j] = x0 * d + m;
      y[j + 16] = x1 * d + m;
    } else {
      y[j] = (x0 - 16) * d;
      y[j + 16] = (x1 - 16) * d;
    }
  }
}

void dequant_blocks(int type, const uint8_t* src, uint64_t nblocks, float* out) {
  const GgmlBlock blk = ggml_block(type);
  for (uint64_t i = 0; i < nblocks; ++i, src += blk.bytes, out += blk.weights) {
    switch (type) {
      case GGML_Q4_K: dq_q4_k(src, out); break;
      case GGML_Q5_K: dq_q5_k(src, out); break;
      case GGML_Q6_K: dq_q6_k(src, out); break;
      case GGML_Q8_0: dq_q8_0(src, out); break;
      case GGML_Q5_0: dq_q5(src, out, false); break;
      case GGML_Q5_1: dq_q5(src, out, true); break;
    }
  }
}

}  // namespace

GgmlBlock ggml_block(int type) {
  switch (type) {
    case GGML_Q4_K: return {256, 144};
    case GGML_Q5_K: return {256, 176};
    case GGML_Q6_K: return {256, 210};
    case GGML_Q8_0: return {32, 34};
    case GGML_Q5_0: return {32, 22};
    case GGML_Q5_1: return {32, 24};
  }
  throw Error(Code::Argument, "ggml type " + std::to_string(type) + " is not one of Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K");
}

void ggml_quantize(int type, const GgmlQuantIn& in, uint8_t* out, size_t out_bytes, const Context& ctx, GgmlQuantStats* stats) {
  const GgmlBlock blk = ggml_block(type);
  WP_THROW_IF_NOT(dtype_is_quantizable(in.dtype), Dtype, std::string("cannot quantize dtype ") + dtype_name(in.dtype));
  WP_THROW_IF_NOT(in.cols > 0 && in.numel % in.cols == 0, Argument, "numel must be a multiple of cols");
  WP_THROW_IF_NOT(in.cols % blk.weights == 0, Argument,
                  "rows of " + std::to_string(in.cols) + " weights are not a multiple of the block (" + std::to_string(blk.weights) + ")");
  const uint64_t rows = in.numel / in.cols;
  const uint64_t row_bytes = in.cols / blk.weights * blk.bytes;
  WP_THROW_IF_NOT(out_bytes >= rows * row_bytes, Argument, "output buffer is too small");
  void (*quant_row)(const float*, const float*, uint64_t, uint8_t*) = nullptr;
  switch (type) {
    case GGML_Q4_K: quant_row = q4_k_row; break;
    case GGML_Q5_K: quant_row = q5_k_row; break;
    case GGML_Q6_K: quant_row = q6_k_row; break;
    case GGML_Q8_0: quant_row = q8_0_row; break;
    case GGML_Q5_0: quant_row = q5_0_row; break;
    case GGML_Q5_1: quant_row = q5_1_row; break;
  }
  std::vector<double> sse(rows), sig(rows), mx(rows);
  parallel_for(ctx, rows, [&](size_t r) {
    std::vector<float> x(in.cols), xh(in.cols);
    convert_float(static_cast<const char*>(in.data) + r * in.cols * dtype_size(in.dtype), in.dtype, in.cols, Dtype::F32, x.data(), Overflow::Error);
    for (uint64_t j = 0; j < in.cols; ++j)
      if (!std::isfinite(x[j])) throw Error(Code::NonFinite, "NaN or Inf at element " + std::to_string(r * in.cols + j));
    const float* qw = in.importance ? in.importance + r * in.cols : nullptr;
    if (qw)
      for (uint64_t j = 0; j < in.cols; ++j)
        if (!(qw[j] >= 0) || !std::isfinite(qw[j]))
          throw Error(Code::NonFinite, "importance at element " + std::to_string(r * in.cols + j) + " must be finite and non-negative");
    uint8_t* y = out + r * row_bytes;
    quant_row(x.data(), qw, in.cols, y);
    dequant_blocks(type, y, in.cols / blk.weights, xh.data());
    double e2 = 0, s2 = 0, m = 0;
    for (uint64_t j = 0; j < in.cols; ++j) {
      const double e = (double)xh[j] - (double)x[j];
      e2 += e * e;
      s2 += (double)x[j] * x[j];
      m = std::max(m, std::fabs(e));
    }
    sse[r] = e2;
    sig[r] = s2;
    mx[r] = m;
    if (ctx.progress) ctx.progress((double)(r + 1), (double)rows);
  });
  if (stats) {
    *stats = {};
    for (uint64_t r = 0; r < rows; ++r) {
      stats->sse += sse[r];
      stats->signal += sig[r];
      stats->max_abs_err = std::max(stats->max_abs_err, mx[r]);
    }
  }
}

void ggml_dequantize(int type, const uint8_t* src, size_t src_bytes, uint64_t numel, float* out, const Context& ctx) {
  const GgmlBlock blk = ggml_block(type);
  WP_THROW_IF_NOT(numel % blk.weights == 0, Argument, std::to_string(numel) + " values are not a multiple of the block (" + std::to_string(blk.weights) + ")");
  const uint64_t nb = numel / blk.weights;
  WP_THROW_IF_NOT(src_bytes >= nb * blk.bytes, Format, "the data holds " + std::to_string(src_bytes) + " bytes, " + std::to_string(nb * blk.bytes) + " needed");
  const uint64_t chunk = 4096;
  parallel_for(ctx, (size_t)((nb + chunk - 1) / chunk), [&](size_t c) {
    const uint64_t b0 = c * chunk, b1 = std::min(nb, b0 + chunk);
    dequant_blocks(type, src + b0 * blk.bytes, b1 - b0, out + b0 * blk.weights);
  });
}

}  // namespace wp
