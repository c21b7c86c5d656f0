"""The documentation works as written: generated tables match the code, snippets parse, links resolve.

* ``docs/configuration.md``'s generated parts are what :mod:`zengate.reference` renders from
  ``config.ENVIRONMENT`` and ``settings.SPECS``.
* Every fenced block of README.md and docs/*.md (not docs/performance*.md, whose blocks are
  measured output) has a language tag; input blocks parse as their language says (``json``,
  ``toml``, ``yaml``, ``sh``/``bash``/``shell`` through ``bash -n``, ``python`` through
  ``compile``) and holds no non-ASCII character, so a placeholder pasted as it is never breaks a
  header (opencode refused ``sk-zen-…``); ``text`` blocks are output and skipped.
* Every relative link and image of README.md and docs/*.md names a file that exists, and an anchor
  that the target's headings make.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from zengate import reference

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
WITH_SNIPPETS = [README, *(p for p in DOCS if not p.name.startswith("performance"))]
INPUT_LANGUAGES = {"json", "toml", "yaml", "sh", "bash", "shell", "python"}
OUTPUT_LANGUAGES = {"text"}

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str

    def __str__(self) -> str:
        return f"{_shown(self.path)}:{self.line} ({self.language or 'no language'})"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, their indentation (in list items) removed."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].strip().split(" ")[0].lower() if opening["info"].strip() else ""
        body, j = [], i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        assert j < len(lines), f"{_shown(path)}:{i + 1}: a fenced block is never closed"
        blocks.append(Block(path, i + 1, language, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


ALL_BLOCKS = [block for path in WITH_SNIPPETS for block in fenced_blocks(path)]


# --------------------------------------------------------------------------- generated reference


def test_configuration_reference_matches_the_code():
    document = reference.DOCUMENT.read_text(encoding="utf-8")
    assert reference.render_document(document) == document, (
        f"docs/configuration.md is out of date with config.ENVIRONMENT / settings.SPECS: run {reference.COMMAND}")


def test_reference_renders_every_variable_and_public_setting():
    from zengate.config import ENVIRONMENT
    from zengate.settings import SPECS

    environment, settings = reference.environment_table(), reference.settings_table()
    for name, _default, _description in ENVIRONMENT:
        assert f"| `{name}` |" in environment
    for name, spec in SPECS.items():
        assert (f"| `{name}` |" in settings) == spec.public, name
    assert "| `max_attempts` | integer | `4` | 1 to 20 |" in settings
    assert reference._cell("a | b") == "a \\| b"  # a pipe in a help text does not split the row
    with pytest.raises(ValueError, match="missing generated section"):
        reference.render_document("<!-- generated: environment -->\n<!-- end generated -->\n")
    with pytest.raises(ValueError, match="unknown generated section 'nope'"):
        reference.render_document("<!-- generated: nope -->\n<!-- end generated -->\n")


def test_reference_check_mode_says_how_to_regenerate(tmp_path, capsys):
    stale = tmp_path / "configuration.md"
    stale.write_text("<!-- generated: environment -->\nSTALE-ROW\n<!-- end generated -->\n"
                     "<!-- generated: settings -->\n<!-- end generated -->\n")
    assert reference.main(["--check", str(stale)]) == 1
    assert reference.COMMAND in capsys.readouterr().err and "STALE-ROW" in stale.read_text()
    assert reference.main([str(stale)]) == 0 and "STALE-ROW" not in stale.read_text()
    assert reference.main(["--check", str(stale)]) == 0


# --------------------------------------------------------------------------- snippets


def test_every_block_says_its_language():
    unknown = [f"{b}: tag it with one of {sorted(INPUT_LANGUAGES | OUTPUT_LANGUAGES)}" for b in ALL_BLOCKS
               if b.language not in INPUT_LANGUAGES | OUTPUT_LANGUAGES]
    assert not unknown, "\n".join(unknown)


def test_no_input_block_holds_a_non_ascii_character():
    found = []
    for block in ALL_BLOCKS:
        if block.language in OUTPUT_LANGUAGES:
            continue  # output, shown as it comes; never pasted
        for offset, line in enumerate(block.text.splitlines(), start=1):
            odd = sorted({ch for ch in line if ord(ch) > 127})
            if odd:
                found.append(f"{block.path.relative_to(ROOT)}:{block.line + offset}: {''.join(odd)!r} in {line!r}")
    assert not found, "use an ASCII placeholder (e.g. sk-zen-YOUR-KEY, ...):\n" + "\n".join(found)


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.language in INPUT_LANGUAGES], ids=str)
def test_snippet_parses(block: Block):
    if block.language == "json":
        json.loads(block.text)
    elif block.language == "toml":
        tomllib.loads(block.text)
    elif block.language == "yaml":
        yaml.safe_load(block.text)
    elif block.language == "python":
        compile(block.text, str(block), "exec")
    else:
        checked = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"{block}: bash -n says:\n{checked.stderr}"


def test_the_extractor_sees_indented_and_unclosed_blocks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("1. step\n\n   ```json\n   {\"a\": 1}\n   ```\n\n```sh\necho hi\n```\n")
    blocks = fenced_blocks(page)
    assert [(b.language, b.text) for b in blocks] == [("json", '{"a": 1}\n'), ("sh", "echo hi\n")]
    page.write_text("```sh\necho never closed\n")
    with pytest.raises(AssertionError, match="never closed"):
        fenced_blocks(page)


def test_readme_opencode_config_is_what_opencode_takes():
    configs = [json.loads(b.text) for b in fenced_blocks(README) if b.language == "json"]
    config = next(c for c in configs if "provider" in c)
    provider = config["provider"]["zengate"]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert provider["options"]["baseURL"] == "http://127.0.0.1:8462/v1"
    assert provider["options"]["apiKey"].isascii() and provider["options"]["apiKey"].startswith("sk-zen-")
    assert "big-pickle" in provider["models"]
    text = README.read_text(encoding="utf-8")
    assert "~/.config/opencode/opencode.json" in text
    assert any('opencode run "say hi" -m zengate/big-pickle' in b.text for b in fenced_blocks(README))


def test_readme_keeps_its_contract_lines():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200, "the README is the first page: keep it under 200 lines"
    commands = [line for b in fenced_blocks(README) for line in b.text.splitlines()
                if line.startswith("bash .ci/install && ") and "--dev" not in line]
    assert commands and commands[0] == "bash .ci/install && .venv/bin/python -m zengate serve"  # CI runs it
    assert "bash .ci/install --bench && .venv/bin/python bench/run.py" in text
    assert "bash .ci/install --dev && .venv/bin/python -m pytest" in text


# --------------------------------------------------------------------------- links

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _outside_fences(path: Path) -> Iterator[str]:
    """The file's lines that are not inside a fenced block."""
    inside = None
    for line in path.read_text(encoding="utf-8").splitlines():
        opening = FENCE.match(line)
        if opening and inside is None:
            inside = opening["fence"]
            continue
        if inside is not None:
            if line.strip().startswith(inside) and line.strip().strip(inside[0]) == "":
                inside = None
            continue
        yield line


def _prose(path: Path) -> str:
    """The file without its fenced blocks and inline code (links there are not links)."""
    return "\n".join(re.sub(r"`[^`]*`", "", line) for line in _outside_fences(path))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    made, seen = set(), {}
    for line in _prose_with_headings(path):
        base = slug(line)
        count = seen.get(base, 0)
        seen[base] = count + 1
        made.add(base if count == 0 else f"{base}-{count}")
    return made


def _prose_with_headings(path: Path) -> list[str]:
    headings = (re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line) for line in _outside_fences(path))
    return [heading.group(1) for heading in headings if heading]


def test_slugs_follow_github():
    assert slug("Client API (`/v1`)") == "client-api-v1"
    assert slug("How `count_tokens` counts") == "how-count_tokens-counts"
    assert slug("Metrics (Prometheus)") == "metrics-prometheus"
    assert slug("Request-log retention and bodies") == "request-log-retention-and-bodies"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path):
    broken = []
    for match in LINK.finditer(_prose(path)):
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading makes #{anchor} in {linked.relative_to(ROOT)}")
    assert not broken, f"{path.relative_to(ROOT)}:\n" + "\n".join(broken)
