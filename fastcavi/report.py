"""A fit's report: figures, a table of components and an ``index.html`` that shows them together.

:func:`write_report` writes, into a directory,

* ``elbo.png``: the ELBO after each CAVI sweep;
* ``weights.png``: the component weights ``E[pi_k]``, sorted, with their running total; the
  components counted as *used* are the fewest whose weights add up to ``mass`` (0.99 by
  default: the components that hold 99% of the weight), which shows how many components a
  Dirichlet process actually uses;
* ``clusters.png``: a sample of the rows in 2-D, coloured by predicted label, with the mean and
  the 1- and 2-sigma ellipses of each used component. The axes are the first two features when
  D <= 2 (D == 1: the feature against a seeded jitter) and the top two principal axes of the
  sample when D > 2 (:func:`principal_axes`); means and covariances are projected onto the same
  axes. The ellipses are those of ``FitResult.covariances`` (for the Wishart families
  scikit-learn's ``covariances_``, ``E[Lambda_k]^-1``; for ``"identity"`` the known
  covariance), not of the posterior predictive Student-t, which is wider by the uncertainty
  of ``mu_k`` and ``Lambda_k``;
* ``components.csv`` and, in ``index.html``, the same table (:func:`component_table`): weight,
  expected size, mean and covariance summary of each component, sorted by weight.

The sample is a fixed number of rows (:func:`sample_rows`), drawn without replacement with a
seeded generator and read row by row (a memory map reads only the pages it touches), so a
file of 1e8 rows is never loaded. Only ``write_report`` needs matplotlib (the ``plot`` extra);
it is imported inside the functions that draw, never by ``import fastcavi``.
"""
import csv
import html
import os
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple, Union

import numpy as np

from ._components import DEFAULT_MASS, component_table, covariance_matrices, numbers

if TYPE_CHECKING:  # only for the annotations: the report module imports nothing heavy
    from .result import FitResult

__all__ = ["write_report", "component_table", "sample_rows", "principal_axes"]

#: Rows of the data that the report reads, predicts and draws, by default.
DEFAULT_SAMPLE = 20000
#: What to install for the figures.
PLOT_EXTRA = 'pip install "fastcavi[plot]"'
#: Rows read at a time from data that is not an ndarray (an h5py or Zarr dataset).
_BLOCK_ROWS = 1 << 16
#: The files :func:`write_report` writes, by key.
FILES = {"elbo": "elbo.png", "weights": "weights.png", "clusters": "clusters.png",
         "components": "components.csv", "index": "index.html"}


def _require_matplotlib():
    """``matplotlib.pyplot`` with the Agg backend, or an ImportError that names the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(f"The report's figures need matplotlib, which is not installed: {PLOT_EXTRA}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -- the sample and its axes ------------------------------------------------------------------
def sample_rows(X: Any, n: int = DEFAULT_SAMPLE, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """A seeded sample of ``n`` rows of ``X``, without replacement, read without loading ``X``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), np.memmap, .npy path, or h5py/zarr dataset
        The data. A path is memory-mapped; an ndarray (a memmap) is indexed at the sampled rows
        only; another array-like is read in blocks of 65536 rows, only the blocks that hold a
        sampled row, one at a time.
    n : int, default 20000
        Rows to draw; all the rows, in order, when ``X`` has no more than ``n``.
    seed : int, default 0
        Seeds ``numpy.random.default_rng``: the same seed gives the same rows.

    Returns
    -------
    index : ndarray of shape (m,), int64
        The rows drawn, increasing (``m = min(n, n_samples)``).
    rows : ndarray of shape (m, n_features), float64
        Those rows.

    Raises
    ------
    ValueError
        When ``n`` is not a positive integer, or ``X`` cannot be read as 2-D numeric data.
    """
    from ._io.sources import DataSource

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    source = DataSource(X)
    N, data = source.n_samples, source.data
    if n >= N:
        index = np.arange(N, dtype=np.int64)
    else:
        index = np.sort(np.random.default_rng(seed).choice(N, size=int(n), replace=False)).astype(np.int64)
    if isinstance(data, np.ndarray):
        return index, np.asarray(data[index], dtype=np.float64)
    parts = []
    blocks = index // _BLOCK_ROWS
    for b in np.unique(blocks):
        start = int(b) * _BLOCK_ROWS
        block = np.asarray(data[start:min(start + _BLOCK_ROWS, N)])
        parts.append(np.asarray(block[index[blocks == b] - start], dtype=np.float64))
    return index, np.concatenate(parts).reshape(index.size, source.n_features)


def principal_axes(rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The 2-D view of ``rows``: an origin and axes, ``(rows - center) @ axes``.

    The first two features (origin 0) when D <= 2; when D > 2, the sample's mean and the
    eigenvectors of its covariance with the two largest eigenvalues (its top two principal
    axes), each with the sign that makes its largest entry (in absolute value) positive.

    Parameters
    ----------
    rows : ndarray of shape (m, D)
        The sample.

    Returns
    -------
    center : ndarray of shape (D,)
    axes : ndarray of shape (D, min(D, 2))
        Orthonormal columns.
    """
    rows = np.asarray(rows, dtype=np.float64)
    D = rows.shape[1]
    if D <= 2:
        return np.zeros(D), np.eye(D)
    center = rows.mean(axis=0)
    Y = rows - center
    vals, vecs = np.linalg.eigh(Y.T @ Y / max(rows.shape[0] - 1, 1))
    axes = vecs[:, ::-1][:, :2].copy()
    signs = np.sign(axes[np.argmax(np.abs(axes), axis=0), [0, 1]])
    return center, axes * np.where(signs == 0, 1.0, signs)


# -- the figures --------------------------------------------------------------------------------
def _plot_elbo(result, path):
    """Save the ELBO after each sweep to ``path`` (a PNG)."""
    plt = _require_matplotlib()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(1, result.n_iter + 1), result.elbo, marker=".")
    ax.set_xlabel("CAVI sweep")
    ax.set_ylabel("ELBO")
    ax.set_title(f"ELBO: {result.lower_bound:.6g} after {result.n_iter} sweeps (converged={result.converged})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_weights(table, mass, path):
    plt = _require_matplotlib()
    K = table["weight"].size
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(np.arange(K), table["weight"], color=np.where(table["used"], "C0", "0.7"))
    ax.step(np.arange(K), table["cumulative_weight"], where="mid", color="C1", label="running total")
    ax.axhline(mass, color="C1", ls=":", lw=1)
    ax.set_xticks(np.arange(K))
    ax.set_xticklabels([str(k) for k in table["component"]], fontsize=8 if K <= 20 else 5)
    ax.set_xlabel("component (by weight)")
    ax.set_ylabel("E[pi_k]")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{int(table['used'].sum())} of {K} components hold {mass:.0%} of the weight")
    ax.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _ellipse(ax, mean, cov, n_std, **kwargs):
    """The ``n_std`` ellipse ``(x - mean)' cov^-1 (x - mean) = n_std**2`` of a 2-D ``cov``."""
    from matplotlib.patches import Ellipse

    vals, vecs = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    width, height = 2 * n_std * np.sqrt(np.clip(vals[::-1], 0.0, None))
    ax.add_patch(Ellipse(mean, width, height, angle=angle, facecolor="none", **kwargs))


def _projected(result, center, axes):
    """The components' means ``(m_k - center) @ axes`` and covariances ``axes' C_k axes`` in the 2-D view."""
    means = (np.asarray(result.means, dtype=np.float64) - center) @ axes
    return means, np.einsum("di,kde,ej->kij", axes, covariance_matrices(result), axes)


def _plot_clusters(result, rows, labels, path, center, axes, components, seed=0):
    """Save the rows in 2-D coloured by label, with each listed component's mean and ellipses, to ``path``.

    Parameters
    ----------
    result : FitResult
    rows : ndarray of shape (m, D)
    labels : ndarray of shape (m,)
    path : str
    center, axes : ndarray
        The view (:func:`principal_axes`).
    components : sequence of int
        The components whose means and 1- and 2-sigma ellipses are drawn.
    seed : int, default 0
        Seeds the vertical jitter when D == 1.
    """
    plt = _require_matplotlib()
    colors = plt.get_cmap("tab10" if result.n_components <= 10 else "tab20").colors
    xy = (rows - center) @ axes
    means, covs = _projected(result, center, axes)
    one_d = axes.shape[1] == 1
    if one_d:
        xy = np.column_stack([xy[:, 0], np.random.default_rng(seed).uniform(-0.5, 0.5, xy.shape[0])])
    fig, ax = plt.subplots(figsize=(6.5, 6))
    for k in range(result.n_components):
        mine = labels == k
        if mine.any():
            ax.plot(xy[mine, 0], xy[mine, 1], ls="", marker=".", ms=2, alpha=0.5, color=colors[k % len(colors)])
    for k in components:
        c = colors[k % len(colors)]
        if one_d:
            sd = np.sqrt(covs[k, 0, 0])
            for n_std, lw in ((2, 1.0), (1, 3.0)):
                ax.plot([means[k, 0] - n_std * sd, means[k, 0] + n_std * sd], [0, 0], color=c, lw=lw)
            ax.plot(means[k, 0], 0, marker="o", ms=8, mec="k", color=c)
        else:
            for n_std, ls in ((1, "-"), (2, "--")):
                _ellipse(ax, means[k], covs[k], n_std, edgecolor=c, ls=ls, lw=1.5)
            ax.plot(means[k, 0], means[k, 1], marker="o", ms=8, mec="k", color=c)
            ax.annotate(str(k), means[k], textcoords="offset points", xytext=(6, 6), fontsize=9)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    pad = 0.05 * np.where(hi > lo, hi - lo, 1.0)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    D = result.n_features
    if one_d:
        ax.set_xlabel("feature 0")
        ax.set_ylabel("jitter")
    elif D == 2:
        ax.set_xlabel("feature 0")
        ax.set_ylabel("feature 1")
        ax.set_aspect("equal", adjustable="box")
    else:
        ax.set_xlabel("principal axis 1")
        ax.set_ylabel("principal axis 2")
        ax.set_aspect("equal", adjustable="box")
    ax.set_title(f"{rows.shape[0]} rows by predicted label; 1- and 2-sigma of E[Lambda_k]^-1"
                 if result.covariance_type != "identity" else
                 f"{rows.shape[0]} rows by predicted label; 1- and 2-sigma of the known covariance", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- the files ------------------------------------------------------------------------------------
def _write_csv(table, path):
    D = table["mean"].shape[1]
    header = (["component", "weight", "cumulative_weight", "used", "size"] + [f"mean_{d}" for d in range(D)]
              + [f"sd_{d}" for d in range(D)] + ["log_det"])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        for i in range(table["weight"].size):
            out.writerow([int(table["component"][i])] + [repr(float(table[c][i])) for c in
                                                         ("weight", "cumulative_weight")]
                         + [int(table["used"][i]), repr(float(table["size"][i]))]
                         + [repr(float(v)) for v in table["mean"][i]] + [repr(float(v)) for v in table["sd"][i]]
                         + [repr(float(table["log_det"][i]))])


_STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:80em}figure{display:inline-block;margin:0 1em 1em 0;"
          "vertical-align:top}figcaption{font-size:.85em;max-width:40em}table{border-collapse:collapse;"
          "font-size:.85em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}"
          "tr.unused{color:#888}code{font-size:.95em}")


def _html(result, table, mass, n_rows, n_sample, view, max_features=8):
    e = html.escape
    K, D = result.n_components, result.n_features
    n_used = int(table["used"].sum())
    rows = []
    for i in range(K):
        rows.append(f'<tr class="{"used" if table["used"][i] else "unused"}"><td>{i + 1}</td>'
                    f"<td>{table['component'][i]}</td><td>{table['weight'][i]:.6f}</td>"
                    f"<td>{table['cumulative_weight'][i]:.6f}</td><td>{table['size'][i]:.6g}</td>"
                    f"<td>{e(numbers(table['mean'][i], max_features))}</td>"
                    f"<td>{e(numbers(table['sd'][i], max_features))}</td><td>{table['log_det'][i]:.6g}</td></tr>")
    what = ("the known covariance" if result.covariance_type == "identity" else
            "<code>E[Lambda_k]^-1</code> (scikit-learn's <code>covariances_</code>), not the posterior predictive")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fastcavi report</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>fastcavi report</h1>
<p>Covariance type <code>{e(result.covariance_type)}</code>, weight prior
<code>{e(result.weight_concentration_prior_type)}</code>, K = {K}, D = {D};
{result.n_iter} sweeps, converged: {result.converged}, ELBO {result.lower_bound:.10e}.
Data: {n_rows} rows, of which {n_sample} drawn for the figure.</p>
<figure><img src="{FILES['elbo']}" alt="ELBO after each sweep" width="600" height="400">
<figcaption>The ELBO after each CAVI sweep.</figcaption></figure>
<figure><img src="{FILES['weights']}" alt="Component weights, sorted" width="600" height="400">
<figcaption>The weights <code>E[pi_k]</code>, sorted, and their running total: {n_used} of {K} components
(in colour) hold {mass:.0%} of the weight.</figcaption></figure>
<figure><img src="{FILES['clusters']}" alt="A sample of the rows, coloured by label" width="650" height="600">
<figcaption>{n_sample} rows (a seeded sample) on {e(view)}, coloured by predicted label, with the mean and the
1- and 2-sigma ellipses (solid, dashed) of the {n_used} components that hold {mass:.0%} of the weight: those of
{what}, projected onto the same axes.</figcaption></figure>
<h2>Components, by weight</h2>
<p>Size: the expected number of rows, <code>sum_n q(z_n = k)</code>. sd: the square roots of the eigenvalues of
the covariance, largest first. Also in <a href="{FILES['components']}">{FILES['components']}</a>.</p>
<table>
<thead><tr><th>rank</th><th>component</th><th>weight</th><th>cumulative</th><th>size</th><th>mean</th><th>sd</th>
<th>log det</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</body>
</html>
"""


def write_report(result: "FitResult", X: Any, out_dir: Union[str, os.PathLike], *, sample: int = DEFAULT_SAMPLE,
                 seed: int = 0, mass: float = DEFAULT_MASS, n_threads: Optional[int] = None,
                 chunk_size: Optional[int] = None) -> Dict[str, str]:
    """Write the report of ``result`` on the data ``X`` into ``out_dir``.

    The files are ``elbo.png``, ``weights.png``, ``clusters.png``, ``components.csv`` and
    ``index.html`` (see :mod:`fastcavi.report`); ``index.html`` links the others by relative
    paths and loads nothing from elsewhere.

    Parameters
    ----------
    result : FitResult
        A fitted result.
    X : array-like of shape (n_samples, n_features), np.memmap, .npy path, or h5py/zarr dataset
        The data: ``sample`` rows of it are drawn (:func:`sample_rows`), predicted and drawn.
    out_dir : str or os.PathLike
        The directory, made when missing; files of the same names in it are replaced.
    sample : int, default 20000
        Rows drawn for the figure.
    seed : int, default 0
        Seeds the sample (and the jitter of one-feature data).
    mass : float, default 0.99
        The share of the weight that the components counted as used hold (:func:`component_table`).
    n_threads : int, optional
        Threads for the prediction of the sample.
    chunk_size : int, optional
        Rows per chunk of that prediction. Neither changes the report.

    Returns
    -------
    dict of str to str
        The paths written, under the keys ``"elbo"``, ``"weights"``, ``"clusters"``,
        ``"components"`` and ``"index"``.

    Raises
    ------
    ImportError
        When matplotlib is not installed (the message names the extra); nothing is written.
    ValueError
        When ``X`` does not have the model's number of features, or holds NaN or inf in a
        sampled row (the error names the row of ``X``; rows outside the sample are not read), or
        ``sample`` or ``mass`` is out of range. Nothing is written then.
    """
    from . import _validation as V
    from ._io.sources import DataSource

    _require_matplotlib()
    table = component_table(result, mass)
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 1:
        raise ValueError(f"sample must be a positive integer, got {sample!r}.")
    source = DataSource(X)
    V.check_features(source.n_features, result.n_features)
    index, rows = sample_rows(source.data, sample, seed)
    bad = np.argwhere(~np.isfinite(rows))
    if bad.size:  # named by the data's own row, not the sample's
        raise ValueError(f"Row {int(index[bad[0, 0]])} of X holds {rows[bad[0, 0], bad[0, 1]]} (column "
                         f"{int(bad[0, 1])}): the report draws finite rows only.")
    labels = result.predict(rows, n_threads=n_threads, chunk_size=chunk_size)
    center, axes = principal_axes(rows)
    D = result.n_features
    view = ("feature 0 (against a jitter)" if D == 1 else "features 0 and 1" if D == 2 else
            "the top two principal axes of the sample")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = {key: os.path.join(out_dir, name) for key, name in FILES.items()}
    _plot_elbo(result, paths["elbo"])
    _plot_weights(table, mass, paths["weights"])
    used = [int(k) for k in table["component"][table["used"]]]
    _plot_clusters(result, rows, labels, paths["clusters"], center, axes, used, seed=seed)
    _write_csv(table, paths["components"])
    with open(paths["index"], "w", encoding="utf-8") as fh:
        fh.write(_html(result, table, mass, source.n_samples, index.size, view))
    return paths
