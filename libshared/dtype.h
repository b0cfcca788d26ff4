/* Element types of the tensor stream and conversions between them. */
#ifndef LSDM_DTYPE_H
#define LSDM_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    LSDM_U8, LSDM_I16, LSDM_I32, LSDM_F16, LSDM_BF16, LSDM_F32, LSDM_DTYPE_COUNT
} lsdm_dtype;

const char *lsdm_dtype_name(lsdm_dtype t);
int lsdm_dtype_parse(const char *s, lsdm_dtype *out); /* 0 ok, -1 unknown */
size_t lsdm_dtype_size(lsdm_dtype t);
int lsdm_dtype_is_float(lsdm_dtype t);

float lsdm_f16_to_f32(uint16_t h);
uint16_t lsdm_f32_to_f16(float f);   /* round to nearest even */
float lsdm_bf16_to_f32(uint16_t h);
uint16_t lsdm_f32_to_bf16(float f);  /* round to nearest even */

/* Element i of a buffer of type t, as double. */
double lsdm_elem_get(const void *buf, lsdm_dtype t, size_t i);
/* dst[0..n) (f32) <- src[0..n) of type t. */
void lsdm_convert_to_f32(float *dst, const void *src, lsdm_dtype t, size_t n);
/* dst[0..n) of type t <- src[0..n) (f32); integers round to nearest and
 * saturate. Returns -1 (with lsdm_err) if any value is NaN. */
int lsdm_convert_from_f32(void *dst, lsdm_dtype t, const float *src, size_t n);

#endif
