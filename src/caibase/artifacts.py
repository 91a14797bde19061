"""Artifact files: atomic writes (temporary path, then rename), JSON/JSONL reading, hashing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """One JSON object per line, then the file's manifest (count and sha256) beside it."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
    write_manifest(path)


def write_csv(frame, path: str | os.PathLike, **to_csv) -> None:
    """A pandas table (no index, 4 decimals unless `float_format` is given), then its manifest."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, **{"float_format": "%.4f", **to_csv})
    write_manifest(path)


def read_json(path: str | os.PathLike):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON Lines file of objects; a line that is not UTF-8, not JSON or not a JSON object raises a
    ValueError naming the file and line."""
    records = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not UTF-8 (byte {raw[err.start]:#04x} at column "
                                 f"{err.start + 1})") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{lineno}: a JSON {type(record).__name__} where a JSON object is expected")
            records.append(record)
    return records


def read_records(path: str | os.PathLike) -> list[dict]:
    """`read_jsonl` for a pipeline record file, after checking it against its manifest (see check_manifest)."""
    check_manifest(path)
    return read_jsonl(path)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Manifests: every record file a producer writes gets `<file>.manifest.json` (its record count and sha256). Consumers
# of records (aggregate, publish_numbers, verify) refuse a file whose manifest is missing or does not match, so a
# truncated, partly rewritten or foreign file never reaches a published number.
MANIFEST_SUFFIX = ".manifest.json"


class ManifestError(ValueError):
    pass


def manifest_path(path: str | os.PathLike) -> Path:
    return Path(f"{path}{MANIFEST_SUFFIX}")


def _describe(path: Path) -> dict:
    data = path.read_bytes()
    lines = [line for line in data.split(b"\n") if line.strip()]
    count = len(lines) - 1 if path.suffix == ".csv" and lines else len(lines)  # CSV: rows below the header
    return {"file": path.name, "records": count, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_manifest(path: str | os.PathLike) -> None:
    """Record `path`'s count and sha256 beside it (written after the file itself, atomically)."""
    manifest = manifest_path(path)
    with atomic_path(manifest) as tmp:
        tmp.write_text(json.dumps(_describe(Path(path)), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def check_manifest(path: str | os.PathLike, *, required: bool = True) -> dict | None:
    """The manifest of `path` after checking the file against it; a mismatch (or, when required, no manifest) is a
    ManifestError naming the file, both counts and what to do."""
    path, manifest = Path(path), manifest_path(path)
    if not manifest.is_file():
        if required:
            raise ManifestError(f"{path}: no manifest ({manifest.name}); its producer did not finish or the file "
                                "was not written by the pipeline: rerun the job that writes it")
        return None
    expected = read_json(manifest)
    actual = _describe(path)
    if actual["sha256"] != expected["sha256"]:
        raise ManifestError(f"{path}: {actual['records']} records ({actual['bytes']} bytes), but its manifest says "
                            f"{expected['records']} records ({expected['bytes']} bytes) with another sha256: the file "
                            "is partial or was changed after its job wrote it; rerun that job")
    return expected
