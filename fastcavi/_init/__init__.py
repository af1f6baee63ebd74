"""Where CAVI starts: the initial means (k-means++, k-means||, k-means, the seed's random assignments,
random rows), scikit-learn's starts from responsibilities (:class:`ResponsibilityStart`), the initial
state they give each family, and the state a warm start continues from.

* :mod:`.seeding`: the seeding methods, written against a ``run_pass`` function so that the local
  fit and the Dask fit run the same code;
* :mod:`.lloyd`: k-means, Lloyd's iterations from the k-means++ seeds;
* :mod:`.starts`: the initial variational state of a fit, and a warm start's.

Every method of choosing means streams over the data in chunks and draws its random numbers either
from ``rng`` (a handful per fit) or from a counter-based hash of the row index, so
the result depends on the seed alone: never on the chunk size or thread count.
"""
from .._validation import ResponsibilityStart
from .lloyd import KMEANS_MAX_ITER, KMEANS_TOL, kmeans, kmeans_tolerance, lloyd, lloyd_chunk, lloyd_passes, merge_lloyd
from .seeding import (KMEANS_PARALLEL_OVERSAMPLING, KMEANS_PARALLEL_ROUNDS, assign_chunk, cost_and_candidates_chunk,
                      draw_candidates, earliest_smallest_key, exact_total, first_candidate_chunk, kmeans_parallel,
                      kmeans_plusplus, kmeans_plusplus_passes, kmeans_plusplus_row_passes, kmeans_plusplus_rows,
                      kmeanspp_chunk, local_passes, merge_candidates, merge_exact, random_assignment_chunk,
                      random_assignment_means, random_assignment_passes, random_rows, weighted_kmeans)
from .starts import HashedUniform, OneHotRows, initial_means, initial_state, start_responsibilities, warm_state

__all__ = [  # what the fits (fastcavi.api, fastcavi.dask) and the tests use
    "ResponsibilityStart",
    # .lloyd
    "KMEANS_MAX_ITER", "KMEANS_TOL", "kmeans", "kmeans_tolerance", "lloyd", "lloyd_chunk", "lloyd_passes", "merge_lloyd",
    # .seeding
    "KMEANS_PARALLEL_OVERSAMPLING", "KMEANS_PARALLEL_ROUNDS", "assign_chunk", "cost_and_candidates_chunk",
    "draw_candidates", "earliest_smallest_key", "exact_total", "first_candidate_chunk", "kmeans_parallel",
    "kmeans_plusplus", "kmeans_plusplus_passes", "kmeans_plusplus_row_passes", "kmeans_plusplus_rows", "kmeanspp_chunk",
    "local_passes", "merge_candidates", "merge_exact", "random_assignment_chunk", "random_assignment_means",
    "random_assignment_passes", "random_rows", "weighted_kmeans",
    # .starts
    "HashedUniform", "OneHotRows", "initial_means", "initial_state", "start_responsibilities", "warm_state",
]
