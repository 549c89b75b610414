#include "ecsq.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "../error.h"
#include "prefix.h"

namespace wp {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Cells as index ranges of the sorted points, with the prefix sums to price them.
struct Cells {
  std::vector<size_t> bound;  // cell t = points [bound[t], bound[t+1])
  size_t count() const { return bound.empty() ? 0 : bound.size() - 1; }
};

// Points x <= thr[t] go to cells <= t: the cell boundaries of a threshold list.
Cells cells_of(const WeightedPoints& p, const std::vector<double>& thr) {
  Cells c;
  c.bound.push_back(0);
  for (double t : thr) c.bound.push_back((size_t)(std::upper_bound(p.x.begin(), p.x.end(), t) - p.x.begin()));
  c.bound.push_back(p.size());
  return c;
}

// The quantizer of a cell partition: non-empty cells' weighted means, and a threshold between each pair of
// consecutive non-empty cells (midway between the last point of one and the first of the next).
Quantizer quantizer_of(const WeightedPoints& p, const PrefixSums& ps, const Cells& c) {
  Quantizer q;
  for (size_t t = 0; t < c.count(); ++t) {
    size_t a = c.bound[t], b = c.bound[t + 1];
    if (b <= a) continue;
    if (!q.levels.empty()) {
      // previous non-empty cell ended at point a' - 1 <= a - 1
      q.thresholds.push_back(0.5 * (p.x[a - 1] + p.x[a]));
    }
    q.levels.push_back(ps.mean(a, b));
  }
  // The threshold must separate the previous non-empty cell's last point from this cell's first point: a - 1
  // is the last point before a, whichever cell it belongs to, and empty cells hold none.
  return q;
}

double entropy_of(const PrefixSums& ps, const Cells& c) {
  const double W = ps.W.back();
  double h = 0;
  for (size_t t = 0; t < c.count(); ++t) {
    double w = ps.W[c.bound[t + 1]] - ps.W[c.bound[t]];
    if (w > 0) h -= (w / W) * std::log2(w / W);
  }
  return h;
}

double sse_of(const PrefixSums& ps, const Cells& c) {
  double s = 0;
  for (size_t t = 0; t < c.count(); ++t) s += ps.cost(c.bound[t], c.bound[t + 1]);
  return s;
}

// ---- ecsq-uniform ----------------------------------------------------------------------------------------
// Midtread cells of width `step`, at most k of them (the tails are folded into the end cells of a window
// of k cells centred on the weighted mean).
Cells uniform_cells(const WeightedPoints& p, const PrefixSums& ps, double step, int k) {
  const size_t m = p.size();
  long lo = std::lround(p.x.front() / step), hi = std::lround(p.x.back() / step);
  if (hi - lo + 1 > k) {
    long centre = std::lround(ps.mean(0, m) / step);
    long a = centre - k / 2, b = a + k - 1;
    if (a < lo) { a = lo; b = lo + k - 1; }
    if (b > hi) { b = hi; a = hi - k + 1; }
    lo = a;
    hi = b;
  }
  std::vector<double> thr;
  for (long i = lo; i < hi; ++i) thr.push_back((i + 0.5) * step);
  return cells_of(p, thr);
}

double uniform_step_for_rate(const WeightedPoints& p, const PrefixSums& ps, double rate, int k) {
  const double range = p.x.back() - p.x.front();
  double lo = std::log(range / (double)k / 64 + 1e-300), hi = std::log(range * 4 + 1e-300);  // H(lo) high, H(hi) ~ 0
  for (int it = 0; it < 80; ++it) {
    double mid = 0.5 * (lo + hi);
    double h = entropy_of(ps, uniform_cells(p, ps, std::exp(mid), k));
    if (h > rate) lo = mid; else hi = mid;
  }
  return std::exp(hi);
}

// ---- ecsq (iterative) -------------------------------------------------------------------------------------
// Thresholds of the lower envelope of f_j(x) = (x - c_j)^2 + lambda * l_j (c ascending); cells off the
// envelope get an empty range (a threshold equal to the previous one).
std::vector<double> envelope_thresholds(const std::vector<double>& c, const std::vector<double>& l, double lambda) {
  const size_t K = c.size();
  // f_j(x) - x^2 = -2 c_j x + (c_j^2 + lambda l_j): lines with decreasing slopes; lower envelope by a stack.
  auto b = [&](size_t j) { return c[j] * c[j] + lambda * l[j]; };
  auto cross = [&](size_t i, size_t j) { return (b(j) - b(i)) / (2 * (c[j] - c[i])); };  // x where f_i = f_j, i < j
  std::vector<size_t> st;
  for (size_t j = 0; j < K; ++j) {
    while (st.size() >= 1) {
      size_t top = st.back();
      if (c[j] == c[top]) {  // same centre: keep the cheaper
        if (b(j) < b(top)) { st.pop_back(); continue; }
        goto skip;
      }
      if (st.size() >= 2 && cross(st[st.size() - 2], top) >= cross(top, j)) { st.pop_back(); continue; }
      break;
    }
    st.push_back(j);
  skip:;
  }
  // Threshold t (between cell t and t+1) for every cell index: envelope breakpoints, flat across cells that
  // are off the envelope.
  std::vector<double> thr(K ? K - 1 : 0);
  size_t e = 0;  // index into st
  for (size_t t = 0; t + 1 < K; ++t) {
    // Cells up to t take x <= thr[t]: the breakpoint after the last envelope member <= t.
    while (e + 1 < st.size() && st[e + 1] <= t) ++e;
    thr[t] = (e + 1 < st.size()) ? (st[e] <= t ? cross(st[e], st[e + 1]) : -kInf) : kInf;
    if (st[e] > t) thr[t] = -kInf;
  }
  for (size_t t = 1; t < thr.size(); ++t) thr[t] = std::max(thr[t], thr[t - 1]);
  return thr;
}

struct EcsqState {
  std::vector<double> c, l;  // centres and code lengths -log2 p
};

// Lloyd-like ECSQ iterations at a fixed lambda from `init`; returns the final cells.
Cells ecsq_iterate(const WeightedPoints& p, const PrefixSums& ps, EcsqState s, double lambda, int max_iter, EcsqState* out) {
  const double W = ps.W.back();
  Cells cells;
  double prevJ = kInf;
  for (int it = 0; it < max_iter; ++it) {
    cells = cells_of(p, envelope_thresholds(s.c, s.l, lambda));
    EcsqState next;
    for (size_t t = 0; t < cells.count(); ++t) {
      size_t a = cells.bound[t], b = cells.bound[t + 1];
      if (b <= a) continue;  // empty: dropped
      double w = ps.W[b] - ps.W[a];
      next.c.push_back(ps.fast_mean(a, b));
      next.l.push_back(-std::log2(w / W));
    }
    double J = (sse_of(ps, cells) + lambda * W * entropy_of(ps, cells)) / W;
    s = std::move(next);
    if (prevJ - J <= 1e-13 * std::fabs(J)) break;
    prevJ = J;
  }
  cells = cells_of(p, envelope_thresholds(s.c, s.l, lambda));
  if (out) *out = s;
  return cells;
}

// ---- ecsq-dp: exact Lagrangian over contiguous partitions ---------------------------------------------------
// min over partitions of sum_s SSE(s) + lambda * W_s * log2(W / W_s); returns the cells.
//
// Speed, with the same result as the plain O(m^2) scan (same candidates compared in the same way, ties to the
// smallest split):
//  - log2(W / w) for integer segment weights (counts) comes from a table built with the same expression;
//  - candidates are scanned from the nearest split down, and the scan stops once no earlier split can win: for
//    i' <= i, F[i'] + cost(i', j) >= SSE(i, j) + lambda * W_j * log2(W / W_j) (every cell of a partition of the
//    first j points weighs at most W_j, and a segment's SSE only grows as it extends), so the scan ends when that
//    bound exceeds the best value by more than the rounding of the prefix sums.
struct EcsqLogTable {
  std::vector<double> lg;  // lg[w] = log2(W / w) for integer w in [1, W], or empty
  explicit EcsqLogTable(const PrefixSums& ps) {
    const size_t m = ps.m();
    const double W = ps.W[m];
    if (!(W <= (double)(1 << 22))) return;
    for (size_t i = 0; i <= m; ++i)
      if (ps.W[i] != std::floor(ps.W[i])) return;
    lg.resize((size_t)W + 1);
    lg[0] = 0;
    for (size_t w = 1; w <= (size_t)W; ++w) lg[w] = std::log2(W / (double)w);
  }
};

// `optimum`, when given, receives the DP's partition even when it has more than kmax cells (before the throw).
Cells ecsq_dp_cells(const PrefixSums& ps, const EcsqLogTable& lt, double lambda, int kmax, Cells* optimum = nullptr) {
  const size_t m = ps.m();
  const double W = ps.W.back();
  std::vector<double> F(m + 1, kInf);
  std::vector<size_t> arg(m + 1, 0);
  F[0] = 0;
  const double* lg = lt.lg.empty() ? nullptr : lt.lg.data();
  // Rounding of a cost read from the prefix sums: about 1e-16 of the sum of squares about the mean (prefix.h);
  // the stopping test keeps a margin far above it.
  const double slack = 1e-9 * (std::fabs(ps.Q[m]) + std::fabs(ps.S[m]) + 1e-300);
  for (size_t j = 1; j <= m; ++j) {
    const double Wj = ps.W[j];
    const double floor_j = Wj < W ? lambda * Wj * std::log2(W / Wj) : 0;  // >= 0
    double best = kInf;
    size_t bi = 0;
    for (size_t i = j; i-- > 0;) {
      double w = ps.W[j] - ps.W[i];
      double sse = ps.cost(i, j);
      double v = F[i] + sse + lambda * w * (lg ? lg[(size_t)w] : std::log2(W / w));
      if (v <= best) { best = v; bi = i; }  // descending i: "<=" keeps the smallest split among ties
      if (sse + floor_j > best * (1 + 1e-9) + slack) break;
    }
    F[j] = best;
    arg[j] = bi;
  }
  Cells c;
  std::vector<size_t> b{m};
  for (size_t j = m; j > 0; j = arg[j]) b.push_back(arg[j]);
  std::reverse(b.begin(), b.end());
  c.bound = b;
  if (optimum) *optimum = c;
  WP_THROW_IF_NOT((int)c.count() <= kmax, Argument,
                  "ecsq: the rate needs " + std::to_string(c.count()) + " cells, more than 2^bits = " + std::to_string(kmax) + " (raise bits)");
  return c;
}

// Bisection on log(lambda) so that the entropy of `run(lambda)` hits the rate (entropy falls as lambda grows).
template <typename Run>
Cells search_lambda(const PrefixSums& ps, double rate, Run run) {
  double lo = -30, hi = 10;  // log lambda; lambda in [1e-13, 2e4] relative to the data's variance
  const double var = ps.cost(0, ps.m()) / ps.W.back();
  Cells best;
  double best_gap = kInf;
  for (int it = 0; it < 60; ++it) {
    double mid = 0.5 * (lo + hi);
    Cells c = run(std::exp(mid) * var);
    double h = entropy_of(ps, c);
    double gap = std::fabs(h - rate);
    if (gap < best_gap) { best_gap = gap; best = c; }
    if (h > rate) lo = mid; else hi = mid;
    if (gap < 1e-4) break;
  }
  return best;
}

// search_lambda for the exact DP, with the same result and far fewer DP runs. The DP minimizes D + lambda * R
// over partitions (D the SSE, R = W * H), a lower envelope of lines in lambda. Once both ends of the bisection
// bracket have been solved (partitions P_lo, P_hi), one extra DP run at the crossing lambda_x of their lines
// tells whether any other partition dips below them in between (the envelope is concave and every line is
// above it at lo and hi, so lambda_x is the only place to look). If none does, every later bisection step is
// known without a run: below lambda_x the DP returns P_lo (entropy above the rate: lo moves), above it P_hi;
// neither can become the new best (each was scored when its end was set). The lines are those of the DP's own
// optima, also where run reports the finest partition instead (more than 2^bits cells): the same optimum gives the
// same report. Steps within a relative 1e-6 of
// lambda_x, where rounding decides, still run the DP. (`plain` = false turns this off: a check for tests.)
template <typename Run>
Cells search_lambda_dp(const PrefixSums& ps, double rate, bool fast, const Cells& optimum, Run run) {
  double lo = -30, hi = 10;  // as search_lambda
  const double var = ps.cost(0, ps.m()) / ps.W.back();
  const double W = ps.W.back();
  Cells best;
  double best_gap = kInf;
  struct End { bool solved = false; double D = 0, R = 0; };
  End elo, ehi;
  double cert_lo = 0, cert_hi = -1, lx = 0;  // certified bracket (log lambda) and the crossing lambda_x
  for (int it = 0; it < 60; ++it) {
    double mid = 0.5 * (lo + hi);
    const double lambda = std::exp(mid) * var;
    if (fast && mid > cert_lo && mid < cert_hi && std::fabs(lambda - lx) > 1e-6 * lx) {
      if (lambda < lx) lo = mid; else hi = mid;
      continue;
    }
    Cells c = run(lambda);
    double h = entropy_of(ps, c);
    double gap = std::fabs(h - rate);
    if (gap < best_gap) { best_gap = gap; best = c; }
    // The line is the DP's own optimum (`optimum`, set by run), also where run reports the finest partition in
    // its place (more than 2^bits cells): a later run at a lambda where that optimum still wins reports the same.
    End e{true, sse_of(ps, optimum), W * entropy_of(ps, optimum)};
    if (h > rate) { lo = mid; elo = e; } else { hi = mid; ehi = e; }
    if (gap < 1e-4) break;
    if (!fast || !elo.solved || !ehi.solved || elo.R <= ehi.R || (mid > cert_lo && mid < cert_hi)) continue;
    // Certify [lo, hi]: the lines of P_lo and P_hi cross at lambda_x; a DP run there finds any line below.
    const double x = (ehi.D - elo.D) / (elo.R - ehi.R);
    if (!(x > 0) || !(std::log(x / var) > lo) || !(std::log(x / var) < hi)) continue;
    run(x);
    const double vx = sse_of(ps, optimum) + x * W * entropy_of(ps, optimum), env = elo.D + x * elo.R;
    if (vx >= env - 1e-9 * std::fabs(env)) { cert_lo = lo; cert_hi = hi; lx = x; }
  }
  return best;
}

void check_rate(const SolverParams& sp, const char* method) {
  WP_THROW_IF_NOT(sp.rate > 0 || sp.lambda > 0, Argument, std::string(method) + " needs a target rate (bits per weight) or a lambda");
  WP_THROW_IF_NOT(sp.rate <= 8 + 1e-9, Argument, std::string(method) + ": rate must be at most 8 bits");
}

}  // namespace

double quantizer_entropy(const WeightedPoints& p, const Quantizer& q) {
  if (p.size() == 0) return 0;
  PrefixSums ps(p);
  std::vector<double> thr = q.thresholds;
  if (thr.empty()) for (size_t t = 0; t + 1 < q.levels.size(); ++t) thr.push_back(0.5 * (q.levels[t] + q.levels[t + 1]));
  return entropy_of(ps, cells_of(p, thr));
}

Quantizer solve_ecsq_uniform(const WeightedPoints& p, const SolverParams& sp) {
  WP_THROW_IF_NOT(sp.rate > 0, Argument, "ecsq-uniform needs a target rate (bits per weight)");
  WP_THROW_IF_NOT(sp.rate <= 8 + 1e-9, Argument, "ecsq-uniform: rate must be at most 8 bits");
  PrefixSums ps(p);
  if (p.size() == 1) return {{p.x[0]}, {}};
  double step = uniform_step_for_rate(p, ps, sp.rate, sp.k);
  return quantizer_of(p, ps, uniform_cells(p, ps, step, sp.k));
}

Quantizer solve_ecsq_dp(const WeightedPoints& p, const SolverParams& sp) {
  check_rate(sp, "ecsq-dp");
  WP_THROW_IF_NOT(p.size() <= 8192, Argument, "ecsq-dp is O(m^2): at most 8192 distinct values per slice");
  PrefixSums ps(p);
  if (p.size() == 1) return {{p.x[0]}, {}};
  const EcsqLogTable lt(ps);
  if (sp.rate <= 0) return quantizer_of(p, ps, ecsq_dp_cells(ps, lt, sp.lambda, sp.k));
  Cells optimum;
  Cells c = search_lambda_dp(ps, sp.rate, sp.dp_bound, optimum, [&](double lambda) {
    try {
      return ecsq_dp_cells(ps, lt, lambda, sp.k, &optimum);
    } catch (const Error&) {  // too many cells at this lambda: report as the finest partition allowed
      Cells all;
      for (size_t i = 0; i <= ps.m(); ++i) all.bound.push_back(i);
      return all;
    }
  });
  return quantizer_of(p, ps, c);
}

Quantizer solve_ecsq(const WeightedPoints& p, const SolverParams& sp) {
  check_rate(sp, "ecsq");
  PrefixSums ps(p);
  if (p.size() == 1) return {{p.x[0]}, {}};
  const double W = ps.W.back();
  // Seed: the exact segment DP where the slice is small, else uniform cells at a slightly higher rate (the
  // iteration only removes cells).
  Quantizer seed;
  if (p.size() <= kDpSeedMax) {
    SolverParams s2 = sp;
    seed = solve_ecsq_dp(p, s2);
  } else {
    double r = sp.rate > 0 ? std::min(8.0, sp.rate + 0.5) : 6.0;
    seed = quantizer_of(p, ps, uniform_cells(p, ps, uniform_step_for_rate(p, ps, r, sp.k), sp.k));
  }
  EcsqState init;
  {
    Cells c = cells_of(p, seed.thresholds);
    for (size_t t = 0; t < c.count(); ++t) {
      size_t a = c.bound[t], b = c.bound[t + 1];
      if (b <= a) continue;
      init.c.push_back(ps.mean(a, b));
      init.l.push_back(-std::log2((ps.W[b] - ps.W[a]) / W));
    }
  }
  const int iters = std::max(1, std::min(sp.max_iter, 200));
  Cells cells = sp.rate > 0 ? search_lambda(ps, sp.rate, [&](double lambda) { return ecsq_iterate(p, ps, init, lambda, iters, nullptr); })
                            : ecsq_iterate(p, ps, init, sp.lambda, iters, nullptr);
  // Never worse than the seed at the same rate: keep whichever of the two has the lower distortion among
  // those within 0.01 bit of the target.
  Cells seed_cells = cells_of(p, seed.thresholds);
  if (sp.rate > 0 && std::fabs(entropy_of(ps, seed_cells) - sp.rate) <= std::fabs(entropy_of(ps, cells) - sp.rate) + 0.01 &&
      sse_of(ps, seed_cells) < sse_of(ps, cells))
    cells = seed_cells;
  return quantizer_of(p, ps, cells);
}

}  // namespace wp
