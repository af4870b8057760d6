"""Checks that every relative link in the project's Markdown resolves.

Usage: python3 scripts/lib/check_links.py [FILE.md ...]
Without arguments it checks every Markdown file of the work tree (README.md, docs/, the
components' READMEs…) outside installed and generated directories. A link resolves when its path exists in the work tree
and, if it has a `#anchor` and points at a Markdown file (or is `#anchor` alone), that file has a
heading whose GitHub slug is the anchor. External links (http:, https:, mailto:) are not
followed: the check needs no network. Prints every broken link as `file:line: link (why)` and
exits 1 if there is one.

GitHub's heading slug: the heading's text, inline Markdown removed, lower-cased; every character
that is not a letter, digit, space, `-` or `_` dropped; spaces become `-`. A repeated slug gets
`-1`, `-2`, … in order of appearance.
"""

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Directories that hold installed or generated files, not the project's own Markdown.
SKIP_DIRS = {".git", "target", "node_modules", ".venv", ".tools", ".terraform"}

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target); the target ends at whitespace or ')'. An optional title
# ("…") is skipped. Nested brackets in the text are rare enough to ignore.
INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
CODE_SPAN = re.compile(r"`+[^`]*`+")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)


def strip_inline(text: str) -> str:
    """The heading text GitHub slugs: links reduced to their text, images, emphasis and code
    markers removed, HTML tags removed."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("`", "").replace("*", "").replace("~", "")


def slug(text: str) -> str:
    text = strip_inline(text).strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def lines_outside_code(path: Path):
    """(line number, line) for every line not inside a fenced code block."""
    in_fence = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            yield number, line


_anchors: dict[Path, set[str]] = {}


def anchors(path: Path) -> set[str]:
    if path not in _anchors:
        found: set[str] = set()
        counts: dict[str, int] = {}
        for _, line in lines_outside_code(path):
            for name in HTML_ANCHOR.findall(line):
                found.add(name)
            match = HEADING.match(line)
            if not match:
                continue
            base = slug(match.group(2))
            n = counts.get(base, 0)
            counts[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        _anchors[path] = found
    return _anchors[path]


def links(path: Path):
    for number, line in lines_outside_code(path):
        line = CODE_SPAN.sub("", line)
        for match in INLINE_LINK.finditer(line):
            yield number, match.group(1)
        match = REFERENCE_DEF.match(line)
        if match:
            yield number, match.group(1)


def problem(source: Path, target: str) -> str | None:
    """Why `target`, linked from `source`, does not resolve; None when it does."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
        return None  # external (http:, https:, mailto:, …): not checked, no network
    path_part, _, anchor = target.partition("#")
    path_part = path_part.split("?", 1)[0]
    if path_part:
        resolved = (ROOT / path_part.lstrip("/")) if path_part.startswith("/") else (source.parent / path_part)
        resolved = resolved.resolve()
        if not resolved.exists():
            return "no such file"
        try:
            resolved.relative_to(ROOT)
        except ValueError:
            return "outside the repository"
    else:
        resolved = source
    if anchor and resolved.is_file() and resolved.suffix.lower() == ".md":
        if anchor not in anchors(resolved):
            return f"no heading #{anchor} in {resolved.relative_to(ROOT)}"
    return None


def markdown_files() -> list[Path]:
    found = []
    for directory, subdirectories, names in os.walk(ROOT):
        subdirectories[:] = [d for d in subdirectories if d not in SKIP_DIRS]  # never descend
        found += [Path(directory) / n for n in names if n.endswith(".md")]
    return sorted(found)


def main(arguments: list[str]) -> int:
    if arguments:
        files = [Path(a).resolve() for a in arguments]
    else:
        files = markdown_files()
    broken = []
    count = 0
    for file in files:
        for number, target in links(file):
            count += 1
            why = problem(file, target)
            if why:
                broken.append(f"{file.relative_to(ROOT)}:{number}: {target} ({why})")
    for line in broken:
        print(line, file=sys.stderr)
    if broken:
        print(f"{len(broken)} broken link(s) of {count} in {len(files)} files", file=sys.stderr)
        return 1
    print(f"{count} links in {len(files)} files resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
