"""``dupe-scanner check-config``: the settings as loaded, or (raised before this runs)
every problem at once. It needs no state and no backend, so it imports neither: it starts
fast and works where the analysis libraries are missing or broken."""

from __future__ import annotations

from dupe_scanner.settings import Settings


def check_config(settings: Settings) -> int:
    source = settings.source or "built-in defaults (no settings file found)"
    _say(f"{source}: OK")
    _say(f"  backend: {settings.backend.kind}")
    _say(f"  state: {settings.paths.state}")
    _say(f"  reports: {settings.paths.reports}")
    for watch in settings.watch:
        note = "" if watch.path.is_dir() else "  (not a folder yet)"
        _say(f"  watch: {watch.path}{' (recursive)' if watch.recursive else ''}{note}")
    _say(f"  scan: threshold {settings.scan.threshold}, schedule {settings.scan.schedule.text}")
    return 0


def _say(text: str) -> None:
    print(text, flush=True)
