"""The layout holds the data flow one way: config -> stacks spec -> composition -> components.

Components take their own typed args; they never import the stack spec (or anything else of
`stacks`) nor the tools that judge the plan. Every domain package says what it declares.
"""

from __future__ import annotations

import ast
from pathlib import Path

COMPONENTS = Path(__file__).resolve().parent.parent / "components"
FORBIDDEN = ("stacks", "tools")


def imported_modules(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of every absolute import, wherever it stands (functions included)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def forbidden_imports(path: Path, root: Path) -> list[str]:
    """One line per import of `stacks` or `tools`, naming the file (relative to root) and line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(root)}:{line}: imports {module}"
        for line, module in imported_modules(tree)
        if module.split(".")[0] in FORBIDDEN
    ]


def test_components_import_neither_stacks_nor_tools() -> None:
    modules = sorted(COMPONENTS.rglob("*.py"))
    assert len(modules) > 40  # the walk found the tree
    problems = [p for path in modules for p in forbidden_imports(path, COMPONENTS.parent)]
    assert not problems, "components take their own args, never the stack spec:\n" + "\n".join(problems)


def test_the_check_names_file_and_line(tmp_path: Path) -> None:
    module = tmp_path / "components" / "machines" / "bad.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "import pulumi\nimport tools.plan\nfrom components.context import PlatformContext\n\n\n"
        "def f() -> None:\n    from stacks.spec import NodeSpec\n"
    )
    assert forbidden_imports(module, tmp_path) == [
        "components/machines/bad.py:2: imports tools.plan",
        "components/machines/bad.py:7: imports stacks.spec",
    ]


def test_every_package_says_what_it_declares() -> None:
    packages = [COMPONENTS, *sorted(p for p in COMPONENTS.iterdir() if p.is_dir() and p.name != "__pycache__")]
    assert len(packages) >= 9  # components and its eight domains
    missing = []
    for package in packages:
        init = package / "__init__.py"
        if not init.is_file():
            missing.append(f"{package.relative_to(COMPONENTS.parent)}: no __init__.py")
        elif not ast.get_docstring(ast.parse(init.read_text())):
            missing.append(f"{init.relative_to(COMPONENTS.parent)}: no docstring")
    assert not missing, "\n".join(missing)
