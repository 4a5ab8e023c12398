"""dlib's ResNet as a peer recognizer: the ArcFace → dlib-chip warp, errors, real faces."""

import pathlib
import sys

import numpy as np
import pytest

from occface.data.alignment import ARCFACE_TEMPLATE_112, similarity_transform, transform_points
from occface.models.dlib_peer import (ARCFACE112_TO_DLIB, DLIB_CHIP_LANDMARKS,
                                      arcface_to_dlib_matrix, dlib_chips, dlib_model_file,
                                      is_dlib_spec)
from occface.models.io import load_embedding_model


def test_warp_maps_the_template_onto_the_chip_points():
    m = arcface_to_dlib_matrix(112)
    # the stored constant is the Umeyama fit of the template onto the measured chip points
    np.testing.assert_allclose(ARCFACE112_TO_DLIB,
                               similarity_transform(ARCFACE_TEMPLATE_112, DLIB_CHIP_LANDMARKS),
                               rtol=0, atol=1e-12)
    np.testing.assert_array_equal(m, ARCFACE112_TO_DLIB)
    got = transform_points(m, ARCFACE_TEMPLATE_112)
    # a least-squares similarity: every point within 1.5 px, the eye centre within 0.5 px
    assert np.abs(got - DLIB_CHIP_LANDMARKS).max() < 1.5
    np.testing.assert_allclose(got[:2].mean(0), DLIB_CHIP_LANDMARKS[:2].mean(0), atol=0.5)
    # scale: chip eye distance 53.95 px over the template's 35.24 px (hand-computed) ~ 1.531
    scale = np.hypot(m[0, 0], m[1, 0])
    assert abs(scale - 53.95 / 35.24) < 0.02 and abs(m[1, 0]) < 0.01 * scale
    # the same warp for a face aligned at 224 px: half the linear part, same translation
    m2 = arcface_to_dlib_matrix(224)
    np.testing.assert_allclose(m2[:, :2], m[:, :2] / 2, rtol=1e-9)
    np.testing.assert_allclose(m2[:, 2], m[:, 2], atol=1e-9)
    np.testing.assert_allclose(transform_points(m2, 2 * ARCFACE_TEMPLATE_112), got, atol=1e-9)


def test_chips_put_a_template_point_where_dlib_expects_it():
    faces = np.zeros((2, 112, 112, 3), np.uint8)
    x, y = np.rint(ARCFACE_TEMPLATE_112[0]).astype(int)  # left eye (38, 52)
    faces[0, y - 1:y + 2, x - 1:x + 2] = 255
    chips = dlib_chips(faces)
    assert chips.shape == (2, 150, 150, 3) and chips.dtype == np.uint8
    assert chips.flags["C_CONTIGUOUS"] and chips[1].max() == 0
    w = chips[0, ..., 0].astype(np.float64)
    cy, cx = (np.indices(w.shape) * w).sum((1, 2)) / w.sum()  # the dot's centre of mass
    want = transform_points(arcface_to_dlib_matrix(112), [[x, y]])[0]
    assert abs(cx - want[0]) < 0.5 and abs(cy - want[1]) < 0.5
    assert np.hypot(cx - DLIB_CHIP_LANDMARKS[0, 0], cy - DLIB_CHIP_LANDMARKS[0, 1]) < 2.5


def test_errors(tmp_path, monkeypatch):
    assert is_dlib_spec("dlib") and is_dlib_spec("dlib:/m.dat")
    assert not is_dlib_spec("dlib_model.keras") and not is_dlib_spec(pathlib.Path("dlib"))
    with pytest.raises(ValueError, match=r"^images must be \(N, S, S, 3\) square RGB faces; got "
                                         r"shape \(1, 112, 96, 3\)$"):
        dlib_chips(np.zeros((1, 112, 96, 3), np.uint8))
    missing = tmp_path / "nope.dat"
    with pytest.raises(FileNotFoundError, match=f"^dlib model file not found: {missing}$"):
        dlib_model_file(str(missing))
    monkeypatch.setitem(sys.modules, "dlib", None)  # "import dlib" raises ImportError
    with pytest.raises(ValueError, match=r"^dlib is not installed \(the 'dlib' peer recognizer "
                                         r"needs: pip install dlib-bin face_recognition_models\)$"):
        load_embedding_model("dlib")


def test_real_faces_same_people_close_others_far(data_root):
    """Two images each of four LFW people, aligned by YuNet: dlib's own 0.6 distance rule holds
    for every pair, and our warp gives what dlib computes on the chip directly."""
    dlib = pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    from occface.data import load_aligned_face
    root = pathlib.Path(data_root) / "lfw" / "lfw-deepfunneled"
    people = ("Colin_Powell", "George_W_Bush", "Serena_Williams", "Tony_Blair")
    files = [root / p / f"{p}_{i:04d}.jpg" for p in people for i in (1, 2)]
    faces = np.stack([load_aligned_face(f)[0] for f in files])
    model = load_embedding_model("dlib")
    assert model.kind == "dlib" and model.embedding_size == 128
    emb = model(faces)
    assert emb.shape == (8, 128) and emb.dtype == np.float32
    net = dlib.face_recognition_model_v1(dlib_model_file())
    direct = np.asarray(net.compute_face_descriptor(dlib_chips(faces[:1])[0]), np.float32)
    np.testing.assert_allclose(emb[0], direct, atol=1e-5)
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    same = np.equal.outer(np.arange(8) // 2, np.arange(8) // 2)
    off = ~np.eye(8, dtype=bool)
    assert dist[same & off].max() < 0.6 < dist[~same].min(), dist.round(2)
