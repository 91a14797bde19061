# caibase: Constitutional AI from base models.
#   snakemake --cores all                                  # the default (embedded model, CPU)
#   snakemake --cores all --configfile config/paper.yaml   # the seed study on a GPU
import os

from snakemake.utils import min_version, validate

min_version("9.10")

# Jobs inherit this process's environment: fixed string hashing (set order, e.g. in saved adapter configs) and no
# tokenizer threads, however Snakemake was started (make, a plain `snakemake`, a profile, the container).
os.environ.update(PYTHONHASHSEED="0", TOKENIZERS_PARALLELISM=os.environ.get("TOKENIZERS_PARALLELISM", "false"))


# The default run, unless the command line names its own config: a --configfile then stands alone (no key is
# inherited from config.yaml; the schema fills defaults), while --config KEY=VALUE alone overrides single keys.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


# `snakemake --report report.html`: this description, the results summary, the generated tables and figures, and
# the paper's PDF when TeX built it (without latexmk the PDF is no target; see common.smk, paper_pdf_wanted).
report: "workflow/report/workflow.rst"


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
