"""The configuration reference in ``docs/configuration.md``, rendered from the code's own tables.

The environment variables come from :data:`zengate.config.ENVIRONMENT` and the runtime settings from
:data:`zengate.settings.SPECS` (the public ones), so the document cannot drift from the code:
``tests/unit/test_docs.py`` fails when the generated parts of the file differ from what this module
renders. Regenerate them with ``.venv/bin/python -m zengate.reference`` (``--check`` only compares).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "configuration.md"
COMMAND = ".venv/bin/python -m zengate.reference"

#: ``<!-- generated: NAME -->`` … ``<!-- end generated -->``: the part of the file a section owns.
SECTION = re.compile(r"(<!-- generated: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.DOTALL)

TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object"}


def _cell(text: str) -> str:
    """Text fit for one Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _value(value: Any) -> str:
    """A setting's value as the admin API would take it, in code style."""
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, (int, float)):
        shown = _number(value)
    else:
        shown = json.dumps(value, ensure_ascii=False)
    return f"`{shown}`"


def environment_table() -> str:
    """The environment variables (``config.ENVIRONMENT``) as a Markdown table."""
    from .config import ENVIRONMENT

    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, default, description in ENVIRONMENT:
        shown = default if default.startswith("(") else f"`{default}`"  # "(unset)" and the like are prose
        rows.append(f"| `{name}` | {_cell(shown)} | {_cell(description)} |")
    return "\n".join(rows) + "\n"


def settings_table() -> str:
    """The public runtime settings (``settings.SPECS``) as a Markdown table: type, default, range, help."""
    from .settings import SPECS

    rows = ["| Setting | Type | Default | Range | Meaning |", "|---|---|---|---|---|"]
    for name, spec in SPECS.items():
        if not spec.public:
            continue
        if spec.minimum is not None and spec.maximum is not None:
            limits = f"{_number(spec.minimum)} to {_number(spec.maximum)}"
        elif spec.minimum is not None:
            limits = f"at least {_number(spec.minimum)}"
        elif spec.maximum is not None:
            limits = f"at most {_number(spec.maximum)}"
        else:
            limits = ""
        default = spec.shown_default or _cell(_value(spec.default))
        rows.append(f"| `{name}` | {TYPE_NAMES.get(spec.kind, spec.kind.__name__)} | {default} "
                    f"| {limits} | {_cell(spec.help)} |")
    return "\n".join(rows) + "\n"


SECTIONS: dict[str, Callable[[], str]] = {"environment": environment_table, "settings": settings_table}


def render_document(text: str) -> str:
    """``text`` with every generated section replaced by what the code renders now.

    Raises ``ValueError`` for a section name this module does not know, or when a known one is missing.
    """
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in SECTIONS:
            raise ValueError(f"unknown generated section {name!r} (known: {', '.join(SECTIONS)})")
        seen.add(name)
        return f"{match[1]}{SECTIONS[name]()}{match[4]}"

    rendered = SECTION.sub(replace, text)
    missing = set(SECTIONS) - seen
    if missing:
        raise ValueError(f"missing generated section(s): {', '.join(sorted(missing))}; "
                         "add '<!-- generated: NAME -->' and '<!-- end generated -->' lines")
    return rendered


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated parts of ``docs/configuration.md`` (or, with ``--check``, only compare)."""
    parser = argparse.ArgumentParser(prog="python -m zengate.reference", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is out of date; write nothing")
    parser.add_argument("path", nargs="?", type=Path, default=DOCUMENT, help="the document (docs/configuration.md)")
    args = parser.parse_args(argv)
    text = args.path.read_text(encoding="utf-8")
    rendered = render_document(text)
    if rendered == text:
        print(f"{args.path}: up to date")
        return 0
    if args.check:
        print(f"{args.path}: out of date; run {COMMAND}", file=sys.stderr)
        return 1
    args.path.write_text(rendered, encoding="utf-8")
    print(f"{args.path}: rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
