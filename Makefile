# lsdm: 3D semantic medical image synthesis as Unix filters.
#   make            build every program into bin/
#   make test       install missing Debian packages, build, run every test
#   make demo       install, build, run the built-in default job
#   make asan       build with address/undefined sanitizers and run the tests
#   make fuzz       run the libFuzzer targets for a short fixed time
#   make bench      run the benchmarks under bench/
#   make CUDA=0     build without CUDA even where nvcc exists

CC      ?= cc
OPT     ?= -O2 -g
CFLAGS  += -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -pthread -fopenmp $(OPT)
CPPFLAGS += -Ilibshared -Iformats -Ikernels -I/usr/include/nifti
LDLIBS  += -lnifti2 -lznz -lz -larchive -lzstd -lpng -ljansson -llapacke -lopenblas -lm
BUILD   ?= build
BIN     ?= bin

# CUDA: built when nvcc is found, unless CUDA=0.
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(origin CUDA),undefined)
  CUDA := $(if $(NVCC),1,0)
endif
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CU_SRC  := $(wildcard kernels/cuda/*.cu)
ifeq ($(CUDA),1)
  CPPFLAGS += -DLSDM_CUDA=1
  CU_OBJ  := $(CU_SRC:%.cu=$(BUILD)/%.o)
  LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublas -lcudart -lstdc++
  NVFLAGS ?= -O2 -std=c++17 -arch=sm_90 -Ilibshared -Ikernels -Xcompiler -Wall,-Werror
else
  CU_OBJ  :=
endif
# Philox samples must be bit-identical to the CPU's: no fused multiply-add.
$(BUILD)/kernels/cuda/rng.o: NVFLAGS += -fmad=false

LIB_SRC := $(wildcard libshared/*.c formats/*.c kernels/cpu/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOLS   := $(patsubst tools/%.c,%,$(wildcard tools/*.c))
PROGS   := $(TOOLS:%=$(BIN)/%)
CTESTS  := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/test_*.c))

.PHONY: default-model all deps test check demo asan fuzz bench clean cuda-note
all: cuda-note $(PROGS) $(CTESTS)

cuda-note:
ifeq ($(CUDA),0)
	@echo "note: building without CUDA ($(if $(NVCC),CUDA=0 given,nvcc not found)); programs run on the CPU"
endif

$(BUILD)/%.o: %.c $(wildcard libshared/*.h formats/*.h kernels/*.h kernels/cpu/*.h)
	@mkdir -p $(dir $@)
	@echo '  CC    $<'
	@$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.cu $(wildcard libshared/*.h kernels/*.h kernels/cuda/*.cuh)
	@mkdir -p $(dir $@)
	@echo '  NVCC  $<'
	@$(NVCC) $(NVFLAGS) -c -o $@ $<

$(BUILD)/liblsdm.a: $(LIB_OBJ) $(CU_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BIN)/%: tools/%.c $(BUILD)/liblsdm.a $(wildcard libshared/*.h formats/*.h kernels/*.h)
	@mkdir -p $(BIN)
	@echo '  LD    $@'
	@$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/liblsdm.a $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/%: tests/c/%.c $(BUILD)/liblsdm.a $(wildcard tests/c/*.h)
	@mkdir -p $(dir $@)
	@echo '  LD    $@'
	@$(CC) $(CPPFLAGS) -Itests/c $(CFLAGS) -o $@ $< $(BUILD)/liblsdm.a $(LDFLAGS) $(LDLIBS)

deps:
	@scripts/install-deps

test: deps
	$(MAKE) all
	LSDM_BIN=$(abspath $(BIN)) LSDM_CTESTS=$(abspath $(BUILD)/tests) tests/run

check: test

# clang at -O1 cannot always honour `omp simd` (a hint, not a requirement):
# -Wno-pass-failed keeps -Werror from turning that into a failed build.
asan: deps
	$(MAKE) BUILD=build-asan BIN=bin-asan CUDA=0 CC=clang OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -Wno-pass-failed" all
	ASAN_OPTIONS=detect_leaks=1 LSDM_BIN=$(abspath bin-asan) LSDM_CTESTS=$(abspath build-asan/tests) tests/run

FUZZ_SECONDS ?= 30
fuzz: deps
	$(MAKE) -C fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) run

bench: deps all
	bench/run

demo: deps
	$(MAKE) all
	scripts/demo

# The shipped default model (models/default): trained by the project's own
# pipeline on phantoms from fixed seeds (pipelines/README.md), exported
# without optimiser state. About 25 minutes on 2 cores.
DEFAULT_RUN ?= runs/default
default-model: deps
	$(MAKE) all
	$(MAKE) -f pipelines/experiment.mk OUT=$(DEFAULT_RUN) models
	for m in vq ldm seg; do cp $(DEFAULT_RUN)/$$m/$$m.export.st models/default/$$m.safetensors; done
	cat $(DEFAULT_RUN)/vq/vq.st.prov $(DEFAULT_RUN)/ldm/ldm.st.prov $(DEFAULT_RUN)/seg/seg.st.prov >models/default/PROVENANCE

clean:
	rm -rf build build-asan bin bin-asan fuzz/build
