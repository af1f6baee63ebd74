"""Predictions into the caller's array (``out=``): the same bits, checked first, a chunk's memory."""
import tracemalloc

import numpy as np
import pytest

import fastcavi
from fastcavi import engine
from fastcavi import _validation as V


def _blobs(seed=0, N=500, D=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(3, D))[rng.integers(3, size=N)] * 4 + rng.normal(size=(N, D))


def _reference(r, X):
    """The predictions through engine.estep's own output arrays (the pre-``out=`` implementation)."""
    X = np.asarray(X, dtype=np.float64)
    R, L = np.empty((X.shape[0], r.n_components)), np.empty(X.shape[0])
    engine.estep(r.model, r.state, X, responsibilities=R, log_density=L)
    return {"predict_proba": R, "predict": np.argmax(R, axis=1), "score_samples": L}


_OUT = {"predict_proba": lambda N, K: np.full((N, K), np.nan), "predict": lambda N, K: np.full(N, -1, np.int64),
        "score_samples": lambda N, K: np.full(N, np.nan)}


# "tied" and the known covariance add a per-row term to the log-density outside the kernel
@pytest.mark.parametrize("kwargs", [dict(covariance_type="full"), dict(covariance_type="tied"),
                                    dict(covariance=np.diag([2.0, 1.0, 0.5]))])
def test_out_gives_the_same_bits_whatever_the_chunk_size(kwargs):
    X = _blobs()
    r = fastcavi.fit(X, 4, random_state=0, max_iter=10, tol=0, **kwargs)
    Xnew = _blobs(seed=1, N=3 * 4096 + 77)  # three whole chunks of 4096 rows and a partial one
    ref = _reference(r, Xnew)
    for method, expected in ref.items():
        plain = getattr(r, method)(Xnew)
        assert plain.dtype == expected.dtype and plain.tobytes() == expected.tobytes(), method
        for chunk_size in (None, 4096, 8192, 10**6):
            out = _OUT[method](*ref["predict_proba"].shape)
            got = getattr(r, method)(Xnew, out=out, chunk_size=chunk_size)
            assert got is out and out.tobytes() == expected.tobytes(), (method, chunk_size)


def test_out_takes_memmaps_narrow_labels_and_strided_columns(tmp_path):
    X = _blobs(D=2)
    r = fastcavi.fit(X, 3, covariance_type="diag", random_state=0, max_iter=10, tol=0)
    Xnew = _blobs(seed=2, N=9000, D=2)
    ref = _reference(r, Xnew)
    np.save(tmp_path / "x.npy", Xnew)
    x_map = np.load(tmp_path / "x.npy", mmap_mode="r")
    proba = np.lib.format.open_memmap(tmp_path / "p.npy", mode="w+", dtype=np.float64, shape=(9000, 3))
    assert r.predict_proba(x_map, out=proba, chunk_size=4096) is proba
    proba.flush()
    assert np.load(tmp_path / "p.npy").tobytes() == ref["predict_proba"].tobytes()
    labels = np.full(9000, 255, dtype=np.uint8)  # any integer dtype holding K - 1
    r.predict(str(tmp_path / "x.npy"), out=labels)
    np.testing.assert_array_equal(labels, ref["predict"])
    # a column of a larger array: strided, next to X's memory but not sharing any of it
    A = np.zeros((9000, 3))
    A[:, :2] = Xnew
    r.score_samples(A[:, :2], out=A[:, 2])
    assert A[:, 2].tobytes() == ref["score_samples"].tobytes() and np.array_equal(A[:, :2], Xnew)


def test_the_estimator_fills_out_too():
    X = _blobs()
    est = fastcavi.BayesianGaussianMixture(n_components=3, random_state=0, max_iter=10).fit(X)
    for method, out in (("predict_proba", np.empty((500, 3))), ("predict", np.empty(500, np.int64)),
                        ("score_samples", np.empty(500))):
        assert getattr(est, method)(X, out=out) is out
        assert out.tobytes() == getattr(est, method)(X).tobytes(), method
    with pytest.raises(ValueError, match=r"shape \(500, 3\) and float64"):
        est.predict_proba(X, out=np.empty((500, 4)))


def test_bad_out_is_refused_before_any_work(tmp_path):
    X = _blobs(N=300)
    r = fastcavi.fit(X, 3, random_state=0, max_iter=5, tol=0)
    sentinel = 12345.0
    cases = [
        ("predict_proba", np.full((300, 2), sentinel), ValueError, r"shape \(300, 3\) and float64; got shape \(300, 2\)"),
        ("predict_proba", np.full((300, 3), sentinel, np.float32), ValueError, "float64; got shape .* dtype float32"),
        ("predict_proba", np.full((3, 300), sentinel).T, None, None),  # Fortran order is fine: only rows are written
        ("score_samples", np.full((300, 1), sentinel), ValueError, r"shape \(300,\) and float64"),
        ("score_samples", np.full(300, sentinel, ">f8"), ValueError, "dtype >f8"),
        ("predict", np.full(300, sentinel), ValueError, "an integer dtype holding 2 .int64"),
        ("predict", np.full(300, True), ValueError, "dtype bool"),
        ("predict", [0] * 300, TypeError, "'out' must be a numpy array .* got list"),
    ]
    for method, out, error, message in cases:
        before = np.array(out, copy=True)
        if error is None:
            getattr(r, method)(X, out=out)
            assert out.tobytes() == getattr(r, method)(X).tobytes()
            continue
        with pytest.raises(error, match=message):
            getattr(r, method)(X, out=out)
        np.testing.assert_array_equal(out, before)  # nothing written
    frozen = np.full(300, sentinel)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="'out' is read-only"):
        r.score_samples(X, out=frozen)
    # K - 1 must fit the integer dtype (int8 holds 127: 200 components do not fit)
    with pytest.raises(ValueError, match="an integer dtype holding 199"):
        V.check_prediction_out(np.zeros(5, np.int8), "labels", (5,), 200, None)
    assert V.check_prediction_out(np.zeros(5, np.uint8), "labels", (5,), 200, None) is not None


def test_out_sharing_the_data_is_refused(tmp_path):
    X = _blobs(N=300, D=2)
    r = fastcavi.fit(X, 2, random_state=0, max_iter=5, tol=0)
    data = np.array(X)
    for out in (data[:, 0], data[:, 1]):  # a column of X itself
        with pytest.raises(ValueError, match="'out' shares memory with X"):
            r.score_samples(data, out=out)
    np.testing.assert_array_equal(data, X)
    # another memory map of the file X is read from: no shared addresses, the same bytes on disk
    np.save(tmp_path / "x.npy", X)
    again = np.load(tmp_path / "x.npy", mmap_mode="r+")
    for source in (str(tmp_path / "x.npy"), np.load(tmp_path / "x.npy", mmap_mode="r")):
        with pytest.raises(ValueError, match="'out' is a memory map of .*x.npy', the file X is read from"):
            r.score_samples(source, out=again[:, 0])
        with pytest.raises(ValueError, match="the file X is read from"):  # through the estimator's view
            est = fastcavi.BayesianGaussianMixture(n_components=2, random_state=0, max_iter=5).fit(X)
            est.score_samples(source, out=again[:, 1])
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), X)


def test_out_with_a_dask_array_is_a_type_error():
    da = pytest.importorskip("dask.array")
    X = _blobs(N=300)
    r = fastcavi.fit(X, 3, random_state=0, max_iter=5, tol=0)
    for method, out in (("predict_proba", np.empty((300, 3))), ("predict", np.empty(300, np.int64)),
                        ("score_samples", np.empty(300))):
        with pytest.raises(TypeError, match="'out' is not supported for Dask arrays.*dask.array.store"):
            getattr(r, method)(da.from_array(X, chunks=(100, 3)), out=out)


def test_memory_with_out_is_a_chunks_not_the_outputs(tmp_path):
    """tracemalloc's peak (numpy reports its buffers to it) while 2e6 x 8 responsibilities go to a memmap.

    The output is N * K * 8 = 128 MB. With ``out=`` and 65,536-row chunks, the pass holds one
    chunk's responsibilities (65,536 * 8 * 8 = 4 MiB), its log-sum-exp, log-density and
    finiteness temporaries (0.5 MiB each at most) and the block partial sums (256 blocks of
    K * (1 + 2D) doubles, 80 KiB): under 8 MiB; the bound, 16 MiB, leaves twice that for
    allocator slack and is 8 times below what holding the output would take. The same call
    without ``out=`` must exceed 128 MB: the measurement sees an O(N * K) buffer when there is one.
    """
    N, K, D = 2_000_000, 8, 2
    rng = np.random.default_rng(0)
    small = rng.normal(size=(4096, D)) * 3
    r = fastcavi.fit(small, K, covariance_type="diag", random_state=0, max_iter=3, tol=0)
    X = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64, shape=(N, D))
    for row0 in range(0, N, 1 << 18):
        X[row0:row0 + (1 << 18)] = rng.normal(size=(min(1 << 18, N - row0), D)) * 3
    out = np.lib.format.open_memmap(tmp_path / "p.npy", mode="w+", dtype=np.float64, shape=(N, K))
    r.predict_proba(small, chunk_size=65536)  # compiled before measuring
    tracemalloc.start()
    try:
        r.predict_proba(X, out=out, chunk_size=65536)
        with_out = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        held = r.predict_proba(X, chunk_size=65536)
        without_out = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert with_out < 16 * 2**20, with_out
    assert without_out > N * K * 8, without_out
    assert np.array_equal(out.view(np.int64), held.view(np.int64))  # bit for bit


def test_engine_predict_chunks_hands_over_each_chunk_in_row_order():
    X = _blobs()
    r = fastcavi.fit(X, 3, covariance_type="tied", random_state=0, max_iter=5, tol=0)
    Xnew = _blobs(seed=3, N=3 * 4096 + 77)
    seen = []
    engine.predict_chunks(r.model, r.state, Xnew, lambda row0, R, L: seen.append((row0, R.copy(), L.copy())),
                          chunk_size=4096)
    assert [(row0, R.shape, L.shape) for row0, R, L in seen] == [
        (0, (4096, 3), (4096,)), (4096, (4096, 3), (4096,)), (8192, (4096, 3), (4096,)), (12288, (77, 3), (77,))]
    ref = _reference(r, Xnew)
    assert np.concatenate([R for _, R, _ in seen]).tobytes() == ref["predict_proba"].tobytes()
    assert np.concatenate([L for _, _, L in seen]).tobytes() == ref["score_samples"].tobytes()
    with pytest.raises(ValueError, match="X has 2 features, but the model is expecting 3"):
        engine.predict_chunks(r.model, r.state, Xnew[:, :2], lambda *a: None)
    with pytest.raises(TypeError, match="'state' must be a fastcavi.engine.State"):
        engine.predict_chunks(r.model, r, Xnew, lambda *a: None)
