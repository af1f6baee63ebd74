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


BACKGROUND_CHILD = textwrap.dedent("""
    import hashlib, sys, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    from numba.core import event
    compiled = []

    class Listener(event.Listener):
        def on_start(self, ev):
            compiled.append(ev.data["dispatcher"].py_func.__name__)

        def on_end(self, ev):
            pass

    event.register("numba:compile", Listener())
    import fastcavi
    if sys.argv[1] == "estimator":  # imported first, before any data: the child starts here
        from fastcavi import BayesianGaussianMixture
        from fastcavi import _compile
        assert (_compile._CHILD is not None) == (sys.argv[2] == "1")
    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(loc=c, size=(2000, 2)) for c in (0.0, 5.0)]).astype(sys.argv[3])
    r = fastcavi.fit(X, 2, covariance_type="diag", max_iter=3, tol=0, random_state=0)
    h = hashlib.sha256(np.ascontiguousarray(r.means).tobytes() + np.ascontiguousarray(r.elbo).tobytes())
    from fastcavi import _compile
    phases = [(getattr(fastcavi._kernels.estep, f).signatures, s) for _, f, s in _compile._phase_signatures()]
    estep = {"estep_blocks", "_features"} | {f for _, f, _ in _compile._phase_signatures()}
    built_here = [name for name in compiled if name in estep]
    print(h.hexdigest(), bool(built_here), all(sigs in ([], [tuple(s)]) for sigs, s in phases))
""")


def test_a_first_fit_takes_the_e_step_from_the_second_process_with_the_same_bits(tmp_path):
    # two CPUs or more: the E-step compiles in a child process and loads here (its phases too; the child
    # builds those with the signatures the kernel calls them with, so nothing is built twice); started when
    # the estimator is imported, the child builds the phases before it knows the float width (float32 here,
    # the other width); switched off, everything compiles here, and the phases have exactly the child's
    # signatures
    import os as _os

    if (_os.cpu_count() or 1) < 2:
        pytest.skip("the background build needs two CPUs")
    runs = {}
    for name, start, flag, dtype in (("background", "fit", "1", "float64"), ("here", "fit", "0", "float64"),
                                     ("early", "estimator", "1", "float32")):
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / name), FASTCAVI_BACKGROUND_COMPILE=flag)
        done = subprocess.run([sys.executable, "-c", BACKGROUND_CHILD, start, flag, dtype], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[name] = done.stdout.split()
    assert runs["background"][0] == runs["here"][0]  # the same bits
    assert runs["background"][1] == runs["early"][1] == "False" and runs["here"][1] == "True"
    assert runs["here"][2] == "True"
