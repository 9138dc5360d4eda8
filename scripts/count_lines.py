#!/usr/bin/env python3
"""Non-test Rust lines of the workspace at one or more commits, per crate: .rs files outside
tests/ and benches/ folders, blank and `//` comment lines (doc comments too) dropped, and every
`#[cfg(test)]` item (a test module or function) dropped. With two commits and --files, the
per-file difference between them.

usage: python3 scripts/count_lines.py REV [REV ...]
       python3 scripts/count_lines.py --files OLD NEW"""
import collections
import subprocess
import sys


def git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True)


def is_source(path):
    p = "/" + path
    return path.endswith(".rs") and "/tests/" not in p and "/benches/" not in p


def count(text):
    lines = text.split("\n")
    n, i = 0, 0
    while i < len(lines):
        s = lines[i].strip()
        i += 1
        if s.startswith("#[cfg(test)]"):
            # skip the item that follows: to its closing brace, or a one-line item's `;`
            depth, opened = 0, False
            while i < len(lines):
                s = lines[i].strip()
                i += 1
                depth += s.count("{") - s.count("}")
                opened = opened or "{" in s
                if (opened and depth <= 0) or (not opened and s.endswith(";")):
                    break
            continue
        if s and not s.startswith("//"):
            n += 1
    return n


def file_lines(rev, path):
    shown = git("show", f"{rev}:{path}")
    return count(shown.stdout) if shown.returncode == 0 else 0


def per_crate(rev):
    c = collections.Counter()
    for path in git("ls-tree", "-r", "--name-only", rev).stdout.split():
        if is_source(path):
            parts = path.split("/")
            c["/".join(parts[:2]) if parts[0] == "crates" else parts[0]] += file_lines(rev, path)
    return c


def main(argv):
    if argv[:1] == ["--files"] and len(argv) == 3:
        old, new = argv[1:]
        changed = git("diff", "--no-renames", "--name-only", old, new).stdout.split()
        rows = [(file_lines(new, f) - file_lines(old, f), f) for f in changed if is_source(f)]
        for d, f in sorted(rows):
            print(f"{d:+6d} {f}")
        print(f"{sum(d for d, _ in rows):+6d} in all")
        return
    for rev in argv:
        c = per_crate(rev)
        print(rev, sum(c.values()))
        for k, v in sorted(c.items()):
            print(f"  {v:6d} {k}")


if __name__ == "__main__":
    main(sys.argv[1:])
