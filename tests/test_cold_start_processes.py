"""Many processes starting at once on one empty kernel cache (a process pool, or the Dask workers of one
machine): every one succeeds, they all give the same bits, and the cache they leave is loaded, not rebuilt,
by the next process."""
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

CHILD = textwrap.dedent("""
    import hashlib, sys, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    import fastcavi
    from fastcavi._kernels import _compiling
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(loc=c, size=(3000, 3)) for c in (0.0, 4.0, 8.0)])
    r = fastcavi.fit(X, 3, covariance_type="full", max_iter=4, tol=0, random_state=1)
    h = hashlib.sha256()
    for a in (r.means, r.elbo, r.predict_proba(X[:500])):
        h.update(np.ascontiguousarray(a).tobytes())
    print(h.hexdigest(), "%.3f" % _compiling.seconds())
""")


def _start(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), NUMBA_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-c", CHILD], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sixteen_processes_on_one_empty_cache_agree_and_leave_it_loadable(tmp_path):
    cache = tmp_path / "cache"
    children = [_start(cache) for _ in range(16)]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=1800)
        assert child.returncode == 0, err[-2000:]
        outputs.append(out.split())
    digests = {digest for digest, _ in outputs}
    assert len(digests) == 1, digests
    later = _start(cache)
    out, err = later.communicate(timeout=600)
    assert later.returncode == 0, err[-2000:]
    digest, compiling = out.split()
    assert digest in digests
    assert float(compiling) == 0.0  # every kernel loaded from the cache the sixteen left
    assert "compiling fastcavi's kernels" not in err
