"""The settings of a recognizer training run: :class:`RecognizerConfig` and its validation.

One dataclass field per setting. Each field's metadata describes it for the command line
(``tools/train_recognizer.py`` has one flag per field, same name, derived by
:func:`occface.cli.define_config_flags`): ``help``, and where they apply ``choices`` (one of the
lists of :mod:`occface.choices`, which :meth:`RecognizerConfig.validate` checks too),
``lower_bound`` and ``flag="string"`` (an integer list written as one string, ranges allowed).

This module imports no TensorFlow, so the tool derives its flags from it and checks them before
TensorFlow is imported.
"""

import dataclasses

from occface import choices
from occface.utils import ensure

#: Keys that may change between a run and its resumption: the bookkeeping ones, which change no
#: computed value, and ``steps``, which extends (or, below the checkpoint's step, ends) the run.
RESUMABLE_KEYS = ("checkpoint_interval", "keep_checkpoints", "summary_interval",
                  "max_nonfinite_steps", "validation_interval", "val_batch_size", "model_dir",
                  "steps")


def _setting(default, help, **flag):
    """A dataclass field whose metadata holds its command-line description (see module doc)."""
    return dataclasses.field(default=default, metadata=dict(help=help, **flag))


@dataclasses.dataclass
class RecognizerConfig:
    """Every setting of a recognizer training run (stored as ``model_dir/config.json``).

    Data
        ``data_dir``: training source for :func:`occface.data.training_dataset` (identity-per-folder
        tree or MS1M-style ``.rec``); ``input_size``; ``augment``; ``train_occlusion`` (synthetic
        occlusion on training images: a kind or comma-separated kinds, one drawn per image;
        ``""`` = none); ``lfw_pairs`` + ``train_folds`` +
        ``min_images_per_identity``: restrict training to the identities of these ``pairs.txt``
        folds (0-based) so validation on the other folds is identity-disjoint;
        ``include_unpaired``: also train on the identities that appear in no pair;
        ``in_memory``: decode the (small, image-folder) training set once into RAM
        (:mod:`occface.data.memory`).
    Model
        ``variant``, ``depth``, ``width``, ``embedding_size``, ``dropout``, ``lcd_stage``,
        ``lcd_position``, ``sam_stage``, ``lcd_min_rate``, ``lcd_max_rate``, ``sr_filter_weight``,
        ``sr_response_weight``, ``sr_reduction`` (see :func:`occface.models.build_recognizer`);
        ``arcface_margin``, ``arcface_scale``.
    Optimisation
        ``optimizer`` (sgd|adamw), ``learning_rate``, ``momentum``, ``weight_decay`` (SGD: coupled
        L2 as in PyTorch/MXNet; AdamW: decoupled), ``lr_schedule`` (piecewise|cosine|constant),
        ``lr_boundaries`` (steps), ``lr_decay_rate``, ``warmup_steps``, ``warmup_start``,
        ``min_lr``, ``batch_size`` (global), ``steps`` (the run's total; resuming with a larger
        value continues from the last checkpoint up to it, the learning-rate schedule then being
        defined over the new total, see :func:`occface.train.train_recognizer`).
    System
        ``strategy`` (default|mirrored|multi_worker), ``mixed_precision``, ``xla`` (single device
        only), ``sync_batchnorm``, ``seed``, ``deterministic`` (``enable_op_determinism``).
    Bookkeeping
        ``model_dir``, ``checkpoint_interval``, ``keep_checkpoints``, ``summary_interval``,
        ``max_nonfinite_steps``, ``validation_interval`` (0 = only at the end when validation
        data is given), ``val_pairs`` (``pairs.txt``), ``val_data_dir`` (aligned images; default
        ``data_dir``), ``val_folds``, ``val_occlusions``, ``val_batch_size``.
    """

    # data
    data_dir: str = _setting("", "Training data: identity-per-folder tree of aligned faces or an "
                             "MS1M-style .rec file (whatever occface.data.training_dataset reads).")
    input_size: int = _setting(112, "Side of the square network input (faces are resized).",
                               lower_bound=16)
    augment: bool = _setting(True, "Training augmentation (flip etc., see occface.data).")
    train_occlusion: str = _setting("", "Synthetic occlusion applied to training images (a kind "
                                    "understood by occface.data.training_dataset, or "
                                    "comma-separated kinds, one drawn per image); empty = none.")
    lfw_pairs: str = _setting("", "pairs.txt defining LFW folds; with --train_folds, train only "
                              "on identities of those folds (identity-disjoint from "
                              "--val_folds).")
    train_folds: tuple = _setting((), "0-based LFW folds whose identities are trained on, e.g. "
                                  "0-6.", flag="string")
    min_images_per_identity: int = _setting(1, "With --train_folds: keep identities with at "
                                            "least this many images.", lower_bound=1)
    include_unpaired: bool = _setting(False, "With --train_folds: also train on the identities "
                                      "that appear in no pair of --lfw_pairs (disjoint from every "
                                      "fold).")
    in_memory: bool = _setting(False, "Decode the (image-folder) training set once at "
                               "--input_size and keep it in RAM as uint8 (small sets such as "
                               "LFW).")
    # model
    variant: str = _setting("lcd", "Recognizer variant (lcd = channel dropout + spatial "
                            "regularization + SAM).", choices=choices.VARIANTS)
    depth: int = _setting(50, "IR-ResNet depth.", choices=choices.DEPTHS)
    width: int = _setting(64, "Base width (64 = standard network).", lower_bound=1)
    embedding_size: int = _setting(512, "Embedding size.", lower_bound=1)
    dropout: float = _setting(0.0, "Dropout before the embedding layer.")
    lcd_stage: int = _setting(3, "Stage whose features channel dropout / SR act on (2-4).")
    lcd_position: str = _setting("output", "Where channel dropout, DropBlock, WCD and the Eq. 2 "
                                 "term act in --lcd_stage: 'output' = the output of its last "
                                 "block (what the next stage receives), 'branch' = that block's "
                                 "residual branch before the add.", choices=choices.LCD_POSITIONS)
    sam_stage: int = _setting(4, "Stage reweighted by SAM (lcd).")
    lcd_min_rate: float = _setting(0.0, "Per-sample channel drop ratio lower bound.")
    lcd_max_rate: float = _setting(0.6, "Per-sample channel drop ratio upper bound.")
    sr_filter_weight: float = _setting(100.0, "Weight of the filter-orthogonality term (Eq. 1).")
    sr_response_weight: float = _setting(1.0, "Weight of the response-decorrelation term "
                                         "(Eq. 2).")
    sr_reduction: str = _setting("mean", "Normalisation of the SR terms.",
                                 choices=choices.SR_REDUCTIONS)
    arcface_margin: float = _setting(0.5, "ArcFace additive angular margin m.")
    arcface_scale: float = _setting(64.0, "ArcFace scale s.")
    # optimisation
    optimizer: str = _setting("sgd", "Optimizer.", choices=choices.OPTIMIZERS)
    learning_rate: float = _setting(0.1, "Base learning rate.")
    momentum: float = _setting(0.9, "SGD momentum.")
    weight_decay: float = _setting(5e-4, "Weight decay (SGD: coupled L2 as in PyTorch/MXNet; "
                                   "AdamW: decoupled).")
    lr_schedule: str = _setting("piecewise", "Learning-rate schedule after the warm-up.",
                                choices=choices.SCHEDULES)
    lr_boundaries: tuple = _setting((), "Piecewise: steps at which the rate is multiplied by "
                                    "--lr_decay_rate.")
    lr_decay_rate: float = _setting(0.1, "Piecewise decay factor.")
    warmup_steps: int = _setting(0, "Linear warm-up steps.", lower_bound=0)
    warmup_start: float = _setting(0.0, "Warm-up starting rate as a fraction of the base rate.")
    min_lr: float = _setting(0.0, "Cosine: final learning rate.")
    batch_size: int = _setting(128, "Global batch size (over all replicas and workers).",
                               lower_bound=1)
    steps: int = _setting(1000, "Training steps (batches) of the whole run. Re-running a "
                          "finished run with a larger value continues it from its last step to "
                          "the new value, the learning-rate schedule being that of a run of the "
                          "new total (e.g. cosine decay over all --steps).", lower_bound=1)
    # system
    strategy: str = _setting("default", "tf.distribute strategy (multi_worker reads TF_CONFIG).",
                             choices=choices.STRATEGIES)
    mixed_precision: bool = _setting(False, "mixed_float16 compute with dynamic loss scaling "
                                     "(GPUs; very slow on CPU).")
    xla: bool = _setting(False, "XLA-compile the training step (single device only).")
    sync_batchnorm: bool = _setting(True, "Synchronise BatchNorm statistics across replicas.")
    seed: int = _setting(0, "Random seed (initialisation, data order, dropout).")
    deterministic: bool = _setting(False, "tf.config.experimental.enable_op_determinism().")
    # bookkeeping
    model_dir: str = _setting("", "Output directory: checkpoints, TensorBoard logs, model.keras, "
                              "config.json.")
    checkpoint_interval: int = _setting(1000, "Steps between checkpoints.", lower_bound=0)
    keep_checkpoints: int = _setting(3, "Checkpoints kept.", lower_bound=1)
    summary_interval: int = _setting(100, "Steps between TensorBoard summaries.", lower_bound=0)
    max_nonfinite_steps: int = _setting(20, "Consecutive non-finite steps that stop the run.",
                                        lower_bound=1)
    validation_interval: int = _setting(0, "Steps between validations (0 = only at the end).",
                                        lower_bound=0)
    val_pairs: str = _setting("", "Validation pairs file (pairs.txt); default --lfw_pairs.")
    val_data_dir: str = _setting("", "Aligned image tree of the validation pairs; default "
                                 "--data_dir.")
    val_folds: tuple = _setting((), "0-based folds of the pairs file validated on, e.g. 7-9.",
                                flag="string")
    val_occlusions: tuple = _setting(("none",), "Validation conditions: none (clean) and/or "
                                     "occlusion kinds applied to the second image of each pair "
                                     "(e.g. none,block,mask).")
    val_batch_size: int = _setting(64, "Images per validation forward pass.", lower_bound=1)

    def __post_init__(self):
        for key in ("train_folds", "lr_boundaries", "val_folds", "val_occlusions"):
            value = getattr(self, key)
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            setattr(self, key, tuple(value))
        self.train_folds = int_list(self.train_folds, "train_folds")
        self.val_folds = int_list(self.val_folds, "val_folds")
        self.lr_boundaries = int_list(self.lr_boundaries, "lr_boundaries", ranges=False)

    def to_dict(self):
        """The settings as a JSON-ready dict (tuples as lists)."""
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d):
        """The config of ``d`` (e.g. a stored ``config.json``); unknown keys are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown recognizer training settings: {', '.join(unknown)}")
        if "variant" in d and "lcd_position" not in d:
            # written before lcd_position existed: the dropout sat on the residual branch
            d = dict(d, lcd_position="branch")
        return cls(**d)

    def validate(self):
        """Raise ``ValueError`` naming the first invalid setting."""
        for field in dataclasses.fields(self):
            allowed = field.metadata.get("choices")
            value = getattr(self, field.name)
            ensure(allowed is None or (value in allowed and not isinstance(value, bool)),
                   f"{field.name} must be one of {', '.join(map(str, allowed or ()))}, got "
                   f"{value!r}")
        ensure(not (self.include_unpaired and not self.train_folds),
               "include_unpaired needs train_folds (unpaired = in no fold of lfw_pairs)")
        ensure(self.width >= 1, f"width must be positive, got {self.width}")
        ensure(self.input_size >= 16, f"input_size must be >= 16, got {self.input_size}")
        ensure(self.embedding_size >= 1, f"embedding_size must be positive, got "
                                         f"{self.embedding_size}")
        ensure(self.batch_size >= 1, f"batch_size must be positive, got {self.batch_size}")
        ensure(self.steps >= 1, f"steps must be positive, got {self.steps}")
        ensure(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        ensure(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        ensure(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        ensure(not (self.xla and self.strategy != "default"),
               "xla (jit_compile) is supported on a single device only (strategy 'default'); XLA "
               "inside MirroredStrategy/MultiWorkerMirroredStrategy replicas fails")
        ensure(self.checkpoint_interval >= 0 and self.summary_interval >= 0
               and self.validation_interval >= 0, "intervals must be >= 0")
        ensure(self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got "
                                           f"{self.keep_checkpoints}")
        ensure(self.max_nonfinite_steps >= 1, "max_nonfinite_steps must be >= 1")
        ensure(0 <= self.lcd_min_rate <= self.lcd_max_rate <= 1,
               f"need 0 <= lcd_min_rate <= lcd_max_rate <= 1, got {self.lcd_min_rate}, "
               f"{self.lcd_max_rate}")
        ensure(self.arcface_scale > 0, "arcface_scale must be positive")
        ensure(not (self.train_folds and not self.lfw_pairs),
               "train_folds needs lfw_pairs (the pairs.txt that defines the folds)")
        ensure(not (set(self.train_folds) & set(self.val_folds)),
               f"train_folds {list(self.train_folds)} and val_folds {list(self.val_folds)} "
               "overlap: validation identities must not be trained on")
        ensure(not (self.val_folds and not (self.val_pairs or self.lfw_pairs)),
               "val_folds needs val_pairs (or lfw_pairs)")


def int_list(values, name="value", ranges=True):
    """Integers from ``values`` (ints or strings; ``"0-6"`` expands to 0..6 when ``ranges``).

    Parameters
    ----------
    values : iterable of int or str
    name : str
        The setting named in the error.
    ranges : bool
        Whether ``"lo-hi"`` (inclusive) is accepted.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> int_list(["0-2", 5])
    (0, 1, 2, 5)
    """
    out = []
    for v in values:
        text = str(v).strip()
        try:
            if ranges and "-" in text[1:]:
                lo, hi = text.split("-", 1) if not text.startswith("-") else (text, "")
                lo, hi = int(lo), int(hi)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(text))
        except ValueError:
            raise ValueError(f"{name}: expected integers{' or ranges like 0-6' if ranges else ''}"
                             f", got {text!r}") from None
    return tuple(out)
