"""The package's shape (docs/ARCHITECTURE.md): no import cycle between modules but the
Variable/arith operator pair, and no cell type-name table in the modules that ask the cells
(the report, the exports, the fusion, the constraints)."""
import ast
import pathlib

from n2d2py.cells import CELLS

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "n2d2py"
#: the one cycle allowed: Variable's operators call functions/arith, whose Functions make Variables
OPERATOR_PAIR = {"n2d2py.autograd.function", "n2d2py.autograd.variable", "n2d2py.functions.arith"}
ASKING_MODULES = ["stats/cost.py", "stats/n2d2_stats.py", "onnx/export.py",
                  "onnx/export_integer.py", "qat/fuse.py", "qat/export_c.py",
                  "quantizers/constraints.py", "report/text.py", "ptq/build.py",
                  "ptq/equalization.py"]


def modules():
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("n2d2py",) + path.relative_to(PACKAGE).with_suffix("").parts)
        found[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return found


def imports(name, path, known):
    """Modules of the package ``path`` imports, at any level (function bodies included)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            prefix = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{prefix}.{alias.name}"
                found.add(full if full in known else prefix)
    return {m for m in found if m in known and m != name}


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(component)
    return out


def test_no_import_cycle_but_the_operator_pair():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert [c for c in cycles(graph) if c != OPERATOR_PAIR] == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def type_name_lookups(tree):
    """Comparisons with a ``.type_name`` and tables indexed by one (``t[x.type_name]``,
    ``t.get(x.type_name)``)."""
    def is_type_name(node):
        return isinstance(node, ast.Attribute) and node.attr == "type_name"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(map(is_type_name, [node.left, *node.comparators])):
            found.append(node.lineno)
        elif isinstance(node, ast.Subscript) and is_type_name(node.slice):
            found.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr == "get" and node.args and is_type_name(node.args[0]):
            found.append(node.lineno)
    return found


def test_modules_that_ask_the_cells_have_no_type_name_table():
    types = set(CELLS.names())
    for relative in ASKING_MODULES:
        tree = ast.parse((PACKAGE / relative).read_text())
        assert type_name_lookups(tree) == [], f"{relative} dispatches on type_name"
        if not relative.startswith("onnx/"):   # the exporters write ONNX ops (Reshape, Softmax)
            named = {node.value for node in ast.walk(tree)
                     if isinstance(node, ast.Constant) and isinstance(node.value, str)}
            assert not named & types, f"{relative} names cell types {sorted(named & types)}"


def test_the_table_finder_finds_tables():
    tree = ast.parse("if c.type_name == 'Conv': pass\nh = T[c.type_name]\nT.get(c.type_name)\n")
    assert type_name_lookups(tree) == [1, 2, 3]
