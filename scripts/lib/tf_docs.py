"""Generates the Inputs/Outputs tables of a Terraform configuration's README.md, between
<!-- BEGIN_TF_DOCS --> and <!-- END_TF_DOCS -->, from its variables.tf and outputs.tf.

terraform-docs itself is not installable from the package registries this project can reach, so
this is the equivalent that scripts/test runs: `--check` fails (exit 1) and names every README
whose tables differ from what the .tf files say. Parsing uses python-hcl2 (PyPI bc-python-hcl2,
pinned in scripts/requirements.txt); type expressions are copied from the source text, as written.

Usage: scripts/tf-docs [--check] [DIR…]   (default: every module and root configuration)
"""

import json
import pathlib
import re
import sys

import hcl2

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_DIRS = ["modules/sumu", "modules/custom-domain", "terraform/aws", "terraform/local"]
BEGIN, END = "<!-- BEGIN_TF_DOCS -->", "<!-- END_TF_DOCS -->"


def blocks(directory, kind):
    """(name, attributes, source lines) of every `kind` block in the directory's .tf files."""
    found = []
    for path in sorted(directory.glob("*.tf")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for block in hcl2.loads(text).get(kind, []):
            for name, attributes in block.items():
                start, end = attributes.get("__start_line__"), attributes.get("__end_line__")
                found.append((name, attributes, lines[start - 1 : end] if start and end else []))
    return sorted(found, key=lambda item: item[0])


def type_expression(source):
    """The `type = …` expression of a variable block, as written, on one line."""
    for index, line in enumerate(source):
        match = re.match(r"^\s*type\s*=\s*(.*)$", line)
        if not match:
            continue
        parts, depth = [], 0
        for part in [match.group(1)] + source[index + 1 :]:
            part = part.strip()
            if parts:
                joiner = " " if parts[-1].endswith(("{", "(", "[")) or part.startswith(("}", ")", "]")) else ", "
                parts.append(joiner)
            parts.append(part)
            depth += sum(part.count(c) for c in "({[") - sum(part.count(c) for c in ")}]")
            if depth <= 0:
                return re.sub(r"\s+", " ", "".join(parts))
    return "any"


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def code(text):
    text = str(text)
    return f"`{text}`" if "`" not in text else f"<code>{text}</code>"


def default_value(attributes):
    if "default" not in attributes:
        return "n/a", "yes"
    value = attributes["default"][0] if isinstance(attributes["default"], list) else attributes["default"]
    return code(json.dumps(value, ensure_ascii=False) if value is not None else "null"), "no"


def first(attributes, key, fallback=""):
    value = attributes.get(key, [fallback])
    return value[0] if isinstance(value, list) else value


def render(directory):
    lines = [BEGIN, "## Inputs", "", "| Name | Description | Type | Default | Required |", "|------|-------------|------|---------|:--------:|"]
    for name, attributes, source in blocks(directory, "variable"):
        default, required = default_value(attributes)
        lines.append(
            f"| <a name=\"input_{name}\"></a> [{name}](#input_{name}) | {cell(first(attributes, 'description'))} "
            f"| {cell(code(type_expression(source)))} | {cell(default)} | {required} |"
        )
    outputs = blocks(directory, "output")
    lines += ["", "## Outputs", ""]
    if outputs:
        lines += ["| Name | Description |", "|------|-------------|"]
        for name, attributes, _ in outputs:
            lines.append(f"| <a name=\"output_{name}\"></a> [{name}](#output_{name}) | {cell(first(attributes, 'description'))} |")
    else:
        lines.append("No outputs.")
    lines.append(END)
    return "\n".join(lines)


def updated_readme(directory):
    readme = directory / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN} … {END} section to fill")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return readme, text, head + render(directory) + tail


def main(argv):
    check = "--check" in argv
    dirs = [a for a in argv if a != "--check"] or DEFAULT_DIRS
    stale = []
    for name in dirs:
        readme, current, wanted = updated_readme((ROOT / name).resolve())
        if current == wanted:
            continue
        if check:
            stale.append(readme.relative_to(ROOT))
        else:
            readme.write_text(wanted, encoding="utf-8")
            print(f"updated {readme.relative_to(ROOT)}")
    if stale:
        print("stale Inputs/Outputs tables (run scripts/tf-docs): " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
