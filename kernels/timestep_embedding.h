/* Sinusoidal timestep embedding, as the reference SinusoidalPosEmb:
 *   half = dim/2, freq_i = exp(-i * log(10000) / (half - 1)), i < half
 *   out[b] = (sin(t_b freq_0..half-1), cos(t_b freq_0..half-1))
 * dim must be even and >= 4 (the reference divides by half - 1).
 * Computed in double and rounded once (the reference forms the angle in
 * float32; at t = 500 the two differ by about 3e-5).
 * The backward ACCUMULATES into dt (usually not needed: t is data). */
#ifndef LSDM_TIMESTEP_EMBEDDING_H
#define LSDM_TIMESTEP_EMBEDDING_H

/* out (B,dim); t (B). */
void timestep_embedding_forward(float *out, const float *t, int B, int dim);
/* dt (B) += sum over the row of dout (B,dim) * d out / d t. */
void timestep_embedding_backward(float *dt, const float *dout, const float *t, int B, int dim);

void timestep_embedding_forward_f64(double *out, const double *t, int B, int dim);
void timestep_embedding_backward_f64(double *dt, const double *dout, const double *t, int B, int dim);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/timestep_embedding.cu): device pointers,
 * same arguments, arithmetic (double, rounded once) and accumulation (+=)
 * as the CPU; the backward is one thread per b (deterministic). Return 0,
 * or -1 with lsdm_err (bad sizes, CUDA errors). */
int timestep_embedding_forward_cuda(float *out, const float *t, int B, int dim);
int timestep_embedding_backward_cuda(float *dt, const float *dout, const float *t, int B, int dim);
#endif

#endif
