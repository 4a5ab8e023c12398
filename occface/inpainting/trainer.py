"""Training ID-GAN: generator, global and local WGAN-GP critics, structure and identity terms.

:func:`train_idgan` runs a custom loop under ``tf.distribute`` (one device, local devices or
several machines) with the package's shared machinery (:mod:`occface.train`): checkpoints with
exact resume (networks, optimizers, step, data iterator), the ``model_dir`` config guard, the
non-finite guard, TensorBoard scalars and image grids, a progress callback.

Stages
    1. ``warmup_steps`` reconstruction-only steps (generator only; GLCIC's first phase).
    2. Adversarial steps: ``critic_steps`` critic updates (each on a fresh batch), then one
       generator update on the last batch with all terms::

           L_G = L_rec + w_g·(−D_g(X̂)) + w_l·(−D_l(patch(X̂))) + λ_S·L_S + λ_R·(L_inst + L_div)
           L_D = Σ_{g,l} [D(fake) − D(real) + GP]

Loss reduction
    Terms are per-image sums over pixels / feature elements (``loss_reduction="sum"``), averaged
    over the global batch; the paper's weights (300, 300, 0.05, 2e-4) are calibrated for sums
    (see :mod:`occface.inpainting.losses`). ``"mean"`` is available for experiments.

Distribution
    Every replica computes its per-sample terms and divides their sum by the *global* batch size;
    the all-reduced sum of gradients is then the single-device gradient. The interpolation
    coefficients ε of the gradient penalty are drawn for the global batch from
    ``(seed, step)`` with stateless RNG and sliced per replica, so a run is reproducible and
    resumes exactly, and a multi-replica run draws the same ε as a single-device one.

Data
    ``(truth float32 (B, S, S, 3) in [0, 255], labels int32 (B,), masks float32 (B, S, S, 1))``:
    :func:`occface.data.training_dataset` (flip, rotation ±15°, shift) on the training identities,
    plus hole masks drawn per image by :func:`hole_mask_fn` (default: one 48×48 block at a random
    position on 128×128 faces, i.e. ``0.375·S``; other kinds via :class:`occface.data.OcclusionTF`).

``model_dir`` layout::

    config.json            the run's settings (+ num_classes); a different config is refused
    checkpoints/ckpt-N.*   generator, critics, optimizers, step, data iterator, identity centroids
    train/                 TensorBoard: loss terms, Wasserstein estimates, images/s, image grids
    parser.keras           the face parser used by the structure loss (trained here if not given)
    generator.keras        the final generator ([image, mask] -> completed image)
    training.json          run metadata and final scalars
"""

import csv
import dataclasses
import logging
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from occface.inpainting.critics import (build_global_critic, build_local_critic, crop_hole_patch,
                                        hole_boxes)
from occface.inpainting.generator import build_generator, generator_with_raw_output
from occface.inpainting.identity import RecognizerFeatures, identity_centroids
from occface.inpainting.losses import (discounted_reconstruction_loss, gradient_penalty,
                                       identity_diversity_loss, instance_loss,
                                       spatial_discount_weights, structure_loss)
from occface.train import distribute as dist
from occface.train.checkpoint import CheckpointKeeper, check_config, save_keras_atomic
from occface.train.loop import NonFiniteGuard, SummaryWriter, TrainingLoop
from occface.utils import run_metadata, write_json

log = logging.getLogger(__name__)

RESUMABLE_KEYS = ("checkpoint_interval", "keep_checkpoints", "summary_interval", "image_interval",
                  "preview_images", "max_nonfinite_steps", "model_dir")
PIXEL_SCALE = 127.5  # the networks see x / 127.5 - 1
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff")


@dataclasses.dataclass
class IDGANConfig:
    """Every setting of an ID-GAN training run (stored as ``model_dir/config.json``).

    Data
        ``data_dir`` (source for :func:`occface.data.training_dataset`, e.g. an aligned LFW tree
        from ``tools/prepare_dataset.py``), ``image_size`` (128 paper, 112, 64 for CPU runs),
        ``augment``, ``hole_kinds`` (:data:`occface.data.KINDS`; default ``("block",)``),
        ``hole_size`` (block side, 0 = ``0.375·S`` = 48 at 128), ``lfw_pairs`` + ``train_folds`` +
        ``include_unpaired`` + ``min_images_per_identity`` (train only on identities disjoint from
        the held-out folds).
    Networks
        ``gen_width``, ``dilation_rates``, ``critic_width``, ``critic_max_width``,
        ``critic_norm`` (layer|none), ``local_patch`` (side of the local critic's patch, 0 = S/2),
        ``init_generator`` (a ``generator.keras`` or ID-GAN ``model_dir`` whose weights start a
        new run, e.g. a shared reconstruction-only warm-up for the w/oID and wID runs; ignored
        when resuming).
    Losses
        ``loss_reduction`` (sum|mean), ``gamma`` (spatial discount), ``rec_hole_weight``,
        ``rec_valid_weight``, ``adv_global_weight`` and ``adv_local_weight`` (300 each),
        ``gp_weight`` (λ = 10), ``structure_weight`` (λ_S = 0.05; 0 disables the parser),
        ``structure_target`` (hard|soft), ``identity_weight`` (λ_R = 2e-4; 0 or no recognizer =
        "w/oID"), ``alpha_low`` (0.5), ``alpha_high`` (0.05), ``beta`` (0.5), ``id_normalize``
        (L2-normalise R_h features for the diversity term and the centroids; the package scores
        with cosine similarity).
    Frozen networks
        ``recognizer_path`` (``.keras`` file, a training ``model_dir`` with ``model.keras``, or a
        SavedModel directory — the latter gives the high-level term only),
        ``recognizer_low_layer`` ("auto" = last stage-2 block, "" = none), ``parser_path`` ("" =
        train the default landmark parser here: ``parser_width``, ``parser_epochs``,
        ``parser_max_images``, ``parser_batch_size``, ``parser_learning_rate``),
        ``centroid_batches`` (batches of clean training faces for the centroids, 0 = all).
    Optimisation
        ``batch_size`` (global), ``steps``, ``warmup_steps`` (reconstruction only),
        ``critic_steps`` (critic updates per generator update), ``g_learning_rate`` /
        ``g_beta1`` / ``g_beta2`` (Adam 1e-4, 0.9, 0.999), ``d_learning_rate`` / ``d_beta1`` /
        ``d_beta2`` (Adam 1e-4, 0.5, 0.9).
    System and bookkeeping
        ``strategy``, ``seed``, ``deterministic``, ``model_dir``, ``checkpoint_interval``,
        ``keep_checkpoints``, ``summary_interval``, ``image_interval``, ``preview_images``,
        ``max_nonfinite_steps``.
    """

    # data
    data_dir: str = ""
    image_size: int = 128
    augment: bool = True
    hole_kinds: tuple = ("block",)
    hole_size: int = 0
    lfw_pairs: str = ""
    train_folds: tuple = ()
    include_unpaired: bool = True
    min_images_per_identity: int = 1
    # networks
    gen_width: int = 32
    dilation_rates: tuple = (2, 4, 8, 16)
    critic_width: int = 32
    critic_max_width: int = 256
    critic_norm: str = "layer"
    local_patch: int = 0
    init_generator: str = ""
    # losses
    loss_reduction: str = "sum"
    gamma: float = 0.99
    rec_hole_weight: float = 1.0
    rec_valid_weight: float = 1.0
    adv_global_weight: float = 300.0
    adv_local_weight: float = 300.0
    gp_weight: float = 10.0
    structure_weight: float = 0.05
    structure_target: str = "hard"
    identity_weight: float = 2e-4
    alpha_low: float = 0.5
    alpha_high: float = 0.05
    beta: float = 0.5
    id_normalize: bool = True
    # frozen networks
    recognizer_path: str = ""
    recognizer_low_layer: str = "auto"
    parser_path: str = ""
    parser_width: int = 16
    parser_epochs: int = 10
    parser_max_images: int = 2000
    parser_batch_size: int = 16
    parser_learning_rate: float = 1e-3
    centroid_batches: int = 0
    # optimisation
    batch_size: int = 16
    steps: int = 10000
    warmup_steps: int = 2000
    critic_steps: int = 1
    g_learning_rate: float = 1e-4
    g_beta1: float = 0.9
    g_beta2: float = 0.999
    d_learning_rate: float = 1e-4
    d_beta1: float = 0.5
    d_beta2: float = 0.9
    # system / bookkeeping
    strategy: str = "default"
    seed: int = 0
    deterministic: bool = False
    model_dir: str = ""
    checkpoint_interval: int = 1000
    keep_checkpoints: int = 3
    summary_interval: int = 100
    image_interval: int = 500
    preview_images: int = 6
    max_nonfinite_steps: int = 20

    def __post_init__(self):
        for key in ("hole_kinds", "train_folds", "dilation_rates"):
            value = getattr(self, key)
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            setattr(self, key, tuple(value))
        self.train_folds = tuple(int(v) for v in self.train_folds)
        self.dilation_rates = tuple(int(v) for v in self.dilation_rates)
        self.hole_kinds = tuple(str(v) for v in self.hole_kinds)

    def to_dict(self):
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown ID-GAN training settings: {', '.join(unknown)}")
        return cls(**d)

    @property
    def patch_size(self):
        return int(self.local_patch) or self.image_size // 2

    @property
    def uses_identity(self):
        return self.identity_weight > 0 and bool(self.recognizer_path)

    def validate(self):
        """Raise ``ValueError`` naming the first invalid setting."""
        from occface.data.occlusion import KINDS
        _check(self.image_size >= 16 and self.image_size % 4 == 0,
               f"image_size must be a multiple of 4 and >= 16, got {self.image_size}")
        _check(self.hole_kinds and all(k in KINDS for k in self.hole_kinds),
               f"hole_kinds must be among {', '.join(KINDS)}, got {list(self.hole_kinds)}")
        _check(0 <= self.hole_size <= self.image_size,
               f"hole_size must be in [0, image_size], got {self.hole_size}")
        _check(4 <= self.patch_size <= self.image_size,
               f"local_patch must be in [4, image_size], got {self.patch_size}")
        _check(self.gen_width >= 2 and self.critic_width >= 1 and self.parser_width >= 1,
               "network widths must be positive (gen_width >= 2)")
        _check(self.critic_norm in ("layer", "none"),
               f"critic_norm must be 'layer' or 'none', got {self.critic_norm!r}")
        _check(self.loss_reduction in ("sum", "mean"),
               f"loss_reduction must be 'sum' or 'mean', got {self.loss_reduction!r}")
        _check(self.structure_target in ("hard", "soft"),
               f"structure_target must be 'hard' or 'soft', got {self.structure_target!r}")
        _check(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        for key in ("rec_hole_weight", "rec_valid_weight", "adv_global_weight",
                    "adv_local_weight", "gp_weight", "structure_weight", "identity_weight",
                    "alpha_low", "alpha_high", "beta"):
            _check(getattr(self, key) >= 0, f"{key} must be >= 0, got {getattr(self, key)}")
        _check(self.batch_size >= 1, f"batch_size must be positive, got {self.batch_size}")
        _check(self.steps >= 1, f"steps must be positive, got {self.steps}")
        _check(0 <= self.warmup_steps <= self.steps,
               f"warmup_steps must be in [0, steps], got {self.warmup_steps}")
        _check(self.critic_steps >= 1, f"critic_steps must be >= 1, got {self.critic_steps}")
        _check(self.g_learning_rate > 0 and self.d_learning_rate > 0,
               "learning rates must be positive")
        for key in ("g_beta1", "g_beta2", "d_beta1", "d_beta2"):
            _check(0 <= getattr(self, key) < 1, f"{key} must be in [0, 1)")
        _check(self.strategy in dist.STRATEGIES,
               f"strategy must be one of {', '.join(dist.STRATEGIES)}, got {self.strategy!r}")
        _check(self.checkpoint_interval >= 0 and self.summary_interval >= 0
               and self.image_interval >= 0, "intervals must be >= 0")
        _check(self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1")
        _check(self.max_nonfinite_steps >= 1, "max_nonfinite_steps must be >= 1")
        _check(self.parser_epochs >= 0 and self.parser_max_images >= 1
               and self.parser_batch_size >= 1, "parser settings must be positive")
        _check(self.centroid_batches >= 0, "centroid_batches must be >= 0")
        _check(not (self.train_folds and not self.lfw_pairs),
               "train_folds needs lfw_pairs (the pairs.txt that defines the folds)")


def _check(ok, message):
    if not ok:
        raise ValueError(message)


# --------------------------------------------------------------------------------------------
# networks and frozen models


def build_networks(config):
    """``(generator, global_critic, local_critic)`` for ``config`` (call under the strategy scope)."""
    generator = build_generator(config.image_size, width=config.gen_width,
                                dilation_rates=config.dilation_rates)
    global_critic = build_global_critic(config.image_size, width=config.critic_width,
                                        max_width=config.critic_max_width,
                                        norm=config.critic_norm)
    local_critic = build_local_critic(config.patch_size, width=config.critic_width,
                                      max_width=config.critic_max_width, norm=config.critic_norm)
    return generator, global_critic, local_critic


def load_recognizer(path):
    """Load a frozen recognizer for the identity terms.

    Parameters
    ----------
    path : str or path
        A ``.keras`` file, a training ``model_dir`` holding ``model.keras``, or a SavedModel
        directory or versioned export base (latest version). An occface export with a uint8
        ``embed`` signature is rebuilt as its Keras recognizer
        (:func:`occface.models.recognizer_from_export`: low and high features, differentiable);
        any other SavedModel's float ``embed`` / ``serving_default`` signature gives high-level
        features only.

    Returns
    -------
    keras.Model or callable
    """
    from occface.evaluation.embedding import _register_custom_objects
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"recognizer not found: {path}")
    _register_custom_objects()
    if path.is_dir() and (path / "model.keras").is_file():
        path = path / "model.keras"
    if path.is_file():
        if path.suffix != ".keras":
            raise ValueError(f"recognizer file must be a .keras model, got {path}")
        return keras.saving.load_model(path, compile=False)
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        from occface.export import existing_versions
        versions = existing_versions(path)
        if versions:  # a TF Serving base directory: the newest version
            path = path / str(versions[-1])
    if (path / "saved_model.pb").is_file():
        loaded = tf.saved_model.load(str(path))
        for name in ("embed", "serving_default"):
            if name not in loaded.signatures:
                continue
            signature = loaded.signatures[name]
            specs = signature.structured_input_signature[1]
            key = sorted(specs)[0]
            if not specs[key].dtype.is_floating:
                # occface exports serve uint8 faces (no gradient): rebuild the Keras recognizer
                # from the variables they track (needs 'recognizer_config' in the metadata)
                from occface.models.restore import recognizer_from_export
                try:
                    return recognizer_from_export(path)
                except ValueError as err:
                    raise ValueError(
                        f"SavedModel {path} signature {name!r} takes {specs[key].dtype.name} "
                        "images: the identity losses need gradients through the recognizer, "
                        f"and rebuilding the Keras model failed ({err}); give a float-input "
                        "signature or the .keras recognizer") from err

            def call(images, _sig=signature, _key=key, _dtype=specs[key].dtype):
                return _sig(**{_key: tf.cast(images, _dtype)})
            call.saved_model = loaded  # keep the trackables alive
            return call
        raise ValueError(f"SavedModel {path} has no 'embed' or 'serving_default' signature")
    raise ValueError(f"{path} is neither a .keras file, a model_dir with model.keras, nor a "
                     "SavedModel directory")


def load_faces_with_landmarks(data_dir, image_size, identities=None, max_images=None, seed=0):
    """Aligned faces and their five landmarks from a prepared image tree (for the parser).

    Uses ``records.csv`` of ``tools/prepare_dataset.py`` (detected landmarks mapped into the
    aligned crop; faces without a detection are skipped). Without it, every image of the
    identity-per-folder tree is used with the alignment template's landmarks.

    Parameters
    ----------
    data_dir : path
    image_size : int
        Faces are resized to this side (landmarks scaled accordingly).
    identities : collection of str, optional
        Keep only these identity folders.
    max_images : int, optional
        Random subset of at most this many faces (``seed``).

    Returns
    -------
    images : (N, S, S, 3) uint8
    landmarks : (N, 5, 2) float32
    """
    import cv2
    from occface.data.alignment import read_image, template_landmarks
    data_dir = pathlib.Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"face directory not found: {data_dir}")
    keep = None if identities is None else set(identities)
    entries = []  # (path, landmarks or None)
    records = data_dir / "records.csv"
    if records.is_file():
        with open(records, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("found", "1") != "1" or not row.get("file"):
                    continue
                ident = pathlib.PurePosixPath(row["file"]).parts[0]
                if keep is not None and ident not in keep:
                    continue
                pts = np.array([[float(row[f"x{k}"]), float(row[f"y{k}"])] for k in range(5)])
                entries.append((data_dir / row["file"], pts))
    else:
        for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
            if keep is not None and folder.name not in keep:
                continue
            for p in sorted(folder.iterdir()):
                if p.suffix.lower() in _IMAGE_EXTENSIONS:
                    entries.append((p, None))
    if not entries:
        raise ValueError(f"no faces found in {data_dir}")
    rng = np.random.default_rng(seed)
    if max_images is not None and len(entries) > max_images:
        picked = rng.choice(len(entries), size=int(max_images), replace=False)
        entries = [entries[i] for i in sorted(picked)]
    images, landmarks = [], []
    for path, pts in entries:
        bgr = read_image(path)
        h, w = bgr.shape[:2]
        if pts is None:
            pts = template_landmarks((h, w)).astype(np.float64)
        if (h, w) != (image_size, image_size):
            bgr = cv2.resize(bgr, (image_size, image_size), interpolation=cv2.INTER_AREA)
            pts = pts * np.array([image_size / w, image_size / h])
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        landmarks.append(pts)
    return np.stack(images), np.stack(landmarks).astype(np.float32)


def prepare_parser(config, model_dir, identities=None, is_chief=True):
    """The face parser of the structure loss: loaded, or trained on landmark labels and saved.

    ``config.parser_path`` if set; else ``model_dir/parser.keras`` if an earlier run of this
    ``model_dir`` made one; else a :func:`~occface.inpainting.build_face_parser` trained with
    :func:`~occface.inpainting.train_face_parser` on up to ``parser_max_images`` training faces
    (landmarks from ``records.csv``), saved to ``model_dir/parser.keras`` by the chief.
    """
    from occface.inpainting.parsing import build_face_parser, train_face_parser
    from occface.evaluation.embedding import _register_custom_objects
    _register_custom_objects()
    own = pathlib.Path(model_dir) / "parser.keras"
    path = pathlib.Path(config.parser_path) if config.parser_path else own
    if path.is_file():
        parser = keras.saving.load_model(path, compile=False)
        log.info("face parser loaded from %s", path)
    elif config.parser_path:
        raise FileNotFoundError(f"face parser not found: {config.parser_path}")
    else:
        if not config.data_dir:
            raise ValueError("no parser_path and no data_dir to train the default parser on")
        images, landmarks = load_faces_with_landmarks(
            config.data_dir, config.image_size, identities=identities,
            max_images=config.parser_max_images, seed=config.seed)
        keras.utils.set_random_seed(config.seed + 17)
        parser = build_face_parser(config.image_size, width=config.parser_width)
        history = train_face_parser(parser, images, landmarks, epochs=config.parser_epochs,
                                    batch_size=config.parser_batch_size,
                                    learning_rate=config.parser_learning_rate,
                                    seed=config.seed)
        log.info("face parser trained on %d faces: %s", len(images), history)
        if is_chief:
            save_keras_atomic(parser, own)
    shape = parser.input_shape
    if tuple(shape[1:3]) != (config.image_size, config.image_size):
        raise ValueError(f"face parser takes {shape[1:3]} images, the run uses "
                         f"{config.image_size}x{config.image_size}")
    parser.trainable = False
    return parser


# --------------------------------------------------------------------------------------------
# data


def hole_mask_fn(config):
    """``fn(seed int64 (2,)) -> float32 (S, S, 1)`` drawing one hole mask (1 = hole), stateless.

    One of ``config.hole_kinds`` is chosen uniformly per image: ``"block"`` is a square of side
    ``config.hole_size`` (0 = ``round(0.375·S)``, 48 at 128 as in the paper) at a uniformly random
    position inside the image; the other kinds are the fixed-position masks of
    :class:`occface.data.OcclusionTF` on the alignment template.
    """
    from occface.data.occlusion import OcclusionTF
    size = int(config.image_size)
    side = int(config.hole_size) or int(round(0.375 * size))
    kinds = tuple(config.hole_kinds)
    others = tuple(k for k in kinds if k != "block")
    occ = OcclusionTF(others, size) if others else None
    rows = tf.range(size)[:, None]
    cols = tf.range(size)[None, :]

    def block(seed):
        pos = tf.random.stateless_uniform([2], seed, 0, size - side + 1, dtype=tf.int32)
        inside = ((rows >= pos[0]) & (rows < pos[0] + side) & (cols >= pos[1])
                  & (cols < pos[1] + side))
        return tf.cast(inside, tf.float32)[..., None]

    def fn(seed):
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
        if occ is None:
            return block(seeds[0])
        if "block" not in kinds:
            return occ(tf.zeros([size, size, 3]), seeds[1])[1]
        choice = tf.random.stateless_uniform([], seeds[2], 0, len(kinds), dtype=tf.int32)
        return tf.cond(tf.equal(choice, kinds.index("block")), lambda: block(seeds[0]),
                       lambda: occ(tf.zeros([size, size, 3]), seeds[1])[1])
    return fn


def add_hole_masks(dataset, config, seed):
    """Map ``(images, labels)`` batches to ``(images, labels, masks)`` with fresh hole masks.

    Each image's mask comes from :func:`hole_mask_fn` with the stateless seed ``(seed, index of
    the image in the stream)``, so it is reproducible and checkpoint-safe. The images stay
    un-occluded (they are the ground truth; the generator ignores the hole's content anyway).
    """
    draw = hole_mask_fn(config)
    batch = int(dataset.element_spec[0].shape[0])

    def add(k, element):
        images, labels = element[0], element[1]
        base = tf.cast(k, tf.int64) * batch
        seeds = tf.stack([tf.fill([batch], tf.constant(seed, tf.int64)),
                          base + tf.range(batch, dtype=tf.int64)], axis=1)
        masks = tf.map_fn(draw, seeds, fn_output_signature=tf.TensorSpec(
            [config.image_size, config.image_size, 1], tf.float32))
        return images, tf.cast(labels, tf.int32), masks
    return dataset.enumerate().map(add, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def training_identities(config):
    """Training identity names (disjoint from the held-out LFW folds), or None for all."""
    import occface.data as occdata
    if not config.train_folds:
        return None
    pairs = pathlib.Path(config.lfw_pairs)
    if not pairs.is_file():
        raise FileNotFoundError(f"LFW pairs file not found: {pairs}")
    identities = occdata.lfw_training_identities(
        config.data_dir, folds=config.train_folds, min_images=config.min_images_per_identity,
        pairs_file=pairs.resolve(), include_unpaired=config.include_unpaired)
    # Hidden folders (e.g. tools/prepare_dataset.py's .occface_prepare state) are not people.
    identities = [name for name in identities if not name.startswith(".")]
    if not identities:
        raise ValueError(f"no identity of folds {list(config.train_folds)} has at least "
                         f"{config.min_images_per_identity} images in {config.data_dir}")
    return identities


def training_data(config, per_worker_batch, seed, identities=None):
    """``(dataset, num_classes)``: augmented training faces with hole masks."""
    import occface.data as occdata
    if not config.data_dir:
        raise ValueError("no training data: set data_dir")
    if not pathlib.Path(config.data_dir).exists():
        raise FileNotFoundError(f"training data not found: {config.data_dir}")
    dataset, num_classes = occdata.training_dataset(
        config.data_dir, per_worker_batch, config.image_size, augment=config.augment, seed=seed,
        identities=identities)
    if not num_classes:
        raise ValueError(f"empty training set: no identities found in {config.data_dir}")
    return add_hole_masks(dataset, config, seed + 1), int(num_classes)


def centroid_data(config, identities=None, batch_size=64):
    """Clean (un-augmented, single pass) training faces ``(images, labels)`` for the centroids."""
    import occface.data as occdata
    dataset, _ = occdata.training_dataset(
        config.data_dir, batch_size, config.image_size, augment=False, seed=config.seed,
        identities=identities, repeat=False, drop_remainder=False)
    return dataset


# --------------------------------------------------------------------------------------------
# steps


class IDGANSteps:
    """The distributed warm-up and adversarial steps (``tf.function`` s with no arguments).

    Parameters
    ----------
    strategy : tf.distribute.Strategy
    config : IDGANConfig
    generator, global_critic, local_critic : keras.Model
    g_optimizer, d_optimizer : keras optimizers (built on the generator / both critics)
    inputs : ShardedInput
        Yields ``(truth, labels, masks)`` per replica.
    step : tf.Variable
        The loop's step counter (seeds the gradient-penalty ε).
    parser : callable or None
        Frozen face parser (structure loss), or None.
    features : RecognizerFeatures or None
        Frozen recognizer (identity terms), or None.
    centroids : tf.Variable (C, D) or None
        Identity centroids of the training identities.
    """

    def __init__(self, strategy, config, generator, global_critic, local_critic, g_optimizer,
                 d_optimizer, inputs, step, parser=None, features=None, centroids=None):
        self.strategy = strategy
        self.config = config
        self.generator = generator
        self.both = generator_with_raw_output(generator)
        self.global_critic = global_critic
        self.local_critic = local_critic
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.inputs = inputs
        self.step = step
        self.parser = parser if config.structure_weight > 0 else None
        self.features = features if config.identity_weight > 0 else None
        self.centroids = centroids
        self.global_batch = int(config.batch_size)
        self.num_replicas = strategy.num_replicas_in_sync
        self.g_vars = list(generator.trainable_variables)
        self.d_vars = list(global_critic.trainable_variables) + list(
            local_critic.trainable_variables)
        # No autograph: the steps only branch on Python values (and converting Keras code is slow).
        self.warmup = tf.function(self._warmup, autograph=False)
        self.adversarial = tf.function(self._adversarial, autograph=False)

    # -- per-replica pieces ---------------------------------------------------------------------

    def _epsilon(self, offset):
        """This replica's slice of the global batch's ε ~ U[0, 1), from (seed, step, offset)."""
        ctx = tf.distribute.get_replica_context()
        rid = ctx.replica_id_in_sync_group if ctx is not None else 0
        seed = tf.stack([tf.constant(self.config.seed, tf.int64),
                         tf.cast(self.step, tf.int64) * 16 + offset])
        full = tf.random.stateless_uniform([self.global_batch], seed)
        b = self.global_batch // self.num_replicas
        rid = tf.cast(rid, tf.int32)
        return full[rid * b:(rid + 1) * b]

    def _generator_terms(self, truth, labels, masks, adversarial):
        cfg = self.config
        zero = tf.zeros([tf.shape(truth)[0]], tf.float32)
        with tf.GradientTape() as tape:
            completed, raw = self.both([truth, masks], training=True)
            discount = spatial_discount_weights(masks, cfg.gamma)
            rec = discounted_reconstruction_loss(
                raw, truth, masks, discount=discount, hole_weight=cfg.rec_hole_weight,
                valid_weight=cfg.rec_valid_weight, reduction=cfg.loss_reduction, reduce=False)
            adv_g = adv_l = struct = inst = div = zero
            if adversarial:
                adv_g = -tf.reshape(self.global_critic(completed, training=True), [-1])
                boxes = hole_boxes(masks)
                patch = crop_hole_patch(completed, boxes, cfg.patch_size)
                adv_l = -tf.reshape(self.local_critic(patch, training=True), [-1])
                if self.parser is not None:
                    struct = structure_loss(_frozen(self.parser), completed,
                                            truth, target=cfg.structure_target,
                                            reduction=cfg.loss_reduction, reduce=False)
                if self.features is not None:
                    low_f, high_f = self.features(completed)
                    low_r, high_r = self.features(truth)
                    inst = instance_loss(low_f, low_r, high_f, high_r, alpha_low=cfg.alpha_low,
                                         alpha_high=cfg.alpha_high, reduction=cfg.loss_reduction,
                                         reduce=False)
                    if cfg.id_normalize:
                        high_f = tf.math.l2_normalize(high_f, axis=-1)
                        high_r = tf.math.l2_normalize(high_r, axis=-1)
                    div = identity_diversity_loss(high_f, high_r, self.centroids, beta=cfg.beta,
                                                  labels=labels, reduce=False)
            per_sample = (rec + cfg.adv_global_weight * adv_g + cfg.adv_local_weight * adv_l
                          + cfg.structure_weight * struct + cfg.identity_weight * (inst + div))
            loss = tf.reduce_sum(per_sample) / float(self.global_batch)
        grads = tape.gradient(loss, self.g_vars)
        n = float(self.global_batch)
        terms = [loss] + [tf.reduce_sum(t) / n for t in (rec, adv_g, adv_l, struct, inst, div)]
        return grads, terms, completed

    def _critic_terms(self, truth, masks, offset):
        cfg = self.config
        completed = tf.stop_gradient(self.generator([truth, masks], training=True))
        boxes = hole_boxes(masks)
        real_patch = crop_hole_patch(truth, boxes, cfg.patch_size)
        fake_patch = crop_hole_patch(completed, boxes, cfg.patch_size)
        eps_g = self._epsilon(2 * offset)
        eps_l = self._epsilon(2 * offset + 1)
        with tf.GradientTape() as tape:
            real_g = tf.reshape(self.global_critic(truth, training=True), [-1])
            fake_g = tf.reshape(self.global_critic(completed, training=True), [-1])
            real_l = tf.reshape(self.local_critic(real_patch, training=True), [-1])
            fake_l = tf.reshape(self.local_critic(fake_patch, training=True), [-1])
            gp_g = gradient_penalty(lambda x: self.global_critic(x, training=True), truth,
                                    completed, weight=cfg.gp_weight, epsilon=eps_g,
                                    input_scale=PIXEL_SCALE, reduce=False)
            gp_l = gradient_penalty(lambda x: self.local_critic(x, training=True), real_patch,
                                    fake_patch, weight=cfg.gp_weight, epsilon=eps_l,
                                    input_scale=PIXEL_SCALE, reduce=False)
            per_sample = (fake_g - real_g) + (fake_l - real_l) + gp_g + gp_l
            loss = tf.reduce_sum(per_sample) / float(self.global_batch)
        grads = tape.gradient(loss, self.d_vars)
        n = float(self.global_batch)
        terms = [loss, tf.reduce_sum(real_g - fake_g) / n, tf.reduce_sum(real_l - fake_l) / n,
                 tf.reduce_sum(gp_g) / n, tf.reduce_sum(gp_l) / n]
        return grads, terms

    @staticmethod
    def _bad(grads):
        ok = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(g))
                                     for g in grads if g is not None]))
        return 1.0 - tf.cast(ok, tf.float32)

    def _apply(self, optimizer, grads, variables, loss, bad):
        finite = tf.logical_and(tf.math.is_finite(loss), tf.equal(bad, 0.0))
        apply_gradients_if_finite(finite, optimizer, grads, variables)
        return finite

    def _replica_generator(self, batch, adversarial):
        truth, labels, masks = batch
        grads, terms, _ = self._generator_terms(truth, labels, masks, adversarial)
        reduced = dist.all_reduce_sum(terms + [self._bad(grads)])
        finite = self._apply(self.g_optimizer, grads, self.g_vars, reduced[0], reduced[-1])
        names = ("loss_g", "reconstruction", "adv_global", "adv_local", "structure", "instance",
                 "diversity")
        return finite, dict(zip(names, reduced[:-1]))

    def _replica_critic(self, batch, offset):
        truth, _, masks = batch
        grads, terms = self._critic_terms(truth, masks, offset)
        reduced = dist.all_reduce_sum(terms + [self._bad(grads)])
        finite = self._apply(self.d_optimizer, grads, self.d_vars, reduced[0], reduced[-1])
        names = ("loss_d", "wasserstein_global", "wasserstein_local", "gp_global", "gp_local")
        return finite, dict(zip(names, reduced[:-1]))

    # -- the steps ------------------------------------------------------------------------------

    def _run(self, fn, *args):
        out = self.strategy.run(fn, args=args)
        return tf.nest.map_structure(lambda v: self.strategy.experimental_local_results(v)[0], out)

    def _warmup(self):
        batch = self.inputs.next()

        def replica(b):
            finite, values = self._replica_generator(b, adversarial=False)
            return {"loss_g": values["loss_g"], "reconstruction": values["reconstruction"],
                    "finite": tf.cast(finite, tf.float32)}
        return self._run(replica, batch)

    def _adversarial(self):
        finite_all = tf.constant(True)
        critic_values = None
        batch = None
        for k in range(self.config.critic_steps):
            batch = self.inputs.next()

            def replica_c(b, _k=k):
                finite, values = self._replica_critic(b, _k)
                return dict(values, finite=tf.cast(finite, tf.float32))
            out = self._run(replica_c, batch)
            finite_all = tf.logical_and(finite_all, out.pop("finite") > 0.5)
            critic_values = out

        def replica_g(b):
            finite, values = self._replica_generator(b, adversarial=True)
            return dict(values, finite=tf.cast(finite, tf.float32))
        out = self._run(replica_g, batch)
        finite_all = tf.logical_and(finite_all, out.pop("finite") > 0.5)
        out.update(critic_values)
        out["finite"] = tf.cast(finite_all, tf.float32)
        return out

    def __call__(self):
        """One training step: warm-up (reconstruction only) or adversarial, by the step count."""
        if int(self.step.numpy()) < self.config.warmup_steps:
            return self.warmup()
        return self.adversarial()


def apply_gradients_if_finite(finite, optimizer, grads, variables):
    """``optimizer.apply(grads, variables)`` on every replica when ``finite``, else nothing.

    Replica context, ``finite`` equal on all replicas (derived from all-reduced values). Uses
    :func:`occface.train.distribute.apply_if_finite` with the gradients passed as per-replica
    arguments, so each replica hands its *own* gradients to the optimizer, which all-reduces them
    as usual (a closure would apply the first replica's gradients everywhere). ``None`` gradients
    (variables that do not affect the loss, e.g. a critic's last bias under the gradient
    penalty) are zeros.
    """
    grads = tuple(tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables))
    dist.apply_if_finite(finite, lambda g: optimizer.apply(list(g), variables),
                         apply_args=(grads,))


def _frozen(model):
    """Call a Keras model in inference mode; other callables as they are."""
    if isinstance(model, keras.layers.Layer):
        return lambda x: model(x, training=False)
    return model


# --------------------------------------------------------------------------------------------
# previews


def preview_grid(generator, truth, masks):
    """Rows ``input (hole white) | mask | output | truth`` stacked vertically: (N·S, 4·S, 3).

    Parameters
    ----------
    generator : keras.Model
    truth : (N, S, S, 3) float array in [0, 255]
    masks : (N, S, S, 1) float array, 1 = hole

    Returns
    -------
    uint8 array (N·S, 4·S, 3).
    """
    truth = np.asarray(truth, np.float32)
    masks = np.asarray(masks, np.float32)
    output = keras.ops.convert_to_numpy(generator([truth, masks], training=False))
    shown_input = truth * (1.0 - masks) + 255.0 * masks
    mask_rgb = np.repeat(masks * 255.0, 3, axis=-1)
    rows = np.concatenate([shown_input, mask_rgb, output, truth], axis=2)  # (N, S, 4S, 3)
    grid = rows.reshape(-1, rows.shape[2], 3)
    return np.clip(np.rint(grid), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# the run


def train_idgan(config, *, dataset=None, num_classes=None, recognizer=None, parser=None,
                centroid_dataset=None, progress=None, strategy=None):
    """Train (or resume) ID-GAN in ``config.model_dir``.

    Parameters
    ----------
    config : IDGANConfig or dict
    dataset : tf.data.Dataset, optional
        This worker's batches ``(truth float32 (b, S, S, 3) [0, 255], labels int32 (b,), masks
        float32 (b, S, S, 1))`` with a static batch dimension (see :func:`add_hole_masks`);
        default: built from ``config.data_dir`` by :func:`training_data`. Must be
        checkpointable for exact resume.
    num_classes : int, optional
        Required with ``dataset`` (number of identity labels, for the centroids).
    recognizer : keras.Model or callable, optional
        Frozen recognizer for the identity terms; default loaded from ``config.recognizer_path``.
        Without either (or with ``identity_weight == 0``) the run is "w/oID".
    parser : keras.Model or callable, optional
        Face parser for the structure loss; default :func:`prepare_parser`.
    centroid_dataset : iterable of (images, labels), optional
        Clean faces for the identity centroids; default :func:`centroid_data` of
        ``config.data_dir``, or ``config.centroid_batches`` batches of ``dataset``.
    progress : callable, optional
        ``progress(step, total, scalars)`` after each step.
    strategy : tf.distribute.Strategy, optional
        Default ``make_strategy(config.strategy)``.

    Returns
    -------
    dict
        ``{"step", "final", "history", "images_per_sec", "skipped_steps", "generator_path",
        "restored_from", "num_replicas", "identity", "structure"}``.

    Raises
    ------
    ValueError, FileNotFoundError
        Invalid settings or data (``ConfigMismatchError`` for a ``model_dir`` of another run).
    NonFiniteLossError
        Too many consecutive non-finite steps.
    """
    if isinstance(config, dict):
        config = IDGANConfig.from_dict(config)
    config.validate()
    if not config.model_dir:
        raise ValueError("model_dir is required")
    if (dataset is None) != (num_classes is None):
        raise ValueError("pass dataset and num_classes together")
    model_dir = pathlib.Path(config.model_dir)
    if model_dir.exists() and not model_dir.is_dir():
        raise ValueError(f"model_dir {model_dir} exists and is not a directory")
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    strategy = strategy or dist.make_strategy(config.strategy)
    is_chief, _, _, num_workers = dist.worker_info(strategy)
    worker = dist.worker_index(strategy)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the "
                         f"{strategy.num_replicas_in_sync} replicas")
    per_worker_batch = config.batch_size // num_workers

    identities = None
    built_here = dataset is None
    if built_here:
        identities = training_identities(config)
        dataset, num_classes = training_data(config, per_worker_batch,
                                             config.seed + 1000 * worker, identities)
    stored = dict(config.to_dict(), num_classes=int(num_classes))
    resuming = check_config(model_dir, stored, ignore=RESUMABLE_KEYS, write=is_chief)

    use_identity = config.identity_weight > 0 and (recognizer is not None
                                                   or bool(config.recognizer_path))
    use_structure = config.structure_weight > 0

    with strategy.scope():
        generator, global_critic, local_critic = build_networks(config)
        g_optimizer = keras.optimizers.Adam(config.g_learning_rate, beta_1=config.g_beta1,
                                            beta_2=config.g_beta2)
        d_optimizer = keras.optimizers.Adam(config.d_learning_rate, beta_1=config.d_beta1,
                                            beta_2=config.d_beta2)
        g_optimizer.build(generator.trainable_variables)
        d_optimizer.build(list(global_critic.trainable_variables)
                          + list(local_critic.trainable_variables))
        if use_structure and parser is None:
            parser = prepare_parser(config, model_dir, identities, is_chief)
        features = centroids = None
        if use_identity:
            if recognizer is None:
                recognizer = load_recognizer(config.recognizer_path)
            low_layer = config.recognizer_low_layer or None
            features = RecognizerFeatures(recognizer, low_layer=low_layer)
            probe = np.zeros((1, config.image_size, config.image_size, 3), np.float32)
            dim = int(features.embed(probe).shape[-1])
            centroids = tf.Variable(tf.zeros([int(num_classes), dim]), trainable=False,
                                    name="identity_centroids")
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    have_centroids = tf.Variable(False, trainable=False, name="have_centroids")
    inputs = dist.ShardedInput(strategy, dataset)
    trackables = dict(generator=generator, global_critic=global_critic,
                      local_critic=local_critic, g_optimizer=g_optimizer,
                      d_optimizer=d_optimizer, step=step_var, iterator=inputs.iterator)
    if centroids is not None:
        trackables.update(centroids=centroids, have_centroids=have_centroids)
    keeper = CheckpointKeeper(model_dir, is_chief=is_chief, max_to_keep=config.keep_checkpoints,
                              **trackables)
    restored = keeper.restore()
    if restored:
        log.info("resumed from %s at step %d", restored, int(step_var.numpy()))
    else:
        if resuming:
            log.info("model_dir %s has a matching config but no checkpoint; starting at step 0",
                     model_dir)
        if config.init_generator:
            _init_generator(generator, config.init_generator)

    if centroids is not None and not bool(have_centroids.numpy()):
        limit = config.centroid_batches
        if centroid_dataset is None:
            if built_here:
                centroid_dataset = centroid_data(config, identities)
            else:  # a caller's (infinite) stream: a fixed number of its batches
                limit = limit or 10
                centroid_dataset = dataset
        if limit:
            centroid_dataset = _take_batches(centroid_dataset, limit)
        table, counts = identity_centroids(features, centroid_dataset,
                                           num_classes=int(num_classes),
                                           normalize=config.id_normalize, return_counts=True)
        centroids.assign(table)
        have_centroids.assign(True)
        log.info("identity centroids of %d identities (%d faces)", int((counts > 0).sum()),
                 int(counts.sum()))

    steps = IDGANSteps(strategy, config, generator, global_critic, local_critic, g_optimizer,
                       d_optimizer, inputs, step_var, parser=parser if use_structure else None,
                       features=features, centroids=centroids)

    writer = SummaryWriter(model_dir / "train", enabled=is_chief)
    hooks = []
    if is_chief and config.image_interval:
        preview = next(iter(dataset))
        n = max(1, min(config.preview_images, int(preview[0].shape[0])))
        truth_p, masks_p = preview[0][:n].numpy(), preview[2][:n].numpy()

        def image_hook(step, _values):
            if step % config.image_interval == 0 or step == config.steps:
                grid = preview_grid(generator, truth_p, masks_p)
                writer.images(step, "input_mask_output_truth", grid[None], max_outputs=1)
        hooks.append(image_hook)

    loop = TrainingLoop(steps, config.steps, step_var, keeper,
                        checkpoint_interval=config.checkpoint_interval,
                        summary_interval=config.summary_interval,
                        guard=NonFiniteGuard(config.max_nonfinite_steps), summaries=writer,
                        hooks=hooks, progress=progress,
                        images_per_step=config.batch_size)
    started = time.monotonic()
    start_step = int(step_var.numpy())
    try:
        loop.run()
    finally:
        keeper.close()
        writer.close()
    elapsed = time.monotonic() - started
    done = int(step_var.numpy()) - start_step
    result = {"step": int(step_var.numpy()), "restored_from": restored,
              "final": loop.history[-1][1] if loop.history else {},
              "history": [{"step": s, **v} for s, v in loop.history],
              "images_per_sec": done * config.batch_size / elapsed if done else None,
              "skipped_steps": loop.guard.total_skipped,
              "num_replicas": strategy.num_replicas_in_sync, "num_classes": int(num_classes),
              "identity": use_identity, "structure": use_structure,
              "generator_path": str(model_dir / "generator.keras")}
    if is_chief:
        save_keras_atomic(generator, model_dir / "generator.keras")
        write_json(model_dir / "config.json", stored)
        meta = run_metadata(stored)
        meta["result"] = {k: v for k, v in result.items() if k != "history"}
        write_json(model_dir / "training.json", meta)
    return result


def _init_generator(generator, path):
    """Copy the weights of the generator at ``path`` into ``generator`` (same architecture)."""
    from occface.inpainting.evaluate import load_generator
    source = load_generator(path)
    mine, theirs = generator.get_weights(), source.get_weights()
    if len(mine) != len(theirs) or any(a.shape != b.shape for a, b in zip(mine, theirs)):
        raise ValueError(f"init_generator {path} has another architecture than this run's "
                         "generator (check image_size, gen_width, dilation_rates)")
    generator.set_weights(theirs)
    log.info("generator initialised from %s", path)


def _take_batches(dataset, n):
    """The first ``n`` elements of ``dataset`` as a list of ``(images, labels)`` numpy pairs."""
    out = []
    for i, element in enumerate(dataset):
        if i >= int(n):
            break
        out.append((np.asarray(element[0]), np.asarray(element[1])))
    return out
