"""Each rule that runs the model lists, as code inputs, every package module its script
imports (directly or through other modules), so editing any of them reruns what it made;
and the evaluate rule's list is what the records' code fingerprint hashes (RECORD_CODE)."""
import ast
import glob
import re
from pathlib import Path

import pytest

from nanovlm_lite.evaluate.run import RECORD_CODE
from test_imports import PACKAGE, _modules, import_graph

REPO = Path(__file__).resolve().parents[1]
MODEL_RULES = ("evaluate", "flops", "finetune", "train_demo_model", "parity", "teacher",
               "importance", "prune", "search_plan", "search_worker")


def rule_blocks() -> dict[str, str]:
    """rule name -> its text, from rules/*.smk."""
    out = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        parts = re.split(r"^\s*rule (\w+):", smk.read_text(), flags=re.M)
        out.update(zip(parts[1::2], parts[2::2]))
    return out


def code_patterns(block: str) -> tuple[str, ...]:
    m = re.search(r"code=package_sources\((.*?)\)", block, flags=re.S)
    assert m, "no code=package_sources(...) input"
    return ast.literal_eval("(" + m.group(1) + ",)")


def expand(patterns) -> set[str]:
    """Package files (relative paths) that `package_sources` / RECORD_CODE patterns name."""
    files = set()
    for pattern in patterns:
        for path in glob.glob(str(PACKAGE / pattern), recursive=True):
            path = Path(path)
            found = path.rglob("*.py") if path.is_dir() else [path]
            files.update(str(p.relative_to(PACKAGE)) for p in found if p.suffix == ".py"
                         and "__pycache__" not in p.parts)
    return files


def imported_files(script: Path) -> set[str]:
    """Package files the script imports, transitively (deferred imports included)."""
    graph, modules = import_graph(), _modules()
    todo = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nanovlm_lite"):
            todo += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            todo += [a.name for a in node.names]
    seen = set()
    while todo:
        name = todo.pop()
        if name in modules and name not in seen:
            seen.add(name)
            todo += graph[name]
    return {str(modules[m].relative_to(PACKAGE)) for m in seen}


@pytest.mark.parametrize("rule", MODEL_RULES)
def test_model_rules_list_the_code_they_import(rule):
    block = rule_blocks()[rule]
    script = re.search(r'script:\s*"\.\./(workflow_scripts/\w+\.py)"', block).group(1)
    missing = imported_files(REPO / script) - expand(code_patterns(block))
    assert not missing, f"rule {rule}: {script} imports {sorted(missing)}, not in its code inputs"


def test_record_fingerprint_hashes_what_the_evaluate_rule_lists():
    listed = expand(code_patterns(rule_blocks()["evaluate"]))
    assert listed <= expand(RECORD_CODE), sorted(listed - expand(RECORD_CODE))


def test_the_parser_reads_the_rules():
    blocks = rule_blocks()
    assert set(MODEL_RULES) <= set(blocks)
    assert "model/" in code_patterns(blocks["evaluate"])
    assert "model/vlm.py" in expand(["model/"]) and "plan.py" in expand(["plan*.py"])
    assert "reduce/vit_merge.py" in imported_files(REPO / "workflow_scripts/evaluate.py")


def test_exactly_the_model_rules_take_the_lock():
    """The lock is an input of every rule that runs the model, like its code: a changed
    environment reruns them (and what follows from them), nothing else (docs/environment.md)."""
    with_lock = {rule for rule, block in rule_blocks().items()
                 if re.search(r"^\s*lock=LOCK_FILE,", block, flags=re.M)}
    assert with_lock == set(MODEL_RULES)
