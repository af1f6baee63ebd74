"""Results do not depend on threads, chunk size, memory layout or storage: bitwise."""
import numba
import numpy as np
import pytest

import fastcavi


def _data(seed=0, N=5000, D=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, D)) * 3
    return centres[rng.integers(4, size=N)] + rng.normal(size=(N, D))


def _same(a, b):
    np.testing.assert_array_equal(a.elbo, b.elbo)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.weight_concentration, b.weight_concentration)
    np.testing.assert_array_equal(a.mean_precision, b.mean_precision)


FIT = dict(random_state=3, max_iter=25, tol=0)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs NUMBA_NUM_THREADS >= 2")
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_thread_count_invariance(init):
    # In the test process itself, with its own thread count, the seedings and thread restoration.
    # tests/test_determinism_processes.py checks n_threads=1..4 in a child under NUMBA_NUM_THREADS=4,
    # which runs on a 1-CPU runner too, where this one skips.
    X = _data()
    before = numba.get_num_threads()
    one = fastcavi.fit(X, 6, init=init, n_threads=1, **FIT)
    assert numba.get_num_threads() == before  # restored
    many = fastcavi.fit(X, 6, init=init, n_threads=numba.config.NUMBA_NUM_THREADS, **FIT)
    _same(one, many)
    np.testing.assert_array_equal(one.predict_proba(X, n_threads=1), many.predict_proba(X, n_threads=2))


def test_threads_restored_after_error():
    before = numba.get_num_threads()
    with pytest.raises(ValueError):
        fastcavi.fit(np.full((10, 2), np.nan), 2, n_threads=1)
    assert numba.get_num_threads() == before


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_chunk_size_invariance(init):
    X = _data()
    results = [fastcavi.fit(X, 5, init=init, chunk_size=c, **FIT) for c in (256, 1000, 4096, None, 10**6)]
    for r in results[1:]:
        _same(results[0], r)


def test_memmap_and_npy_path_equal_in_memory(tmp_path):
    X = _data()
    path = tmp_path / "x.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    a = fastcavi.fit(X, 4, **FIT)
    _same(a, fastcavi.fit(mm, 4, **FIT))
    _same(a, fastcavi.fit(str(path), 4, **FIT))
    _same(a, fastcavi.fit(path, 4, chunk_size=512, **FIT))
    raw = tmp_path / "x.bin"
    X.tofile(raw)
    _same(a, fastcavi.fit(np.memmap(raw, dtype=np.float64, mode="r", shape=X.shape), 4, **FIT))


def test_layouts_and_byte_orders_give_the_same_result():
    X = _data().astype(np.float32)
    ref = fastcavi.fit(X, 4, **FIT)
    _same(ref, fastcavi.fit(np.asfortranarray(X), 4, **FIT))
    _same(ref, fastcavi.fit(X.astype(">f4"), 4, **FIT))
    ro = X.copy()
    ro.flags.writeable = False
    _same(ref, fastcavi.fit(ro, 4, **FIT))
    _same(ref, fastcavi.fit(X[:, ::-1][:, ::-1], 4, **FIT))  # a strided view
    X64 = X.astype(np.float64)
    ref64 = fastcavi.fit(X64, 4, **FIT)
    _same(ref64, fastcavi.fit(X64.astype(">f8"), 4, **FIT))
    _same(ref64, fastcavi.fit(X64.tolist(), 4, **FIT))


def test_float32_input_agrees_with_float64_to_round_off():
    # float32 rows are read as float32 and computed in float64: the same numbers as the float64 fit,
    # added in an order that the separately compiled float32 kernel may vectorise differently.
    X = _data().astype(np.float32)
    a = fastcavi.fit(X, 4, **FIT)
    b = fastcavi.fit(X.astype(np.float64), 4, **FIT)
    np.testing.assert_allclose(a.elbo, b.elbo, rtol=1e-13)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-11, atol=1e-12)


def test_float16_and_integer_input():
    X16 = _data().astype(np.float16)
    _same(fastcavi.fit(X16.astype(np.float64), 4, **FIT), fastcavi.fit(X16, 4, **FIT))
    Xi = np.round(_data() * 10).astype(np.int32)
    _same(fastcavi.fit(Xi.astype(np.float64), 4, **FIT), fastcavi.fit(Xi, 4, **FIT))


def test_longdouble_input_is_its_float64_rounding(tmp_path):
    # np.longdouble (float96/float128) is rounded to float64 chunk by chunk: bit for bit the fit of
    # X.astype(float64), whatever the chunking or storage; its extra precision is lost.
    Xl = _data().astype(np.longdouble)
    if np.finfo(np.longdouble).eps < np.finfo(np.float64).eps:
        Xl += np.longdouble(2.0) ** -60 * np.arange(Xl.size).reshape(Xl.shape)  # digits float64 cannot hold
        assert np.any(Xl.astype(np.float64) != Xl)
    X64 = Xl.astype(np.float64)
    np.save(tmp_path / "xl.npy", Xl)
    for cov in ("identity", "full"):
        a = fastcavi.fit(X64, 4, covariance_type=cov, **FIT)
        for source in (Xl, tmp_path / "xl.npy"):
            b = fastcavi.fit(source, 4, covariance_type=cov, chunk_size=1024, **FIT)
            _same(a, b)
            np.testing.assert_array_equal(a.covariances, b.covariances)
        np.testing.assert_array_equal(a.predict_proba(X64), a.predict_proba(Xl, chunk_size=512))


@pytest.mark.skipif(np.finfo(np.longdouble).max <= np.finfo(np.float64).max,
                    reason="np.longdouble is float64 here")
def test_longdouble_beyond_float64_range_is_reported():
    Xl = _data(N=600).astype(np.longdouble)
    Xl[300, 1] = np.longdouble(10.0) ** 400
    with pytest.raises(ValueError, match=r"Input X contains infinity.*row 300, column 1"):
        fastcavi.fit(Xl, 2)


def test_array_like_dataset_object():
    class Dataset:  # what h5py and zarr datasets offer: shape, dtype, row slicing
        def __init__(self, a):
            self._a, self.shape, self.dtype = a, a.shape, a.dtype
            self.reads = 0

        def __getitem__(self, key):
            self.reads += 1
            return self._a[key].copy()

    X = _data(N=9000)
    ds = Dataset(X)
    _same(fastcavi.fit(X, 4, **FIT), fastcavi.fit(ds, 4, chunk_size=4096, **FIT))
    assert ds.reads > 3 * 25  # read in chunks of 4096 rows (3 per pass), every sweep


def test_far_from_origin_loses_no_precision():
    X = _data(N=3000, D=2)
    a = fastcavi.fit(X, 3, **FIT)
    b = fastcavi.fit(X + 1e6, 3, mean_prior=1e6, **FIT)
    # the model is translation invariant: same ELBO, same means up to the shift
    np.testing.assert_allclose(b.elbo, a.elbo, rtol=1e-9)
    np.testing.assert_allclose(b.means - 1e6, a.means, atol=1e-6)
