"""Face recognition models: the IR-ResNet backbone and the LCD recognizer with its baselines.

* :func:`iresnet` / :func:`iresnet_body` — the IR-ResNet of ArcFace (depth 18/34/50/100);
* :func:`build_recognizer` — images ``(N, H, W, 3)`` in [0, 255] → embeddings ``(N, D)`` for the
  variants ``baseline``, ``cd``, ``cd_sr``, ``lcd`` (CD + SR + SAM), ``cutout``, ``dropblock``,
  ``wcd``; :func:`recognizer_config` returns a built model's arguments (where each variant's
  layers attach: :mod:`occface.models.variants`);
* :func:`build_mobilefacenet` — insightface's MobileFaceNet with the same variant attach points;
* :func:`import_onnx` — insightface ONNX recognizers (MobileFaceNet, IR-ResNet) as Keras models
  (the graph is read by :mod:`occface.models.onnx_graph`);
* :mod:`occface.models.io` — the one path rule and loaders for every saved form:
  :func:`load_keras_model`, :func:`load_embedding_model` (:class:`EmbeddingModel`),
  :func:`load_generator`, :func:`recognizer_from_export` (the Keras recognizer back from an
  occface ``embed`` export), :func:`register_custom_objects`.
"""
from occface.models.iresnet import STAGE_BLOCKS, iresnet, iresnet_body, iresnet_param_count
from occface.models.mobilefacenet import mobilefacenet_body
from occface.models.onnx_import import import_onnx
from occface.choices import LCD_POSITIONS, VARIANTS
from occface.models.recognizer import (Recognizer, build_mobilefacenet, build_recognizer,
                                       recognizer_config)
from occface.models.variants import BACKBONES, LCD_STAGES, SAM_STAGES, lcd_layer_names
from occface.models.embedding_model import EmbeddingModel
from occface.models.io import (load_embedding_model, load_generator, load_keras_model,
                               recognizer_from_export, register_custom_objects)

__all__ = ["STAGE_BLOCKS", "iresnet", "iresnet_body", "iresnet_param_count", "VARIANTS",
           "LCD_STAGES", "SAM_STAGES", "Recognizer", "build_recognizer", "recognizer_config",
           "lcd_layer_names", "recognizer_from_export", "BACKBONES", "LCD_POSITIONS",
           "build_mobilefacenet", "mobilefacenet_body", "import_onnx", "EmbeddingModel",
           "load_embedding_model", "load_generator", "load_keras_model", "register_custom_objects"]
