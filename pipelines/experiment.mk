# The Med-LSDM experiment as a make graph (pipelines/README.md):
#
#   data -> split -> mask2sem -> vq-train -> vq-encode -> ldm-train
#        -> ldm-denoise (test masks) -> vq-decode -> vol-export
#        -> seg-train / seg-infer / dice-eval, fid3d, vol-metrics -> report
#
#   make -f pipelines/experiment.mk                 # phantoms, everything
#   make -f pipelines/experiment.mk OUT=runs/duke DATA_IMAGES=img/ DATA_MASKS=seg/
#   make -f pipelines/experiment.mk GUIDANCE=3      # resamples, keeps the models
#
# Each stage's settings live in a small file that changes only when they
# do, so changing one setting reruns what depends on it and nothing else.
# Each trainer also exports the inference-only checkpoint (X.export.st:
# what make demo ships, see `make default-model`).
# Every output FILE has FILE.prov beside it: command, version, date, machine
# and the sha256 of each input (pipelines/stage).

PIPE := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
LSDM_BIN ?= $(abspath $(PIPE)/../bin)
export PATH := $(LSDM_BIN):$(PATH)
STAGE := $(PIPE)/stage

OUT ?= runs/phantom

# ---- data: DATA_IMAGES / DATA_MASKS (anything vol-import reads, on one
# grid, paired in order), else phantoms. The first N_TRAIN records train,
# the next N_TEST test.
DATA_IMAGES ?=
DATA_MASKS ?=
N_TRAIN ?= 8
N_TEST ?= 4
PHANTOM_SEED ?= 1
PHANTOM_SHAPE ?= 32x256x256
MASK2SEM_ARGS ?=

# ---- models
VQ_CONFIG ?= tiny-f4
VQ_STEPS ?= 2000
VQ_SEED ?= 0
VQ_ARGS ?=
LDM_CONFIG ?= tiny
LDM_STEPS ?= 2000
LDM_SEED ?= 0
LDM_ARGS ?=
SEG_CONFIG ?= tiny
SEG_STEPS ?= 1000
SEG_SEED ?= 0
SEG_ARGS ?=

# ---- sampling (each setting gets its own folder under $(OUT)/synth)
SAMPLER ?= ddim
SAMPLE_STEPS ?= 50
GUIDANCE ?= 1.5
SAMPLE_SEED ?= 0
DENOISE_ARGS ?=
# ldm (the diffusion model) or noise: ldm-denoise --baseline noise, the
# sampler's start noise decoded as it is (a baseline)
GENERATOR ?= ldm
SYNTH_TAG ?= $(GENERATOR)-$(SAMPLER)$(SAMPLE_STEPS)-g$(GUIDANCE)-s$(SAMPLE_SEED)

# ---- evaluation
FID_ARGS ?=
METRICS_ARGS ?=

D := $(OUT)/data
S := $(OUT)/synth/$(SYNTH_TAG)
SPADE := $(findstring spade,$(VQ_CONFIG))
LAST_TRAIN := $(shell echo $$(($(N_TRAIN) - 1)))
LAST_TEST := $(shell echo $$(($(N_TRAIN) + $(N_TEST) - 1)))

.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: all data models synth eval report FORCE
all: report
data: $(D)/train-img.lsdm $(D)/test-img.lsdm $(D)/train-sem.lsdm $(D)/test-sem.lsdm
models: $(OUT)/vq/vq.st $(OUT)/ldm/ldm.st $(OUT)/seg/seg.st
synth: $(S)/images.lsdm $(S)/nifti.done
eval: $(S)/dice.json $(S)/fid.json $(S)/metrics.json $(OUT)/eval/real-dice.json $(OUT)/eval/recon-metrics.json
report: $(S)/report.md

# A settings file: rewritten only when its text changes (then its time
# makes the stages that read it stale).
define settings
	@mkdir -p $(@D)
	@printf '%s\n' $(1) >$@.new
	@if cmp -s $@.new $@; then rm -f $@.new; else mv -f $@.new $@; fi
endef
$(D)/settings: FORCE
	$(call settings,'images=$(DATA_IMAGES)' 'masks=$(DATA_MASKS)' 'n_train=$(N_TRAIN)' 'n_test=$(N_TEST)' \
	  'phantom_seed=$(PHANTOM_SEED)' 'phantom_shape=$(PHANTOM_SHAPE)' 'mask2sem=$(MASK2SEM_ARGS)')
$(OUT)/vq/settings: FORCE
	$(call settings,'config=$(VQ_CONFIG)' 'steps=$(VQ_STEPS)' 'seed=$(VQ_SEED)' 'args=$(VQ_ARGS)')
$(OUT)/ldm/settings: FORCE
	$(call settings,'config=$(LDM_CONFIG)' 'steps=$(LDM_STEPS)' 'seed=$(LDM_SEED)' 'args=$(LDM_ARGS)')
$(OUT)/seg/settings: FORCE
	$(call settings,'config=$(SEG_CONFIG)' 'steps=$(SEG_STEPS)' 'seed=$(SEG_SEED)' 'args=$(SEG_ARGS)')
$(S)/settings: FORCE
	$(call settings,'generator=$(GENERATOR)' 'sampler=$(SAMPLER)' 'steps=$(SAMPLE_STEPS)' \
	  'guidance=$(GUIDANCE)' 'seed=$(SAMPLE_SEED)' 'args=$(DENOISE_ARGS)' 'fid=$(FID_ARGS)' 'metrics=$(METRICS_ARGS)')

# ---- data
ifeq ($(DATA_IMAGES),)
$(D)/all-img.lsdm: $(D)/settings
	$(STAGE) $@ phantom -q --seed $(PHANTOM_SEED) -n $$(($(N_TRAIN) + $(N_TEST))) --shape $(PHANTOM_SHAPE) \
	  -o $@ --masks $(D)/all-lab.lsdm
$(D)/all-lab.lsdm: $(D)/all-img.lsdm ;
else
$(D)/all-img.lsdm: $(D)/settings
	$(STAGE) $@ vol-import -q $(DATA_IMAGES) -o $@
$(D)/all-lab.lsdm: $(D)/settings
	$(STAGE) $@ vol-import -q --labels $(DATA_MASKS) -o $@
endif
# Records are renamed train-000.../test-000... so real images, masks and
# everything made from them pair by name (mask2sem drops the names anyway).
$(D)/train-img.lsdm $(D)/train-lab.lsdm: $(D)/train-%.lsdm: $(D)/all-%.lsdm
	$(STAGE) $@ vol-import -q --records 0-$(LAST_TRAIN) --name 'train-%03d' $< -o $@
$(D)/test-img.lsdm $(D)/test-lab.lsdm: $(D)/test-%.lsdm: $(D)/all-%.lsdm
	$(STAGE) $@ vol-import -q --records $(N_TRAIN)-$(LAST_TEST) --name 'test-%03d' $< -o $@
$(D)/train-sem.lsdm $(D)/test-sem.lsdm: $(D)/%-sem.lsdm: $(D)/%-lab.lsdm
	$(STAGE) $@ mask2sem -q $(MASK2SEM_ARGS) --name '$*-%03d' $< -o $@
$(D)/train-onehot.lsdm $(D)/test-onehot.lsdm: $(D)/%-onehot.lsdm: $(D)/%-lab.lsdm
	$(STAGE) $@ mask2sem -q $(MASK2SEM_ARGS) --onehot --name '$*-%03d' $< -o $@

# ---- VQ-GAN
$(OUT)/vq/vq.st: $(D)/train-img.lsdm $(OUT)/vq/settings $(if $(SPADE),$(D)/train-onehot.lsdm)
	rm -f $(OUT)/vq/log.csv
	$(STAGE) $@ vq-train -q -c $(VQ_CONFIG) --steps $(VQ_STEPS) --seed $(VQ_SEED) $(VQ_ARGS) \
	  $(if $(SPADE),--seg $(D)/train-onehot.lsdm) --log $(OUT)/vq/log.csv \
	  --export $(OUT)/vq/vq.export.st -o $@ $<
$(OUT)/vq/train-z.lsdm: $(D)/train-img.lsdm $(OUT)/vq/vq.st
	$(STAGE) $@ vq-encode -q -m $(OUT)/vq/vq.st --output prequant $< -o $@

# ---- diffusion
$(OUT)/ldm/ldm.st: $(OUT)/vq/train-z.lsdm $(D)/train-sem.lsdm $(OUT)/vq/vq.st $(OUT)/ldm/settings
	rm -f $(OUT)/ldm/log.csv
	$(STAGE) $@ ldm-train -q -c $(LDM_CONFIG) --vq $(OUT)/vq/vq.st --seg $(D)/train-sem.lsdm --steps $(LDM_STEPS) \
	  --seed $(LDM_SEED) $(LDM_ARGS) --log $(OUT)/ldm/log.csv --export $(OUT)/ldm/ldm.export.st -o $@ $<

# ---- synthesis from the test masks
GENERATOR_ARGS = $(if $(filter noise,$(GENERATOR)),--baseline noise)
$(S)/z.lsdm: $(D)/test-sem.lsdm $(OUT)/ldm/ldm.st $(OUT)/vq/vq.st $(S)/settings
	$(STAGE) $@ ldm-denoise -q -m $(OUT)/ldm/ldm.st --vq $(OUT)/vq/vq.st --sampler $(SAMPLER) --steps $(SAMPLE_STEPS) \
	  --guidance $(GUIDANCE) --seed $(SAMPLE_SEED) $(GENERATOR_ARGS) $(DENOISE_ARGS) $< -o $@
$(S)/images.lsdm: $(S)/z.lsdm $(OUT)/vq/vq.st $(if $(SPADE),$(D)/test-onehot.lsdm)
	$(STAGE) $@ vq-decode -q -m $(OUT)/vq/vq.st $(if $(SPADE),--seg $(D)/test-onehot.lsdm) $< -o $@
$(S)/nifti.done: $(S)/images.lsdm
	$(STAGE) $@ vol-export -q $< -o $(S)/nifti
	touch $@

# ---- segmenter, trained on real training volumes
$(OUT)/seg/seg.st: $(D)/train-img.lsdm $(D)/train-sem.lsdm $(OUT)/seg/settings
	rm -f $(OUT)/seg/log.csv
	$(STAGE) $@ seg-train -q -c $(SEG_CONFIG) --steps $(SEG_STEPS) --seed $(SEG_SEED) $(SEG_ARGS) \
	  --log $(OUT)/seg/log.csv --export $(OUT)/seg/seg.export.st -o $@ $(D)/train-img.lsdm $(D)/train-sem.lsdm

# ---- evaluation: Dice of the segmenter on real test volumes and on the
# volumes synthesised from their masks; 3D-FID and paired metrics of the
# synthetic volumes against the real ones; the VQ-GAN's reconstructions
# of the real test volumes as the ceiling of the paired metrics.
$(OUT)/eval/real-pred.lsdm: $(D)/test-img.lsdm $(OUT)/seg/seg.st
	$(STAGE) $@ seg-infer -q -m $(OUT)/seg/seg.st $< -o $@
$(S)/pred.lsdm: $(S)/images.lsdm $(OUT)/seg/seg.st
	$(STAGE) $@ seg-infer -q -m $(OUT)/seg/seg.st $< -o $@
$(OUT)/eval/real-dice.json: $(OUT)/eval/real-pred.lsdm $(D)/test-sem.lsdm
	$(STAGE) $@ --stdout dice-eval --json $^
$(S)/dice.json: $(S)/pred.lsdm $(D)/test-sem.lsdm
	$(STAGE) $@ --stdout dice-eval --json $^
$(S)/fid.json: $(D)/test-img.lsdm $(S)/images.lsdm $(S)/settings
	$(STAGE) $@ --stdout fid3d -q --json --input-range minmax $(FID_ARGS) $(D)/test-img.lsdm $(S)/images.lsdm
$(S)/metrics.json: $(D)/test-img.lsdm $(S)/images.lsdm $(S)/settings
	$(STAGE) $@ --stdout vol-metrics -q --json --rescale minmax $(METRICS_ARGS) $(D)/test-img.lsdm $(S)/images.lsdm
$(OUT)/eval/recon.lsdm: $(D)/test-img.lsdm $(OUT)/vq/vq.st $(if $(SPADE),$(D)/test-onehot.lsdm)
	$(STAGE) $(OUT)/eval/recon-z.lsdm vq-encode -q -m $(OUT)/vq/vq.st $< -o $(OUT)/eval/recon-z.lsdm
	$(STAGE) $@ vq-decode -q -m $(OUT)/vq/vq.st $(if $(SPADE),--seg $(D)/test-onehot.lsdm) $(OUT)/eval/recon-z.lsdm -o $@
$(OUT)/eval/recon-metrics.json: $(D)/test-img.lsdm $(OUT)/eval/recon.lsdm
	$(STAGE) $@ --stdout vol-metrics -q --json --rescale minmax $(METRICS_ARGS) $^

# ---- report: markdown and PNG montages in $(S), linked as $(OUT)/report.md
$(S)/report.md: $(S)/dice.json $(S)/fid.json $(S)/metrics.json $(OUT)/eval/real-dice.json \
		$(OUT)/eval/recon-metrics.json $(S)/nifti.done
	$(PIPE)/report $(OUT) $(S) >$@.tmp
	mv -f $@.tmp $@
	ln -sfn synth/$(SYNTH_TAG)/report.md $(OUT)/report.md

# For pipelines/sweep.mk: where this setting's outputs go.
.PHONY: print-synth
print-synth:
	@echo $(S)
