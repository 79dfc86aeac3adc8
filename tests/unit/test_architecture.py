"""The package's layering, checked on the source: no import from a lower layer to a higher one.

The layers come from ``docs/architecture.yaml`` (the source of the README's diagram, too).
Every ``import`` counts, also those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "clinical_nlp"
ARCHITECTURE = yaml.safe_load((REPO / "docs" / "architecture.yaml").read_text(encoding="utf-8"))

#: (layer, module prefixes), lowest first; a module may import its own layer and those below it
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (layer["name"], tuple(layer["modules"])) for layer in ARCHITECTURE["layers"]
)
#: third-party packages the store-free consensus core must never import
CONSENSUS_FORBIDDEN = ("spacy", "medspacy", "sqlalchemy", "requests", "doccano_client", "typer", "torch")
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out[".".join(["clinical_nlp", *parts])] = path
    return out


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # ``from clinical_nlp import doccano`` imports the submodule
            if node.module == "clinical_nlp":
                found.update(f"clinical_nlp.{alias.name}" for alias in node.names)
    return found


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2:
        return -1  # the package root
    for rank, (_, prefixes) in enumerate(LAYERS):
        if parts[1] in prefixes:
            return rank
    raise AssertionError(f"module {module} is in no layer of LAYERS: add it")


MODULES = _modules()


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_lower_layer_to_a_higher_one(module: str) -> None:
    own = _layer(module)
    upward = []
    for target in _imports(MODULES[module]):
        if target.startswith("clinical_nlp.") and _layer(target) > own:
            upward.append(f"{target} ({LAYERS[_layer(target)][0]})")
    assert not upward, f"{module} ({LAYERS[own][0]}) imports higher layers: {sorted(upward)}"


def test_consensus_core_is_store_free() -> None:
    for module, path in MODULES.items():
        if not module.startswith("clinical_nlp.consensus"):
            continue
        for target in _imports(path):
            top = target.split(".")[0]
            assert top not in CONSENSUS_FORBIDDEN, f"{module} imports {target}"
            if top == "clinical_nlp":
                sub = target.split(".")[1] if "." in target else ""
                assert sub in {"errors", "types", "config", "metrics", "io", "consensus"}, f"{module} imports {target}"


def test_readers_and_writers_do_not_touch_the_store() -> None:
    for module, path in MODULES.items():
        if module.startswith("clinical_nlp.io"):
            bad = {t for t in _imports(path) if t.startswith(("clinical_nlp.store", "clinical_nlp.audit"))}
            assert not bad, f"{module} imports {sorted(bad)}"


def test_no_table_registration_at_run_time() -> None:
    for module, path in MODULES.items():
        source = path.read_text(encoding="utf-8")
        if "metadata.create_all" in source:
            assert module == "clinical_nlp.store.store", f"{module} creates tables itself"
        assert "importlib.import_module" not in source or module == "clinical_nlp.cli.app", module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_500_lines(module: str) -> None:
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{module}: {lines} lines"


def test_the_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from clinical_nlp.cli.app import app\n    import spacy\n", encoding="utf-8")
    assert {"clinical_nlp.cli.app", "spacy"} <= _imports(bad)
    assert _layer("clinical_nlp.cli.app") > _layer("clinical_nlp.consensus.agreement")


def test_the_diagram_is_drawn_from_the_same_source(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "architecture.png"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "architecture_diagram.py"), "--output", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    listed = {m for layer in ARCHITECTURE["layers"] for m in layer["modules"]}
    top_level = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if not p.name.startswith("_")}
    top_level -= {"py", "resources"}
    assert {m for m in top_level if (PACKAGE / m).is_dir() or (PACKAGE / f"{m}.py").exists()} <= listed
