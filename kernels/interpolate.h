/* 3D interpolation of (NC, D, H, W) volumes, as torch.nn.functional.
 * interpolate (mode 'nearest', 'nearest-exact', 'trilinear' with
 * align_corners False or True; no antialias), up or down, by scale
 * factors or to a size. Source coordinates follow PyTorch's CPU kernels
 * exactly (nearest in float32 arithmetic; trilinear in the precision of
 * the data), so the same output voxels are picked.
 * The backward ACCUMULATES (+=) into dinp: callers zero it. */
#ifndef LSDM_INTERPOLATE_H
#define LSDM_INTERPOLATE_H

typedef enum { INTERP_NEAREST, INTERP_NEAREST_EXACT, INTERP_TRILINEAR } interp_mode;

typedef struct {
    int NC;              /* batch * channels */
    int in[3], out[3];   /* (d, h, w) sizes */
    double scale[3];     /* user scale factors; 0 = none (use the sizes) */
    interp_mode mode;
    int align_corners;   /* trilinear only */
} interp3d_dims;

/* Exactly one of out (sizes) and scale (factors > 0; out = floor(in *
 * scale), like PyTorch without recompute_scale_factor) is non-NULL.
 * Returns 0, or -1 with lsdm_err on nonsense. */
int interp3d_dims_init(interp3d_dims *d, int NC, const int in[3], const int out[3],
                       const double scale[3], interp_mode mode, int align_corners);

/* out (NC, out[0], out[1], out[2]); inp (NC, in[0], in[1], in[2]). */
void interp3d_forward(float *out, const float *inp, const interp3d_dims *d);
void interp3d_backward(float *dinp, const float *dout, const interp3d_dims *d);

void interp3d_forward_f64(double *out, const double *inp, const interp3d_dims *d);
void interp3d_backward_f64(double *dinp, const double *dout, const interp3d_dims *d);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/interpolate.cu): device pointers (d on the
 * host), the CPU's source indices and weights, accumulation (+=) as the
 * CPU; the backward gathers per input voxel (deterministic, no atomics).
 * Return 0, or -1 with lsdm_err (dims not initialised, CUDA errors). */
int interp3d_forward_cuda(float *out, const float *inp, const interp3d_dims *d);
int interp3d_backward_cuda(float *dinp, const float *dout, const interp3d_dims *d);
#endif

#endif
