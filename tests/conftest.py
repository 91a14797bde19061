import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "data"
if MIRROR.is_dir():  # the offline copy of the pinned public data, beside every checkout here and in CI
    os.environ.setdefault("CAI_DATA_MIRROR", str(MIRROR))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A prepared tiny random model (the `tiny` source), built once per session."""
    from caibase.models import prepare_model

    out = tmp_path_factory.mktemp("tiny-model")
    prepare_model({"source": "tiny", "kind": "base"}, out)
    return out


@pytest.fixture
def data_mirror(monkeypatch) -> Path:
    """The offline mirror of the public data (`../shared/data`); CI always has it."""
    mirror = Path(os.environ.get("CAI_DATA_MIRROR", MIRROR))
    if not mirror.is_dir():
        pytest.skip(f"no public-data mirror at {mirror}: set CAI_DATA_MIRROR (CI points it at ../shared/data)")
    monkeypatch.setenv("CAI_DATA_MIRROR", str(mirror))
    return mirror


@pytest.fixture(scope="session")
def public_data() -> str:
    """Where a pipeline run gets the pinned public data: the offline mirror, or upstream when it is reachable.
    A machine with neither (no `../shared/data`, no network) skips the pipeline runs, saying so; CI has the mirror."""
    mirror = Path(os.environ.get("CAI_DATA_MIRROR", MIRROR))
    if mirror.is_dir():
        return str(mirror)
    import urllib.error
    import urllib.request

    upstream = "https://raw.githubusercontent.com/"
    try:
        urllib.request.urlopen(urllib.request.Request(upstream, method="HEAD"), timeout=5)
    except urllib.error.HTTPError:
        pass  # the server answered
    except OSError as err:
        pytest.skip(f"the pipeline run needs the pinned public data: no mirror at {mirror} (set CAI_DATA_MIRROR; CI "
                    f"points it at ../shared/data) and {upstream} is unreachable ({getattr(err, 'reason', err)})")
    return upstream


def load_config(name: str) -> dict:
    """A shipped config with the schema's defaults filled in, as Snakemake's validate() does."""
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config" / name).read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def snakemake_bin() -> str:
    """The snakemake of the interpreter running the tests (the project's venv)."""
    beside = Path(sys.executable).parent / "snakemake"
    return str(beside) if beside.exists() else shutil.which("snakemake") or pytest.fail("snakemake not installed")
