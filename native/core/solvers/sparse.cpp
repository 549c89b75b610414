// Sparse least-squares quantization: see sparse.h for the formulations and docs/SPARSE.md for their origin
// (a reconstruction: the paper's full text was not available).
//
// Algorithms (m = number of distinct values):
//   sparse-l1, fixed lambda   Weighted TV on sorted data. Its solution is monotone (proved in SPARSE.md), so
//                             with beta_{j+1} >= 0 the penalty is linear in z and the problem is a weighted
//                             isotonic regression of the shifted data v_j = u_j - lambda (w_{j-1} - w_j) / c_j:
//                             one pool-adjacent-violators pass, O(m), exact.
//   sparse-l1, target K       The blocks of that isotonic fit only merge as lambda grows (SPARSE.md), so the
//                             whole lambda path is a sequence of merges of adjacent blocks, each at a lambda
//                             computed in closed form: a heap of merge events, O(m log m), exact.
//   sparse-l1l2               Monotone-constrained (the unconstrained optimum whenever that is monotone: in
//                             every test case it was). Solved on its dual, a strictly convex, C^1,
//                             piecewise-quadratic problem in the partial sums y_j = -sum_{i<j} c_i (u_i - z_i):
//                             Newton's method with full steps, one tridiagonal solve (O(m)) each. The gradient
//                             is convex with M-matrix Jacobians, so the iterates decrease monotonically after
//                             the first, the active set only shrinks, and the method stops exactly when a step
//                             keeps it. Started from the sparse-l1 solution at the same lambda, it takes a few
//                             steps (2-7 measured at m = 65,536). Target K: geometric bisection on lambda,
//                             bracketed from the lambda at which sparse-l1 has K groups.
//   sparse-l0                 1-D Potts by the optimal-partitioning DP F(j) = min_i F(i) + SSE(i, j) + lambda.
//                             SSE on sorted data satisfies the quadrangle inequality, so a later split point
//                             that beats an earlier one keeps beating it: a candidate queue with binary search,
//                             O(m log m) ("monge", the default). PELT pruning and the O(m^2) DP are kept for
//                             the bench and the tests. Target K: the penalised cost is piecewise linear and
//                             concave in lambda; the counts reachable are the vertices of the lower convex hull
//                             of SSE*(K), found by the chord (Lagrangian) search lambda = dSSE / dK; a K on a
//                             hull edge (exact ties) is confirmed with the exact fixed-K DP (kmeans_dp).
//   sparse-cluster            Deterministic Lloyd on contiguous clusters: divisive start (repeatedly split the
//                             cluster whose best 2-split gains most), then LS refit (group means) and
//                             nearest-level reassignment until the partition is stable; an emptied cluster is
//                             replaced by the best 2-split of the cluster with the largest SSE. Start
//                             O(m log K) typical, O(m K) worst; O(K log m) per Lloyd iteration.
#include "sparse.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <queue>
#include <string>
#include <vector>

#include "../error.h"
#include "kmeans_dp.h"
#include "prefix.h"

namespace wp {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Switches for tests and benches: SolverParams::sparse_penalty and SolverParams::l0_algo (registry.h).
using Penalty = SparsePenalty;
using L0Algo = SparseL0Algo;

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

// ---------------------------------------------------------------------------------------------------------
// Partitions of the sorted points into contiguous groups, and the Quantizer they give.

using Bounds = std::vector<size_t>;  // 0 = b[0] < b[1] < ... < b.back() = m; group t is [b[t], b[t+1])

struct Solution {
  Bounds b;
  std::vector<double> z;  // one value per group, strictly ascending
  size_t groups() const { return b.size() - 1; }
};

// Weighted mean of each group (segment_mean: direct, clamped into the group's range, so strictly ordered).
std::vector<double> group_means(const WeightedPoints& p, const Bounds& b) {
  std::vector<double> lv(b.size() - 1);
  for (size_t t = 0; t + 1 < b.size(); ++t) lv[t] = segment_mean(p, b[t], b[t + 1]);
  return lv;
}

// Thresholds reproduce the partition under the pipeline's rule (x goes to level t when
// thresholds[t-1] < x <= thresholds[t]): any T with x_last <= T < x_first_of_next works; take the midpoint,
// or x_last itself when the two are adjacent doubles and the midpoint rounds up.
Quantizer to_quantizer(const WeightedPoints& p, const Bounds& b, std::vector<double> levels) {
  Quantizer q;
  q.levels = std::move(levels);
  for (size_t t = 1; t + 1 < b.size(); ++t) {
    double lo = p.x[b[t] - 1], hi = p.x[b[t]];
    double T = 0.5 * lo + 0.5 * hi;
    if (!(T >= lo && T < hi)) T = lo;
    q.thresholds.push_back(T);
  }
  for (size_t t = 1; t < q.levels.size(); ++t)
    WP_THROW_IF_NOT(q.levels[t - 1] < q.levels[t], Internal, "sparse: levels are not strictly ascending");
  for (double v : q.levels) WP_THROW_IF_NOT(std::isfinite(v), Internal, "sparse: a level is not finite");
  return q;
}

Quantizer all_points(const WeightedPoints& p) {
  Bounds b(p.size() + 1);
  for (size_t i = 0; i <= p.size(); ++i) b[i] = i;
  return to_quantizer(p, b, p.x);
}

// ---------------------------------------------------------------------------------------------------------
// Parameters.

void check_params(const SolverParams& sp, const char* name) {
  WP_THROW_IF_NOT(sp.k >= 1, Argument, std::string(name) + ": k must be at least 1");
  WP_THROW_IF_NOT(std::isfinite(sp.lambda) && sp.lambda >= 0, Argument,
                  std::string(name) + ": lambda must be finite and >= 0, got " + num(sp.lambda));
  WP_THROW_IF_NOT(std::isfinite(sp.lambda2) && sp.lambda2 >= 0, Argument,
                  std::string(name) + ": lambda2 must be finite and >= 0, got " + num(sp.lambda2));
  WP_THROW_IF_NOT(sp.target_values >= 0, Argument, std::string(name) + ": targetValues must be >= 0");
}

// The K of the iterative method, or 0 for "solve at the given lambda".
int target_of(const SolverParams& sp) {
  if (sp.target_values > 0) return std::min(sp.target_values, sp.k);
  if (sp.lambda > 0) return 0;
  return sp.k;  // neither lambda nor a target: search for k values
}

void check_fits(size_t groups, const SolverParams& sp, const char* name) {
  if ((long long)groups > (long long)sp.k)
    throw Error(Code::Argument, std::string(name) + ": lambda = " + num(sp.lambda) + " leaves " + std::to_string(groups) +
                                    " distinct values, more than k = " + std::to_string(sp.k) +
                                    " (2^bits); raise lambda or bits, or give targetValues instead of lambda");
}

// Penalty weights w[j], j = 0..m: the weight of the jump between point j-1 and point j; w[0] = w[m] = 0.
// Standardised: w_j = sqrt(L_j R_j / W), the Euclidean norm of A's j-th column (indicator of "x >= u_j",
// one row per element, multiplicities included) after centring. Uniform: w_j = 1 (A as is).
std::vector<double> jump_weights(const WeightedPoints& p, Penalty mode) {
  const size_t m = p.size();
  std::vector<double> w(m + 1, 0.0);
  if (mode == Penalty::Uniform) {
    for (size_t j = 1; j < m; ++j) w[j] = 1.0;
    return w;
  }
  std::vector<double> suffix(m + 1, 0.0);
  for (size_t i = m; i-- > 0;) suffix[i] = suffix[i + 1] + p.w[i];
  double L = 0;
  const double W = suffix[0];
  for (size_t j = 1; j < m; ++j) {
    L += p.w[j - 1];
    double R = suffix[j];
    w[j] = std::sqrt(L * (R / W));
  }
  return w;
}

// ---------------------------------------------------------------------------------------------------------
// sparse-l1 at a fixed lambda: weighted isotonic regression of the shifted data (pool adjacent violators).

Solution l1_pava(const WeightedPoints& p, const std::vector<double>& w, double lambda) {
  const size_t m = p.size();
  std::vector<size_t> start;
  std::vector<double> sc, scv;  // per block: sum of c, sum of c*v
  start.reserve(m);
  sc.reserve(m);
  scv.reserve(m);
  for (size_t i = 0; i < m; ++i) {
    start.push_back(i);
    sc.push_back(p.w[i]);
    scv.push_back(p.w[i] * p.x[i] - lambda * (w[i] - w[i + 1]));
    while (start.size() >= 2) {
      size_t t = start.size() - 1;
      if (scv[t - 1] / sc[t - 1] < scv[t] / sc[t]) break;
      sc[t - 1] += sc[t];
      scv[t - 1] += scv[t];
      start.pop_back();
      sc.pop_back();
      scv.pop_back();
    }
  }
  Solution s;
  s.b = start;
  s.b.push_back(m);
  s.z.resize(start.size());
  for (size_t t = 0; t < start.size(); ++t) s.z[t] = scv[t] / sc[t];
  return s;
}

// The smallest lambda at which every value is fused into one (the same for l1 and l1+l2):
// lambda_max = max_j (-S_j) / w_j with S_j = sum_{i<j} c_i (u_i - mean).
double l1_lambda_max(const WeightedPoints& p, const std::vector<double>& w) {
  const size_t m = p.size();
  double W = 0, Wx = 0;
  for (size_t i = 0; i < m; ++i) { W += p.w[i]; Wx += p.w[i] * p.x[i]; }
  double mu = Wx / W, S = 0, best = 0;
  for (size_t j = 1; j < m; ++j) {
    S += p.w[j - 1] * (p.x[j - 1] - mu);
    if (w[j] > 0) best = std::max(best, -S / w[j]);
  }
  return best;
}

// sparse-l1 for a target count: the merge path. A block B = [a, b) has v-mean (U_B - lambda S_B) / C_B with
// C_B = sum c, U_B = sum c u and S_B = sum (w_i - w_{i+1}) = w_a - w_b. Two adjacent blocks L, R fuse at
// lambda = (U_R/C_R - U_L/C_L) / (S_R/C_R - S_L/C_L) (never, when the denominator is <= 0). Events within a
// relative 1e-10 of each other count as simultaneous: K is then skipped (not attainable) and the count
// lands below it.
Bounds l1_path(const WeightedPoints& p, const std::vector<double>& w, size_t K, double* lam_lo = nullptr,
               double* lam_hi = nullptr) {
  const size_t m = p.size();
  struct Blk { double C, U, S; size_t a; int prev, next; uint32_t ver; bool alive; };
  std::vector<Blk> bl(m);
  for (size_t i = 0; i < m; ++i)
    bl[i] = {p.w[i], p.w[i] * p.x[i], w[i] - w[i + 1], i, (int)i - 1, i + 1 < m ? (int)i + 1 : -1, 0, true};
  struct Ev { double lam; int left; uint32_t vl, vr; int right; };
  auto cmp = [](const Ev& a, const Ev& b) { return a.lam > b.lam || (a.lam == b.lam && a.left > b.left); };
  std::priority_queue<Ev, std::vector<Ev>, decltype(cmp)> heap(cmp);
  auto fuse_at = [&](int l, int r) {
    const Blk& L = bl[(size_t)l];
    const Blk& R = bl[(size_t)r];
    double du = R.U / R.C - L.U / L.C, ds = R.S / R.C - L.S / L.C;
    if (!(ds > 0)) return kInf;
    return std::max(0.0, du / ds);
  };
  auto push = [&](int l) {
    if (l < 0) return;
    int r = bl[(size_t)l].next;
    if (r < 0) return;
    double lam = fuse_at(l, r);
    if (lam < kInf) heap.push({lam, l, bl[(size_t)l].ver, bl[(size_t)r].ver, r});
  };
  for (size_t i = 0; i + 1 < m; ++i) push((int)i);
  auto stale = [&](const Ev& e) {
    const Blk& L = bl[(size_t)e.left];
    if (!L.alive || L.ver != e.vl || L.next != e.right) return true;
    const Blk& R = bl[(size_t)e.right];
    return !R.alive || R.ver != e.vr;
  };
  size_t count = m;
  double last = 0;
  for (;;) {
    while (!heap.empty() && stale(heap.top())) heap.pop();
    if (heap.empty()) break;
    Ev e = heap.top();
    if (count <= K && !(e.lam <= last * (1 + 1e-10))) break;
    heap.pop();
    Blk& L = bl[(size_t)e.left];
    Blk& R = bl[(size_t)e.right];
    L.C += R.C;
    L.U += R.U;
    L.S += R.S;
    L.next = R.next;
    if (R.next >= 0) bl[(size_t)R.next].prev = e.left;
    R.alive = false;
    ++L.ver;
    --count;
    last = std::max(last, e.lam);
    push(L.prev);
    push(e.left);
  }
  WP_THROW_IF_NOT(count <= K, Internal, "sparse-l1: the merge path stopped above the target count");
  // The partition is the solution for lambda in [last, next event).
  if (lam_lo) *lam_lo = last;
  if (lam_hi) {
    while (!heap.empty() && stale(heap.top())) heap.pop();
    *lam_hi = heap.empty() ? kInf : heap.top().lam;
  }
  Bounds b;
  for (int i = 0; i >= 0; i = bl[(size_t)i].next) b.push_back(bl[(size_t)i].a);
  b.push_back(m);
  return b;
}

// ---------------------------------------------------------------------------------------------------------
// sparse-l1l2: min 1/2 sum c (u - z)^2 + sum_j [lambda w_j d_j + lambda2 w_j^2 d_j^2], d_j = z_j - z_{j-1} >= 0.
// Dual (y_j = -sum_{i<j} c_i (u_i - z_i), y_0 = y_m = 0):
//   Phi(y) = 1/2 sum_i (y_i - y_{i+1})^2 / c_i - sum_j y_j (u_j - u_{j-1}) + sum_j q_j/2 ((y_j - lw_j)_+)^2,
// lw_j = lambda w_j, q_j = 1 / (2 lambda2 omega_j); then d_j = q_j (y_j - lw_j)_+ and
// z_i = u_i - (y_i - y_{i+1}) / c_i.

struct L1L2Dual {
  const WeightedPoints& p;
  std::vector<double> lw, q, du, ic;  // indices 1..m-1 for lw, q, du; ic = 1/c, 0..m-1
  size_t m;

  L1L2Dual(const WeightedPoints& pts, const std::vector<double>& w, const std::vector<double>& omega, double lambda,
           double lambda2)
      : p(pts), m(pts.size()) {
    lw.assign(m + 1, 0.0);
    q.assign(m + 1, 0.0);
    du.assign(m + 1, 0.0);
    ic.resize(m);
    for (size_t i = 0; i < m; ++i) ic[i] = 1.0 / p.w[i];
    for (size_t j = 1; j < m; ++j) {
      lw[j] = lambda * w[j];
      q[j] = 1.0 / (2.0 * lambda2 * omega[j]);
      du[j] = p.x[j] - p.x[j - 1];
    }
  }

  double phi(const std::vector<double>& y) const {
    double s = 0;
    for (size_t i = 0; i < m; ++i) {
      double d = y[i] - y[i + 1];
      s += 0.5 * d * d * ic[i];
    }
    for (size_t j = 1; j < m; ++j) {
      s -= y[j] * du[j];
      double e = y[j] - lw[j];
      if (e > 0) s += 0.5 * q[j] * e * e;
    }
    return s;
  }

  void grad(const std::vector<double>& y, std::vector<double>& g) const {
    g.assign(m + 1, 0.0);
    for (size_t j = 1; j < m; ++j) {
      double e = y[j] - lw[j];
      g[j] = (y[j] - y[j + 1]) * ic[j] + (y[j] - y[j - 1]) * ic[j - 1] - du[j] + (e > 0 ? q[j] * e : 0.0);
    }
  }

  // Solves H p = -g for the generalized Hessian at the pattern `act` (Thomas algorithm; H is symmetric,
  // strictly diagonally dominant up to the Dirichlet Laplacian, hence positive definite).
  void newton_dir(const std::vector<double>& g, const std::vector<char>& act, std::vector<double>& dir,
                  std::vector<double>& cp, std::vector<double>& dp) const {
    const size_t n = m - 1;  // unknowns y_1..y_{m-1}
    dir.assign(m + 1, 0.0);
    cp.assign(m + 1, 0.0);
    dp.assign(m + 1, 0.0);
    for (size_t j = 1; j <= n; ++j) {
      double diag = ic[j] + ic[j - 1] + (act[j] ? q[j] : 0.0);
      double sub = j > 1 ? -ic[j - 1] : 0.0;  // H[j][j-1]
      double sup = j < n ? -ic[j] : 0.0;      // H[j][j+1]
      double den = diag - sub * cp[j - 1];
      cp[j] = sup / den;
      dp[j] = (-g[j] - sub * dp[j - 1]) / den;
    }
    for (size_t j = n; j >= 1; --j) dir[j] = dp[j] - cp[j] * (j < n ? dir[j + 1] : 0.0);
  }

  void pattern(const std::vector<double>& y, std::vector<char>& act) const {
    act.assign(m + 1, 0);
    for (size_t j = 1; j < m; ++j) act[j] = y[j] > lw[j];
  }

  // Newton's method on grad Phi(y) = 0 from y (warm start), full steps; returns the iterations used.
  // grad Phi = T y - du + Q (y - lw)_+ is convex componentwise and its (generalized) Jacobian is always an
  // M-matrix (the Dirichlet Laplacian T plus a non-negative diagonal), so by the monotone Newton theorem
  // every iterate after the first lies above the solution and the iterates decrease monotonically; the
  // active set {y_j > lw_j} therefore only shrinks, and the iteration stops exactly (finitely) when a step
  // keeps it: that step solved the linear system of the right piece.
  int solve(std::vector<double>& y, int max_iter) const {
    std::vector<double> g, dir, cp, dp;
    std::vector<char> act, act2;
    pattern(y, act);
    int it = 0;
    while (it < max_iter) {
      ++it;
      grad(y, g);
      newton_dir(g, act, dir, cp, dp);
      for (size_t j = 1; j < m; ++j) y[j] += dir[j];
      pattern(y, act2);
      // From the second iterate on the active set can only shrink (above); enforcing it keeps rounding near
      // y_j = lw_j from re-activating entries, and bounds the iterations by m + 1.
      if (it >= 2)
        for (size_t j = 1; j < m; ++j) act2[j] = act2[j] && act[j];
      if (act2 == act) break;
      act.swap(act2);
    }
    return it;
  }

  // The primal solution at y: groups split where d_j > 0; group value = weighted mean of z_i.
  Solution primal(const std::vector<double>& y) const {
    Solution s;
    s.b.push_back(0);
    for (size_t j = 1; j < m; ++j)
      if (y[j] > lw[j]) s.b.push_back(j);
    s.b.push_back(m);
    auto value = [&](size_t a, size_t b) {
      double sc = 0, scu = 0;
      for (size_t i = a; i < b; ++i) { sc += p.w[i]; scu += p.w[i] * p.x[i]; }
      return (scu - (y[a] - y[b])) / sc;
    };
    // Merge neighbours whose values rounding left out of order (their jump is below working precision).
    Bounds b;
    std::vector<double> z;
    for (size_t t = 0; t + 1 < s.b.size(); ++t) {
      size_t a = s.b[t], e = s.b[t + 1];
      double v = value(a, e);
      while (!z.empty() && !(z.back() < v)) {
        a = b.back();
        b.pop_back();
        z.pop_back();
        v = value(a, e);
      }
      b.push_back(a);
      z.push_back(v);
    }
    b.push_back(m);
    s.b = std::move(b);
    s.z = std::move(z);
    return s;
  }
};

// The dual point of a monotone fit z: y_j = -sum_{i<j} c_i (u_i - z_i).
std::vector<double> dual_of(const WeightedPoints& p, const Solution& s) {
  const size_t m = p.size();
  std::vector<double> y(m + 1, 0.0);
  double P = 0;
  size_t t = 0;
  for (size_t i = 0; i + 1 < m; ++i) {
    while (s.b[t + 1] <= i) ++t;
    P += p.w[i] * (p.x[i] - s.z[t]);
    y[i + 1] = -P;
  }
  return y;
}

struct L1L2Solver {
  const WeightedPoints& p;
  std::vector<double> w, omega;
  double lambda2;
  int max_iter;
  std::vector<double> y;  // dual point: the start of the next solve when not empty, then its result

  L1L2Solver(const WeightedPoints& pts, Penalty mode, double l2, int mi) : p(pts), lambda2(l2), max_iter(mi) {
    w = jump_weights(p, mode);
    omega.resize(w.size());
    for (size_t j = 0; j < w.size(); ++j) omega[j] = mode == Penalty::Uniform ? 1.0 : w[j] * w[j];
  }

  Solution at(double lambda) {
    if (lambda2 == 0 || p.size() < 2) return l1_pava(p, w, lambda);
    if (y.empty()) {
      // Cold start from the l1 solution (lambda2 = 0): its dual point, with the jumps of the l1 fit marked
      // active (there y_j = lambda w_j up to rounding), so that the first Newton step starts from its pattern.
      Solution s0 = l1_pava(p, w, lambda);
      y = dual_of(p, s0);
      for (size_t t = 1; t + 1 < s0.b.size(); ++t) {
        size_t j = s0.b[t];
        double lwj = lambda * w[j];
        y[j] = std::max(y[j], lwj + 1e-12 * std::fabs(lwj) + 1e-300);
      }
    }
    L1L2Dual d(p, w, omega, lambda, lambda2);
    d.solve(y, max_iter);
    return d.primal(y);
  }
};

// ---------------------------------------------------------------------------------------------------------
// sparse-l0: 1-D Potts, F(j) = min_{i<j} G(i) + SSE(i, j), G(i) = F(i) + lambda, G(0) = 0.

struct Potts {
  Bounds b;
  double sse = 0;
};

Potts potts(const PrefixSums& ps, double lambda, L0Algo algo) {
  const size_t m = ps.m();
  std::vector<double> G(m + 1, 0.0);
  std::vector<size_t> arg(m + 1, 0);
  auto val = [&](size_t i, size_t j) { return G[i] + ps.cost(i, j); };
  if (algo == L0Algo::Naive) {
    for (size_t j = 1; j <= m; ++j) {
      double best = kInf;
      size_t bi = 0;
      for (size_t i = 0; i < j; ++i) {
        double v = val(i, j);
        if (v < best) { best = v; bi = i; }
      }
      arg[j] = bi;
      G[j] = best + lambda;
    }
  } else if (algo == L0Algo::Pelt) {
    std::vector<size_t> R{0}, R2;
    for (size_t j = 1; j <= m; ++j) {
      double best = kInf;
      size_t bi = 0;
      for (size_t i : R) {
        double v = val(i, j);
        if (v < best) { best = v; bi = i; }
      }
      arg[j] = bi;
      G[j] = best + lambda;
      // PELT (K = 0: SSE(a,b) + SSE(b,c) <= SSE(a,c)): i can never be optimal again once
      // F(i) + SSE(i, j) > F(j).
      R2.clear();
      for (size_t i : R)
        if (val(i, j) - lambda <= best) R2.push_back(i);
      R2.push_back(j);
      R.swap(R2);
    }
  } else {
    // Candidates in a queue, each owning the interval of j from `from` on where it is the best. Under the
    // quadrangle inequality a later candidate that is strictly better at some j is strictly better at every
    // larger j, so a new candidate pops the ones it beats at their interval's start and takes over from the
    // first j (binary search) where it beats the last one left. Ties keep the earlier split point, as the
    // other two algorithms do.
    struct Cand { size_t i, from; };
    std::vector<Cand> dq;
    dq.reserve(m + 1);
    size_t head = 0;
    dq.push_back({0, 1});
    for (size_t j = 1; j <= m; ++j) {
      while (dq.size() - head >= 2 && dq[head + 1].from <= j) ++head;
      size_t i = dq[head].i;
      arg[j] = i;
      G[j] = val(i, j) + lambda;
      if (j == m) break;
      while (dq.size() > head) {
        const Cand bk = dq.back();
        size_t s = std::max(bk.from, j + 1);
        if (val(j, s) < val(bk.i, s)) {
          dq.pop_back();
          continue;
        }
        size_t lo = s + 1, hi = m + 1;
        while (lo < hi) {
          size_t mid = lo + (hi - lo) / 2;
          if (val(j, mid) < val(bk.i, mid)) hi = mid;
          else lo = mid + 1;
        }
        if (lo <= m) dq.push_back({j, lo});
        break;
      }
      if (dq.size() == head) dq.push_back({j, j + 1});
    }
  }
  Potts r;
  for (size_t j = m; j > 0; j = arg[j]) r.b.push_back(j);
  r.b.push_back(0);
  std::reverse(r.b.begin(), r.b.end());
  r.sse = 0;
  for (size_t t = 0; t + 1 < r.b.size(); ++t) r.sse += ps.cost(r.b[t], r.b[t + 1]);
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// sparse-cluster helpers.

// Best split of [a, b) (b - a >= 2) into two contiguous parts: the split index s in (a, b).
size_t best_split(const PrefixSums& ps, size_t a, size_t b) {
  double best = kInf;
  size_t bs = a + 1;
  for (size_t s = a + 1; s < b; ++s) {
    double v = ps.cost(a, s) + ps.cost(s, b);
    if (v < best) { best = v; bs = s; }
  }
  return bs;
}

}  // namespace

// =========================================================================================================

Quantizer solve_sparse_l1(const WeightedPoints& p, const SolverParams& sp) {
  check_params(sp, "sparse-l1");
  const size_t m = p.size();
  if (m == 0) return {};
  const Penalty mode = sp.sparse_penalty;
  const int K = target_of(sp);
  std::vector<double> w = jump_weights(p, mode);
  if (K > 0) {
    if ((size_t)K >= m) return all_points(p);
    Bounds b = l1_path(p, w, (size_t)K);
    return to_quantizer(p, b, group_means(p, b));
  }
  Solution s = l1_pava(p, w, sp.lambda);
  check_fits(s.groups(), sp, "sparse-l1");
  return to_quantizer(p, s.b, s.z);
}

Quantizer solve_sparse_l1l2(const WeightedPoints& p, const SolverParams& sp) {
  check_params(sp, "sparse-l1l2");
  const size_t m = p.size();
  if (m == 0) return {};
  const Penalty mode = sp.sparse_penalty;
  const int K = target_of(sp);
  // Newton stops by itself within m + 1 steps (the active set only shrinks); the bound is only a guard.
  L1L2Solver solver(p, mode, sp.lambda2, (int)std::min<size_t>(m + 2, (size_t)INT32_MAX));
  if (K == 0) {
    Solution s = solver.at(sp.lambda);
    check_fits(s.groups(), sp, "sparse-l1l2");
    return to_quantizer(p, s.b, s.z);
  }
  if ((size_t)K >= m) return all_points(p);
  // Bisection on lambda (geometric): lo gives more than K groups, hi at most K. The search starts from the
  // lambda-interval where sparse-l1 has K groups (the l2 term moves it, usually a little) and widens by
  // factors of 4 until it brackets; evaluations are warm-started from the previous dual point. The best
  // partition with at most K groups (the most groups) is kept.
  double l1lo = 0, l1hi = kInf;
  l1_path(p, solver.w, (size_t)K, &l1lo, &l1hi);
  double lmax = l1_lambda_max(p, solver.w);
  double guess = l1lo > 0 ? (l1hi < kInf ? std::sqrt(l1lo * l1hi) : l1lo * 1.01) : (l1hi < kInf ? l1hi / 2 : lmax);
  if (!(guess > 0)) guess = lmax > 0 ? lmax : 1;
  double lo = 0, hi = kInf;
  Solution best;
  auto eval = [&](double lam) {
    solver.y.clear();  // start from the l1 solution at this lambda: far fewer Newton steps than any warm start
    Solution s = solver.at(lam);
    if (s.groups() > (size_t)K) {
      lo = std::max(lo, lam);
    } else {
      hi = std::min(hi, lam);
      if (best.b.empty() || s.groups() > best.groups()) best = std::move(s);
    }
  };
  eval(guess);
  for (double up = guess * 4; hi == kInf && up < kInf; up *= 4) eval(up);
  for (double down = guess / 4; lo == 0 && down > 0 && best.groups() != (size_t)K; down /= 4) eval(down);
  for (int it = 0; it < 200 && best.groups() != (size_t)K; ++it) {
    double mid = lo > 0 ? std::sqrt(lo * hi) : hi / 1024;
    if (!(mid > lo && mid < hi) || (lo > 0 && hi / lo < 1 + 1e-14)) break;
    eval(mid);
  }
  WP_THROW_IF_NOT(!best.b.empty() && best.groups() <= (size_t)K, Internal, "sparse-l1l2: the lambda search failed");
  return to_quantizer(p, best.b, group_means(p, best.b));
}

Quantizer solve_sparse_l0(const WeightedPoints& p, const SolverParams& sp) {
  check_params(sp, "sparse-l0");
  const size_t m = p.size();
  if (m == 0) return {};
  const L0Algo algo = sp.l0_algo;
  const int K = target_of(sp);
  PrefixSums ps(p);
  if (K == 0) {
    Potts r = potts(ps, sp.lambda, algo);
    check_fits(r.b.size() - 1, sp, "sparse-l0");
    return to_quantizer(p, r.b, group_means(p, r.b));
  }
  if ((size_t)K >= m) return all_points(p);
  // Chord search over the lower convex hull of SSE*(count): between a known solution with more groups (lo)
  // and one with fewer (hi), the penalty at which both cost the same is (SSE_hi - SSE_lo) / (n_lo - n_hi);
  // the DP there either returns a hull vertex strictly between them, or proves there is none.
  struct Pt { Bounds b; double sse; size_t n; };
  Bounds all(m + 1);
  for (size_t i = 0; i <= m; ++i) all[i] = i;
  Pt lo{all, 0.0, m}, hi{{0, m}, ps.cost(0, m), 1};
  while (hi.n != (size_t)K) {
    double lam = (hi.sse - lo.sse) / (double)(lo.n - hi.n);
    Potts r = potts(ps, std::max(lam, 0.0), algo);
    size_t n = r.b.size() - 1;
    if (n == (size_t)K) {
      hi = {std::move(r.b), r.sse, n};
      break;
    }
    if (n > (size_t)K && n < lo.n) lo = {std::move(r.b), r.sse, n};
    else if (n < (size_t)K && n > hi.n) hi = {std::move(r.b), r.sse, n};
    else {
      // No hull vertex strictly between lo and hi. K is still attainable when (K, SSE*(K)) lies on the chord
      // (exact ties in the penalised cost, common on evenly spaced values), where the DP's tie-break cannot
      // be steered to it: the fixed-K optimum (exact k-means DP) settles it. Otherwise hi.n is the largest
      // attainable count below K.
      KmeansDpStats st;
      std::vector<double> lv = kmeans_dp(p, K, &st);
      double chord = lo.sse + (hi.sse - lo.sse) * (double)(lo.n - (size_t)K) / (double)(lo.n - hi.n);
      if (lv.size() == (size_t)K && std::fabs(st.sse - chord) <= 1e-9 * std::max(hi.sse, 1e-300)) {
        Bounds b{0};
        for (size_t t = 1; t < lv.size(); ++t) {
          double mid = 0.5 * lv[t - 1] + 0.5 * lv[t];
          b.push_back((size_t)(std::upper_bound(p.x.begin(), p.x.end(), mid) - p.x.begin()));
        }
        b.push_back(m);
        bool ok = true;
        for (size_t t = 0; t + 1 < b.size(); ++t) ok = ok && b[t] < b[t + 1];
        if (ok) hi = {std::move(b), st.sse, (size_t)K};
      }
      break;
    }
  }
  return to_quantizer(p, hi.b, group_means(p, hi.b));
}

Quantizer solve_sparse_cluster(const WeightedPoints& p, const SolverParams& sp) {
  check_params(sp, "sparse-cluster");
  const size_t m = p.size();
  if (m == 0) return {};
  const size_t K = (size_t)(sp.target_values > 0 ? std::min(sp.target_values, sp.k) : sp.k);
  if (K >= m) return all_points(p);
  PrefixSums ps(p);
  // Deterministic start (no seed): divisive splitting. Starting from one cluster, split the cluster whose
  // best 2-split lowers the SSE most, until there are K. Every cluster is a non-empty range of the sorted
  // values, so its mean lies inside the data range.
  Bounds b;
  {
    struct Node { double gain; size_t a, e, s; };
    auto less = [](const Node& x, const Node& y) { return x.gain < y.gain || (x.gain == y.gain && x.a > y.a); };
    std::priority_queue<Node, std::vector<Node>, decltype(less)> heap(less);
    auto push = [&](size_t a, size_t e) {
      if (e - a < 2) return;
      size_t sp2 = best_split(ps, a, e);
      heap.push({ps.cost(a, e) - ps.cost(a, sp2) - ps.cost(sp2, e), a, e, sp2});
    };
    b = {0, m};
    push(0, m);
    while (b.size() - 1 < K) {
      WP_THROW_IF_NOT(!heap.empty(), Internal, "sparse-cluster: nothing left to split");
      Node nd = heap.top();
      heap.pop();
      b.push_back(nd.s);
      push(nd.a, nd.s);
      push(nd.s, nd.e);
    }
    std::sort(b.begin(), b.end());
  }
  std::vector<double> mean(K);
  Bounds nb(K + 1);
  for (int it = 0; it < std::max(1, sp.max_iter); ++it) {
    // LS refit on the support {b[1], ..., b[K-1]}: the group means.
    for (size_t t = 0; t < K; ++t) mean[t] = ps.fast_mean(b[t], b[t + 1]);
    // Reassignment to the nearest level; clusters stay contiguous ranges of the sorted points.
    nb[0] = 0;
    nb[K] = m;
    for (size_t t = 1; t < K; ++t) {
      double mid = 0.5 * mean[t - 1] + 0.5 * mean[t];
      nb[t] = (size_t)(std::upper_bound(p.x.begin(), p.x.end(), mid) - p.x.begin());
      nb[t] = std::max(nb[t], nb[t - 1]);
    }
    // No empty clusters: drop each empty one and split the cluster with the largest SSE at its best 2-split.
    for (;;) {
      size_t empty = K;
      for (size_t t = 0; t < K; ++t)
        if (nb[t + 1] == nb[t]) { empty = t; break; }
      if (empty == K) break;
      nb.erase(nb.begin() + (long)empty);
      double worst = -1;
      size_t wt = 0;
      for (size_t t = 0; t + 1 < nb.size(); ++t) {
        double c = nb[t + 1] - nb[t] >= 2 ? ps.cost(nb[t], nb[t + 1]) : -1;
        if (c > worst) { worst = c; wt = t; }
      }
      WP_THROW_IF_NOT(worst >= 0, Internal, "sparse-cluster: no cluster to split");
      size_t s = best_split(ps, nb[wt], nb[wt + 1]);
      nb.insert(nb.begin() + (long)wt + 1, s);
    }
    if (nb == b) break;
    b.swap(nb);
    nb.resize(K + 1);
  }
  return to_quantizer(p, b, group_means(p, b));
}

}  // namespace wp
