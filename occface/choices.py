"""The allowed values of the library's enumerated settings, importable without TensorFlow.

Each tuple is the one list of its setting: the library validates against it (the model builder,
the optimizer and schedule factories, the strategy factory, :class:`occface.train.RecognizerConfig`)
and the tools offer it as their flags' choices, which they parse before TensorFlow is imported.
"""

VARIANTS = ("baseline", "cd", "cd_sr", "lcd", "cutout", "dropblock", "wcd")
"""Recognizer variants of :func:`occface.models.build_recognizer`."""
DEPTHS = (18, 34, 50, 100)
"""IR-ResNet depths (the keys of :data:`occface.models.iresnet.STAGE_BLOCKS`)."""
LCD_POSITIONS = ("output", "branch")
"""Where channel dropout and the Eq. 2 term act: the output of the stage's last block (after the
residual add, what the next stage receives) or that block's residual branch (before the add)."""
SR_REDUCTIONS = ("sum", "mean")
"""Normalisations of the spatial-regularization terms (Eq. 1 and Eq. 2)."""
OPTIMIZERS = ("sgd", "adamw")
"""Optimizers of :func:`occface.train.make_optimizer`."""
SCHEDULES = ("piecewise", "cosine", "constant")
"""Learning-rate schedules of :class:`occface.train.WarmupSchedule` after its warm-up."""
STRATEGIES = ("default", "mirrored", "multi_worker")
"""``tf.distribute`` strategies of :func:`occface.train.make_strategy`."""
OCCLUSION_HALVES = ("upper", "lower", "left", "right")
"""Half-face occlusion kinds (:func:`occface.data.half_mask`; ``"left"`` is the image's left)."""
OCCLUSION_KINDS = ("block", "mask", "sunglasses") + OCCLUSION_HALVES
"""Synthetic occlusion kinds of :func:`occface.data.occlude` (:data:`occface.data.KINDS`): a
random block, a MaskTheFace face mask, a sunglasses band, half the face."""
OCCLUSION_CONDITIONS = ("none",) + OCCLUSION_KINDS
"""Conditions of the occluded-pair evaluation: clean (``"none"``) or one synthetic occlusion kind
(:data:`occface.evaluation.OCCLUSION_KINDS`)."""
FINETUNE_ARMS = ("pretrained", "clean", "occlusion", "lcd", "lcd_occlusion")
"""Arms of the occlusion fine-tuning study (the keys of :data:`occface.train.finetune.ARMS`)."""

DLIB_SPEC = "dlib"
"""The recognizer name that selects dlib's ResNet (:mod:`occface.models.dlib_peer`) wherever a
model path is accepted; ``"dlib:<model .dat file>"`` names its weights file."""


def is_dlib_spec(path):
    """Whether ``path`` names dlib's recognizer (``"dlib"`` or ``"dlib:<model .dat file>"``)."""
    return isinstance(path, str) and (path == DLIB_SPEC or path.startswith(DLIB_SPEC + ":"))
