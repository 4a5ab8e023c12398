"""Training ID-GAN: generator, global and local WGAN-GP critics, structure and identity terms.

:func:`train_idgan` runs a custom loop under ``tf.distribute`` (one device, local devices or
several machines) with the package's shared machinery (:mod:`occface.train`): checkpoints with
exact resume (networks, optimizers, step, data iterator), the ``model_dir`` config guard, the
non-finite guard, TensorBoard scalars and image grids, a progress callback.

The pieces, each in its own module (all importable from here, as before):

* :mod:`occface.inpainting.config` — :class:`IDGANConfig`, every setting and its validation;
* :mod:`occface.inpainting.data` — training identities, faces with hole masks
  (:func:`training_data`, :func:`add_hole_masks`), clean faces for the identity centroids;
* :mod:`occface.inpainting.frozen` — the frozen recognizer (:func:`load_recognizer`) and face
  parser (:func:`prepare_parser`);
* :mod:`occface.inpainting.step` — :class:`IDGANSteps`, the warm-up and adversarial steps
  (stages, loss reduction, distribution; the objective is
  :func:`occface.inpainting.losses.generator_objective`, paper Eq. 6);
* this module — the run: setup, checkpoint / resume, the loop, wrap-up.

``model_dir`` layout::

    config.json            the run's settings (+ num_classes); a different config is refused
    checkpoints/ckpt-N.*   generator, critics, optimizers, step, data iterator, identity centroids
    train/                 TensorBoard: loss terms, Wasserstein estimates, images/s, image grids
    parser.keras           the face parser used by the structure loss (trained here if not given)
    generator.keras        the final generator ([image, mask] -> completed image)
    training.json          run metadata and final scalars
"""

import logging
import time

import keras
import numpy as np
import tensorflow as tf

from occface.inpainting.config import RESUMABLE_KEYS, IDGANConfig
from occface.inpainting.critics import build_global_critic, build_local_critic
from occface.inpainting.data import (add_hole_masks, centroid_data, hole_mask_fn,
                                     load_faces_with_landmarks, take_batches, training_data)
from occface.inpainting.frozen import load_recognizer, prepare_parser
from occface.inpainting.generator import build_generator
from occface.inpainting.identity import RecognizerFeatures, identity_centroids
from occface.inpainting.step import PIXEL_SCALE, IDGANSteps, apply_gradients_if_finite
from occface.train import distribute as dist
from occface.train.checkpoint import (CheckpointKeeper, check_config, save_keras_atomic,
                                      start_run)
from occface.train.data import training_identities
from occface.train.loop import NonFiniteGuard, SummaryWriter, TrainingLoop
from occface.utils import run_metadata, write_json

__all__ = [
    # defined here
    "build_networks", "build_optimizers", "preview_grid", "train_idgan",
    # re-exported from the modules above (imported from here by tools and tests)
    "PIXEL_SCALE", "RESUMABLE_KEYS", "IDGANConfig", "IDGANSteps", "add_hole_masks",
    "apply_gradients_if_finite", "centroid_data", "hole_mask_fn", "load_faces_with_landmarks",
    "load_recognizer", "prepare_parser", "take_batches", "training_data", "training_identities",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# networks


def build_networks(config):
    """The trained networks of a run (call under the strategy scope).

    Parameters
    ----------
    config : IDGANConfig

    Returns
    -------
    generator : keras.Model
        ``[image (N, S, S, 3), mask (N, S, S, 1)] -> completed image (N, S, S, 3)``.
    global_critic : keras.Model
        ``(N, S, S, 3) -> (N, 1)`` scores.
    local_critic : keras.Model
        ``(N, P, P, 3) -> (N, 1)`` scores of the hole patch (``P = config.patch_size``).
    """
    generator = build_generator(config.image_size, width=config.gen_width,
                                dilation_rates=config.dilation_rates)
    global_critic = build_global_critic(config.image_size, width=config.critic_width,
                                        max_width=config.critic_max_width,
                                        norm=config.critic_norm)
    local_critic = build_local_critic(config.patch_size, width=config.critic_width,
                                      max_width=config.critic_max_width, norm=config.critic_norm)
    return generator, global_critic, local_critic


def build_optimizers(config, generator, global_critic, local_critic):
    """Adam for the generator and one Adam for both critics, built on their variables.

    Parameters
    ----------
    config : IDGANConfig
        ``g_learning_rate`` / ``g_beta1`` / ``g_beta2`` and the ``d_`` ones.
    generator, global_critic, local_critic : keras.Model

    Returns
    -------
    g_optimizer, d_optimizer : keras.optimizers.Adam
    """
    g_optimizer = keras.optimizers.Adam(config.g_learning_rate, beta_1=config.g_beta1,
                                        beta_2=config.g_beta2)
    d_optimizer = keras.optimizers.Adam(config.d_learning_rate, beta_1=config.d_beta1,
                                        beta_2=config.d_beta2)
    g_optimizer.build(generator.trainable_variables)
    d_optimizer.build(list(global_critic.trainable_variables)
                      + list(local_critic.trainable_variables))
    return g_optimizer, d_optimizer


def _identity_features(config, recognizer, num_classes):
    """The frozen recognizer's features and an empty centroid table (under the strategy scope).

    Returns
    -------
    features : RecognizerFeatures
    centroids : tf.Variable (C, D), zeros until :func:`_fill_centroids`.
    """
    if recognizer is None:
        recognizer = load_recognizer(config.recognizer_path)
    features = RecognizerFeatures(recognizer, low_layer=config.recognizer_low_layer or None)
    probe = np.zeros((1, config.image_size, config.image_size, 3), np.float32)
    dim = int(features.embed(probe).shape[-1])
    centroids = tf.Variable(tf.zeros([int(num_classes), dim]), trainable=False,
                            name="identity_centroids")
    return features, centroids


def _init_generator(generator, path):
    """Copy the weights of the generator at ``path`` into ``generator`` (same architecture)."""
    from occface.inpainting.evaluate import load_generator
    source = load_generator(path)
    mine, theirs = generator.get_weights(), source.get_weights()
    if len(mine) != len(theirs) or any(a.shape != b.shape for a, b in zip(mine, theirs)):
        raise ValueError(f"init_generator {path} has another architecture than this run's "
                         "generator (check image_size, gen_width, dilation_rates)")
    generator.set_weights(theirs)
    log.info("generator initialised from %s", path)


def _restore_or_start(keeper, step_var, config, generator, resuming):
    """Restore the newest checkpoint, else start (from ``config.init_generator`` if set).

    Returns
    -------
    str or None
        The restored checkpoint's path.
    """
    restored = keeper.restore()
    if restored:
        log.info("resumed from %s at step %d", restored, int(step_var.numpy()))
    else:
        if resuming:
            log.info("model_dir %s has a matching config but no checkpoint; starting at step 0",
                     config.model_dir)
        if config.init_generator:
            _init_generator(generator, config.init_generator)
    return restored


# --------------------------------------------------------------------------------------------
# identity centroids


def _centroid_faces(config, centroid_dataset, dataset, built_here, identities):
    """The clean faces the centroids are computed on (see :func:`train_idgan`)."""
    limit = config.centroid_batches
    if centroid_dataset is None:
        if built_here:
            centroid_dataset = centroid_data(config, identities)
        else:  # a caller's (infinite) stream: a fixed number of its batches
            limit = limit or 10
            centroid_dataset = dataset
    return take_batches(centroid_dataset, limit) if limit else centroid_dataset


def _fill_centroids(centroids, have_centroids, features, faces, config, num_classes):
    """Compute the identity centroids on ``faces`` into ``centroids``; mark them done."""
    table, counts = identity_centroids(features, faces, num_classes=int(num_classes),
                                       normalize=config.id_normalize, return_counts=True)
    centroids.assign(table)
    have_centroids.assign(True)
    log.info("identity centroids of %d identities (%d faces)", int((counts > 0).sum()),
             int(counts.sum()))


# --------------------------------------------------------------------------------------------
# previews


def preview_grid(generator, truth, masks):
    """Rows ``input (hole white) | mask | output | truth`` stacked vertically: (N·S, 4·S, 3).

    Parameters
    ----------
    generator : keras.Model
    truth : (N, S, S, 3) float array in [0, 255]
    masks : (N, S, S, 1) float array, 1 = hole

    Returns
    -------
    uint8 array (N·S, 4·S, 3).
    """
    truth = np.asarray(truth, np.float32)
    masks = np.asarray(masks, np.float32)
    output = keras.ops.convert_to_numpy(generator([truth, masks], training=False))
    shown_input = truth * (1.0 - masks) + 255.0 * masks
    mask_rgb = np.repeat(masks * 255.0, 3, axis=-1)
    rows = np.concatenate([shown_input, mask_rgb, output, truth], axis=2)  # (N, S, 4S, 3)
    grid = rows.reshape(-1, rows.shape[2], 3)
    return np.clip(np.rint(grid), 0, 255).astype(np.uint8)


def _preview_hook(config, dataset, generator, writer):
    """A loop hook writing :func:`preview_grid` of the first batch every ``image_interval``."""
    preview = next(iter(dataset))
    n = max(1, min(config.preview_images, int(preview[0].shape[0])))
    truth, masks = preview[0][:n].numpy(), preview[2][:n].numpy()

    def image_hook(step, _values):
        if step % config.image_interval == 0 or step == config.steps:
            grid = preview_grid(generator, truth, masks)
            writer.images(step, "input_mask_output_truth", grid[None], max_outputs=1)
    return image_hook


# --------------------------------------------------------------------------------------------
# the run


def train_idgan(config, *, dataset=None, num_classes=None, recognizer=None, parser=None,
                centroid_dataset=None, progress=None, strategy=None):
    """Train (or resume) ID-GAN in ``config.model_dir``.

    Parameters
    ----------
    config : IDGANConfig or dict
    dataset : tf.data.Dataset, optional
        This worker's batches ``(truth float32 (b, S, S, 3) [0, 255], labels int32 (b,), masks
        float32 (b, S, S, 1))`` with a static batch dimension (see :func:`add_hole_masks`);
        default: built from ``config.data_dir`` by :func:`training_data`. Must be
        checkpointable for exact resume.
    num_classes : int, optional
        Required with ``dataset`` (number of identity labels, for the centroids).
    recognizer : keras.Model or callable, optional
        Frozen recognizer for the identity terms; default loaded from ``config.recognizer_path``.
        Without either (or with ``identity_weight == 0``) the run is "w/oID".
    parser : keras.Model or callable, optional
        Face parser for the structure loss; default :func:`prepare_parser`.
    centroid_dataset : iterable of (images, labels), optional
        Clean faces for the identity centroids; default :func:`centroid_data` of
        ``config.data_dir``, or ``config.centroid_batches`` batches of ``dataset``.
    progress : callable, optional
        ``progress(step, total, scalars)`` after each step.
    strategy : tf.distribute.Strategy, optional
        Default ``make_strategy(config.strategy)``.

    Returns
    -------
    dict
        ``{"step", "final", "history", "images_per_sec", "skipped_steps", "generator_path",
        "restored_from", "num_replicas", "identity", "structure"}``.

    Raises
    ------
    ValueError, FileNotFoundError
        Invalid settings or data, a frozen recognizer or face parser that is missing or does not
        fit the run (``ConfigMismatchError``: a ``model_dir`` of another run).
    NonFiniteLossError
        ``max_nonfinite_steps`` non-finite steps in a row.
    """
    config, model_dir = start_run(config, IDGANConfig, dataset, num_classes)

    # -- distribution and data
    strategy = strategy or dist.make_strategy(config.strategy)
    per_worker_batch = dist.per_worker_batch_size(strategy, config.batch_size)
    is_chief = dist.worker_info(strategy)[0]
    worker = dist.worker_index(strategy)
    identities = None
    built_here = dataset is None
    if built_here:
        identities = training_identities(config)
        dataset, num_classes = training_data(config, per_worker_batch,
                                             config.seed + 1000 * worker, identities)
    stored = dict(config.to_dict(), num_classes=int(num_classes))
    resuming = check_config(model_dir, stored, ignore=RESUMABLE_KEYS, write=is_chief)

    # -- networks, optimizers, frozen networks
    use_identity = config.identity_weight > 0 and (recognizer is not None
                                                   or bool(config.recognizer_path))
    use_structure = config.structure_weight > 0
    with strategy.scope():
        generator, global_critic, local_critic = build_networks(config)
        g_optimizer, d_optimizer = build_optimizers(config, generator, global_critic,
                                                    local_critic)
        if use_structure and parser is None:
            parser = prepare_parser(config, model_dir, identities, is_chief)
        features = centroids = None
        if use_identity:
            features, centroids = _identity_features(config, recognizer, num_classes)

    # -- checkpoint / resume
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    have_centroids = tf.Variable(False, trainable=False, name="have_centroids")
    inputs = dist.ShardedInput(strategy, dataset)
    trackables = dict(generator=generator, global_critic=global_critic,
                      local_critic=local_critic, g_optimizer=g_optimizer,
                      d_optimizer=d_optimizer, step=step_var, iterator=inputs.iterator)
    if centroids is not None:
        trackables.update(centroids=centroids, have_centroids=have_centroids)
    keeper = CheckpointKeeper(model_dir, is_chief=is_chief, max_to_keep=config.keep_checkpoints,
                              **trackables)
    restored = _restore_or_start(keeper, step_var, config, generator, resuming)
    if centroids is not None and not bool(have_centroids.numpy()):
        faces = _centroid_faces(config, centroid_dataset, dataset, built_here, identities)
        _fill_centroids(centroids, have_centroids, features, faces, config, num_classes)

    # -- the loop
    steps = IDGANSteps(strategy, config, generator, global_critic, local_critic, g_optimizer,
                       d_optimizer, inputs, step_var, parser=parser if use_structure else None,
                       features=features, centroids=centroids)
    writer = SummaryWriter(model_dir / "train", enabled=is_chief)
    hooks = []
    if is_chief and config.image_interval:
        hooks.append(_preview_hook(config, dataset, generator, writer))
    loop = TrainingLoop(steps, config.steps, step_var, keeper,
                        checkpoint_interval=config.checkpoint_interval,
                        summary_interval=config.summary_interval,
                        guard=NonFiniteGuard(config.max_nonfinite_steps), summaries=writer,
                        hooks=hooks, progress=progress,
                        images_per_step=config.batch_size)
    started = time.monotonic()
    start_step = int(step_var.numpy())
    try:
        loop.run()
    finally:
        keeper.close()
        writer.close()

    # -- wrap-up
    elapsed = time.monotonic() - started
    done = int(step_var.numpy()) - start_step
    result = {"step": int(step_var.numpy()), "restored_from": restored,
              "final": loop.history[-1][1] if loop.history else {},
              "history": [{"step": s, **v} for s, v in loop.history],
              "images_per_sec": done * config.batch_size / elapsed if done else None,
              "skipped_steps": loop.guard.total_skipped,
              "num_replicas": strategy.num_replicas_in_sync, "num_classes": int(num_classes),
              "identity": use_identity, "structure": use_structure,
              "generator_path": str(model_dir / "generator.keras")}
    if is_chief:
        save_keras_atomic(generator, model_dir / "generator.keras")
        write_json(model_dir / "config.json", stored)
        meta = run_metadata(stored)
        meta["result"] = {k: v for k, v in result.items() if k != "history"}
        write_json(model_dir / "training.json", meta)
    return result
