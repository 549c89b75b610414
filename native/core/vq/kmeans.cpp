// Weighted k-means in d dimensions (kmeans.h). Eigen does the distance products; the rest is plain loops in a fixed
// order so that the result does not depend on the thread count.
#include "kmeans.h"

#include <algorithm>
#include <memory>
#include <cmath>
#include <numeric>
#include <string>

#include "../error.h"
#include "../solvers/kmeans_lloyd.h"
#include "../solvers/registry.h"

namespace wp::vq {

namespace {

// Points per distance block: a fixed function of k (never of the thread count), so that every point is always
// computed in a block of the same shape. The block's score matrix stays near 128 KB, in L2 cache.
size_t block_points(int k) { return std::clamp<size_t>((size_t(1) << 15) / (size_t)k, 16, 2048); }

// Fixed chunks of points for sums (never a function of the thread count): chunk c holds points
// [c·size, (c+1)·size); partial sums are combined in chunk order.
size_t sum_chunk(size_t n, size_t per_chunk_cost) {
  const size_t by_memory = std::max<size_t>(1, ((size_t)1 << 25) / std::max<size_t>(1, per_chunk_cost));  // <= 256 MB of partials
  const size_t chunks = std::min<size_t>(std::max<size_t>(1, (n + 65535) / 65536), by_memory);
  return (n + chunks - 1) / chunks;
}

double point_dist(const float* x, const float* w, int d, const float* c) {
  double s = 0;
  for (int i = 0; i < d; i++) {
    const double e = (double)x[i] - (double)c[i];
    s += (w ? (double)w[i] : 1.0) * e * e;
  }
  return s;
}

void check_args(size_t n, int d, int k) {
  if (d < 1) throw Error(Code::Argument, "k-means: dimension must be at least 1");
  if (k < 1) throw Error(Code::Argument, "k-means: k must be at least 1");
  if ((size_t)k > n) throw Error(Code::Argument, "k-means: " + std::to_string(k) + " centroids for " + std::to_string(n) + " points");
}

}  // namespace

double weighted_sse(const float* x, const float* w, size_t n, int d, const float* centroids, const uint32_t* assign, const Context& ctx) {
  const size_t size = sum_chunk(n, 1);
  const size_t chunks = n ? (n + size - 1) / size : 0;
  std::vector<double> part(chunks, 0.0);
  parallel_for(ctx, chunks, [&](size_t c) {
    double s = 0;
    for (size_t t = c * size; t < std::min(n, (c + 1) * size); t++) s += point_dist(x + t * d, w ? w + t * d : nullptr, d, centroids + (size_t)assign[t] * d);
    part[c] = s;
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

double weighted_sse(const float* x, const float* w, size_t n, int d, const float* centroids, const uint32_t* assign) {
  return weighted_sse(x, w, n, d, centroids, assign, Context{1, nullptr, {}});
}

void nearest_block_generic(const float* x, const float* w, size_t m, int d, const float* c, const float* half_norm, const float* half_sq, int k,
                           uint32_t* idx, float* scratch);
#if defined(__x86_64__) && defined(WP_AVX2_KERNELS)
void nearest_block_avx2(const float* x, const float* w, size_t m, int d, const float* c, const float* half_norm, const float* half_sq, int k,
                        uint32_t* idx, float* scratch);
#endif

namespace {
using NearestFn = void (*)(const float*, const float*, size_t, int, const float*, const float*, const float*, int, uint32_t*, float*);
// The distance kernel for this CPU: AVX2 + FMA where the CPU has them (x86-64), else the baseline build. Results
// may differ in the last bits between the two (FMA), never between thread counts.
NearestFn nearest_kernel() {
#if defined(__x86_64__) && defined(WP_AVX2_KERNELS)
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2) return nearest_block_avx2;
#endif
  return nearest_block_generic;
}
}  // namespace

const char* kmeans_kernel_isa() { return nearest_kernel() == nearest_block_generic ? "baseline" : "avx2+fma"; }

std::vector<float> code_penalties(const uint32_t* assign, size_t n, int k, double lambda, double* entropy) {
  std::vector<size_t> count(k, 0);
  for (size_t t = 0; t < n; t++) count[assign[t]]++;
  std::vector<float> pen(k);
  double h = 0;
  for (int j = 0; j < k; j++) {
    if (!count[j]) {
      pen[j] = 1e30f;
      continue;
    }
    const double p = (double)count[j] / (double)n;
    h -= p * std::log2(p);
    pen[j] = (float)(lambda * -std::log2(p));
  }
  if (entropy) *entropy = h;
  return pen;
}

double assign_nearest(const float* x, const float* w, size_t n, int d, const float* centroids, int k, uint32_t* assign, double* dist,
                      const Context& ctx, const float* penalty) {
  check_args(n, d, 1);
  const size_t B = block_points(k);
  const size_t blocks = (n + B - 1) / B;
  std::vector<float> half_norm(k), half_sq((size_t)k * d);
  for (int j = 0; j < k; j++) {
    float s = 0;
    for (int i = 0; i < d; i++) {
      const float v = centroids[(size_t)j * d + i];
      half_sq[(size_t)j * d + i] = 0.5f * v * v;
      s += v * v;
    }
    half_norm[j] = 0.5f * s;
  }
  // A penalty adds ½ penalty[c] to the score's offset (score = x·c − ½(‖c‖² + penalty[c])); weighted runs get it
  // through the kernel's offset vector alone.
  std::vector<float> offset;
  if (penalty) {
    offset.resize(k);
    for (int j = 0; j < k; j++) offset[j] = 0.5f * penalty[j] + (w ? 0.0f : half_norm[j]);
  }
  const float* off = penalty ? offset.data() : w ? nullptr : half_norm.data();
  const NearestFn kernel = nearest_kernel();
  std::vector<double> block_sse(blocks, 0.0);
  parallel_for(ctx, blocks, [&](size_t b) {
    const size_t lo = b * B, m = std::min(B, n - lo);
    std::unique_ptr<float[]> scratch(new float[m * (size_t)(k + d + 1)]);  // uninitialized: the kernel writes it first
    kernel(x + lo * d, w ? w + lo * d : nullptr, m, d, centroids, off, half_sq.data(), k, assign + lo, scratch.get());
    double acc = 0;
    for (size_t r = 0; r < m; r++) {
      const size_t t = lo + r;
      const double dt = point_dist(x + t * d, w ? w + t * d : nullptr, d, centroids + (size_t)assign[t] * d);
      if (dist) dist[t] = dt;
      acc += dt;
    }
    block_sse[b] = acc;
  });
  double s = 0;
  for (double v : block_sse) s += v;
  return s;
}

std::vector<size_t> update_centroids(const float* x, const float* w, size_t n, int d, const uint32_t* assign, int k, float* centroids,
                                     const Context& ctx) {
  // Per fixed chunk of points, each cluster's Σ w·x and Σ w per coordinate (and its count), in point order; then
  // the chunks' partials added in chunk order. Streaming over the points (no gather), and the same sums for any
  // thread count.
  const size_t kd = (size_t)k * d;
  const size_t size = sum_chunk(n, 2 * kd + k);
  const size_t chunks = n ? (n + size - 1) / size : 0;
  std::vector<double> num(chunks * kd, 0.0), den(chunks * kd, 0.0);
  std::vector<size_t> cnt(chunks * (size_t)k, 0);
  parallel_for(ctx, chunks, [&](size_t c) {
    double* nu = num.data() + c * kd;
    double* de = den.data() + c * kd;
    size_t* ct = cnt.data() + c * (size_t)k;
    for (size_t t = c * size; t < std::min(n, (c + 1) * size); t++) {
      const uint32_t j = assign[t];
      const float* xt = x + t * d;
      double* nj = nu + (size_t)j * d;
      double* dj = de + (size_t)j * d;
      ct[j]++;
      if (w) {
        const float* wt = w + t * d;
        for (int i = 0; i < d; i++) nj[i] += (double)wt[i] * xt[i], dj[i] += wt[i];
      } else {
        for (int i = 0; i < d; i++) nj[i] += xt[i];
      }
    }
  });
  std::vector<size_t> count(k, 0);
  for (size_t c = 0; c < chunks; c++)
    for (int j = 0; j < k; j++) count[j] += cnt[c * k + j];
  const size_t per = 64;
  parallel_for(ctx, ((size_t)k + per - 1) / per, [&](size_t b) {
    for (size_t j = b * per; j < std::min((size_t)k, (b + 1) * per); j++) {
      if (!count[j]) continue;
      for (int i = 0; i < d; i++) {
        double a = 0, z = 0;
        for (size_t c = 0; c < chunks; c++) a += num[c * kd + j * d + i], z += w ? den[c * kd + j * d + i] : 0.0;
        if (!w) z = (double)count[j];
        if (z > 0) centroids[j * (size_t)d + i] = (float)(a / z);
      }
    }
  });
  return count;
}

namespace {

// k-means++ (Arthur & Vassilvitskii 2007) on a seeded sample: the first seed drawn by point weight, each next one
// with probability proportional to its weighted squared distance to the nearest seed so far. Above
// plus_plus_max_k centroids, distinct sample points drawn uniformly.
void seed_centroids(const float* x, const float* w, size_t n, int d, const KmeansParams& p, float* centroids, const Context& ctx) {
  const int k = p.k;
  SplitMix64 rng(mix_seed(p.seed, 0x6b6d65616e73ull));
  size_t want = p.seed_sample ? p.seed_sample : std::max<size_t>((size_t)32 * k, 16384);
  want = std::max<size_t>(std::min(want, n), (size_t)k);
  std::vector<uint32_t> sample;
  if (want >= n) {
    sample.resize(n);
    std::iota(sample.begin(), sample.end(), 0u);
  } else {
    // A partial Fisher–Yates shuffle of the indices, then sorted for locality.
    std::vector<uint32_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0u);
    for (size_t i = 0; i < want; i++) std::swap(idx[i], idx[i + rng.next() % (n - i)]);
    sample.assign(idx.begin(), idx.begin() + want);
    std::sort(sample.begin(), sample.end());
  }
  const size_t s = sample.size();
  if (k > p.plus_plus_max_k) {
    for (size_t i = 0; i + 1 < s && i < (size_t)k; i++) std::swap(sample[i], sample[i + rng.next() % (s - i)]);
    for (int j = 0; j < k; j++) std::copy_n(x + (size_t)sample[j] * d, d, centroids + (size_t)j * d);
    return;
  }
  std::vector<double> mass(s);
  for (size_t i = 0; i < s; i++) {
    double m = 0;
    for (int q = 0; q < d; q++) m += w ? (double)w[(size_t)sample[i] * d + q] : 1.0;
    mass[i] = m;
  }
  auto draw = [&](const std::vector<double>& v) -> size_t {
    double total = 0;
    for (double a : v) total += a;
    if (!(total > 0)) return rng.next() % s;
    const double r = rng.uniform() * total;
    double acc = 0;
    for (size_t i = 0; i < s; i++) {
      acc += v[i];
      if (acc > r) return i;
    }
    return s - 1;
  };
  size_t first = draw(mass);
  std::copy_n(x + (size_t)sample[first] * d, d, centroids);
  // The sample as a contiguous copy (and its weights), and each point's distance to its nearest seed so far, in
  // float (it only sets sampling probabilities).
  std::vector<float> xs(s * (size_t)d), ws(w ? s * (size_t)d : 0);
  for (size_t i = 0; i < s; i++) {
    std::copy_n(x + (size_t)sample[i] * d, d, xs.begin() + i * d);
    if (w) std::copy_n(w + (size_t)sample[i] * d, d, ws.begin() + i * d);
  }
  std::vector<double> d2(s);
  const size_t chunk = 16384;
  auto refresh = [&](int j, bool init) {
    const float* c = centroids + (size_t)j * d;
    parallel_for(ctx, (s + chunk - 1) / chunk, [&](size_t b) {
      for (size_t i = b * chunk; i < std::min(s, (b + 1) * chunk); i++) {
        const float* xi = xs.data() + i * d;
        float v = 0;
        if (w) {
          const float* wi = ws.data() + i * d;
          for (int q = 0; q < d; q++) v += wi[q] * (xi[q] - c[q]) * (xi[q] - c[q]);
        } else {
          for (int q = 0; q < d; q++) v += (xi[q] - c[q]) * (xi[q] - c[q]);
        }
        d2[i] = init ? v : std::min(d2[i], (double)v);
      }
    });
  };
  refresh(0, true);
  for (int j = 1; j < k; j++) {
    const size_t pick = draw(d2);
    std::copy_n(x + (size_t)sample[pick] * d, d, centroids + (size_t)j * d);
    refresh(j, false);
  }
}

}  // namespace

KmeansStats kmeans(const float* x, const float* w, size_t n, int d, const KmeansParams& p, float* centroids, uint32_t* assign,
                   const Context& ctx) {
  check_args(n, d, p.k);
  if (p.k > 65536) throw Error(Code::Argument, "k-means: at most 65,536 centroids");
  const int k = p.k;
  KmeansStats st;
  const double total = (double)p.max_iter + 1;
  if (p.init) std::copy_n(p.init, (size_t)k * d, centroids);
  else seed_centroids(x, w, n, d, p, centroids, ctx);
  if (ctx.progress) ctx.progress(1, total);
  std::vector<double> dist(n);
  std::vector<uint32_t> prev;
  const bool ecvq = p.lambda > 0;
  if (ecvq) {
    // Start from the unpenalized assignment's shares.
    assign_nearest(x, w, n, d, centroids, k, assign, nullptr, ctx);
    st.penalty = code_penalties(assign, n, k, p.lambda, nullptr);
  }
  for (int it = 0; it < p.max_iter; it++) {
    ctx.check_cancel();
    assign_nearest(x, w, n, d, centroids, k, assign, dist.data(), ctx, ecvq ? st.penalty.data() : nullptr);
    bool changed = prev.empty() || !std::equal(prev.begin(), prev.end(), assign);
    // Empty clusters take the farthest points (largest weighted distance; ties: lower index) of clusters that
    // keep at least one point.
    std::vector<size_t> count(k, 0);
    for (size_t t = 0; t < n; t++) count[assign[t]]++;
    std::vector<int> empty;
    for (int j = 0; j < k; j++)
      if (!count[j]) empty.push_back(j);
    if (!empty.empty() && !ecvq) {
      std::vector<uint32_t> far(n);
      std::iota(far.begin(), far.end(), 0u);
      std::sort(far.begin(), far.end(), [&](uint32_t a, uint32_t b) { return dist[a] != dist[b] ? dist[a] > dist[b] : a < b; });
      size_t q = 0;
      for (int j : empty) {
        while (q < n && count[assign[far[q]]] <= 1) q++;
        if (q == n) break;
        const uint32_t t = far[q++];
        count[assign[t]]--;
        assign[t] = (uint32_t)j;
        count[j] = 1;
        std::copy_n(x + (size_t)t * d, d, centroids + (size_t)j * d);
        st.reseeded++;
      }
      changed = true;
    }
    update_centroids(x, w, n, d, assign, k, centroids, ctx);
    if (ecvq) st.penalty = code_penalties(assign, n, k, p.lambda, nullptr);
    st.history.push_back(weighted_sse(x, w, n, d, centroids, assign, ctx));
    st.iterations = it + 1;
    if (ctx.progress) ctx.progress(it + 2, total);
    if (!changed) break;
    prev.assign(assign, assign + n);
  }
  st.sse = assign_nearest(x, w, n, d, centroids, k, assign, nullptr, ctx, ecvq ? st.penalty.data() : nullptr);
  code_penalties(assign, n, k, ecvq ? p.lambda : 0, &st.entropy);
  if (ctx.progress) ctx.progress(total, total);
  return st;
}

}  // namespace wp::vq
