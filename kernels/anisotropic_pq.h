// Product quantization with 16 codewords (4 bits) per sub-space, trained and assigned
// under the score-aware (anisotropic) loss of Guo et al. 2020:
//   loss(y, y~) = ||r||^2 + (eta - 1) * <r, u>^2,   r = y - y~,  u = x / ||x||
// where y is the vector being encoded (the IVF residual) and x the original data point
// whose direction the score depends on. eta = 1 is plain PQ.
#pragma once

#include <cstdint>
#include <vector>

#include "array_view.h"
#include "fastscan_layout.h"

namespace anisoscan {

constexpr size_t kMaxSubDim = 16;  // more dimensions than codewords per sub-space is pointless

// eta = h_par / h_perp for the step weight w(t) = [t >= threshold] and data norm `norm`.
// `exact` uses the finite-d integrals; otherwise the large-d limit (d-1) t^2 / (1 - t^2).
double anisotropic_eta(double norm, double threshold, size_t dim, bool exact);

struct PQTrainParams {
  size_t sub_dim = 2;
  double anisotropic_threshold = 0.2;  // 0 disables the anisotropic loss
  bool exact_eta = true;  // finite-d eta; the large-d limit underestimates it at moderate d
  bool anisotropic_codebooks = true;  // also solve the codebook update under the loss
  int iterations = 8;                 // assignment / update alternations
  int kmeans_iterations = 16;         // plain k-means that initialises the codebooks
  int max_assign_rounds = 8;          // coordinate-descent rounds per assignment
  uint64_t seed = 4321;
  int threads = 0;
};

class ProductQuantizer {
 public:
  ProductQuantizer() = default;
  ProductQuantizer(size_t dim, size_t sub_dim);

  size_t dim() const { return dim_; }
  size_t sub_dim() const { return sub_dim_; }
  size_t num_subspaces() const { return m_; }
  // dim rounded up to a whole number of sub-spaces; the padding is zero everywhere.
  size_t padded_dim() const { return m_ * sub_dim_; }

  const float* codeword(size_t s, size_t k) const {
    return codebooks_.data() + (s * kCodewords + k) * sub_dim_;
  }
  const std::vector<float>& codebooks() const { return codebooks_; }
  // Coordinate t of all 16 codewords of sub-space s, contiguous: lookup tables are built
  // 16 codewords at a time.
  const float* coordinate_of_codewords(size_t s, size_t t) const {
    return codebooks_t_.data() + (s * sub_dim_ + t) * kCodewords;
  }
  void set_codebooks(std::vector<float> codebooks);

  // Trains on residuals y [n, dim] with the directions of the original points x [n, dim].
  // With `loss_history`, records the mean training loss after every half-step (assignment,
  // update), the first entry being the loss of plain nearest codes under the initial
  // codebooks. Each entry costs a pass over the rows, so a build does not ask for them.
  void train(MatrixView<const float> y, MatrixView<const float> x, const PQTrainParams& params,
             std::vector<double>* loss_history = nullptr);

  // One code (0..15) per sub-space per row, written to codes [n, num_subspaces].
  void encode(MatrixView<const float> y, MatrixView<const float> x, const PQTrainParams& params,
              uint8_t* codes) const;

  void decode(const uint8_t* codes, float* out_dim) const;

  // Mean anisotropic loss of `codes` for the given rows.
  double mean_loss(MatrixView<const float> y, MatrixView<const float> x, const uint8_t* codes,
                   const PQTrainParams& params) const;

 private:
  struct Workspace;

  void nearest_codes(const float* y_padded, uint8_t* codes) const;
  // Coordinate descent from the given codes; never increases the loss. `scratch` is the
  // caller's, reused across rows.
  void refine_codes(const float* y_padded, const float* u_padded, double eta, int max_rounds, uint8_t* codes,
                    std::vector<double>& scratch) const;
  void update_codebooks(const Workspace& ws, const std::vector<uint8_t>& codes, int threads);
  double mean_loss(const Workspace& ws, const uint8_t* codes, int threads) const;

  size_t dim_ = 0;
  size_t sub_dim_ = 0;
  size_t m_ = 0;
  void derive_transposed();

  std::vector<float> codebooks_;    // [m][16][sub_dim]
  std::vector<float> codebooks_t_;  // [m][sub_dim][16], derived from codebooks_
};

}  // namespace anisoscan
