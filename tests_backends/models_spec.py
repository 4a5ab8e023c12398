"""The small models of the cross-backend check, built the same way under every backend."""
import keras
import numpy as np

from occface.layers import (LCD, SAM, ArcFace, Cutout, DropBlock, ResponseDecorrelation,
                            WeightedChannelDropout)
from occface.losses import FilterOrthogonalityRegularizer
from occface.models import build_mobilefacenet, build_recognizer

TINY_RECOGNIZER = dict(depth=18, width=4, variant="lcd", input_shape=(32, 32, 3),
                       embedding_size=8, sam_reduction=2, seed=0)
TINY_MBF = dict(variant="lcd", input_shape=(32, 32, 3), blocks=(1, 1, 2, 1), scale=1,
                embedding_size=8, sam_reduction=4, seed=0)


def layers_model():
    """Every occface layer in one graph: images (N, 8, 8, 3), labels (N,) → logits, emb, θ."""
    images = keras.Input((8, 8, 3), name="images")
    labels = keras.Input((), dtype="int32", name="labels")
    x = Cutout(size=3, seed=0)(images)
    x = keras.layers.Conv2D(8, 3, padding="same",
                            kernel_regularizer=FilterOrthogonalityRegularizer(10.0))(x)
    x = ResponseDecorrelation(weight=0.5)(x)
    x = LCD(seed=1)(x)
    x = DropBlock(block_size=2, rate=0.1, seed=2)(x)
    x = WeightedChannelDropout(seed=3)(x)
    x, theta = SAM(reduction=2, return_attention=True)(x)
    emb = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    logits = ArcFace(5, scale=8.0)([emb, labels])
    return keras.Model([images, labels], [logits, emb, theta])


def randomize(model, seed):
    """Non-default values in every weight (positive ones for BN variances), deterministic."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        shape = tuple(v.shape)
        if "moving_variance" in v.path:
            v.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        elif "seed_generator" in v.path or "int" in str(v.dtype):
            continue
        else:
            v.assign(rng.normal(scale=0.2, size=shape).astype("float32"))


NAMES = ("layers", "recognizer", "mobilefacenet")


def build_all(names=NAMES):
    """``{name: (model, inputs)}``: the layers model, a tiny IR-18 LCD, a tiny MobileFaceNet.

    Inputs: images ``(3, 8, 8, 3)`` + labels ``(3,)`` for the layers model, faces
    ``(3, 32, 32, 3)`` in [0, 255] for the recognizers; weights from fixed seeds.
    """
    rng = np.random.default_rng(1)
    layer_inputs = [rng.uniform(0, 255, (3, 8, 8, 3)).astype("float32"),
                    np.array([0, 2, 4], "int32")]
    faces = rng.uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    builders = {
        "layers": (layers_model, layer_inputs, 2),
        "recognizer": (lambda: build_recognizer(**TINY_RECOGNIZER), faces, 3),
        "mobilefacenet": (lambda: build_mobilefacenet(**TINY_MBF), faces, 4),
    }
    out = {}
    for name in names:
        build, inputs, seed = builders[name]
        model = build()
        randomize(model, seed)
        out[name] = (model, inputs)
    return out
