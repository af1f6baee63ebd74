"""How often scikit-learn's variational lower bound goes down on constant-column data, and fastcavi's ELBO.

The data are the tests' constant-column data sets (``_dataset("constant_column", rng)`` in
``tests/test_sklearn_agreement.py``, seeded as in ``tests/test_wishart.py``): N = 200 rows,
D = 4 columns (three clusters 4 apart, column 2 constant at 1.5), K = 3, starting
responsibilities drawn from Dirichlet(1, 1, 1). For 40 seeds x 4 covariance types x 2 weight
priors (320 runs), both scikit-learn's ``BayesianGaussianMixture`` and ``fastcavi.fit`` start
from those responsibilities (an M-step from them) and run 50 iterations with the default
``reg_covar`` (1e-6) and the same priors (fastcavi's resolved ``covariance_prior`` is passed to
scikit-learn: its default, the empirical covariance, is singular here).

A run "dips" when scikit-learn's bound (its public ``lower_bounds_``) falls from one iteration to
the next by more than 1e-9 of its previous absolute value. For fastcavi the script counts the
runs that emit an ``ELBODecreaseWarning`` (a drop of the full ELBO by more than 1e-9 of the sum of
the absolute values of its terms) and reports the largest drop of the full ELBO relative to
|ELBO|.

scikit-learn offers no public way to start from given responsibilities: the subclass below
overrides ``_initialize_parameters`` to do the M-step from them (what its own initialisation does
with the responsibilities it draws). Nothing else of scikit-learn is changed, and only fastcavi's
public API is used.

Run: ``python tools/sklearn_bound_dips.py`` (about 4 minutes on a shared 2-core machine).
"""
import warnings

import numpy as np
from sklearn.mixture import BayesianGaussianMixture

import fastcavi

N_SEEDS = 40
N_ITER = 50
RTOL = 1e-9
COV_TYPES = ("spherical", "diag", "full", "tied")
WEIGHT_TYPES = ("dirichlet_distribution", "dirichlet_process")


class FromResponsibilities(BayesianGaussianMixture):
    """scikit-learn's estimator, its first M-step from ``resp0`` instead of its own initial responsibilities."""

    resp0 = None

    def _initialize_parameters(self, X, random_state, *args, **kwargs):
        self._initialize(X, self.resp0)


def constant_column_data(seed, cov, wtype):
    """The tests' constant-column data set and starting responsibilities for one run."""
    rng = np.random.default_rng(seed * 1000 + len("constant_column") * 10 + len(cov) + len(wtype))
    D, K, N = 4, 3, 200
    X = rng.normal(size=(N, D)) + 4.0 * rng.integers(3, size=(N, 1))
    X[:, 2] = 1.5
    R = rng.dirichlet(np.ones(K), size=N)
    return X, R


def largest_drops(bounds):
    """The largest fall between consecutive iterations: (relative to the previous |value|, absolute).

    Both are <= 0 when the bound never falls (then they measure the smallest rise).
    """
    b = np.asarray(bounds, dtype=np.float64)
    fall = b[:-1] - b[1:]
    return float(np.max(fall / np.abs(b[:-1]))), float(np.max(fall))


def one_run(seed, cov, wtype):
    """scikit-learn's largest relative and absolute drops, whether fastcavi warned, its largest absolute drop,
    and the range of fastcavi's ELBO."""
    X, R = constant_column_data(seed, cov, wtype)
    K = R.shape[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = fastcavi.fit(X, K, covariance_type=cov, weight_concentration_prior_type=wtype,
                            init_responsibilities=R, max_iter=N_ITER, tol=0)
    warned = any(issubclass(w.category, fastcavi.ELBODecreaseWarning) for w in caught)
    est = FromResponsibilities(n_components=K, covariance_type=cov, weight_concentration_prior_type=wtype,
                               max_iter=N_ITER, tol=0, n_init=1,
                               covariance_prior=ours.priors["covariance_prior"])
    est.resp0 = R
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its ConvergenceWarning: tol=0 never converges
        est.fit(X)
    sk = [float(np.ravel(b)[0]) for b in est.lower_bounds_]  # tied: shape-(1,) arrays
    assert len(sk) == N_ITER == len(ours.elbo)
    return (*largest_drops(sk), warned, largest_drops(ours.elbo)[1], ours.elbo.min(), ours.elbo.max(),
            np.abs(ours.elbo).min())


def main():
    print(f"constant-column data (N=200, D=4, K=3), {N_SEEDS} seeds x {len(COV_TYPES)} covariance types x "
          f"{len(WEIGHT_TYPES)} weight priors, {N_ITER} iterations from the same responsibilities, reg_covar=1e-6")
    print(f"{'':<40}{'scikit-learn lower bound':^38}{'fastcavi full ELBO':^30}")
    print(f"{'covariance_type':<16}{'weight prior':<24}{'dips':>12}{'max rel drop':>13}{'max abs drop':>13}"
          f"{'warnings':>17}{'max abs drop':>13}")
    rows_all = []
    for cov in COV_TYPES:
        for wtype in WEIGHT_TYPES:
            rows = [one_run(seed, cov, wtype) for seed in range(N_SEEDS)]
            rows_all += rows
            _print_row(cov, wtype, rows)
    _print_row("all", "", rows_all)
    print(f"dips: runs whose scikit-learn bound (lower_bounds_) fell by more than {RTOL:g} of its previous absolute "
          "value at some iteration; max rel drop: the largest (previous - current) / |previous| over the runs "
          "and iterations (negative: it never fell); max abs drop: the largest previous - current.")
    print(f"warnings: runs with an ELBODecreaseWarning (the full ELBO fell by more than {RTOL:g} of the sum of the "
          f"absolute values of its terms); max abs drop: the largest fall of the full ELBO (it ranges from "
          f"{min(r[4] for r in rows_all):.4g} to {max(r[5] for r in rows_all):.4g} over these runs, |ELBO| down to "
          f"{min(r[6] for r in rows_all):.2g}: a drop relative to |ELBO| would mislead).")


def _print_row(cov, wtype, rows):
    rel, ab, warned, fc = (np.array([r[i] for r in rows]) for i in range(4))
    print(f"{cov:<16}{wtype:<24}{int(np.sum(rel > RTOL)):>5} of {len(rows):<3}{rel.max():>13.2e}{ab.max():>13.2e}"
          f"{int(np.sum(warned)):>10} of {len(rows):<3}{fc.max():>13.2e}")


if __name__ == "__main__":
    main()
