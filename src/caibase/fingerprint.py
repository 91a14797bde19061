"""What a Snakemake job depends on besides its input files, as `params:` values Snakemake compares between runs.

Snakemake reruns a job when its params change (the `params` rerun trigger), so every rule passes

    params:
        config=job_config(config, "model", "device", "critique"),    # the config sections its job reads
        library=library_fingerprint("scripts/critique_revise.py"),   # the caibase code its script runs

A changed section reruns the jobs of the rules that read it (and their descendants, whose inputs change); a changed
`src/caibase/` module reruns the rules whose script imports it, directly or through other caibase modules. Scripts
read config only from `params.config`, a dict holding just those sections, so a section a rule does not declare is
a KeyError rather than a silent dependency. `snakemake --list-changes params` lists the jobs whose params differ
from their last run; `snakemake -n -r` prints each job's reason.

Torch-free: imported while Snakemake parses the workflow.
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
from pathlib import Path

from caibase import PACKAGE_DIR, REPO_ROOT

PACKAGE = "caibase"


class JobConfigError(KeyError):
    pass


def job_config(config: dict, *keys: str) -> dict:
    """The config a rule's job reads (its `params.config`): top-level sections or dotted keys (`evaluation.judge`),
    nested as in the config; `-dpo.sweep` leaves a key out of a section taken whole. A declared key the config
    lacks is left out (optional keys); a missing top-level section is an error."""
    selected: dict = {}
    for key in keys:
        if key.startswith("-"):
            continue
        *parents, leaf = key.split(".")
        source, target = config, selected
        if parents and parents[0] not in config or not parents and leaf not in config:
            raise JobConfigError(f"config has no section {key.split('.')[0]!r} (declared in a rule's params.config)")
        for part in parents:
            source = source.get(part, {}) if isinstance(source, dict) else {}
            target = target.setdefault(part, {})
        if isinstance(source, dict) and leaf in source:
            target[leaf] = copy.deepcopy(source[leaf])
    for key in keys:
        if key.startswith("-"):
            *parents, leaf = key[1:].split(".")
            target = selected
            for part in parents:
                target = target.get(part, {})
            target.pop(leaf, None)
    return _sorted(selected)


def _sorted(value):
    """Mappings with sorted keys at every level: Snakemake compares params by their text, and key order in a YAML
    file is not a change of config."""
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def _imported_modules(source: str) -> set[str]:
    """caibase modules a source file imports anywhere (top level or inside functions)."""
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == PACKAGE:
                modules.update(f"{PACKAGE}.{alias.name}" for alias in node.names)
            elif node.module.startswith(f"{PACKAGE}."):
                modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names if alias.name.startswith(f"{PACKAGE}."))
    return modules


def _module_file(module: str, package_dir: Path) -> Path | None:
    relative = Path(*module.split(".")[1:])
    for candidate in (package_dir / relative.with_suffix(".py"), package_dir / relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None  # a name imported from the package that is not a module (e.g. `from caibase import __version__`)


def library_closure(script: str | Path, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Every caibase source file a script can run: its imports, their imports, and so on; package data files
    (`caibase/data/`) count when a module reads them. Sorted, relative to the package's parent."""
    root = package_dir.parent
    seen: set[Path] = {package_dir / "__init__.py"}
    pending = [Path(script) if Path(script).is_absolute() else REPO_ROOT / script]
    files: set[Path] = set(seen)
    while pending:
        path = pending.pop()
        source = path.read_text(encoding="utf-8")
        if f'"{PACKAGE}.data"' in source:
            files.update(p for p in (package_dir / "data").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for module in _imported_modules(source):
            module_file = _module_file(module, package_dir)
            if module_file and module_file not in seen:
                seen.add(module_file)
                files.add(module_file)
                pending.append(module_file)
    return sorted(p.relative_to(root) for p in files)


@functools.cache
def library_fingerprint(script: str, package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the paths and bytes of `library_closure(script)` (the script itself is Snakemake's `code`
    trigger)."""
    digest = hashlib.sha256()
    for relative in library_closure(script, package_dir):
        digest.update(str(relative).encode() + b"\0" + (package_dir.parent / relative).read_bytes() + b"\0")
    return digest.hexdigest()
