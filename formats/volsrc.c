/* Any volume input, sniffed from its first bytes:
 *   zstd frame whose content starts "LSDM"  -> tensor stream (records pass)
 *   sizeof_hdr 348/540, plain or in gzip     -> one NIfTI volume
 *   a directory                              -> its *.nii, *.nii.gz by name
 *   anything else                            -> an archive, via libarchive
 * (a .tar.zst and a stream both start with a zstd frame, a .tar.gz and a
 * .nii.gz both with gzip, hence the peek into the decompressed content).
 * Sniffed bytes are replayed through a cookie FILE, so a pipe is read once. */
#define _GNU_SOURCE /* fopencookie */
#include "volsrc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "err.h"
#include "stream.h"
#include "volarchive.h"

enum { SRC_STREAM, SRC_NIFTI, SRC_DIR, SRC_ARCHIVE };
enum { SNIFF_MAX = 1 << 18 }; /* > one zstd block (128 KiB): enough to see content */

/* ---------------------------------------------------------------- replay */

typedef struct {
    uint8_t *buf;
    size_t n, pos;
    FILE *f;
    int own, eof;
} replay;

static ssize_t replay_read(void *cookie, char *out, size_t n) {
    replay *rp = cookie;
    if (rp->pos < rp->n) {
        size_t k = rp->n - rp->pos < n ? rp->n - rp->pos : n;
        memcpy(out, rp->buf + rp->pos, k);
        rp->pos += k;
        return (ssize_t)k;
    }
    size_t k = fread(out, 1, n, rp->f);
    return k == 0 && ferror(rp->f) ? -1 : (ssize_t)k;
}

static int replay_close(void *cookie) {
    replay *rp = cookie;
    if (rp->own) fclose(rp->f);
    free(rp->buf);
    free(rp);
    return 0;
}

/* Read until rp holds `want` bytes or the input ends. */
static int replay_fill(replay *rp, size_t want, const char *label) {
    if (want > SNIFF_MAX) want = SNIFF_MAX;
    if (rp->n >= want || rp->eof) return 0;
    uint8_t *p = realloc(rp->buf, want);
    if (!p) return lsdm_err("out of memory");
    rp->buf = p;
    while (rp->n < want) {
        size_t k = fread(rp->buf + rp->n, 1, want - rp->n, rp->f);
        if (k == 0) {
            if (ferror(rp->f)) return lsdm_err("%s: read error: %s", label, strerror(errno));
            rp->eof = 1;
            break;
        }
        rp->n += k;
    }
    return 0;
}

/* The first 4 bytes of the decompressed content (got < 4 if unknown). */
static size_t peek_zstd(const replay *rp, uint8_t out[4]) {
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d) return 0;
    ZSTD_inBuffer in = {rp->buf, rp->n, 0};
    ZSTD_outBuffer ob = {out, 4, 0};
    while (ob.pos < 4 && in.pos < in.size) {
        size_t before = in.pos;
        if (ZSTD_isError(ZSTD_decompressStream(d, &ob, &in)) || in.pos == before) break;
    }
    ZSTD_freeDCtx(d);
    return ob.pos;
}

static size_t peek_gzip(const replay *rp, uint8_t out[4]) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) return 0;
    z.next_in = rp->buf;
    z.avail_in = (uInt)rp->n;
    z.next_out = out;
    z.avail_out = 4;
    while (z.avail_out && inflate(&z, Z_NO_FLUSH) == Z_OK) {}
    size_t got = 4 - z.avail_out;
    inflateEnd(&z);
    return got;
}

/* What the bytes are; reads more of the input as the decision needs. */
static int sniff(replay *rp, const char *label, int *kind) {
    if (replay_fill(rp, 4096, label)) return -1;
    if (rp->n == 0) return lsdm_err("%s: empty input", label);
    static const uint8_t zstd_magic[4] = {0x28, 0xb5, 0x2f, 0xfd};
    uint8_t head[4];
    int zstd = rp->n >= 4 && memcmp(rp->buf, zstd_magic, 4) == 0;
    int gz = rp->n >= 2 && rp->buf[0] == 0x1f && rp->buf[1] == 0x8b;
    for (;;) {
        size_t got = zstd ? peek_zstd(rp, head) : gz ? peek_gzip(rp, head) : rp->n;
        if (got >= 4 || rp->eof || rp->n >= SNIFF_MAX) {
            if (!zstd && !gz) memcpy(head, rp->buf, rp->n < 4 ? rp->n : 4);
            /* a zstd input cut or damaged before its first bytes: most
             * likely a stream, whose reader says what is wrong with it */
            if (zstd && (got < 4 || memcmp(head, "LSDM", 4) == 0)) *kind = SRC_STREAM;
            else if (!zstd && got >= 4 && lsdm_nifti_sniff(head, 4)) *kind = SRC_NIFTI;
            else if (lsdm_nifti_is_name(label)) *kind = SRC_NIFTI; /* let the decoder say what is wrong */
            else *kind = SRC_ARCHIVE;
            return 0;
        }
        if (replay_fill(rp, rp->n * 4, label)) return -1;
    }
}

/* ---------------------------------------------------------------- volsrc */

struct lsdm_volsrc {
    int kind, done;
    char *path, *label;
    lsdm_nifti_opts opts;
    FILE *f;          /* the replaying FILE (owns the replay) */
    int regular;      /* path is a regular file: NIfTI mapped, archive seekable */
    lsdm_reader *rd;
    uint8_t *mem;     /* a NIfTI volume read from a pipe */
    size_t mem_n;
    char **names;     /* directory entries, sorted */
    size_t nnames, next;
    lsdm_volarchive *ar;
};

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int open_dir(lsdm_volsrc *s) {
    DIR *d = opendir(s->path);
    if (!d) return lsdm_err("%s: %s", s->path, strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !lsdm_nifti_is_name(e->d_name)) continue;
        if (s->nnames == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(s->names, cap * sizeof *p);
            if (!p) { closedir(d); return lsdm_err("out of memory"); }
            s->names = p;
        }
        if (!(s->names[s->nnames] = strdup(e->d_name))) { closedir(d); return lsdm_err("out of memory"); }
        s->nnames++;
    }
    closedir(d);
    if (s->nnames == 0) return lsdm_err("%s: no NIfTI volume (.nii, .nii.gz) in the directory", s->path);
    qsort(s->names, s->nnames, sizeof *s->names, cmp_names);
    return 0;
}

/* Everything left on the input (a NIfTI volume from a pipe). */
static int slurp(lsdm_volsrc *s) {
    size_t cap = 1 << 20, limit = lsdm_max_bytes() + (1 << 20);
    s->mem = malloc(cap);
    if (!s->mem) return lsdm_err("out of memory");
    for (;;) {
        if (s->mem_n == cap) {
            uint8_t *p = cap * 2 <= limit ? realloc(s->mem, cap * 2) : NULL;
            if (!p) return lsdm_err("%s: input too large or out of memory", s->label);
            s->mem = p;
            cap *= 2;
        }
        size_t k = fread(s->mem + s->mem_n, 1, cap - s->mem_n, s->f);
        if (k == 0) break;
        s->mem_n += k;
    }
    if (ferror(s->f)) return lsdm_err("%s: read error: %s", s->label, strerror(errno));
    return 0;
}

static int open_input(lsdm_volsrc *s) {
    FILE *in = stdin;
    struct stat st;
    if (strcmp(s->path, "-") == 0) {
        if (isatty(STDIN_FILENO)) return lsdm_err("refusing to read volumes from a terminal (pipe them in, or name a file)");
    } else {
        if (stat(s->path, &st) != 0) return lsdm_err("%s: %s", s->path, strerror(errno));
        if (S_ISDIR(st.st_mode)) { s->kind = SRC_DIR; return open_dir(s); }
        s->regular = S_ISREG(st.st_mode);
        if (!(in = fopen(s->path, "rb"))) return lsdm_err("%s: %s", s->path, strerror(errno));
    }
    replay *rp = calloc(1, sizeof *rp);
    if (!rp) { if (in != stdin) fclose(in); return lsdm_err("out of memory"); }
    rp->f = in;
    rp->own = in != stdin;
    cookie_io_functions_t io = {replay_read, NULL, NULL, replay_close};
    if (!(s->f = fopencookie(rp, "rb", io))) { replay_close(rp); return lsdm_err("out of memory"); }
    if (sniff(rp, s->label, &s->kind)) return -1;
    switch (s->kind) {
    case SRC_STREAM:
        return (s->rd = lsdm_reader_open_file(s->f, s->path)) ? 0 : -1;
    case SRC_NIFTI:
        if (s->regular) { fclose(s->f); s->f = NULL; return 0; } /* mapped when read */
        return slurp(s);
    default:
        if (s->regular) { fclose(s->f); s->f = NULL; }
        return (s->ar = lsdm_volarchive_open(s->regular ? s->path : NULL, s->f, s->label)) ? 0 : -1;
    }
}

lsdm_volsrc *lsdm_volsrc_open(const char *path, const lsdm_nifti_opts *o) {
    lsdm_volsrc *s = calloc(1, sizeof *s);
    if (!s) { lsdm_err("out of memory"); return NULL; }
    if (!path) path = "-";
    s->path = strdup(path);
    s->label = strdup(strcmp(path, "-") ? path : "stdin");
    if (o) s->opts = *o;
    if (!s->path || !s->label) { lsdm_err("out of memory"); lsdm_volsrc_close(s); return NULL; }
    if (open_input(s)) { lsdm_volsrc_close(s); return NULL; }
    return s;
}

int lsdm_volsrc_next(lsdm_volsrc *s, lsdm_record *r) {
    /* the stream reader frees r itself, reusing its tensor memory */
    if (s->kind == SRC_STREAM) return lsdm_reader_next(s->rd, r);
    lsdm_record_free(r);
    switch (s->kind) {
    case SRC_ARCHIVE:
        return lsdm_volarchive_next(s->ar, &s->opts, r);
    case SRC_DIR: {
        if (s->next == s->nnames) return 0;
        const char *name = s->names[s->next++];
        size_t n = strlen(s->path) + strlen(name) + 2;
        char *p = malloc(n);
        if (!p) return lsdm_err("out of memory");
        snprintf(p, n, "%s%s%s", s->path, s->path[strlen(s->path) - 1] == '/' ? "" : "/", name);
        int rc = lsdm_nifti_read_file(p, &s->opts, r);
        free(p);
        return rc ? -1 : 1;
    }
    default:
        if (s->done) return 0;
        s->done = 1;
        if (s->regular) return lsdm_nifti_read_file(s->path, &s->opts, r) ? -1 : 1;
        if (lsdm_nifti_decode(s->mem, s->mem_n, s->label, &s->opts, r)) return lsdm_err_ctx("%s", s->label);
        return 1;
    }
}

int lsdm_volsrc_is_stream(const lsdm_volsrc *s) { return s->kind == SRC_STREAM; }

void lsdm_volsrc_close(lsdm_volsrc *s) {
    if (!s) return;
    lsdm_reader_close(s->rd);
    lsdm_volarchive_close(s->ar);
    if (s->f) fclose(s->f);
    for (size_t i = 0; i < s->nnames; i++) free(s->names[i]);
    free(s->names);
    free(s->mem);
    free(s->path);
    free(s->label);
    free(s);
}
