"""The occlusion-aware cascade: occlusion regions read off a mask, and the per-region policy.

A cascade export inpaints a face before embedding it when its mask is non-empty and the stored
policy says inpainting helps for that occlusion region: ``"upper"`` (sunglasses, hair),
``"lower"`` (face masks, scarves) or ``"other"``. The policy is decided from measured
occluded-pair accuracies (:func:`cascade_policy`, evidence written by
``benchmarks/cascade_evidence.py``) and applied in-graph (:func:`make_masked_faces_fn`).
"""

import json
import pathlib

import numpy as np

from occface.serving.layout import ExportError

__all__ = ["OCCLUSION_REGIONS", "KIND_REGIONS", "REGION_SPLIT_ROW", "REGION_SHARE",
           "occlusion_region", "region_descriptions", "normalize_inpaint_policy",
           "stored_inpaint_policy", "make_masked_faces_fn", "region_policy", "cascade_policy"]

#: Occlusion regions the cascade decides for, and the synthetic occlusion kinds that measure them.
OCCLUSION_REGIONS = ("upper", "lower", "other")
KIND_REGIONS = {"sunglasses": "upper", "upper": "upper", "mask": "lower", "lower": "lower",
                "block": "other", "left": "other", "right": "other"}
#: Row (fraction of the aligned face height) between the eyes (0.46) and the nose tip (0.64).
REGION_SPLIT_ROW = 0.55
#: Share of the mask on one side of that row that makes it an upper / lower occlusion.
REGION_SHARE = 0.8


def occlusion_region(masks, split_row=REGION_SPLIT_ROW, share=REGION_SHARE):
    """Graph function: masks ``(N, s, s, 1)`` (1 = occluded) → region index ``(N,)`` int32.

    0 = ``"upper"`` (at least ``share`` of the hole above ``split_row``·s: sunglasses, hair),
    1 = ``"lower"`` (at least ``share`` below it: face masks, scarves, hands at the mouth),
    2 = ``"other"`` (anything in between, and empty masks).
    """
    import tensorflow as tf
    masks = tf.cast(masks, tf.float32)
    rows = tf.shape(masks)[1]
    upper_rows = tf.cast(tf.range(rows), tf.float32) < split_row * tf.cast(rows, tf.float32)
    per_row = tf.reduce_sum(masks, axis=[2, 3])  # (N, s)
    total = tf.reduce_sum(per_row, axis=1)
    upper = tf.reduce_sum(tf.where(upper_rows[None], per_row, 0.0), axis=1)
    frac = upper / tf.maximum(total, 1e-6)
    return tf.where(total <= 0.0, 2,
                    tf.where(frac >= share, 0, tf.where(frac <= 1.0 - share, 1, 2)))


def region_descriptions():
    """``{region: text}`` saying how :func:`occlusion_region` assigns each region (metadata)."""
    share = f">= {REGION_SHARE:.0%} of the mask"
    return {"upper": f"{share} above row {REGION_SPLIT_ROW} * size (sunglasses)",
            "lower": f"{share} below it (face masks, scarves)",
            "other": "anything else (blocks, hands, half faces)"}


def normalize_inpaint_policy(policy):
    """``bool`` or ``{region: bool}`` → ``{region: bool}`` over :data:`OCCLUSION_REGIONS`."""
    if isinstance(policy, dict):
        unknown = sorted(set(policy) - set(OCCLUSION_REGIONS))
        missing = sorted(set(OCCLUSION_REGIONS) - set(policy))
        if unknown or missing:
            raise ExportError(f"inpaint_policy needs exactly the regions {OCCLUSION_REGIONS}; "
                              f"unknown {unknown}, missing {missing}")
        return {r: bool(policy[r]) for r in OCCLUSION_REGIONS}
    return {r: bool(policy) for r in OCCLUSION_REGIONS}


def stored_inpaint_policy(metadata):
    """The ``{region: bool}`` policy of a cascade export's metadata (exports written before
    per-region policies hold only the bool ``inpaint_occluded_faces``)."""
    return normalize_inpaint_policy(metadata.get("inpaint_policy",
                                                 bool(metadata.get("inpaint_occluded_faces"))))


def make_masked_faces_fn(inpaint, policy):
    """Graph function of the cascade: faces ``(N, s, s, 3)`` uint8 + masks ``(N, s, s, 1)`` →
    the faces to embed, ``(N, s, s, 3)`` uint8.

    ``policy`` is a bool (all occlusions) or ``{region: bool}`` over :data:`OCCLUSION_REGIONS`:
    a face whose mask is non-empty is inpainted (``inpaint(faces, masks)``) when its region's
    (:func:`occlusion_region`) entry is true, else embedded as given.
    """
    import tensorflow as tf
    policy = normalize_inpaint_policy(policy)
    table = tf.constant([policy[r] for r in OCCLUSION_REGIONS])

    def prepare(faces, masks):
        if not any(policy.values()):
            return faces
        has_hole = tf.reduce_max(masks, axis=[1, 2, 3]) > 0.5
        use = tf.logical_and(has_hole, tf.gather(table, occlusion_region(masks)))
        filled = inpaint(faces, masks)
        return tf.where(use[:, None, None, None], filled, faces)

    return prepare


def region_policy(table):
    """Decide, per occlusion region, whether the cascade inpaints occluded faces.

    Each kind of ``table`` (``{kind: {"direct": acc, "inpainted": acc}}``) measures one region
    (:data:`KIND_REGIONS`: sunglasses → upper, mask → lower, block → other); a region inpaints
    when its kinds gain on average, and a region no kind measured follows the mean gain over all
    kinds.

    Returns
    -------
    (dict, dict, dict)
        ``{region: bool}``, the gain per kind and ``{region: {"kinds", "gain"}}``.

    Raises
    ------
    ValueError
        When a kind lacks a numeric ``direct`` or ``inpainted`` accuracy.
    """
    try:
        gains = {k: float(v["inpainted"]) - float(v["direct"]) for k, v in table.items()}
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"every kind needs numeric 'direct' and 'inpainted' accuracies "
                         f"({err})") from err
    mean_gain = float(np.mean(list(gains.values())))
    policy, basis = {}, {}
    for region in OCCLUSION_REGIONS:
        kinds = sorted(k for k in gains if KIND_REGIONS.get(k, "other") == region)
        gain = float(np.mean([gains[k] for k in kinds])) if kinds else mean_gain
        policy[region] = gain > 0.0
        basis[region] = {"kinds": kinds or "all (no kind measured this region)", "gain": gain}
    return policy, gains, basis


def cascade_policy(evidence_path):
    """:func:`region_policy` of an evidence JSON (``{"occluded_pair_accuracy": {kind:
    {"direct": acc, "inpainted": acc}, ...}}``, as written by ``benchmarks/cascade_evidence.py``).

    Returns
    -------
    (dict, dict)
        ``{region: bool}`` and the evidence to store in the export's metadata.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or no usable ``occluded_pair_accuracy`` table.
    """
    path = pathlib.Path(evidence_path)
    if not path.is_file():
        raise FileNotFoundError(f"cascade evidence not found: {path}")
    data = json.loads(path.read_text())
    table = data.get("occluded_pair_accuracy")
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{path} has no 'occluded_pair_accuracy' table of "
                         "{kind: {direct, inpainted}}")
    try:
        policy, gains, basis = region_policy(table)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    return policy, {"source": str(path), "occluded_pair_accuracy": table,
                    "gain_from_inpainting": gains, "region_basis": basis,
                    "inpaint_policy": policy,
                    "inpaint_occluded_faces": any(policy.values())}
