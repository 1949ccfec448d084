"""Errors a user can act on: the CLI prints them as one line and exits non-zero."""


class RelistenError(Exception):
    """Base of every error caused by input, config or environment rather than a bug."""


class ConfigError(RelistenError, ValueError):
    """Unknown key, wrong type or missing config file."""


class InputError(RelistenError, ValueError):
    """Missing input file, table or column."""


class LakeError(RelistenError):
    """A Delta table cannot be written or read as asked (schema mismatch, missing table)."""


class TrainingError(RelistenError):
    """Distributed training failed on a worker; the message carries the worker's error."""
