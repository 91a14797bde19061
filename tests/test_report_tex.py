"""`snakemake --report` with or without TeX: the paper's PDF is a target (and a report item) only when latexmk is on
PATH or the PDF exists; without it every other output is still planned, the write-up's parts included. Parse-level
(dry runs), since building the report needs a finished run."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, snakemake_bin

RUN = "tex-probe"  # a run name with no outputs, so the PDF does not exist


def dry_run(path: str) -> str:
    env = {**os.environ, "PATH": path}
    result = subprocess.run([snakemake_bin(), "-n", "--cores", "1", "--configfile", "config/smoke.yaml",
                             "--config", f"run_name={RUN}"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def planned(output: str) -> set[str]:
    return {line.split()[1].rstrip(":") for line in output.splitlines() if line.startswith("rule ")}


def path_without_latexmk(tmp_path: Path) -> str:
    """PATH with the venv and every system tool but latexmk (which may be installed on this machine)."""
    bin_dir = tmp_path / "no-tex-bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else []:
            if tool.name != "latexmk" and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    return f"{Path(sys.executable).parent}:{bin_dir}"


def test_without_latexmk_the_paper_is_no_target(tmp_path):
    output = dry_run(path_without_latexmk(tmp_path))
    assert "latexmk not found on PATH" in output
    jobs = planned(output)
    assert "paper" not in jobs
    assert {"aggregate", "publish_numbers", "render_report", "record_sources"} <= jobs


def test_with_latexmk_the_paper_is_built(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "latexmk").write_text("#!/bin/sh\nexit 0\n")
    (fake / "latexmk").chmod(0o755)
    output = dry_run(f"{fake}:{path_without_latexmk(tmp_path)}")
    assert "latexmk not found" not in output and "paper" in planned(output)
