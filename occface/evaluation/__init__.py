"""Evaluation protocols of the papers, on clean and occluded faces.

Metrics (:mod:`~occface.evaluation.verification`, :mod:`~occface.evaluation.roc`,
:mod:`~occface.evaluation.similarity`)
    :func:`verification_accuracy` (LFW k-fold), :func:`roc`, :func:`tar_at_far`,
    :func:`operating_point`, :func:`feature_robustness` (LCD Eq. 8), :func:`pair_scores`.
Image quality (:mod:`~occface.evaluation.image_quality`)
    :func:`psnr`, :func:`ssim` (``tf.image`` conventions, images in [0, 255]).
Models (:mod:`~occface.evaluation.embedding`)
    :func:`load_embedding_model` (``.keras`` / training ``model_dir`` / SavedModel),
    :func:`embed_images` (batching, flip-test).
Pair protocols (:mod:`~occface.evaluation.protocols`, :mod:`~occface.evaluation.occlusion`)
    LFW ``pairs.txt``, ``.bin`` sets and pair lists, clean or with one/both images occluded.
IJB-C 1:1 (:mod:`~occface.evaluation.ijbc`, :mod:`~occface.evaluation.ijbc_images`,
:mod:`~occface.evaluation.ijbc_templates`)
    protocol files and occluded subset, aligned crops, template pooling, 15.6 M-pair scoring,
    TAR@FAR 1e-6..1e-1.
Identification (:mod:`~occface.evaluation.identification`)
    MegaFace rank-1 with chunked distractors.
RMFRD (:mod:`~occface.evaluation.rmfrd`, :mod:`~occface.evaluation.rmfrd_data`,
:mod:`~occface.evaluation.rmfrd_protocol`)
    real masked probes vs unmasked gallery: balanced accuracy, TAR@FAR, rank-1.
Runs (:mod:`~occface.evaluation.runner`, :mod:`~occface.evaluation.run_options`,
:mod:`~occface.evaluation.report_table`, :mod:`~occface.evaluation.plots`)
    one protocol under several occlusion conditions to a report, its table and plots
    (``tools/evaluate.py``).
"""

from occface.evaluation.embedding import (EmbeddingModel, as_embedding_model, embed_images,
                                          load_embedding_model)
from occface.evaluation.identification import max_similarity, megaface_rank1, rank1_identification
from occface.evaluation.ijbc import IJBCMeta, occluded_subset, read_ijbc, read_image_list
from occface.evaluation.ijbc_images import IJBCImages, ijbc_image_features
from occface.evaluation.ijbc_templates import (evaluate_ijbc_features, score_template_pairs,
                                               template_features)
from occface.evaluation.image_quality import psnr, ssim
from occface.evaluation.occlusion import OCCLUSION_KINDS, image_rng, occlude_face, pair_occlusion
from occface.evaluation.protocols import (LFW_FARS, EmbeddingCache, FaceSource, PairSet,
                                          bin_pair_set, evaluate_pairs, lfw_pair_set, list_images,
                                          read_pair_list)
from occface.evaluation.rmfrd import evaluate_rmfrd
from occface.evaluation.rmfrd_data import read_rmfrd
from occface.evaluation.rmfrd_protocol import evaluate_rmfrd_features
from occface.evaluation.roc import (DEFAULT_FARS, OperatingPoint, Roc, operating_point, roc,
                                    tar_at_far)
from occface.evaluation.scoring import score_index_pairs
from occface.evaluation.similarity import feature_robustness, l2_normalize, pair_scores
from occface.evaluation.verification import (VerificationResult, best_threshold, fold_ids,
                                             verification_accuracy)
