#include "volarchive.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct lsdm_volarchive {
    struct archive *ar;
    char *label;
    long entries, volumes;
};

lsdm_volarchive *lsdm_volarchive_open(const char *path, FILE *f, const char *label) {
    lsdm_volarchive *a = calloc(1, sizeof *a);
    if (!a || !(a->label = strdup(label)) || !(a->ar = archive_read_new())) {
        lsdm_err("out of memory");
        lsdm_volarchive_close(a);
        return NULL;
    }
    archive_read_support_filter_all(a->ar);
    archive_read_support_format_tar(a->ar);
    archive_read_support_format_zip(a->ar);
    int rc = path ? archive_read_open_filename(a->ar, path, 1 << 16) : archive_read_open_FILE(a->ar, f);
    if (rc != ARCHIVE_OK) {
        lsdm_err("%s: not a tensor stream, NIfTI file or known archive (%s)", label, archive_error_string(a->ar));
        lsdm_volarchive_close(a);
        return NULL;
    }
    return a;
}

void lsdm_volarchive_close(lsdm_volarchive *a) {
    if (!a) return;
    if (a->ar) archive_read_free(a->ar);
    free(a->label);
    free(a);
}

/* The current entry's bytes. The declared size is checked against the
 * limit before allocating; an entry without one grows as read. */
static int read_entry(lsdm_volarchive *a, struct archive_entry *e, const char *name, uint8_t **buf, size_t *n) {
    size_t limit = lsdm_max_bytes() + (1 << 20), cap = 1 << 20, len = 0;
    if (archive_entry_size_is_set(e)) {
        int64_t sz = archive_entry_size(e);
        if (sz < 0 || (uint64_t)sz > limit) return lsdm_err("%s: %s: entry too large", a->label, name);
        cap = (size_t)sz + 1;
    }
    uint8_t *p = malloc(cap);
    if (!p) return lsdm_err("%s: %s: out of memory", a->label, name);
    for (;;) {
        if (len == cap) {
            uint8_t *q = cap * 2 <= limit ? realloc(p, cap * 2) : NULL;
            if (!q) { free(p); return lsdm_err("%s: %s: entry too large or out of memory", a->label, name); }
            p = q;
            cap *= 2;
        }
        la_ssize_t k = archive_read_data(a->ar, p + len, cap - len);
        if (k < 0) {
            free(p);
            return lsdm_err("%s: %s: %s", a->label, name, archive_error_string(a->ar));
        }
        if (k == 0) break;
        len += (size_t)k;
    }
    *buf = p;
    *n = len;
    return 0;
}

int lsdm_volarchive_next(lsdm_volarchive *a, const lsdm_nifti_opts *o, lsdm_record *r) {
    lsdm_record_free(r);
    for (;;) {
        struct archive_entry *e;
        int rc = archive_read_next_header(a->ar, &e);
        if (rc == ARCHIVE_EOF) {
            if (a->volumes == 0)
                return lsdm_err("%s: no NIfTI volume (.nii, .nii.gz) in the archive (%ld entries)", a->label, a->entries);
            return 0;
        }
        if (rc < ARCHIVE_WARN) {
            if (a->entries == 0)
                return lsdm_err("%s: not a tensor stream, NIfTI file or known archive (%s)", a->label,
                                archive_error_string(a->ar));
            return lsdm_err("%s: damaged archive: %s", a->label, archive_error_string(a->ar));
        }
        a->entries++;
        const char *path = archive_entry_pathname(e);
        if (!path || archive_entry_filetype(e) != AE_IFREG || !lsdm_nifti_is_name(path)) continue;
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (base[0] == '.') continue; /* hidden files, macOS "._x.nii" forks */
        uint8_t *buf = NULL;
        size_t n = 0;
        if (read_entry(a, e, path, &buf, &n)) return -1;
        char *name = lsdm_nifti_name_from_path(path);
        rc = name ? lsdm_nifti_decode(buf, n, name, o, r) : lsdm_err("out of memory");
        free(name);
        free(buf);
        if (rc) return lsdm_err_ctx("%s: %s", a->label, path);
        a->volumes++;
        return 1;
    }
}
