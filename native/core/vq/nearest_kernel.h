// The distance kernel of k-means (kmeans.cpp): for a block of points, the index of the nearest centroid under the
// weighted squared distance, by matrix products. Compiled twice (nearest_generic.cpp for the baseline ISA,
// nearest_avx2.cpp with AVX2 + FMA, chosen at run time by kmeans.cpp), so it is a header meant for those two files only: each includes it after choosing its Eigen namespace (the AVX2 build renames Eigen's namespace, so that the
// two builds' template instances never merge at link time).
//
// Score of centroid j for point x: x·c_j − ½‖c_j‖² (unweighted) or (w∘x)·c_j − ½ w·(c_j∘c_j) (weighted); the nearest
// centroid has the largest score (ties: the lowest index).
#include <Eigen/Dense>
#include <cstddef>
#include <cstdint>

namespace {

using KRowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// x, w: the block's points [m, d] (w may be null); c [k, d]; half_norm [k]: the score's offset per centroid
// (unweighted: ½‖c_j‖² plus any penalty; weighted: the penalty alone, or null); half_sq [k, d] = ½ c∘c (weighted). Writes idx[m]. scratch holds m·k + m·(d + 1) floats. (No std:: containers here:
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
    // [x, 1] · [c, −½‖c‖²]ᵀ in one product: the block with a column of ones appended.
    Eigen::Map<KRowMat> Xa(scratch + m * (size_t)k, (Eigen::Index)m, d + 1);
    Xa.leftCols(d) = X;
    Xa.col(d).setOnes();
    KRowMat Ca(k, d + 1);
    Ca.leftCols(d) = C;
    for (int j = 0; j < k; j++) Ca(j, d) = -half_norm[j];
    S.noalias() = Xa * Ca.transpose();
  }
  for (size_t r = 0; r < m; r++) {
    const float* s = scratch + r * (size_t)k;
    const float best = S.row((Eigen::Index)r).maxCoeff();
    // The first index holding the maximum, as a min-reduction over integers (vectorizes; no std:: helpers in this
    // header, whose instances would be shared with the baseline build).
    int j = k - 1;
    for (int q = 0; q < k; q++) {
      const int c = s[q] == best ? q : k - 1;
      j = c < j ? c : j;
    }
    idx[r] = (uint32_t)j;
  }
}

}  // namespace
