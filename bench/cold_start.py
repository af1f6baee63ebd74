"""Where the cold start goes: CPU seconds of a first fit, and of each kernel variant, in a fresh cache.

Run from the repository root:

    python bench/cold_start.py [--only fits|kernels|flags] [--repeat 1]

Every measurement runs in a child process whose ``NUMBA_CACHE_DIR`` is a new empty directory,
and is the child's CPU time (user + system, ``getrusage(RUSAGE_CHILDREN)``): wall time is noisy
on a shared machine, CPU time much less so. It prints three tables:

* fits: whole first fits in a fresh environment (``import fastcavi``, data, fit), for each float
  width and a few options, and the same fits after ``fastcavi compile`` (cache warm);
* kernels: each kernel variant of :data:`fastcavi._compile.KERNELS` compiled alone in a fresh
  process (``import`` of numba and the kernel module included; the first row, ``numba only``,
  is that import alone, to subtract);
* flags: the E-step kernel compiled under other compile flags (``fastmath`` off,
  ``error_model="python"``, ``nogil`` off, ``boundscheck`` on), for compile time only.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FIT = textwrap.dedent("""
    import warnings, numpy as np
    warnings.simplefilter("ignore")
    import fastcavi
    X = np.random.default_rng(0).normal(size=(20000, 3)).astype({dtype!r})
    r = fastcavi.fit(X, 4, covariance_type={cov!r}, max_iter=5, random_state=0{extra})
    {after}
""")

FITS = [
    ("fit float64 identity", dict(dtype="float64", cov="identity", extra="", after="")),
    ("fit float32 identity", dict(dtype="float32", cov="identity", extra="", after="")),
    ("fit float64 full", dict(dtype="float64", cov="full", extra="", after="")),
    ("fit float64 full, weights", dict(dtype="float64", cov="full", extra=", sample_weight=np.ones(len(X))",
                                       after="")),
    ("fit float64 + predict", dict(dtype="float64", cov="identity", extra="", after="r.predict(X)")),
    ("fit float64 then float32", dict(dtype="float64", cov="identity", extra="",
                                      after="fastcavi.fit(X.astype('float32'), 4, max_iter=5)")),
    # the estimator's defaults, scikit-learn's: init_params="kmeans" (k-means++ seeds, then Lloyd)
    ("fit float64 kmeans", dict(dtype="float64", cov="full", extra=", init='kmeans'", after="")),
    ("fit float64 k-means||", dict(dtype="float64", cov="full", extra=", init='k-means||'", after="")),
]

KERNEL = textwrap.dedent("""
    import importlib, time
    import numba
    from numba import types as T
    {patch}
    from fastcavi import _compile
    for module, function, per_dtype, signature in _compile.KERNELS:
        if (module, function) == ({module!r}, {function!r}):
            break
    d = getattr(importlib.import_module("fastcavi._kernels." + module), function)
    t0 = time.process_time()
    d.compile(signature(getattr(T, {dtype!r}) if per_dtype else None))
    print(time.process_time() - t0)
""")

FLAGS = [
    ("as shipped", ""),
    ("fastmath off", "c.PARALLEL_JIT['fastmath'] = False"),
    ("error_model='python'", "c.PARALLEL_JIT['error_model'] = 'python'"),
    ("nogil off", "c.PARALLEL_JIT['nogil'] = False"),
    ("boundscheck on", "c.PARALLEL_JIT['boundscheck'] = True"),
    ("parallel off", "c.PARALLEL_JIT['parallel'] = False"),
]


def child_cpu(code, cache_dir=None):
    """Run ``code`` in a fresh Python with its own kernel cache; return (child CPU seconds, stdout)."""
    own = cache_dir is None
    if own:
        cache_dir = tempfile.mkdtemp(prefix="fastcavi-cold-")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=REPO)
    env.pop("FASTCAVI_NO_CACHE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    if own:
        import shutil

        shutil.rmtree(cache_dir, ignore_errors=True)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.stdout


def best(code, repeat, cache_dir=None):
    runs = [child_cpu(code, cache_dir) for _ in range(repeat)]
    return min(runs, key=lambda r: r[0])


def fits(repeat):
    print(f"{'first fit (fresh process)':34s} {'cold cache':>11s} {'after compile':>14s}   (CPU s)")
    warm_dir = tempfile.mkdtemp(prefix="fastcavi-warm-")  # one cache for every row: compile_kernels builds all
    child_cpu("import fastcavi; fastcavi.compile_kernels()", warm_dir)
    for name, params in FITS:
        code = FIT.format(**params)
        cold = best(code, repeat)[0]
        warm = best(code, repeat, warm_dir)[0]
        print(f"{name:34s} {cold:11.2f} {warm:14.2f}", flush=True)


def kernels(repeat, only=None):
    from fastcavi import _compile

    base = best("import numba, numpy; import fastcavi._kernels", repeat)[0]
    print(f"{'kernel variant (fresh process)':34s} {'child CPU':>10s} {'compile':>8s}   (s)")
    print(f"{'numba only':34s} {base:10.2f} {'':>8s}")
    for module, function, dtype, _ in _compile._variants(_compile.DTYPES):
        if only and only not in f"{module}.{function}[{dtype}]":
            continue
        code = KERNEL.format(module=module, function=function, dtype=dtype, patch="")
        cpu, out = best(code, repeat)
        print(f"{module + '.' + function + '[' + dtype + ']':34s} {cpu:10.2f} {float(out):8.2f}", flush=True)


def flags(repeat):
    print(f"{'estep[float64] compiled with':34s} {'child CPU':>10s} {'compile':>8s}   (s)")
    for name, patch in FLAGS:
        code = KERNEL.format(module="estep", function="estep", dtype="float64",
                             patch="import fastcavi._config as c; " + patch)
        cpu, out = best(code, repeat)
        print(f"{name:34s} {cpu:10.2f} {float(out):8.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("fits", "kernels", "flags"), default=None)
    parser.add_argument("--kernel", default=None, help="kernels: only the variants whose name holds this")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (the least CPU is shown)")
    args = parser.parse_args()
    sys.path.insert(0, REPO)
    for part in ("fits", "kernels", "flags"):
        if args.only in (None, part):
            if part == "kernels":
                kernels(args.repeat, args.kernel)
            else:
                globals()[part](args.repeat)
            print()


if __name__ == "__main__":
    main()
