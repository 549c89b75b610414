// Product quantization and LR²VQ of one weight matrix (product.h).
#include "product.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <string>

#include "../dtype.h"
#include "../error.h"
#include "kmeans.h"
#include "../solvers/registry.h"

namespace wp::vq {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

ProductShape product_shape(size_t rows, size_t cols, const ProductParams& p) {
  const size_t positions = (cols + (size_t)p.m - 1) / (size_t)p.m;
  const size_t gr = p.group_rows ? std::min(p.group_rows, rows) : rows;
  const size_t groups = gr ? (rows + gr - 1) / gr : 0;
  return {positions, groups, p.rank > 0 ? p.rank : p.m};
}

namespace {

// A value as stored: F16-rounded when f16 (false when it does not fit: the caller stores F32 instead).
bool round_stored(float* v, size_t n, bool f16) {
  if (!f16) return true;
  std::vector<float> r(n);
  for (size_t i = 0; i < n; i++) {
    r[i] = f16_to_f32(f32_to_f16(v[i]));
    if (!std::isfinite(r[i])) return false;
  }
  std::copy(r.begin(), r.end(), v);
  return true;
}

// B = C · P in F32, j ascending (the decoder's definition); PQ (projection null): B = C.
void fold(const float* c, const float* proj, int k, int dk, int m, float* b) {
  if (!proj) {
    std::copy_n(c, (size_t)k * m, b);
    return;
  }
  for (int q = 0; q < k; q++)
    for (int i = 0; i < m; i++) {
      float acc = 0.0f;
      for (int j = 0; j < dk; j++) {
        const float prod = c[(size_t)q * dk + j] * proj[(size_t)j * m + i];
        acc = acc + prod;
      }
      b[(size_t)q * m + i] = acc;
    }
}

struct Layout {
  size_t rows, cols, P, gr, groups;
  int m, k;
  size_t group_of(size_t r) const { return r / gr; }
};

// Ŵ (rows × P·m, padded) from codes, folded codebooks [groups, k, m] and scales.
void reconstruct_padded(const Layout& L, const float* scales, const uint32_t* codes, const float* books, float* out, const Context& ctx) {
  const size_t cp = L.P * L.m;
  parallel_for(ctx, L.rows, [&](size_t r) {
    const float s = scales ? scales[r] : 1.0f;
    const float* b = books + L.group_of(r) * (size_t)L.k * L.m;
    for (size_t p = 0; p < L.P; p++) {
      const float* cw = b + (size_t)codes[r * L.P + p] * L.m;
      for (int i = 0; i < L.m; i++) out[r * cp + p * L.m + i] = cw[i] * s;
    }
  });
}

// out = A · H for row-major A [rows, n] and symmetric H [n, n], in fixed blocks of rows on ctx's threads.
void times_h(const float* a, const RowMat& H, size_t rows, float* out, const Context& ctx) {
  const Eigen::Index n = H.rows();
  const size_t blk = 64;
  parallel_for(ctx, (rows + blk - 1) / blk, [&](size_t b) {
    const size_t lo = b * blk, m = std::min(blk, rows - lo);
    Eigen::Map<const RowMat> A(a + lo * n, (Eigen::Index)m, n);
    Eigen::Map<RowMat> O(out + lo * n, (Eigen::Index)m, n);
    O.noalias() = A * H;
  });
}

double dot(const float* a, const float* b, size_t n) {
  // Fixed-order double sum in chunks (the order never depends on threads).
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
  return s;
}

// The layer-output refinement (product.h): state and steps.
struct Refiner {
  const Layout& L;
  const Context& ctx;
  RowMat H;                 // [cp, cp], zero on padded coordinates
  std::vector<float> W;     // [rows, cp] padded weights
  const float* scales;      // [rows] or null
  uint32_t* codes;          // [rows, P]
  std::vector<float> E, EH; // W − Ŵ and (W − Ŵ) H
  double f = 0;
  size_t cp;

  Refiner(const Layout& L_, const ProductIn& in, const float* scales_, uint32_t* codes_, const Context& c)
      : L(L_), ctx(c), scales(scales_), codes(codes_) {
    cp = L.P * L.m;
    H = RowMat::Zero((Eigen::Index)cp, (Eigen::Index)cp);
    for (size_t i = 0; i < L.cols; i++)
      for (size_t j = 0; j < L.cols; j++) H((Eigen::Index)i, (Eigen::Index)j) = in.gram[i * L.cols + j];
    W.assign(L.rows * cp, 0.0f);
    for (size_t r = 0; r < L.rows; r++) std::copy_n(in.w + r * L.cols, L.cols, W.begin() + r * cp);
    E.resize(W.size());
    EH.resize(W.size());
  }

  // E, EH and f for folded codebooks `books`.
  double evaluate(const float* books) {
    reconstruct_padded(L, scales, codes, books, E.data(), ctx);
    for (size_t i = 0; i < E.size(); i++) E[i] = W[i] - E[i];
    times_h(E.data(), H, L.rows, EH.data(), ctx);
    return f = dot(E.data(), EH.data(), E.size());
  }

  // Exact coordinate descent over the subvectors of every row: each code in turn becomes the one that lowers
  // tr(E H Eᵀ) most given all others. Returns the number of codes changed. Needs E, EH current for `books`.
  size_t assign(const float* books) {
    const int m = L.m, k = L.k;
    std::vector<size_t> changed(L.rows, 0);
    for (size_t g = 0; g < L.groups; g++) {
      const float* B = books + g * (size_t)k * m;
      // Per position p: V_p = B H_pp [k, m] and Q_p[c] = b_c' H_pp b_c.
      std::vector<float> V(L.P * (size_t)k * m), Q(L.P * (size_t)k);
      parallel_for(ctx, L.P, [&](size_t p) {
        const auto Hpp = H.block((Eigen::Index)(p * m), (Eigen::Index)(p * m), m, m);
        Eigen::Map<const RowMat> Bm(B, k, m);
        Eigen::Map<RowMat> Vp(V.data() + p * k * m, k, m);
        Vp.noalias() = Bm * Hpp;
        for (int c = 0; c < k; c++) Q[p * k + c] = Vp.row(c).dot(Bm.row(c));
      });
      const size_t r0 = g * L.gr, r1 = std::min(L.rows, r0 + L.gr);
      parallel_for(ctx, r1 - r0, [&](size_t i) {
        const size_t r = r0 + i;
        const float s = scales ? scales[r] : 1.0f;
        float* e = E.data() + r * cp;
        float* gv = EH.data() + r * cp;
        std::vector<float> u(k), h(k), delta(m);
        for (size_t p = 0; p < L.P; p++) {
          const uint32_t o = codes[r * L.P + p];
          const float* bo = B + (size_t)o * m;
          const float* Vp = V.data() + p * k * m;
          const float* gp = gv + p * m;
          double best = 0;
          int bc = (int)o;
          double go = 0;
          for (int q = 0; q < m; q++) go += (double)bo[q] * gp[q];
          for (int c = 0; c < k; c++) {
            if ((uint32_t)c == o) continue;
            const float* bc_ = B + (size_t)c * m;
            double uc = 0, hc = 0;
            for (int q = 0; q < m; q++) uc += (double)Vp[(size_t)c * m + q] * bo[q], hc += (double)bc_[q] * gp[q];
            // δ = s (b_o − b_c): Δf = 2 δ'g + δ'H_pp δ.
            const double df = 2.0 * s * (go - hc) + (double)s * s * (Q[p * k + o] - 2.0 * uc + Q[p * k + c]);
            if (df < best) best = df, bc = c;
          }
          if (bc == (int)o) continue;
          const float* bn = B + (size_t)bc * m;
          for (int q = 0; q < m; q++) delta[q] = s * (bo[q] - bn[q]);
          for (int q = 0; q < m; q++) e[p * m + q] += delta[q];
          // g += δ' H[p-block rows, :]
          for (int q = 0; q < m; q++) {
            const float dq = delta[q];
            if (dq == 0.0f) continue;
            const float* hr = H.data() + (p * m + q) * cp;
            for (size_t c2 = 0; c2 < cp; c2++) gv[c2] += dq * hr[c2];
          }
          codes[r * L.P + p] = (uint32_t)bc;
          changed[r]++;
        }
      });
    }
    return std::accumulate(changed.begin(), changed.end(), (size_t)0);
  }

  // Σ over every subvector of s_r · M[r, p-block] into G [groups, k, m] (Jᵀ of the reconstruction).
  void gather(const float* M, std::vector<double>& G) const {
    const int m = L.m, k = L.k;
    G.assign(L.groups * (size_t)k * m, 0.0);
    for (size_t r = 0; r < L.rows; r++) {
      const double s = scales ? scales[r] : 1.0;
      double* gb = G.data() + L.group_of(r) * (size_t)k * m;
      for (size_t p = 0; p < L.P; p++) {
        double* gc = gb + (size_t)codes[r * L.P + p] * m;
        for (int q = 0; q < m; q++) gc[q] += s * M[r * cp + p * m + q];
      }
    }
  }
};

// Conjugate gradients on f(θ) = tr((W − R(θ)) H (W − R(θ))ᵀ) for a reconstruction R linear in θ, starting at θ:
// `books_of` maps θ (or a direction) to folded codebooks, `grad_of` maps a codebook-space gather to θ-space,
// `precond` applies the preconditioner (may be identity). Returns the new θ (not rounded).
std::vector<float> cg_refit(Refiner& R, std::vector<float> theta, const std::function<void(const float*, float*)>& books_of,
                            const std::function<void(const std::vector<double>&, std::vector<double>&)>& grad_of,
                            const std::function<void(std::vector<double>&)>& precond, int iters, size_t book_size) {
  const size_t n = theta.size();
  std::vector<float> books(book_size), Dw(R.E.size()), DH(R.E.size());
  std::vector<double> gb, res, z, p(n), Ap;
  // Residual = −½∇f = Jᵀ(E H).
  R.gather(R.EH.data(), gb);
  grad_of(gb, res);
  z = res;
  precond(z);
  p = z;
  double rz = std::inner_product(res.begin(), res.end(), z.begin(), 0.0);
  std::vector<float> pf(n);
  for (int it = 0; it < iters && rz > 0; it++) {
    for (size_t i = 0; i < n; i++) pf[i] = (float)p[i];
    books_of(pf.data(), books.data());
    reconstruct_padded(R.L, R.scales, R.codes, books.data(), Dw.data(), R.ctx);
    times_h(Dw.data(), R.H, R.L.rows, DH.data(), R.ctx);
    const double pAp = dot(Dw.data(), DH.data(), Dw.size());
    if (!(pAp > 0)) break;
    const double alpha = rz / pAp;
    for (size_t i = 0; i < n; i++) theta[i] = (float)((double)theta[i] + alpha * p[i]);
    R.gather(DH.data(), gb);
    grad_of(gb, Ap);
    for (size_t i = 0; i < n; i++) res[i] -= alpha * Ap[i];
    z = res;
    precond(z);
    const double rz2 = std::inner_product(res.begin(), res.end(), z.begin(), 0.0);
    const double beta = rz2 / rz;
    rz = rz2;
    for (size_t i = 0; i < n; i++) p[i] = z[i] + beta * p[i];
  }
  return theta;
}

// The principal directions of the subvectors X [n, m]: eigenvectors of Σ x xᵀ, by decreasing eigenvalue, each
// with its largest-magnitude component positive (a deterministic sign). Returns eigenvalues descending.
std::vector<double> principal(const float* X, size_t n, int m, RowMatD& vecs, const Context& ctx) {
  const size_t blk = 65536;
  const size_t blocks = (n + blk - 1) / blk;
  std::vector<RowMatD> part(blocks);
  parallel_for(ctx, blocks, [&](size_t b) {
    const size_t lo = b * blk, c = std::min(blk, n - lo);
    Eigen::Map<const RowMat> Xb(X + lo * m, (Eigen::Index)c, m);
    const RowMatD Xd = Xb.cast<double>();
    part[b] = Xd.transpose() * Xd;
  });
  RowMatD G = RowMatD::Zero(m, m);
  for (auto& p : part) G += p;
  Eigen::SelfAdjointEigenSolver<RowMatD> es(G);
  vecs.resize(m, m);
  std::vector<double> lambda(m);
  for (int j = 0; j < m; j++) {
    const int src = m - 1 - j;
    Eigen::VectorXd v = es.eigenvectors().col(src);
    Eigen::Index at;
    v.cwiseAbs().maxCoeff(&at);
    if (v(at) < 0) v = -v;
    vecs.row(j) = v.transpose();
    lambda[j] = std::max(0.0, es.eigenvalues()(src));
  }
  return lambda;
}

// Projections R [n, dk] = X Qᵀ with Q = (P Pᵀ)⁻¹ P: the least-squares coordinates of X in the rows of P.
std::vector<float> project(const float* X, size_t n, int m, const float* P, int dk, const Context& ctx) {
  Eigen::Map<const RowMat> Pm(P, dk, m);
  const RowMatD Pd = Pm.cast<double>();
  const RowMatD Qd = (Pd * Pd.transpose()).ldlt().solve(Pd);
  const RowMat Q = Qd.cast<float>();
  std::vector<float> R(n * (size_t)dk);
  const size_t blk = 4096;
  parallel_for(ctx, (n + blk - 1) / blk, [&](size_t b) {
    const size_t lo = b * blk, c = std::min(blk, n - lo);
    Eigen::Map<const RowMat> Xb(X + lo * m, (Eigen::Index)c, m);
    Eigen::Map<RowMat> Rb(R.data() + lo * dk, (Eigen::Index)c, dk);
    Rb.noalias() = Xb * Q.transpose();
  });
  return R;
}

}  // namespace

namespace {

ProductStats product_quantize_unit(const ProductIn& in, const ProductParams& p, ProductOut& out, const Context& ctx) {
  if (p.m < 1 || p.m > 16) throw Error(Code::Argument, "subvector length must be 1 ... 16, got " + std::to_string(p.m));
  if (p.k < 2 || p.k > 65536) throw Error(Code::Argument, "centroids must be 2 ... 65,536, got " + std::to_string(p.k));
  if (p.rank < -1 || p.rank > p.m) throw Error(Code::Argument, "rank must be 1 ... subvector length " + std::to_string(p.m));
  const ProductShape sh = product_shape(in.rows, in.cols, p);
  Layout L{in.rows, in.cols, sh.positions, p.group_rows ? std::min(p.group_rows, in.rows) : in.rows, sh.groups, p.m, p.k};
  const int m = p.m;
  const size_t n = L.rows * L.P;
  if ((size_t)p.k > L.gr * L.P)
    throw Error(Code::Argument, std::to_string(p.k) + " centroids for " + std::to_string(L.gr * L.P) + " subvectors per codebook");
  // (Every weight is finite: product_quantize checked them while finding the scale.)
  ProductStats st;
  const double units = (double)L.groups * (p.max_iter + 1) + (in.gram ? p.refine_rounds : 0) + 1;
  double done = 0;
  auto tick = [&](double u) {
    done += u;
    if (ctx.progress) ctx.progress(std::min(done, units), units);
  };

  // Row scales: the RMS of each row, as stored.
  std::vector<float> scales;
  if (p.row_scale) {
    scales.resize(L.rows);
    bool fits = true;
    for (size_t r = 0; r < L.rows; r++) {
      double s2 = 0;
      for (size_t c = 0; c < L.cols; c++) s2 += (double)in.w[r * L.cols + c] * in.w[r * L.cols + c];
      float s = (float)std::sqrt(s2 / (double)std::max<size_t>(1, L.cols));
      if (!(s > 0) || !std::isfinite(s)) s = 1.0f;
      scales[r] = s;
      if (p.f16 && (s < 6.103515625e-05f || s > 65504.0f)) fits = false;
    }
    st.scales_f32 = p.f16 && !fits;
    if (p.f16 && fits) round_stored(scales.data(), scales.size(), true);
    std::copy(scales.begin(), scales.end(), out.scales);
  }
  const float* sc = p.row_scale ? scales.data() : nullptr;

  // Subvectors X [n, m] (scaled, padded with zeros) and their weights: importance (or the Gram diagonal, or 1) × s²,
  // 0 on padding. Null when every weight is 1.
  std::vector<float> X(n * (size_t)m, 0.0f), Wt;
  const bool weighted = in.importance || in.gram || sc || (L.cols % m);
  if (weighted) Wt.assign(n * (size_t)m, 0.0f);
  parallel_for(ctx, L.rows, [&](size_t r) {
    const float s = sc ? sc[r] : 1.0f;
    for (size_t c = 0; c < L.cols; c++) {
      const size_t t = r * L.P + c / m, i = c % m;
      X[t * m + i] = in.w[r * L.cols + c] / s;
      if (weighted) {
        const float base = in.importance ? in.importance[r * L.cols + c] : in.gram ? std::max(0.0f, in.gram[c * L.cols + c]) : 1.0f;
        Wt[t * m + i] = base * s * s;
      }
    }
  });
  const float* wt = weighted ? Wt.data() : nullptr;

  // LR²VQ: the projection P [dk, m] from the principal directions, and the rank estimate when asked.
  int dk = p.rank > 0 ? p.rank : p.m;
  std::vector<float> proj;
  if (p.rank != 0) {
    RowMatD vecs;
    const std::vector<double> lambda = principal(X.data(), n, m, vecs, ctx);
    if (p.rank == -1) {
      // E(dk) = E_LR(dk) + E_VQ(dk): the energy outside the top dk directions, plus k-means on a sample of the
      // projections at fixed k (scaled to all subvectors). The smallest sum wins.
      const size_t want = std::min(n, std::max<size_t>(20000, (size_t)50 * p.k));
      const size_t stride = std::max<size_t>(1, n / want);
      std::vector<float> S;
      for (size_t t = 0; t < n && S.size() / m < want; t += stride) S.insert(S.end(), X.begin() + t * m, X.begin() + (t + 1) * m);
      const size_t ns = S.size() / m;
      double best = INFINITY;
      for (int r = 1; r <= m; r++) {
        double tail = 0;
        for (int j = r; j < m; j++) tail += lambda[j];
        std::vector<float> Pr((size_t)r * m);
        for (int j = 0; j < r; j++)
          for (int i = 0; i < m; i++) Pr[(size_t)j * m + i] = (float)vecs(j, i);
        const std::vector<float> R = project(S.data(), ns, m, Pr.data(), r, ctx);
        KmeansParams kp;
        kp.k = (int)std::min<size_t>(p.k, ns);
        kp.max_iter = 10;
        kp.seed = p.seed;
        std::vector<float> C((size_t)kp.k * r);
        std::vector<uint32_t> a(ns);
        const KmeansStats ks = kmeans(R.data(), nullptr, ns, r, kp, C.data(), a.data(), Context{ctx.threads, ctx.cancel, {}});
        const double vq = ks.sse * (double)n / (double)ns;
        st.estimate.push_back({r, tail, vq});
        if (tail + vq < best) best = tail + vq, dk = r;
      }
    }
    proj.resize((size_t)dk * m);
    for (int j = 0; j < dk; j++)
      for (int i = 0; i < m; i++) proj[(size_t)j * m + i] = (float)vecs(j, i);
    round_stored(proj.data(), proj.size(), p.f16);
    std::copy(proj.begin(), proj.end(), out.projection);
    st.rank = dk;
  }
  const float* P = p.rank != 0 ? proj.data() : nullptr;

  // Codebooks: k-means per group, in the projection's coordinates for LR²VQ, then stored (rounded), folded, and
  // every subvector re-assigned to the nearest stored codeword under its weights.
  const std::vector<float> R = P ? project(X.data(), n, m, P, dk, ctx) : std::vector<float>();
  std::vector<float> Rw;
  if (P && wt) {
    // A subvector's weight in the projection: the mean of its coordinates' weights.
    Rw.resize(n * (size_t)dk);
    for (size_t t = 0; t < n; t++) {
      double a = 0;
      for (int i = 0; i < m; i++) a += Wt[t * m + i];
      for (int j = 0; j < dk; j++) Rw[t * dk + j] = (float)(a / m);
    }
  }
  std::vector<float> books(L.groups * (size_t)L.k * m);
  for (size_t g = 0; g < L.groups; g++) {
    const size_t t0 = g * L.gr * L.P, t1 = std::min(n, (g + 1) * L.gr * L.P);
    KmeansParams kp;
    kp.k = p.k;
    kp.max_iter = p.max_iter;
    kp.seed = mix_seed(p.seed, g);
    float* C = out.codebooks + g * (size_t)p.k * dk;
    Context kc{ctx.threads, ctx.cancel, {}};
    const float* gx = P ? R.data() + t0 * dk : X.data() + t0 * m;
    const float* gw = P ? (Rw.empty() ? nullptr : Rw.data() + t0 * dk) : (wt ? wt + t0 * m : nullptr);
    const size_t gn = t1 - t0;
    KmeansStats ks = kmeans(gx, gw, gn, dk, kp, C, out.codes + t0, kc);
    st.iterations = std::max(st.iterations, ks.iterations);
    st.reseeded += ks.reseeded;
    std::vector<float> penalty;
    if (p.rate > 0 && ks.entropy / m > p.rate) {
      // Entropy-constrained VQ: the smallest λ (bisection in log space) whose indices' entropy is within the rate,
      // each run started from the unconstrained codebook.
      const std::vector<float> C0(C, C + (size_t)p.k * dk);
      std::vector<float> Cb(C0.size());
      std::vector<uint32_t> ab(gn);
      double lo = 0, hi = std::max(ks.sse / (double)gn, 1e-300);
      bool found = false;
      auto attempt = [&](double lambda) {
        KmeansParams ep = kp;
        ep.lambda = lambda;
        ep.init = C0.data();
        ep.max_iter = std::max(10, p.max_iter / 2);
        std::vector<float> Ct(C0.size());
        std::vector<uint32_t> at(gn);
        KmeansStats es = kmeans(gx, gw, gn, dk, ep, Ct.data(), at.data(), kc);
        const bool ok = es.entropy / m <= p.rate;
        if (ok) Cb = Ct, ab = at, penalty = es.penalty, found = true;
        return ok;
      };
      for (int i = 0; i < 60 && !attempt(hi); i++) lo = hi, hi *= 4;
      for (int i = 0; i < 12 && found; i++) {
        const double mid = lo > 0 ? std::sqrt(lo * hi) : hi / 16;
        if (attempt(mid)) hi = mid;
        else lo = mid;
      }
      if (found) std::copy(Cb.begin(), Cb.end(), C), std::copy(ab.begin(), ab.end(), out.codes + t0);
      else penalty.clear();
    }
    const bool constrained = !penalty.empty();
    if (!round_stored(C, (size_t)p.k * dk, p.f16)) throw Error(Code::NonFinite, "a codeword does not fit F16: store codebooks as F32");
    float* B = books.data() + g * (size_t)p.k * m;
    fold(C, P, p.k, dk, m, B);
    // Every subvector to its nearest stored codeword, except after the entropy-constrained search, whose indices
    // (their entropy within the rate) are kept as found.
    if (!constrained) assign_nearest(X.data() + t0 * m, wt ? wt + t0 * m : nullptr, gn, m, B, p.k, out.codes + t0, nullptr, kc);
    tick(p.max_iter + 1);
  }

  // The layer-output objective: rounds of coordinate-descent assignment, codebook refit and (LR²VQ) projection
  // refit, each kept only when the stored result lowers tr(E H Eᵀ).
  if (in.gram) {
    Refiner Rf(L, in, sc, out.codes, ctx);
    double f = Rf.evaluate(books.data());
    st.output_error_initial = f;
    const size_t csize = L.groups * (size_t)p.k * dk;
    std::vector<float> theta(out.codebooks, out.codebooks + csize);
    for (int round = 0; round < p.refine_rounds; round++) {
      ctx.check_cancel();
      const double f0 = f;
      // Assignment.
      const std::vector<uint32_t> keep(out.codes, out.codes + n);
      Rf.assign(books.data());
      const double fa = Rf.evaluate(books.data());
      if (fa <= f) f = fa;
      else std::copy(keep.begin(), keep.end(), out.codes), Rf.evaluate(books.data());
      // Codebook refit, preconditioned by each codeword's block of Σ s² H_pp.
      auto books_of = [&](const float* th, float* b) {
        for (size_t g = 0; g < L.groups; g++) fold(th + g * (size_t)p.k * dk, P, p.k, dk, m, b + g * (size_t)p.k * m);
      };
      auto to_theta = [&](const std::vector<double>& gb, std::vector<double>& gt) {
        gt.assign(csize, 0.0);
        for (size_t g = 0; g < L.groups; g++)
          for (int c = 0; c < p.k; c++) {
            const double* gc = gb.data() + (g * p.k + c) * (size_t)m;
            double* tc = gt.data() + (g * p.k + c) * (size_t)dk;
            if (!P) std::copy_n(gc, m, tc);
            else
              for (int j = 0; j < dk; j++) {
                double a = 0;
                for (int i = 0; i < m; i++) a += gc[i] * P[(size_t)j * m + i];
                tc[j] = a;
              }
          }
      };
      std::vector<RowMatD> blocks(L.groups * (size_t)p.k, RowMatD::Zero(m, m));
      for (size_t r = 0; r < L.rows; r++) {
        const double s2 = sc ? (double)sc[r] * sc[r] : 1.0;
        for (size_t q = 0; q < L.P; q++)
          blocks[L.group_of(r) * p.k + out.codes[r * L.P + q]] += s2 * Rf.H.block((Eigen::Index)(q * m), (Eigen::Index)(q * m), m, m).cast<double>();
      }
      std::vector<Eigen::LDLT<RowMatD>> inv(blocks.size());
      double ridge = 0;
      for (auto& b : blocks) ridge = std::max(ridge, b.trace());
      ridge = ridge * 1e-6 / m + 1e-30;
      for (size_t b = 0; b < blocks.size(); b++) {
        RowMatD Mb = blocks[b];
        if (P) {
          Eigen::Map<const RowMat> Pm(P, dk, m);
          const RowMatD Pd = Pm.cast<double>();
          Mb = Pd * Mb * Pd.transpose();
        }
        Mb += ridge * RowMatD::Identity(Mb.rows(), Mb.cols());
        inv[b].compute(Mb);
      }
      auto precond = [&](std::vector<double>& v) {
        for (size_t b = 0; b < inv.size(); b++) {
          Eigen::Map<Eigen::VectorXd> vb(v.data() + b * dk, dk);
          vb = inv[b].solve(Eigen::VectorXd(vb));
        }
      };
      std::vector<float> next = cg_refit(Rf, theta, books_of, to_theta, precond, 8, books.size());
      if (round_stored(next.data(), next.size(), p.f16)) {
        std::vector<float> nb(books.size());
        books_of(next.data(), nb.data());
        const double fc = Rf.evaluate(nb.data());
        if (fc < f) f = fc, theta = next, books = nb;
        else Rf.evaluate(books.data());
      }
      // Projection refit (LR²VQ): plain conjugate gradients in P.
      if (P) {
        const size_t psize = (size_t)dk * m;
        auto books_of_p = [&](const float* pr, float* b) {
          for (size_t g = 0; g < L.groups; g++) fold(theta.data() + g * (size_t)p.k * dk, pr, p.k, dk, m, b + g * (size_t)p.k * m);
        };
        auto to_p = [&](const std::vector<double>& gb, std::vector<double>& gp) {
          gp.assign(psize, 0.0);
          for (size_t g = 0; g < L.groups; g++)
            for (int c = 0; c < p.k; c++) {
              const double* gc = gb.data() + (g * p.k + c) * (size_t)m;
              const float* tc = theta.data() + (g * p.k + c) * (size_t)dk;
              for (int j = 0; j < dk; j++)
                for (int i = 0; i < m; i++) gp[(size_t)j * m + i] += (double)tc[j] * gc[i];
            }
        };
        std::vector<float> np = cg_refit(Rf, proj, books_of_p, to_p, [](std::vector<double>&) {}, 8, books.size());
        if (round_stored(np.data(), np.size(), p.f16)) {
          std::vector<float> nb(books.size());
          books_of_p(np.data(), nb.data());
          const double fp = Rf.evaluate(nb.data());
          if (fp < f) {
            f = fp, proj = np, books = nb;
            P = proj.data();
          } else {
            Rf.evaluate(books.data());
          }
        }
      }
      tick(1);
      if (f < f0) st.refine_rounds++;
      if (!(f < f0 * (1 - 1e-6))) break;
    }
    st.output_error = f;
    std::copy(theta.begin(), theta.end(), out.codebooks);
    if (P) std::copy(proj.begin(), proj.end(), out.projection);
  }
  {
    double h = 0;
    for (size_t g = 0; g < L.groups; g++) {
      const size_t t0 = g * L.gr * L.P, t1 = std::min(n, (g + 1) * L.gr * L.P);
      double hg = 0;
      code_penalties(out.codes + t0, t1 - t0, p.k, 0, &hg);
      h += hg * (double)(t1 - t0);
    }
    st.index_entropy = n ? h / (double)n / m : 0;
  }
  if (ctx.progress) ctx.progress(units, units);
  return st;
}

}  // namespace

// The tensor divided by 2^e (its largest magnitude in [0.5, 1)) before anything else, and the stored values scaled
// back by 2^e: powers of two are exact, so c·x for c = 2^k gives the same indices and exactly c times the codebooks
// (or the row scales), and the arithmetic never sees magnitudes near F32's limits.
ProductStats product_quantize(const ProductIn& in, const ProductParams& p, ProductOut& out, const Context& ctx) {
  const size_t numel = in.rows * in.cols;
  float amax = 0;
  for (size_t i = 0; i < numel; i++) {
    if (!std::isfinite(in.w[i])) throw Error(Code::NonFinite, "weight " + std::to_string(i) + " is not finite");
    amax = std::max(amax, std::fabs(in.w[i]));
  }
  int e = 0;
  if (amax > 0) std::frexp(amax, &e);
  if (e == 0) return product_quantize_unit(in, p, out, ctx);
  std::vector<float> unit(numel);
  for (size_t i = 0; i < numel; i++) unit[i] = std::ldexp(in.w[i], -e);
  ProductIn u = in;
  u.w = unit.data();
  ProductStats st = product_quantize_unit(u, p, out, ctx);
  const ProductShape sh = product_shape(in.rows, in.cols, p);
  const int dk = p.rank != 0 ? st.rank : p.m;
  auto fits_f16 = [](float v) { return f16_to_f32(f32_to_f16(v)) == v; };
  if (p.row_scale) {
    for (size_t r = 0; r < in.rows; r++) {
      out.scales[r] = std::ldexp(out.scales[r], e);
      if (!st.scales_f32 && p.f16 && !fits_f16(out.scales[r])) st.scales_f32 = true;
    }
  } else {
    const size_t count = sh.groups * (size_t)p.k * dk;
    for (size_t i = 0; i < count; i++) {
      const float v = std::ldexp(out.codebooks[i], e);
      if (!std::isfinite(v) || (p.f16 && !fits_f16(v)))
        throw Error(Code::Range, "a codeword (" + std::to_string(v) + ") is outside F16's range: store codebooks as F32");
      out.codebooks[i] = v;
    }
  }
  if (st.output_error >= 0) st.output_error = std::ldexp(st.output_error, 2 * e), st.output_error_initial = std::ldexp(st.output_error_initial, 2 * e);
  for (auto& t : st.estimate) t.low_rank = std::ldexp(t.low_rank, 2 * e), t.clustering = std::ldexp(t.clustering, 2 * e);
  return st;
}

void product_reconstruct(size_t rows, size_t cols, int m, int k, int dk, size_t group_rows, const float* scales, const uint32_t* codes,
                         const float* codebooks, const float* projection, float* out, const Context& ctx) {
  const size_t P = (cols + m - 1) / m;
  const size_t gr = group_rows ? std::min(group_rows, rows) : rows;
  const size_t groups = gr ? (rows + gr - 1) / gr : 0;
  std::vector<float> books(groups * (size_t)k * m);
  for (size_t g = 0; g < groups; g++) fold(codebooks + g * (size_t)k * dk, projection, k, dk, m, books.data() + g * (size_t)k * m);
  parallel_for(ctx, rows, [&](size_t r) {
    const float s = scales ? scales[r] : 1.0f;
    const float* b = books.data() + (r / gr) * (size_t)k * m;
    for (size_t c = 0; c < cols; c++) {
      const uint32_t code = codes[r * P + c / m];
      out[r * cols + c] = b[(size_t)code * m + c % m] * s;
    }
  });
}

}  // namespace wp::vq
