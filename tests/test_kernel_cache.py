"""The kernel cache cannot go stale when a module the kernels depend on changes."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_kernel_older_than_its_dependencies_is_recompiled(tmp_path):
    # a copy of the package whose _config.py is edited after the kernels were cached
    pkg = tmp_path / "fastcavi"
    shutil.copytree(REPO / "fastcavi", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path), NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("FASTCAVI_NO_CACHE", None)
    script = textwrap.dedent("""
        import numpy as np, fastcavi, fastcavi._config as c
        assert fastcavi.__file__.startswith(%r)
        X = np.random.default_rng(0).normal(size=(30000, 3))
        r = fastcavi.fit(X, 3, covariance_type="full", max_iter=3, tol=0, init=X[:3])
        print(c.BLOCK_ROWS, r.elbo.tobytes().hex())
    """ % str(tmp_path))
    first = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    config = pkg / "_config.py"
    text = config.read_text()
    assert "BLOCK_ROWS = 256" in text
    config.write_text(text.replace("BLOCK_ROWS = 256", "BLOCK_ROWS = 512"))
    later = max(os.stat(pkg / "_kernels" / name).st_mtime for name in ("estep.py", "summary.py")) + 10
    os.utime(config, (later, later))  # newer than the kernels, as an edit would be
    second = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=900)
    # it ran (no heap corruption from a kernel built for 256-row blocks) and used the new blocks
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.split()[0] == "512"
    assert os.stat(pkg / "_kernels" / "estep.py").st_mtime >= later - 10
