"""The fast YAML loader (yaml_rs) gives exactly what the reference (PyYAML with YAML
1.2 scalars) gives, on real and synthetic frontmatter: the project's own vaults (whose
properties copy the shapes real vaults use), and, when ../shared is present, its
independent generator's vaults and the real hub corpus."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SOURCES, build_vault, hub_corpus

from ccc_watch.index.frontmatter import parse_yaml, split_frontmatter


def frontmatters(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.md")):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            continue
        yaml_text = split_frontmatter(text)[0]
        if yaml_text is not None:
            out.append(yaml_text)
    return out


def assert_loaders_agree(blocks: list[str]) -> None:
    assert blocks
    for block in blocks:
        fast = parse_yaml(block)
        reference = parse_yaml(block, fast=False)
        assert fast[:2] == reference[:2], block


def test_loaders_agree_on_the_hub_corpus(tmp_path: Path) -> None:
    """Every frontmatter of the real community vault parses the same both ways."""
    assert_loaders_agree(frontmatters(hub_corpus(tmp_path / "hub")))


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("source", SOURCES)
def test_loaders_agree_on_synthetic_vaults(tmp_path: Path, source: str, seed: int) -> None:
    """And so does every frontmatter a generator writes, bad files included. The own
    vaults' properties (dates, times, YAML 1.1 booleans, octal and hex, .inf, merges,
    anchors, folded and literal blocks, nested maps, URLs, emoji) stand in for the hub's
    variety where the corpus is absent."""
    build_vault(source, tmp_path / "v", notes=200, seed=seed)
    assert_loaders_agree(frontmatters(tmp_path / "v"))


@pytest.mark.parametrize(
    "block",
    [
        "a: yes\nb: on\nc: 010\nd: 0x1F\ne: 1e3\nf: .inf\ng: 2025-01-02\nh: '12:30'\n",
        "tags: [a, b]\naliases:\n  - x\n  - y\n",
        "n: ~\nt: true\nlist:\n  - {k: v}\n",
        "title: Q&A, why? wow!\n",
        "a: &x 1\nb: *x\n",
        "base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n",
        "j: 1_000\n",
        "? [a, b]\n: c\n",
        "a: [unclosed\n",
    ],
)
def test_loaders_agree_on_awkward_yaml(block: str) -> None:
    """Scalars, flow collections, anchors, merge keys, complex keys, errors."""
    assert_loaders_agree([block])
