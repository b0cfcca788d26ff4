/* Throughput of the tensor stream: the two ends of a pipe.
 *   stream_bench gen   --count N [-o RAW]   N raw f32 volumes 32x256x256
 *   stream_bench write --count N [--level L] [--input RAW]   raw -> stream
 *   stream_bench read                        stream -> touched and dropped
 *   stream_bench info                        libzstd version in use
 * bench/run times `write < raw | read` against `zstd -L | zstd -d` on the
 * same raw bytes. The volumes are MR-like (smooth anatomy, bias field,
 * noise, integer scanner values rescaled to [-1,1] as the pipeline stores
 * images), not random bytes or zeros, so the compressor sees the kind of
 * data lsdm moves. */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "cli.h"
#include "err.h"
#include "outfile.h"
#include "stream.h"

enum { VOL_D = 32, VOL_H = 256, VOL_W = 256 };
#define VOL_NUMEL ((size_t)VOL_D * VOL_H * VOL_W)

static const char *const HELP =
    "Usage: stream_bench gen|write|read|info [OPTIONS]\n"
    "Benchmark ends of the tensor stream on 1x32x256x256 f32 volumes.\n"
    "  gen    write --count raw f32 volumes (MR-like phantoms) to -o (stdout)\n"
    "  write  read --count raw volumes from --input (stdin) and write them\n"
    "         as a stream to stdout at --level\n"
    "  read   read a stream from stdin, touch every record's data, drop it\n"
    "  info   print the libzstd version the stream library runs on\n"
    "  -n, --count N      number of volumes (default 16)\n"
    "  -i, --input RAW    raw f32 volumes for write (default stdin)\n"
    "  -o, --output RAW   file for gen (default stdout)\n"
    LSDM_COMMON_HELP;

/* ---------------------------------------------------------------- data */

static uint64_t rng_state;
static uint64_t rng_next(void) { /* splitmix64: fixed, fast, portable */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rng_uniform(void) { return (float)(rng_next() >> 40) * (1.0f / 16777216.0f); }
/* Sum of four uniforms: near-Gaussian noise without a log per voxel. */
static float rng_noise(void) { return rng_uniform() + rng_uniform() + rng_uniform() + rng_uniform() - 2.0f; }

/* Volume i: an ellipsoidal body with fat, denser tissue lobes and a few
 * vessels, a smooth coil bias and magnitude noise, quantised to integer
 * scanner units (DICOM stores int16; fat ~ 900), then per-volume min-max
 * rescaled to [-1,1] as the pipeline stores images. vol: [D][H][W]. */
static void bench_make_volume(float *vol, int i) {
    rng_state = 0x6c73646dull * (uint64_t)(i + 1);
    float cx = VOL_W * (0.45f + 0.1f * rng_uniform()), cy = VOL_H * (0.5f + 0.1f * rng_uniform());
    float rx = VOL_W * (0.30f + 0.1f * rng_uniform()), ry = VOL_H * (0.25f + 0.1f * rng_uniform());
    float phase = 6.28f * rng_uniform();
    float lo = INFINITY, hi = -INFINITY;
    for (int d = 0; d < VOL_D; d++) {
        float dz = (d - VOL_D / 2.0f) / (VOL_D * 0.6f);
        for (int h = 0; h < VOL_H; h++) {
            float *row = vol + ((size_t)d * VOL_H + h) * VOL_W;
            float dy = (h - cy) / ry;
            for (int w = 0; w < VOL_W; w++) {
                float dx = (w - cx) / rx;
                float r2 = dx * dx + dy * dy + dz * dz;
                float v = 0.0f;
                if (r2 < 1.0f) {
                    float lobes = sinf(0.09f * w + phase) * sinf(0.07f * h + 0.3f * d);
                    v = lobes > 0.25f ? 0.45f + 0.2f * lobes : 0.9f; /* dense tissue vs fat */
                    if (fabsf(sinf(0.05f * (w + h) + 0.2f * d + phase)) < 0.03f) v = 1.3f; /* vessels */
                    v *= 1.0f + 0.25f * (dx * 0.5f - dy * 0.3f); /* coil bias */
                }
                v = roundf(1000.0f * fabsf(v + 0.04f * rng_noise())); /* magnitude >= 0 */
                row[w] = v;
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        }
    }
    float scale = hi > lo ? 2.0f / (hi - lo) : 1.0f;
    for (size_t k = 0; k < VOL_NUMEL; k++) vol[k] = (vol[k] - lo) * scale - 1.0f;
}

/* ---------------------------------------------------------------- modes */

static int bench_gen(long count, const char *out) {
    lsdm_outfile o;
    if (lsdm_outfile_open(&o, out, 1, lsdm_opt.force)) return -1;
    float *vol = malloc(VOL_NUMEL * sizeof *vol);
    if (!vol) { lsdm_outfile_abort(&o); return lsdm_err("out of memory"); }
    for (long i = 0; i < count; i++) {
        bench_make_volume(vol, (int)i);
        if (fwrite(vol, sizeof *vol, VOL_NUMEL, o.f) != VOL_NUMEL) {
            free(vol);
            lsdm_outfile_abort(&o);
            return lsdm_err("write failed");
        }
    }
    free(vol);
    return lsdm_outfile_commit(&o);
}

static int bench_write(long count, const char *in) {
    FILE *f = strcmp(in, "-") ? fopen(in, "rb") : stdin;
    if (!f) return lsdm_err("%s: cannot open", in);
    lsdm_writer *w = lsdm_writer_open("-", lsdm_opt.level, lsdm_opt.force);
    if (!w) { if (f != stdin) fclose(f); return -1; }
    lsdm_record r;
    lsdm_record_init(&r);
    int64_t shape[4] = {1, VOL_D, VOL_H, VOL_W};
    double affine[16] = {3, 0, 0, -48, 0, 0.7, 0, -90, 0, 0, 0.7, -90, 0, 0, 0, 1};
    int rc = lsdm_record_alloc(&r, LSDM_F32, 4, shape);
    if (!rc) rc = lsdm_record_set(&r, "role", "image");
    if (!rc) rc = lsdm_record_set_affine(&r, affine);
    if (!rc) rc = lsdm_record_add_provenance(&r, "stream_bench/" LSDM_VERSION);
    for (long i = 0; !rc && i < count; i++) {
        if (fread(r.data, 1, r.nbytes, f) != r.nbytes) { rc = lsdm_err("%s: fewer than %ld volumes", in, count); break; }
        rc = lsdm_record_setf(&r, "name", "bench-%04ld", i);
        if (!rc) rc = lsdm_writer_put(w, &r);
    }
    lsdm_record_free(&r);
    if (f != stdin) fclose(f);
    if (rc) { lsdm_writer_abort(w); return -1; }
    return lsdm_writer_close(w);
}

/* Read every record and fold one word per cache line, so that the data
 * is really there (a reader that skipped decoding would not get away). */
static int bench_read(void) {
    lsdm_reader *rd = lsdm_reader_open("-");
    if (!rd) return -1;
    lsdm_record r;
    lsdm_record_init(&r);
    uint32_t fold = 0;
    size_t bytes = 0;
    int rc;
    while ((rc = lsdm_reader_next(rd, &r)) == 1) {
        const uint32_t *p = r.data;
        for (size_t k = 0; k < r.nbytes / 4; k += 16) fold ^= p[k];
        bytes += r.nbytes;
    }
    long n = lsdm_reader_count(rd);
    lsdm_record_free(&r);
    lsdm_reader_close(rd);
    if (rc < 0) return -1;
    lsdm_verbose("read %ld records, %zu bytes, fold %08x", n, bytes, (unsigned)fold);
    return 0;
}

int main(int argc, char **argv) {
    lsdm_cli_init("stream_bench", argv);
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS,
        {"count", required_argument, 0, 'n'},
        {"input", required_argument, 0, 'i'},
        {"output", required_argument, 0, 'o'},
        {0, 0, 0, 0},
    };
    long count = 16;
    const char *in = "-", *out = "-";
    int c;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "n:i:o:", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (lsdm_parse_long(optarg, 1, 1 << 20, &count)) return lsdm_usage_error("--count: %s", lsdm_err_msg());
            break;
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (optind != argc - 1) return lsdm_usage_error("need one mode: gen, write, read or info");
    const char *mode = argv[optind];
    int rc;
    if (!strcmp(mode, "gen")) rc = bench_gen(count, out);
    else if (!strcmp(mode, "write")) rc = bench_write(count, in);
    else if (!strcmp(mode, "read")) rc = bench_read();
    else if (!strcmp(mode, "info")) rc = printf("libzstd %s\n", ZSTD_versionString()) < 0;
    else return lsdm_usage_error("unknown mode '%s' (gen, write, read or info)", mode);
    return rc ? lsdm_fail() : 0;
}
