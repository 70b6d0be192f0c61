"""Package version, kept in step with ``pyproject.toml`` and recorded in every dataset card."""

__version__ = "0.1.0"
