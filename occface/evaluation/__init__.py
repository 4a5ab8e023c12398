"""Evaluation protocols of the papers, on clean and occluded faces.

* metrics: :func:`verification_accuracy` (LFW k-fold), :func:`roc`, :func:`tar_at_far`,
  :func:`feature_robustness` (LCD Eq. 8);
* image quality: :func:`psnr`, :func:`ssim` (``tf.image`` conventions);
* models: :func:`load_embedding_model` (``.keras`` / training ``model_dir`` / SavedModel),
  :func:`embed_images` (batching, flip-test).
"""

from occface.evaluation.embedding import (EmbeddingModel, as_embedding_model, embed_images,
                                          load_embedding_model)
from occface.evaluation.image_quality import psnr, ssim
from occface.evaluation.metrics import (DEFAULT_FARS, OperatingPoint, Roc, VerificationResult,
                                        best_threshold, feature_robustness, fold_ids, l2_normalize,
                                        operating_point, pair_scores, roc, tar_at_far,
                                        verification_accuracy)
