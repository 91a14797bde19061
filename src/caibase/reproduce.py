"""A rerun against the published numbers: what a reviewer who reran the pipeline on their own machine reproduced.

    make compare      # the committed paper/published.json (git HEAD) against the rerun's
                      # results/<run_name>/paper/published.json, report in results/<run_name>/reproduction.json

`make verify` recomputes every published number from the records it was computed from; this module answers the next
question, whether a *new run* gives the same numbers. Each published key falls in one class, the first that fits:

- `identical`: |rerun - published| <= the verification tolerance (published.json's `tolerance`);
- `same_display`: the same to the digits the paper prints (the entries' `display`);
- `within_ci`: a number the paper reports with a 95% interval (a condition mean, a paired difference, a sweep point,
  an accuracy, agreement or gate rate) whose rerun value lies inside the *published* interval of the same quantity;
- `differs`: any other number;
- `machine`: what measures the machine rather than the study (the `cost/` numbers: job time, CPU time, memory) is
  listed but never counted as reproduced or not;
- `missing` / `new`: a key only the published (or only the rerun's) file has.

Beside the numbers it compares the conclusions: for every paired comparison whether its 95% interval excludes 0 in
both runs alike, and every gate's validity (a judge or feedback model that passes in one run and fails in the
other changes what the paper may report). The two runs' model hash, config hash, code version and device are shown
side by side: numbers only reproduce from the same model, config and code; across CPUs float rounding differs
(README, "Determinism"). Torch-free.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

from caibase.artifacts import write_json
from caibase.vocabulary import COST, GATE, PAIRED, parse_key

CLASSES = ("identical", "same_display", "within_ci", "differs", "machine", "missing", "new")
REPRODUCED = ("identical", "same_display", "within_ci")
POINT_STATISTICS = ("mean", "difference", "rate")  # estimates whose interval is their siblings ci95_low/ci95_high
META_FIELDS = ("code_version", "config_sha256", "device", "model", "instruct_reference", "run_name")


class ComparisonError(ValueError):
    """An input that is not a published-numbers file."""


def load_published(path: str | Path, text: str | None = None) -> dict:
    """A published.json (format caibase-published/1), from `path` or from its `text` (then `path` only names it)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8") if text is None else text)
    except FileNotFoundError:
        raise ComparisonError(f"{path}: no such file (has the run finished? `make run` writes it)") from None
    except json.JSONDecodeError as err:
        raise ComparisonError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith("caibase-published/"):
        raise ComparisonError(f"{path}: not a published-numbers file (no `format: caibase-published/...`)")
    for i, entry in enumerate(data.get("numbers", [])):
        if not isinstance(entry, dict) or not {"key", "value", "display"} <= set(entry):
            raise ComparisonError(f"{path}: numbers[{i}] lacks key, value or display")
    return data


def published_at(rev: str, path: str, repo: str | Path = ".") -> dict:
    """published.json as committed at git revision `rev` (the numbers a rerun overwrote in the working tree)."""
    shown = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{path}"], check=False,
                           capture_output=True, text=True)
    if shown.returncode != 0:
        raise ComparisonError(f"git show {rev}:{path}: {shown.stderr.strip() or 'failed'} (outside a git checkout, "
                              f"pass the published file itself with --published and no --published-rev)")
    return load_published(f"{rev}:{path}", shown.stdout)


def interval_of(key: str, values: dict[str, float]) -> tuple[float, float] | None:
    """The published 95% interval of the quantity `key` estimates, when the paper reports one: `<prefix>/ci95_low`
    and `/ci95_high` beside a mean, difference or rate, `<prefix>/<statistic>_ci95_low` beside an accuracy or
    agreement."""
    prefix, _, statistic = key.rpartition("/")
    for low, high in ((f"{prefix}/{statistic}_ci95_low", f"{prefix}/{statistic}_ci95_high"),
                      (f"{prefix}/ci95_low", f"{prefix}/ci95_high") if statistic in POINT_STATISTICS else (None, None)):
        if low in values and high in values:
            return values[low], values[high]
    return None


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def classify(key: str, published: dict, rerun: dict | None, tolerance: float, values: dict[str, float]) -> str:
    """The class (CLASSES) of one published entry against the rerun's entry of the same key."""
    if rerun is None:
        return "missing"
    if parse_key(key).kind == COST:
        return "machine"
    old, new = _number(published["value"]), _number(rerun["value"])
    if old is None or new is None:
        return "identical" if old is None and new is None else "differs"
    if abs(old - new) <= tolerance:
        return "identical"
    if published["display"] == rerun["display"]:
        return "same_display"
    interval = interval_of(key, values)
    if interval is not None and interval[0] - tolerance <= new <= interval[1] + tolerance:
        return "within_ci"
    return "differs"


def _excludes_zero(values: dict[str, float], prefix: str) -> bool | None:
    low, high = values.get(f"{prefix}/ci95_low"), values.get(f"{prefix}/ci95_high")
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return None
    return low > 0 or high < 0


def conclusions(published: dict[str, float], rerun: dict[str, float]) -> list[dict]:
    """Per paired comparison, whether its 95% interval excludes 0 in each run, and per gate whether it is valid."""
    rows = []
    for key in sorted(published):
        parsed = parse_key(key)
        if parsed.kind == PAIRED and parsed.statistic == "difference":
            prefix = key.rpartition("/")[0]
            old, new = _excludes_zero(published, prefix), _excludes_zero(rerun, prefix)
            rows.append({"key": prefix, "kind": "paired_excludes_zero", "published": old, "rerun": new,
                         "same": old == new})
        elif key.startswith(f"{GATE}/") and parsed.statistic == "valid":
            old, new = bool(published[key]), (bool(rerun[key]) if key in rerun else None)
            rows.append({"key": key, "kind": "gate_valid", "published": old, "rerun": new, "same": old == new})
    return rows


def compare(published: dict, rerun: dict) -> dict:
    """The comparison of two published-numbers files: per key its class and both values, counts per class, the
    conclusions (`conclusions`) and the two runs' provenance side by side."""
    tolerance = float(published.get("tolerance", {}).get("abs", 1e-6))
    old = {entry["key"]: entry for entry in published["numbers"]}
    new = {entry["key"]: entry for entry in rerun["numbers"]}
    old_values = {key: _number(entry["value"]) for key, entry in old.items()}
    new_values = {key: _number(entry["value"]) for key, entry in new.items()}
    numbers = []
    for key, entry in old.items():
        other = new.get(key)
        numbers.append({"key": key, "class": classify(key, entry, other, tolerance, old_values),
                        "published": entry["value"], "rerun": other["value"] if other else None,
                        "published_display": entry["display"], "rerun_display": other["display"] if other else None,
                        "published_ci95": interval_of(key, old_values)})
    numbers += [{"key": key, "class": "new", "published": None, "rerun": entry["value"], "published_display": None,
                 "rerun_display": entry["display"], "published_ci95": None}
                for key, entry in new.items() if key not in old]
    counts = Counter(row["class"] for row in numbers)
    compared = sum(counts[c] for c in ("identical", "same_display", "within_ci", "differs"))
    found = conclusions({k: v for k, v in old_values.items() if v is not None},
                        {k: v for k, v in new_values.items() if v is not None})
    meta_old, meta_new = published.get("meta", {}), rerun.get("meta", {})
    return {
        "counts": {c: counts.get(c, 0) for c in CLASSES},
        "compared": compared,
        "reproduced": sum(counts[c] for c in REPRODUCED),
        "conclusions": {"n": len(found), "same": sum(row["same"] for row in found),
                        "changed": [row for row in found if not row["same"]]},
        "provenance": {field: {"published": meta_old.get(field), "rerun": meta_new.get(field),
                               "same": meta_old.get(field) == meta_new.get(field)} for field in META_FIELDS},
        "tolerance": tolerance,
        "numbers": numbers,
    }


def _interval_text(interval) -> str:
    return f" (95% interval {interval[0]:.3g} to {interval[1]:.3g})" if interval else ""


def summary_lines(result: dict, show: int = 20) -> list[str]:
    """The report a reviewer reads: provenance differences, counts, changed conclusions, the largest differences."""
    lines = []
    for field, sides in result["provenance"].items():
        if not sides["same"]:
            lines.append(f"{field} differs: published {sides['published']!r}, rerun {sides['rerun']!r}")
    counts = result["counts"]
    lines.append(f"{result['compared']} numbers compared: {counts['identical']} identical, {counts['same_display']} "
                 f"the same to the digits shown, {counts['within_ci']} inside the published 95% interval, "
                 f"{counts['differs']} differ; {counts['machine']} machine measurements (cost) not compared; "
                 f"{counts['missing']} missing, {counts['new']} new")
    found = result["conclusions"]
    lines.append(f"conclusions: {found['same']} of {found['n']} the same (paired intervals excluding 0, gate "
                 f"validity)")
    lines += [f"  changed: {row['key']} ({row['kind']}): published {row['published']}, rerun {row['rerun']}"
              for row in found["changed"]]
    differing = [row for row in result["numbers"] if row["class"] in ("differs", "missing", "new")]
    if differing:
        lines.append(f"not reproduced ({len(differing)}; first {min(show, len(differing))}):")
        lines += [f"  {row['key']}: published {row['published_display']}{_interval_text(row['published_ci95'])}, "
                  f"rerun {row['rerun_display']} [{row['class']}]" for row in differing[:show]]
    return lines


def _paths_from_config(args: argparse.Namespace) -> None:
    import yaml

    try:
        config = yaml.safe_load(Path(args.configfile).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ComparisonError(f"{args.configfile}: no such config") from None
    run_name, publish_dir = config.get("run_name"), (config.get("report") or {}).get("publish_dir")
    if not run_name:
        raise ComparisonError(f"{args.configfile}: no run_name")
    if not publish_dir and not args.published:
        raise ComparisonError(f"{args.configfile}: report.publish_dir is not set, so this config publishes no "
                              f"numbers to compare with; name them with --published")
    run = Path("results") / run_name
    args.published = args.published or f"{publish_dir}/published.json"
    args.rerun = args.rerun or str(run / "paper" / "published.json")
    args.out = args.out or str(run / "reproduction.json")  # beside, not in, the run's DVC-versioned paper/


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configfile", help="take both paths from this config: the published numbers from "
                        "<report.publish_dir>/published.json, the rerun's from results/<run_name>/paper/")
    parser.add_argument("--published", help="the published numbers (with --published-rev: that path in git)")
    parser.add_argument("--published-rev", help="read --published as committed at this git revision (e.g. HEAD): "
                        "a rerun of the reference config overwrites paper/ in the working tree")
    parser.add_argument("--rerun", help="the rerun's published.json (results/<run_name>/paper/)")
    parser.add_argument("--out", help="write the full comparison here (JSON; with --configfile by default "
                        "results/<run_name>/reproduction.json)")
    parser.add_argument("--require", choices=("identical", "same_display", "within_ci"),
                        help="exit 1 unless every compared number is at least this close and no conclusion changed")
    args = parser.parse_args(argv)
    try:
        if args.configfile:
            _paths_from_config(args)
        if not args.published or not args.rerun:
            raise ComparisonError("name --published and --rerun, or --configfile")
        published = (published_at(args.published_rev, args.published) if args.published_rev
                     else load_published(args.published))
        result = compare(published, load_published(args.rerun))
    except ComparisonError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.out:
        write_json(args.out, result)
    print("\n".join(summary_lines(result)))
    if args.require:
        accepted = CLASSES[: CLASSES.index(args.require) + 1]
        failing = [row for row in result["numbers"] if row["class"] not in (*accepted, "machine")]
        if failing or result["conclusions"]["changed"]:
            print(f"not reproduced at --require {args.require}: {len(failing)} numbers, "
                  f"{len(result['conclusions']['changed'])} conclusions", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
