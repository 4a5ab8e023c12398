"""Face recognition models: the IR-ResNet backbone and the LCD recognizer with its baselines.

* :func:`iresnet` / :func:`iresnet_body` — the IR-ResNet of ArcFace (depth 18/34/50/100);
* :func:`build_recognizer` — images ``(N, H, W, 3)`` in [0, 255] → embeddings ``(N, D)`` for the
  variants ``baseline``, ``cd``, ``cd_sr``, ``lcd`` (CD + SR + SAM), ``cutout``, ``dropblock``,
  ``wcd``; :func:`recognizer_config` returns a built model's arguments;
* :func:`recognizer_from_export` — the Keras recognizer back from an occface ``embed`` export.
"""
from occface.models.iresnet import STAGE_BLOCKS, iresnet, iresnet_body, iresnet_param_count
from occface.models.recognizer import (LCD_STAGES, SAM_STAGES, VARIANTS, Recognizer,
                                       build_recognizer, lcd_layer_names, recognizer_config)
from occface.models.restore import recognizer_from_export

__all__ = ["STAGE_BLOCKS", "iresnet", "iresnet_body", "iresnet_param_count", "VARIANTS",
           "LCD_STAGES", "SAM_STAGES", "Recognizer", "build_recognizer", "recognizer_config",
           "lcd_layer_names", "recognizer_from_export"]
