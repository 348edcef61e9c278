"""YAML read with duplicate keys refused: a study config is a file people copy lines in.

PyYAML (and Snakemake's config loader) keep the last of two equal keys in one mapping, so a
point copied under `points:` and not renamed makes one of the two vanish without a word.
`load_strict` reads a file as `yaml.safe_load` does, but first walks the composed document
and names every mapping key that appears twice: the file, where the key sits (e.g.
`points/full`) and both lines. Merge keys (`<<: *base`) are YAML's own way to override a
mapping's keys, so keys brought in by a merge are not duplicates.
"""
from __future__ import annotations

from pathlib import Path

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(ValueError):
    """A YAML file holds the same key twice in one mapping (the message names them all)."""


def _key(loader, node):
    """A key node's value as YAML resolves it (`1` and `0x1` are one key), hashable, or None."""
    try:
        value = loader.construct_object(node, deep=True)
        hash(value)
        return value
    except (TypeError, yaml.YAMLError):
        return None


def duplicate_keys(loader, node, path: tuple = (), seen_nodes=None) -> list[tuple]:
    """(path, key, first line, second line) for every key that appears twice in a mapping
    of the composed `node` (lines 1-based), nested mappings and lists included."""
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if node is None or id(node) in seen_nodes:  # an alias is walked once
        return []
    seen_nodes.add(id(node))
    found = []
    if isinstance(node, yaml.MappingNode):
        first = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = _key(loader, key_node)
            line = key_node.start_mark.line + 1
            if key is not None and key in first:
                found.append((path, key, first[key], line))
            elif key is not None:
                first[key] = line
            found += duplicate_keys(loader, value_node, path + (key,), seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += duplicate_keys(loader, item, path + (i,), seen_nodes)
    return found


def describe(path_name: str, duplicates: list[tuple]) -> str:
    """One message naming every duplicate key of a file."""
    lines = []
    for path, key, first, second in duplicates:
        where = "/".join(map(str, path)) or "the top level"
        lines.append(f"{path_name}: key {key!r} appears twice under {where} (lines {first} and "
                     f"{second})")
    fix = ("YAML keeps only the last of equal keys, so the first would vanish without a word: "
           "rename or remove one")
    return "\n".join(lines) + f"\n{fix}" if len(lines) > 1 else f"{lines[0]}; {fix}"


def load_text(text: str, path_name: str = "<yaml>"):
    """`yaml.safe_load(text)`, refusing duplicate keys (DuplicateKeyError naming them all;
    a file that is not YAML raises yaml.YAMLError, as safe_load does)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        duplicates = duplicate_keys(loader, node)
        if duplicates:
            raise DuplicateKeyError(describe(path_name, duplicates))
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def load_strict(path):
    """A YAML file's content, refusing duplicate keys (see `load_text`)."""
    path = Path(path)
    return load_text(path.read_text(), str(path))
