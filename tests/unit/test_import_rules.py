"""The platform's layer rules, pinned as tests/unit/test_sdk_surface.py pins the SDK: breaking one
is a decision, not an accident.

- ``rayline.domain``: the rules themselves, plain Python: never Ray, SQLAlchemy, FastAPI or
  Starlette.
- ``rayline.services``: the use cases, importable without Ray (they reach it through the runtime
  they are handed) and without ``serve_apps``.
- ``rayline.runtime``: what runs on Ray, never ``serve_apps``, which is built on it (the
  composition root hands the Serve applications in).
- ``rayline.console``, the web console: pages over the services, never Ray nor ``serve_apps``.
- ``serve_apps.low_latency``, the warm pod: no SQLAlchemy (it has no database).
- ``rayline.sdk``: test_sdk_surface.py checks that ``import rayline``, which imports every module
  of the SDK, loads neither Ray nor the server.

Each rule imports every module of its layer in a fresh interpreter in which the forbidden
packages cannot be imported, and names each import chain that reached one. A rule about what a
layer never imports is also read from the source with ``ast``: an import inside a function only
runs when it is called, so importing the modules would not find it.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rayline

PLATFORM = Path(rayline.__file__).resolve().parent

# layer -> (the top-level packages it must not import, also read from its source?)
RULES: dict[str, tuple[frozenset[str], bool]] = {
    "domain": (frozenset({"ray", "sqlalchemy", "fastapi", "starlette"}), True),
    "services": (frozenset({"ray", "serve_apps"}), False),
    "runtime": (frozenset({"serve_apps"}), True),
    # The web console: pages over the services, served by the control plane; never Ray itself.
    "console": (frozenset({"ray", "serve_apps"}), True),
}

# Run as `python -c PROBE <package> <blocked,packages>`: imports the package and every module under
# it, and prints as JSON each blocked import with the chain of imports that reached it (also
# those the importer catches), and every other error of importing a module.
PROBE = r"""
import importlib, importlib.util, json, pkgutil, sys

package, blocked = sys.argv[1], frozenset(sys.argv[2].split(","))
MARK = "blocked by tests/unit/test_import_rules.py"
hits, errors = [], []


def importers():
    # Module-level frames are the modules being imported; the innermost function, if any, is
    # where the import is (code run at import time).
    chain, frame, innermost = [], sys._getframe(2), True
    while frame is not None:
        name = frame.f_globals.get("__name__", "?")
        if name != "__main__" and not name.startswith(("importlib", "_frozen_importlib")):
            code = frame.f_code.co_name
            if code == "<module>":
                chain.append(name)
            elif innermost:
                chain.append(f"{name}.{code}()")
            innermost = False
        frame = frame.f_back
    return chain[::-1]


class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            chain = " -> ".join([*importers(), name])
            if chain not in hits:
                hits.append(chain)
            raise ModuleNotFoundError(f"{name} is {MARK}", name=name)
        return None


already = sorted(m for m in sys.modules if m.partition(".")[0] in blocked)
sys.meta_path.insert(0, Block())
spec = importlib.util.find_spec(package)
walked = pkgutil.walk_packages(spec.submodule_search_locations, package + ".", onerror=lambda name: None)
for module in [package, *sorted(info.name for info in walked)]:
    try:
        importlib.import_module(module)
    except BaseException as error:
        if MARK not in str(error):
            errors.append(f"{module}: {type(error).__name__}: {error}")
print(json.dumps({"already_imported": already, "blocked_imports": hits, "errors": errors}))
"""


def imports_without(package: str, forbidden: frozenset[str], env: dict[str, str] | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, package, ",".join(sorted(forbidden))],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def imports_in_source(path: Path) -> list[tuple[int, str]]:
    """Every module the file imports, wherever the import is (in a function, under
    TYPE_CHECKING, through importlib.import_module or __import__ with a literal name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


@pytest.mark.parametrize("layer", RULES)
def test_no_module_of_a_layer_imports_what_the_layer_must_not(layer):
    forbidden, _ = RULES[layer]
    seen = imports_without(f"rayline.{layer}", forbidden)
    assert seen["already_imported"] == [], f"imported before any module of rayline.{layer}: {seen}"
    assert seen["errors"] == [], f"modules of rayline.{layer} that cannot be imported at all: {seen['errors']}"
    assert seen["blocked_imports"] == [], (
        f"rayline.{layer} must not import {', '.join(sorted(forbidden))}; found (importer -> imported):\n  "
        + "\n  ".join(seen["blocked_imports"])
    )


@pytest.mark.parametrize("layer", [layer for layer, (_, in_source) in RULES.items() if in_source])
def test_no_source_file_of_a_layer_imports_what_the_layer_must_not(layer):
    forbidden, _ = RULES[layer]
    files = sorted((PLATFORM / layer).rglob("*.py"))
    assert files, f"no source under {PLATFORM / layer}"
    found = [
        f"{path.relative_to(PLATFORM.parent)}:{line}: imports {name}"
        for path in files
        for line, name in imports_in_source(path)
        if name.partition(".")[0] in forbidden
    ]
    assert found == [], f"rayline.{layer} must not import {', '.join(sorted(forbidden))}:\n  " + "\n  ".join(found)


def test_the_probe_names_each_chain_to_a_forbidden_import(tmp_path):
    """What the rules above rely on, on a package made for it: a chain through another module, a
    module imported again after its import failed, an import whose failure is caught."""
    package = tmp_path / "layered"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("import json\n")
    (package / "b.py").write_text("from layered import c\n")
    (package / "c.py").write_text("import forbidden_here.sub\n")
    (package / "d.py").write_text("try:\n    import forbidden_here\nexcept ImportError:\n    pass\n")
    (package / "e.py").write_text("def later():\n    import forbidden_here\n")  # only the source shows it
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    seen = imports_without("layered", frozenset({"forbidden_here"}), env)
    assert seen == {
        "already_imported": [],
        "blocked_imports": [
            "layered.b -> layered.c -> forbidden_here",
            "layered.c -> forbidden_here",
            "layered.d -> forbidden_here",
        ],
        "errors": [],
    }
    assert imports_in_source(package / "e.py") == [(2, "forbidden_here")]


def test_the_warm_pod_imports_no_sqlalchemy():
    """A pod has no database (it records through the control plane), and a pod that starts, to
    wake a deployment from standby say, should not pay for SQLAlchemy's import."""
    probe = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] == 'sqlalchemy':\n"
        "            raise ModuleNotFoundError(f'{name} is blocked', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import serve_apps.low_latency\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
