"""The package's modules import each other without circles (module-level and deferred
imports alike: a deferred import that closes a circle still ties the modules together).
Imports under `if __name__ == "__main__":` only run as a script and are left out."""
import ast
from pathlib import Path

import nanovlm_lite

PACKAGE = Path(nanovlm_lite.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_main_guard(node) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _imports(tree):
    """Every Import / ImportFrom node, not descending into `__main__` guards."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_main_guard(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps = set()
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = package[: len(package) - node.level + 1] if node.level else []
                prefix = ".".join(base + ([node.module] if node.module else []))
                targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state, path = {}, []

    def visit(node):
        state[node], path[len(path):] = "open", [node]
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_walker_sees_package_imports():
    graph = import_graph()
    assert "nanovlm_lite.reduce.vit_merge" in graph["nanovlm_lite.model.vlm"]   # deferred
    assert "nanovlm_lite.plan" in graph["nanovlm_lite.reduce.fastv"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_light_jobs_do_not_import_torch():
    """The merge, aggregate and plot jobs (one merge per point) and reading the workflow
    (every `snakemake` start and every cluster job parses rules/common.smk, which checks
    the config with these modules) import only what they use: torch and transformers cost
    ~4 CPU-s a process, which once put the rehearsal over its budget. A module-level
    `import torch` reached from these modules fails here."""
    import subprocess
    import sys
    light = ["nanovlm_lite", "nanovlm_lite.evaluate.merge", "nanovlm_lite.report.aggregate",
             "nanovlm_lite.report.page", "nanovlm_lite.report.pareto", "nanovlm_lite.data.fetch",
             "nanovlm_lite.upstream", "nanovlm_lite.errors",
             # what rules/common.smk imports to check a config
             "nanovlm_lite.settings", "nanovlm_lite.train.recipes", "nanovlm_lite.study_check",
             "nanovlm_lite.search.space", "nanovlm_lite.evaluate.prompts", "nanovlm_lite.hub",
             "nanovlm_lite.strict_yaml"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in light) +
            "from nanovlm_lite.provenance import code_version\ncode_version()\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"a light job's imports load {out.stdout.strip()}"
