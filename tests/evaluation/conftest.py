"""Fixtures shared by the evaluation tests: a miniature IJB-C release in the real file formats."""
import cv2
import numpy as np
import pytest

from occface.data import template_landmarks
from occface.evaluation import EmbeddingModel

R, G, B, Y = (200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)
# name: (template, media, colour, faceness, landmark offset (x, y))
MINI_IJBC_IMAGES = {
    "1.png": (1, 10, R, 1.0, (10, 20)),
    "2.png": (1, 10, G, 0.5, (30, 5)),
    "3.png": (1, 11, B, 1.0, (0, 0)),
    "4.png": (2, 12, B, 0.9, (40, 40)),
    "5.png": (3, 13, R, 1.0, (5, 35)),
    "6.png": (3, 13, R, 0.8, (20, 20)),
    "8.png": (4, 14, G, 1.0, (12, 3)),
    "9.png": (5, 15, Y, 1.0, (25, 30)),
}
MINI_IJBC_PAIRS = [(1, 2, 1), (1, 3, 0), (2, 3, 0), (1, 4, 0), (2, 4, 0), (3, 5, 0)]


@pytest.fixture
def mini_ijbc_spec():
    return MINI_IJBC_IMAGES, MINI_IJBC_PAIRS


@pytest.fixture
def mean_colour_model():
    """Embedding = mean RGB colour of the aligned 112x112 face: exact on uniform faces."""
    return EmbeddingModel(lambda x: x.reshape(len(x), -1, 3).mean(axis=1), (112, 112))


@pytest.fixture
def mini_ijbc(tmp_path):
    """An IJB-C release (meta/*.txt + loose_crop/) whose 'faces' are uniform colour squares.

    Each crop is a 160x160 grey image with a 112x112 colour square at an offset; its landmarks are
    the 112 template shifted by that offset, so aligning with them crops exactly the square.
    """
    root = tmp_path / "IJBC"
    (root / "meta").mkdir(parents=True)
    (root / "loose_crop").mkdir()
    lmk_lines = []
    for name, (_, _, colour, score, (ox, oy)) in MINI_IJBC_IMAGES.items():
        img = np.full((160, 160, 3), 60, np.uint8)
        img[oy:oy + 112, ox:ox + 112] = colour
        cv2.imwrite(str(root / "loose_crop" / name), img[:, :, ::-1])  # RGB -> BGR file
        lm = template_landmarks(112) + np.array([ox, oy], np.float32)
        lmk_lines.append(" ".join([name] + [f"{v:.4f}" for v in lm.ravel()] + [str(score)]))
    # An image with landmarks but no template; and a different order than face_tid_mid.
    lmk_lines.append("7.png " + " ".join(["1"] * 10) + " 0.9")
    (root / "meta" / "ijbc_name_5pts_score.txt").write_text("\n".join(lmk_lines[::-1]) + "\n")
    (root / "meta" / "ijbc_face_tid_mid.txt").write_text(
        "".join(f"{n} {t} {m}\n" for n, (t, m, *_rest) in MINI_IJBC_IMAGES.items()))
    (root / "meta" / "ijbc_template_pair_label.txt").write_text(
        "".join(f"{a} {b} {c}\n" for a, b, c in MINI_IJBC_PAIRS))
    return root
