# Ablations: one setting of pipelines/experiment.mk swept over values, one
# comparison table (pipelines/README.md):
#
#   make -f pipelines/sweep.mk SWEEP=GUIDANCE VALUES="0 1 1.5 3"
#   make -f pipelines/sweep.mk SWEEP=SAMPLE_STEPS VALUES="10 50 100"
#   make -f pipelines/sweep.mk SWEEP=GENERATOR VALUES="ldm noise"
#   make -f pipelines/sweep.mk SWEEP=VQ_CONFIG VALUES="tiny-f4 tiny-f4-spade"
#
# Settings of the sampling stage share one OUT (the models are trained
# once, each value samples into its own synth folder); any other setting
# (models, data) gets its own OUT/sweep-VAR-VALUE with its own models.
# Every other variable of experiment.mk passes through.
PIPE := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
OUT ?= runs/phantom
SWEEP ?= GUIDANCE
VALUES ?= 0 1 1.5 3
SAMPLING_VARS := GUIDANCE SAMPLE_STEPS SAMPLER GENERATOR SAMPLE_SEED DENOISE_ARGS
SHARED := $(filter $(SWEEP),$(SAMPLING_VARS))
# values as file names: a config file's path with its slashes as '_'
slug = $(subst /,_,$(1))
point_out = $(if $(SHARED),$(OUT),$(OUT)/sweep-$(SWEEP)-$(call slug,$(1)))
EXPERIMENT = $(MAKE) --no-print-directory -f $(PIPE)/experiment.mk

.PHONY: sweep shared-models $(addprefix point-,$(VALUES))
sweep: $(addprefix point-,$(VALUES))
	$(PIPE)/sweep-table $(SWEEP) $(foreach v,$(VALUES),$(v) $(call point_out,$(v)) \
	  $$(cat $(OUT)/.sweep-$(SWEEP)-$(call slug,$(v)))) >$(OUT)/sweep-$(SWEEP).md.tmp
	mv -f $(OUT)/sweep-$(SWEEP).md.tmp $(OUT)/sweep-$(SWEEP).md
	@echo "sweep: $(OUT)/sweep-$(SWEEP).md"

# Points of a shared OUT wait for its models, so make -j never trains them twice.
shared-models:
	$(if $(SHARED),$(EXPERIMENT) OUT=$(OUT) models data)
# Each point runs the experiment to its report and leaves the folder of
# its synthesis for the table.
$(addprefix point-,$(VALUES)): point-%: shared-models
	$(EXPERIMENT) OUT=$(call point_out,$*) $(SWEEP)=$* report
	@mkdir -p $(OUT)
	$(EXPERIMENT) OUT=$(call point_out,$*) $(SWEEP)=$* print-synth >$(OUT)/.sweep-$(SWEEP)-$(call slug,$*)
