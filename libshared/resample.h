/* Voxel grids and moving volumes between them: nearest-neighbour
 * resampling through both grids' affines, crop/pad windows, and the affine
 * bookkeeping that keeps every voxel at its world position. Volumes are
 * D,H,W (W fastest) of any element size; outside the source is zero bytes
 * (label 0, background). */
#ifndef LSDM_RESAMPLE_H
#define LSDM_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* A grid: its shape (d, h, w) and the affine mapping a voxel index
 * (d, h, w, 1) to world millimetres (row-major 4x4, last row 0 0 0 1). */
typedef struct {
    int64_t dim[3];
    double affine[16];
} lsdm_grid;

/* out = a * b (4x4). out may alias neither input. */
void lsdm_mat4_mul(const double a[16], const double b[16], double out[16]);
/* Inverse of an affine 4x4 (last row 0 0 0 1); -1 if singular. */
int lsdm_mat4_inverse(const double a[16], double out[16]);

/* The grid of a record's last three dims: its affine key, else
 * diag(spacing), else the identity. -1 on a malformed key or singular affine. */
int lsdm_grid_from_record(const lsdm_record *r, lsdm_grid *g);
/* Spacing in mm of each axis: the lengths of the affine's columns. */
void lsdm_grid_spacing(const lsdm_grid *g, double sp[3]);
/* A grid with the orientation of `in` and the same world centre, given
 * its shape or spacing or both: a dim of 0 keeps the extent (dim =
 * round(in.dim * in.spacing / spacing)), a spacing of 0 likewise
 * (spacing = in.dim * in.spacing / dim). dim or sp may be NULL. */
int lsdm_grid_respace(const lsdm_grid *in, const int64_t dim[3], const double sp[3], lsdm_grid *out);
/* The window of `in` of shape dim whose voxel 0 is in's voxel off (off may
 * be negative or reach past the end: padding). World positions are kept:
 * A_out = A_in * translate(off). */
void lsdm_grid_window(const lsdm_grid *in, const int64_t off[3], const int64_t dim[3], lsdm_grid *out);
/* Offset that centres a window of dim in in_dim: floor((in - dim) / 2). */
void lsdm_grid_centre_offset(const int64_t in_dim[3], const int64_t dim[3], int64_t off[3]);

/* dst (grid gd) <- src (grid gs), nearest neighbour: for each output voxel,
 * world = A_dst * (d,h,w,1), source index = round(A_src^-1 * world);
 * outside -> zero. Halves round up, with a 1e-6 voxel tolerance so that
 * rounding noise in the affines never flips a voxel (equal grids copy
 * exactly). elem: bytes per voxel. */
int lsdm_resample_nearest(const void *src, const lsdm_grid *gs, void *dst, const lsdm_grid *gd, size_t elem);
/* dst[d][h][w] = src[d+off0][h+off1][w+off2], zero outside src. */
void lsdm_window_copy(const void *src, const int64_t sdim[3], const int64_t off[3],
                      void *dst, const int64_t ddim[3], size_t elem);

#endif
