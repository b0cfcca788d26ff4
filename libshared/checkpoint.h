/* Model checkpoints as safetensors files. A model is a list of named
 * parameter tensors (names as in the PyTorch reference state_dict, see
 * tools/contrib/README.md); save writes them with metadata, load fills
 * them after checking that the file holds exactly these tensors with these
 * shapes and a float dtype, naming the first mismatch:
 *   checkpoint x.safetensors: tensor 'enc.conv1.weight' has shape
 *   16,1,3,3,3, model expects 16,1,4,4,4
 * Metadata keys used by the trainers: "config" (model configuration
 * text), "step", "rng" (RNG state); any others are kept. */
#ifndef LSDM_CHECKPOINT_H
#define LSDM_CHECKPOINT_H

#include <stdint.h>

#include "safetensors.h"

/* Tensors named CKPT_TRAIN_PREFIX... hold a trainer's state (optimizer
 * moments): loading a model skips them unless it lists them. */
#define CKPT_TRAIN_PREFIX "train_state."

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    float *data; /* not owned: the model's buffer */
} ckpt_param;

/* Metadata: string pairs, owned. */
typedef struct {
    char **key, **val;
    int n;
} ckpt_meta;

int ckpt_meta_set(ckpt_meta *m, const char *key, const char *val); /* replaces */
int ckpt_meta_setf(ckpt_meta *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Every pair of src (may be NULL) into dst. */
int ckpt_meta_copy(ckpt_meta *dst, const ckpt_meta *src);
const char *ckpt_meta_get(const ckpt_meta *m, const char *key);    /* NULL if absent */
void ckpt_meta_free(ckpt_meta *m);

size_t ckpt_param_numel(const ckpt_param *p);

/* Write every parameter as `dtype` (ST_F32, ST_F16 or ST_BF16), with
 * meta (may be NULL), atomically. */
int checkpoint_save(const char *path, const ckpt_param *p, int n, const ckpt_meta *meta, st_dtype dtype);

/* Fill every p[i].data from path; F16/BF16/F64 tensors are converted.
 * Missing, unexpected, wrongly shaped or non-float tensors are errors and
 * leave the model unchanged. If meta is not NULL it receives the file's
 * metadata (the caller frees it). */
int checkpoint_load(const char *path, const ckpt_param *p, int n, ckpt_meta *meta);

/* Copy checkpoint in to out without the tensors whose names start with one
 * of the ndrop prefixes (a trainer's state, discriminators): the file
 * inference needs, as shipped. Dtypes and metadata are kept; out is
 * written atomically. */
int checkpoint_export(const char *in, const char *out, const char *const *drop, int ndrop);

#endif
