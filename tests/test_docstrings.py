"""Every public function, class and method has a numpydoc docstring that matches its signature.

Checked with numpydoc's own validator (as stumpy checks its docstrings in CI). The public surface
is read from the modules' ``__all__`` (and the public methods of the classes there), so a new
public name is checked without being listed here.
"""
import inspect

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

import fastcavi  # noqa: E402
from fastcavi import engine, report  # noqa: E402

#: The errors that make a docstring wrong, not merely terse: no docstring, parameters missing,
#: unknown or out of order, a missing Returns section, no summary line.
ERRORS = {"GL08", "PR01", "PR02", "PR03", "RT01", "SS01"}
SKIP = {"__version__", "engine"}


def _public_names():
    names = []
    for module, prefix in ((fastcavi, "fastcavi"), (engine, "fastcavi.engine"), (report, "fastcavi.report")):
        for name in module.__all__:
            if name in SKIP:
                continue
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            names.append(f"{prefix}.{name}")
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if isinstance(member, (classmethod, staticmethod)) or inspect.isfunction(member):
                        names.append(f"{prefix}.{name}.{attr}")
    return sorted(set(names))


PUBLIC = _public_names()


def test_the_public_surface_is_found():
    assert "fastcavi.engine.Model.update" in PUBLIC and "fastcavi.fit" in PUBLIC
    assert "fastcavi.BayesianGaussianMixture.fit" in PUBLIC and "fastcavi.engine.Stats.from_array" in PUBLIC
    assert "fastcavi.report.write_report" in PUBLIC and "fastcavi.FitResult.summary" in PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_numpydoc(name):
    result = numpydoc_validate.validate(name)
    errors = [f"{code}: {message}" for code, message in result["errors"] if code in ERRORS]
    assert not errors, f"{name}:\n" + "\n".join(errors)
