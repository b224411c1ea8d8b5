"""The documentation: docs/ builds with `mkdocs build --strict`, offline, and README.md links only to pages that exist.

mkdocs checks the links between pages and their anchors (`validation:` in mkdocs.yml) and, in strict mode, fails
on a page missing from `nav:`; it never reads README.md, so the README's links are checked here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import markdown
import yaml

from .conftest import REPO

DOCS = REPO / "docs"

# Both commands are quoted by CI (.ci/run) and by people following the README: they must not drift.
DEMO_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e . && DAGSTER_HOME=$PWD .venv/bin/dagster dev"
TEST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"

# `python -m mkdocs` with every socket refused: the build must not fetch fonts, icons or anything else.
OFFLINE_MKDOCS = """
import runpy, socket, sys

def refuse(*args, **kwargs):
    raise OSError("the docs build tried to use the network")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
sys.argv = ["mkdocs", *sys.argv[1:]]
runpy.run_module("mkdocs", run_name="__main__", alter_sys=True)
"""


def _mkdocs(args: list[str], *, offline: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", OFFLINE_MKDOCS] if offline else [sys.executable, "-m", "mkdocs"]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner, not a build problem
    return subprocess.run([*command, *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)


def test_docs_build_strict(tmp_path: Path) -> None:
    """`mkdocs build --strict` succeeds: no broken link or anchor, no page left out of nav."""
    site = tmp_path / "site"
    result = _mkdocs(["build", "--strict", "--site-dir", str(site)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    assert (site / "index.html").is_file()


def test_docs_build_offline(tmp_path: Path) -> None:
    """The site builds with the network refused, and the config asks for nothing remote (fonts, social cards)."""
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    assert config["theme"]["name"] == "material"
    assert config["theme"].get("font") is False, "theme.font: false, so no page loads Google Fonts"
    plugins = {p if isinstance(p, str) else next(iter(p)) for p in config.get("plugins", [])}
    assert not plugins & {"social", "privacy", "material/social", "material/privacy"}, plugins
    result = _mkdocs(["build", "--strict", "--site-dir", str(tmp_path / "site")], offline=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _nav_pages(nav: list[Any]) -> set[str]:
    pages: set[str] = set()
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages |= _nav_pages(value) if isinstance(value, list) else {value}
    return pages


def test_every_docs_page_is_in_the_nav() -> None:
    """nav lists every page under docs/ and nothing else (strict mode checks this too; this says which)."""
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert _nav_pages(config["nav"]) == pages


def _anchors(page: Path) -> set[str]:
    """The heading ids of a page, as mkdocs makes them (Python-Markdown's toc)."""
    md = markdown.Markdown(extensions=["toc", "tables", "attr_list", "fenced_code"])
    md.convert(page.read_text())

    def walk(tokens: list[dict[str, Any]]) -> set[str]:
        return {t["id"] for t in tokens} | {i for t in tokens for i in walk(t["children"])}

    return walk(md.toc_tokens)


def _readme_links() -> list[str]:
    text = re.sub(r"^```.*?^```", "", (REPO / "README.md").read_text(), flags=re.M | re.S)  # not in code blocks
    text = re.sub(r"`[^`]*`", "", text)  # nor in code spans
    return re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text)


def test_readme_links_point_at_docs_pages() -> None:
    """Every relative link in README.md names a file under docs/ that exists, and an anchor it has."""
    relative = [link for link in _readme_links() if not urlsplit(link).scheme and not link.startswith("#")]
    assert relative, "README.md links into docs/"
    for link in relative:
        parts = urlsplit(link)
        target = (REPO / unquote(parts.path)).resolve()
        assert target.is_relative_to(DOCS.resolve()), f"{link}: README links should point into docs/"
        assert target.is_file(), f"{link}: no such file"
        if parts.fragment:
            assert parts.fragment in _anchors(target), f"{link}: {target.name} has no heading #{parts.fragment}"


def test_readme_keeps_the_demo_and_test_commands() -> None:
    """The README's two commands stay exactly as CI and the docs quote them."""
    readme = (REPO / "README.md").read_text()
    assert DEMO_COMMAND in readme
    assert TEST_COMMAND in readme
