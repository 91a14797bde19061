"""caibase: Constitutional AI from base models, as a seeded, containerized pipeline."""

from pathlib import Path

__version__ = "0.1.0"
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[1]  # the checkout: the package is installed editable from src/
