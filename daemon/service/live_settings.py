"""The live settings stage: the settings every stage reads, and how an edit reaches them.

``LiveSettings`` holds the current settings; the stages are handed it and call it for
them, so they always read the latest. ``start`` sets a ``ConfigReloader`` watching the
settings file (``config_reload``); on an edit or SIGHUP the reloader, on its own
thread, calls ``changed``, which posts the change to the main loop (the intake's) and
waits for it to be applied there, between two batches of hints. Settings that need a
restart are kept, with a warning; the log level follows at once; then the listener
the life cycle (``app``) set tells each stage what changed for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from dupe_scanner.service.config_reload import ConfigReloader
from dupe_scanner.service.notify import Notifier
from dupe_scanner.settings import Settings

log = logging.getLogger("dupe_scanner.service")

# Settings that need a restart: the state file and the backend are opened once.
RESTART_NEEDED = ("paths.state", "backend")


class LiveSettings:
    """The current settings (call it for them), and the reloader that changes them; see
    the module's docstring."""

    def __init__(self, settings: Settings, post: Callable[[Callable[[], None]], None]):
        self.current = settings
        self._post = post
        self._listener: Callable[[Settings, Settings], None] | None = None
        self.reloader: ConfigReloader | None = None

    def __call__(self) -> Settings:
        return self.current

    def on_change(self, listener: Callable[[Settings, Settings], None]) -> None:
        """Call ``listener(old, new)`` on the main loop once new settings are current."""
        self._listener = listener

    def start(self, notifier: Notifier) -> ConfigReloader | None:
        """Watch the settings file for edits; None when running on the built-in defaults."""
        if self.current.source is not None:
            self.reloader = ConfigReloader(self.current.source, self.current, self.changed, notifier=notifier)
            self.reloader.start()
        return self.reloader

    def sighup(self) -> None:
        """SIGHUP came (the main loop calls this): read the settings file again."""
        if self.reloader is not None:
            self.reloader.request("SIGHUP")
        else:
            log.info("SIGHUP: no settings file to reload (running on the built-in defaults)")

    def stop(self) -> None:
        if self.reloader is not None:
            self.reloader.stop()

    def changed(self, old: Settings, new: Settings) -> None:
        """Called on the reloader's thread: the main loop applies it, and we wait for that."""
        done = threading.Event()

        def apply() -> None:
            try:
                self._apply(old, new)
            finally:
                done.set()

        self._post(apply)
        if not done.wait(60):
            log.warning("the new settings are taking long to apply")

    def _apply(self, old: Settings, new: Settings) -> None:
        for key in RESTART_NEEDED:
            section, _, name = key.partition(".")
            before = getattr(getattr(old, section), name) if name else getattr(old, section)
            after = getattr(getattr(new, section), name) if name else getattr(new, section)
            if before != after:
                log.warning("%s changed: this takes effect at the next restart (systemctl restart dupe-scanner)", key)
        # Keep what cannot change while running, take the rest.
        new = replace(new, paths=replace(new.paths, state=old.paths.state), backend=old.backend)
        self.current = new
        if new.log_level != old.log_level:
            logging.getLogger().setLevel(new.log_level.upper())
        if self._listener is not None:
            self._listener(old, new)
