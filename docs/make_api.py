"""Writes docs/api.md from nn.h's public declarations and their doc comments,
section by section, so the reference never drifts from the header.
Usage: python3 docs/make_api.py   (from the repository root)"""
import re

src = open("nn.h").read()
api = src[src.index("#ifndef NN_H"):src.index("#endif /* NN_H */")]
out = ["# nn.h API reference", "",
       "Generated from the declarations in `nn.h` by `docs/make_api.py`: the header is the",
       "source of truth. Sections follow the header's table of contents (search nn.h for",
       "`>>name`). The tutorial is [guide.md](guide.md).", ""]
section = None
for block in re.split(r"\n\s*\n", api):
    lines = [l for l in block.split("\n") if l.strip()]
    if not lines:
        continue
    m = re.match(r"/\* ===== >>(\w+)", lines[0].strip())
    if m:
        section = m.group(1)
        if section != "config":
            out += ["## " + section, ""]
        lines = lines[1:]
        if not lines:
            continue
    if section is None or section == "config":
        continue
    # Leading comment lines are the prose; the rest is the declaration.
    prose, i = [], 0
    if lines[0].strip().startswith("/*"):
        while i < len(lines):
            prose.append(lines[i].strip())
            i += 1
            if "*/" in lines[i - 1]:
                break
    code = [l for l in lines[i:] if not l.startswith("#ifdef") and not l.startswith("#endif")
            and "extern \"C\"" not in l and not l.startswith("}")
            or l.startswith("} ") or l.startswith("};")]
    code = [l for l in code if not l.strip().startswith("/* NN_")]
    text = " ".join(prose).replace("/*", "").replace("*/", "").strip()
    text = re.sub(r"\s+", " ", text)
    if text:
        out += [text, ""]
    if code:
        out += ["```c"] + [l.replace("NNDEF ", "") for l in code] + ["```", ""]
open("docs/api.md", "w").write("\n".join(out).rstrip() + "\n")
