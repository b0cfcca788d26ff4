/* Semantic maps (mask2sem's output) as the models take them: f32 one-hot
 * (L, D,H,W). A record is either one-hot already (L channels, any dtype)
 * or class indices (1 channel, integer dtype), expanded here. */
#ifndef LSDM_SEMANTIC_H
#define LSDM_SEMANTIC_H

#include <stdint.h>

#include "record.h"

/* The one-hot map of record s with L classes; caller frees. dim: the
 * grid it must have (NULL: any); got (may be NULL) receives its grid.
 * NULL with lsdm_err on another shape, a class >= L or no memory. */
float *semantic_onehot(const lsdm_record *s, int L, const int64_t dim[3], int64_t got[3]);

#endif
