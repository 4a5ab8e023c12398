"""Occlusion fine-tuning of a pretrained recognizer by embedding distillation.

The recipe (one training step, readable top to bottom in :func:`distill_step`):

* the **teacher** is the pretrained model, frozen; its target is the embedding of the *clean*
  face;
* the **student** starts as a copy of it; it sees the face either clean or synthetically
  occluded (MaskTheFace mask, sunglasses, random block — ``occlusion_prob``) and, for the LCD
  arms, with :class:`~occface.layers.LCD` dropping whole channels of the tensor stage 4
  receives (``lcd_position="output"``);
* loss: ``1 − cos(student(view), teacher(clean face))`` averaged over the batch.

Stages 1–3 stay frozen and every BatchNorm stays in inference mode (its statistics are the
pretrained ones; imported weights may have them folded, see :mod:`occface.models.onnx_import`),
so the frozen trunk's stage-3 output of every view never changes: it is computed once per view
and kept in a float16 cache on disk (:class:`FeatureCache`). A training step then runs stage 4
and the head only, which is what makes a run fit in minutes on 2 CPU cores.

Data protocol (identities disjoint, test read once): training views come from LFW identities of
``pairs.txt`` folds ``train_folds`` plus every identity in no pair; the checkpoint is chosen on
fold ``val_fold``; :func:`occface.train.finetune_eval.evaluate_head` scores test folds, LFW
10-fold and RMFRD (never used for any choice).
"""

import dataclasses
import hashlib
import logging
import pathlib
import time

import numpy as np

from occface.choices import FINETUNE_ARMS
from occface.utils import ensure, ensure_each

log = logging.getLogger(__name__)

#: Synthetic occlusion kinds of the training views (occface.data.occlude).
TRAIN_KINDS = ("mask", "sunglasses", "block")
#: Arms of the fine-tuning study, named by :data:`occface.choices.FINETUNE_ARMS` in its order:
#: (synthetic occlusion probability, LCD on).
ARMS = dict(zip(FINETUNE_ARMS, (
    None,            # pretrained: no fine-tuning, the teacher itself
    (0.0, False),    # clean: fine-tuned on clean faces only
    (0.5, False),    # occlusion: + synthetic occlusion (the practitioners' alternative)
    (0.0, True),     # lcd: + LCD instead of occluded images
    (0.5, True),     # lcd_occlusion: + LCD + synthetic occlusion
), strict=True))


@dataclasses.dataclass
class FinetuneConfig:
    """Settings of one fine-tuning run (see the module docstring).

    ``split_layer`` is the stage-3 output (last residual add) of the imported model; everything
    after it trains. ``lcd_min_rate`` / ``lcd_max_rate`` bound LCD's per-sample drop ratio.
    """
    arm: str = "lcd_occlusion"
    seed: int = 0
    steps: int = 400
    batch_size: int = 64
    learning_rate: float = 1e-4
    warmup_steps: int = 20
    lcd_min_rate: float = 0.0
    lcd_max_rate: float = 0.6
    occlusion_prob: float = None  # default: the arm's
    eval_every: int = 100
    split_layer: str = "stage3_block6_add"

    def __post_init__(self):
        ensure(self.arm in FINETUNE_ARMS,
               f"arm must be one of {FINETUNE_ARMS}, got {self.arm!r}")
        if ARMS[self.arm] is not None and self.occlusion_prob is None:
            self.occlusion_prob = ARMS[self.arm][0]
        ensure_each(self, ("steps", "batch_size", "eval_every"),
                    lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                    "{key} must be a positive integer, got {value!r}")
        ensure(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate!r}")

    @property
    def lcd(self):
        return ARMS[self.arm] is not None and ARMS[self.arm][1]


def split_recognizer(model, layer_name):
    """``(trunk, head)`` with ``head(trunk(x)) == model(x)``, split after layer ``layer_name``.

    Parameters
    ----------
    model : keras.Model
        A functional recognizer, images ``(N, H, W, 3)`` → ``(N, D)``.
    layer_name : str
        The layer whose output the head takes (e.g. ``"stage3_block6_add"``).
    """
    import keras
    point = model.get_layer(layer_name).output
    return keras.Model(model.input, point, name="trunk"), keras.Model(point, model.output,
                                                                      name="head")


def freeze_batchnorm(model):
    """Put every BatchNorm of ``model`` in inference mode for good (``trainable = False``)."""
    import keras
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return model


class FeatureCache:
    """Frozen-trunk features of a list of views, float16 on disk, computed once.

    A *view* is ``(path, kind, seed)``: the aligned face at ``path`` occluded by ``kind``
    (``"none"`` = clean) with the per-image generator of
    :func:`occface.evaluation.occlusion.occlude_face` for ``seed``. The file name hashes the
    views and the trunk's identity (``model_id``), so a cache is never reused for another model
    or view list.

    Parameters
    ----------
    cache_dir : str or path
    trunk : keras.Model
        Images ``(N, 112, 112, 3)`` → features ``(N, h, w, c)``.
    model_id : str
        Names the trunk's weights (e.g. the ONNX file's sha256).
    """

    def __init__(self, cache_dir, trunk, model_id, batch_size=64):
        self.cache_dir = pathlib.Path(cache_dir)
        self.trunk = trunk
        self.model_id = model_id
        self.batch_size = batch_size
        self._fn = None

    def _file(self, name, views):
        h = hashlib.sha1(self.model_id.encode())
        for v in views:
            h.update(repr(tuple(v)).encode() + b"\0")
        return self.cache_dir / f"{name}_{h.hexdigest()[:16]}.npy"

    def features(self, name, views, load_face, progress=None):
        """``(len(views), h, w, c)`` float16 (memory-mapped) features of ``views``.

        ``load_face(path) -> (rgb uint8 (112, 112, 3), landmarks (5, 2))``.
        """
        import tensorflow as tf
        from occface.evaluation.occlusion import occlude_face
        path = self._file(name, views)
        if path.is_file():
            return np.load(path, mmap_mode="r")
        if self._fn is None:
            self._fn = tf.function(lambda x: self.trunk(x, training=False))
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        shape = tuple(int(d) for d in self.trunk.output.shape[1:])
        tmp = path.with_name(path.name + ".partial.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16,
                                        shape=(len(views),) + shape)
        for start in range(0, len(views), self.batch_size):
            batch = []
            for p, kind, seed in views[start:start + self.batch_size]:
                img, lmk = load_face(p)
                if kind != "none":
                    img, _ = occlude_face(img, lmk, kind, seed, key=p)
                batch.append(img)
            feats = self._fn(tf.constant(np.stack(batch).astype(np.float32)))
            out[start:start + len(batch)] = feats.numpy().astype(np.float16)
            if progress is not None:
                progress(len(batch))
        out.flush()
        del out
        tmp.replace(path)
        return np.load(path, mmap_mode="r")


def training_views(paths, seed=0, occluded_per_image=1, kinds=TRAIN_KINDS):
    """Clean views of every path plus ``occluded_per_image`` occluded ones of random kinds.

    Returns
    -------
    clean : list of (path, "none", 0)
    occluded : list of (path, kind, seed), ``occluded_per_image`` per path, in path order
    """
    rng = np.random.default_rng(seed)
    clean = [(p, "none", 0) for p in paths]
    occluded = []
    for p in paths:
        for k in range(occluded_per_image):
            occluded.append((p, kinds[int(rng.integers(len(kinds)))], 1000 + k))
    return clean, occluded


def cosine_distillation_loss(student, teacher):
    """``mean(1 − cos(student_i, teacher_i))`` for ``(N, D)`` embeddings (teacher constant)."""
    from keras import ops
    s = student / ops.maximum(ops.norm(student, axis=-1, keepdims=True), 1e-12)
    t = teacher / ops.maximum(ops.norm(teacher, axis=-1, keepdims=True), 1e-12)
    return ops.mean(1.0 - ops.sum(s * ops.stop_gradient(t), axis=-1))


def make_distill_step(head, optimizer):
    """The training step: ``step(features (B, h, w, c), targets (B, D)) -> loss``.

    ``head`` runs in training mode, so LCD drops channels (its BatchNorms are frozen); the
    targets are the teacher's embeddings of the clean faces.
    """
    import tensorflow as tf

    @tf.function
    def distill_step(features, targets):
        with tf.GradientTape() as tape:
            student = head(features, training=True)
            loss = cosine_distillation_loss(student, targets)
        grads = tape.gradient(loss, head.trainable_variables)
        optimizer.apply_gradients(zip(grads, head.trainable_variables))
        return loss

    return distill_step


def embed_features(head, features, batch_size=256):
    """Embeddings ``(N, D)`` float32 of cached features ``(N, h, w, c)`` (inference mode)."""
    import tensorflow as tf
    fn = getattr(head, "_occface_infer", None)
    if fn is None:
        fn = tf.function(lambda x: head(x, training=False))
        head._occface_infer = fn
    out = [fn(tf.constant(np.asarray(features[s:s + batch_size], np.float32))).numpy()
           for s in range(0, len(features), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, head.output.shape[-1]), np.float32)


def train_head(head, config, clean_feats, occluded_feats, targets, occluded_index, validate,
               log_fn=None):
    """Fine-tune ``head`` in place by distillation; returns the run's record.

    Parameters
    ----------
    head : keras.Model
        Stage 4 + embedding head (LCD inside for the LCD arms), BatchNorms frozen.
    config : FinetuneConfig
    clean_feats : array, (N, h, w, c)
        Cached clean trunk features of the training faces.
    occluded_feats : array, (M, h, w, c)
        Cached features of occluded views; ``occluded_index[m]`` is the face of view ``m``.
    targets : np.ndarray, (N, D)
        Teacher embeddings of the clean faces.
    validate : callable
        ``validate(head) -> float`` (higher is better), on the validation fold only.

    Returns
    -------
    dict
        ``losses`` (mean per ``eval_every`` steps), ``validation`` per checkpoint, the chosen
        ``best_step``, ``images_per_second`` of the training step and its wall time.
    """
    import keras
    rng = np.random.default_rng(config.seed)
    keras.utils.set_random_seed(config.seed)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, config.steps, alpha=0.0, warmup_target=config.learning_rate,
        warmup_steps=config.warmup_steps) if config.warmup_steps else config.learning_rate
    optimizer = keras.optimizers.Adam(schedule)
    step = make_distill_step(head, optimizer)
    n, m = len(clean_feats), len(occluded_feats)
    by_face = {}
    for j, i in enumerate(occluded_index):
        by_face.setdefault(int(i), []).append(j)
    faces_with_occ = np.array(sorted(by_face))
    record = {"losses": [], "validation": [], "steps": config.steps}
    best = (validate(head), 0)
    record["validation"].append({"step": 0, "score": best[0]})
    best_weights = [w.copy() for w in head.get_weights()]
    window, t_train, seen = [], 0.0, 0
    for s in range(1, config.steps + 1):
        faces = rng.integers(0, n, config.batch_size)
        use_occ = rng.random(config.batch_size) < config.occlusion_prob if m else \
            np.zeros(config.batch_size, bool)
        if use_occ.any():  # occluded views exist only for faces_with_occ
            faces[use_occ] = faces_with_occ[rng.integers(0, len(faces_with_occ),
                                                         use_occ.sum())]
        batch = np.empty((config.batch_size,) + clean_feats.shape[1:], np.float32)
        for b, (i, occ) in enumerate(zip(faces, use_occ)):
            batch[b] = occluded_feats[by_face[int(i)][rng.integers(len(by_face[int(i)]))]] \
                if occ else clean_feats[i]
        t0 = time.perf_counter()
        loss = float(step(batch, targets[faces]))
        t_train += time.perf_counter() - t0
        seen += config.batch_size
        window.append(loss)
        if s % config.eval_every == 0 or s == config.steps:
            score = validate(head)
            record["losses"].append({"step": s, "loss": float(np.mean(window))})
            record["validation"].append({"step": s, "score": score})
            window = []
            if log_fn:
                log_fn(f"step {s}: loss {record['losses'][-1]['loss']:.4f}, "
                       f"validation {score:.4f}")
            if score > best[0]:
                best = (score, s)
                best_weights = [w.copy() for w in head.get_weights()]
    head.set_weights(best_weights)
    record.update(best_step=best[1], best_validation=best[0],
                  train_step_seconds=t_train,
                  images_per_second=seen / t_train if t_train else None)
    return record
