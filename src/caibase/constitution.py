"""Constitutions: critique/revision principles, comparison principles and few-shot transcripts.

Three kinds load into the same `Constitution`: a folder of YAML files written for this project
(validated against `caibase/data/constitution.schema.yaml`), `anthropic-2022`, the paper's released prompt files,
or `seed-2025`, the replicated study's 18 principles (its few-shot parts from this project's folder), both
fetched pinned by commit and sha256 (see `caibase.sources`).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import jsonschema
import yaml

from caibase import sources

ANTHROPIC_2022 = "anthropic-2022"
SEED_2025 = "seed-2025"
# Constitutions fetched from a pinned public source (not a folder of this repository).
SOURCE_CONSTITUTIONS = (ANTHROPIC_2022, SEED_2025)
FILES = ("critique_revision", "comparison", "fewshot_critique", "fewshot_comparison")


class ConstitutionError(ValueError):
    pass


@dataclass(frozen=True)
class CritiquePrinciple:
    id: str
    critique_request: str
    revision_request: str


@dataclass(frozen=True)
class ComparisonPrinciple:
    id: str
    text: str


@dataclass(frozen=True)
class Constitution:
    name: str
    critique_principles: tuple[CritiquePrinciple, ...]
    comparison_principles: tuple[ComparisonPrinciple, ...]
    critique_fewshot: tuple[str, ...]  # complete transcripts in the paper's format
    comparison_fewshot: tuple[dict, ...]  # {human, principle, response_a, response_b, answer}

    def sample_critique_principle(self, rng: random.Random) -> CritiquePrinciple:
        return rng.choice(self.critique_principles)

    def sample_comparison_principle(self, rng: random.Random) -> ComparisonPrinciple:
        return rng.choice(self.comparison_principles)


def critique_transcript(human: str, assistant: str, critique_request: str, critique: str,
                        revision_request: str, revision: str) -> str:
    return (
        f"Human: {human}\n\nAssistant: {assistant}\n\nCritiqueRequest: {critique_request}\n\n"
        f"Critique: {critique}\n\nRevisionRequest: {revision_request}\n\nRevision: {revision}"
    )


def _schema() -> dict:
    return yaml.safe_load(files("caibase.data").joinpath("constitution.schema.yaml").read_text())


def _validated(path: Path, definition: str) -> dict:
    if not path.is_file():
        raise ConstitutionError(f"{path}: constitution file missing")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConstitutionError(f"{path}: invalid YAML: {err}") from None
    schema = _schema()
    validator = jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{definition}"})
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConstitutionError(f"{path}: at {where}: {error.message}")
    entries = next(v for v in document.values() if isinstance(v, list))
    ids = [entry["id"] for entry in entries]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConstitutionError(f"{path}: duplicate ids {duplicates}")
    return document


def load_yaml_constitution(folder: str | Path) -> Constitution:
    folder = Path(folder)
    docs = {name: _validated(folder / f"{name}.yaml", name) for name in FILES}
    return Constitution(
        name=docs["critique_revision"]["name"],
        critique_principles=tuple(
            CritiquePrinciple(p["id"], p["critique_request"], p["revision_request"])
            for p in docs["critique_revision"]["principles"]
        ),
        comparison_principles=tuple(ComparisonPrinciple(p["id"], p["text"]) for p in docs["comparison"]["principles"]),
        critique_fewshot=tuple(
            critique_transcript(e["human"], e["assistant"], e["critique_request"], e["critique"],
                                e["revision_request"], e["revision"])
            for e in docs["fewshot_critique"]["examples"]
        ),
        comparison_fewshot=tuple(docs["fewshot_comparison"]["examples"]),
    )


def _strip_marker(text: str, marker: str) -> str:
    """'\\n\\nCritiqueRequest: X\\n\\nCritique:' -> 'X'."""
    match = re.fullmatch(rf"\s*{marker}Request:\s*(.*?)\s*{marker}:\s*", text, flags=re.S)
    if not match:
        raise ConstitutionError(f"unexpected {marker} request format in the paper's file: {text[:80]!r}")
    return match.group(1)


def load_anthropic_2022() -> Constitution:
    """The paper's released prompts (github.com/anthropics/ConstitutionalHarmlessnessPaper, pinned)."""
    def load(name: str):
        return json.loads(sources.fetch(f"cai-paper/prompts/{name}").read_text(encoding="utf-8"))

    instructions = load("CritiqueRevisionInstructions.json")
    fewshot = load("CritiqueRevisionFewShotPrompts.json")
    comparison = load("RLMadisonInstructions.json")
    comparison_fewshot = load("RLMadisonFewShotPrompts.json")
    return Constitution(
        name=ANTHROPIC_2022,
        critique_principles=tuple(
            CritiquePrinciple(key, _strip_marker(value["prompt"][0], "Critique"),
                              _strip_marker(value["edit_request"], "Revision"))
            for key, value in instructions.items()
        ),
        comparison_principles=tuple(
            ComparisonPrinciple(f"madison{i}", text.strip().removesuffix("Options:").strip())
            for i, text in enumerate(comparison)
        ),
        critique_fewshot=tuple(text.strip() for text in fewshot),
        comparison_fewshot=tuple(
            {"prompt": item["prompt"], "corrects": item["corrects"], "incorrects": item["incorrects"]}
            for item in comparison_fewshot
        ),
    )


def load_seed_2025(base_dir: str | Path = ".", fewshot_from: str = "constitution") -> Constitution:
    """The replicated study's 18 principles (github.com/bledden/cai-tinkerideas, pinned; see caibase.seed2025),
    each the study's own critique prompt and revision prompt, verbatim. The study's pinned files hold no few-shot
    transcripts and no comparison principles (it trained DPO on revision pairs only), so those come from this
    project's constitution folder `fewshot_from` (relative to `base_dir`): the few-shot transcripts show the
    critique/revision format, and the comparison principles serve only the AI-feedback condition, which the study
    did not have."""
    from caibase import seed2025

    ours = load_yaml_constitution(Path(base_dir) / fewshot_from)
    return Constitution(
        name=SEED_2025,
        critique_principles=tuple(CritiquePrinciple(*p) for p in seed2025.critique_principles()),
        comparison_principles=ours.comparison_principles,
        critique_fewshot=ours.critique_fewshot,
        comparison_fewshot=ours.comparison_fewshot,
    )


def load_constitution(spec: str, base_dir: str | Path = ".") -> Constitution:
    """`anthropic-2022`, `seed-2025`, or a folder (relative to `base_dir`) of this project's YAML files."""
    if spec == ANTHROPIC_2022:
        return load_anthropic_2022()
    if spec == SEED_2025:
        return load_seed_2025(base_dir)
    folder = Path(base_dir) / spec
    if not folder.is_dir():
        raise ConstitutionError(f"constitution: {folder} is not a folder and not one of {SOURCE_CONSTITUTIONS}")
    return load_yaml_constitution(folder)
