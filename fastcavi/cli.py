"""The command line: ``fastcavi fit``, ``fastcavi predict``, ``fastcavi demo``, ``fastcavi compile``.

The options that set a fit's parameters are generated from their declaration in
:mod:`fastcavi.options` (``--covariance-type``, ``--reg-covar``, ``--max-iter``, ...; the
spellings of earlier versions, ``--seed``, ``--threads``, ``--weight-prior-type``, ``--alpha``,
``--nu``, still work).

``fastcavi fit DATA`` reads a ``.npy`` file, a Zarr store or an HDF5 dataset (``FILE.h5:/path``;
see :mod:`fastcavi._readers`), here or, with ``--scheduler ADDRESS``, on a Dask cluster
(``--chunk-rows`` rows per task).
"""
import argparse
import contextlib
import signal
import sys
import time

import numpy as np

from . import _readers, options

#: The declared parameters that ``fastcavi fit`` offers as options (those with a command-line form).
_FIT_LAYERS = (options.MODEL, options.FIT, options.RUNTIME)


class _Progress:
    """One line per sweep (or one rewritten line on a terminal): iteration, ELBO, change, time."""

    def __init__(self, stream):
        self.stream = stream
        self.start = time.perf_counter()
        self.tty = stream.isatty()

    def __call__(self, it, elbo, change):
        text = (f"iter {it:5d}  ELBO {elbo: .10e}  change {change: .3e}  "
                f"{time.perf_counter() - self.start:8.2f} s")
        if self.tty:
            self.stream.write("\r" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")


class _Interrupted(Exception):
    """SIGINT or SIGTERM arrived during a fit (after its last checkpoint was written)."""

    def __init__(self, signum, sweeps):
        super().__init__(signum)
        self.signum, self.sweeps = signum, sweeps


class _StopOnSignal:
    """Turn SIGINT and SIGTERM into a clean stop at the end of the sweep in flight.

    After the first sweep, a signal is only noted: the sweep finishes, its checkpoint is
    written (``fit`` writes it before calling the callback), and the callback raises. Before
    the first sweep there is nothing to save, and the signal stops the fit at once.
    """

    def __init__(self, progress):
        self.progress, self.signum, self.sweeps, self._previous = progress, None, 0, {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self._previous[s] = signal.signal(s, self._note)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _note(self, signum, frame):
        self.signum = signum
        if self.sweeps == 0:
            raise _Interrupted(signum, 0)

    def __call__(self, it, elbo, change):
        self.sweeps += 1
        if self.progress is not None:
            self.progress(it, elbo, change)
        if self.signum is not None:
            raise _Interrupted(self.signum, self.sweeps)


def _client(stack, address):
    """A ``distributed.Client`` of the scheduler at ``address``, closed with ``stack``."""
    distributed = _readers.need("distributed", "--scheduler")
    return stack.enter_context(distributed.Client(address, set_as_default=False))


def _cmd_fit(args):
    import fastcavi

    progress = None if args.quiet else _Progress(sys.stderr)
    try:
        with contextlib.ExitStack() as stack, _StopOnSignal(progress) as stopper:
            if args.scheduler is None:  # a .npy path, a Zarr array or an h5py dataset, read by row slices
                data, cluster = _readers.open_local(args.data, stack), {}
            else:
                data = _readers.open_dask(args.data, args.chunk_rows)
                cluster = {"client": _client(stack, args.scheduler)}
            result = fastcavi.fit(data, callback=stopper, **cluster,
                                  **options.command_line_arguments(args, *_FIT_LAYERS))
    except _Interrupted as stop:
        name = signal.Signals(stop.signum).name
        if args.checkpoint is not None and stop.sweeps > 0:
            again = _without_option(["fastcavi"] + sys.argv[1:], "--resume")
            print(f"fastcavi: {name}: stopped after sweep {stop.sweeps}; the fit state is in {args.checkpoint}. "
                  f"Resume with: {' '.join(again)} --resume {args.checkpoint}", file=sys.stderr)
        else:
            print(f"fastcavi: {name}: stopped before any checkpoint was written (pass --checkpoint PATH to be "
                  "able to resume)", file=sys.stderr)
        return 128 + stop.signum  # 130 for SIGINT, 143 for SIGTERM
    finally:
        if progress is not None:
            progress.close()
    written = result.save(args.out)
    print(f"{result.n_iter} sweeps, converged={result.converged}, ELBO {result.lower_bound:.10e}; "
          f"model written to {written}")
    for k in range(result.n_components):
        print(f"  component {k}: weight {result.weights[k]:.4f}  mean "
              + " ".join(f"{v:.4f}" for v in result.means[k][:8]) + (" ..." if result.n_features > 8 else ""))
    return 0


def _without_option(argv, flag):
    """``argv`` without ``flag VALUE`` or ``flag=VALUE``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == flag:
            skip = True
        elif not a.startswith(flag + "="):
            out.append(a)
    return out


def _cmd_predict(args):
    import fastcavi

    result = fastcavi.load(args.model)
    runtime = options.command_line_arguments(args, options.RUNTIME)
    if args.proba:
        out = result.predict_proba(args.data, **runtime)
    else:
        out = result.predict(args.data, **runtime)
    path = args.out if str(args.out).endswith(".npy") else f"{args.out}.npy"  # what np.save writes
    np.save(path, out)
    print(f"wrote {out.shape} {'responsibilities' if args.proba else 'labels'} to {path}")
    return 0


def _cmd_demo(args):
    from ._demo import run_demo

    run_demo(out_dir=args.out_dir, plots=not args.no_plots)
    return 0


def _cmd_compile(args):
    import os

    if args.cache_dir is not None:  # before numba is imported: numba reads it once, on import
        if "numba" in sys.modules:
            raise ValueError("--cache-dir must be set before numba is loaded; set NUMBA_CACHE_DIR instead")
        os.environ["NUMBA_CACHE_DIR"] = os.path.abspath(args.cache_dir)
    from ._compile import compile_kernels

    records = compile_kernels(tuple(args.dtype or ("float64", "float32")), verbose=not args.quiet)
    built = sum(r.action == "compiled" for r in records)
    print(f"{len(records)} kernel variants ready ({built} compiled, {len(records) - built} already cached) in "
          + ", ".join(sorted({r.cache_dir for r in records})))
    return 0


#: Rows per Dask chunk of ``fastcavi fit --scheduler`` (2**20: 256 of the engine's 4096-row segments).
DEFAULT_CHUNK_ROWS = 1 << 20


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="fastcavi", description="Variational Bayesian Gaussian mixtures (CAVI).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="fit a mixture to a .npy file, a Zarr store or an HDF5 dataset (streamed), "
                                   "here or on a Dask cluster")
    p.add_argument("data", help="(N, D) data: FILE.npy (memory-mapped), STORE.zarr (a directory; STORE.zarr:ARRAY "
                                "in a group) or FILE.h5:/path/to/dataset")
    p.add_argument("--out", required=True, help="where to write the model (.npz)")
    options.add_command_line_options(p, *_FIT_LAYERS)  # -k, --covariance-type, --reg-covar, --max-iter, ...
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="fit on the Dask cluster of this scheduler (tcp://host:8786); the data path must be "
                        f"readable by every worker. Needs the dask extra: {_readers.EXTRA}")
    p.add_argument("--chunk-rows", type=_positive_int, default=DEFAULT_CHUNK_ROWS, metavar="ROWS",
                   help="with --scheduler: rows per Dask task (a whole multiple of 4096 gives the local fit's "
                        "bits). Default: %(default)s.")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("predict", help="label the rows of a .npy file with a saved model")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--out", required=True, help="output .npy (labels, or responsibilities with --proba)")
    p.add_argument("--proba", action="store_true")
    options.add_command_line_options(p, options.RUNTIME)  # --n-threads (or --threads), --chunk-size
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("demo", help="run the seed notebook's example on its embedded data")
    p.add_argument("--out-dir", default=".", help="where to save the figures")
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("compile", help="compile every kernel variant ahead of time into numba's on-disk cache "
                                       "(for container images and cluster workers)")
    p.add_argument("--dtype", action="append", choices=("float64", "float32"),
                   help="a data float width to compile for (repeatable). Default: both")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="the cache directory (sets NUMBA_CACHE_DIR; every process that should use the cache "
                        "needs the same NUMBA_CACHE_DIR). Default: NUMBA_CACHE_DIR, else __pycache__ beside "
                        "the kernels, else numba's user-wide cache directory")
    p.add_argument("--quiet", action="store_true", help="only the summary line")
    p.set_defaults(func=_cmd_compile)
    return parser


def main(argv=None):
    """Run the command line; return the exit status.

    Bad input (a ``ValueError``: data, parameters, a file that is not a model; an ``OSError``:
    a path that cannot be read or written; a ``FloatingPointError``: numerically degenerate
    data; an optional package that the data or ``--scheduler`` needs and that is not installed,
    with the extra to install) is reported as one line on stderr, ``fastcavi: error: ...``, with
    exit status 2, as argparse reports bad arguments. Anything else is a bug and keeps its traceback.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, FloatingPointError, _readers.MissingExtra) as exc:
        print(f"fastcavi: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
