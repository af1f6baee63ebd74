"""bench/thread_scaling.py, the many-core scaling tool, on a small problem: it runs, and its report holds
the statistics' bitwise check across thread counts and the machine's own references."""
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "thread_scaling.py"


def test_thread_scaling_reports_identical_statistics_and_machine_references(tmp_path):
    out = tmp_path / "scaling.json"
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--rows", "20000", "--rounds", "1", "--cases", "spherical:2",
                           "--parts", "sweep,read,scalar", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = report["rows_out"]
    assert [r["threads"] for r in rows] == [1, 2]
    assert all(r["bitwise_identical"] for r in rows)  # statistics at 2 threads == those at 1, bit for bit
    assert all(r["sweep_ms"] > 0 and r["read_ms"] > 0 for r in rows)
    assert rows[0]["speedup"] == 1.0
    scaling = report["machine_scaling"]
    assert [r["threads"] for r in scaling] == [1, 2] and scaling[0]["scalar_speedup"] == 1.0
    assert "dgemm_ms" not in scaling[0]  # only what --parts asked for


def test_thread_scaling_rejects_an_unknown_part():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--parts", "sweep,bogus"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, NUMBA_NUM_THREADS="2"))
    assert proc.returncode != 0 and "bogus" in proc.stderr
