"""Detection and alignment on real LFW / AT&T images, plus synthetic edge cases."""
import glob
import itertools

import cv2
import numpy as np
import pytest

from occface.data import (ARCFACE_TEMPLATE_112, FaceDetector, NoFaceError, align_face,
                          load_aligned_face, read_image, similarity_transform, template_landmarks,
                          transform_points)
from occface.paths import ASSETS_DIR


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def _lfw_files(data_root, step=661):
    files = sorted(glob.glob(str(data_root / "lfw" / "lfw-deepfunneled" / "*" / "*.jpg")))
    assert len(files) == 13233
    return files[::step]


def test_shipped_assets():
    assert (ASSETS_DIR / "yunet" / "face_detection_yunet_2023mar.onnx").stat().st_size == 232589
    assert "MIT License" in (ASSETS_DIR / "yunet" / "LICENSE.txt").read_text()
    assert "MIT License" in (ASSETS_DIR / "masktheface" / "LICENSE.txt").read_text()
    assert len(list((ASSETS_DIR / "masktheface" / "templates").glob("*.png"))) == 21


def test_template_landmarks_sizes():
    np.testing.assert_allclose(template_landmarks(112), ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(template_landmarks(128), ARCFACE_TEMPLATE_112 * 128 / 112, rtol=1e-6)
    narrow = template_landmarks((112, 96))
    np.testing.assert_allclose(narrow[:, 0], ARCFACE_TEMPLATE_112[:, 0] - 8, atol=1e-5)
    np.testing.assert_allclose(narrow[:, 1], ARCFACE_TEMPLATE_112[:, 1])
    with pytest.raises(ValueError, match="size"):
        template_landmarks((112, 96, 3))


def test_similarity_transform_recovers_known_transform(rng):
    src = rng.uniform(0, 100, size=(5, 2))
    angle, scale, t = 0.3, 1.7, np.array([5.0, -3.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((5, 2)), dst)


def test_align_face_maps_landmarks_onto_template(rng):
    # Draw 5 dots at known positions of a rotated, scaled face and align them back.
    image = np.zeros((300, 260, 3), np.uint8)
    m_true = cv2.getRotationMatrix2D((56, 56), 12, 1.8)
    m_true[:, 2] += (60, 70)
    landmarks = transform_points(m_true, ARCFACE_TEMPLATE_112)
    for x, y in landmarks:
        cv2.circle(image, (int(round(x)), int(round(y))), 4, (255, 255, 255), -1)
    for size in (112, 128, (112, 96)):
        out, m = align_face(image, landmarks, size, return_matrix=True)
        h, w = (size, size) if isinstance(size, int) else size
        assert out.shape == (h, w, 3) and out.dtype == np.uint8
        np.testing.assert_allclose(transform_points(m, landmarks), template_landmarks(size),
                                   atol=1e-3)
        # The drawn dots land on the template points.
        for x, y in template_landmarks(size):
            assert out[int(round(y)), int(round(x))].min() > 100
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        align_face(image, landmarks[:4])


def test_alignment_on_real_lfw(data_root, detector):
    dists = []
    for path in _lfw_files(data_root):
        rgb, lm, found = load_aligned_face(path, size=112, detector=detector)
        assert found, path
        assert rgb.shape == (112, 112, 3) and rgb.dtype == np.uint8
        dists.append(np.linalg.norm(lm - template_landmarks(112), axis=1))
    dists = np.array(dists)
    # Detected landmarks map within a few pixels of the template (a similarity transform cannot
    # absorb expression/pose, so the nose is the loosest point).
    assert np.median(dists.mean(axis=1)) < 3.5
    assert dists.mean(axis=1).max() < 6.0
    assert dists[:, :2].max() < 7.0  # eyes


def test_alignment_128_and_rgb_order(data_root, detector):
    path = _lfw_files(data_root)[0]
    rgb, lm, found = load_aligned_face(path, size=128, detector=detector)
    assert found and rgb.shape == (128, 128, 3)
    assert np.linalg.norm(lm - template_landmarks(128), axis=1).mean() < 5
    # RGB output: same as aligning the BGR image and flipping channels.
    bgr = read_image(path)
    face = detector.best_face(bgr)
    np.testing.assert_array_equal(rgb, align_face(bgr, face.landmarks, 128)[:, :, ::-1])


def test_detector_picks(data_root, detector):
    bgr = read_image(_lfw_files(data_root)[1])
    faces = detector.detect(bgr)
    assert faces and all(f.box.shape == (4,) and f.landmarks.shape == (5, 2) for f in faces)
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    # Two copies of the face side by side with one shrunk: largest vs central.
    canvas = np.zeros((250, 750, 3), np.uint8)
    canvas[:, 0:250] = bgr
    small = cv2.resize(bgr, (150, 150))
    canvas[50:200, 300:450] = small
    largest = detector.detect(canvas, pick="largest")
    central = detector.detect(canvas, pick="central")
    assert len(largest) >= 2
    assert largest[0].center[0] < 250 and central[0].center[0] > 250
    assert detector.best_face(canvas, pick="largest").area == largest[0].area


def test_grey_att_faces(data_root, detector):
    files = sorted(glob.glob(str(data_root / "att_faces" / "s*" / "*.pgm")))[::40]
    found = [load_aligned_face(f, size=64, detector=detector)[2] for f in files]
    assert sum(found) >= len(found) - 1


def test_no_face_image(tmp_path, detector, rng):
    path = tmp_path / "noise.png"
    cv2.imwrite(str(path), (rng.uniform(0, 1, (200, 200, 3)) * 40 + 100).astype(np.uint8))
    assert detector.detect(read_image(path)) == []
    rgb, lm, found = load_aligned_face(path, size=112, detector=detector)
    assert not found and rgb.shape == (112, 112, 3)
    np.testing.assert_allclose(lm, template_landmarks(112))
    with pytest.raises(NoFaceError, match=f"no face found in {path}"):
        load_aligned_face(path, detector=detector, fallback=None)
    assert issubclass(NoFaceError, ValueError)


def test_centre_crop_fallback_is_the_central_150px(data_root, tmp_path):
    class NoDetector:
        def best_face(self, image, pick="central"):
            return None
    path = _lfw_files(data_root)[2]
    rgb, _, found = load_aligned_face(path, size=150, detector=NoDetector())
    assert not found
    np.testing.assert_array_equal(rgb, read_image(path)[50:200, 50:200, ::-1])


def test_unreadable_files(tmp_path, detector):
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        load_aligned_face(tmp_path / "missing.jpg", detector=detector)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="cannot decode image file .*notes.jpg"):
        load_aligned_face(bad, detector=detector)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png"):
        read_image(empty)


def test_detector_pickles():
    import pickle
    det = FaceDetector(score_threshold=0.7)
    det.detect(np.zeros((64, 64, 3), np.uint8))
    det2 = pickle.loads(pickle.dumps(det))
    assert det2.score_threshold == 0.7 and det2._net is None
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        FaceDetector("nope.onnx")
