# The real-data walk-through of the README: the mricron-data templates
# (ch2 T1 and the AAL atlas grouped into three classes by aal-groups.map),
# 64 axial slices of 192x160 mm around the brain's centre, one volume:
#
#   make -f pipelines/mricron.mk           # about 15 minutes on 2 cores
#
# tiny VQ-GAN and diffusion model trained on random blocks of the T1 and
# its atlas; then the whole 64-slice volume is synthesised from the atlas
# in overlapping depth windows, and drawn beside the atlas and the T1.
PIPE := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
LSDM_BIN ?= $(abspath $(PIPE)/../bin)
export PATH := $(LSDM_BIN):$(PATH)
STAGE := $(PIPE)/stage
OUT ?= runs/mricron
TEMPLATES ?= /usr/share/mricron/templates
GRID ?= 64x192x160
VQ_STEPS ?= 2000
LDM_STEPS ?= 2000
SEED ?= 0
# the tiny VQ-GAN at f 4, as the default pipeline's
VQ_CONFIG ?= tiny-f4
GUIDANCE ?= 1.5

.DELETE_ON_ERROR:
.PHONY: all
all: $(OUT)/mricron.png

$(OUT)/t1.lsdm:
	$(STAGE) $@ vol-import -q --crop $(GRID) --name ch2 $(TEMPLATES)/ch2.nii.gz -o $@
$(OUT)/atlas.lsdm: $(PIPE)/aal-groups.map
	$(STAGE) $@ mask2sem -q --map @$(PIPE)/aal-groups.map --crop $(GRID) --name ch2 $(TEMPLATES)/aal.nii.gz -o $@
$(OUT)/vq.st: $(OUT)/t1.lsdm
	$(STAGE) $@ vq-train -q -c $(VQ_CONFIG) --steps $(VQ_STEPS) --seed $(SEED) --export $(OUT)/vq.export.st -o $@ $<
$(OUT)/z.lsdm: $(OUT)/t1.lsdm $(OUT)/vq.st
	$(STAGE) $@ vq-encode -q -m $(OUT)/vq.st $< -o $@
$(OUT)/ldm.st: $(OUT)/z.lsdm $(OUT)/atlas.lsdm $(OUT)/vq.st
	$(STAGE) $@ ldm-train -q -c tiny --vq $(OUT)/vq.st --seg $(OUT)/atlas.lsdm --steps $(LDM_STEPS) --seed $(SEED) \
	  --export $(OUT)/ldm.export.st -o $@ $<
$(OUT)/synthetic-z.lsdm: $(OUT)/atlas.lsdm $(OUT)/ldm.st
	$(STAGE) $@ ldm-denoise -q -m $(OUT)/ldm.st --vq $(OUT)/vq.st --guidance $(GUIDANCE) --seed $(SEED) $< -o $@
$(OUT)/synthetic.lsdm: $(OUT)/synthetic-z.lsdm
	$(STAGE) $@ vq-decode -q -m $(OUT)/vq.st $< -o $@
# atlas | T1 | synthetic, coronal and axial
$(OUT)/mricron.png: $(OUT)/atlas.lsdm $(OUT)/t1.lsdm $(OUT)/synthetic.lsdm
	vol-png -q --plane coronal --slice 110 $^ -o $(OUT)/coronal.png
	vol-png -q --plane axial --slice 40 $^ -o $(OUT)/axial.png
	vol-png -q --montage 4x1 $^ -o $@
