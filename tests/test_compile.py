"""``fastcavi compile`` / :func:`fastcavi.compile_kernels`: the kernels a fit uses, built ahead of time."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastcavi
from fastcavi import _compile

REPO = Path(__file__).resolve().parents[1]

#: Fits touching every path into the kernels: both float widths, every family, row weights, given
#: responsibilities, every init, predictions, the estimator. Prints the compile count and a hash of
#: every number the fits return.
FITS = textwrap.dedent("""
    import hashlib, importlib, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    import fastcavi
    from fastcavi import _compile
    rng = np.random.default_rng(3)
    X64 = np.concatenate([rng.normal(size=(5000, 3)) + c for c in ([0, 0, 0], [5, 1, -2], [-3, 5, 1])])
    h = hashlib.sha256()
    w = rng.uniform(0.5, 1.5, len(X64))
    for dt in DTYPES:
        X = X64.astype(dt)
        for cov in ("identity", "spherical", "diag", "full", "tied"):
            r = fastcavi.fit(X, 3, covariance_type=cov, max_iter=4, random_state=0)
            h.update(r.means.tobytes()); h.update(np.asarray(r.elbo).tobytes())
        r = fastcavi.fit(X, 3, covariance_type="full", max_iter=4, random_state=1, sample_weight=rng.uniform(size=len(X)))
        h.update(r.means.tobytes())
        r = fastcavi.fit(X, 3, max_iter=4, init_responsibilities=np.full((len(X), 3), 1 / 3), covariance_type="diag")
        h.update(r.means.tobytes())
        for init in ("random", "random_from_data", "kmeans", "k-means||"):
            h.update(fastcavi.fit(X, 3, max_iter=3, init=init, random_state=2).means.tobytes())
            h.update(fastcavi.fit(X, 3, max_iter=2, init=init, random_state=3, sample_weight=w).means.tobytes())
        h.update(r.predict_proba(X).tobytes()); h.update(r.score_samples(X).tobytes())
        h.update(fastcavi.BayesianGaussianMixture(n_components=3, max_iter=3, random_state=0).fit(X).predict(X).tobytes())
    misses = hits = 0
    for module, function, _, _ in _compile.KERNELS:
        stats = getattr(importlib.import_module("fastcavi._kernels." + module), function).stats
        misses += sum(stats.cache_misses.values())
        hits += sum(stats.cache_hits.values())
    print(misses, hits, h.hexdigest())
""")


def _env(cache_dir, **extra):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=str(REPO))
    env.pop("FASTCAVI_NO_CACHE", None)
    env.update(extra)
    return env


def _run(args, env, timeout=900, cwd=REPO):
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.filterwarnings("ignore:Best performing initialization")
def test_the_registry_holds_the_exact_types_fits_hand_the_kernels():
    # in this process (kernels loaded from the test session's cache): every signature a fit, a
    # weighted fit, a fit from given responsibilities and predictions compile is in the registry
    # (a type the registry lacked would be compiled at fit time, after ``fastcavi compile``)
    import importlib

    from numba import types as T

    registered = {(m, f): {tuple(sig(getattr(T, d) if per else None)) for d in _compile.DTYPES}
                  for m, f, per, sig in _compile.KERNELS}
    dispatchers = {key: getattr(importlib.import_module("fastcavi._kernels." + key[0]), key[1]) for key in registered}
    # other tests of this session may have called a kernel directly with other types: only what the fits add counts
    before = {key: {tuple(s) for s in d.signatures} for key, d in dispatchers.items()}
    rng = np.random.default_rng(0)
    for dt in ("float64", "float32"):
        X = (rng.normal(size=(3000, 2)) + rng.integers(0, 2, (3000, 1)) * 4).astype(dt)
        w = rng.uniform(0.5, 1.5, len(X))
        r = fastcavi.fit(X, 2, max_iter=2, sample_weight=np.ones(len(X)), covariance_type="full")
        fastcavi.fit(X, 2, max_iter=2, init_responsibilities=np.full((len(X), 2), 0.5))
        fastcavi.fit(np.asfortranarray(X), 2, max_iter=2)
        for init in ("kmeans", "k-means||", "random", "random_from_data"):
            for sw in (None, w):  # every start, with and without row weights
                fastcavi.fit(X, 2, max_iter=1, init=init, random_state=1, sample_weight=sw)
        r.predict(X)
        # the fixed-order row map: whitening by a known covariance, and tied's common quadratic term in predictions
        fastcavi.fit(X, 2, max_iter=1, covariance=np.array([[2.0, 0.5], [0.5, 1.0]]))
        fastcavi.fit(X, 2, max_iter=1, covariance_type="tied").score_samples(X)
    seen = set()
    for key, sigs in registered.items():
        for used in {tuple(s) for s in dispatchers[key].signatures} - before[key]:
            assert used in sigs, f"{key[0]}.{key[1]} compiled for {used}, not in the registry"
        if sigs & {tuple(s) for s in dispatchers[key].signatures}:
            seen.add(key)
    # every registered kernel but the exact-sum merge (several parts only) and insert (streaming) ran
    assert set(registered) - seen <= {("exactsum", "merge"), ("exactsum", "insert_values")}, set(registered) - seen


def test_every_kernel_the_package_calls_is_in_the_registry():
    # the kernels called from Python (the entry points; the others are compiled into their callers) must all
    # be in the registry, or ``fastcavi compile`` would leave them to the first fit. Entry points are the
    # kernels imported from outside fastcavi._kernels, and those that the plain Python functions of the
    # kernel modules call (the runners that hand each thread its run of blocks).
    import ast
    import importlib
    import pkgutil

    from numba.core.registry import CPUDispatcher

    import fastcavi._kernels as kernels

    dispatchers = set()
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"fastcavi._kernels.{info.name}")
        dispatchers |= {(info.name, name) for name, obj in vars(module).items()
                        if isinstance(obj, CPUDispatcher) and obj.__module__ == module.__name__}
    called = set()
    for path in (REPO / "fastcavi").rglob("*.py"):
        tree = ast.parse(path.read_text())
        if "_kernels" in path.parts:
            module = path.stem
            for fn in tree.body:
                if isinstance(fn, ast.FunctionDef) and not fn.decorator_list:  # plain Python: calls from Python
                    called |= {(module, n.id) for n in ast.walk(fn) if isinstance(n, ast.Name)} & dispatchers
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and "_kernels." in f"{node.module}.":
                module = node.module.split("_kernels")[-1].lstrip(".")
                called |= {(module, a.name) for a in node.names if (module, a.name) in dispatchers}
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Call) \
                    and getattr(node.value.func, "id", None) == "_exactsum":  # _models.base's lazy module
                called |= {("exactsum", node.attr)} & dispatchers
    registered = {(m, f) for m, f, _, _ in _compile.KERNELS}
    assert len(called) >= 12, called  # the parse found the imports
    assert called <= registered, f"called but not registered: {sorted(called - registered)}"
    assert registered <= dispatchers


@pytest.mark.slow
def test_after_fastcavi_compile_a_fit_compiles_nothing_and_gives_the_same_bits(tmp_path):
    # about 2 minutes of CPU: every variant compiled once ahead, and once more by a fit that compiles itself
    aot, fresh = tmp_path / "aot", tmp_path / "fresh"
    # built by two child processes side by side (--jobs 2): the fits below must find every kernel
    built = _run([sys.executable, "-m", "fastcavi", "compile", "--jobs", "2"], _env(aot))
    assert built.returncode == 0, built.stderr[-3000:]
    n_variants = 2 * sum(per for _, _, per, _ in _compile.KERNELS) + sum(not per for _, _, per, _ in _compile.KERNELS)
    assert f"{n_variants} kernel variants ready ({n_variants} compiled, 0 already cached)" in built.stdout
    assert str(aot) in built.stdout and "estep.estep_blocks[float32]" in built.stdout
    script = FITS.replace("DTYPES", "('float64', 'float32')")
    warm = _run([sys.executable, "-c", script], _env(aot))
    assert warm.returncode == 0, warm.stderr[-3000:]
    misses, hits, digest = warm.stdout.split()
    assert int(misses) == 0 and int(hits) >= 8, warm.stdout
    cold = _run([sys.executable, "-c", script], _env(fresh))
    assert cold.returncode == 0, cold.stderr[-3000:]
    cold_misses, _, cold_digest = cold.stdout.split()
    assert int(cold_misses) >= 8  # it did compile its kernels itself, into its own cache
    # the same bits from kernels built ahead of time, compiled by the fits themselves (in that process),
    # and loaded from the cache those fits wrote
    reloaded = _run([sys.executable, "-c", script], _env(fresh))
    assert reloaded.returncode == 0, reloaded.stderr[-3000:]
    reloaded_misses, _, reloaded_digest = reloaded.stdout.split()
    assert int(reloaded_misses) == 0
    assert reloaded_digest == digest
    assert cold_digest == digest
    again = _run([sys.executable, "-m", "fastcavi", "compile", "--dtype", "float64", "--quiet"], _env(aot))
    assert again.returncode == 0 and "(0 compiled," in again.stdout, again.stdout + again.stderr


def test_an_unwritable_cache_directory_is_an_error_before_any_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    done = _run([sys.executable, "-m", "fastcavi", "compile"], _env(blocker / "cache"), timeout=120)
    assert done.returncode == 2
    assert "fastcavi: error: the kernel cache directory" in done.stderr and "not writable" in done.stderr
    assert str(blocker / "cache") in done.stderr and "compiled" not in done.stdout


def test_compile_refuses_when_caching_is_off(tmp_path):
    done = _run([sys.executable, "-m", "fastcavi", "compile"], _env(tmp_path, FASTCAVI_NO_CACHE="1"), timeout=120)
    assert done.returncode == 2 and "FASTCAVI_NO_CACHE" in done.stderr


def test_compile_kernels_rejects_unknown_dtypes():
    with pytest.raises(ValueError, match="dtypes must be"):
        fastcavi.compile_kernels(dtypes=("float16",))
    with pytest.raises(ValueError, match="dtypes must be"):
        fastcavi.compile_kernels(dtypes=())


@pytest.mark.parametrize("jobs", [0, -2, 1.5, "2", True])
def test_compile_kernels_rejects_bad_jobs(jobs):
    with pytest.raises(ValueError, match=r"jobs must be -1 or a positive integer, got " + repr(jobs).replace(".", r"\.")):
        fastcavi.compile_kernels(jobs=jobs)


def test_a_kernel_that_calls_another_modules_kernel_is_built_in_its_child():
    # with --jobs, each module's kernels build in one child; a registered kernel that calls a registered
    # kernel of another module would build (and save) that callee in a second process at the same time
    import ast
    import importlib
    import inspect
    import textwrap as tw

    registered = {(m, f) for m, f, _, _ in _compile.KERNELS}
    by_name = {f: m for m, f in registered}
    crossing = set()
    for m, f in registered:
        tree = ast.parse(tw.dedent(inspect.getsource(getattr(importlib.import_module(f"fastcavi._kernels.{m}"), f).py_func)))
        calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        crossing |= {((m, f), by_name[c]) for c in calls if c in by_name and by_name[c] != m}
    assert crossing == {(key, module) for key, module in _compile._BUILD_WITH.items()}, crossing


def test_compile_jobs_builds_in_child_processes(tmp_path):
    # two modules' kernels (the cheapest: ~2 s) built by two spawned children into a fresh cache, without the
    # first-compile notice; the records come back in registry order, and a second run finds them all in the cache
    code = textwrap.dedent("""
        from fastcavi import _compile
        _compile.KERNELS = tuple(k for k in _compile.KERNELS if k[0] == "assignment" or k[1] == "merge")
        first = _compile.compile_kernels(("float64",), jobs=2)
        again = _compile.compile_kernels(("float64",), jobs=2)
        for r in first + again:
            print(r.name, r.dtype, r.action, r.cache_dir == first[0].cache_dir)
    """)
    done = _run([sys.executable, "-c", code], _env(tmp_path / "cache"), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines()]
    names = [("assignment.assignment_sums", "float64"), ("assignment.add_blocks", "any"), ("exactsum.merge", "any")]
    assert [(n, d) for n, d, _, _ in rows] == names * 2
    assert [a for _, _, a, _ in rows] == ["compiled"] * 3 + ["cached"] * 3
    assert all(same == "True" for *_, same in rows)
    assert "compiling fastcavi's kernels" not in done.stderr  # the children build quietly too


def test_compile_kernels_reports_each_variant(capsys):
    # in this process the kernels are already loaded or cached: nothing new is compiled for them
    records = fastcavi.compile_kernels(dtypes="float64", verbose=True)
    names = [(r.name, r.dtype) for r in records]
    assert names == [(f"{m}.{f}", "float64" if per else "any") for m, f, per, _ in _compile.KERNELS]
    assert all(r.action in ("compiled", "cached", "in memory") and r.seconds >= 0 and r.cache_dir for r in records)
    out = capsys.readouterr().out
    assert "estep.estep_blocks[float64]" in out and "kernel cache: " in out
    again = fastcavi.compile_kernels(dtypes="float64")
    assert all(r.action == "in memory" for r in again)


def _read_only_run(tmp_path, code, **env_extra):
    """Run ``code`` with a copy of the package on a read-only bind mount (a private mount namespace)."""
    import shutil

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a read-only copy of the package")
    site = tmp_path / "site"
    shutil.copytree(REPO / "fastcavi", site / "fastcavi", ignore=shutil.ignore_patterns("__pycache__"))
    env = _env(tmp_path / "unused", PYTHONPATH=str(site), **env_extra)
    env.pop("NUMBA_CACHE_DIR")
    mount = f"mount --bind {site} {site} && mount -o remount,bind,ro {site} && touch {site}/probe"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", mount],
                           capture_output=True, text=True)
    if probe.returncode == 0 or "Read-only file system" not in probe.stderr:
        pytest.skip(f"cannot make a read-only bind mount here: {probe.stderr.strip()[:200]}")
    mount = f"mount --bind {site} {site} && mount -o remount,bind,ro {site} && exec \"$0\" \"$@\""
    return _run(["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, sys.executable, *code],
                env, timeout=300, cwd=tmp_path), site  # not the repository: it would come first on sys.path


def test_a_read_only_install_caches_in_the_user_wide_directory(tmp_path):
    # numba's order: NUMBA_CACHE_DIR, else __pycache__ beside the sources when writable, else the
    # user-wide cache directory ($XDG_CACHE_HOME/numba)
    code = ["-c", "import fastcavi._kernels.exactsum as e, numpy as np; acc = np.zeros((2, 5), np.int64); "
                  "acc[:, 0] = -1; out = acc.copy(); e.merge(acc, acc, out); print(out[:, 1:].sum(), e.merge.stats.cache_path)"]
    done, site = _read_only_run(tmp_path, code, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert done.returncode == 0, done.stderr[-3000:]
    total, path = done.stdout.split()
    assert float(total) == 0.0 and path.startswith(str(tmp_path / "xdg" / "numba"))
    assert any(p.suffix == ".nbi" for p in Path(path).iterdir())  # the index of the cached kernel
    assert not (site / "fastcavi" / "_kernels" / "__pycache__").exists()


def test_a_read_only_install_without_a_writable_cache_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    done, _ = _read_only_run(tmp_path, ["-m", "fastcavi", "compile"], XDG_CACHE_HOME=str(blocker), HOME=str(blocker))
    assert done.returncode == 2, done.stdout + done.stderr[-3000:]
    assert "no writable kernel cache for fastcavi" in done.stderr and "NUMBA_CACHE_DIR" in done.stderr


def test_a_compile_pauses_the_garbage_collector_and_restores_it(tmp_path):
    # paused for the compile of a kernel (numba's objects would be traversed by every full collection
    # meanwhile), then as it was: on again, or still off where the caller had switched it off
    code = textwrap.dedent("""
        import gc, numpy as np
        from numba.core import event
        import fastcavi._kernels.exactsum as e  # fastcavi's listener is registered first
        during = []

        class Listener(event.Listener):
            def on_start(self, ev):
                during.append(gc.isenabled())

            def on_end(self, ev):
                pass

        event.register("numba:compile", Listener())
        acc = np.zeros((2, 5), np.int64)
        acc[:, 0] = -1
        e.merge(acc, acc, acc.copy())  # compiled here: an empty cache
        after_on = gc.isenabled()
        gc.disable()
        e.insert_values(np.ones(2), acc)
        print(during[0], after_on, gc.isenabled(), len(during) >= 2)
    """)
    done = _run([sys.executable, "-c", code], _env(tmp_path / "cache"), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "True", "False", "True"]
