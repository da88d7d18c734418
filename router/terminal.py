"""Text from the tables, made safe to print on a terminal.

Anyone who can write a table (a cost record's model name, a config's deployment) could otherwise put
escape sequences in front of whoever runs the CLI: clear the screen, rewrite earlier lines, set the
window title or, on some terminals, worse. Control characters (C0, DEL, C1, so ESC and CSI) and the
invisible format characters that reorder or hide text (bidi overrides, zero-width) are dropped.
"""

from __future__ import annotations

import unicodedata


def printable(text: object) -> str:
    """``str(text)`` without control and format characters."""
    return "".join(ch for ch in str(text) if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"))
