"""The recognizer's training step: ArcFace + spatial regularization (SR) + L2 under tf.distribute.

One step (:func:`make_train_step`), per replica holding ``b = B / R`` of the global batch ``B``
over ``R`` replicas:

``loss_r = Σ_n CE_n / B + (SR-filter + SR-response + L2) / R``

so that the all-reduced *sum* of the replicas' gradients (what the optimizer applies) is the
gradient of ``mean_n CE_n + SR + L2`` over the global batch — exactly the single-device loss.
The Eq. 2 term is a per-replica batch mean, so its replica average is the global mean. A step
whose all-reduced loss or gradients are not finite is skipped on every replica (no optimizer
update, BatchNorm moving statistics restored).

The two SR terms are collected by the layers that produce them (:func:`regularization_terms`):
Eq. 1 from the weights regularized by :class:`occface.losses.FilterOrthogonalityRegularizer`,
Eq. 2 from the :class:`occface.layers.ResponseDecorrelation` layers' own losses.
"""

import tensorflow as tf

from occface.train import distribute as dist
from occface.train.model import all_layers
from occface.train.optim import l2_penalty


def regularization_terms(model, reference=None):
    """The Eq. 1 and Eq. 2 terms of this replica's forward pass, collected by the layers that
    produce them.

    Call right after a ``training=True`` forward pass (inside the same trace).

    * Eq. 1 (filter orthogonality): the sum of the kernel regularizers of the trainable weights
      regularized by a :class:`~occface.losses.FilterOrthogonalityRegularizer`, evaluated on the
      current weights;
    * Eq. 2 (response decorrelation): the sum of the losses that the
      :class:`~occface.layers.ResponseDecorrelation` layers added in this forward pass.

    Parameters
    ----------
    model : keras.Model
    reference : tensor, optional
        An output of this replica's forward pass. Under ``MirroredStrategy`` the replicas share
        the layer objects and Keras keeps ``add_loss`` terms on the layer, so a
        ``ResponseDecorrelation`` layer's ``losses`` hold the terms of *every* replica traced so
        far (the replica threads interleave at synchronised-BatchNorm all-reduces). A term
        carries nothing that names its replica but its placement, so only the terms on
        ``reference``'s device -- this replica's -- are kept. (Keras's per-call collection,
        ``StatelessScope(collect_losses=True)``, would avoid this but also captures BatchNorm's
        moving-statistics assignments, i.e. changes how the step updates them.)

    Returns
    -------
    tuple
        float32 scalars ``(filter_term, response_term)``.

    Raises
    ------
    ValueError
        ``model.losses`` holds a term that is neither (another regularizer or ``add_loss``): the
        step would silently drop it.
    """
    from occface.layers import ResponseDecorrelation
    from occface.losses import FilterOrthogonalityRegularizer
    regularized = [v for v in model.trainable_weights
                   if getattr(v, "regularizer", None) is not None]
    others = [v for v in regularized
              if not isinstance(v.regularizer, FilterOrthogonalityRegularizer)]
    if others:
        raise ValueError(f"the recognizer step knows the Eq. 1 regularizer only; {others[0].path} "
                         f"has a {type(others[0].regularizer).__name__}")
    layers = [layer for layer in all_layers(model) if isinstance(layer, ResponseDecorrelation)]
    responses = [term for layer in layers for term in layer.losses]
    unattributed = len(model.losses) - len(regularized) - len(responses)
    if unattributed:
        raise ValueError(f"model.losses holds {unattributed} term(s) that are neither Eq. 1 "
                         "(FilterOrthogonalityRegularizer) nor Eq. 2 (ResponseDecorrelation)")
    if reference is not None and tf.distribute.has_strategy() and responses:
        device = getattr(reference, "device", "")
        mine = [term for term in responses if getattr(term, "device", "") == device]
        if device and mine:
            responses = mine
    return _sum([v.regularizer(v) for v in regularized]), _sum(responses)


def _sum(terms):
    terms = [tf.cast(t, tf.float32) for t in terms]
    return tf.add_n(terms) if terms else tf.zeros((), tf.float32)


def make_train_step(strategy, model, head, optimizer, inputs, *, global_batch_size,
                    l2_weight_decay=0.0, jit_compile=False, check_gradients=True):
    """The distributed training step of the recognizer, as a ``tf.function`` with no arguments.

    Parameters
    ----------
    strategy : tf.distribute.Strategy
    model, head : the recognizer and the ArcFace layer (built under ``strategy.scope()``).
    optimizer : keras optimizer (built on ``model`` + ``head`` trainable variables).
    inputs : ShardedInput
        Yields ``(images float32 (b, S, S, 3) in [0, 255], labels int32 (b,))`` per replica,
        optionally with a third element: the ``int64`` scalar count of training images skipped
        so far because they did not decode (``training_dataset(with_skip_count=True)``).
    global_batch_size : int
    l2_weight_decay : float
        Coupled weight decay (SGD), added as ``wd/2·Σ‖w‖²``.
    jit_compile : bool
        XLA-compile the forward/backward pass (single device only).
    check_gradients : bool
        Also skip steps with non-finite gradients (a ``LossScaleOptimizer`` does this itself).

    Returns
    -------
    callable
        ``step() -> dict`` of scalar tensors: ``loss``, ``arcface``, ``sr_filter``,
        ``sr_response``, ``weight_decay``, ``accuracy`` (margin logits, global batch),
        ``finite`` (whether the update was applied), ``skipped_images_count`` (this worker's
        undecodable images so far; 0 without a counter).
    """
    from occface.losses import arcface_loss
    num_replicas = strategy.num_replicas_in_sync
    if jit_compile and dist.is_distributed(strategy):
        raise ValueError("jit_compile (XLA) is supported on a single device only; XLA inside "
                         "MirroredStrategy replicas fails")
    variables = list(model.trainable_variables) + list(head.trainable_variables)
    bn_state = list(model.non_trainable_weights)

    def forward(images, labels):
        labels = tf.cast(labels, tf.int32)
        with tf.GradientTape() as tape:
            embeddings = model(images, training=True)
            logits = head([embeddings, labels], training=True)
            local = tf.cast(tf.shape(labels)[0], tf.float32)
            arc = arcface_loss(labels, logits) * local / float(global_batch_size)
            filt, resp = regularization_terms(model, reference=embeddings)
            wd = l2_penalty(variables, l2_weight_decay)
            loss = arc + (filt + resp + wd) / float(num_replicas)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        correct = tf.reduce_sum(tf.cast(
            tf.equal(tf.argmax(tf.cast(logits, tf.float32), axis=-1, output_type=tf.int32),
                     labels), tf.float32))
        if check_gradients:
            ok = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(g))
                                         for g in grads if g is not None]))
        else:
            ok = tf.constant(True)
        bad = 1.0 - tf.cast(ok, tf.float32)
        terms = [arc, filt / num_replicas, resp / num_replicas, wd / num_replicas,
                 correct / float(global_batch_size), bad]
        return grads, terms

    if jit_compile:
        forward = tf.function(forward, jit_compile=True)

    def replica_step(batch):
        images, labels = batch[0], batch[1]
        skipped = tf.cast(batch[2], tf.float32) if len(batch) > 2 else tf.zeros((), tf.float32)
        snapshot = [tf.identity(v) for v in bn_state]
        grads, terms = forward(images, labels)
        arc, filt, resp, wd, acc, bad = dist.all_reduce_sum(terms)
        loss = arc + filt + resp + wd
        finite = tf.logical_and(tf.math.is_finite(loss), tf.equal(bad, 0.0))

        def apply(grads_):
            optimizer.apply(list(grads_), variables)

        def restore(snapshot_):
            for v, s in zip(bn_state, snapshot_):
                v.assign(s)

        dist.apply_if_finite(finite, apply, (list(grads),), restore, (snapshot,))
        return {"loss": loss, "arcface": arc, "sr_filter": filt, "sr_response": resp,
                "weight_decay": wd, "accuracy": acc, "finite": tf.cast(finite, tf.float32),
                "skipped_images_count": skipped}

    @tf.function
    def step():
        batch = inputs.next()
        out = strategy.run(replica_step, args=(batch,))
        # Every replica holds the same all-reduced values; take the first.
        return {k: strategy.experimental_local_results(v)[0] for k, v in out.items()}

    return step
