"""The kernel cache cannot go stale when a file the kernels depend on changes.

numba keys a cached kernel on the contents of the kernel's own source file. ``assignment_sums``
(``_kernels/assignment.py``) inlines ``splitmix64`` from ``_kernels/seeding.py`` at compile time:
an edit of ``splitmix64`` alone leaves ``assignment.py`` unchanged, and without the guard in
``fastcavi/_kernels/__init__.py`` the next process loads the kernel built from the old hash.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

N, K, SEED_HASH = 3000, 5, 0x0123456789ABCDEF

#: Runs the kernel in a new process and prints its per-cluster counts and the dispatcher's cache counts.
SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import fastcavi._kernels.assignment as a
    assert a.__file__.startswith(sys.argv[1]), a.__file__
    N, K = %d, %d
    X = np.ones((N, 1))
    nblocks = (N + 255) // 256
    sums, counts = np.zeros((nblocks, K, 1)), np.zeros((nblocks, K))
    a.assignment_sums(X, 0, np.uint64(%d), K, 256, sums, counts)
    stats = a.assignment_sums.stats
    print(json.dumps({"counts": counts.sum(axis=0).tolist(), "hits": sum(stats.cache_hits.values()),
                      "misses": sum(stats.cache_misses.values())}))
""" % (N, K, SEED_HASH))


def _reference_counts(last_shift):
    """Cluster sizes of rows 0..N-1 under splitmix64 (final shift ``last_shift``), in NumPy."""
    x = np.arange(N, dtype=np.uint64) ^ np.uint64(SEED_HASH)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(last_shift))
    return np.bincount((x % np.uint64(K)).astype(np.int64), minlength=K).astype(float).tolist()


def _run(root, env):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(root)], env=env, cwd=root, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _copy(tmp_path):
    shutil.copytree(REPO / "fastcavi", tmp_path / "fastcavi", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    env.pop("FASTCAVI_NO_CACHE", None)
    env.pop("NUMBA_CACHE_DIR", None)
    return env


def _edit_splitmix64(pkg):
    seeding = pkg / "_kernels" / "seeding.py"
    text = seeding.read_text()
    old = "return x ^ (x >> np.uint64(31))"
    assert text.count(old) == 1
    seeding.write_text(text.replace(old, "return x ^ (x >> np.uint64(29))"))


def test_reference_hashes_differ():
    # the edit below changes the clusters, so a stale kernel is told apart from a fresh one
    assert _reference_counts(31) != _reference_counts(29)


def test_a_kernel_is_rebuilt_when_a_function_it_inlines_changes(tmp_path):
    env = _copy(tmp_path)
    first = _run(tmp_path, env)  # compiles, caches in __pycache__ beside the copied kernels
    assert first["counts"] == _reference_counts(31)
    assert first["misses"] == 1 and first["hits"] == 0
    again = _run(tmp_path, env)  # nothing changed: loaded from the cache, not recompiled
    assert again == dict(first, hits=1, misses=0)
    _edit_splitmix64(tmp_path / "fastcavi")  # assignment.py itself is untouched
    edited = _run(tmp_path, env)
    assert edited["counts"] == _reference_counts(29), "a stale kernel was loaded from the cache"
    assert edited["misses"] == 1 and edited["hits"] == 0
    assert _run(tmp_path, env) == dict(edited, hits=1, misses=0)  # the rebuilt kernel is cached


def test_a_kernel_is_rebuilt_in_numba_cache_dir_too(tmp_path):
    env = _copy(tmp_path)
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "cache")
    assert _run(tmp_path, env)["counts"] == _reference_counts(31)
    assert not (tmp_path / "fastcavi" / "_kernels" / "__pycache__").exists() or not list(
        (tmp_path / "fastcavi" / "_kernels" / "__pycache__").glob("*.nbi"))
    assert list((tmp_path / "cache").rglob("assignment.*.nbi"))
    _edit_splitmix64(tmp_path / "fastcavi")
    edited = _run(tmp_path, env)
    assert edited["counts"] == _reference_counts(29)
    assert edited["misses"] == 1 and edited["hits"] == 0


def _fake_cache(directory):
    names = ["assignment.assignment_sums-20.py312.nbi", "assignment.assignment_sums-20.py312.1.nbc",
             "estep.estep-229.py312.nbi", "other.f-1.py312.nbi", "seeding.cpython-312.pyc"]
    for name in names:
        (directory / name).write_bytes(b"x")
    return names


def test_a_stale_stamp_deletes_only_the_kernels_cache_files(tmp_path):
    from fastcavi import _kernels

    names = _fake_cache(tmp_path)
    _kernels._drop_stale_cache(str(tmp_path), ["assignment", "estep"], "f" * 64)  # no stamp: stale
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[3:] + [_kernels._STAMP])
    assert (tmp_path / _kernels._STAMP).read_text() == "f" * 64 + "\n"
    _fake_cache(tmp_path)
    _kernels._drop_stale_cache(str(tmp_path), ["assignment", "estep"], "f" * 64)  # fresh: nothing deleted
    assert len(list(tmp_path.iterdir())) == len(names) + 1
    _kernels._drop_stale_cache(str(tmp_path), ["assignment", "estep"], "e" * 64)  # another fingerprint
    assert len(list(tmp_path.iterdir())) == 3 and (tmp_path / _kernels._STAMP).read_text().startswith("e")


def test_a_cache_directory_that_cannot_be_written_is_left_alone(tmp_path, monkeypatch):
    # (the tests may run as root, for whom chmod does not make a directory read-only)
    from fastcavi import _kernels

    names = _fake_cache(tmp_path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "read-only file system")

    monkeypatch.setattr(_kernels.os, "remove", refuse)
    _kernels._drop_stale_cache(str(tmp_path), ["assignment", "estep"], "f" * 64)
    # a stale index that could not be removed is not declared fresh by a stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    monkeypatch.undo()
    monkeypatch.setattr(_kernels.tempfile, "mkstemp", refuse)
    _kernels._drop_stale_cache(str(tmp_path), ["assignment", "estep"], "f" * 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[3:])  # deleted; the stamp could not be written
    _kernels._drop_stale_cache(str(tmp_path / "missing"), ["assignment"], "f" * 64)  # no directory at all


def test_the_fingerprint_covers_config_and_every_kernel_source(tmp_path, monkeypatch):
    from fastcavi import _kernels

    names, original = _kernels._module_names(), _kernels._CONFIG
    assert {"_fastexp", "assignment", "estep", "exactsum", "seeding", "summary"} <= set(names)
    base = _kernels._fingerprint(names)
    assert base == _kernels._fingerprint(names) and len(base) == 64
    config = tmp_path / "_config.py"
    config.write_text(Path(_kernels._CONFIG).read_text().replace("BLOCK_ROWS = 256", "BLOCK_ROWS = 512"))
    monkeypatch.setattr(_kernels, "_CONFIG", str(config))
    assert _kernels._fingerprint(names) != base
    kernels = tmp_path / "_kernels"
    shutil.copytree(_kernels._HERE, kernels, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(_kernels, "_CONFIG", original)
    monkeypatch.setattr(_kernels, "_HERE", str(kernels))
    assert _kernels._fingerprint(names) == base
    fastexp = kernels / "_fastexp.py"
    fastexp.write_text(fastexp.read_text() + "\n")
    assert _kernels._fingerprint(names) != base
