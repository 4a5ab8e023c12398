"""occface.explain (tools/verify.py --explain): sensitivity maps vs hand values, the PNG's panels."""
import subprocess
import sys

import cv2
import numpy as np
import pytest

from occface.explain import (cell_edges, explain_pair, explain_ranking, hidden_variants,
                             occlusion_sensitivity, render_explanation)
from occface.paths import REPO_ROOT

SAMPLES = REPO_ROOT / "saved_models" / "samples"
SERENA_1 = SAMPLES / "Serena_Williams" / "Serena_Williams_0001.jpg"
SERENA_MASKED = REPO_ROOT / "saved_models" / "occluded_samples" / "Serena_Williams_0002_mask.jpg"
DEMO = REPO_ROOT / "saved_models" / "lcd_ir18_w16_lfw"


def test_hidden_variants_hide_exactly_one_cell(rng):
    face = rng.integers(0, 256, (10, 10, 3)).astype(np.uint8)
    out = hidden_variants(face, grid=3, fill=7)
    assert out.shape == (9, 10, 10, 3)
    edges = cell_edges(10, 3)
    np.testing.assert_array_equal(edges, [0, 3, 7, 10])
    changed = out != face[None]
    # variant 1·3 + 2 hides rows 3:7, columns 7:10 and nothing else
    assert np.all(out[5, 3:7, 7:10] == 7)
    expect = np.zeros((10, 10), bool)
    expect[3:7, 7:10] = True
    np.testing.assert_array_equal(changed[5].any(-1), expect & (face != 7).any(-1))
    with pytest.raises(ValueError, match="grid"):
        hidden_variants(face, grid=0)


def test_sensitivity_matches_hand_computation_in_one_call():
    # embedding = (mean of the left half, mean of the right half), normalised: hiding a cell
    # with fill 0 in a face of ones changes only its half's mean
    calls = []

    def embed(batch):
        calls.append(len(batch))
        b = batch.astype(np.float64)
        e = np.stack([b[:, :, :2].mean(axis=(1, 2, 3)), b[:, :, 2:].mean(axis=(1, 2, 3))], 1)
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    a = np.ones((4, 4, 3), np.uint8)
    b = np.ones((4, 4, 3), np.uint8)
    b[:, 2:] = 3                                   # b's embedding: (1, 3)/√10
    score, drops = occlusion_sensitivity(embed, a, b, grid=2, fill=0)
    assert calls == [2 + 2 * 4]                    # one batched pass
    assert score == pytest.approx(4 / np.sqrt(20))
    # hiding a's top-left cell: a = (0.5, 1) → cos with (1, 3) = 3.5 / (√1.25 √10)
    hid_left = 3.5 / (np.sqrt(1.25) * np.sqrt(10))
    hid_right = 2.5 / (np.sqrt(1.25) * np.sqrt(10))        # a = (1, 0.5)
    np.testing.assert_allclose(drops[0], score - np.array([[hid_left, hid_right]] * 2), atol=1e-6)
    # hiding b's top-right cell: b = (1, 1.5) → cos with (1, 1) = 2.5 / (√3.25 √2)
    np.testing.assert_allclose(drops[1, 0, 1], score - 2.5 / (np.sqrt(3.25) * np.sqrt(2)),
                               atol=1e-6)


@pytest.fixture(scope="module")
def verifier():
    from occface.occlusion_estimate import default_occlusion_estimator
    from occface.verify import FaceVerifier
    return FaceVerifier(DEMO, occlusion_estimator=default_occlusion_estimator())


@pytest.fixture(scope="module")
def masked_explanation(verifier):
    return explain_pair(verifier, SERENA_1, SERENA_MASKED, grid=6)


def test_masked_face_relies_on_its_unmasked_part(masked_explanation):
    e = masked_explanation
    assert e["sensitivity_score"] == pytest.approx(e["result"]["score"], abs=1e-5)
    masked = e["faces"][1]
    mask = masked.occlusion_prob > 0.5
    assert masked.face.occlusion["occluded"] and 0.1 < mask.mean() < 0.6
    assert mask[80:].mean() > 0.5 > mask[:50].mean()              # a mask on the lower face
    i, j = np.unravel_index(np.argmax(masked.sensitivity), masked.sensitivity.shape)
    edges = cell_edges(112, 6)
    assert mask[edges[i]:edges[i + 1], edges[j]:edges[j + 1]].mean() < 0.5
    assert masked.sensitivity.max() > 0.01                        # hiding it costs similarity
    # hiding cells of the mask itself costs less, on average, than hiding unmasked cells
    cell_mask = np.array([[mask[edges[r]:edges[r + 1], edges[c]:edges[c + 1]].mean()
                           for c in range(6)] for r in range(6)])
    assert masked.sensitivity[cell_mask < 0.1].mean() > masked.sensitivity[cell_mask > 0.9].mean()
    assert masked.inpainted is None                               # not a cascade model


def test_png_panels(masked_explanation, tmp_path):
    layout = render_explanation(masked_explanation, tmp_path / "x" / "out.png")
    png = cv2.imread(layout["path"])[..., ::-1]
    assert png.shape[:2] == (640, 1300) and layout["size"] == (1300, 640)
    panels = layout["panels"]
    assert panels[(0, "inpainted")] is None and panels[(1, "inpainted")] is None
    for row, e in enumerate(masked_explanation["faces"]):
        x0, y0, x1, y1 = panels[(row, "aligned")]
        assert 150 < x1 - x0 < 260 and abs((x1 - x0) - (y1 - y0)) <= 2   # square face panel
        shown = cv2.resize(png[y0:y1, x0:x1], (112, 112), interpolation=cv2.INTER_AREA)
        corr = np.corrcoef(shown.ravel().astype(float), e.face.aligned.ravel())[0, 1]
        assert corr > 0.95                                         # it is the aligned face
        # the sensitivity panel shows the hottest cell brighter than the coldest
        x0, y0, x1, y1 = panels[(row, "sensitivity")]
        grey = cv2.resize(png[y0:y1, x0:x1].mean(-1), (6, 6), interpolation=cv2.INTER_AREA)
        base = cv2.resize(e.face.aligned.mean(-1), (6, 6), interpolation=cv2.INTER_AREA)
        lift = grey - 0.4 * base                                   # the overlay's share
        s = e.sensitivity
        assert lift.flat[np.argmax(s)] > lift.flat[np.argmin(s)]
    # the masked face's occlusion panel is red where the segmenter found the mask
    x0, y0, x1, y1 = panels[(1, "occlusion")]
    shown = cv2.resize(png[y0:y1, x0:x1], (112, 112), interpolation=cv2.INTER_AREA).astype(float)
    face = masked_explanation["faces"][1].face.aligned.astype(float)
    redder = (shown[..., 0] - shown[..., 1:].mean(-1)) - (face[..., 0] - face[..., 1:].mean(-1))
    mask = masked_explanation["faces"][1].occlusion_prob > 0.5
    assert redder[mask].mean() > 60 and abs(redder[~mask].mean()) < 15
    assert layout["gauge"][1] > panels[(1, "photo")][3]              # the score axis is below


def test_explain_ranking_writes_one_png_per_identity(verifier, tmp_path):
    gallery = tmp_path / "gallery"
    for person in ("Serena_Williams", "George_W_Bush"):
        (gallery / person).mkdir(parents=True)
        src = sorted((SAMPLES / person).glob("*.jpg"))[-1]
        (gallery / person / src.name).write_bytes(src.read_bytes())
    ranking = verifier.rank(SERENA_MASKED, gallery, top_k=2)
    paths = explain_ranking(verifier, SERENA_MASKED, ranking, tmp_path / "out", grid=2)
    names = [p.rsplit("/", 1)[1] for p in paths]
    assert names == [f"rank{k}_{r['identity']}.png".replace("rank", "rank0")
                     for k, r in enumerate(ranking["ranking"], 1)]
    assert all(cv2.imread(p).shape[:2] == (640, 1300) for p in paths)


def test_tool_writes_the_png_and_refuses_bad_flags(tmp_path):
    tool = str(REPO_ROOT / "tools" / "verify.py")
    out = tmp_path / "pair.png"
    run = subprocess.run([sys.executable, tool, str(SERENA_1), str(SERENA_MASKED), "--model",
                          str(DEMO), "--explain", str(out), "--explain_grid", "3"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"explanation: {out}" in run.stdout and cv2.imread(str(out)).shape[:2] == (640, 1300)
    bad = subprocess.run([sys.executable, tool, str(SERENA_1), "--gallery", str(SAMPLES),
                          "--explain", str(out)], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "verify: error: --explain draws a pair; with --gallery use --explain_dir DIR"]
