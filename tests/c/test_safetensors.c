/* safetensors and checkpoints: round trips of every written dtype, files
 * written by Python (tests/fixtures/train/py.safetensors) and by the
 * converter (converted.safetensors), the checkpoint validation messages,
 * a writer killed mid-write, and damaged or hostile headers.
 * `test_safetensors --write PATH` writes the file that
 * tests/torch/make_train.py checks loads in Python's safetensors. */
#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "dtype.h"
#include "err.h"
#include "fixture.h"
#include "rng.h"
#include "safetensors.h"

static char tmpdir[] = "/tmp/lsdm-test-st.XXXXXX";

static void train_fixture(char *buf, size_t size, const char *file) { fixture_path(buf, size, "train", file); }

/* The file the Python check expects (see make_train.py: check_c_written). */
static int write_known(const char *path) {
    float f32[6], f16[4], bf16[3] = {1, -2, 3};
    for (int i = 0; i < 6; i++) f32[i] = i * 0.5f - 1;
    for (int i = 0; i < 4; i++) f16[i] = i * 0.25f;
    int32_t i32[5] = {-2, -1, 0, 1, 2};
    int64_t i64[2] = {-1, (int64_t)1 << 40};
    uint8_t u8[3] = {0, 128, 255};
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s3[1] = {3}, s5[1] = {5}, s2[1] = {2}, s03[2] = {0, 3};
    st_entry e[] = {
        {.name = "u8", .dtype = ST_U8, .ndim = 1, .shape = s3, .data = u8},
        {.name = "f16", .dtype = ST_F16, .ndim = 1, .shape = s4, .from_f32 = f16},
        {.name = "f32", .dtype = ST_F32, .ndim = 2, .shape = s23, .data = f32},
        {.name = "bf16", .dtype = ST_BF16, .ndim = 1, .shape = s3, .from_f32 = bf16},
        {.name = "i32", .dtype = ST_I32, .ndim = 1, .shape = s5, .data = i32},
        {.name = "i64", .dtype = ST_I64, .ndim = 1, .shape = s2, .data = i64},
        {.name = "empty", .dtype = ST_F32, .ndim = 2, .shape = s03, .data = NULL},
    };
    const char *meta[] = {"config", "c-test", "step", "7"};
    return safetensors_write(path, e, 7, meta, 2);
}

static void test_round_trip(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/rt.safetensors", tmpdir);
    CHECK(write_known(path) == 0);
    st_file f;
    CHECK(safetensors_open(&f, path) == 0);
    CHECK(f.n == 7 && f.nmeta == 2);
    CHECK(strcmp(safetensors_meta_get(&f, "config"), "c-test") == 0);
    CHECK(strcmp(safetensors_meta_get(&f, "step"), "7") == 0 && safetensors_meta_get(&f, "x") == NULL);
    for (int i = 0; i < f.n; i++) /* laid out by element size: each aligned */
        CHECK(f.t[i].begin % st_dtype_size(f.t[i].dtype) == 0);
    CHECK((size_t)(f.data - (const uint8_t *)f.map) % 8 == 0);
    const st_tensor *t = safetensors_find(&f, "i64");
    CHECK(t && t->dtype == ST_I64 && t->ndim == 1 && t->shape[0] == 2 && t->begin == 0);
    int64_t i64[2];
    memcpy(i64, safetensors_data(&f, t), 16);
    CHECK(i64[0] == -1 && i64[1] == (int64_t)1 << 40);
    float v[6];
    CHECK(safetensors_read_f32(&f, safetensors_find(&f, "f32"), v) == 0 && v[0] == -1 && v[5] == 1.5f);
    CHECK(safetensors_read_f32(&f, safetensors_find(&f, "f16"), v) == 0 && v[1] == 0.25f && v[3] == 0.75f);
    CHECK(safetensors_read_f32(&f, safetensors_find(&f, "bf16"), v) == 0 && v[1] == -2 && v[2] == 3);
    CHECK(safetensors_read_f32(&f, safetensors_find(&f, "i32"), v) == -1 && strstr(lsdm_err_msg(), "not a float"));
    t = safetensors_find(&f, "empty");
    CHECK(t && t->shape[0] == 0 && t->begin == t->end);
    const uint8_t *u8 = safetensors_data(&f, safetensors_find(&f, "u8"));
    CHECK(u8[0] == 0 && u8[1] == 128 && u8[2] == 255);
    safetensors_close(&f);

    /* writer refusals */
    int64_t s1[1] = {1};
    float x = 1;
    st_entry dup[2] = {{.name = "a", .dtype = ST_F32, .ndim = 1, .shape = s1, .data = &x},
                       {.name = "a", .dtype = ST_F32, .ndim = 1, .shape = s1, .data = &x}};
    CHECK(safetensors_write(path, dup, 2, NULL, 0) == -1 && strstr(lsdm_err_msg(), "used twice"));
    dup[1].name = "__metadata__";
    CHECK(safetensors_write(path, dup, 2, NULL, 0) == -1 && strstr(lsdm_err_msg(), "reserved"));
    dup[1] = (st_entry){.name = "b", .dtype = ST_I32, .ndim = 1, .shape = s1, .from_f32 = &x};
    CHECK(safetensors_write(path, dup, 2, NULL, 0) == -1 && strstr(lsdm_err_msg(), "cannot convert"));
    CHECK(safetensors_write("/dev/full", dup, 1, NULL, 0) == -1); /* ENOSPC is an error */
    CHECK(safetensors_open(&f, path) == 0 && f.n == 7); /* failed writes left the file */
    safetensors_close(&f);
}

static const float *fx_get(const fixture *fx, const char *name, size_t *n) {
    const float *p = fixture_get(fx, name, n);
    if (!p) fprintf(stderr, "fixture tensor %s missing\n", name);
    CHECK(p != NULL);
    return p;
}

/* A file written by Python's safetensors (torch.save_file). */
static void test_python_file(void) {
    char path[PATH_MAX + 64], vpath[PATH_MAX + 64];
    train_fixture(path, sizeof path, "py.safetensors");
    train_fixture(vpath, sizeof vpath, "py_values.lsdm");
    st_file f;
    fixture fx;
    if (safetensors_open(&f, path) < 0 || fixture_load(&fx, vpath) < 0) {
        fprintf(stderr, "missing fixture %s: %s (make it with tests/torch/make_train.py)\n", path, lsdm_err_msg());
        CHECK(0);
        return;
    }
    CHECK(f.n == 8);
    CHECK(strcmp(safetensors_meta_get(&f, "config"), "dim=4 mults=1,2") == 0);
    const char *names[] = {"enc.conv1.weight", "enc.conv1.bias", "half", "brain", "ints", "bytes", "scalar"};
    st_dtype types[] = {ST_F32, ST_F32, ST_F16, ST_BF16, ST_I32, ST_U8, ST_F32};
    double worst = 0;
    for (int k = 0; k < 7; k++) {
        const st_tensor *t = safetensors_find(&f, names[k]);
        char key[64];
        snprintf(key, sizeof key, "py.%s", names[k]);
        size_t n = 0;
        const float *want = fx_get(&fx, key, &n);
        CHECK(t && t->dtype == types[k]);
        if (!t || !want) continue;
        size_t numel = (size_t)((t->end - t->begin) / st_dtype_size(t->dtype));
        CHECK(numel == (k == 6 ? 1 : n));
        float got[64];
        if (types[k] == ST_I32 || types[k] == ST_U8) {
            lsdm_dtype lt = types[k] == ST_I32 ? LSDM_I32 : LSDM_U8;
            lsdm_convert_to_f32(got, safetensors_data(&f, t), lt, numel);
        } else {
            CHECK(safetensors_read_f32(&f, t, got) == 0);
        }
        for (size_t i = 0; i < numel; i++) worst = fmax(worst, fabs((double)got[i] - want[i]));
    }
    const st_tensor *t = safetensors_find(&f, "enc.conv1.weight");
    CHECK(t && t->ndim == 5 && t->shape[0] == 2 && t->shape[4] == 3);
    t = safetensors_find(&f, "scalar");
    CHECK(t && t->ndim == 0);
    t = safetensors_find(&f, "longs");
    int64_t l[2];
    if (t) memcpy(l, safetensors_data(&f, t), 16);
    CHECK(t && t->dtype == ST_I64 && l[0] == -1 && l[1] == (int64_t)1 << 40);
    printf("python-written file: max abs err %.2e\n", worst);
    CHECK(worst == 0);
    safetensors_close(&f);
    fixture_free(&fx);
}

/* The converter's output on a tiny torch module loads as a checkpoint. */
static void test_converted(void) {
    char path[PATH_MAX + 64], vpath[PATH_MAX + 64];
    train_fixture(path, sizeof path, "converted.safetensors");
    train_fixture(vpath, sizeof vpath, "converted_values.lsdm");
    fixture fx;
    if (fixture_load(&fx, vpath) < 0) { fprintf(stderr, "missing fixture %s\n", vpath); CHECK(0); return; }
    float w[54], b[2], gw[2], gb[2], bw[2], bb[2], rm[2], rv[2];
    ckpt_param p[] = {{"conv.weight", 5, {2, 1, 3, 3, 3}, w}, {"conv.bias", 1, {2}, b},
                      {"norm.weight", 1, {2}, gw}, {"norm.bias", 1, {2}, gb},
                      {"bn.weight", 1, {2}, bw}, {"bn.bias", 1, {2}, bb},
                      {"bn.running_mean", 1, {2}, rm}, {"bn.running_var", 1, {2}, rv}};
    ckpt_meta meta;
    int rc = checkpoint_load(path, p, 8, &meta);
    if (rc < 0) fprintf(stderr, "%s\n", lsdm_err_msg());
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK(strcmp(ckpt_meta_get(&meta, "step"), "42") == 0);
        CHECK(strstr(ckpt_meta_get(&meta, "config"), "\"dim\": 4") != NULL);
        CHECK(strcmp(ckpt_meta_get(&meta, "stripped_prefixes"), "model.") == 0);
        ckpt_meta_free(&meta);
        double worst = 0;
        for (int i = 0; i < 8; i++) {
            char key[64];
            snprintf(key, sizeof key, "conv.%s", p[i].name);
            size_t n = 0;
            const float *want = fx_get(&fx, key, &n);
            CHECK(want && n == ckpt_param_numel(&p[i]));
            for (size_t j = 0; want && j < n; j++) worst = fmax(worst, fabs(p[i].data[j] - want[j]));
        }
        printf("converted checkpoint: max abs err %.2e\n", worst);
        CHECK(worst == 0);
    }
    fixture_free(&fx);
}

static void test_checkpoint(void) {
    char path[300], want[600];
    snprintf(path, sizeof path, "%s/x.safetensors", tmpdir);
    float w[16 * 27], b[16];
    for (int i = 0; i < 16 * 27; i++) w[i] = (float)i / 7.0f - 3;
    for (int i = 0; i < 16; i++) b[i] = (float)i;
    ckpt_param p[2] = {{"enc.conv1.weight", 5, {16, 1, 3, 3, 3}, w}, {"enc.conv1.bias", 1, {16}, b}};
    ckpt_meta meta = {0};
    CHECK(ckpt_meta_set(&meta, "config", "vqgan: n_codes=16384") == 0);
    CHECK(ckpt_meta_set(&meta, "step", "100") == 0);
    CHECK(ckpt_meta_set(&meta, "step", "1000") == 0 && meta.n == 2); /* replaced */
    {
        ckpt_meta m2 = {0};
        char big[300];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        CHECK(ckpt_meta_copy(&m2, NULL) == 0 && m2.n == 0);
        CHECK(ckpt_meta_copy(&m2, &meta) == 0 && m2.n == 2 && !strcmp(ckpt_meta_get(&m2, "step"), "1000"));
        CHECK(ckpt_meta_setf(&m2, "seed", "%d-%s", 42, "x") == 0 && !strcmp(ckpt_meta_get(&m2, "seed"), "42-x"));
        CHECK(ckpt_meta_setf(&m2, "long", "%s", big) == -1 && strstr(lsdm_err_msg(), "too long") && m2.n == 3);
        ckpt_meta_free(&m2);
    }
    CHECK(ckpt_meta_set(&meta, "rng", "seed=7 offset=123456") == 0);
    CHECK(checkpoint_save(path, p, 2, &meta, ST_F32) == 0);
    ckpt_meta_free(&meta);

    float w2[16 * 27], b2[16];
    ckpt_param q[2] = {{"enc.conv1.weight", 5, {16, 1, 3, 3, 3}, w2}, {"enc.conv1.bias", 1, {16}, b2}};
    ckpt_meta got;
    CHECK(checkpoint_load(path, q, 2, &got) == 0);
    CHECK(memcmp(w, w2, sizeof w) == 0 && memcmp(b, b2, sizeof b) == 0);
    CHECK(got.n == 3 && strcmp(ckpt_meta_get(&got, "step"), "1000") == 0);
    CHECK(strcmp(ckpt_meta_get(&got, "rng"), "seed=7 offset=123456") == 0);
    ckpt_meta_free(&got);

    /* wrong shape: the message of the brief, and the model left alone */
    float w3[16 * 64];
    memset(w3, 0, sizeof w3);
    ckpt_param r[2] = {{"enc.conv1.weight", 5, {16, 1, 4, 4, 4}, w3}, {"enc.conv1.bias", 1, {16}, b2}};
    CHECK(checkpoint_load(path, r, 2, NULL) == -1);
    snprintf(want, sizeof want, "checkpoint %s: tensor 'enc.conv1.weight' has shape 16,1,3,3,3, model expects 16,1,4,4,4", path);
    CHECK(strcmp(lsdm_err_msg(), want) == 0);
    if (strcmp(lsdm_err_msg(), want)) fprintf(stderr, "got: %s\n", lsdm_err_msg());
    CHECK(w3[0] == 0);
    /* missing, unexpected, dtype */
    ckpt_param s[3] = {q[0], q[1], {"dec.conv.bias", 1, {16}, b2}};
    CHECK(checkpoint_load(path, s, 3, NULL) == -1 && strstr(lsdm_err_msg(), "tensor 'dec.conv.bias' is missing"));
    CHECK(checkpoint_load(path, q, 1, NULL) == -1 && strstr(lsdm_err_msg(), "unexpected tensor 'enc.conv1.bias'"));
    char py[PATH_MAX + 64];
    train_fixture(py, sizeof py, "py.safetensors");
    float ints[6];
    ckpt_param it[1] = {{"ints", 2, {2, 3}, ints}};
    CHECK(checkpoint_load(py, it, 1, NULL) == -1 && strstr(lsdm_err_msg(), "tensor 'ints' has dtype I32"));
    CHECK(checkpoint_load("/nonexistent/x.safetensors", q, 2, NULL) == -1 &&
          strstr(lsdm_err_msg(), "/nonexistent/x.safetensors"));

    /* half precision storage rounds as lsdm_f32_to_f16 / bf16 */
    const st_dtype halves[2] = {ST_F16, ST_BF16};
    for (int k = 0; k < 2; k++) {
        CHECK(checkpoint_save(path, p, 2, NULL, halves[k]) == 0);
        CHECK(checkpoint_load(path, q, 2, NULL) == 0);
        int same = 1;
        for (int i = 0; i < 16 * 27; i++) {
            float r16 = k ? lsdm_bf16_to_f32(lsdm_f32_to_bf16(w[i])) : lsdm_f16_to_f32(lsdm_f32_to_f16(w[i]));
            same &= w2[i] == r16;
        }
        CHECK(same);
    }
    CHECK(checkpoint_save(path, p, 2, NULL, ST_I32) == -1);
}

/* A writer killed mid-write leaves the previous checkpoint intact. */
static void test_killed_writer(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/kill.safetensors", tmpdir);
    float small[4] = {1, 2, 3, 4};
    ckpt_param p[1] = {{"w", 1, {4}, small}};
    CHECK(checkpoint_save(path, p, 1, NULL, ST_F32) == 0);

    size_t big = (size_t)16 << 20; /* floats: 64 MB, written while we watch */
    float *data = malloc(big * sizeof *data);
    for (size_t i = 0; i < big; i++) data[i] = (float)(i & 1023);
    pid_t pid = fork();
    if (pid == 0) {
        ckpt_param q[1] = {{"w", 1, {(int64_t)big}, data}};
        checkpoint_save(path, q, 1, NULL, ST_F32);
        _exit(0);
    }
    /* wait for the temp file to hold some data, then kill */
    off_t seen = 0;
    char tmp[600] = "";
    for (int spin = 0; spin < 20000 && seen == 0; spin++) {
        DIR *d = opendir(tmpdir);
        struct dirent *de;
        while (d && (de = readdir(d)))
            if (strstr(de->d_name, ".lsdm-tmp.")) { /* lsdm_outfile's temp name */
                struct stat st;
                snprintf(tmp, sizeof tmp, "%s/%s", tmpdir, de->d_name);
                if (stat(tmp, &st) == 0) seen = st.st_size;
            }
        if (d) closedir(d);
        if (!seen) usleep(200);
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    printf("killed writer after %lld bytes of its temp file\n", (long long)seen);
    CHECK(seen > 0 && (size_t)seen < big * sizeof *data); /* really mid-write */
    float got[4] = {0};
    ckpt_param q[1] = {{"w", 1, {4}, got}};
    CHECK(checkpoint_load(path, q, 1, NULL) == 0);
    CHECK(memcmp(got, small, sizeof got) == 0);
    if (tmp[0]) unlink(tmp);
    free(data);
}

/* u64 length + header text + zero data bytes. */
static uint8_t *make_buf(const char *header, size_t data, size_t *n) {
    size_t h = strlen(header);
    *n = 8 + h + data;
    uint8_t *b = calloc(*n, 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    return b;
}

static int rejects(const char *header, size_t data, const char *msg) {
    size_t n;
    uint8_t *b = make_buf(header, data, &n);
    st_file f;
    int rc = safetensors_open_mem(&f, b, n, "h.safetensors");
    int ok = rc == -1 && strstr(lsdm_err_msg(), msg) && strncmp(lsdm_err_msg(), "h.safetensors: ", 15) == 0;
    if (!ok) fprintf(stderr, "header %s: rc %d, message '%s', want '%s'\n", header, rc, lsdm_err_msg(), msg);
    if (rc == 0) safetensors_close(&f);
    free(b);
    return ok;
}

#define T(off) "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":" off "}"

static void test_bad_headers(void) {
    size_t n;
    uint8_t *ok = make_buf("{\"a\":" T("[0,4]") ",\"__metadata__\":{\"k\":\"v\"}}   ", 4, &n);
    st_file f;
    CHECK(safetensors_open_mem(&f, ok, n, "ok") == 0 && f.n == 1 && f.nmeta == 1);
    safetensors_close(&f);
    free(ok);
    CHECK(rejects("{\"a\":" T("[0,4]") ",\"a\":" T("[4,8]") "}", 8, "duplicate"));
    CHECK(rejects("{\"a\":" T("[0,4]") ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]}}", 10, "overlaps"));
    CHECK(rejects("{\"a\":" T("[0,4]") ",\"b\":" T("[8,12]") "}", 12, "gap"));
    CHECK(rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "need 8"));
    CHECK(rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "past the data section"));
    CHECK(rejects("{\"a\":" T("[0,4]") "}", 8, "data section has 8 bytes, tensors cover 4"));
    CHECK(rejects("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"));
    CHECK(rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "negative"));
    CHECK(rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "non-integer"));
    CHECK(rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "at most 8"));
    CHECK(rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,4]}}", 4, "too large"));
    CHECK(rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "invalid data_offsets"));
    CHECK(rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "[begin, end]"));
    CHECK(rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown field 'x'"));
    CHECK(rejects("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape must be"));
    CHECK(rejects("{\"a\":[1]}", 0, "not an object"));
    CHECK(rejects("{\"__metadata__\":{\"k\":1}}", 0, "not a string"));
    CHECK(rejects("{\"__metadata__\":[]}", 0, "__metadata__ is not an object"));
    CHECK(rejects("{\"a\":" T("[0,4]"), 4, "bad JSON"));
    CHECK(rejects("{\"a\":\"\\u0000\"}", 0, "bad JSON"));
    CHECK(rejects("{\"a\":" T("[0,4]") "} x", 4, "bad JSON"));
    CHECK(rejects("[1]", 0, "does not start with '{'"));
    CHECK(rejects("", 0, "does not fit"));
    /* header length beyond the file, or beyond the limit */
    uint8_t b[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    CHECK(safetensors_open_mem(&f, b, 16, "big") == -1 && strstr(lsdm_err_msg(), "exceeds the limit"));
    b[0] = 100, memset(b + 1, 0, 7);
    CHECK(safetensors_open_mem(&f, b, 16, "cut") == -1 && strstr(lsdm_err_msg(), "does not fit"));
    CHECK(safetensors_open_mem(&f, b, 5, "tiny") == -1 && strstr(lsdm_err_msg(), "too short"));
}

/* Every truncation of a good file fails; random byte damage never crashes
 * and fails with one line naming the file. */
static void test_fuzz(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/fz.safetensors", tmpdir);
    CHECK(write_known(path) == 0);
    FILE *fp = fopen(path, "rb");
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    int trunc_ok = 1;
    st_file f;
    for (size_t k = 0; k < n; k++) {
        uint8_t *c = malloc(k ? k : 1); /* exact size: asan sees any over-read */
        memcpy(c, buf, k);
        if (safetensors_open_mem(&f, c, k, "t") == 0) { trunc_ok = 0; safetensors_close(&f); }
        free(c);
    }
    CHECK(trunc_ok);
    size_t hlen = (size_t)buf[0] | (size_t)buf[1] << 8;
    lsdm_rng rng;
    lsdm_rng_init(&rng, 9, 0);
    int accepted = 0, clean = 1;
    for (int it = 0; it < 3000; it++) {
        uint8_t *c = malloc(n);
        memcpy(c, buf, n);
        int flips = 1 + (int)(lsdm_rng_u32(&rng) % 4);
        for (int j = 0; j < flips; j++) {
            size_t at = lsdm_rng_u32(&rng) % (8 + hlen);
            uint32_t r = lsdm_rng_u32(&rng);
            c[at] = (r & 0x100) ? (uint8_t)r : (uint8_t)"{}[]\":,0123456789-.eE \\"[r % 24];
        }
        if (safetensors_open_mem(&f, c, n, "fz") == 0) {
            accepted++;
            for (int i = 0; i < f.n; i++) clean &= f.t[i].end <= f.data_size; /* still in range */
            safetensors_close(&f);
        } else {
            const char *m = lsdm_err_msg();
            clean &= strncmp(m, "fz: ", 4) == 0 && !strchr(m, '\n') && strlen(m) < 1000;
        }
        free(c);
    }
    printf("fuzz: %d of 3000 damaged headers still valid, all others refused cleanly: %s\n", accepted,
           clean ? "yes" : "NO");
    CHECK(clean);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write") == 0) {
        if (write_known(argv[2]) < 0) { fprintf(stderr, "test_safetensors: error: %s\n", lsdm_err_msg()); return 1; }
        return 0;
    }
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_round_trip();
    test_python_file();
    test_converted();
    test_checkpoint();
    test_killed_writer();
    test_bad_headers();
    test_fuzz();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_done("test_safetensors");
}
