"""Running the real command line: as a subprocess, as a user or a script would
(``run_cli``), or in this process through ``dupe_scanner.cli.main`` (``call_main``),
which spares each command the seconds Python and the analysis libraries take to start."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_cli(*arguments: str, config: Path | None = None, timeout: float = 600, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "dupe_scanner", *arguments]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=config.parent if config else REPO, stdin=stdin)


def write_settings(folder: Path, extra: str = "") -> Path:
    path = folder / "settings.toml"
    path.write_text(f'[paths]\nstate = "state/state.db"\nreports = "reports"\n{extra}', encoding="utf-8")
    return path


def call_main(*arguments: str, config: Path | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """``run_cli`` without starting Python again: ``dupe_scanner.cli.main`` called here, as
    ``python -m dupe_scanner`` calls it, with the same result (exit code, stdout, stderr).

    It gets what a process of its own would have: the settings' folder as the working
    directory, an empty stdin, stdout and stderr written as the interpreter writes them and
    caught at file descriptors 1 and 2; and what ``main`` sets for the whole process (the
    logging, SIGTERM's handler, Pillow's size limit) is put back afterwards. For what is
    about processes (signals, a kill mid-way, start-up) use ``run_cli``. An exception
    ``main`` lets out fails the test (where the process would print it and exit with 1).
    ``timeout`` is accepted for ``run_cli``'s callers; the test's own timeout applies."""
    from dupe_scanner.cli import main

    argv = [*arguments, *(["--config", str(config)] if config is not None else [])]
    with _as_its_own_process(config.parent if config is not None else REPO) as output:
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse's usage errors, as `sys.exit(main())` ends
            code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
            if isinstance(exit.code, str):
                print(exit.code, file=sys.stderr)
    return subprocess.CompletedProcess(["dupe-scanner", *argv], code, output["stdout"], output["stderr"])


@contextmanager
def _as_its_own_process(cwd: Path) -> Iterator[dict[str, str]]:
    import logging

    from PIL import Image

    from dupe_scanner.logs import NOISY

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY}
    sigterm, limit, folder = signal.getsignal(signal.SIGTERM), Image.MAX_IMAGE_PIXELS, os.getcwd()
    streams = sys.stdin, sys.stdout, sys.stderr
    for stream in streams[1:]:
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    output: dict[str, str] = {}
    with tempfile.TemporaryFile() as caught_stdout, tempfile.TemporaryFile() as caught_stderr:
        files = [caught_stdout, caught_stderr]
        try:
            os.dup2(files[0].fileno(), 1)
            os.dup2(files[1].fileno(), 2)
            # sys.stdin, stdout and stderr own these until the finally closes them, before it
            # puts file descriptors 1 and 2 back: no with-block spans the yield that way.
            sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115
            assert sys.__stdout__ is not None and sys.__stderr__ is not None  # the interpreter's own, wrapped afresh
            sys.stdout, sys.stderr = (
                io.TextIOWrapper(open(fd, "wb", closefd=False), encoding=real.encoding, errors=real.errors, write_through=True)  # noqa: SIM115
                for fd, real in ((1, sys.__stdout__), (2, sys.__stderr__))
            )
            os.chdir(cwd)
            yield output
        finally:
            ours = sys.stdin, sys.stdout, sys.stderr
            sys.stdin, sys.stdout, sys.stderr = streams
            for stream in ours:
                if stream not in streams:
                    stream.close()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            for name, handle in zip(("stdout", "stderr"), files, strict=True):
                handle.seek(0)
                output[name] = handle.read().decode()
            os.chdir(folder)
            for handler in root.handlers[:]:
                if handler not in handlers:
                    root.removeHandler(handler)
                    handler.close()
            for handler in handlers:
                if handler not in root.handlers:
                    root.addHandler(handler)
            root.setLevel(level)
            for name, value in noisy.items():
                logging.getLogger(name).setLevel(value)
            signal.signal(signal.SIGTERM, sigterm)
            Image.MAX_IMAGE_PIXELS = limit
