"""The LCD paper's premise, measured: are stage-3 channels spatially local, and does stage 4
compensate for dropped stage-3 channels (Eq. 8 as Fig. 3/4 use it)?

* :func:`top_share` — how concentrated a channel's response is: the share of its (non-negative)
  response mass in its top ``q`` fraction of spatial positions. A channel that fires on one face
  region has a high share; a uniform one has ``q``.
* :func:`channel_drop_robustness` — Eq. 8 on stage-4 features: the mean squared distance between
  the features stage 4 produces from intact stage-3 features and from the same features with
  whole channels dropped, relative to the features' mean square (so models of different scales
  compare).
"""

import numpy as np


def top_share(features, q=0.1):
    """Share of each channel's response mass in its top ``q`` of spatial positions.

    Parameters
    ----------
    features : array_like float (N, H, W, C)
        Feature maps; negative values count as zero (responses after PReLU can be negative).
    q : float in (0, 1]
        Fraction of the ``H·W`` positions (at least one).

    Returns
    -------
    np.ndarray float (N, C)
        ``sum(top k responses) / sum(all responses)`` with ``k = max(1, round(q·H·W))``; 0 where a
        channel is all zero.
    """
    f = np.maximum(np.asarray(features, np.float64), 0.0)
    if f.ndim != 4:
        raise ValueError(f"features must be (N, H, W, C), got shape {f.shape}")
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q}")
    n, h, w, c = f.shape
    flat = f.reshape(n, h * w, c)
    k = max(1, int(round(q * h * w)))
    top = -np.sort(-flat, axis=1)[:, :k].sum(axis=1)
    total = flat.sum(axis=1)
    return np.divide(top, total, out=np.zeros_like(top), where=total > 0)


def drop_channels(features, rate, seed=0):
    """Zero ``round(rate·C)`` whole channels of every sample (chosen per sample).

    Parameters
    ----------
    features : np.ndarray float (N, H, W, C)
    rate : float in [0, 1]
    seed : int

    Returns
    -------
    np.ndarray float (N, H, W, C)
    """
    f = np.array(features, copy=True)
    n, c = f.shape[0], f.shape[-1]
    k = int(round(rate * c))
    rng = np.random.default_rng(seed)
    for i in range(n):
        f[i, ..., rng.permutation(c)[:k]] = 0
    return f


def relative_mse(reference, perturbed):
    """Eq. 8 made scale-free: ``mean ||a - b||² / mean ||a||²`` over samples.

    Parameters
    ----------
    reference, perturbed : array_like (N, ...)
        Row-aligned features.
    """
    a = np.asarray(reference, np.float64).reshape(len(reference), -1)
    b = np.asarray(perturbed, np.float64).reshape(len(perturbed), -1)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    den = np.mean(np.sum(a * a, axis=1))
    return float(np.mean(np.sum((a - b) ** 2, axis=1)) / den) if den > 0 else 0.0


def stage_models(model, stage=3):
    """``(to_stage, to_stage4)``: images → output of ``stage`` (what the next stage receives),
    and that tensor → the features the output layer receives (after stage 4 and SAM).

    ``model`` is an IR-ResNet recognizer of :func:`occface.models.build_recognizer`.
    """
    import keras
    names = [layer.name for layer in model.layers
             if layer.name.startswith(f"stage{stage}_block") and layer.name.endswith("_add")]
    if not names:
        raise ValueError(f"{model.name} has no stage{stage}_block*_add layer")
    point = model.get_layer(max(names, key=lambda s: int(s.split("_block")[1].split("_")[0])))
    end = model.get_layer("output_bn").input
    return (keras.Model(model.input, point.output, name=f"to_stage{stage}"),
            keras.Model(point.output, end, name=f"stage{stage}_to_output"))


def channel_drop_robustness(model, images, rates=(0.25, 0.5), stage=3, seed=0, batch_size=64):
    """Eq. 8 on stage-4 features under stage-``stage`` channel dropout, plus channel locality.

    Parameters
    ----------
    model : keras.Model
        An IR-ResNet recognizer, images ``(N, S, S, 3)`` in [0, 255].
    images : np.ndarray float (N, S, S, 3)
    rates : sequence of float
        Channel-drop rates at the stage output.

    Returns
    -------
    dict
        ``eq8_relative_mse`` per rate (lower = later layers compensate better), ``top10_share``
        (mean :func:`top_share` of the stage's channels at ``q = 0.1``) and ``n_images``.
    """
    to_stage, rest = stage_models(model, stage)
    feats = np.concatenate([np.asarray(to_stage(images[i:i + batch_size], training=False))
                            for i in range(0, len(images), batch_size)])

    def forward(f):
        return np.concatenate([np.asarray(rest(f[i:i + batch_size], training=False))
                               for i in range(0, len(f), batch_size)])
    ref = forward(feats)
    return {"eq8_relative_mse": {f"{r:g}": relative_mse(ref, forward(drop_channels(feats, r,
                                                                                   seed)))
                                 for r in rates},
            "top10_share": float(top_share(feats, 0.1).mean()), "n_images": int(len(images))}
