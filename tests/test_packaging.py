"""Packaging: folders map to the documented imports, and nothing generic is installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import bogc_ref

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            parts = [] if relative == Path(".") else list(relative.parts)
            if "__pycache__" in parts:
                continue
            found.add(".".join([name, *parts]))
    # A sub-folder of bogc_ref/ that maps elsewhere is covered by its own mapping entry.
    assert found == listed


def test_backends_folder_imports_under_the_project_namespace() -> None:
    import bogc_ref.backends

    assert Path(bogc_ref.backends.__file__).parent == ROOT / "backends"


def test_backends_folder_holds_only_array_backends() -> None:
    """The training integration lives in ``bogc_ref.training``, not among the backends."""
    modules = {p.stem for p in (ROOT / "backends").glob("*.py")}
    public = {m for m in modules if not m.startswith("_")}
    assert public == set(), f"backends/ has public modules besides the registry: {public}"
    assert (ROOT / "bogc_ref" / "training" / "__init__.py").exists()


def test_no_generic_top_level_module_is_installed(tmp_path: Path) -> None:
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('backends') is not None)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=False)
    assert result.returncode == 0, "a top-level 'backends' module is importable from site-packages"


def test_all_names_exist_and_are_unique() -> None:
    assert len(set(bogc_ref.__all__)) == len(bogc_ref.__all__)
    for name in bogc_ref.__all__:
        assert hasattr(bogc_ref, name), name
    assert importlib.util.find_spec("bogc_ref.interface") is not None


def test_readme_example_runs() -> None:
    import doctest

    readme = (ROOT / "README.md").read_text()
    parser = doctest.DocTestParser()
    test = parser.get_doctest(readme, {}, "README.md", str(ROOT / "README.md"), 0)
    assert test.examples, "README.md lost its usage example"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0
