"""One ID-GAN training step under ``tf.distribute``: the warm-up and the adversarial step.

Stages
    1. ``warmup_steps`` reconstruction-only steps (generator only; GLCIC's first phase).
    2. Adversarial steps: ``critic_steps`` critic updates (each on a fresh batch), then one
       generator update on the last batch with all terms::

           L_G = L_rec + w_g·(−D_g(X̂)) + w_l·(−D_l(patch(X̂))) + λ_S·L_S + λ_R·(L_inst + L_div)
           L_D = Σ_{g,l} [D(fake) − D(real) + GP]

       ``L_G`` is :func:`~occface.inpainting.losses.generator_objective` (paper Eq. 6) of the
       terms; ``L_D`` is :func:`~occface.inpainting.losses.critic_wasserstein_loss` plus
       :func:`~occface.inpainting.losses.gradient_penalty` for each critic.

Loss reduction
    Terms are per-image sums over pixels / feature elements (``loss_reduction="sum"``), averaged
    over the global batch; the paper's weights (300, 300, 0.05, 2e-4) are calibrated for sums
    (see :mod:`occface.inpainting.losses`). ``"mean"`` is available for experiments.

Distribution
    Every replica computes its per-sample terms and divides their sum by the *global* batch size;
    the all-reduced sum of gradients is then the single-device gradient. The interpolation
    coefficients ε of the gradient penalty are drawn for the global batch from
    ``(seed, step)`` with stateless RNG and sliced per replica, so a run is reproducible and
    resumes exactly, and a multi-replica run draws the same ε as a single-device one.
"""

import tensorflow as tf

from occface.inpainting.critics import crop_hole_patch, hole_boxes
from occface.inpainting.frozen import frozen_call
from occface.inpainting.generator import generator_with_raw_output
from occface.inpainting.losses import (critic_wasserstein_loss, discounted_reconstruction_loss,
                                       generator_adversarial_loss, generator_objective,
                                       gradient_penalty, identity_diversity_loss, instance_loss,
                                       spatial_discount_weights, structure_loss)
from occface.train import distribute as dist

PIXEL_SCALE = 127.5  # the networks see x / 127.5 - 1

#: What a generator update reports (batch means; ``loss_g`` is the objective).
GENERATOR_TERMS = ("loss_g", "reconstruction", "adv_global", "adv_local", "structure",
                   "instance", "diversity")
#: What a critic update reports (batch means; ``wasserstein_*`` = D(real) − D(fake)).
CRITIC_TERMS = ("loss_d", "wasserstein_global", "wasserstein_local", "gp_global", "gp_local")


class IDGANSteps:
    """The distributed warm-up and adversarial steps (``tf.function`` s with no arguments).

    Calling the object runs the step the loop's step counter is at and returns its scalars:
    :data:`GENERATOR_TERMS` (warm-up: ``loss_g`` and ``reconstruction`` only), in adversarial
    steps also :data:`CRITIC_TERMS` of the last critic update, and ``finite`` (1.0 when every
    update of the step was applied).

    Parameters
    ----------
    strategy : tf.distribute.Strategy
    config : IDGANConfig
    generator, global_critic, local_critic : keras.Model
    g_optimizer, d_optimizer : keras optimizers (built on the generator / both critics)
    inputs : ShardedInput
        Yields ``(truth (b, S, S, 3), labels (b,), masks (b, S, S, 1))`` per replica.
    step : tf.Variable
        The loop's step counter (seeds the gradient-penalty ε).
    parser : callable or None
        Frozen face parser (structure loss), or None.
    features : RecognizerFeatures or None
        Frozen recognizer (identity terms), or None.
    centroids : tf.Variable (C, D) or None
        Identity centroids of the training identities.
    """

    def __init__(self, strategy, config, generator, global_critic, local_critic, g_optimizer,
                 d_optimizer, inputs, step, parser=None, features=None, centroids=None):
        self.strategy = strategy
        self.config = config
        self.generator = generator
        self.both = generator_with_raw_output(generator)
        self.global_critic = global_critic
        self.local_critic = local_critic
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.inputs = inputs
        self.step = step
        self.parser = parser if config.structure_weight > 0 else None
        self.features = features if config.identity_weight > 0 else None
        self.centroids = centroids
        self.global_batch = int(config.batch_size)
        self.num_replicas = strategy.num_replicas_in_sync
        self.g_vars = list(generator.trainable_variables)
        self.d_vars = list(global_critic.trainable_variables) + list(
            local_critic.trainable_variables)
        # No autograph: the steps only branch on Python values (and converting Keras code is slow).
        self.warmup = tf.function(self._warmup, autograph=False)
        self.adversarial = tf.function(self._adversarial, autograph=False)

    # -- per-replica pieces ---------------------------------------------------------------------

    def _share(self, per_sample):
        """This replica's share of the global-batch mean: ``Σ per_sample / global batch``."""
        return tf.reduce_sum(per_sample) / float(self.global_batch)

    def _epsilon(self, offset):
        """This replica's slice of the global batch's ε ~ U[0, 1), from (seed, step, offset)."""
        ctx = tf.distribute.get_replica_context()
        rid = ctx.replica_id_in_sync_group if ctx is not None else 0
        seed = tf.stack([tf.constant(self.config.seed, tf.int64),
                         tf.cast(self.step, tf.int64) * 16 + offset])
        full = tf.random.stateless_uniform([self.global_batch], seed)
        b = self.global_batch // self.num_replicas
        rid = tf.cast(rid, tf.int32)
        return full[rid * b:(rid + 1) * b]

    def _identity_terms(self, completed, truth, labels):
        """``(L_inst, L_div)``, each (b,), of the completed faces (b, S, S, 3)."""
        cfg = self.config
        low_f, high_f = self.features(completed)
        low_r, high_r = self.features(truth)
        inst = instance_loss(low_f, low_r, high_f, high_r, alpha_low=cfg.alpha_low,
                             alpha_high=cfg.alpha_high, reduction=cfg.loss_reduction,
                             reduce=False)
        if cfg.id_normalize:
            high_f = tf.math.l2_normalize(high_f, axis=-1)
            high_r = tf.math.l2_normalize(high_r, axis=-1)
        div = identity_diversity_loss(high_f, high_r, self.centroids, beta=cfg.beta,
                                      labels=labels, reduce=False)
        return inst, div

    def _generator_terms(self, truth, labels, masks, adversarial):
        """Gradients of ``L_G`` for the generator, its reported terms, the completed faces.

        Warm-up (``adversarial=False``): reconstruction only, the other terms are zeros.
        """
        cfg = self.config
        zero = tf.zeros([tf.shape(truth)[0]], tf.float32)
        with tf.GradientTape() as tape:
            completed, raw = self.both([truth, masks], training=True)
            discount = spatial_discount_weights(masks, cfg.gamma)
            rec = discounted_reconstruction_loss(
                raw, truth, masks, discount=discount, hole_weight=cfg.rec_hole_weight,
                valid_weight=cfg.rec_valid_weight, reduction=cfg.loss_reduction, reduce=False)
            adv_g = adv_l = struct = inst = div = zero
            if adversarial:
                adv_g = generator_adversarial_loss(self.global_critic(completed, training=True),
                                                   reduce=False)
                patch = crop_hole_patch(completed, hole_boxes(masks), cfg.patch_size)
                adv_l = generator_adversarial_loss(self.local_critic(patch, training=True),
                                                   reduce=False)
                if self.parser is not None:
                    struct = structure_loss(frozen_call(self.parser), completed,
                                            truth, target=cfg.structure_target,
                                            reduction=cfg.loss_reduction, reduce=False)
                if self.features is not None:
                    inst, div = self._identity_terms(completed, truth, labels)
            per_sample = generator_objective(
                rec, adv_g, adv_l, struct, inst, div, adv_global_weight=cfg.adv_global_weight,
                adv_local_weight=cfg.adv_local_weight, structure_weight=cfg.structure_weight,
                identity_weight=cfg.identity_weight, reduce=False)
            loss = self._share(per_sample)
        grads = tape.gradient(loss, self.g_vars)
        terms = [loss] + [self._share(t) for t in (rec, adv_g, adv_l, struct, inst, div)]
        return grads, terms, completed

    def _critic_terms(self, truth, masks, offset):
        """Gradients of ``L_D`` for both critics and its reported terms (``offset``: ε stream)."""
        cfg = self.config
        completed = tf.stop_gradient(self.generator([truth, masks], training=True))
        boxes = hole_boxes(masks)
        real_patch = crop_hole_patch(truth, boxes, cfg.patch_size)
        fake_patch = crop_hole_patch(completed, boxes, cfg.patch_size)
        eps_g = self._epsilon(2 * offset)
        eps_l = self._epsilon(2 * offset + 1)
        with tf.GradientTape() as tape:
            w_g = critic_wasserstein_loss(self.global_critic(truth, training=True),
                                          self.global_critic(completed, training=True),
                                          reduce=False)
            w_l = critic_wasserstein_loss(self.local_critic(real_patch, training=True),
                                          self.local_critic(fake_patch, training=True),
                                          reduce=False)
            gp_g = gradient_penalty(lambda x: self.global_critic(x, training=True), truth,
                                    completed, weight=cfg.gp_weight, epsilon=eps_g,
                                    input_scale=PIXEL_SCALE, reduce=False)
            gp_l = gradient_penalty(lambda x: self.local_critic(x, training=True), real_patch,
                                    fake_patch, weight=cfg.gp_weight, epsilon=eps_l,
                                    input_scale=PIXEL_SCALE, reduce=False)
            loss = self._share(w_g + w_l + gp_g + gp_l)
        grads = tape.gradient(loss, self.d_vars)
        # reported Wasserstein estimates are D(real) − D(fake), the negated critic losses
        terms = [loss, self._share(-w_g), self._share(-w_l), self._share(gp_g),
                 self._share(gp_l)]
        return grads, terms

    @staticmethod
    def _bad(grads):
        ok = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(g))
                                     for g in grads if g is not None]))
        return 1.0 - tf.cast(ok, tf.float32)

    def _apply(self, optimizer, grads, variables, loss, bad):
        finite = tf.logical_and(tf.math.is_finite(loss), tf.equal(bad, 0.0))
        apply_gradients_if_finite(finite, optimizer, grads, variables)
        return finite

    def _replica_generator(self, batch, adversarial):
        truth, labels, masks = batch
        grads, terms, _ = self._generator_terms(truth, labels, masks, adversarial)
        reduced = dist.all_reduce_sum(terms + [self._bad(grads)])
        finite = self._apply(self.g_optimizer, grads, self.g_vars, reduced[0], reduced[-1])
        return finite, dict(zip(GENERATOR_TERMS, reduced[:-1]))

    def _replica_critic(self, batch, offset):
        truth, _, masks = batch
        grads, terms = self._critic_terms(truth, masks, offset)
        reduced = dist.all_reduce_sum(terms + [self._bad(grads)])
        finite = self._apply(self.d_optimizer, grads, self.d_vars, reduced[0], reduced[-1])
        return finite, dict(zip(CRITIC_TERMS, reduced[:-1]))

    # -- the steps ------------------------------------------------------------------------------

    def _run(self, fn, *args):
        out = self.strategy.run(fn, args=args)
        return tf.nest.map_structure(lambda v: self.strategy.experimental_local_results(v)[0], out)

    def _warmup(self):
        batch = self.inputs.next()

        def replica(b):
            finite, values = self._replica_generator(b, adversarial=False)
            return {"loss_g": values["loss_g"], "reconstruction": values["reconstruction"],
                    "finite": tf.cast(finite, tf.float32)}
        return self._run(replica, batch)

    def _adversarial(self):
        finite_all = tf.constant(True)
        critic_values = None
        batch = None
        for k in range(self.config.critic_steps):
            batch = self.inputs.next()

            def replica_c(b, _k=k):
                finite, values = self._replica_critic(b, _k)
                return dict(values, finite=tf.cast(finite, tf.float32))
            out = self._run(replica_c, batch)
            finite_all = tf.logical_and(finite_all, out.pop("finite") > 0.5)
            critic_values = out

        def replica_g(b):
            finite, values = self._replica_generator(b, adversarial=True)
            return dict(values, finite=tf.cast(finite, tf.float32))
        out = self._run(replica_g, batch)
        finite_all = tf.logical_and(finite_all, out.pop("finite") > 0.5)
        out.update(critic_values)
        out["finite"] = tf.cast(finite_all, tf.float32)
        return out

    def __call__(self):
        """One training step: warm-up (reconstruction only) or adversarial, by the step count."""
        if int(self.step.numpy()) < self.config.warmup_steps:
            return self.warmup()
        return self.adversarial()


def apply_gradients_if_finite(finite, optimizer, grads, variables):
    """``optimizer.apply(grads, variables)`` on every replica when ``finite``, else nothing.

    Replica context, ``finite`` equal on all replicas (derived from all-reduced values). Uses
    :func:`occface.train.distribute.apply_if_finite` with the gradients passed as per-replica
    arguments, so each replica hands its *own* gradients to the optimizer, which all-reduces them
    as usual (a closure would apply the first replica's gradients everywhere). ``None`` gradients
    (variables that do not affect the loss, e.g. a critic's last bias under the gradient
    penalty) are zeros.

    Parameters
    ----------
    finite : bool tensor ()
        Whether to apply the update.
    optimizer : keras.optimizers.Optimizer
        Built on ``variables``.
    grads : sequence of tensors or None
        This replica's gradients, one per variable (shaped like it).
    variables : sequence of tf.Variable
    """
    grads = tuple(tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables))
    dist.apply_if_finite(finite, lambda g: optimizer.apply(list(g), variables),
                         apply_args=(grads,))
