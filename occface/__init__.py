"""occface: recognising partly hidden faces with TensorFlow / Keras 3.

Two published systems:

* the LCD recognizer (He et al., "Locality-aware Channel-wise Dropout for Occluded Face
  Recognition", IEEE TIP): :mod:`occface.layers`, :mod:`occface.losses`, :mod:`occface.models`;
* ID-GAN inpainting (Ge et al., "Occluded Face Recognition in the Wild by Identity-Diversity
  Inpainting", IEEE TCSVT 2020): :mod:`occface.inpainting`.

Face data handling lives in :mod:`occface.data`, the evaluation protocols in
:mod:`occface.evaluation`, training loops in :mod:`occface.train`.
"""

__version__ = "0.1.0"
