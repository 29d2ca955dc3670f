"""The expected errors of dupe-scanner.

Each is caught where it can be acted on: a bad image fails one file, a backend that is
down leaves work pending, a settings error stops the command line (or, in the running
service, keeps the last good settings). Anything else is a bug and gets a traceback.
"""

from __future__ import annotations


class DupeScannerError(Exception):
    """Base of every error that is expected and reported to the user as one line."""

    exit_code = 1


class SettingsError(DupeScannerError):
    """The settings file cannot be used; ``problems`` lists every reason at once."""

    exit_code = 2

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  {source}: {problem}" for problem in problems)
        super().__init__(f"invalid settings in {source}:\n{listing}")


class UsageError(DupeScannerError):
    """The command line asked for something that cannot be done as asked."""

    exit_code = 2


class UnreadableImage(DupeScannerError):
    """The file is not an image we can decode (corrupt, truncated, too large, unknown format).

    Permanent for this content: retrying the same bytes gives the same answer.
    """


class AnalysisFailed(DupeScannerError):
    """The image decoded, but analysing it raised an error nobody expected (a bug).

    Raised in the analysis worker, for that one file; the indexer records the file as failed
    with the reason and goes on with the others. Permanent for this content and this analyser:
    ``index --retry-failed`` tries again after an upgrade.
    """


class FileVanished(DupeScannerError):
    """The file was removed or replaced while we were reading it."""


class BackendUnavailable(DupeScannerError):
    """The analysis backend cannot be reached or answered nonsense; retry later."""


class BackendLimitReached(DupeScannerError):
    """The backend refuses more documents (Flow Starter's 5,000-image limit)."""


class StateError(DupeScannerError):
    """The state database cannot be opened or upgraded."""


class FileWriteError(DupeScannerError):
    """A file (a report) cannot be written: full disk, no permission, read-only.

    The previous version of the file is left intact; the next attempt may succeed.
    """


class NoRoomForIndex(DupeScannerError):
    """The keypoint index of a large library finds no room beside the state, and is too large
    to build in memory instead: the scan stops before it compares anything, the fingerprints
    kept; it goes on once there is room."""


class StateInUse(StateError):
    """Another process holds the state for a job that must be alone on it (the service,
    a repair); ``holder`` says which, as its lock file does."""

    def __init__(self, state: str, holder: str):
        self.holder = holder
        super().__init__(f"the state {state} is in use by {holder}; stop that first, or give this one another [paths] state")


def is_bug(error: BaseException) -> bool:
    """Whether ``error`` deserves a traceback in the log: an expected error (the state
    database locked or full, the backend down) says all in its one line."""
    return not isinstance(error, DupeScannerError)
