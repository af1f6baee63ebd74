"""Progress of a fit or a prediction: a hook that the streaming passes call once per chunk.

Nothing here is global mutable state. The reporter in use and the stage of the work (the
initialisation, the sweeps, a prediction) are held in :class:`contextvars.ContextVar`\\ s, set
with :func:`reporting` and :func:`stage`: each Python thread (and each asyncio task) sees its
own, so concurrent fits never report into each other's reporter, and a fit with no reporter
(the default) pays one ``ContextVar.get`` per pass and one ``is not None`` test per chunk.
A reporter only reads counts and times: it cannot change a result.

A pass asks for a ticker with :func:`track` (``None`` when nobody listens) and calls it with
the rows of each chunk it has finished::

    tick = track("E-step pass", source.n_samples)
    for row0, chunk in source.chunks(chunk_rows):
        ...
        if tick is not None:
            tick(chunk.shape[0])

:class:`Reporter` is the command line's: a bar rewritten in place on a terminal, plain
rate-limited lines otherwise.
"""
import contextlib
import contextvars
import math
import os
import shutil
import time

_REPORTER = contextvars.ContextVar("fastcavi_progress_reporter", default=None)
_STAGE = contextvars.ContextVar("fastcavi_progress_stage", default=None)

#: The stage label of the CAVI sweeps (their passes are drawn as the sweep's bar, not as lines).
SWEEP = "sweep"


class Stage:
    """What the passes started inside :func:`stage` belong to.

    Parameters
    ----------
    label : str
        Shown before each pass's own name (``"initialisation"``, ``"prediction"``), or
        :data:`SWEEP` for the CAVI sweeps.
    max_sweeps : int or None
        For :data:`SWEEP`: ``max_iter``, the most sweeps a run makes.
    runs : int
        For :data:`SWEEP`: the runs (``n_init``) that will be made.
    rows : int or None
        For :data:`SWEEP`: rows per sweep (for rows/s when the sweep's pass is not tracked here).
    """

    def __init__(self, label, max_sweeps=None, runs=1, rows=None):
        self.label, self.max_sweeps, self.runs, self.rows = label, max_sweeps, runs, rows


class Pass:
    """One tracked pass: call it with the rows of each finished chunk.

    Parameters
    ----------
    reporter : Reporter
        Where the counts go.
    stage : Stage or None
        The stage the pass was started in.
    name : str
        What the pass does (``"validating pass"``, ``"k-means++ centre 2/5"``).
    total : int
        The rows it will read.
    """

    def __init__(self, reporter, stage, name, total):
        self.reporter, self.stage, self.name, self.total = reporter, stage, name, int(total)
        self.done = 0
        self.start = reporter.clock()
        reporter.pass_started(self)

    def __call__(self, rows):
        """Count ``rows`` more rows read; the pass is finished when all ``total`` are.

        Parameters
        ----------
        rows : int
            Rows of the chunk just finished.
        """
        self.done += int(rows)
        if self.done >= self.total:
            self.reporter.pass_finished(self)
        else:
            self.reporter.pass_advanced(self)


def track(name, total):
    """A :class:`Pass` counting the rows of a pass named ``name``, or None when no reporter listens.

    Parameters
    ----------
    name : str
        What the pass does.
    total : int
        The rows it will read.

    Returns
    -------
    Pass or None
    """
    reporter = _REPORTER.get()
    if reporter is None or total <= 0:
        return None
    return Pass(reporter, _STAGE.get(), name, total)


@contextlib.contextmanager
def reporting(reporter):
    """Send the progress of the passes run inside the block (in this thread or task) to ``reporter``.

    Parameters
    ----------
    reporter : Reporter or None
        None: nobody listens (a block of a fit with a reporter can switch it off).

    Yields
    ------
    Reporter or None
    """
    from ._kernels import _compiling

    token = _REPORTER.set(reporter)
    previous = _compiling.set_handler(reporter.note) if reporter is not None else None
    try:
        yield reporter
    finally:
        if reporter is not None:
            _compiling.set_handler(previous)
        _REPORTER.reset(token)


@contextlib.contextmanager
def stage(label, *, max_sweeps=None, runs=1, rows=None):
    """Mark the passes run inside the block as part of a stage (see :class:`Stage`).

    Parameters
    ----------
    label : str
    max_sweeps : int, optional
    runs : int, default 1
    rows : int, optional

    Yields
    ------
    Stage or None
        None when no reporter listens (then nothing is set).
    """
    reporter = _REPORTER.get()
    if reporter is None:
        yield None
        return
    current = Stage(label, max_sweeps, runs, rows)
    token = _STAGE.set(current)
    reporter.stage_entered(current)
    try:
        yield current
    finally:
        _STAGE.reset(token)


def _count(n, noun):
    """``1 pass``, ``2 passes``, ``1,000 rows``."""
    return f"{n:,} {noun}" + ("" if n == 1 else "es" if noun.endswith("s") else "s")


def _rate(rows_per_s):
    """``12.3M``: rows per second, three significant digits."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rows_per_s >= scale:
            return f"{rows_per_s / scale:.3g}{unit}"
    return f"{rows_per_s:.3g}"


def _duration(seconds):
    """``1h02m``, ``3m05s``, ``12.3s``."""
    if not math.isfinite(seconds):
        return "?"
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{seconds:.1f}s"


class Reporter:
    """The command line's progress display: passes, sweeps, rows/s and time left.

    On a terminal: a bar rewritten in place (``\\r``) at most every ``refresh`` seconds, for each
    pass and for each sweep; a line for each finished pass. Otherwise (a pipe, a file): no
    ``\\r``, a line per finished pass and per sweep, a line every ``heartbeat`` seconds during a
    long pass, and a final line. Lines of one kind (passes of one stage, sweeps) closer together
    than ``interval`` seconds are held back, the last of them always written, so that a fit of
    many short sweeps prints a few lines a second at most. On a terminal the sweep lines rewrite
    one line. Called as ``reporter(iteration, elbo, change)`` after each sweep (a fit's callback).

    Time left: for a pass, its rows left at its rate so far. For the sweeps, ``<= 1m20s left``: the
    most sweeps that ``max_iter`` (and ``n_init``) still allow, times the mean sweep time so far.
    It bounds the number of sweeps (convergence usually stops a run earlier; after a resume it
    over-counts, the resumed run's sweeps being numbered from 1), not their times, and it leaves
    out the initialisation of the runs still to come.

    Parameters
    ----------
    stream : file-like
        Where to write (``sys.stderr``).
    tty : bool, optional
        Draw a bar (default: ``stream.isatty()``).
    interval : float, default 1.0
        The least time between two lines of one kind.
    refresh : float, default 0.1
        The least time between two redraws of the bar (terminal).
    heartbeat : float, default 30.0
        The time between the lines of a pass in flight (not a terminal).
    clock : callable, default time.perf_counter
    compile_clock : callable, optional
        Seconds spent compiling kernels so far (default: this process's, with the default ``clock``; none
        with another). Every time and rate shown leaves the compiles out: a first fit's kernels compile
        once per machine, and their seconds are no measure of the passes. The final line adds them.

    Notes
    -----
    A first compile's one-line notice (:mod:`fastcavi._kernels._compiling`) comes here as a line of its
    own while :func:`reporting` has the reporter installed.
    """

    def __init__(self, stream, *, tty=None, interval=1.0, refresh=0.1, heartbeat=30.0, clock=time.perf_counter,
                 compile_clock=None):
        if compile_clock is None:
            from ._kernels import _compiling

            compile_clock = _compiling.seconds if clock is time.perf_counter else (lambda: 0.0)
        self._compile_clock, self._compiled_before = compile_clock, compile_clock()
        self.stream = stream
        self.clock = lambda: clock() - compile_clock()  # a clock that stands still while kernels compile
        self.tty = stream.isatty() if tty is None else bool(tty)
        self.interval, self.refresh, self.heartbeat = interval, refresh, heartbeat
        self.start = clock()
        self.sweeps, self.passes, self.rows = 0, 0, 0
        self._run, self._last_it, self._sweep_times = 0, 0, []
        self._mark = self.start  # when the sweep in flight began: the last sweep's end or the stage's start
        self._sweep_pass = None  # the pass of the sweep in flight, when it is tracked here
        self._stage = None  # the sweep stage in use (max_iter, runs, rows)
        self._elbo = self._change = math.nan
        self._key, self._pending, self._last_line = None, None, -math.inf
        self._drawn, self._width, self._last_draw = False, 0, -math.inf

    # -- the hook -------------------------------------------------------------------------------
    def stage_entered(self, stage):
        """A stage begins (see :func:`stage`).

        Parameters
        ----------
        stage : Stage
        """
        if stage.label == SWEEP:
            self._stage, self._mark = stage, self.clock()

    def pass_started(self, p):
        """A pass begins.

        Parameters
        ----------
        p : Pass
        """
        if self._sweeping(p) and self._sweep_pass is None:
            self._sweep_pass = p

    def pass_advanced(self, p):
        """A chunk of a pass is finished.

        Parameters
        ----------
        p : Pass
        """
        now = self.clock()
        if self.tty:
            if now - self._last_draw >= self.refresh:
                self._draw(self._sweep_bar(p, now) if self._sweeping(p) else self._pass_bar(p, now))
                self._last_draw = now
        elif not self._sweeping(p) and now - max(p.start, self._last_line) >= self.heartbeat:
            self._flush()
            self._write_line(self._pass_bar(p, now))
            self._last_line = now

    def pass_finished(self, p):
        """The last chunk of a pass is finished.

        Parameters
        ----------
        p : Pass
        """
        now = self.clock()
        self.passes += 1
        self.rows += p.total
        if self._sweeping(p):
            if self.tty:
                self._draw(self._sweep_bar(p, now))
                self._last_draw = now
            return
        self._mark = now  # a sweep begins after the initialisation's last pass
        seconds = now - p.start
        rate = f" ({_rate(p.total / seconds)} rows/s)" if seconds > 0 else ""
        self._line(self._name(p), f"{self._name(p)}: {p.total:,} rows in {seconds:.2f} s{rate}", self.interval)

    def __call__(self, it, elbo, change):
        """A sweep is finished (the fit's ``callback``).

        Parameters
        ----------
        it : int
            The sweep's number in its run (from 1).
        elbo, change : float
        """
        now = self.clock()
        if it <= self._last_it or self.sweeps == 0:
            self._run += 1  # a new run (n_init) starts again from sweep 1
        self._last_it, self._elbo, self._change = it, elbo, change
        self.sweeps += 1
        seconds = now - (self._sweep_pass.start if self._sweep_pass is not None else self._mark)
        self._sweep_times.append(seconds)
        rows = self._stage.rows if self._stage is not None and self._stage.rows else None
        if rows is None and self._sweep_pass is not None:
            rows = self._sweep_pass.total
        if self._sweep_pass is None and rows:
            self.rows += rows  # read elsewhere (on Dask workers)
        self._sweep_pass, self._mark = None, now
        text = f"iter {it:5d}  ELBO {elbo: .10e}  change {change: .3e}"
        if rows and seconds > 0:
            text += f"  {_rate(rows / seconds)} rows/s"
        text += f"  {now - self.start:8.2f} s{self._sweeps_left()}"
        self._line(SWEEP, text, math.inf if self.tty else self.interval)

    def close(self):
        """Write what is held back and a final line (when anything was reported)."""
        self._flush()
        if self._drawn:
            self.stream.write("\r" + " " * self._width + "\r")
            self._drawn = False
        if self.passes or self.sweeps:
            compiling = self._compile_clock() - self._compiled_before
            self.stream.write(f"total: {_count(self.sweeps, 'sweep')}, {_count(self.passes, 'pass')}, "
                              f"{_count(self.rows, 'row')} read "
                              f"in {self.clock() - self.start:.2f} s"
                              + (f" (and {compiling:.2f} s compiling kernels)" if compiling >= 0.005 else "") + "\n")
        self.stream.flush()

    # -- text -----------------------------------------------------------------------------------
    def _sweeping(self, p):
        return p.stage is not None and p.stage.label == SWEEP

    @staticmethod
    def _name(p):
        return p.name if p.stage is None else f"{p.stage.label}: {p.name}"

    @staticmethod
    def _bar(fraction, width=10):
        filled = int(fraction * width)
        return "[" + "#" * filled + "." * (width - filled) + f"] {100 * fraction:3.0f}%"

    @staticmethod
    def _speed(p, now):
        """The pass's rows/s so far and the seconds it has left at that rate (NaN before any time passed)."""
        seconds = now - p.start
        rate = p.done / seconds if seconds > 0 else math.nan
        return (_rate(rate) if rate > 0 else "?"), ((p.total - p.done) / rate if rate > 0 else math.nan)

    def _pass_bar(self, p, now):
        rate, left = self._speed(p, now)
        return f"{self._name(p)} {self._bar(p.done / p.total)}  {_duration(left)} left  {rate} rows/s  " \
               f"{p.done:,}/{p.total:,} rows"

    def _sweep_bar(self, p, now):
        # what matters most first: a narrow terminal cuts the end off
        rate, _ = self._speed(p, now)
        it = self._last_it + 1 if self.sweeps else 1
        limit = f"/{self._stage.max_sweeps}" if self._stage is not None and self._stage.max_sweeps else ""
        text = f"iter {it}{limit} {self._bar(p.done / p.total)}{self._sweeps_left()}  {rate} rows/s"
        return text + (f"  ELBO {self._elbo:.7e}  change {self._change:.2e}" if self.sweeps else "")

    def _sweeps_left(self):
        if self._stage is None or not self._stage.max_sweeps or not self._sweep_times:
            return ""
        n = self._stage.max_sweeps
        left = max(0, n - self._last_it) + max(0, self._stage.runs - self._run) * n
        return f"  <= {_duration(left * sum(self._sweep_times) / len(self._sweep_times))} left"

    # -- output ---------------------------------------------------------------------------------
    def _line(self, key, text, interval):
        """Write ``text`` as a line now, or hold it back when a line of its ``key`` came too recently."""
        now = self.clock()
        if key != self._key:
            self._flush()
            self._key, due = key, True
        else:
            due = now - self._last_line >= interval
        if due:
            self._pending = None
            self._write_line(text)
            self._last_line = now
        else:
            self._pending = text
            if self.tty:
                self._draw(text)
                self._last_draw = now

    def note(self, text):
        """Write ``text`` as a line of its own now (the first compile's notice).

        Parameters
        ----------
        text : str
        """
        self._flush()
        self._write_line(text)

    def _flush(self):
        if self._pending is not None:
            self._write_line(self._pending)
            self._pending = None

    def _write_line(self, text):
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width) + "\n")
            self._drawn, self._width = False, 0
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _columns(self):
        """The width of the stream's terminal (of stdout's, or $COLUMNS, or 80, when it has none)."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            columns = 0
        return columns if columns > 0 else shutil.get_terminal_size().columns  # 0: a pty of unknown size

    def _draw(self, text):
        text = text[:max(20, self._columns() - 1)]  # a wrapped line cannot be rewritten
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._drawn, self._width = True, len(text)
