"""The errors a command reports in one line (exit status 2) rather than as a traceback.

Kept free of heavy imports, so that ``sparsebench`` can name a bad argument before it loads torch,
Ray or MLflow.
"""


class SparsebenchError(Exception):
    """Something the user can fix, said in one line."""


class UnknownPluginError(SparsebenchError, KeyError):
    """A method or task name that no plugin registered."""

    def __str__(self) -> str:
        return self.args[0]


class DataError(SparsebenchError, RuntimeError):
    """A dataset file is missing, corrupt, or cannot be downloaded."""


class StoreError(SparsebenchError, RuntimeError):
    """The tracking store cannot be reached or opened."""
