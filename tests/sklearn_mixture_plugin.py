"""A pytest plugin that runs scikit-learn's own mixture tests against ``fastcavi.BayesianGaussianMixture``.

Loaded with ``-p sklearn_mixture_plugin`` (``tests/`` on the path) for a run of the installed package's
tests, e.g. ``pytest -p sklearn_mixture_plugin --pyargs sklearn.mixture.tests.test_bayesian_mixture``
(``tests/test_sklearn_mixture_suite.py`` does that): before collection it rebinds
``sklearn.mixture.BayesianGaussianMixture`` to fastcavi's estimator, so the test modules import ours.
Nothing is copied from scikit-learn. Tests that cannot pass are marked ``xfail(strict=True)`` with
their reasons (``EXPECTED_FAILURES``), and tests of scikit-learn's private functions are skipped
(``PRIVATE``).
"""
import pytest

#: test name (without parameters) -> why it fails against fastcavi's estimator.
EXPECTED_FAILURES = {}

#: tests of scikit-learn's private functions, not of the estimator: skipped.
PRIVATE = {
    "test_compare_covar_type": (
        "calls the estimator's private methods _check_parameters and _initialize_parameters (scikit-learn's "
        "internal initialisation step, which fastcavi does in fastcavi._init); fastcavi's own "
        "test_covariance_types_agree_after_one_sweep checks the same relations between the covariance types"),
}

#: the installed scikit-learn test modules this plugin is for.
MODULES = ("sklearn.mixture.tests.test_bayesian_mixture", "sklearn.mixture.tests.test_mixture")


def pytest_configure(config):
    import sklearn.mixture

    import fastcavi

    sklearn.mixture.BayesianGaussianMixture = fastcavi.BayesianGaussianMixture


def pytest_collection_modifyitems(config, items):
    import fastcavi

    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__ in MODULES and \
                module.BayesianGaussianMixture is not fastcavi.BayesianGaussianMixture:
            raise pytest.UsageError(f"{module.__name__} imported scikit-learn's estimator before the plugin "
                                    "rebound it: these tests would not test fastcavi.")
        name = item.originalname if hasattr(item, "originalname") else item.name
        if name in PRIVATE:
            item.add_marker(pytest.mark.skip(reason=PRIVATE[name]))
        elif name in EXPECTED_FAILURES:
            item.add_marker(pytest.mark.xfail(strict=True, reason=EXPECTED_FAILURES[name]))
