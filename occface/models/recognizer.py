"""The LCD face recognizer and the baselines it is compared with, on an IR-ResNet backbone.

:func:`build_recognizer` returns a :class:`Recognizer` (a functional ``keras.Model`` subclass)
mapping images ``(N, H, W, 3)`` with pixel values in [0, 255] to un-normalised embeddings
``(N, embedding_size)``. The first layer is ``Rescaling(1/127.5, offset=-1)``.

Where each variant's layers sit (LCD / SR / SAM, the DropBlock / WCD / Cutout baselines) and how
the build arguments are checked: :mod:`occface.models.variants` (:data:`LCD_STAGES`, :data:`SAM_STAGES`,
:data:`BACKBONES`, :func:`lcd_layer_names`; also exported by :mod:`occface.models`).

Serialization
-------------
:class:`Recognizer` stores its build arguments as its Keras config, so ``model.save("m.keras")``
/ ``keras.models.load_model`` rebuild the same graph and restore the weights;
:func:`recognizer_config` returns those arguments.
"""

import keras

from occface.choices import LCD_POSITIONS, VARIANTS
from occface.models.variants import (BACKBONES, LCD_STAGES, SAM_STAGES, build_recognizer_graph,
                                     lcd_layer_names, validate_build_args)

__all__ = ["Recognizer", "build_mobilefacenet", "build_recognizer", "recognizer_config",
           "upgrade_config"]

#: Parameters of ``Recognizer.__init__`` that are not build arguments (``__class__`` is the cell
#: of its zero-argument ``super()``).
_NOT_BUILD_ARGS = ("self", "name", "trainable", "__class__")


@keras.saving.register_keras_serializable(package="occface")
class Recognizer(keras.Model):
    """IR-ResNet face recognizer with one of the :data:`VARIANTS` (a functional model).

    Construct it with :func:`build_recognizer` (same arguments). Its Keras config is the build
    arguments, so ``.keras`` save/load and ``Recognizer.from_config`` rebuild the same graph.

    Input: ``(N, H, W, 3)`` images in [0, 255]. Output: ``(N, embedding_size)`` float32
    embeddings (un-normalised).
    """

    def __init__(self, depth=50, variant="lcd", input_shape=(112, 112, 3), embedding_size=512,
                 width=64, lcd_stage=3, sam_stage=4, lcd_min_rate=0.0, lcd_max_rate=0.6,
                 sr_filter_weight=100.0, sr_response_weight=1.0, sr_reduction="mean",
                 dropout=0.0, sam_reduction=16, sam_initial_attention=0.95, cutout_size=None,
                 dropblock_size=7, dropblock_rate=0.1, wcd_ratio=0.9, wcd_q=0.9, seed=None,
                 backbone="iresnet", lcd_position="output", mbf_blocks=(1, 4, 6, 2),
                 mbf_scale=2, mbf_head="fc", name=None, trainable=True):
        args = validate_build_args({key: value for key, value in locals().items()
                                    if key not in _NOT_BUILD_ARGS})
        inputs, outputs = build_recognizer_graph(args)
        prefix = f"ir{args['depth']}" if args["backbone"] == "iresnet" else "mbf"
        super().__init__(inputs, outputs, name=name or f"{prefix}_{args['variant']}",
                         trainable=trainable)
        self._build_args = args

    @property
    def build_args(self):
        """The (validated) build arguments, a new dict (``input_shape`` as a list)."""
        args = dict(self._build_args)
        args["input_shape"] = list(args["input_shape"])
        args["mbf_blocks"] = list(args["mbf_blocks"])
        return args

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self.build_args}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**upgrade_config(config))


def upgrade_config(config):
    """Build arguments written before ``lcd_position`` existed mean ``lcd_position="branch"``.

    Returns a new dict; configs that name ``lcd_position`` are returned unchanged.
    """
    config = dict(config)
    config.setdefault("lcd_position", "branch")
    return config


def build_recognizer(depth=50, variant="lcd", input_shape=(112, 112, 3), embedding_size=512,
                     width=64, lcd_stage=3, sam_stage=4, lcd_min_rate=0.0, lcd_max_rate=0.6,
                     sr_filter_weight=100.0, sr_response_weight=1.0, sr_reduction="mean",
                     dropout=0.0, sam_reduction=16, sam_initial_attention=0.95, cutout_size=None,
                     dropblock_size=7, dropblock_rate=0.1, wcd_ratio=0.9, wcd_q=0.9, seed=None,
                     backbone="iresnet", lcd_position="output", mbf_blocks=(1, 4, 6, 2),
                     mbf_scale=2, mbf_head="fc", name=None):
    """Build the face recognizer: images ``(N, H, W, 3)`` in [0, 255] → embeddings ``(N, D)``.

    See :mod:`occface.models.variants` for exactly where each variant's layers sit.

    Parameters
    ----------
    depth : int
        IR-ResNet depth, one of 18, 34, 50, 100.
    variant : str
        One of :data:`VARIANTS`: ``"baseline"``, ``"cd"`` (LCD channel dropout), ``"cd_sr"``
        (+ spatial regularization), ``"lcd"`` (CD + SR + SAM), ``"cutout"``, ``"dropblock"``,
        ``"wcd"``.
    input_shape : tuple
        ``(H, W, 3)``; 112×112 for ArcFace-aligned faces, 64×64 for CPU experiments.
    embedding_size : int
        Embedding size ``D``.
    width : int
        64 = standard network (IR-50: 43.6 M parameters at 112×112); 4–16 for CPU experiments.
    lcd_stage : int
        Stage (2, 3 or 4) whose last 3×3 conv's features are dropped (also the location of the
        DropBlock / WCD baselines and of SR).
    sam_stage : int
        Stage (1–4) whose output SAM reweights (``lcd`` only).
    lcd_min_rate, lcd_max_rate : float
        Per-sample drop ratio range of LCD, ``0 <= min <= max <= 1``.
    sr_filter_weight, sr_response_weight : float
        Weights of Eq. 1 (filter orthogonality) and Eq. 2 (response decorrelation).
    sr_reduction : {"mean", "sum"}
        Normalisation of both SR terms (``"mean"``: divided by the number of channel pairs).
    dropout : float
        Dropout rate before the embedding layer, in [0, 1).
    sam_reduction : int
        SAM's reduction ratio.
    sam_initial_attention : float
        SAM's attention value at initialisation (near 1 so SAM starts near the identity).
    cutout_size : int or None
        Side of the Cutout square in pixels; ``None`` = half the smaller input side.
    dropblock_size, dropblock_rate : int, float
        DropBlock block side and drop rate.
    wcd_ratio, wcd_q : float
        WCD's weighted-random-selection keep ratio and RNG keep probability.
    seed : int or None
        Base seed of the stochastic layers (each gets its own offset).
    backbone : {"iresnet", "mobilefacenet"}
        IR-ResNet (``depth``, ``width``) or insightface's MobileFaceNet (``mbf_blocks``,
        ``mbf_scale``, ``mbf_head``; see :mod:`occface.models.mobilefacenet`).
    lcd_position : {"output", "branch"}
        ``"output"``: LCD / DropBlock / WCD and the Eq. 2 term act on the output of stage
        ``lcd_stage``'s last block, after the residual add — the tensor the next stage receives,
        as in the paper. ``"branch"``: on that block's residual branch before the add (whole
        channels are zeroed there but the identity shortcut restores most of them).
    mbf_blocks, mbf_scale, mbf_head
        MobileFaceNet layout (``backbone="mobilefacenet"`` only).
    name : str or None
        Model name; default ``"ir{depth}_{variant}"`` / ``"mbf_{variant}"``.

    Returns
    -------
    Recognizer
        A functional ``keras.Model``.

    Raises
    ------
    ValueError
        For an unknown variant/depth/stage/reduction or an out-of-range rate, naming the
        allowed values.
    """
    return Recognizer(**locals())


def recognizer_config(model):
    """The build arguments of a recognizer, such that ``build_recognizer(**cfg)`` rebuilds it.

    Parameters
    ----------
    model : Recognizer
        A model from :func:`build_recognizer` (or loaded from a ``.keras`` file).

    Returns
    -------
    dict
        JSON-serialisable build arguments (including ``name``).
    """
    if not isinstance(model, Recognizer):
        raise ValueError(f"recognizer_config needs a Recognizer from build_recognizer, got "
                         f"{type(model).__name__}")
    return {**model.build_args, "name": model.name}


def build_mobilefacenet(variant="baseline", input_shape=(112, 112, 3), embedding_size=512,
                        blocks=(1, 4, 6, 2), scale=2, head="fc", lcd_stage=3,
                        lcd_position="output", name=None, **kwargs):
    """insightface's MobileFaceNet as a :class:`Recognizer`: ``(N, 112, 112, 3)`` → ``(N, D)``.

    Images are RGB in [0, 255] (``Rescaling(1/127.5, offset=-1)`` inside, the normalisation
    insightface's models expect). The variants attach exactly as in :func:`build_recognizer`
    (LCD / SR / DropBlock / WCD at ``lcd_stage``, SAM at ``sam_stage``; all identities at
    inference, so the inference cost of ``cd``/``cd_sr``/``dropblock``/``wcd`` is the
    baseline's).

    Parameters
    ----------
    blocks, scale, head
        See :func:`occface.models.mobilefacenet.mobilefacenet_body`; the defaults are
        insightface's ``w600k_mbf`` (``import_onnx`` fills its weights).
    **kwargs
        Any other :func:`build_recognizer` argument (``sam_stage``, ``lcd_max_rate`` …).
    """
    return Recognizer(variant=variant, input_shape=input_shape, embedding_size=embedding_size,
                      backbone="mobilefacenet", mbf_blocks=blocks, mbf_scale=scale,
                      mbf_head=head, lcd_stage=lcd_stage, lcd_position=lcd_position, name=name,
                      **kwargs)
