"""Text from the vault made safe for a log line or a terminal: one line, printable.

A file name can hold a newline (and after it a complete forged log line), a carriage
return, ANSI and OSC escapes (which recolour, clear or retitle the terminal of whoever
reads the log), line separators that journald and str.splitlines() split on, C1
controls, bidirectional overrides, and bytes that are not UTF-8. `shown` escapes all
of them the way Python writes them (`\\n`, `\\x1b`, `\\u2028`; an undecodable byte as
`\\xNN`) and leaves printable text, in any script, as it is. Every value from the vault
that reaches a log line or a terminal goes through it: the call sites apply it to
the values they log, and the log sinks apply it once more to every whole message and
traceback, so a value a call site missed is caught too. Escaped text is printable, so
`shown` changes it no further.
"""

from __future__ import annotations

import traceback
from types import TracebackType

__all__ = ["json_shown", "shown", "traceback_lines"]

# Zero-width (non-)joiners are format characters, but harmless and part of many emoji
# and Indic names: kept.
_KEPT = frozenset("\u200c\u200d")


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for a byte that is not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return repr(char)[1:-1]


def shown(value: object) -> str:
    """value (a str, or anything str() takes) as one line of printable text: every
    character str.isprintable() refuses is escaped as Python writes it, a byte that was
    not UTF-8 (a surrogate escape) as \\xNN."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in _KEPT else _escape(c) for c in text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # beyond the BMP: JSON writes a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_shown(text: str) -> str:
    """JSON text (as json.dumps or orjson writes it, line breaks between values
    allowed) with every character str.isprintable() refuses inside its strings written
    as a \\uXXXX escape: the same JSON to a parser, and nothing a terminal acts on (JSON
    escapes C0 controls itself, but passes C1 controls and bidirectional overrides)."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() or c in _KEPT or c == "\n" else _json_escape(c) for c in text
    )


def traceback_lines(
    exc_type: type[BaseException] | None,
    value: BaseException | None,
    tb: TracebackType | None,
) -> list[str]:
    """A traceback as Python prints it (no variable values), each line safe: the
    message of each exception, which may quote a file name, is one escaped line, so
    no line of a traceback can pass for a log entry."""
    if exc_type is None or value is None:
        return [] if exc_type is None else [shown(exc_type.__name__)]
    lines: list[str] = []
    for chunk in traceback.TracebackException(exc_type, value, tb).format():
        if chunk.startswith("  File "):  # a frame: our code's own lines
            lines += (shown(line) for line in chunk.rstrip("\n").split("\n"))
        elif chunk.strip():  # a heading, or an exception's "Type: message"
            lines.append(shown(chunk.strip("\n")))
    return lines
