"""CSV cells that a spreadsheet will not run as formulas (OWASP "CSV Injection").

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula
to Excel, LibreOffice and Google Sheets: a subscriber named ``=HYPERLINK(...)`` would be a
live link in the editor's spreadsheet. ``neutralise`` puts a single quote in front, as
OWASP advises; ``restore`` takes it off again, so that exporting and importing a file
gives back the same names. Quotes already in front of a formula character get one more
(and lose one on the way back), so the pair is exact for every value.
"""

from __future__ import annotations

import re

_FORMULA = re.compile(r"'*[=+\-@\t\r]")
_NEUTRALISED = re.compile(r"'+[=+\-@\t\r]")


def neutralise(cell: str) -> str:
    """``cell`` safe to open in a spreadsheet: a ``'`` before a formula prefix."""
    return "'" + cell if _FORMULA.match(cell) else cell


def restore(cell: str) -> str:
    """The value ``neutralise`` was given (the inverse, for importing exported files)."""
    return cell[1:] if _NEUTRALISED.match(cell) else cell
