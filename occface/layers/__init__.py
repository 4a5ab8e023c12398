"""Keras 3 layers of the LCD recognizer and of the baselines it is compared with.

All layers are channels-last ``(N, H, W, C)``, written with ``keras.ops`` and registered for
serialization under the ``"occface"`` package.

* :class:`LCD` — per-sample channel-wise dropout (paper Eq. 3–4);
* :class:`SAM` — spatial attention module (paper Eq. 7), starts near the identity;
* :class:`ArcFace` — additive angular margin logits (float32 under mixed precision);
* :class:`ResponseDecorrelation` — adds the Eq. 2 loss in training (pass-through);
* baselines :class:`DropBlock`, :class:`WeightedChannelDropout`, :class:`Cutout`;
* :class:`HoleFill` / :class:`HoleComposite` — the two ends of the ID-GAN inpainting generator.
"""
from occface.layers.arcface import ArcFace
from occface.layers.cutout import Cutout
from occface.layers.dropblock import DropBlock
from occface.layers.hole import HoleComposite, HoleFill
from occface.layers.lcd import LCD
from occface.layers.sam import SAM
from occface.layers.spatial_regularization import ResponseDecorrelation
from occface.layers.weighted_channel_dropout import WeightedChannelDropout

__all__ = ["LCD", "SAM", "ArcFace", "DropBlock", "WeightedChannelDropout", "Cutout",
           "ResponseDecorrelation", "HoleFill", "HoleComposite"]
