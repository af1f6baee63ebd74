"""The CAVI loop: sweep (one E-step pass) -> q(pi), components -> full ELBO -> convergence.

It knows nothing of any family's mathematics (that is :mod:`fastcavi._models`, behind
:class:`fastcavi.engine.Model`), nothing of chunks (:mod:`fastcavi._passes`) and nothing of
validation (:mod:`fastcavi._validation`).
"""
import math
import warnings

import numpy as np

from ..exceptions import ELBODecreaseError, ELBODecreaseWarning

#: An ELBO decrease larger than this fraction of the magnitude of the terms it is
#: added up from (the sum of their absolute values, typically 1-4 times |ELBO|) is not
#: round-off: float64 sums of N terms are accurate to ~N * 1e-16 relative in the worst
#: case, far below this for any N a machine holds.
ELBO_DECREASE_RTOL = 1e-9


def check_elbo_drop(model, last, elbo, magnitude, where, exact_rule, exact_hint, stacklevel):
    """Raise or warn when the ELBO went from ``last`` down to ``elbo`` by more than round-off.

    Round-off is :data:`ELBO_DECREASE_RTOL` of ``magnitude`` (the size of the ELBO's terms, at least 1). A
    larger drop raises :class:`fastcavi.ELBODecreaseError` when every step is exact coordinate ascent (``exact_rule``
    says which rule it breaks), else warns :class:`fastcavi.ELBODecreaseWarning` (scikit-learn's ``reg_covar``
    M-step; ``exact_hint`` adds to the advice). ``where`` says when it happened; ``stacklevel`` is the warning's,
    as seen from the caller.
    """
    change, scale = elbo - last, max(magnitude, 1.0)
    if change >= -ELBO_DECREASE_RTOL * scale:
        return
    message = (f"The ELBO went down {where}: from {last!r} to {elbo!r} (a drop of {-change:.6g}, "
               f"{-change / scale:.3g} of the magnitude of its terms), more than round-off.")
    if model.exact_coordinate_ascent:
        raise ELBODecreaseError(f"{message} {exact_rule}: this is a bug or a numerical breakdown.")
    warnings.warn(f"{message} With reg_covar > 0 scikit-learn's M-step (reproduced exactly) is not an exact "
                  f"coordinate-ascent step; pass exact_cavi=True{exact_hint} for exact CAVI.", ELBODecreaseWarning,
                  stacklevel=stacklevel + 1)


def run_cavi(sweep, model, state, *, max_iter, tol, tol_is_relative=True, callback=None, previous_elbo=None,
             on_sweep=None):
    """Coordinate ascent from ``state`` until the ELBO converges or ``max_iter`` sweeps.

    Each sweep updates q(z) (one pass over the data: ``sweep(state)``), then q(pi),
    then the component factors, then evaluates the full ELBO from the same pass.

    Parameters
    ----------
    sweep : callable
        ``sweep(state) -> Stats``.
    model : fastcavi.engine.Model
    state : fastcavi.engine.State
        The starting variational state.
    max_iter : int
    tol : float
        Stop when the ELBO gains less than ``tol`` (times ``|ELBO|`` when
        ``tol_is_relative``). ``tol=0`` runs exactly ``max_iter`` sweeps.
    callback : callable or None
        ``callback(iteration, elbo, change)`` after each sweep.
    previous_elbo : float or None
        The ELBO of ``state`` when it is the end of an earlier run (a warm start): the first
        sweep's change and convergence test are taken against it, as in one long run.
    on_sweep : callable or None
        ``on_sweep(state, elbos, converged)`` after each sweep, with the new state and this run's
        trace so far (checkpoints are written from here).

    Returns
    -------
    state, elbos (ndarray of shape (n_iter,)), converged (bool)

    Raises
    ------
    ELBODecreaseError
        When the ELBO decreases by more than round-off.
    FloatingPointError
        When a sweep produces a non-finite statistic or ELBO.
    """
    elbos = []
    last = previous_elbo
    converged = False
    for it in range(1, max_iter + 1):
        stats = sweep(state)
        if not stats.is_finite():
            raise FloatingPointError(f"Non-finite sufficient statistics at CAVI iteration {it}; "
                                     "the data or the priors are numerically degenerate.")
        new_state = model.update(stats)
        elbo, magnitude = model.elbo_and_magnitude(stats, new_state)
        if not math.isfinite(elbo):
            raise FloatingPointError(f"The ELBO is not finite ({elbo}) at CAVI iteration {it}.")
        change = math.nan
        if last is not None:
            change = elbo - last
            check_elbo_drop(model, last, elbo, magnitude, f"at CAVI iteration {it}",
                            "Coordinate ascent never decreases the ELBO",
                            " (or reg_covar=0 with a positive definite covariance_prior)", stacklevel=3)
        elbos.append(elbo)
        last = elbo
        state = new_state
        if not math.isnan(change) and tol > 0:
            threshold = tol * abs(elbo) if tol_is_relative else tol
            converged = change < threshold
        if on_sweep is not None:  # first: a callback that stops the fit finds this sweep checkpointed
            on_sweep(state, elbos, converged)
        if callback is not None:
            callback(it, elbo, change)
        if converged:
            break
    return state, np.asarray(elbos, dtype=np.float64), converged


def run_restarts(sweep, model, initial_state, *, n_runs, max_iter, tol, tol_is_relative, callback, rng,
                 warm_state=None, warm_elbo=None, saved=None, checkpoint=None, fingerprint=None):
    """``n_runs`` CAVI runs (``n_init``), each from ``initial_state()``; the best final ELBO wins.

    Shared by :func:`fastcavi.fit` and the Dask fit, with their checkpoints: after every sweep
    the run in progress, the best finished run and the generator's state after the run's
    initialisation are written to ``checkpoint``; ``saved`` (a checkpoint read back) skips the
    finished runs and continues the one in progress, with the generator as it was, so that the
    result is bit for bit the uninterrupted one.

    Parameters
    ----------
    sweep : callable
        ``sweep(state) -> Stats``.
    model : fastcavi.engine.Model
    initial_state : callable
        ``initial_state() -> State`` (it may draw from ``rng``).
    n_runs, max_iter : int
    tol : float
    tol_is_relative : bool
    callback : callable or None
    rng : numpy.random.Generator
    warm_state : State, optional
        A warm start's state (then ``initial_state`` is not called).
    warm_elbo : float, optional
        Its ELBO, when the warm start continues one long run.
    saved : fastcavi._driver.checkpoint.Checkpoint, optional
    checkpoint : str, optional
    fingerprint : dict, optional
        The data's and options' fingerprint written with every checkpoint.

    Returns
    -------
    state, elbos, converged
        Of the best run; ``elbos`` is that run's whole trace.
    """
    from . import checkpoint as _checkpoint

    best = None if saved is None else saved.best
    for run in range(n_runs):
        done, previous = np.zeros(0), warm_elbo
        if saved is not None and run < saved.run:
            continue  # finished before the checkpoint: its best is in saved.best
        if saved is not None and run == saved.run:  # the run in progress: its state, trace and generator
            state0, done = saved.state, saved.elbo
            rng.bit_generator.state = saved.rng_state
            previous = float(done[-1]) if done.size else warm_elbo
        elif warm_state is not None:
            state0 = warm_state
        else:
            state0 = initial_state()
        on_sweep = None
        if checkpoint is not None:
            on_sweep = _checkpoint.writer(checkpoint, fingerprint, model, run, done, rng.bit_generator.state, best)
        if saved is not None and run == saved.run and (saved.converged or done.size >= max_iter):
            state, elbos, converged = state0, np.zeros(0), saved.converged  # it had ended
        else:
            state, elbos, converged = run_cavi(sweep, model, state0, max_iter=max_iter - done.size, tol=tol,
                                               tol_is_relative=tol_is_relative, callback=callback,
                                               previous_elbo=previous, on_sweep=on_sweep)
        elbos = np.concatenate((done, elbos))
        if best is None or elbos[-1] > best[1][-1]:
            best = (state, elbos, converged)
    return best
