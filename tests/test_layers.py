"""The shape of the package: layers (imports only go downward), small files and functions."""

import ast
from pathlib import Path

import condensa

ROOT = Path(condensa.__file__).parent
LAYERS = [
    "errors", "plain", "threads", "distributed", "atomic", "inputs", "structure", "architecture",
    "functional", "operators", "families", "formats", "norms", "filecheck", "schemes", "masking",
    "io", "stats", "thinning", "kernels", "smoothing", "low_bits", "compress", "optim",
    "objectives", "quantized", "export", "search", "layerwise", "int8_layers", "zoo", "data",
    "hf", "contenders", "trials", "api", "cli", "__init__", "__main__",
]  # fmt: skip


def _unit(path: Path) -> str:
    return path.relative_to(ROOT).with_suffix("").parts[0]


def _imports(path: Path) -> set[str]:
    """Top-level condensa units imported anywhere in the file (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("condensa.")}
    return found


def test_every_unit_has_a_layer():
    """A new module or package is placed in LAYERS deliberately."""
    units = {_unit(p) for p in ROOT.rglob("*.py")}
    assert units - set(LAYERS) == set()


def test_imports_only_go_downward():
    """No file imports a unit at its own layer's level or above (no cycles, no reach-up)."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = sorted(
        f"{p.relative_to(ROOT)} imports condensa.{target}"
        for p in ROOT.rglob("*.py")
        for target in _imports(p)
        if target != _unit(p) and rank[target] > rank[_unit(p)]
    )
    assert upward == []


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function without its docstring."""
    body = node.body
    has_doc = (
        isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )
    first = body[1] if has_doc and len(body) > 1 else body[0]
    return (node.end_lineno or node.lineno) - first.lineno + 2  # + the def line


def test_top_layer_functions_stay_small():
    """api.py and cli/ are compositions of named steps: no function over 60 lines of code."""
    files = [ROOT / "api.py", *sorted((ROOT / "cli").glob("*.py"))]
    long = [
        f"{p.relative_to(ROOT)}:{node.name} ({_code_lines(node)} lines)"
        for p in files
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(node) > 60
    ]
    assert long == []


def test_modules_stay_under_400_lines():
    """A file is one concept; none grows past 400 lines."""
    sizes = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in ROOT.rglob("*.py")}
    assert {str(p.relative_to(ROOT)): n for p, n in sizes.items() if n > 400} == {}


def test_every_test_module_states_what_it_checks():
    """Each test file opens with the invariants its tests check."""
    tests = Path(__file__).resolve().parent
    silent = [
        str(p.relative_to(tests))
        for p in sorted(tests.rglob("test_*.py"))
        if not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))
    ]
    assert silent == []
