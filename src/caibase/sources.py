"""Public data the project uses, pinned by upstream commit and sha256.

`fetch(name)` returns a local path: from the mirror in `$CAI_DATA_MIRROR` when set (CI points it at
`../shared/data`), else downloaded once from upstream into `$CAIBASE_CACHE` (default `~/.cache/caibase`).
Either way the sha256 is checked before the file is used.
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from caibase.artifacts import atomic_path, read_jsonl, sha256_file

CAI_PAPER_REPO = "anthropics/ConstitutionalHarmlessnessPaper"
CAI_PAPER_COMMIT = "831f7813dbafab659a526d7452f7adeac464b796"
HH_RLHF_REPO = "anthropics/hh-rlhf"
HH_RLHF_COMMIT = "354e5c3cb8960630860dd5774a6ac2a58313bf4d"
# The study this project replicates (no license: fetched, never copied; parsed with `ast` by caibase.seed2025).
SEED_REPO = "bledden/cai-tinkerideas"
SEED_COMMIT = "36042acb97ecd16165fa0fea0e2b40fb0b6b017e"


@dataclass(frozen=True)
class Source:
    repo: str | None
    commit: str | None
    upstream_path: str | None
    sha256: str

    @property
    def url(self) -> str | None:
        if self.repo is None:
            return None
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.upstream_path}"


def _paper(path: str, sha256: str) -> Source:
    return Source(CAI_PAPER_REPO, CAI_PAPER_COMMIT, path, sha256)


SOURCES: dict[str, Source] = {
    "cai-paper/prompts/CritiqueRevisionInstructions.json": _paper(
        "prompts/CritiqueRevisionInstructions.json",
        "a55071cbef36e2a944e8e4f3612eb6afaaa63b5d56e7e8c14732cedc864b4045"),
    "cai-paper/prompts/CritiqueRevisionFewShotPrompts.json": _paper(
        "prompts/CritiqueRevisionFewShotPrompts.json",
        "cb8082c963af77b3e2713f1dc37adff01962b21ebb5f92d37877d559dfeb1085"),
    "cai-paper/prompts/RLMadisonInstructions.json": _paper(
        "prompts/RLMadisonInstructions.json", "aeadbe39725a89dc8d2fb0ed54f0a646a777dacd9b938175cb7b420fbd59930a"),
    "cai-paper/prompts/RLMadisonFewShotPrompts.json": _paper(
        "prompts/RLMadisonFewShotPrompts.json", "f1fdce27f1b4693a172aa4249e097b3a3beadcbc5c0b58d720d716a6d4999d74"),
    "cai-paper/prompts/RLMadisonPrecogFewShotPrompts.json": _paper(
        "prompts/RLMadisonPrecogFewShotPrompts.json",
        "9417ba076fec230ec2d7573dccacdc5e3cd2c0736cb8930bfb2aba78248dda70"),
    "cai-paper/evals/438HHHEvaluations.jsonl": _paper(
        "evals/438HHHEvaluations.jsonl", "d1ee180289d3eeeb314ad862344cbd9af07f19c6d52a77524f9a1a21e7373c10"),
    # A 100-row development sample that exists only in the CI mirror, for fast tests.
    "cai-paper/evals/438HHHEvaluations-dev100.jsonl": Source(
        None, None, None, "04ea00464ffe4696baa1c2761ff0c932587b59274c261545da5f2d6eba12ab42"),
    "hh-rlhf-harmless-base/test.jsonl.gz": Source(
        HH_RLHF_REPO, HH_RLHF_COMMIT, "harmless-base/test.jsonl.gz",
        "ebfaaed21162a4de120ae85366075b34425e2a6303fac59b99555002f7016f03"),
    # 1,992 of the 2,312 rows above, uncompressed; exists only in the CI mirror.
    "hh-rlhf-harmless-base/test-subset.jsonl": Source(
        None, None, None, "7bd029b9cb1903bd08c20c4cdf283911f67ca94aef5bcd7b81601acbcbcfe664"),
    "seed-repo/src/config.py": Source(
        SEED_REPO, SEED_COMMIT, "src/config.py", "63d9f352257b5e9d7a9c891c1ef522a18e8adc34d0853b9f5b61c18c55291179"),
    "seed-repo/src/evaluation.py": Source(
        SEED_REPO, SEED_COMMIT, "src/evaluation.py",
        "22c57265511787d29053fbda388b397c20877f5c8e6f4874f8f15a09f06292d4"),
    "seed-repo/src/style_diversity_eval.py": Source(
        SEED_REPO, SEED_COMMIT, "src/style_diversity_eval.py",
        "4eba8e08161069e23a97d52907e0bb6852d78700b43a30f0c96a3eb6edd50427"),
}


class SourceError(RuntimeError):
    pass


# Every source this process fetched: name -> its pin and where it was read from (see `fetched_sources`).
_FETCHED: dict[str, dict] = {}


def fetched_sources() -> dict[str, dict]:
    """The sources fetched so far by this process, each with its sha256 (checked), upstream repo, commit and path,
    and whether it was read from the mirror or from upstream: the provenance of the data a job used."""
    return {name: dict(_FETCHED[name]) for name in sorted(_FETCHED)}


def cache_dir() -> Path:
    return Path(os.environ.get("CAIBASE_CACHE", Path.home() / ".cache" / "caibase"))


def fetch(name: str) -> Path:
    """Local path of a pinned public file, verified by sha256."""
    if name not in SOURCES:
        raise SourceError(f"unknown data source {name!r}; known: {sorted(SOURCES)}")
    source = SOURCES[name]
    mirror = os.environ.get("CAI_DATA_MIRROR")
    if mirror:
        path = Path(mirror) / name
        if not path.is_file():
            raise SourceError(f"{name}: not in the mirror CAI_DATA_MIRROR={mirror} (expected {path})")
    else:
        if source.url is None:
            raise SourceError(f"{name} exists only in a mirror; set CAI_DATA_MIRROR")
        path = cache_dir() / name
        if not path.is_file():
            try:
                with urllib.request.urlopen(source.url, timeout=60) as response, atomic_path(path) as tmp:
                    tmp.write_bytes(response.read())
            except OSError as err:
                raise SourceError(
                    f"{name}: cannot download {source.url} ({err}); offline machines set CAI_DATA_MIRROR to a "
                    "directory holding the same files"
                ) from err
    actual = sha256_file(path)
    if actual != source.sha256:
        raise SourceError(f"{path}: sha256 {actual} does not match the pinned {source.sha256}")
    _FETCHED[name] = {"sha256": actual, "repo": source.repo, "commit": source.commit,
                      "upstream_path": source.upstream_path, "url": source.url,
                      "read_from": "mirror (CAI_DATA_MIRROR)" if mirror else "upstream (downloaded, cached)"}
    return path


HH_RLHF_FULL = "hh-rlhf-harmless-base/test.jsonl.gz"
HH_RLHF_SUBSET = "hh-rlhf-harmless-base/test-subset.jsonl"


def hh_rlhf_harmless_source() -> str:
    """Which HH-RLHF file this environment reads: the mirror's 1,992-row subset when the mirror holds it (and not
    the full file), else upstream's 2,312-row file. Rows are selected by a stable key (caibase.prompts.hh_rlhf_key),
    so both select the same rows wherever both hold them; which file was used is recorded (`fetched_sources`)."""
    mirror = os.environ.get("CAI_DATA_MIRROR")
    if mirror and not (Path(mirror) / HH_RLHF_FULL).is_file() and (Path(mirror) / HH_RLHF_SUBSET).is_file():
        return HH_RLHF_SUBSET
    return HH_RLHF_FULL


def hh_rlhf_harmless_rows() -> list[dict]:
    """HH-RLHF harmless-base test rows ({chosen, rejected}) from `hh_rlhf_harmless_source()`."""
    import gzip

    name = hh_rlhf_harmless_source()
    if name == HH_RLHF_SUBSET:
        rows = read_jsonl(fetch(name))
    else:
        with gzip.open(fetch(name), "rt", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    _FETCHED[name]["rows"] = len(rows)
    return rows


def hhh_rows(sample: str) -> list[dict]:
    """The paper's HHH evaluation of feedback models: `full` (438 rows) or `dev100`, a 100-row development sample,
    read from the mirror when it holds it, else selected from the full upstream file by the prompts' sha256."""
    import hashlib
    from importlib.resources import files

    if sample not in ("full", "dev100"):
        raise SourceError(f"unknown HHH sample {sample!r}; use 'full' or 'dev100'")
    dev100 = "cai-paper/evals/438HHHEvaluations-dev100.jsonl"
    mirror = os.environ.get("CAI_DATA_MIRROR")
    if sample == "dev100" and mirror and (Path(mirror) / dev100).is_file():
        return read_jsonl(fetch(dev100))
    rows = read_jsonl(fetch("cai-paper/evals/438HHHEvaluations.jsonl"))
    if sample == "full":
        return rows
    wanted = [line for line in files("caibase.data").joinpath("hhh_dev100_prompt_sha256.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    by_hash = {hashlib.sha256(row["prompt"].encode()).hexdigest(): row for row in rows}
    missing = [h for h in wanted if h not in by_hash]
    if missing:
        raise SourceError(f"{len(missing)} rows of the HHH dev100 sample are not in the full file")
    return [by_hash[h] for h in wanted]
