"""The settings of an ID-GAN training run: :class:`IDGANConfig` and its validation.

One dataclass field per setting (``tools/train_idgan.py`` has one flag per field, same names);
the run stores them as ``model_dir/config.json`` and refuses a ``model_dir`` made with other
settings, except the bookkeeping ones in :data:`RESUMABLE_KEYS`, which may change on resume.
"""

import dataclasses

from occface.choices import STRATEGIES
from occface.utils import ensure, ensure_each

#: Settings that may differ when a run is resumed (they change no computed value).
RESUMABLE_KEYS = ("checkpoint_interval", "keep_checkpoints", "summary_interval", "image_interval",
                  "preview_images", "max_nonfinite_steps", "model_dir")


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
        # tuple settings also accept "a, b" / "a b" strings and lists (flags, JSON)
        for key in ("hole_kinds", "train_folds", "dilation_rates"):
            value = getattr(self, key)
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            setattr(self, key, tuple(value))
        self.train_folds = tuple(int(v) for v in self.train_folds)
        self.dilation_rates = tuple(int(v) for v in self.dilation_rates)
        self.hole_kinds = tuple(str(v) for v in self.hole_kinds)

    def to_dict(self):
        """The settings as a JSON-ready dict (tuples become lists).

        Returns
        -------
        dict
            ``{field name: value}`` for every field.
        """
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d):
        """The config of a dict of settings (e.g. a stored ``config.json``).

        Parameters
        ----------
        d : dict
            ``{field name: value}``; missing fields take their defaults.

        Returns
        -------
        IDGANConfig

        Raises
        ------
        ValueError
            ``d`` names a setting that is not a field.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown ID-GAN training settings: {', '.join(unknown)}")
        return cls(**d)

    @property
    def patch_size(self):
        """Side of the local critic's square patch: ``local_patch``, or ``image_size // 2``."""
        return int(self.local_patch) or self.image_size // 2

    @property
    def uses_identity(self):
        """Whether the settings alone enable the identity terms (weight > 0 and a recognizer)."""
        return self.identity_weight > 0 and bool(self.recognizer_path)

    def validate(self):
        """Raise ``ValueError`` naming the first invalid setting."""
        from occface.data.occlusion import KINDS
        ensure(self.image_size >= 16 and self.image_size % 4 == 0,
               f"image_size must be a multiple of 4 and >= 16, got {self.image_size}")
        ensure(self.hole_kinds and all(k in KINDS for k in self.hole_kinds),
               f"hole_kinds must be among {', '.join(KINDS)}, got {list(self.hole_kinds)}")
        ensure(0 <= self.hole_size <= self.image_size,
               f"hole_size must be in [0, image_size], got {self.hole_size}")
        ensure(4 <= self.patch_size <= self.image_size,
               f"local_patch must be in [4, image_size], got {self.patch_size}")
        ensure(self.gen_width >= 2 and self.critic_width >= 1 and self.parser_width >= 1,
               "network widths must be positive (gen_width >= 2)")
        ensure(self.critic_norm in ("layer", "none"),
               f"critic_norm must be 'layer' or 'none', got {self.critic_norm!r}")
        ensure(self.loss_reduction in ("sum", "mean"),
               f"loss_reduction must be 'sum' or 'mean', got {self.loss_reduction!r}")
        ensure(self.structure_target in ("hard", "soft"),
               f"structure_target must be 'hard' or 'soft', got {self.structure_target!r}")
        ensure(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        ensure_each(self, ("rec_hole_weight", "rec_valid_weight", "adv_global_weight",
                           "adv_local_weight", "gp_weight", "structure_weight", "identity_weight",
                           "alpha_low", "alpha_high", "beta"),
                    lambda v: v >= 0, "{key} must be >= 0, got {value}")
        ensure(self.batch_size >= 1, f"batch_size must be positive, got {self.batch_size}")
        ensure(self.steps >= 1, f"steps must be positive, got {self.steps}")
        ensure(0 <= self.warmup_steps <= self.steps,
               f"warmup_steps must be in [0, steps], got {self.warmup_steps}")
        ensure(self.critic_steps >= 1, f"critic_steps must be >= 1, got {self.critic_steps}")
        ensure(self.g_learning_rate > 0 and self.d_learning_rate > 0,
               "learning rates must be positive")
        ensure_each(self, ("g_beta1", "g_beta2", "d_beta1", "d_beta2"), lambda v: 0 <= v < 1,
                    "{key} must be in [0, 1)")
        ensure(self.strategy in STRATEGIES,
               f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        ensure(self.checkpoint_interval >= 0 and self.summary_interval >= 0
               and self.image_interval >= 0, "intervals must be >= 0")
        ensure(self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1")
        ensure(self.max_nonfinite_steps >= 1, "max_nonfinite_steps must be >= 1")
        ensure(self.parser_epochs >= 0 and self.parser_max_images >= 1
               and self.parser_batch_size >= 1, "parser settings must be positive")
        ensure(self.centroid_batches >= 0, "centroid_batches must be >= 0")
        ensure(not (self.train_folds and not self.lfw_pairs),
               "train_folds needs lfw_pairs (the pairs.txt that defines the folds)")
