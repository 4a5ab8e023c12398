"""The shipped ID-GAN demo exports, run as a user would: plain TensorFlow on the sample photos."""
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from occface.data import load_aligned_face
from occface.paths import REPO_ROOT

SAVED = REPO_ROOT / "saved_models"
SAMPLES = sorted((SAVED / "samples").rglob("*.jpg"))


def _faces(n=6):
    return np.stack([load_aligned_face(p, size=112)[0] for p in SAMPLES[:n]])


def _meta(version_dir):
    return json.loads((pathlib.Path(version_dir) / "assets.extra" / "occface.json").read_text())


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


def test_inpaint_demo_fills_holes_and_keeps_known_pixels():
    vdir = SAVED / "idgan_wid_lfw64" / "1"
    meta = _meta(vdir)
    assert meta["kind"] == "inpaint" and meta["generator_input_size"] == [64, 64]
    faces = _faces()
    masks = np.zeros(faces.shape[:3] + (1,), np.float32)
    masks[:, 24:72, 32:80] = 1.0  # a 48x48 hole over eyes and nose (the paper's size at 112)
    holed = np.where(masks > 0, 255, faces).astype(np.uint8)  # clients may send anything there
    out = tf.saved_model.load(str(vdir)).signatures["inpaint"](
        images=tf.constant(holed), masks=tf.constant(masks))["inpainted"].numpy()
    assert out.dtype == np.uint8 and out.shape == faces.shape
    known = masks[..., 0] == 0
    np.testing.assert_array_equal(out[known], faces[known])
    hole = ~known
    # the fill is a face, not the white the client sent or a flat grey: much closer to the truth
    assert _psnr(out[hole], faces[hole]) > _psnr(holed[hole], faces[hole]) + 8
    flat = np.full_like(faces[hole], int(faces[known].mean()))
    assert _psnr(out[hole], faces[hole]) > _psnr(flat, faces[hole]) + 2


def test_cascade_demo_follows_its_recorded_policy():
    vdir = SAVED / "lcd_idgan_cascade" / "1"
    meta = _meta(vdir)
    evidence = meta["occface"]["settings"]["cascade_evidence"]
    # the recorded evidence (benchmarks/results/cascade_evidence.json, MODEL_CARD.md's table):
    # inpainting gained on every kind, so every region is inpainted
    accuracy = evidence["occluded_pair_accuracy"]
    gains = {kind: accuracy[kind]["inpainted"] - accuracy[kind]["direct"]
             for kind in ("block", "mask", "sunglasses")}
    assert gains == pytest.approx({"block": 0.8383333 - 0.7716667, "mask": 0.8083333 - 0.7733333,
                                   "sunglasses": 0.7883333 - 0.6866667}, abs=1e-6)
    assert meta["inpaint_policy"] == {"upper": True, "lower": True, "other": True}
    assert "| policy (from the evidence) | upper: inpaint, lower: inpaint, other: inpaint |" in \
        (SAVED / "lcd_idgan_cascade" / "MODEL_CARD.md").read_text()
    loaded = tf.saved_model.load(str(vdir))
    faces = _faces(4)
    masks_b = np.zeros(faces.shape[:3] + (1,), np.float32)
    masks_b[:, 70:112, 20:92] = 1.0  # lower face (a face mask's region)
    masks_b[1, :, :] = 0.0
    masks_b[1, 30:60, 20:92] = 1.0   # upper face (sunglasses' region)
    masks_b[2, :, :] = 0.0           # face 3: no mask, embedded as given
    zeros = np.zeros_like(masks_b)
    sig = loaded.signatures["verify_masked"]
    masked = sig(faces_a=faces, faces_b=faces, masks_a=zeros, masks_b=masks_b)
    plain = loaded.signatures["verify"](faces_a=faces, faces_b=faces)
    np.testing.assert_allclose(plain["scores"].numpy(), 1.0, atol=1e-5)
    scores = masked["scores"].numpy()
    # lower (faces 1, 4) and upper (face 2) masks: inpainted, so the face changed in the hole
    assert np.all(scores[[0, 1, 3]] < 1.0 - 1e-4)
    assert scores[2] == pytest.approx(1.0, abs=1e-5)
