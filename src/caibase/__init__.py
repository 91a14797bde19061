"""caibase: Constitutional AI from base models, as a seeded, containerized pipeline."""

__version__ = "0.1.0"
