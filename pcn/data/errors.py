"""The one error type of the data package."""


class DataError(RuntimeError):
    """A data set is missing, corrupted or inconsistent (the message names the file or key)."""
