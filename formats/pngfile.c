#include "pngfile.h"

#include <png.h>
#include <setjmp.h>
#include <string.h>

#include "err.h"
#include "outfile.h"

/* libpng reports errors by calling this and expects it never to return. */
static void png_on_error(png_structp png, png_const_charp msg) {
    lsdm_err("PNG: %s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (none expected when writing) are not errors */
}

/* Encode the picture to f. Nothing here changes after setjmp, so no local
 * needs to be volatile. */
static int png_encode(FILE *f, int width, int height, int channels, const uint8_t *pix, const char *comment) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_on_error, png_on_warning);
    if (!png) return lsdm_err("PNG: out of memory");
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_write_struct(&png, NULL); return lsdm_err("PNG: out of memory"); }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (comment) {
        png_text text;
        memset(&text, 0, sizeof text);
        text.compression = PNG_TEXT_COMPRESSION_NONE;
        text.key = (png_charp) "Comment";
        text.text = (png_charp)comment;
        png_set_text(png, info, &text, 1);
    }
    png_write_info(png, info);
    size_t stride = (size_t)width * (size_t)channels;
    for (int y = 0; y < height; y++) png_write_row(png, pix + (size_t)y * stride);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int lsdm_png_write(const char *path, int width, int height, int channels, const uint8_t *pix,
                   const char *comment, int force) {
    if (width < 1 || height < 1 || (channels != 1 && channels != 3))
        return lsdm_err("PNG: bad picture %dx%d with %d channels", width, height, channels);
    lsdm_outfile o;
    if (lsdm_outfile_open(&o, path, 1, force)) return -1;
    if (png_encode(o.f, width, height, channels, pix, comment)) {
        lsdm_outfile_abort(&o);
        return -1;
    }
    return lsdm_outfile_commit(&o);
}
