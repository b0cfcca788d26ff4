#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

static void outfile_reset(lsdm_outfile *o) {
    free(o->path);
    free(o->tmp);
    memset(o, 0, sizeof *o);
}

int lsdm_outfile_open(lsdm_outfile *o, const char *path, int binary, int force) {
    memset(o, 0, sizeof *o);
    if (!path || strcmp(path, "-") == 0) {
        if (binary && !force && isatty(STDOUT_FILENO))
            return lsdm_err("refusing to write binary data to a terminal (redirect it, or use -f)");
        o->f = stdout;
        return 0;
    }
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        /* a device or fifo (/dev/null, /dev/full, a named pipe): nothing to
         * rename over, and renaming would replace the device itself */
        if (S_ISDIR(st.st_mode)) return lsdm_err("%s: is a directory", path);
        if (!(o->f = fopen(path, "wb"))) return lsdm_err("%s: %s", path, strerror(errno));
        o->path = NULL;
        o->tmp = NULL;
        o->direct = 1;
        return 0;
    }
    size_t n = strlen(path);
    o->path = strdup(path);
    o->tmp = malloc(n + 16);
    if (!o->path || !o->tmp) { outfile_reset(o); return lsdm_err("out of memory"); }
    /* the temp name keeps the directory, so rename() stays on one file system */
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    snprintf(o->tmp, n + 16, "%.*s.lsdm-tmp.XXXXXX", (int)dirlen, path);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        int e = errno;
        outfile_reset(o);
        return lsdm_err("%s: cannot create: %s", path, strerror(e));
    }
    mode_t um = umask(0);
    umask(um);
    fchmod(fd, 0666 & ~um);
    o->f = fdopen(fd, "wb");
    if (!o->f) { close(fd); unlink(o->tmp); outfile_reset(o); return lsdm_err("%s: fdopen failed", path); }
    return 0;
}

int lsdm_outfile_commit(lsdm_outfile *o) {
    if (!o->path) { /* stdout or a device */
        int bad = fflush(o->f) != 0 || ferror(o->f);
        int e = errno;
        if (o->direct && fclose(o->f) != 0) bad = 1;
        memset(o, 0, sizeof *o);
        return bad ? lsdm_err("write error: %s", strerror(e ? e : EIO)) : 0;
    }
    int e = 0;
    if (fflush(o->f) != 0 || ferror(o->f)) e = errno ? errno : EIO;
    if (!e && fsync(fileno(o->f)) != 0) e = errno;
    if (fclose(o->f) != 0 && !e) e = errno ? errno : EIO;
    o->f = NULL;
    if (!e && rename(o->tmp, o->path) != 0) e = errno;
    if (e) {
        unlink(o->tmp);
        int rc = lsdm_err("%s: write failed: %s", o->path, strerror(e));
        outfile_reset(o);
        return rc;
    }
    outfile_reset(o);
    return 0;
}

void lsdm_outfile_abort(lsdm_outfile *o) {
    if (o->path) {
        if (o->f) fclose(o->f);
        unlink(o->tmp);
    } else if (o->direct) {
        fclose(o->f);
    } else if (o->f) {
        fflush(o->f);
    }
    outfile_reset(o);
}
