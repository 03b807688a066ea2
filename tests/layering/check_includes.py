#!/usr/bin/env python3
"""Fails when an include arrow points the wrong way between the rooms of src/.

The allowed graph is the table in docs/architecture.md, section "The rooms": each row names a
room (`src/<room>/`) and, in its last cell, the rooms it may include (`<room>/`), or
"everything". The line starting "Leaves every room may include:" names the rooms any room
may include. Every `#include "<room>/..."` in src/ must be the file's own room, a leaf, or a
room its row allows; a room under src/ without a row is an error too, so a new room has to be
placed in the graph before it builds green.

Usage: check_includes.py <repository root>
"""
import pathlib
import re
import sys


def read_rules(architecture):
    text = architecture.read_text(encoding="utf-8")
    section = re.search(r"^## The rooms\n(.*?)^## ", text, re.S | re.M)
    if not section:
        sys.exit(f"{architecture}: no section '## The rooms'")
    body = section.group(1)
    allowed = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3:
            continue
        room = re.fullmatch(r"`src/([a-z_]+)/`", cells[0])
        if not room:
            continue
        last = cells[-1]
        if "everything" in last:
            allowed[room.group(1)] = None  # any room
        else:
            allowed[room.group(1)] = set(re.findall(r"`([a-z_]+)/`", last))
    leaves_line = re.search(r"^Leaves every room may include: (.*)$", body, re.M)
    if not leaves_line:
        sys.exit(f"{architecture}: no line 'Leaves every room may include: ...' in The rooms")
    leaves = set(re.findall(r"`([a-z_]+)/`", leaves_line.group(1)))
    return allowed, leaves


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    allowed, leaves = read_rules(root / "docs" / "architecture.md")
    src = root / "src"
    rooms = {p.name for p in src.iterdir() if p.is_dir()}
    errors = []
    for room in sorted(rooms - allowed.keys()):
        errors.append(f"src/{room}/: no row in docs/architecture.md's table of rooms")
    for room in sorted(allowed.keys() - rooms):
        errors.append(f"docs/architecture.md names src/{room}/, which does not exist")
    include = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"', re.M)
    for path in sorted(src.rglob("*")):
        if path.suffix not in (".h", ".cc", ".in") or not path.is_file():
            continue
        room = path.relative_to(src).parts[0]
        if room not in allowed:
            continue
        for m in include.finditer(path.read_text(encoding="utf-8", errors="replace")):
            target = m.group(1)
            if target == room or target in leaves or allowed[room] is None:
                continue
            if target not in rooms:
                errors.append(f"{path.relative_to(root)}: includes {m.group(0).strip()!r}, "
                              f"not a room of src/")
            elif target not in allowed[room]:
                line = m.string.count("\n", 0, m.start()) + 1
                errors.append(f"{path.relative_to(root)}:{line}: src/{room}/ may not include "
                              f"src/{target}/ (docs/architecture.md, The rooms)")
    for e in errors:
        print(e)
    if errors:
        return 1
    print(f"{len(rooms)} rooms, every include allowed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
