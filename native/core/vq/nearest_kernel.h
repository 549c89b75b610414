// The distance kernel of k-means (kmeans.cpp): for a block of points, the index of the nearest centroid under the
// weighted squared distance, by matrix products. Compiled twice (nearest_generic.cpp for the baseline ISA,
// nearest_avx2.cpp with AVX2 + FMA, chosen at run time by kmeans.cpp), so it is a header meant for those two files only: each includes it after choosing its Eigen namespace (the AVX2 build renames Eigen's namespace, so that the
// two builds' template instances never merge at link time).
//
// Score of centroid j for point x: x·c_j − ½‖c_j‖² (unweighted) or (w∘x)·c_j − ½ w·(c_j∘c_j) (weighted); the nearest
// centroid has the largest score (ties: the lowest index).
#include <Eigen/Dense>
#if defined(__AVX2__)
#include <immintrin.h>
#endif
#include <cstddef>
#include <cstdint>

namespace {

using KRowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The first index of the largest value of s[0..k) (ties: the lower index). With AVX2: eight lanes of running
// maxima and their indices (strictly greater keeps a lane's first index), then the lanes and the tail. Without:
// the maximum, then its first position. (No std:: helpers in this header: their instances would be shared between
// the two builds.)
inline uint32_t argmax_first(const float* s, int k) {
#if defined(__AVX2__)
  if (k >= 16) {
    __m256 bv = _mm256_loadu_ps(s);
    __m256i bi = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i at = bi;
    const __m256i step = _mm256_set1_epi32(8);
    int j = 8;
    for (; j + 8 <= k; j += 8) {
      at = _mm256_add_epi32(at, step);
      const __m256 v = _mm256_loadu_ps(s + j);
      const __m256 gt = _mm256_cmp_ps(v, bv, _CMP_GT_OQ);
      bv = _mm256_blendv_ps(bv, v, gt);
      bi = _mm256_blendv_epi8(bi, at, _mm256_castps_si256(gt));
    }
    alignas(32) float lv[8];
    alignas(32) int li[8];
    _mm256_store_ps(lv, bv);
    _mm256_store_si256(reinterpret_cast<__m256i*>(li), bi);
    float best = lv[0];
    int b = li[0];
    for (int l = 1; l < 8; l++)
      if (lv[l] > best || (lv[l] == best && li[l] < b)) best = lv[l], b = li[l];
    for (; j < k; j++)
      if (s[j] > best) best = s[j], b = j;
    return (uint32_t)b;
  }
#endif
  float best = s[0];
  for (int q = 1; q < k; q++) best = s[q] > best ? s[q] : best;
  int b = 0;
  while (s[b] != best) b++;
  return (uint32_t)b;
}

// x, w: the block's points [m, d] (w may be null); c [k, d]; half_norm [k]: the score's offset per centroid
// (unweighted: ½‖c_j‖² plus any penalty; weighted: the penalty alone, or null); half_sq [k, d] = ½ c∘c (weighted). Writes idx[m]. scratch holds m·k + m·d floats. (No std:: containers here:
// their template instances would be shared between the two builds.)
void nearest_block_impl(const float* x, const float* w, size_t m, int d, const float* c, const float* half_norm, const float* half_sq, int k,
                        uint32_t* idx, float* scratch) {
  Eigen::Map<const KRowMat> X(x, (Eigen::Index)m, d);
  Eigen::Map<const KRowMat> C(c, k, d);
  Eigen::Map<KRowMat> S(scratch, (Eigen::Index)m, k);
  if (w) {
    Eigen::Map<const KRowMat> W(w, (Eigen::Index)m, d);
    Eigen::Map<const KRowMat> H(half_sq, k, d);
    Eigen::Map<KRowMat> T(scratch + m * (size_t)k, (Eigen::Index)m, d);
    T = W.cwiseProduct(X);
    S.noalias() = T * C.transpose();
    S.noalias() -= W * H.transpose();
    if (half_norm) {
      Eigen::Map<const Eigen::RowVectorXf> off(half_norm, k);
      S.rowwise() -= off;
    }
  } else {
    // The offsets first, then the product added to them (an accumulating product, without Eigen zeroing S first).
    Eigen::Map<const Eigen::RowVectorXf> off(half_norm, k);
    S.rowwise() = -off;
    S.noalias() += X * C.transpose();
  }
  for (size_t r = 0; r < m; r++) idx[r] = argmax_first(scratch + r * (size_t)k, k);
}

}  // namespace
