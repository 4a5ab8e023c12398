"""Evaluation protocols of the papers, on clean and occluded faces.

Metrics (:mod:`~occface.evaluation.metrics`)
    :func:`verification_accuracy` (LFW k-fold), :func:`roc`, :func:`tar_at_far`,
    :func:`operating_point`, :func:`feature_robustness` (LCD Eq. 8), :func:`pair_scores`.
Image quality (:mod:`~occface.evaluation.image_quality`)
    :func:`psnr`, :func:`ssim` (``tf.image`` conventions, images in [0, 255]).
Models (:mod:`~occface.evaluation.embedding`)
    :func:`load_embedding_model` (``.keras`` / training ``model_dir`` / SavedModel),
    :func:`embed_images` (batching, flip-test).
Pair protocols (:mod:`~occface.evaluation.protocols`, :mod:`~occface.evaluation.occlusion`)
    LFW ``pairs.txt``, ``.bin`` sets and pair lists, clean or with one/both images occluded.
IJB-C 1:1 (:mod:`~occface.evaluation.ijbc`)
    template pooling, 15.6 M-pair scoring, TAR@FAR 1e-6..1e-1, occluded subset.
Identification (:mod:`~occface.evaluation.identification`)
    MegaFace rank-1 with chunked distractors.
RMFRD (:mod:`~occface.evaluation.rmfrd`)
    real masked probes vs unmasked gallery: balanced accuracy, TAR@FAR, rank-1.
"""

from occface.evaluation.embedding import (EmbeddingModel, as_embedding_model, embed_images,
                                          load_embedding_model)
from occface.evaluation.identification import max_similarity, megaface_rank1, rank1_identification
from occface.evaluation.ijbc import (IJBCImages, IJBCMeta, evaluate_ijbc_features,
                                     ijbc_image_features, occluded_subset, read_ijbc,
                                     read_image_list, score_template_pairs, template_features)
from occface.evaluation.image_quality import psnr, ssim
from occface.evaluation.metrics import (DEFAULT_FARS, OperatingPoint, Roc, VerificationResult,
                                        best_threshold, feature_robustness, fold_ids, l2_normalize,
                                        operating_point, pair_scores, roc, tar_at_far,
                                        verification_accuracy)
from occface.evaluation.occlusion import OCCLUSION_KINDS, image_rng, occlude_face, pair_occlusion
from occface.evaluation.protocols import (LFW_FARS, EmbeddingCache, FaceSource, PairSet,
                                          bin_pair_set, evaluate_pairs, lfw_pair_set, list_images,
                                          read_pair_list)
from occface.evaluation.rmfrd import evaluate_rmfrd, evaluate_rmfrd_features, read_rmfrd
from occface.evaluation.scoring import score_index_pairs
