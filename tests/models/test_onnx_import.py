"""import_onnx: round trips through insightface-style ONNX graphs, errors, the real w600k_mbf."""
import pathlib

import keras
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from occface.models import build_mobilefacenet, build_recognizer, import_onnx
from occface.models.onnx_graph import detect_architecture, read_onnx_ops
from tests.models.onnx_writer import write_onnx

ort = pytest.importorskip("onnxruntime")


def _randomize_bn(model, rng):
    """Non-trivial BN statistics, so a folded or mis-assigned BN shows up in the outputs."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            new = []
            for v in layer.weights:
                if "variance" in v.path:
                    new.append(rng.uniform(0.5, 2.0, v.shape))
                elif "gamma" in v.path:
                    new.append(rng.uniform(0.5, 1.5, v.shape))
                else:
                    new.append(rng.normal(0.0, 0.1, v.shape))
            layer.set_weights(new)
        elif isinstance(layer, keras.layers.PReLU):
            layer.set_weights([rng.uniform(0.0, 0.5, layer.weights[0].shape)])


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: ((x - 127.5) / 127.5).transpose(0, 3, 1, 2)})[0]


CASES = {
    "ir18": lambda: build_recognizer(depth=18, width=8, variant="baseline",
                                     input_shape=(32, 32, 3), embedding_size=16),
    "ir34": lambda: build_recognizer(depth=34, width=4, variant="baseline",
                                     input_shape=(32, 32, 3), embedding_size=8),
    "mbf_fc": lambda: build_mobilefacenet(input_shape=(32, 32, 3), blocks=(1, 1, 1, 1), scale=1,
                                          embedding_size=16),
    "mbf_gdc": lambda: build_mobilefacenet(input_shape=(32, 32, 3), blocks=(2, 1, 2, 1),
                                           scale=1, head="gdc", embedding_size=16),
}


@pytest.mark.parametrize("fold_bn", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip(tmp_path, rng, case, fold_bn):
    model = CASES[case]()
    _randomize_bn(model, rng)
    x = rng.uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    want = model.predict(x, verbose=0)
    path = tmp_path / "m.onnx"
    write_onnx(model, path, fold_bn=fold_bn)
    np.testing.assert_allclose(_ort(path, x), want, atol=1e-4, rtol=1e-4)  # the writer is right
    imported = import_onnx(path)
    np.testing.assert_allclose(imported.predict(x, verbose=0), want, atol=1e-4, rtol=1e-4)
    args = imported.build_args
    for key in ("backbone", "depth", "width", "mbf_blocks", "mbf_scale", "mbf_head",
                "embedding_size", "input_shape"):
        if args["backbone"] == "iresnet" and key.startswith("mbf"):
            continue
        if args["backbone"] == "mobilefacenet" and key in ("depth", "width"):
            continue
        assert args[key] == model.build_args[key], key


def test_variant_attaches_around_imported_weights(tmp_path, rng):
    model = CASES["ir18"]()
    _randomize_bn(model, rng)
    path = tmp_path / "m.onnx"
    write_onnx(model, path, fold_bn=True)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    cd = import_onnx(path, variant="cd", lcd_min_rate=0.5, lcd_max_rate=0.5, seed=0)
    assert "stage3_lcd" in [layer.name for layer in cd.layers]
    np.testing.assert_allclose(cd.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)
    assert not np.allclose(cd(x, training=True), cd(x, training=False), atol=1e-3)


def _graph_with(nodes, inits, path):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        initializer=[onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])
    onnx.save(helper.make_model(graph), str(path))


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="ONNX file not found: .*nope.onnx"):
        import_onnx(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not an onnx model at all" * 10)
    with pytest.raises(ValueError, match=r"bad.onnx is not a readable ONNX model"):
        import_onnx(bad)
    relu = tmp_path / "relu.onnx"
    _graph_with([helper.make_node("Conv", ["x", "w"], ["c"], name="conv0", pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c"], ["r"], name="relu1")],
                {"w": np.zeros((4, 3, 3, 3), np.float32)}, relu)
    with pytest.raises(ValueError, match=r"op Relu \('relu1'\) is not part of a supported "
                                         r"architecture \(MobileFaceNet, IR-ResNet"):
        import_onnx(relu)


def test_unknown_depth_is_named(tmp_path, rng):
    model = CASES["ir18"]()
    path = tmp_path / "m.onnx"
    write_onnx(model, path)
    ops = read_onnx_ops(path)
    adds = [i for i, op in enumerate(ops) if op.kind == "add"]
    del ops[adds[0]]  # stage 1 now has one residual add: (1, 2, 2, 2) is no IR-ResNet
    with pytest.raises(ValueError, match=r"m: residual blocks per stage \[1, 2, 2, 2\] match no "
                                         r"IR-ResNet depth \(18: \(2, 2, 2, 2\)"):
        detect_architecture(ops, "m")


def test_real_w600k_mbf_matches_onnxruntime(data_root):
    """>= 200 real LFW faces aligned by YuNet: imported Keras vs onnxruntime, min cosine."""
    from occface.data import load_aligned_face
    path = pathlib.Path(data_root) / "models" / "arcface_mbf_w600k" / "w600k_mbf.onnx"
    files = sorted((pathlib.Path(data_root) / "lfw" / "lfw-deepfunneled").glob("*/*.jpg"))
    files = files[::len(files) // 210][:210]
    faces = np.stack([load_aligned_face(f)[0] for f in files]).astype(np.float32)
    model = import_onnx(path)
    assert model.build_args["mbf_blocks"] == [1, 4, 6, 2] and model.build_args["mbf_head"] == "fc"
    got = model.predict(faces, batch_size=70, verbose=0)
    ref = _ort(path, faces)
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert len(files) >= 200 and cos.min() >= 0.9999, cos.min()
