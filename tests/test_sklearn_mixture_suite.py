"""scikit-learn's own tests of BayesianGaussianMixture, from the installed package, against fastcavi's.

``sklearn/mixture/tests/test_bayesian_mixture.py`` and ``test_mixture.py`` run in a pytest subprocess
with ``tests/sklearn_mixture_plugin.py``, which rebinds ``sklearn.mixture.BayesianGaussianMixture`` to
``fastcavi.BayesianGaussianMixture`` (nothing is copied into this repository); the plugin names the
tests that are skipped or expected to fail, with their reasons.
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest


HERE = os.path.dirname(os.path.abspath(__file__))


def test_scikit_learns_mixture_tests_pass_against_fastcavi():
    pytest.importorskip("sklearn")
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--no-header", "-p", "no:cacheprovider", "-p", "sklearn_mixture_plugin",
         "-rfEsxX", "--pyargs", "sklearn.mixture.tests.test_bayesian_mixture", "sklearn.mixture.tests.test_mixture"],
        capture_output=True, text=True, env=env, cwd=HERE, timeout=900)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    counts = {what: int(n) for n, what in re.findall(r"(\d+) (\w+)", summary)}
    assert counts.get("passed", 0) >= 20 and not counts.get("failed") and not counts.get("error"), summary
    assert counts.get("skipped", 0) == 1, summary  # test_compare_covar_type only (private methods)


def test_covariance_types_agree_after_one_sweep():
    # What scikit-learn's test_compare_covar_type checks through private methods (one M-step from the same
    # hard labels), through fastcavi's public engine: the degrees-of-freedom-scaled covariances of "tied"
    # are the mean of "full"'s, "diag"'s the diagonals of "full"'s, "spherical"'s the means of "diag"'s.
    from fastcavi import engine

    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(size=(100, 3)) * 7 + rng.normal(size=3) * 20 for _ in range(3)])
    R = np.eye(6)[rng.randint(6, size=len(X))]  # hard labels, every component used
    summary = engine.summarize(X)
    for prior_type in ("dirichlet_process", "dirichlet_distribution"):
        scaled = {}
        for cov in ("full", "tied", "diag", "spherical"):
            model = engine.Model(6, cov, summary=summary, weight_concentration_prior_type=prior_type)
            p = model.public_parameters(model.update(engine.responsibility_stats(model, X, R)))
            dof = p["degrees_of_freedom"]
            scaled[cov] = p["covariances"] * (dof[:, None, None] if cov == "full" else
                                              dof[:, None] if cov == "diag" else dof)
        np.testing.assert_allclose(scaled["tied"], scaled["full"].mean(0), rtol=1e-10)
        np.testing.assert_allclose(scaled["diag"], np.array([np.diag(c) for c in scaled["full"]]), rtol=1e-10)
        np.testing.assert_allclose(scaled["spherical"], scaled["diag"].mean(1), rtol=1e-10)
