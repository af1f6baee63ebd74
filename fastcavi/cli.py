"""The command line: ``fastcavi fit``, ``predict``, ``report``, ``info``, ``demo`` and ``compile``.

The options that set a fit's parameters are generated from their declaration in
:mod:`fastcavi.options` (``--covariance-type``, ``--reg-covar``, ``--max-iter``, ...; the
spellings of earlier versions, ``--seed``, ``--threads``, ``--weight-prior-type``, ``--alpha``,
``--nu``, still work).

``fastcavi fit DATA`` and ``fastcavi predict MODEL DATA`` read a ``.npy`` file, a CSV or TSV
file, a Parquet file, a Zarr store (a directory or a URL) or an HDF5 dataset (``FILE.h5:/path``;
see :mod:`fastcavi._io.readers`; the options of :func:`_add_data_arguments`); ``fit`` here or, with
``--scheduler ADDRESS``, on a Dask cluster (``--chunk-rows`` rows per task).
"""
import argparse
import contextlib
import errno
import os
import secrets
import signal
import sys

import numpy as np

from . import _progress, options
from ._io import readers as _readers

#: The declared parameters that ``fastcavi fit`` offers as options (those with a command-line form).
_FIT_LAYERS = (options.MODEL, options.FIT, options.RUNTIME)


class _Interrupted(Exception):
    """SIGINT or SIGTERM arrived during a fit (after its last checkpoint was written)."""

    def __init__(self, signum, sweeps):
        super().__init__(signum)
        self.signum, self.sweeps = signum, sweeps


def _file_identity(path):
    """(inode, mtime in ns) of the file at ``path``, or None when there is none."""
    try:
        st = os.stat(path)
    except (OSError, TypeError):
        return None
    return st.st_ino, st.st_mtime_ns


class _StopOnSignal:
    """Turn SIGINT and SIGTERM into a clean stop at the end of the sweep in flight.

    After the first sweep, a signal is only noted: the sweep finishes, its checkpoint is
    written (``fit`` writes it before calling the callback), and the callback raises. Before
    the first sweep there is nothing to save, and the signal stops the fit at once; a signal
    that falls between the first checkpoint's write and the first callback is only noted too
    (the checkpoint file changed), so that the stop reports it.
    """

    def __init__(self, progress, checkpoint=None):
        self.progress, self.signum, self.sweeps, self._previous = progress, None, 0, {}
        self.checkpoint = checkpoint
        self._before = _file_identity(checkpoint)

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self._previous[s] = signal.signal(s, self._note)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _note(self, signum, frame):
        self.signum = signum
        if self.sweeps == 0 and not self.checkpoint_written():
            raise _Interrupted(signum, 0)

    def checkpoint_written(self):
        """Whether this run has written its checkpoint file (it is replaced atomically: a new identity)."""
        return self.checkpoint is not None and _file_identity(self.checkpoint) not in (None, self._before)

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

    progress = None if args.quiet else _progress.Reporter(sys.stderr)  # a bar on a terminal, else lines
    try:
        with contextlib.ExitStack() as stack, _StopOnSignal(progress, args.checkpoint) as stopper, \
                _progress.reporting(progress):
            if args.scheduler is None:  # a .npy path, a Zarr array or an h5py dataset, read by row slices
                data, cluster = _readers.open_local(args.data, stack, _table(args)), {}
            else:
                data = _readers.open_dask(args.data, args.chunk_rows, stack, _table(args))
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

    from . import _validation as V
    from ._io.sources import DataSource

    result = fastcavi.load(args.model)
    runtime = options.command_line_arguments(args, options.RUNTIME)
    with contextlib.ExitStack() as stack:
        source = DataSource(_readers.open_local(args.data, stack, _table(args)))
        V.check_features(source.n_features, result.n_features)
        what, name = ("proba", "responsibilities") if args.proba else (
            ("score", "log-densities") if args.log_density else ("labels", "labels"))
        shape = (source.n_samples, result.n_components) if what == "proba" else (source.n_samples,)
        path = args.out if str(args.out).endswith(".npy") else f"{args.out}.npy"  # what np.save writes
        progress = None if args.quiet else _progress.Reporter(sys.stderr)
        try:
            with _npy_writer(path, shape, np.int64 if what == "labels" else np.float64) as write, \
                    _progress.reporting(progress), _progress.stage("prediction"):
                result._predict_chunks(source, what, write, **runtime)
        finally:
            if progress is not None:
                progress.close()
    print(f"wrote {shape} {name} to {path}")
    return 0


@contextlib.contextmanager
def _npy_writer(path, shape, dtype):
    """``write(row0, values)`` that streams rows, in order, into the ``.npy`` file ``path``.

    The file is the one ``np.save`` writes for the same array, byte for byte. Its rows are
    written as they come (ordinary writes, not a memory map, whose written pages would count
    in the process's resident memory up to the file's size): the memory is a chunk's. It is
    written under a temporary name in the same directory and renamed to ``path`` once every
    row is in; on an error (or an interrupt) the temporary file is removed and ``path`` is
    left as it was.
    """
    dtype = np.dtype(dtype)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    done = [0]  # rows written

    def write(row0, values):
        if row0 != done[0] or values.shape[1:] != shape[1:]:
            raise RuntimeError(f"rows {row0}.. of shape {values.shape} out of order (wrote {done[0]})")
        f.write(memoryview(np.ascontiguousarray(values, dtype=dtype)).cast("B"))
        done[0] += values.shape[0]

    try:
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                     "fortran_order": False, "shape": tuple(shape)})
            yield write
            if done[0] != shape[0]:
                raise RuntimeError(f"wrote {done[0]} rows of {shape[0]}")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _cmd_report(args):
    import fastcavi
    from . import report

    try:  # before any work: without matplotlib nothing is written (`fastcavi info MODEL` prints the table)
        report._require_matplotlib()
    except ImportError as exc:
        raise _readers.MissingExtra(f"{exc} (`fastcavi info MODEL` prints the table of components without it)") \
            from None
    result = fastcavi.load(args.model)
    with contextlib.ExitStack() as stack:  # the data is read as `fastcavi fit` reads it
        data = _readers.open_local(args.data, stack, _table(args))
        paths = report.write_report(result, data, args.out, sample=args.sample, seed=args.sample_seed,
                                    **options.command_line_arguments(args, options.RUNTIME))
    print(f"report written to {paths['index']} ({', '.join(os.path.basename(p) for p in paths.values())})")
    return 0


def _cmd_info(args):
    import fastcavi

    print(fastcavi.load(args.model).summary())
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

    records = compile_kernels(tuple(args.dtype or ("float64", "float32")), verbose=not args.quiet, jobs=args.jobs)
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


def _column_list(text):
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"an empty column name in {text!r}")
    return tuple(names)


def _delimiter(text):
    text = {"\\t": "\t", "tab": "\t", "space": " "}.get(text, text)
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"must be one character (or \\t, tab, space), got {text!r}")
    return text


def _add_data_arguments(parser):
    """Add the positional ``data`` and the options that say how to read it (``--columns``, ``--delimiter``,
    ``--header``/``--no-header``, ``--tmp-dir``); :func:`_table` reads them back.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    parser.add_argument("data", help="(N, D) data: FILE.npy (memory-mapped); FILE.csv, FILE.tsv or FILE.parquet "
                                     "(.pq), parsed once into a temporary .npy file; STORE.zarr (a directory, "
                                     "STORE.zarr:ARRAY in a group, or a URL such as s3://bucket/store.zarr); or "
                                     "FILE.h5:/path/to/dataset")
    parser.add_argument("--columns", type=_column_list, default=None, metavar="A,B,...",
                        help="CSV, TSV, Parquet: the columns to read, by name (x,y) or 0-based index (0,2); "
                             "default all")
    parser.add_argument("--delimiter", type=_delimiter, default=None, metavar="CHAR",
                        help="text files: the field delimiter (\\t or tab for a tab); default , for .csv, a tab "
                             "for .tsv. A text file with another name needs it")
    parser.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                        help="text files: whether the first row names the columns; default: when none of its "
                             "fields is a number")
    parser.add_argument("--tmp-dir", default=None, metavar="DIR",
                        help="CSV, TSV, Parquet: where the temporary .npy file goes (removed when the command "
                             "ends); default $TMPDIR. With --scheduler every worker must see it")


def _table(args):
    """The :class:`fastcavi._io.readers.Table` of the options :func:`_add_data_arguments` added."""
    return _readers.Table(columns=args.columns, delimiter=args.delimiter, header=args.header, tmp_dir=args.tmp_dir)


def build_parser():
    parser = argparse.ArgumentParser(prog="fastcavi", description="Variational Bayesian Gaussian mixtures (CAVI).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="fit a mixture to a .npy, CSV, TSV or Parquet file, a Zarr store or an HDF5 "
                                   "dataset (streamed), here or on a Dask cluster")
    _add_data_arguments(p)
    p.add_argument("--out", required=True, help="where to write the model (.npz)")
    options.add_command_line_options(p, *_FIT_LAYERS)  # -k, --covariance-type, --reg-covar, --max-iter, ...
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="fit on the Dask cluster of this scheduler (tcp://host:8786); the data path must be "
                        f"readable by every worker. Needs the dask extra: {_readers.EXTRA}")
    p.add_argument("--chunk-rows", type=_positive_int, default=DEFAULT_CHUNK_ROWS, metavar="ROWS",
                   help="with --scheduler: rows per Dask task (a whole multiple of 4096 gives the local fit's "
                        "bits). Default: %(default)s.")
    p.add_argument("--quiet", action="store_true", help="no progress (by default a bar on a terminal, lines "
                                                        "otherwise, on stderr)")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("predict", help="label the rows of data (the formats of fit) with a saved model")
    p.add_argument("model")
    _add_data_arguments(p)
    p.add_argument("--out", required=True, help="output .npy (labels, int64; or responsibilities or log-densities, "
                                                "float64), written chunk by chunk: the memory is a chunk's")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--proba", action="store_true", help="write the responsibilities, shape (N, K)")
    which.add_argument("--log-density", action="store_true",
                       help="write each row's log-density (score_samples), shape (N,)")
    p.add_argument("--quiet", action="store_true", help="no progress")
    options.add_command_line_options(p, options.RUNTIME)  # --n-threads (or --threads), --chunk-size
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("report", help="write a report of a saved model on data: figures, a table of components "
                                      "and an index.html (needs the plot extra)")
    p.add_argument("model")
    _add_data_arguments(p)  # the data, read as `fastcavi fit` reads it
    p.add_argument("--out", required=True, metavar="DIR", help="the report's directory (made when missing)")
    p.add_argument("--sample", type=_positive_int, default=20000, metavar="ROWS",
                   help="rows drawn (seeded, without loading the data) for the figure. Default: %(default)s.")
    p.add_argument("--sample-seed", type=int, default=0, metavar="SEED",
                   help="seed of the sample. Default: %(default)s.")
    options.add_command_line_options(p, options.RUNTIME)  # --n-threads (or --threads), --chunk-size
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("info", help="print a saved model's summary and its components by weight")
    p.add_argument("model")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("demo", help="run the seed notebook's example on its embedded data, and write its report")
    p.add_argument("--out-dir", default=".", help="where to save the figures (the report goes to OUT_DIR/demo-report)")
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
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                   help="processes to compile in, side by side (numba compiles on one core); -1: one per CPU. "
                        "Default: 1")
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
