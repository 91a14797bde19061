from caibase.data_scale import POLICY_OF_PAIRS


def data_scale_points():
    """Every point of the sweep per seed and pairs: SFT (no DPO), each subsample size, and the full pool."""
    points = []
    for seed in SEEDS:
        for pairs in SWEEP["pairs"]:
            seed_dir = f"{OUT}/seed{seed}/dpo/{pairs}"
            points.append({"seed": seed, "pairs": pairs, "point": "sft", "policy": "sft", "adapter": None})
            points += [{"seed": seed, "pairs": pairs, "point": f"n{n}", "policy": sweep_policy(pairs, n),
                        "adapter": f"{seed_dir}/n{n}/adapter"} for n in SWEEP["sizes"]]
            points.append({"seed": seed, "pairs": pairs, "point": "full", "policy": POLICY_OF_PAIRS[pairs],
                           "adapter": f"{seed_dir}/adapter"})
    return points


use rule dpo as dpo_subsample with:
    output:
        adapter=directory(f"{OUT}/seed{{seed}}/dpo/{{pairs}}/n{{n_pairs}}/adapter"),
        history=f"{OUT}/seed{{seed}}/dpo/{{pairs}}/n{{n_pairs}}/history.csv",
    params:
        n_pairs=lambda wildcards: int(wildcards.n_pairs),
    log:
        f"{OUT}/logs/seed{{seed}}/dpo_{{pairs}}_n{{n_pairs}}.log",
    benchmark:
        benchmark_file("seed{seed}/dpo_{pairs}_n{n_pairs}")
    wildcard_constraints:
        n_pairs=r"\d+",


rule data_scale:
    input:
        judged=sorted({rules.judge.output.judged.format(seed=p["seed"], policy=p["policy"])
                       for p in data_scale_points()}),
        adapters=[p["adapter"] for p in data_scale_points() if p["adapter"]],
        model=rules.prepare_model.output.info,
    output:
        per_seed=f"{OUT}/tables/data_scale.csv",
        summary=f"{OUT}/tables/data_scale_summary.csv",
    params:
        points=data_scale_points(),
        eval_sets=SWEEP["eval_sets"],
        bootstrap_samples=config["evaluation"]["bootstrap_samples"],
    log:
        f"{OUT}/logs/data_scale.log",
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/data_scale.py"
