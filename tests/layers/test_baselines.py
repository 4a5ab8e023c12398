"""DropBlock, Weighted Channel Dropout and Cutout: statistics against hand-derived values."""
import numpy as np
import pytest

from occface.layers import Cutout, DropBlock, WeightedChannelDropout


# ----------------------------------------------------------------------------- DropBlock
def _expected_drop_fraction(h, w, b, rate):
    """E[fraction dropped] from Ghiasi et al.: seeds i.i.d. Bernoulli(γ) at the valid corners,
    γ = rate·H·W / (b²·(H−b+1)(W−b+1)); a position is dropped if any covering seed fires."""
    gamma = rate * h * w / (b * b * (h - b + 1) * (w - b + 1))
    frac = 0.0
    for i in range(h):
        for j in range(w):
            n_rows = sum(1 for r in range(h - b + 1) if r <= i < r + b)
            n_cols = sum(1 for c in range(w - b + 1) if c <= j < c + b)
            frac += 1 - (1 - gamma) ** (n_rows * n_cols)
    return frac / (h * w)


def _zeros_are_whole_blocks(zero, b):
    """Every zero lies in some b×b all-zero square fully inside the map."""
    h, w = zero.shape
    covered = np.zeros_like(zero)
    for r in range(h - b + 1):
        for c in range(w - b + 1):
            if zero[r:r + b, c:c + b].all():
                covered[r:r + b, c:c + b] = True
    return np.array_equal(covered, zero)


def test_dropblock_drop_fraction_and_rescaling():
    n, h, w, b, rate = 3000, 10, 12, 3, 0.15
    y = np.asarray(DropBlock(block_size=b, rate=rate, seed=0)(
        np.ones((n, h, w, 2), "float32"), training=True))
    dropped = y[..., 0] == 0
    assert abs(dropped.mean() - _expected_drop_fraction(h, w, b, rate)) < 0.005
    assert abs(dropped.mean() - rate) < 0.05                  # the paper's approximation
    np.testing.assert_array_equal(y[..., 0], y[..., 1])       # one mask for all channels
    # kept units rescaled by count(M) / count_ones(M) over the batch mask
    np.testing.assert_allclose(y[..., 0][~dropped], 1.0 / (1.0 - dropped.mean()), rtol=1e-5)


def test_dropblock_zeros_form_blocks():
    b = 3
    y = np.asarray(DropBlock(block_size=b, rate=0.2, seed=1)(
        np.ones((50, 9, 9, 1), "float32"), training=True))[..., 0]
    assert (y == 0).any()
    for sample in y:
        assert _zeros_are_whole_blocks(sample == 0, b)


def test_dropblock_block_clipped_to_map_and_identity(rng):
    x = rng.normal(size=(4, 5, 5, 3)).astype("float32")
    layer = DropBlock(block_size=7, rate=0.3, seed=0)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    np.testing.assert_array_equal(np.asarray(DropBlock(3, 0.0)(x, training=True)), x)
    y = np.asarray(layer(np.ones((200, 5, 5, 1), "float32"), training=True))[..., 0]
    # b = min(7, 5): the only valid block is the whole map
    assert set(np.unique((y == 0).sum(axis=(1, 2)))) <= {0, 25}
    assert layer.gamma(5, 5) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="block_size"):
        DropBlock(block_size=0)
    with pytest.raises(ValueError, match="rate"):
        DropBlock(rate=1.0)


# ----------------------------------------------------------------------------- WCD
def test_wcd_selection_probability_proportional_to_score():
    # Weighted random selection of M = 1 channel with keys r^(1/s) picks channel c with
    # probability s_c / Σ s (Efraimidis & Spirakis).
    n = 4000
    scores = np.array([1.0, 2.0, 3.0, 4.0], "float32")
    x = np.broadcast_to(scores, (n, 2, 2, 4)).astype("float32")
    y = np.asarray(WeightedChannelDropout(wrs_ratio=0.25, q=1.0, rescale=False, seed=0)(
        x, training=True))
    kept = y[:, 0, 0, :] != 0
    assert (kept.sum(axis=1) == 1).all()
    np.testing.assert_allclose(kept.mean(axis=0), scores / scores.sum(), atol=0.025)


def test_wcd_count_rescaling_and_magnitude_score(rng):
    x = rng.normal(size=(32, 3, 3, 10)).astype("float32")      # signed: score = mean |x|
    y = np.asarray(WeightedChannelDropout(wrs_ratio=0.7, q=1.0, seed=1)(x, training=True))
    score = np.abs(x).mean(axis=(1, 2))
    for n in range(32):
        kept = np.abs(y[n]).sum(axis=(0, 1)) > 0
        assert kept.sum() == 7
        alpha = score[n].sum() / score[n][kept].sum()
        np.testing.assert_allclose(y[n][..., kept], alpha * x[n][..., kept], rtol=1e-5)


def test_wcd_prefers_strong_channels():
    n = 2000
    strength = np.array([0.01] * 4 + [1.0] * 4, "float32")
    y = np.asarray(WeightedChannelDropout(wrs_ratio=0.5, q=1.0, seed=2)(
        np.broadcast_to(strength, (n, 1, 1, 8)).copy(), training=True))
    kept = (y[:, 0, 0, :] != 0).mean(axis=0)
    assert kept[:4].max() < 0.05 and kept[4:].min() > 0.95


def test_wcd_rng_step_and_identity(rng):
    n = 2000
    y = np.asarray(WeightedChannelDropout(wrs_ratio=1.0, q=0.6, seed=3)(
        np.ones((n, 1, 1, 10), "float32"), training=True))
    kept = y[:, 0, 0, :] != 0
    assert abs(kept.mean() - 0.6) < 0.02
    np.testing.assert_allclose(y[:, 0, 0, :][kept], 1.0)   # α = 1 when WRS keeps everything
    x = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    layer = WeightedChannelDropout(seed=0)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    zeros = np.asarray(layer(np.zeros((2, 3, 3, 4), "float32"), training=True))
    assert np.isfinite(zeros).all()
    with pytest.raises(ValueError, match="wrs_ratio"):
        WeightedChannelDropout(wrs_ratio=0.0)
    with pytest.raises(ValueError, match="q"):
        WeightedChannelDropout(q=1.5)


# ----------------------------------------------------------------------------- Cutout
def test_cutout_square_clipped_at_borders(rng):
    size, h, w = 5, 16, 12
    x = rng.integers(1, 256, (300, h, w, 3)).astype("uint8")
    y = np.asarray(Cutout(size=size, seed=0)(x, training=True))
    assert y.dtype == np.uint8
    full = 0
    for xi, yi in zip(x, y):
        hole = yi[..., 0] == 0
        assert np.array_equal(hole, (yi == 0).all(axis=-1))        # all channels zeroed
        np.testing.assert_array_equal(yi[~hole], xi[~hole])        # the rest unchanged
        rows, cols = np.flatnonzero(hole.any(1)), np.flatnonzero(hole.any(0))
        assert hole[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()   # a rectangle
        assert hole.sum() == len(rows) * len(cols)
        assert len(rows) <= size and len(cols) <= size
        inside = rows[0] > 0 and rows[-1] < h - 1 and cols[0] > 0 and cols[-1] < w - 1
        if inside:
            assert len(rows) == size and len(cols) == size
            full += 1
        else:      # clipped: it touches the border it was cut by
            assert len(rows) == size or rows[0] == 0 or rows[-1] == h - 1
            assert len(cols) == size or cols[0] == 0 or cols[-1] == w - 1
    assert full > 50


def test_cutout_centre_uniform():
    n, h, w = 6400, 4, 4
    y = np.asarray(Cutout(size=1, seed=1)(np.ones((n, h, w, 1), "float32"), training=True))
    hole = (y[..., 0] == 0).reshape(n, -1)
    assert (hole.sum(axis=1) == 1).all()
    counts = hole.sum(axis=0)
    chi2 = (((counts - n / 16) ** 2) / (n / 16)).sum()
    assert chi2 < 37.7                                  # df = 15, p = 0.001


def test_cutout_identity_at_inference(rng):
    x = rng.uniform(0, 255, (3, 8, 8, 3)).astype("float32")
    layer = Cutout(size=4, seed=0)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    with pytest.raises(ValueError, match="size"):
        Cutout(size=-1)
