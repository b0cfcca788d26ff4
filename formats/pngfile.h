/* 8-bit PNG pictures through libpng, written atomically (lsdm_outfile).
 * (Not named png.h: that would hide libpng's own header on -Iformats.) */
#ifndef LSDM_PNGFILE_H
#define LSDM_PNGFILE_H

#include <stdint.h>

/* Write a width x height picture: channels 1 (grey) or 3 (RGB), rows top
 * to bottom, pix[(y * width + x) * channels + c]. comment (may be NULL)
 * goes into a tEXt "Comment" chunk. path "-" is standard output (a
 * terminal refused unless force). The target is replaced only on success. */
int lsdm_png_write(const char *path, int width, int height, int channels, const uint8_t *pix,
                   const char *comment, int force);

#endif
