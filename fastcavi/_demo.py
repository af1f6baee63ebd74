"""The seed notebook's example, on its embedded data: the table, the two figures and the fit's report."""
import os
from importlib import resources

import numpy as np


def seed_case():
    """The seed's run as recorded (see ``shared/seed/README.md``): a dict of arrays."""
    with resources.files("fastcavi").joinpath("data/seed_case.npz").open("rb") as fh:
        with np.load(fh) as f:
            return {k: f[k] for k in f.files}


def fit_seed(case=None, **kwargs):
    """Run the seed's CAVI on its data, from its initial means, with its stopping rule (gain < 1e-5)."""
    import fastcavi

    case = seed_case() if case is None else case
    nu = float(case["nu"])
    options = dict(init=case["init_means"], weight_concentration_prior=case["alpha"],
                   mean_precision_prior=nu, mean_prior=float(case["phi"]) / nu,
                   max_iter=100, tol=1e-5, tol_type="absolute")
    options.update(kwargs)
    return fastcavi.fit(case["X"], case["init_means"].shape[0], **options)


def seed_table(result):
    """The notebook's printed summary: E[mu_k], Cov[mu_k] and E[pi_k] of each cluster."""
    lines = []
    for k in range(result.n_components):
        mean = ", ".join(f"{v:.4f}" for v in result.means[k])
        cov = result.covariances / result.mean_precision[k]
        rows = ",\n\t\t".join("[" + ", ".join(f"{v:.4f}" for v in row) + "]" for row in cov)
        lines += [f"Cluster  {k} :",
                  f"\t E[mu_k]:  [{mean}]",
                  f"\t Cov[mu_k]:  [{rows}]",
                  f"\t E[pi_k]:  {result.weights[k]:.4f}",
                  ""]
    return "\n".join(lines)


def save_figures(result, X, out_dir):
    """The notebook's two figures, drawn by the report's code: the ELBO per sweep, and the clusters
    with each component's mean and 1- and 2-sigma ellipses."""
    from . import report

    paths = [os.path.join(out_dir, "seed_elbo.png"), os.path.join(out_dir, "seed_clusters.png")]
    report._plot_elbo(result, paths[0])
    center, axes = report.principal_axes(X)  # D = 2: the two features
    report._plot_clusters(result, X, result.predict(X), paths[1], center, axes, range(result.n_components))
    return paths


def run_demo(out_dir=".", plots=True, echo=print):
    """Fit the seed's example, print its table, and save the figures and the report when matplotlib is installed."""
    case = seed_case()
    result = fit_seed(case)
    echo(f"fastcavi demo: the seed notebook's example (N={case['X'].shape[0]}, D=2, K=3), "
         f"{result.n_iter} CAVI sweeps, final ELBO {result.lower_bound:.6f}, converged={result.converged}\n")
    echo(seed_table(result))
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            echo("(matplotlib is not installed: no figures; pip install 'fastcavi[plot]')")
        else:
            from .report import write_report

            os.makedirs(out_dir, exist_ok=True)
            for path in save_figures(result, case["X"], out_dir):
                echo(f"saved {path}")
            paths = write_report(result, case["X"], os.path.join(out_dir, "demo-report"))
            echo(f"report written to {paths['index']}")
    return result
