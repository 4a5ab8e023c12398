"""Inpainting comparison: methods, side-by-side strips, PSNR/SSIM and occluded-pair verification."""
import numpy as np
import pytest

import keras

from occface.evaluation.occlusion import occlude_face
from occface.evaluation.protocols import FaceSource, PairSet
from occface.inpainting import build_generator
from occface.inpainting.evaluate import (evaluate_inpainting_pairs, format_inpainting_table,
                                         generator_inpaint_fn, inpainting_methods, load_generator,
                                         side_by_side)
from tests.by_hand import cosine, kfold_accuracy

S = 32


def smooth_faces(n, rng):
    yy, xx = np.mgrid[:S, :S] / S
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(40, 200, 3)
        img = np.stack([a + 40 * xx, b + 40 * yy, c + 20 * (xx + yy)], axis=-1)
        out.append(np.clip(img, 0, 255))
    return np.stack(out).astype(np.uint8)


def test_generator_fn_resizes_and_keeps_known_pixels(rng):
    fn = generator_inpaint_fn(build_generator(S, width=4), batch_size=2)
    images = rng.integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    masks = np.zeros((3, 48, 48), np.uint8)
    masks[:, 10:30, 12:40] = 1
    out = fn(images, masks)
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[masks == 0], images[masks == 0])
    assert not np.array_equal(out[masks == 1], images[masks == 1])


def test_methods_and_side_by_side(tmp_path, rng):
    gen = build_generator(S, width=4)
    gen.save(tmp_path / "generator.keras")
    methods = inpainting_methods({"wID": tmp_path}, classical=("telea", "ns"))
    assert list(methods) == ["OCC", "Telea", "NS", "wID"]
    assert isinstance(load_generator(tmp_path / "generator.keras"), keras.Model)
    with pytest.raises(FileNotFoundError):
        load_generator(tmp_path / "nothing")
    with pytest.raises(ValueError, match="classical"):
        inpainting_methods(classical=("patchmatch",))
    strip = side_by_side([np.zeros((S, S, 3), np.uint8)] * 3, labels=["a", "b", "c"], gap=2)
    assert strip.shape == (S + 16, 3 * S + 4, 3)
    assert np.all(strip[:S, S:S + 2] == 255)


def test_evaluate_pairs_quality_and_verification(rng):
    faces = smooth_faces(8, rng)
    source = FaceSource("array", size=S, images=faces)
    pairs = PairSet(keys_a=[0, 2, 4, 6, 0, 1, 2, 3], keys_b=[1, 3, 5, 7, 4, 5, 6, 7],
                    issame=[1, 1, 1, 1, 0, 0, 0, 0], folds=2)
    keras.utils.set_random_seed(0)
    recognizer = keras.Sequential([keras.Input((S, S, 3)), keras.layers.Rescaling(1 / 255.0),
                                   keras.layers.AveragePooling2D(8), keras.layers.Flatten()])
    methods = inpainting_methods({"G": build_generator(S, width=4)})
    report = evaluate_inpainting_pairs(pairs, source, methods, recognizer=recognizer, seed=1,
                                       batch_size=3, examples=2)
    assert report["n_occluded_images"] == 6  # the distinct second faces
    occ, telea = report["methods"]["OCC"], report["methods"]["Telea"]
    assert telea["psnr"] > occ["psnr"] + 3 and telea["ssim"] > occ["ssim"]
    for name, row in report["methods"].items():
        assert len(row["fold_accuracies"]) == 2, name
    # identity similarity by hand for OCC: cosine of pooled (occluded, clean) second faces
    second = [1, 3, 5, 7, 4, 6]  # the distinct second faces, in order
    occ_faces = np.stack([occlude_face(*source.get(k)[:2], "block", 1, key=k)[0] for k in second])
    e_occ = recognizer(occ_faces.astype(np.float32)).numpy()
    e_true = recognizer(np.stack([source.get(k)[0] for k in second]).astype(np.float32)).numpy()
    cos = cosine(e_occ, e_true)
    assert occ["identity_similarity"] == pytest.approx(cos.mean(), abs=1e-5)
    # verification accuracies by brute force (2 contiguous folds of 4 pairs): clean pairs, and
    # OCC's pairs (clean first face, occluded second face)
    e_all = recognizer(np.stack([source.get(k)[0] for k in range(8)]).astype(np.float32)).numpy()
    keys_a, keys_b = [0, 2, 4, 6, 0, 1, 2, 3], [1, 3, 5, 7, 4, 5, 6, 7]
    issame, folds = [1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]
    clean_scores = cosine(e_all[keys_a], e_all[keys_b])
    assert report["clean"]["accuracy"] == pytest.approx(kfold_accuracy(clean_scores, issame,
                                                                       folds))
    e_second = dict(zip(second, e_occ))
    occ_scores = cosine(e_all[keys_a], np.stack([e_second[k] for k in keys_b]))
    assert occ["accuracy"] == pytest.approx(kfold_accuracy(occ_scores, issame, folds))
    assert telea["identity_similarity"] > occ["identity_similarity"]
    assert len(report["examples"]) == 2 and report["examples"][0].shape[1] == 6 * S + 10
    table = format_inpainting_table(report)
    assert "| Telea |" in table and "clean (no occlusion)" in table
    quality_only = evaluate_inpainting_pairs(pairs, source, {"OCC": methods["OCC"]}, seed=1)
    assert quality_only["methods"]["OCC"]["psnr"] == pytest.approx(occ["psnr"])
    assert "accuracy" not in quality_only["methods"]["OCC"]
    assert "accuracy" not in format_inpainting_table(quality_only)
    # several evaluators in one pass: each scored like the single recognizer above (the pooled
    # one again, and a second that sees the top-left quarter only)
    quarter = keras.Sequential([keras.Input((S, S, 3)), keras.layers.Cropping2D(((0, S // 2),
                                                                                 (0, S // 2))),
                                keras.layers.AveragePooling2D(4), keras.layers.Flatten()])
    multi = evaluate_inpainting_pairs(pairs, source, methods, seed=1, batch_size=3,
                                      recognizers={"pooled": recognizer, "quarter": quarter})
    assert "clean" not in multi and "accuracy" not in multi["methods"]["OCC"]
    pooled = multi["recognizers"]["pooled"]
    assert pooled["clean"]["accuracy"] == pytest.approx(report["clean"]["accuracy"])
    for name in methods:
        for key in ("accuracy", "identity_similarity"):
            assert pooled["methods"][name][key] == pytest.approx(report["methods"][name][key])
    q_occ = quarter(occ_faces.astype(np.float32)).numpy()
    q_true = quarter(np.stack([source.get(k)[0] for k in second]).astype(np.float32)).numpy()
    assert multi["recognizers"]["quarter"]["methods"]["OCC"]["identity_similarity"] == \
        pytest.approx(cosine(q_occ, q_true).mean(), abs=1e-5)
    # a second kind with the clean embeddings cached: the same figures as without the cache
    cache = {}
    evaluate_inpainting_pairs(pairs, source, methods, seed=1, recognizers={"q": quarter},
                              clean_cache=cache)
    assert len(cache) == 1
    cached = evaluate_inpainting_pairs(pairs, source, methods, kind="mask", seed=1,
                                       recognizers={"q": quarter}, clean_cache=cache)
    fresh = evaluate_inpainting_pairs(pairs, source, methods, kind="mask", seed=1,
                                      recognizers={"q": quarter})
    c, f = cached["recognizers"]["q"], fresh["recognizers"]["q"]
    assert c["clean"]["accuracy"] == f["clean"]["accuracy"]
    for name in methods:
        for key in ("accuracy", "identity_similarity"):
            assert c["methods"][name][key] == pytest.approx(f["methods"][name][key], abs=1e-6)


def _write_faces(root, rng, n=3):
    import cv2
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, face in enumerate(smooth_faces(n, rng)):
        p = root / f"face{i}.png"
        cv2.imwrite(str(p), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
        paths.append(p)
    return paths


def test_files_to_strips_and_metrics(tmp_path, rng):
    import cv2
    from occface.inpainting.face_files import (face_strip, faces_report, inpaint_faces,
                                               prepare_faces, read_mask)
    paths = _write_faces(tmp_path / "faces", rng)
    faces = prepare_faces(paths, S, occlusion="block", seed=2)
    again = prepare_faces(paths, S, occlusion="block", seed=2)
    assert all(np.array_equal(a["mask"], b["mask"]) for a, b in zip(faces, again))
    assert faces[0]["mask"].sum() == 12 * 12 and faces[0]["truth"].shape == (S, S, 3)
    inpaint_faces(faces, inpainting_methods())
    report = faces_report(faces)
    assert set(report) == {"OCC", "Telea", "NS"} and report["Telea"]["psnr"] > report["OCC"]["psnr"]
    assert face_strip(faces[0]).shape == (S + 16, 5 * S + 8, 3)  # input, 3 methods, truth
    # given masks: no ground truth, no metrics
    mask = np.zeros((64, 64), np.uint8)
    mask[10:30, 10:30] = 255
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", S), (cv2.resize(
        mask, (S, S), interpolation=cv2.INTER_NEAREST) > 0).astype(np.uint8))
    real = prepare_faces(paths[:1], S, mask_paths=[tmp_path / "m.png"])
    assert real[0]["truth"] is None
    assert faces_report(inpaint_faces(real, inpainting_methods())) == {}
    with pytest.raises(ValueError, match="1 images but 2 masks"):
        prepare_faces(paths[:1], S, mask_paths=[tmp_path / "m.png"] * 2)
    with pytest.raises(FileNotFoundError):
        read_mask(tmp_path / "nope.png", S)
