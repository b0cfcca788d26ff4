/* Padding of (NC, D, H, W) volumes, as torch.nn.functional.pad of a 5D
 * tensor with pad = (w0, w1, h0, h1, d0, d1) in mode 'constant' (value 0)
 * or 'replicate'. Each side may differ (asymmetric) and is >= 0; a pad
 * wider than the volume is fine for both modes.
 *   out[nc, od, oh, ow] = inp[nc, od - d0, oh - h0, ow - w0]   inside,
 *                         0 (zero) or the nearest edge voxel (replicate) outside.
 * Backward ACCUMULATES (+=) into dinp (callers zero it): for replicate, the
 * gradient of every padded voxel goes to the edge voxel it copied.
 * Forward copies rows with memcpy, OpenMP over the NC*OD output planes;
 * backward gathers per input plane (NC*D tasks), so no two threads write
 * the same value and the sums come out in a fixed order.
 * _f64: the double-precision twins (same source text). */
#ifndef LSDM_KERNELS_PAD3D_H
#define LSDM_KERNELS_PAD3D_H

/* The same values as CONV3D_PAD_ZERO / CONV3D_PAD_REPLICATE. */
enum { PAD3D_ZERO = 0, PAD3D_REPLICATE = 1 };

typedef struct {
    int NC;     /* batch * channels */
    int in[3];  /* (D, H, W) */
    int pad[6]; /* d0, d1, h0, h1, w0, w1: voxels before/after on each axis */
    int mode;   /* PAD3D_ZERO or PAD3D_REPLICATE */
    int out[3]; /* computed: in + before + after */
} pad3d_dims;

/* Fill p and compute p->out. Returns 0, or -1 with lsdm_err (non-positive
 * sizes, negative pads, unknown mode, sizes that overflow an int). */
int pad3d_dims_init(pad3d_dims *p, int NC, const int in[3], const int pad[6], int mode);

void pad3d_forward(float *out,       // (NC, OD, OH, OW)
                   const float *inp, // (NC, D, H, W)
                   const pad3d_dims *p);
void pad3d_backward(float *dinp,       // (NC, D, H, W) +=
                    const float *dout, // (NC, OD, OH, OW)
                    const pad3d_dims *p);

void pad3d_forward_f64(double *out, const double *inp, const pad3d_dims *p);
void pad3d_backward_f64(double *dinp, const double *dout, const pad3d_dims *p);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/pad3d.cu): device pointers (p on the host),
 * same semantics; backward gathers per input voxel (deterministic, no
 * atomics). Return 0, or -1 with lsdm_err. */
int pad3d_forward_cuda(float *out, const float *inp, const pad3d_dims *p);
int pad3d_backward_cuda(float *dinp, const float *dout, const pad3d_dims *p);
#endif

#endif
