/* What vq-encode and vq-decode share: overlapping tiles with linear
 * blending, the latent grid's geometry, and the model digest that ties a
 * latent to the VQ-GAN that made it.
 *
 * Tiling is counted in latent voxels; the image side is the same tiles
 * times the downsampling f. Along each axis the volume is cut into cores
 * of `tile` voxels (the last one shorter), and each core is processed in
 * a window grown by `overlap` voxels on each side that has a neighbour,
 * so that no core sees the window's edge effects (padding) within
 * `overlap` voxels. Neighbouring windows share 2 overlap voxels, across
 * which their outputs are blended by linear ramps (separable over the
 * axes; weights summed and divided out). A volume of one tile has weight 1
 * everywhere: exactly the untiled result. Memory is bounded by a window,
 * tile + 2 overlap per axis, besides the output and weight volumes. */
#ifndef LSDM_VQTILE_H
#define LSDM_VQTILE_H

#include <stdint.h>

#include "record.h"
#include "vqgan.h"

typedef struct {
    int64_t dim[3];  /* volume, latent voxels (d,h,w) */
    int64_t tile[3]; /* core, latent voxels, clipped to dim */
    int count[3];    /* tiles per axis */
    int overlap;     /* latent voxels each window grows by */
} vq_tiling;

int vq_tiling_init(vq_tiling *t, const int64_t dim[3], const int64_t tile[3], int overlap);
int vq_tiling_count(const vq_tiling *t);
/* Tile i (0 <= i < count, depth-major): its window's offset and size in
 * latent voxels. */
void vq_tiling_get(const vq_tiling *t, int i, int64_t off[3], int64_t size[3]);

/* The blended output: acc (C, D,H,W) and the weight sums (D,H,W), on the
 * output side (latent for the encoder: scale 1; image for the decoder:
 * scale f per axis). */
typedef struct {
    float *acc, *wsum;
    int C;
    int64_t dim[3];
    int scale[3];
} vq_blend;

int vq_blend_init(vq_blend *b, int C, const int64_t dim[3], const int scale[3]);
/* acc += w * y, wsum += w for tile i of t; y (C, size*scale). */
int vq_blend_add(vq_blend *b, const vq_tiling *t, int i, const float *y);
/* acc /= wsum; the result stays in b->acc (the caller may take it: set
 * b->acc = NULL before vq_blend_free). */
void vq_blend_finish(vq_blend *b);
void vq_blend_free(vq_blend *b);
/* The end of a tiled pass: rc 0 finishes and hands over the blended volume
 * (the caller frees it), anything else drops it and gives NULL; b is
 * freed either way. */
float *vq_blend_take(vq_blend *b, int rc);

/* dst (C, size) <- src (C, dim) at off; the window lies inside src. */
void vq_window_copy(float *dst, const float *src, int C, const int64_t dim[3],
                    const int64_t off[3], const int64_t size[3]);

/* Geometry between an image and its latent grid (factors f, per axis
 * d,h,w): the latent affine's column a is the image's times f[a] and its
 * origin is the centre of the first f block (+ (f[a]-1)/2 voxel along
 * each axis a); spacing times f. Records without affine/spacing keys get
 * none. dst may be src. */
int vq_geometry_to_latent(lsdm_record *dst, const lsdm_record *src, const int f[3]);
int vq_geometry_to_image(lsdm_record *dst, const lsdm_record *src, const int f[3]);

/* 16 hex digits naming the model for latents: FNV-1a 64 of the config
 * text and the codebook (a latent means nothing to another codebook). */
void vq_model_digest(const vqgan *m, char out[17]);
/* vqgan_load (config: NULL or --config), then the digest and a one-line
 * description of the model for -v (line: static buffer). */
int vq_model_open(vqgan *m, const char *path, const char *config, char digest[17],
                  const char **line);

/* What vq-encode and vq-decode do first: pick the device (-v says which),
 * load the model (-v prints its line) and check the tile against its
 * downsampling. 0, or -1 with lsdm_err (nothing left to free). */
int vq_program_open(vqgan *m, const char *path, const char *config, const int64_t tile[3],
                    char digest[17]);

/* The --tile DxHxW (is_tile) or --overlap N option's value. 0, or -1 with lsdm_err. */
int vq_tile_option(int is_tile, const char *arg, int64_t tile[3], int *overlap);

#endif
