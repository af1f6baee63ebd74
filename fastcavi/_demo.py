"""The seed notebook's example, on its embedded data: the table and the two figures."""
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


def confidence_ellipse(mean, cov, ax, n_std=2.0, **kwargs):
    """Draw the ``n_std`` confidence ellipse of N(mean, cov) (2-D) on ``ax``."""
    from matplotlib.patches import Ellipse

    vals, vecs = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    width, height = 2 * n_std * np.sqrt(vals[::-1])
    ax.add_patch(Ellipse(mean, width, height, angle=angle, facecolor="none", **kwargs))


def save_figures(result, X, out_dir):
    """The notebook's two figures: the ELBO per sweep, and the clusters with means and ellipses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [os.path.join(out_dir, "seed_elbo.png"), os.path.join(out_dir, "seed_clusters.png")]
    fig, ax = plt.subplots()
    ax.plot(np.arange(1, result.n_iter + 1), result.elbo, marker=".")
    ax.set_xlabel("CAVI iteration")
    ax.set_ylabel("ELBO")
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 6))
    colors = ["red", "blue", "green", "orange", "purple", "brown", "pink", "gray"]
    labels = result.predict(X)
    for k in range(result.n_components):
        c = colors[k % len(colors)]
        ax.plot(X[labels == k, 0], X[labels == k, 1], c=c, ls="", marker=".")
        ax.plot(result.means[k, 0], result.means[k, 1], c=c, mec="k", marker="o", ms=8)
        confidence_ellipse(result.means[k], result.covariances[:2, :2], ax, n_std=2.0, edgecolor=c)
    ax.set_aspect("equal")
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    return paths


def run_demo(out_dir=".", plots=True, echo=print):
    """Fit the seed's example, print its table, and save the figures when matplotlib is installed."""
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
            os.makedirs(out_dir, exist_ok=True)
            for path in save_figures(result, case["X"], out_dir):
                echo(f"saved {path}")
    return result
