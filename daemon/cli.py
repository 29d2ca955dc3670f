"""The command line: parse arguments, load settings, call one action, report in one line.

Exit codes: 0 success, 1 the work could not be done (backend down, unreadable state),
2 bad usage or invalid settings. Expected errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from dupe_scanner.errors import DupeScannerError, SettingsError, UsageError
from dupe_scanner.logs import ERROR, WARNING, configure_logging, prefixed, stderr_is_journal
from dupe_scanner.malloc_arenas import limit_malloc_arenas
from dupe_scanner.samples import DESCRIPTIONS, SAMPLES, sample_text
from dupe_scanner.settings import Settings, find_settings_file, load_settings
from dupe_scanner.store import LOCK_WAIT_SECONDS


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="settings file (default: ./settings.toml, then /etc/dupe-scanner/settings.toml)",
    )
    common.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=argparse.SUPPRESS,
        help="override [log] level from the settings",
    )
    common.add_argument(
        "--lock-wait",
        type=_seconds,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help=f"how long to wait for the state while another process writes to it (default {LOCK_WAIT_SECONDS:g})",
    )
    parser = argparse.ArgumentParser(
        prog="dupe-scanner",
        description="Find exact and near-duplicate images in your folders.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    status = verbs.add_parser("status", parents=[common], help="show the backend, the state, the service and failures")
    status.add_argument("--failures", type=int, default=20, metavar="N", help="list at most N failed files (default 20)")
    status.add_argument(
        "--repair", action="store_true", help="make the backend agree with the state (Flow: drop unknown docs, re-queue missing)"
    )

    index = verbs.add_parser("index", parents=[common], help="analyse and index the images in a folder")
    index.add_argument("--dir", type=Path, required=True, metavar="PATH", help="folder of images to index")
    index.add_argument("--no-recursive", action="store_true", help="only the folder itself, not its subfolders")
    index.add_argument("--retry-failed", action="store_true", help="try files that failed before once more")

    scan = verbs.add_parser("scan", parents=[common], help="find duplicates among indexed images and write the reports")
    scan.add_argument(
        "--threshold", type=_score, metavar="T", help="minimum score, 0.9 exact only, 0.6 near (default: [scan] threshold)"
    )
    scan.add_argument("--full", action="store_true", help="compare every image again, not only the new ones")

    clear = verbs.add_parser("clear", parents=[common], help="empty the index and the state (reports are kept)")
    clear.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    _add_decide(verbs, common)

    apply = verbs.add_parser(
        "apply",
        parents=[common],
        help="move the files your decisions leave out of each decided group aside (never the kept file)",
        description="Acts only on groups with a keep decision ('decide keep PATH'); a suggestion alone moves nothing. "
        "Files in a preferred folder, files you decided to keep and RAW + JPEG companions stay. Each file must be "
        "as it was indexed (size, time, bytes). A journal in the state folder lets 'undo' put everything back.",
    )
    apply.add_argument(
        "--move-to", type=Path, required=True, metavar="DIR",
        help="folder to move them into, keeping their path below their watched folder; outside every watched folder",
    )
    apply.add_argument("--dry-run", action="store_true", help="print what would be moved and change nothing")
    verbs.add_parser("undo", parents=[common], help="put back every file the last apply moved, byte for byte")

    verbs.add_parser("check-config", parents=[common], help="validate the settings file and print every problem")
    verbs.add_parser("run", parents=[common], help="run the folder-watching service in the foreground (systemd)")
    sample = verbs.add_parser(
        "sample",
        help="print a file an install needs: the sample settings or a systemd unit",
        description="Prints one of the files shipped with the program, to redirect where it belongs: "
        + "; ".join(f"{name}: {text}" for name, text in DESCRIPTIONS.items())
        + ". The README's service section says where each goes.",
    )
    sample.add_argument("name", choices=tuple(SAMPLES), metavar="NAME", help=f"one of {', '.join(SAMPLES)}")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dupe-scanner")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _add_decide(verbs, common: argparse.ArgumentParser) -> None:
    decide = verbs.add_parser(
        "decide",
        parents=[common],
        help="record, import, list or undo your decisions about duplicates",
        description="Decisions are kept in the state by content, so they hold after files move or are renamed. "
        "They change what scans report and what 'apply' moves; they never touch a file.",
    )
    decide.add_argument(
        "--import",
        dest="import_file",
        type=Path,
        metavar="FILE",
        help="record the decisions in a decisions file (JSON, format in the README), all or none",
    )
    kinds = decide.add_subparsers(dest="decision", metavar="DECISION", help="what to decide, or list or undo")
    not_duplicates = kinds.add_parser(
        "not-duplicates", parents=[common], help="these pictures are not duplicates: no report groups any two of them"
    )
    not_duplicates.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="two indexed files or more")
    keep = kinds.add_parser("keep", parents=[common], help="this picture is the one to keep in its group")
    keep.add_argument("path", type=Path, metavar="PATH", help="an indexed file")
    kinds.add_parser("list", parents=[common], help="list the decisions in force, with their ids")
    undo = kinds.add_parser("undo", parents=[common], help="undo one decision")
    undo.add_argument("id", type=int, metavar="ID", help="the decision's id, as 'decide list' shows it")


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 (exclusive) and 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a number of seconds above 0")
    return value


def main(argv: list[str] | None = None) -> int:
    limit_malloc_arenas()  # before any thread starts
    arguments = build_parser().parse_args(argv)
    journal = stderr_is_journal(os.environ)
    if arguments.verb == "sample":  # needs no settings: it may be how they are made
        sys.stdout.write(sample_text(arguments.name))
        return 0
    try:
        settings_path = find_settings_file(getattr(arguments, "config", None))
        settings = load_settings(settings_path)
        configure_logging(_log_level(arguments, settings), arguments.verb, journal)
        if arguments.verb != "run":  # the service stops on SIGTERM its own way
            # As Ctrl-C: the way out closes the backend, which ends its worker processes.
            signal.signal(signal.SIGTERM, signal.default_int_handler)
        return dispatch(arguments, settings)
    except SettingsError as error:
        _complain(f"dupe-scanner: {error}", journal)
        return error.exit_code
    except DupeScannerError as error:
        _complain(f"dupe-scanner: error: {error}", journal)
        return error.exit_code
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM
        _complain("dupe-scanner: interrupted; pending work is kept and resumes next time", journal, WARNING)
        return 130


def _complain(line: str, journal: bool, priority: int = ERROR) -> None:
    """The one line an expected error ends with; in the journal, at its priority."""
    print(prefixed(priority, line) if journal else line, file=sys.stderr)


def dispatch(arguments: argparse.Namespace, settings: Settings) -> int:
    verb = arguments.verb
    lock_wait = getattr(arguments, "lock_wait", LOCK_WAIT_SECONDS)
    if verb == "check-config":  # without the analysis stack (cv2, numpy, faiss, PIL)
        from dupe_scanner.config_check import check_config

        return check_config(settings)

    from dupe_scanner import actions  # here, so that `--help` and `check-config` start fast

    if verb == "status":
        return actions.status(settings, failures=arguments.failures, repair=arguments.repair, lock_wait=lock_wait)
    if verb == "index":
        directory = arguments.dir.expanduser()
        if not directory.is_dir():
            raise UsageError(f"--dir {directory}: not a folder")
        return actions.index(
            settings, directory.resolve(), not arguments.no_recursive, arguments.retry_failed, lock_wait=lock_wait
        )
    if verb == "scan":
        threshold = arguments.threshold if arguments.threshold is not None else settings.scan.threshold
        return actions.scan(settings, threshold, full=arguments.full, lock_wait=lock_wait)
    if verb == "clear":
        return actions.clear(settings, confirmed=arguments.yes, lock_wait=lock_wait)
    if verb == "decide":
        return _decide(arguments, settings, lock_wait)
    if verb in ("apply", "undo"):
        from dupe_scanner import apply

        if verb == "undo":
            return apply.undo(settings)
        return apply.apply(settings, arguments.move_to, dry_run=arguments.dry_run, lock_wait=lock_wait)
    if verb == "run":
        from dupe_scanner.service.app import run_service

        return run_service(settings, lock_wait=lock_wait)
    raise UsageError(f"unknown command {verb}")


def _decide(arguments: argparse.Namespace, settings: Settings, lock_wait: float) -> int:
    from dupe_scanner import decide

    decision = arguments.decision
    if (arguments.import_file is None) == (decision is None):
        raise UsageError("decide: give either --import FILE or one of not-duplicates, keep, list, undo")
    if arguments.import_file is not None:
        return decide.import_file(settings, arguments.import_file, lock_wait=lock_wait)
    if decision == "not-duplicates":
        if len(arguments.paths) < 2:
            raise UsageError("decide not-duplicates: name two files or more")
        return decide.decide_files(settings, "not-duplicates", arguments.paths, lock_wait=lock_wait)
    if decision == "keep":
        return decide.decide_files(settings, "keep", [arguments.path], lock_wait=lock_wait)
    if decision == "list":
        return decide.list_decisions(settings, lock_wait=lock_wait)
    return decide.undo_decision(settings, arguments.id, lock_wait=lock_wait)


def _log_level(arguments: argparse.Namespace, settings: Settings) -> str:
    """The service logs at ``[log] level``; one-shot commands print their own summary, so
    their log shows only warnings and errors unless ``--log-level`` asks for more."""
    explicit = getattr(arguments, "log_level", None)
    if explicit:
        return explicit
    if arguments.verb == "run":
        return settings.log_level
    return settings.log_level if settings.log_level in ("warning", "error") else "warning"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
