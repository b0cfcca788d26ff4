#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "err.h"
#include "outfile.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "lsdm streams are little-endian and are read and written in place"
#endif

/* Record layout (uncompressed content of one zstd frame):
 *   0  "LSDM"   magic
 *   4  u8       version
 *   5  u8       kind: 0 tensor, 1 end-of-stream
 *   6  u16      reserved, 0
 *   8  u32      header_len: bytes of header text plus NUL padding, so that
 *               the data starts at 16 + header_len, a multiple of 64
 *  12  u32      reserved, 0
 *  16  text     "key: value\n" lines, "END\n", NUL padding
 *  ..  data     the tensor, little-endian, C order */
enum { PREFIX_LEN = 16, KIND_TENSOR = 0, KIND_END = 1, MAX_HEADER = 1 << 20, FRAME_HEADER_MAX = 18 };

static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get_u32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031 /* Linux; <fcntl.h> shows it only with _GNU_SOURCE */
#endif

/* A pipe holds 64 KiB by default, less than one compressed block of a
 * volume, so writer and reader would wait for each other on every block.
 * Ask for 1 MiB (the default /proc/sys/fs/pipe-max-size); where that is
 * refused, or the FILE is not a pipe, nothing changes. */
static void pipe_grow(FILE *f) {
#ifdef __linux__
    struct stat st;
    int fd = fileno(f);
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) fcntl(fd, F_SETPIPE_SZ, 1 << 20);
#else
    (void)f;
#endif
}

/* ---------------------------------------------------------------- writer */

struct lsdm_writer {
    lsdm_outfile out;
    ZSTD_CCtx *cctx;
    uint8_t *obuf;
    size_t obuf_size;
    char *hdr;      /* prefix + header text of the record being written */
    size_t hdr_cap;
    long count;     /* records since the last end-of-stream record */
};

lsdm_writer *lsdm_writer_open(const char *path, int level, int force) {
    lsdm_writer *w = calloc(1, sizeof *w);
    if (!w) { lsdm_err("out of memory"); return NULL; }
    if (lsdm_outfile_open(&w->out, path, 1, force)) { free(w); return NULL; }
    pipe_grow(w->out.f);
    w->cctx = ZSTD_createCCtx();
    w->obuf_size = ZSTD_CStreamOutSize();
    w->obuf = malloc(w->obuf_size);
    if (!w->cctx || !w->obuf) { lsdm_err("out of memory"); lsdm_writer_abort(w); return NULL; }
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level ? level : LSDM_DEFAULT_LEVEL);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1);
    return w;
}

static int hdr_append(lsdm_writer *w, size_t *len, const char *a, const char *b, const char *c) {
    size_t need = strlen(a) + strlen(b) + strlen(c);
    if (*len + need + 64 > w->hdr_cap) {
        size_t cap = (*len + need + 64) * 2;
        char *p = realloc(w->hdr, cap);
        if (!p) return lsdm_err("out of memory");
        w->hdr = p;
        w->hdr_cap = cap;
    }
    *len += (size_t)sprintf(w->hdr + *len, "%s%s%s", a, b, c);
    return 0;
}

static int write_out(lsdm_writer *w, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, w->out.f) != n)
        return lsdm_err("write failed: %s", errno ? strerror(errno) : "short write");
    return 0;
}

/* Compress hdr[0..hdr_len) + data[0..nbytes) as one frame. */
static int write_frame(lsdm_writer *w, size_t hdr_len, const void *data, size_t nbytes) {
    ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_only);
    ZSTD_CCtx_setPledgedSrcSize(w->cctx, (unsigned long long)(hdr_len + nbytes));
    ZSTD_inBuffer parts[2] = {{w->hdr, hdr_len, 0}, {data, nbytes, 0}};
    for (int i = 0; i < 2; i++) {
        ZSTD_EndDirective mode = i == 1 ? ZSTD_e_end : ZSTD_e_continue;
        for (;;) {
            ZSTD_outBuffer ob = {w->obuf, w->obuf_size, 0};
            size_t rem = ZSTD_compressStream2(w->cctx, &ob, &parts[i], mode);
            if (ZSTD_isError(rem)) return lsdm_err("compression failed: %s", ZSTD_getErrorName(rem));
            if (write_out(w, w->obuf, ob.pos)) return -1;
            if (mode == ZSTD_e_end ? rem == 0 : parts[i].pos == parts[i].size) break;
        }
    }
    return 0;
}

static int begin_header(lsdm_writer *w, size_t *len, int kind) {
    if (!w->hdr && !(w->hdr = malloc(w->hdr_cap = 4096))) return lsdm_err("out of memory");
    memset(w->hdr, 0, PREFIX_LEN);
    memcpy(w->hdr, "LSDM", 4);
    w->hdr[4] = LSDM_STREAM_VERSION;
    w->hdr[5] = (char)kind;
    *len = PREFIX_LEN;
    return 0;
}

static int end_header(lsdm_writer *w, size_t *len) {
    if (hdr_append(w, len, "END\n", "", "")) return -1;
    size_t padded = (*len + 63) & ~(size_t)63;
    memset(w->hdr + *len, 0, padded - *len);
    put_u32((uint8_t *)w->hdr + 8, (uint32_t)(padded - PREFIX_LEN));
    *len = padded;
    return 0;
}

int lsdm_writer_put(lsdm_writer *w, const lsdm_record *r) {
    if (lsdm_record_validate(r)) return -1;
    char shape[LSDM_MAX_DIMS * 24];
    lsdm_shape_format(shape, sizeof shape, r->ndim, r->shape);
    size_t len;
    if (begin_header(w, &len, KIND_TENSOR)) return -1;
    if (hdr_append(w, &len, "dtype: ", lsdm_dtype_name(r->dtype), "\n")) return -1;
    if (hdr_append(w, &len, "shape: ", shape, "\n")) return -1;
    for (int i = 0; i < r->nkv; i++) {
        if (hdr_append(w, &len, r->kv[i].key, ": ", r->kv[i].value)) return -1;
        if (hdr_append(w, &len, "\n", "", "")) return -1;
        if (len > MAX_HEADER / 2) return lsdm_err("record header too large");
    }
    if (end_header(w, &len)) return -1;
    if (write_frame(w, len, r->data, r->nbytes)) return -1;
    w->count++;
    return 0;
}

int lsdm_writer_close(lsdm_writer *w) {
    size_t len;
    char count[32];
    snprintf(count, sizeof count, "%ld", w->count);
    int rc = begin_header(w, &len, KIND_END);
    if (!rc) rc = hdr_append(w, &len, "records: ", count, "\n");
    if (!rc) rc = end_header(w, &len);
    if (!rc) rc = write_frame(w, len, NULL, 0);
    if (!rc) rc = lsdm_outfile_commit(&w->out);
    else lsdm_outfile_abort(&w->out);
    ZSTD_freeCCtx(w->cctx);
    free(w->obuf);
    free(w->hdr);
    free(w);
    return rc;
}

void lsdm_writer_abort(lsdm_writer *w) {
    if (!w) return;
    lsdm_outfile_abort(&w->out);
    ZSTD_freeCCtx(w->cctx);
    free(w->obuf);
    free(w->hdr);
    free(w);
}

/* ---------------------------------------------------------------- reader */

struct lsdm_reader {
    FILE *f;
    int own_file;
    char *label;
    ZSTD_DCtx *dctx;
    uint8_t *in;
    size_t in_cap, in_pos, in_end;
    int eof;
    long count;       /* records returned */
    long seg_count;   /* records since the last end-of-stream record */
    int at_end;       /* the last frame read was an end-of-stream record */
    int any_frame;
    int frame_done;   /* the decoder has reported the end of the current frame */
    void *spare;      /* mapping of the previous record's data, kept for the next */
    size_t spare_len; /* its length (lsdm_record.mapped), 0 if none */
};

lsdm_reader *lsdm_reader_open_file(FILE *f, const char *label) {
    lsdm_reader *rd = calloc(1, sizeof *rd);
    if (!rd) { lsdm_err("out of memory"); return NULL; }
    rd->f = f;
    pipe_grow(f);
    rd->label = strdup(label ? label : "-");
    rd->dctx = ZSTD_createDCtx();
    rd->in_cap = ZSTD_DStreamInSize();
    rd->in = malloc(rd->in_cap);
    if (!rd->label || !rd->dctx || !rd->in) { lsdm_err("out of memory"); lsdm_reader_close(rd); return NULL; }
    return rd;
}

lsdm_reader *lsdm_reader_open(const char *path) {
    FILE *f;
    if (!path || strcmp(path, "-") == 0) {
        if (isatty(STDIN_FILENO)) {
            lsdm_err("refusing to read a binary stream from a terminal (pipe one in, or name a file)");
            return NULL;
        }
        f = stdin;
        path = "-";
    } else if (!(f = fopen(path, "rb"))) {
        lsdm_err("%s: %s", path, strerror(errno));
        return NULL;
    }
    lsdm_reader *rd = lsdm_reader_open_file(f, path);
    if (rd) rd->own_file = f != stdin;
    else if (f != stdin) fclose(f);
    return rd;
}

void lsdm_reader_close(lsdm_reader *rd) {
    if (!rd) return;
    if (rd->own_file) fclose(rd->f);
    if (rd->spare_len) munmap(rd->spare, rd->spare_len);
    ZSTD_freeDCtx(rd->dctx);
    free(rd->in);
    free(rd->label);
    free(rd);
}

long lsdm_reader_count(const lsdm_reader *rd) { return rd->count; }

int lsdm_reader_unread(lsdm_reader *rd, const void *buf, size_t n) {
    if (rd->in_end != 0 || rd->any_frame || n > rd->in_cap) return lsdm_err("cannot push back %zu bytes", n);
    memcpy(rd->in, buf, n);
    rd->in_end = n;
    return 0;
}

static int rd_err(lsdm_reader *rd, const char *what) {
    const char *name = strcmp(rd->label, "-") ? rd->label : "stdin";
    char copy[512]; /* `what` may be the error buffer itself */
    snprintf(copy, sizeof copy, "%s", what);
    return lsdm_err("%s: record %ld: %s", name, rd->count + 1, copy);
}

/* Make at least `want` bytes available if the input has them. */
static int fill(lsdm_reader *rd, size_t want) {
    if (rd->in_end - rd->in_pos >= want || rd->eof) return 0;
    memmove(rd->in, rd->in + rd->in_pos, rd->in_end - rd->in_pos);
    rd->in_end -= rd->in_pos;
    rd->in_pos = 0;
    while (rd->in_end < want && !rd->eof) {
        size_t n = fread(rd->in + rd->in_end, 1, rd->in_cap - rd->in_end, rd->f);
        rd->in_end += n;
        if (n == 0) {
            if (ferror(rd->f)) return rd_err(rd, strerror(errno));
            rd->eof = 1;
        }
    }
    return 0;
}

/* Decompress exactly n bytes of the current frame into dst. */
/* One call of the decoder on the input at hand. */
static int inflate_step(lsdm_reader *rd, ZSTD_outBuffer *ob, size_t *ret) {
    ZSTD_inBuffer ib = {rd->in, rd->in_end, rd->in_pos};
    *ret = ZSTD_decompressStream(rd->dctx, ob, &ib);
    rd->in_pos = ib.pos;
    if (!ZSTD_isError(*ret)) return 0;
    char msg[160];
    snprintf(msg, sizeof msg, "corrupt stream (%s)", ZSTD_getErrorName(*ret));
    return rd_err(rd, msg);
}

static int inflate_exact(lsdm_reader *rd, void *dst, size_t n) {
    ZSTD_outBuffer ob = {dst, n, 0};
    while (ob.pos < ob.size) {
        if (rd->in_pos == rd->in_end) {
            if (fill(rd, 1)) return -1;
            if (rd->in_pos == rd->in_end) return rd_err(rd, "truncated stream (input ends inside a record)");
        }
        size_t ret;
        if (inflate_step(rd, &ob, &ret)) return -1;
        if (ret == 0) {
            if (ob.pos < ob.size) return rd_err(rd, "corrupt stream (record shorter than its header says)");
            rd->frame_done = 1;
        }
    }
    return 0;
}

/* Consume the rest of the frame: its checksum is verified here. */
static int finish_frame(lsdm_reader *rd) {
    uint8_t extra;
    /* the decoder returns 0 exactly once per frame; asking again would start the next one */
    while (!rd->frame_done) {
        ZSTD_outBuffer ob = {&extra, 1, 0};
        if (rd->in_pos == rd->in_end && fill(rd, 1)) return -1;
        size_t ret;
        if (inflate_step(rd, &ob, &ret)) return -1;
        if (ob.pos) return rd_err(rd, "corrupt stream (record longer than its header says)");
        if (ret == 0) break;
        if (rd->in_pos == rd->in_end && rd->eof) return rd_err(rd, "truncated stream (input ends inside a record)");
    }
    return 0;
}

/* Parse header text into r (dtype, shape and keys). */
static int parse_header(lsdm_reader *rd, char *text, size_t len, lsdm_record *r, int kind, long *eos_count) {
    text[len] = 0;
    int have_dtype = 0, have_shape = 0, ended = 0;
    char *line = text;
    while (*line) {
        char *nl = strchr(line, '\n');
        if (!nl) return rd_err(rd, "corrupt header (line without newline)");
        *nl = 0;
        if (strcmp(line, "END") == 0) { ended = 1; line = nl + 1; break; }
        char *colon = strstr(line, ": ");
        if (!colon) return rd_err(rd, "corrupt header (line is not 'key: value')");
        *colon = 0;
        const char *key = line, *val = colon + 2;
        if (kind == KIND_END) {
            if (strcmp(key, "records") == 0) *eos_count = strtol(val, NULL, 10);
        } else if (strcmp(key, "dtype") == 0) {
            if (lsdm_dtype_parse(val, &r->dtype)) return rd_err(rd, "unknown dtype in header");
            have_dtype = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (lsdm_shape_parse(val, &r->ndim, r->shape)) return rd_err(rd, lsdm_err_msg());
            have_shape = 1;
        } else if (lsdm_record_set(r, key, val)) {
            return rd_err(rd, lsdm_err_msg());
        }
        line = nl + 1;
    }
    if (!ended) return rd_err(rd, "corrupt header (no END line)");
    for (char *p = line; p < text + len; p++)
        if (*p) return rd_err(rd, "corrupt header (bytes after END)");
    if (kind == KIND_TENSOR && (!have_dtype || !have_shape)) return rd_err(rd, "header lacks dtype or shape");
    return 0;
}

/* Read one frame. Returns 1 tensor record, 2 end-of-stream, 0 EOF, -1 error. */
static int read_frame(lsdm_reader *rd, lsdm_record *r) {
    if (fill(rd, FRAME_HEADER_MAX)) return -1;
    size_t avail = rd->in_end - rd->in_pos;
    if (avail == 0) return 0;
    const uint8_t *h = rd->in + rd->in_pos;
    if (avail < 5 || get_u32(h) != ZSTD_MAGICNUMBER) {
        if (!rd->any_frame) return rd_err(rd, "not a tensor stream (bad magic)");
        return rd_err(rd, avail < 5 ? "truncated stream (input ends inside a record)" : "corrupt stream (bad frame header)");
    }
    /* bit 2 of the frame header descriptor: content checksum present */
    if (!(h[4] & 0x04)) return rd_err(rd, "not a tensor stream (frame without checksum)");
    unsigned long long content = ZSTD_getFrameContentSize(h, avail);
    if (content == ZSTD_CONTENTSIZE_ERROR) return rd_err(rd, "truncated or corrupt frame header");
    if (content == ZSTD_CONTENTSIZE_UNKNOWN) return rd_err(rd, "not a tensor stream (frame without content size)");
    if (content < 64) return rd_err(rd, rd->any_frame ? "corrupt stream (record too small)" : "not a tensor stream (bad magic)");
    ZSTD_DCtx_reset(rd->dctx, ZSTD_reset_session_only);
    rd->frame_done = 0;

    uint8_t prefix[PREFIX_LEN];
    if (inflate_exact(rd, prefix, PREFIX_LEN)) return -1;
    if (memcmp(prefix, "LSDM", 4) != 0) return rd_err(rd, "not a tensor stream (bad magic)");
    rd->any_frame = 1;
    if (prefix[4] != LSDM_STREAM_VERSION) return rd_err(rd, "unsupported stream version");
    int kind = prefix[5];
    if (kind != KIND_TENSOR && kind != KIND_END) return rd_err(rd, "corrupt stream (unknown record kind)");
    uint32_t hlen = get_u32(prefix + 8);
    if (hlen > MAX_HEADER || (PREFIX_LEN + hlen) % 64 != 0 || PREFIX_LEN + (unsigned long long)hlen > content)
        return rd_err(rd, "corrupt stream (bad header length)");

    char *text = malloc(hlen + 1);
    if (!text) return rd_err(rd, "out of memory");
    long eos_count = -1;
    int rc = inflate_exact(rd, text, hlen);
    if (!rc) rc = parse_header(rd, text, hlen, r, kind, &eos_count);
    free(text);
    if (rc) return -1;

    if (kind == KIND_END) {
        if (content != PREFIX_LEN + hlen) return rd_err(rd, "corrupt stream (end record with data)");
        if (finish_frame(rd)) return -1;
        if (eos_count != rd->seg_count) return rd_err(rd, "corrupt stream (end record count does not match)");
        return 2;
    }
    size_t nbytes;
    if (lsdm_shape_bytes(r->ndim, r->shape, r->dtype, &nbytes)) return rd_err(rd, lsdm_err_msg());
    if (content != PREFIX_LEN + hlen + (unsigned long long)nbytes)
        return rd_err(rd, "corrupt stream (record size does not match its shape)");
    size_t padded = (nbytes + 63) & ~(size_t)63;
    if (rd->spare_len && rd->spare_len == padded) {
        /* the previous record's mapping fits: no new mapping, no page faults */
        r->data = rd->spare;
        r->mapped = rd->spare_len;
        r->nbytes = nbytes;
        rd->spare_len = 0;
        memset((char *)r->data + nbytes, 0, padded - nbytes);
    } else {
        if (rd->spare_len) munmap(rd->spare, rd->spare_len); /* never hold two */
        rd->spare_len = 0;
        /* dtype, ndim and shape came from the header; keep them across alloc */
        lsdm_dtype t = r->dtype;
        int ndim = r->ndim;
        int64_t shape[LSDM_MAX_DIMS];
        memcpy(shape, r->shape, sizeof shape);
        if (lsdm_record_alloc(r, t, ndim, shape)) return rd_err(rd, lsdm_err_msg());
    }
    if (inflate_exact(rd, r->data, nbytes) || finish_frame(rd)) return -1;
    if (lsdm_record_validate(r)) return rd_err(rd, lsdm_err_msg());
    return 1;
}

/* Take r's data, when it is a mapping of its own (a large tensor), to be
 * reused by the next record of the same size: a stream of equal volumes
 * then maps memory once instead of once per record. */
static void spare_take(lsdm_reader *rd, lsdm_record *r) {
    if (!r->mapped || !r->data || r->mapped != ((r->nbytes + 63) & ~(size_t)63)) return;
    if (rd->spare_len) munmap(rd->spare, rd->spare_len);
    rd->spare = r->data;
    rd->spare_len = r->mapped;
    r->data = NULL;
    r->nbytes = r->mapped = 0;
}

int lsdm_reader_next(lsdm_reader *rd, lsdm_record *r) {
    spare_take(rd, r);
    for (;;) {
        lsdm_record_free(r);
        int rc = read_frame(rd, r);
        if (rc < 0) { lsdm_record_free(r); return -1; }
        if (rc == 0) {
            if (!rd->any_frame) return rd_err(rd, "empty input (no tensor stream)");
            if (!rd->at_end)
                return rd_err(rd, "stream ends without its end-of-stream record (producer failed or output truncated)");
            return 0;
        }
        if (rc == 2) { rd->at_end = 1; rd->seg_count = 0; continue; } /* concatenated streams go on */
        rd->at_end = 0;
        rd->seg_count++;
        rd->count++;
        return 1;
    }
}
