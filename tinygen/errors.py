"""Typed errors. The library raises them; only the CLI turns them into a sentence."""


class TinygenError(Exception):
    """A problem the user can act on. str(e) is one sentence that says what to do."""


class BoardError(TinygenError):
    """Unknown board, or a board file that does not validate."""


class ModelError(TinygenError):
    """A model file that is missing, corrupt, truncated or not a model."""


class DataError(TinygenError):
    """Calibration or validation data that cannot be used with the model."""


class QuantizeError(TinygenError):
    """The model cannot be made full-integer int8."""


class UnsupportedOpError(TinygenError):
    """The model uses an op the chosen runtime does not have."""

    def __init__(self, message: str, ops: list[str]):
        super().__init__(message)
        self.ops = ops


class FitError(TinygenError):
    """The model does not fit the board. Carries the report so the CLI can still show it."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class FirmwareError(TinygenError):
    """The firmware could not be built or run."""
