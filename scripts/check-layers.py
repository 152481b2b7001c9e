#!/usr/bin/env python3
"""Checks that the C core's layers only call and include downwards.

Each folder of src/ is a layer, in this order from the bottom: a file may
call internal functions (fq__*) defined in its own layer or a lower one,
never in a layer above (docs/design.md), and a file (source or header) may
include the headers of its own layer or a lower one only. Calls upwards go
through tables of operations the upper layer hands down (loop/loop.h) or
function pointers (fq__qhead.destroy); an upper layer's structure is held
by pointer, declared but not defined below. Prints every violation; exit
status 1 if any.
"""
import pathlib
import re
import sys

LAYERS = ["core", "wire", "transport", "auth", "loop", "channel", "worker", "job",
          "queue", "server"]

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".") / "src"
defined = {}
files = {}
for layer in LAYERS:
    for p in sorted((root / layer).glob("*.c")):
        text = re.sub(r"/\*.*?\*/", "", p.read_text(), flags=re.S)
        files[p] = (layer, text)
        for m in re.finditer(r"^[A-Za-z_][\w \*]*?\b(fq__\w+)\(", text, re.M):
            defined.setdefault(m.group(1), layer)

bad = 0
others = {p.relative_to(root).parts[0] for p in root.glob("*/*.c")}
for extra in sorted(others - set(LAYERS)):
    print(f"src/{extra}/: not a known layer (add it to LAYERS)")
    bad += 1
for p, (layer, text) in files.items():
    for name in sorted(set(re.findall(r"\b(fq__\w+)\s*\(", text))):
        owner = defined.get(name)
        if owner and LAYERS.index(owner) > LAYERS.index(layer):
            print(f"{p.relative_to(root.parent)}: calls {name}() of the "
                  f"{owner} layer, above {layer}")
            bad += 1
include = re.compile(r'^\s*#\s*include\s*"([a-z_]+)/[^"]+"', re.M)
for layer in LAYERS:
    for p in sorted((root / layer).glob("*.[ch]")):
        for m in include.finditer(p.read_text()):
            other = m.group(1)
            if other not in LAYERS:
                print(f"{p.relative_to(root.parent)}: includes {m.group(0).split()[-1]}"
                      f" of src/{other}/, not a known layer")
                bad += 1
            elif LAYERS.index(other) > LAYERS.index(layer):
                print(f"{p.relative_to(root.parent)}: includes "
                      f"{m.group(0).split()[-1]} of the {other} layer, above "
                      f"{layer}")
                bad += 1
sys.exit(1 if bad else 0)
