/* Device choice and thread count of programs that compute. */
#include <omp.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "err.h"

int main(int argc, char **argv) {
    (void)argc;
    lsdm_cli_init("test_cli", argv);
    lsdm_device dev = LSDM_DEVICE_CUDA;
    lsdm_opt.device = "cpu";
    lsdm_opt.threads = 1;
    CHECK(lsdm_cli_engine_setup(&dev) == 0 && dev == LSDM_DEVICE_CPU);
    CHECK(omp_get_max_threads() == 1);
    int gpus = lsdm_cuda_device_count(NULL);
    lsdm_opt.device = "auto";
    CHECK(lsdm_cli_engine_setup(&dev) == 0);
    CHECK(dev == (gpus > 0 ? LSDM_DEVICE_CUDA : LSDM_DEVICE_CPU));
    lsdm_opt.device = "cuda";
    if (gpus > 0) {
        CHECK(lsdm_cli_engine_setup(&dev) == 0 && dev == LSDM_DEVICE_CUDA);
    } else {
        CHECK(lsdm_cli_engine_setup(&dev) == -1);
        CHECK(strstr(lsdm_err_msg(), "--device cuda: no usable GPU") != NULL);
    }
    /* option parsing of the engine options */
    CHECK(lsdm_cli_common(LSDM_OPT_DEVICE, "cpu", "") == -1 && strcmp(lsdm_opt.device, "cpu") == 0);
    CHECK(lsdm_cli_common('j', "3", "") == -1 && lsdm_opt.threads == 3);
    CHECK(lsdm_cli_common('j', "0", "") == 2);
    CHECK(lsdm_cli_common(LSDM_OPT_DEVICE, "tpu", "") == 2);
    /* shared option values */
    int d3[3], ax[3];
    CHECK(lsdm_parse_dims("8x16x32", d3) == 0 && d3[0] == 8 && d3[1] == 16 && d3[2] == 32);
    CHECK(lsdm_parse_dims("8x16", d3) == -1 && lsdm_parse_dims("8x16x32x", d3) == -1);
    CHECK(lsdm_parse_dims("0x16x32", d3) == -1 && lsdm_parse_dims("8x16x4097", d3) == -1);
    CHECK(strstr(lsdm_err_msg(), "'8x16x4097' is not DxHxW") != NULL);
    CHECK(lsdm_parse_axes("wd", ax) == 0 && ax[0] == 1 && ax[1] == 0 && ax[2] == 1);
    CHECK(lsdm_parse_axes("none", ax) == 0 && !ax[0] && !ax[1] && !ax[2]);
    CHECK(lsdm_parse_axes("", ax) == 0 && !ax[0] && !ax[1] && !ax[2]);
    CHECK(lsdm_parse_axes("x", ax) == -1 && strstr(lsdm_err_msg(), "letters of 'dhw'") != NULL);
    double t0 = lsdm_now_s(), t1 = lsdm_now_s();
    CHECK(t0 > 0 && t1 >= t0);
    return check_done("test_cli");
}
