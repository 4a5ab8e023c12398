"""tf.data training / evaluation pipelines on tiny trees and on the real AT&T / LFW data."""
import cv2
import numpy as np
import pytest
import tensorflow as tf

from occface.data import (apply_cutout, augment_image, image_dataset, lfw_training_identities,
                          pairs_dataset, read_lfw_pairs, templates_dataset, training_dataset)


@pytest.fixture
def tree(tmp_path):
    """3 identities x 5 PNGs (16x16) + a corrupt JPEG, a truncated PNG and a text file."""
    rng = np.random.default_rng(0)
    images = {}
    for c in range(3):
        (tmp_path / f"id{c}").mkdir()
        for i in range(5):
            img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            cv2.imwrite(str(tmp_path / f"id{c}" / f"{i}.png"), img[:, :, ::-1])
            images[img.tobytes()] = c
    (tmp_path / "id1" / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    png = (tmp_path / "id0" / "0.png").read_bytes()
    (tmp_path / "id2" / "trunc.png").write_bytes(png[:60])
    (tmp_path / "id2" / "notes.txt").write_text("hello")
    (tmp_path / "README.txt").write_text("ignored: not an identity folder")
    return tmp_path, images


def _epoch(ds):
    out = []
    for batch in ds:
        out += list(zip(batch[0].numpy(), batch[1].numpy()))
    return out


def test_folder_tree_one_epoch_exact_and_corrupt_skipped(tree):
    root, images = tree
    ds, nc = training_dataset(root, 4, 16, augment=False, repeat=False, drop_remainder=False)
    assert nc == 3
    spec = ds.element_spec
    assert spec[0].dtype == tf.float32 and spec[0].shape[1:] == (16, 16, 3)
    assert spec[1].dtype == tf.int32
    got = _epoch(ds)
    assert len(got) == 15  # 3 bad files dropped, no crash
    keys = [img.astype(np.uint8).tobytes() for img, _ in got]
    assert sorted(keys) == sorted(images)  # each image exactly once, pixel-exact
    assert all(images[k] == lab for k, (_, lab) in zip(keys, got))


def test_skip_count_and_full_permutation_each_epoch(tree):
    root, images = tree
    ds, _ = training_dataset(root, 18, 16, augment=False, with_skip_count=True, seed=3)
    it = iter(ds)
    first = next(it)
    second = next(it)
    # 18 elements in: one epoch is 18 files of which 3 are bad.
    epoch1 = [i.astype(np.uint8).tobytes() for i in first[0].numpy()[:15]]
    assert sorted(epoch1) == sorted(images)
    assert int(first[2]) >= 3 - 1 and int(second[2]) >= 5
    assert first[0].numpy().min() >= 0 and first[0].numpy().max() <= 255


def test_determinism_and_seed(tree):
    root, _ = tree
    take = lambda s: [b[0].numpy() for b in training_dataset(  # noqa: E731
        root, 5, 16, seed=s, occlusion="block", cutout=4)[0].take(3)]
    a, b, c = take(1), take(1), take(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_iterator_checkpoint_resumes_exactly(tree, tmp_path_factory):
    root, _ = tree
    ds, _ = training_dataset(root, 4, 16, occlusion=["block", "mask"], cutout=6, seed=5,
                             return_masks=True, with_skip_count=True)
    it = iter(ds)
    for _ in range(4):
        next(it)
    ckpt = tf.train.Checkpoint(iterator=it)
    path = ckpt.save(str(tmp_path_factory.mktemp("ck") / "it"))
    expected = [next(it) for _ in range(6)]
    # A fresh pipeline + iterator restored from the checkpoint continues identically.
    ds2, _ = training_dataset(root, 4, 16, occlusion=["block", "mask"], cutout=6, seed=5,
                              return_masks=True, with_skip_count=True)
    it2 = iter(ds2)
    tf.train.Checkpoint(iterator=it2).restore(path)
    for e, g in zip(expected, [next(it2) for _ in range(6)]):
        for x, y in zip(e, g):
            np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_identities_filter_and_masks(tree):
    root, images = tree
    ds, nc = training_dataset(root, 10, 16, identities=["id2", "id0"], augment=False,
                              repeat=False, drop_remainder=False, occlusion="lower",
                              return_masks=True)
    images_, labels, masks = next(iter(ds))
    assert nc == 2 and sorted(labels.numpy().tolist()) == [0] * 5 + [1] * 5
    m = masks.numpy()[..., 0]
    assert (m[:, 8:] == 1).all() and (m[:, :8] == 0).all()
    assert (images_.numpy()[:, 8:] == 0).all()
    with pytest.raises(ValueError, match="identity 'id9'"):
        training_dataset(root, 4, identities=["id9"])


def test_sources_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        training_dataset(tmp_path / "nowhere", 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        training_dataset(tmp_path / "empty", 4)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="not a training source"):
        training_dataset(tmp_path / "x.txt", 4)


def test_augment_flip_rotation_shift():
    image = np.zeros((33, 33, 3), np.float32)
    image[16, 26] = 255.0  # a dot 10 px right of the centre
    angles = []
    for s in range(20):
        out = augment_image(tf.constant(image), tf.constant([0, s]), flip=False,
                            max_rotation=15.0, max_shift=0.0).numpy()
        ys, xs = np.nonzero(out[..., 0] > 20)
        w = out[ys, xs, 0]
        y, x = (ys * w).sum() / w.sum() - 16, (xs * w).sum() / w.sum() - 16
        assert abs(np.hypot(x, y) - 10) < 0.8  # rotation about the centre keeps the radius
        angles.append(np.degrees(np.arctan2(y, x)))
    assert max(np.abs(angles)) <= 15.5 and np.ptp(angles) > 10
    flips = set()
    for s in range(10):
        out = augment_image(tf.constant(image), tf.constant([1, s]), flip=True,
                            max_rotation=0, max_shift=0).numpy()
        assert np.array_equal(out, image) or np.array_equal(out, image[:, ::-1])
        flips.add(np.array_equal(out, image))
    assert flips == {True, False}
    for s in range(10):
        out = augment_image(tf.constant(image), tf.constant([2, s]), flip=False,
                            max_rotation=0, max_shift=0.1, fill_mode="CONSTANT").numpy()
        ys, xs = np.nonzero(out[..., 0] > 20)
        assert abs(ys.mean() - 16) <= 3.3 + 1 and abs(xs.mean() - 26) <= 3.3 + 1


def test_cutout_square():
    image = tf.fill([20, 20, 3], 10.0)
    for s in range(5):
        out = apply_cutout(image, tf.constant([0, s]), 6, fill=127.5).numpy()
        hole = out[..., 0] == 127.5
        ys, xs = np.nonzero(hole)
        assert hole.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1) <= 36
        assert (out[~hole] == 10.0).all()
    out = apply_cutout(image, tf.constant([0, 0]), 6, prob=0.0).numpy()
    assert (out == 10.0).all()


def test_real_att_faces_pgm(data_root):
    ds, nc = training_dataset(data_root / "att_faces", 50, 32, augment=False, repeat=False,
                              drop_remainder=False, with_skip_count=True)
    n = skipped = 0
    for images, labels, skipped in ds:
        n += len(labels)
    assert (nc, n, int(skipped)) == (40, 400, 0)  # PGM decoded through OpenCV


def test_real_lfw_identity_disjoint_training_set(data_root):
    root = data_root / "lfw"
    ids = lfw_training_identities(root, folds=range(7), min_images=3)
    ds, nc = training_dataset(root / "lfw-deepfunneled", 8, 64, identities=ids, seed=1)
    images, labels = next(iter(ds))
    assert nc == len(ids) == 621
    assert images.shape == (8, 64, 64, 3) and labels.numpy().max() < 621


def test_eval_pipelines(tree, tmp_path):
    root, images = tree
    paths = [root / "id0" / f"{i}.png" for i in range(5)]
    batches = list(image_dataset(paths, 16, batch_size=2))
    assert [b.shape[0] for b in batches] == [2, 2, 1]
    first = cv2.imread(str(paths[0]))[:, :, ::-1].astype(np.float32)
    np.testing.assert_array_equal(batches[0][0].numpy(), first)
    (img, flipped), = image_dataset(paths[:1], 16, flip=True).unbatch().take(1)
    np.testing.assert_array_equal(flipped.numpy(), first[:, ::-1])
    with pytest.raises(FileNotFoundError, match="missing"):
        image_dataset([root / "id0" / "missing.png"])
    # LFW-style pairs over a tree named like lfw-deepfunneled.
    lfw = tmp_path / "lfwlike"
    (lfw / "Ann").mkdir(parents=True)
    (lfw / "Bob").mkdir()
    for name, i in [("Ann", 1), ("Ann", 2), ("Bob", 1)]:
        cv2.imwrite(str(lfw / name / f"{name}_{i:04d}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    (tmp_path / "pairs.txt").write_text("1\t1\nAnn\t1\t2\nAnn\t1\tBob\t1\n")
    pairs = read_lfw_pairs(tmp_path / "pairs.txt")
    ((a, b), same), = list(pairs_dataset(pairs, lfw, 8, batch_size=4, ext=".png"))
    assert same.numpy().tolist() == [True, False]
    assert a.shape == (2, 8, 8, 3) and b.numpy()[0, 0, 0, 0] == 80 and a.numpy()[1, 0, 0, 0] == 40
    ds, ids = templates_dataset({"t1": paths[:3], "t2": paths[3:]}, 16, batch_size=4)
    idx = np.concatenate([b[1].numpy() for b in ds])
    assert ids == ["t1", "t2"] and idx.tolist() == [0, 0, 0, 1, 1]


def test_return_clean_matches_occluded_outside_mask(tree):
    root, _ = tree
    ds, _ = training_dataset(root, 6, 16, occlusion="block", seed=2, return_clean=True,
                             return_masks=True, max_rotation=0, max_shift=0.0)
    images, labels, clean, masks = next(iter(ds))
    images, clean, masks = images.numpy(), clean.numpy(), masks.numpy()
    assert masks.sum(axis=(1, 2, 3)).tolist() == [36.0] * 6  # 0.375 * 16 = 6 -> 6x6 blocks
    keep = np.repeat(masks == 0, 3, axis=-1)
    np.testing.assert_array_equal(images[keep], clean[keep])
    assert (images[~keep] == 0).all()
    # With rotation the clean image and the mask get the same transform as the image.
    ds, _ = training_dataset(root, 6, 16, occlusion="left", seed=2, return_clean=True,
                             return_masks=True)
    images, _, clean, masks = next(iter(ds))
    inside = masks.numpy()[..., 0] == 1
    assert inside.any() and (~inside).any()
    interior = np.abs(images.numpy() - clean.numpy()).max(-1) < 1e-3
    assert interior[~inside].mean() > 0.8 and interior[inside].mean() < 0.3


def test_in_memory_source_matches_streaming_and_counts_bad_files(tree):
    root, images = tree
    ds, nc = training_dataset(root, 5, 16, augment=False, repeat=False, in_memory=True,
                              with_skip_count=True, seed=1)
    assert nc == 3
    got = [(img, lab, int(skipped)) for b in ds for img, lab, skipped in
           zip(b[0].numpy(), b[1].numpy(), [b[2].numpy()] * len(b[1]))]
    assert len(got) == 15 and {s for *_, s in got} == {3}  # decoded once, 3 bad files counted
    assert sorted(img.astype(np.uint8).tobytes() for img, _, _ in got) == sorted(images)
    assert all(images[img.astype(np.uint8).tobytes()] == lab for img, lab, _ in got)
    # Without bad files the element order, augmentation and occlusion are the streaming ones.
    for bad in ("id1/bad.jpg", "id2/trunc.png", "id2/notes.txt"):
        (root / bad).unlink()
    kwargs = dict(augment=True, occlusion="block", seed=4, return_masks=True)
    stream, _ = training_dataset(root, 15, 16, **kwargs)
    memory, _ = training_dataset(root, 15, 16, in_memory=True, **kwargs)
    for a, b in zip(next(iter(stream)), next(iter(memory))):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_in_memory_needs_an_image_folder(tmp_path):
    from occface.data.memory import InMemoryImages
    with pytest.raises(ValueError, match="in_memory needs an image-folder training source, "
                                         "not a tfrecord source"):
        InMemoryImages.from_source(type("S", (), {"kind": "tfrecord"})(), (16, 16))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="none of the 1 training images decodes"):
        training_dataset(tmp_path, 1, 16, in_memory=True)
