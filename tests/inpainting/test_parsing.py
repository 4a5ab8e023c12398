"""Landmark-derived parsing labels, joint augmentation, the default parser."""
import numpy as np
import pytest

import keras

from occface.data.alignment import template_landmarks
from occface.inpainting import (PARSING_CLASSES, augment_face_and_landmarks, build_face_parser,
                                parsing_labels_from_landmarks, parsing_mean_iou, predict_parsing,
                                train_face_parser)
from occface.inpainting.parsing import BACKGROUND, EYES, FLIP_PERMUTATION, MOUTH, NOSE, SKIN


def test_labels_on_template():
    pts = template_landmarks(112)
    labels = parsing_labels_from_landmarks(pts, 112)
    assert labels.shape == (112, 112) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(len(PARSING_CLASSES)))

    def at(x, y):
        return labels[int(round(y)), int(round(x))]

    assert at(*pts[0]) == EYES and at(*pts[1]) == EYES
    assert at(*pts[2]) == NOSE
    assert at(*(0.5 * (pts[3] + pts[4]))) == MOUTH
    assert at(*pts[3]) == MOUTH and at(*pts[4]) == MOUTH
    assert at(30, 75) == SKIN  # left cheek
    assert labels[0, 0] == BACKGROUND and labels[111, 0] == BACKGROUND
    assert labels[0, 111] == BACKGROUND and labels[111, 111] == BACKGROUND
    # left/right symmetric template -> nearly mirror-symmetric labels
    assert np.mean(labels == labels[:, ::-1]) > 0.97


def test_labels_rotate_with_landmarks():
    size = 64
    pts = template_landmarks(size).astype(np.float64)
    c = size - 1
    rotated = np.stack([pts[:, 1], c - pts[:, 0]], axis=1)  # np.rot90 (counter-clockwise)
    a = np.rot90(parsing_labels_from_landmarks(pts, size))
    b = parsing_labels_from_landmarks(rotated, size)
    assert np.mean(a == b) > 0.995  # only pixels exactly on an ellipse border may differ


def test_labels_batch_and_errors():
    pts = template_landmarks(32)
    batch = parsing_labels_from_landmarks(np.stack([pts, pts + 1.0]), 32)
    assert batch.shape == (2, 32, 32)
    np.testing.assert_array_equal(batch[0], parsing_labels_from_landmarks(pts, 32))
    with pytest.raises(ValueError, match="landmarks"):
        parsing_labels_from_landmarks(np.zeros((4, 2)), 32)
    with pytest.raises(ValueError, match="degenerate"):
        parsing_labels_from_landmarks(np.zeros((5, 2)), 32)


@pytest.mark.parametrize("seed", range(6))
def test_augmentation_moves_image_and_landmarks_together(seed):
    size = 64
    pts = template_landmarks(size)
    yy, xx = np.mgrid[:size, :size]
    for k in range(5):
        blob = np.exp(-((xx - pts[k, 0]) ** 2 + (yy - pts[k, 1]) ** 2) / (2 * 1.5 ** 2))
        image = np.repeat((255 * blob)[..., None], 3, axis=2).astype(np.float32)
        out, new_pts = augment_face_and_landmarks(image, pts, np.random.default_rng(seed))
        assert out.shape == image.shape and new_pts.shape == (5, 2)
        # after a flip the returned points are re-ordered: original k sits at FLIP_PERMUTATION[k]
        y, x = np.unravel_index(np.argmax(out[..., 0]), out.shape[:2])
        candidates = [new_pts[k], new_pts[FLIP_PERMUTATION[k]]]
        dist = min(np.hypot(x - p[0], y - p[1]) for p in candidates)
        assert dist <= 1.0, (k, seed, dist)
    # eyes stay ordered left-to-right in the image (flip re-orders them)
    assert new_pts[0, 0] < new_pts[1, 0] and new_pts[3, 0] < new_pts[4, 0]


def test_parser_shapes_and_serialization(tmp_path, rng):
    parser = build_face_parser(32, width=4)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    logits = keras.ops.convert_to_numpy(parser(x))
    assert logits.shape == (2, 32, 32, len(PARSING_CLASSES))
    parser.save(tmp_path / "p.keras")
    loaded = keras.saving.load_model(tmp_path / "p.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), logits, atol=1e-5)
    with pytest.raises(ValueError, match="multiple of 4"):
        build_face_parser(30)


def test_parser_learns_synthetic_faces(rng):
    """Faces painted in their label colours: a few epochs must beat predicting the majority."""
    size, n = 32, 12
    colours = np.array([[20, 20, 20], [200, 160, 120], [30, 30, 220], [60, 200, 60],
                        [220, 40, 40]], np.float32)
    base = template_landmarks(size)
    landmarks = base[None] + rng.uniform(-1.5, 1.5, (n, 5, 2)).astype(np.float32)
    labels = parsing_labels_from_landmarks(landmarks, size)
    images = np.clip(colours[labels] + rng.normal(0, 10, labels.shape + (3,)), 0, 255)
    keras.utils.set_random_seed(0)
    parser = build_face_parser(size, width=4)
    history = train_face_parser(parser, images, landmarks, epochs=4, batch_size=4,
                                learning_rate=1e-2, seed=0)
    assert len(history["loss"]) == 4 and history["loss"][-1] < history["loss"][0]
    pred = predict_parsing(parser, images)
    majority = np.mean(labels == np.bincount(labels.ravel()).argmax())
    accuracy = np.mean(pred == labels)
    assert accuracy > max(majority + 0.2, 0.7), (accuracy, majority, history)


def test_train_parser_errors():
    parser = build_face_parser(32, width=4)
    with pytest.raises(ValueError, match="landmarks"):
        train_face_parser(parser, np.zeros((2, 32, 32, 3)), np.zeros((3, 5, 2)), epochs=1)


def test_mean_iou():
    a = np.array([[0, 0, 1, 1]])
    b = np.array([[0, 1, 1, 1]])
    miou, per = parsing_mean_iou(a, b, num_classes=3)
    np.testing.assert_allclose(per[:2], [0.5, 2 / 3])
    assert np.isnan(per[2]) and np.isclose(miou, (0.5 + 2 / 3) / 2)
