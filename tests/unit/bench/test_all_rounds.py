"""``bench/all.py --ab``: the medians of interleaved rounds, and the verdict on them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ALL_PY = Path(__file__).resolve().parents[3] / "bench" / "all.py"


@pytest.fixture(scope="module")
def bench_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_all", ALL_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def _record(path: Path, rev: str, rate: float, cpu: float) -> Path:
    path.write_text(
        json.dumps(
            {
                "rev": rev,
                "loadavg_start": [1.0, 1.0, 1.0],
                "benches": {
                    "ingest_backlog": {
                        "json": [{"messages_per_s_sqlite": rate, "cpu_ms_per_message_sqlite": cpu}],
                        "wall_s": 60.0,
                    }
                },
            }
        )
    )
    return path


def test_the_medians_and_ranges_of_the_rounds(bench_all: ModuleType) -> None:
    middle, ranges = bench_all.medians([{"x": 3.0, "y": 1.0}, {"x": 1.0}, {"x": 2.0, "y": 5.0}])
    assert middle == {"x": 2.0, "y": 3.0}  # y only in two rounds: the mean of its two
    assert ranges == {"x": "1-3", "y": "1-5"}


def test_one_slow_round_does_not_make_a_regression(
    bench_all: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = [_record(tmp_path / f"a{i}.json", "a" * 40, rate, 0.7) for i, rate in enumerate((1000, 1010, 990))]
    # B's middle round ran while the machine was busy: its median is still B's usual rate
    b = [_record(tmp_path / f"b{i}.json", "b" * 40, rate, 0.7) for i, rate in enumerate((1020, 400, 1000))]
    assert bench_all.compare_rounds(a, b, 5.0) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("ingest_backlog.messages_per_s_sqlite"))
    assert row.split()[1:4] == ["1000", "1000", "+0.0%"]
    assert "990-1010" in row and "400-1020" in row


def test_a_change_for_the_worse_in_the_medians_is_flagged(bench_all: ModuleType, tmp_path: Path) -> None:
    a = [_record(tmp_path / f"a{i}.json", "a" * 40, 1000, 0.70) for i in range(3)]
    b = [_record(tmp_path / f"b{i}.json", "b" * 40, 1000, cpu) for i, cpu in enumerate((0.80, 0.81, 0.79))]
    assert bench_all.compare_rounds(a, b, 5.0) == 1  # CPU per message up 14 %: lower is better
