#!/usr/bin/env python3
"""Checks that every public function declared in include/forkqueue.h has its
entry in docs/api.md (written `name()`). Prints what is missing; exit status
1 if any. (Which version each appeared in is said by its section.)
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
header = (root / "include" / "forkqueue.h").read_text()
header = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
names = sorted(set(re.findall(r"^[A-Za-z_][\w \*]*?\b(fq_\w+)\s*\(", header,
                              re.M)))
doc = (root / "docs" / "api.md").read_text()
bad = 0
for name in names:
    if f"`{name}()`" not in doc:
        print(f"docs/api.md: {name}() is not documented")
        bad += 1
print(f"{len(names)} public functions checked")
sys.exit(1 if bad else 0)
