"""Showing untrusted text (file names) to people: one line, every character visible.

A file name may hold anything but ``/`` and NUL: line breaks, terminal escapes, bytes that
are not UTF-8, and bidirectional controls (U+202E makes ``photo\u202egpj.exe`` read as
``photoexe.jpg``). Everywhere a name is shown to a person (``status``, the log, the HTML
report) it goes through ``visible``, so it shows what it is.
"""

from __future__ import annotations

SURROGATE_BYTES = range(0xDC80, 0xDD00)  # where os.fsdecode puts bytes that are not UTF-8


def visible(text: str) -> str:
    """``text`` as one harmless line: what does not print as itself is shown as an escape.

    Control, format (bidirectional controls among them) and separator characters become
    ``\\n``, ``\\u202e`` and the like; bytes that are not UTF-8 become ``\\xe9``.
    """
    if text.isprintable():  # nearly every path: one pass in C, not a Python step a character
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code in SURROGATE_BYTES:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:  # \n, \t, \x1b: unlike a byte that is not UTF-8, always below \x80
        return char.encode("unicode_escape").decode("ascii")
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
