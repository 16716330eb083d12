"""File names as text: a lossless, printable, reversible representation of any path.

On POSIX a file name is a string of bytes; Python decodes the bytes that are not valid UTF-8
to lone surrogates (``surrogateescape``: the byte ``0xE9`` becomes ``'\\udce9'``), which no
UTF-8 file (CSV, JSON) can hold and no terminal can print. biqa writes paths in outputs
(``biqa score`` CSV / JSON, its resume files, the printed table) as :func:`path_to_text` gives
them:

- a path that is valid text and does not start with a double quote is written **unchanged**
  (every ordinary name, including names with commas, spaces, quotes inside or newlines: the CSV
  and JSON writers quote those as usual);
- any other path is written **quoted**, git-style: inside double quotes, each byte that is not
  valid UTF-8 becomes ``\\xHH`` (two lowercase hex digits), a backslash ``\\\\``, a double quote
  ``\\"``, control characters ``\\n``, ``\\t``, ``\\r`` or ``\\xHH``, and any other lone
  surrogate ``\\uXXXX``. Example: the bytes ``caf\\xe9.jpg`` (Latin-1 "café") are written
  ``"caf\\xe9.jpg"`` (with the quotes).

A written path is quoted exactly when it starts and ends with ``"`` (an unquoted name never
starts with one), so :func:`text_to_path` undoes :func:`path_to_text` for every path:
``os.fsencode(text_to_path(path_to_text(p))) == os.fsencode(p)``.
"""
from __future__ import annotations

import os
import re

_NAMED = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNNAMED = {v: k for k, v in _NAMED.items()}
_ESCAPE = re.compile(r'\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[\\"ntr])')


def _needs_quoting(s: str) -> bool:
    if s.startswith('"'):
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: undecodable bytes (surrogateescape) or worse
        return True
    return False


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that was not valid UTF-8 (surrogateescape)
        return f"\\x{o - 0xDC00:02x}"
    if 0xD800 <= o <= 0xDFFF:  # any other lone surrogate
        return f"\\u{o:04x}"
    if o < 0x20 or o == 0x7F:
        return f"\\x{o:02x}"
    return ch


def path_to_text(path: str | os.PathLike | bytes) -> str:
    """The printable, UTF-8-safe text of a path (see the module docstring); unchanged for ordinary names."""
    s = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    if not _needs_quoting(s):
        return s
    return '"' + "".join(_escape_char(c) for c in s) + '"'


def _unescape(m: re.Match) -> str:
    e = m.group(1)
    if e[0] == "x":
        o = int(e[1:], 16)
        return chr(0xDC00 + o) if o >= 0x80 else chr(o)  # bytes >= 0x80 back to surrogateescape
    if e[0] == "u":
        return chr(int(e[1:], 16))
    return _UNNAMED["\\" + e]


def text_to_path(text: str) -> str:
    """The path (a ``str`` as ``os`` functions take it) that :func:`path_to_text` wrote as ``text``."""
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return _ESCAPE.sub(_unescape, text[1:-1])
    return text


def printable(text: str) -> str:
    """Any text made safe to print and write as UTF-8 (error messages): lone surrogates become
    ``\\xHH`` / ``\\uXXXX`` escapes. Lossy for text that happens to contain such escapes; use
    :func:`path_to_text` for paths."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join(_escape_char(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
