"""Which code made a result: a digest of the package's source and of the libraries that draw
the reports. Results kept between runs (report pages, the record of the last reports) carry
it, so a new version (or an edited checkout) makes them again once, whatever it changed,
with no version number to remember to bump."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import metadata
from pathlib import Path

REPORT_LIBRARIES = ("pyvis", "jinja2", "networkx")


@lru_cache(maxsize=1)
def code_digest() -> str:
    """The package's source and the versions of the libraries that draw the reports."""
    digest = hashlib.sha256()
    for name in REPORT_LIBRARIES:
        digest.update(f"{name} {metadata.version(name)}\n".encode())
    package = Path(__file__).parent
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()
