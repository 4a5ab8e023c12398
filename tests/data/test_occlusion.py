"""Occlusion synthesis: exact masks, determinism, template placement, numpy == tf.data."""
import numpy as np
import pytest
import tensorflow as tf

from occface.data import (DEFAULT_TEMPLATES, KINDS, OcclusionTF, load_aligned_face,
                          mask_templates, occlude, occlusion_map_fn, template_landmarks)


def _face(size=112, seed=0):
    return np.random.default_rng(seed).integers(1, 255, (size, size, 3), dtype=np.uint8)


def _check_composite(image, out, mask, fill=None):
    assert out.shape == image.shape and out.dtype == image.dtype
    assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1}
    np.testing.assert_array_equal(out[mask == 0], image[mask == 0])
    if fill is not None:
        assert (out[mask == 1] == fill).all()


@pytest.mark.parametrize("kind,rows,cols", [
    ("upper", slice(0, 56), slice(None)), ("lower", slice(56, None), slice(None)),
    ("left", slice(None), slice(0, 56)), ("right", slice(None), slice(56, None))])
def test_halves_are_exact(kind, rows, cols):
    image = _face()
    out, mask = occlude(image, template_landmarks(112), kind, rng=0)
    expected = np.zeros((112, 112), np.uint8)
    expected[rows, cols] = 1
    np.testing.assert_array_equal(mask, expected)
    _check_composite(image, out, mask, fill=0)


def test_halves_split_at_landmarks():
    image = _face()
    lm = template_landmarks(112)  # eye/mouth midpoints: y (51.6 + 92.3) / 2 = 71.9, x = 56.0
    _, mask = occlude(image, lm, "lower", rng=0, split="landmarks")
    assert mask[:72].sum() == 0 and mask[72:].all()
    _, mask = occlude(image, lm, "right", rng=0, split="landmarks", fill=(1, 2, 3))
    assert mask[:, :56].sum() == 0 and mask[:, 56:].all()
    out, mask = occlude(image, lm, "upper", rng=0, fill=(10, 20, 30))
    assert (out[mask == 1] == [10, 20, 30]).all()


def test_block_default_size_position_and_determinism():
    image = _face(128)
    out, mask = occlude(image, template_landmarks(128), "block", rng=3)
    ys, xs = np.nonzero(mask)
    assert mask.sum() == 48 * 48  # ID-GAN: 48x48 on 128x128
    assert (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == (48, 48)
    _check_composite(image, out, mask, fill=0)
    out2, mask2 = occlude(image, template_landmarks(128), "block", rng=3)
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(mask, mask2)
    masks = {occlude(image, None, "block", rng=s)[1].tobytes() for s in range(8)}
    assert len(masks) > 4
    gen = np.random.default_rng(1)
    a = occlude(image, None, "block", gen)[1]
    b = occlude(image, None, "block", gen)[1]
    assert not np.array_equal(a, b)  # a Generator advances


def test_block_size_range_and_fills(rng):
    image = _face(64)
    for _ in range(10):
        _, mask = occlude(image, None, "block", rng, size=(5, 20))
        ys, xs = np.nonzero(mask)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert 5 <= h <= 20 and 5 <= w <= 20 and mask.sum() == h * w
    other = _face(64, seed=9)
    out, mask = occlude(image, None, "block", rng, fill="image", fill_image=other)
    np.testing.assert_array_equal(out[mask == 1], other[mask == 1])
    out, mask = occlude(image, None, "block", rng, fill="noise")
    _check_composite(image, out, mask)
    assert len(np.unique(out[mask == 1])) > 50
    out, mask = occlude(image.astype(np.float32), None, "block", rng, fill="gray")
    assert out.dtype == np.float32 and (out[mask == 1] == 128).all()
    grey = image[:, :, 0]
    out, mask = occlude(grey, None, "block", rng, size=10)
    _check_composite(grey, out, mask, fill=0)
    with pytest.raises(ValueError, match="does not fit"):
        occlude(image, None, "block", rng, size=65)
    with pytest.raises(ValueError, match="fill_image"):
        occlude(image, None, "block", rng, fill="image")
    with pytest.raises(ValueError, match="unknown occlusion kind 'hat'"):
        occlude(image, None, "hat", rng)
    with pytest.raises(ValueError, match="unknown options .*colour"):
        occlude(image, None, "block", rng, colour=1)


def test_sunglasses_band_covers_eyes_only():
    image = _face()
    lm = template_landmarks(112)
    out, mask = occlude(image, lm, "sunglasses", rng=0)
    _check_composite(image, out, mask, fill=0)
    for x, y in lm[:2]:
        assert mask[int(y), int(x)] == 1
    for x, y in lm[2:]:
        assert mask[int(y), int(x)] == 0
    dist = np.linalg.norm(lm[1] - lm[0])
    ys, xs = np.nonzero(mask)
    # A 2.0 x 0.6 eye-distance band centred between the eyes (axis-aligned for the template).
    assert abs(xs.mean() - lm[:2, 0].mean()) < 1 and abs(ys.mean() - lm[:2, 1].mean()) < 1
    assert abs((xs.max() - xs.min() + 1) - 2.0 * dist) <= 2
    assert abs((ys.max() - ys.min() + 1) - 0.6 * dist) <= 2


def test_sunglasses_follows_eye_line():
    image = _face(200)
    lm = template_landmarks(112).astype(np.float64) + 40
    centre = lm[:2].mean(0)
    angle = np.deg2rad(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lm_rot = (lm - centre) @ rot.T + centre
    _, mask = occlude(image, lm_rot, "sunglasses", rng=0)
    for x, y in lm_rot[:2]:
        assert mask[int(round(y)), int(round(x))] == 1
    # A point one band-height above the eye line (perpendicular) is not covered.
    normal = np.array([-np.sin(angle), np.cos(angle)])
    dist = np.linalg.norm(lm_rot[1] - lm_rot[0])
    px, py = centre - 0.6 * dist * normal
    assert mask[int(round(py)), int(round(px))] == 0


def test_templates_shipped():
    templates = mask_templates()
    assert len(templates) == 21 and set(DEFAULT_TEMPLATES) <= set(templates)
    rgba, anchors = templates["surgical"]
    assert rgba.shape == (496, 594, 4) and anchors.shape == (6, 2)
    np.testing.assert_array_equal(anchors[1], [307, 22])


def _assert_lower_face(mask, lm):
    eye_y = lm[:2, 1].max()
    ys, xs = np.nonzero(mask)
    assert ys.min() > eye_y, "mask reaches above the eyes"
    for x, y in lm[:2]:
        assert mask[int(round(y)), int(round(x))] == 0
    for x, y in lm[2:]:  # nose tip and both mouth corners are covered
        assert mask[int(round(y)), int(round(x))] == 1
    # ... and the chin below the mouth.
    m = lm[3:].mean(0)
    dist = np.linalg.norm(lm[1] - lm[0])
    cx, cy = m[0], min(m[1] + 0.45 * dist, mask.shape[0] - 1)
    assert mask[int(cy), int(cx)] == 1
    assert abs(xs.mean() - lm[2:, 0].mean()) < 0.1 * mask.shape[1]


@pytest.mark.parametrize("template", DEFAULT_TEMPLATES)
def test_mask_template_lands_on_lower_face(template):
    image = _face(128)
    lm = template_landmarks(128)
    out, mask = occlude(image, lm, "mask", rng=0, template=template)
    _check_composite(image, out, mask)
    _assert_lower_face(mask, lm)
    assert 0.15 < mask.mean() < 0.5


def test_mask_on_real_lfw_face(data_root):
    path = data_root / "lfw" / "lfw-deepfunneled" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"
    rgb, lm, found = load_aligned_face(path, size=112)
    assert found
    out, mask = occlude(rgb, lm, "mask", rng=np.random.default_rng(5))
    _check_composite(rgb, out, mask)
    _assert_lower_face(mask, lm)
    # The template colours replaced the face there (surgical masks are bright or coloured).
    assert np.abs(out[mask == 1].astype(int) - rgb[mask == 1]).mean() > 20
    out2, _ = occlude(rgb, lm, "mask", rng=np.random.default_rng(5))
    np.testing.assert_array_equal(out, out2)


@pytest.mark.parametrize("kind,options", [
    ("mask", {"template": "surgical"}), ("mask", {"template": "KN95"}),
    ("sunglasses", {}), ("upper", {}), ("lower", {}), ("left", {"split": "landmarks"}),
    ("right", {})])
def test_tf_fixed_kinds_match_numpy_exactly(kind, options):
    image = _face(64)
    expected, mask = occlude(image, template_landmarks(64), kind, rng=0, **options)
    occ = OcclusionTF(kind, 64, **options)
    out, m = occ(tf.constant(image), tf.constant([1, 2]))
    np.testing.assert_array_equal(m.numpy()[..., 0], mask.astype(np.float32))
    np.testing.assert_array_equal(out.numpy(), expected.astype(np.float32))


def test_tf_block_and_map_fn():
    images = np.stack([_face(64, s) for s in range(6)])
    fn = occlusion_map_fn("block", image_size=64, seed=7, fill="white")
    ds = tf.data.Dataset.from_tensor_slices((images, np.arange(6))).enumerate().map(fn)
    outs = list(ds.as_numpy_iterator())
    again = list(ds.as_numpy_iterator())
    for (o, m, label), (o2, m2, _), image in zip(outs, again, images):
        np.testing.assert_array_equal(o, o2)
        m = m[..., 0]
        ys, xs = np.nonzero(m)
        assert m.sum() == 24 * 24 and (np.ptp(ys) + 1, np.ptp(xs) + 1) == (24, 24)
        np.testing.assert_array_equal(o[m == 0], image[m == 0])
        assert (o[m == 1] == 255).all()
    assert len({m.tobytes() for _, m, _ in outs}) > 3
    occ = OcclusionTF(["block", "mask"], 64, prob=0.0)
    out, m = occ(tf.constant(images[0]), tf.constant([0, 0]))
    assert m.numpy().sum() == 0 and np.array_equal(out.numpy(), images[0])
    with pytest.raises(ValueError, match="unknown occlusion kind"):
        OcclusionTF("hat", 64)
    with pytest.raises(ValueError, match="not supported"):
        OcclusionTF("block", 64, fill="image")
    assert set(KINDS) == {"block", "mask", "sunglasses", "upper", "lower", "left", "right"}


def test_tf_block_size_option_does_not_clash_with_image_size():
    """``size`` is the block side (as for occlude), ``image_size`` the face size."""
    occ = OcclusionTF("block", 64, size=16)
    _, m = occ(tf.constant(_face(64, 0)), tf.constant([3, 4]))
    ys, xs = np.nonzero(m.numpy()[..., 0])
    assert (np.ptp(ys) + 1, np.ptp(xs) + 1) == (16, 16)
    fn = occlusion_map_fn("block", image_size=64, seed=1, size=20)
    ds = tf.data.Dataset.from_tensor_slices(_face(64, 1)[None]).enumerate().map(fn)
    _, m2 = next(iter(ds))
    assert int(m2.numpy().sum()) == 20 * 20
