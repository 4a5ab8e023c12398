"""Channel locality and Eq. 8 under stage-3 channel dropout."""
import keras
import numpy as np
import pytest

from occface.evaluation.locality import (channel_drop_robustness, drop_channels, relative_mse,
                                         stage_models, top_share)
from occface.models import build_recognizer


def test_top_share_by_hand():
    f = np.zeros((1, 10, 10, 3))
    f[0, 4, 4, 0] = 5.0                 # one hot position: all of the mass in the top 10 %
    f[..., 1] = 1.0                     # uniform: the top 10 positions hold 10 % of the mass
    f[0, :, :5, 2] = -1.0               # negatives count as zero
    f[0, 0, 5:, 2] = 2.0                # 5 positions of 2.0: all in the top 10
    share = top_share(f, 0.1)
    np.testing.assert_allclose(share, [[1.0, 0.1, 1.0]])
    assert top_share(np.zeros((1, 4, 4, 1)), 0.5).tolist() == [[0.0]]
    with pytest.raises(ValueError, match=r"features must be \(N, H, W, C\)"):
        top_share(np.zeros((4, 4, 1)))


def test_drop_channels_zeroes_whole_channels_per_sample():
    rng = np.random.default_rng(0)
    f = rng.uniform(1, 2, (5, 3, 3, 8))
    out = drop_channels(f, 0.25, seed=1)
    zero = np.all(out == 0, axis=(1, 2))
    assert zero.sum(axis=1).tolist() == [2] * 5
    np.testing.assert_array_equal(out[~np.broadcast_to(zero[:, None, None], f.shape)],
                                  f[~np.broadcast_to(zero[:, None, None], f.shape)])
    assert len({tuple(np.flatnonzero(z)) for z in zero}) > 1  # chosen per sample


def test_relative_mse_by_hand():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[0.0, 0.0], [0.0, 1.0]])
    # mean ||a-b||^2 = (1 + 1) / 2 = 1 ; mean ||a||^2 = (1 + 4) / 2 = 2.5
    assert relative_mse(a, b) == pytest.approx(0.4)


def test_stage_models_split_the_recognizer_exactly():
    model = build_recognizer(depth=18, width=4, variant="lcd", input_shape=(32, 32, 3),
                             embedding_size=8, seed=0)
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    to_stage, rest = stage_models(model, 3)
    assert to_stage.output.shape[1:] == (4, 4, 16)
    whole = keras.Model(model.input, model.get_layer("output_bn").input)
    np.testing.assert_allclose(np.asarray(rest(to_stage(x))), np.asarray(whole(x)), rtol=1e-5,
                               atol=1e-5)
    r = channel_drop_robustness(model, x, rates=(0.0, 0.5))
    assert r["eq8_relative_mse"]["0"] == 0.0 and r["eq8_relative_mse"]["0.5"] > 0
    assert r["n_images"] == 3
