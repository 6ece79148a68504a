"""The package version, kept apart so that telemetry can name it without importing the rest."""

__version__ = "0.1.0"
