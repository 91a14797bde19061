# caibase: Constitutional AI from base models.
#   snakemake --cores all                                  # the default (embedded model, CPU)
#   snakemake --cores all --configfile config/paper.yaml   # the seed study on a GPU
from snakemake.utils import min_version, validate

min_version("9.10")


# The default run, unless the command line names its own config: a --configfile then stands alone (no key is
# inherited from config.yaml; the schema fills defaults), while --config KEY=VALUE alone overrides single keys.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/prompts.smk"
include: "workflow/rules/sft.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/slcai.smk"
include: "workflow/rules/feedback.smk"
include: "workflow/rules/dpo.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/data_scale.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
