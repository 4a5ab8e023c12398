"""ID-GAN losses (Ge et al., IEEE TCSVT 2020).

Every loss takes tensors in the package's conventions (images float in [0, 255], masks
(N, H, W, 1) with 1 = hole) and returns the batch mean, or with ``reduce=False`` the per-sample
values (N,) so that a ``tf.distribute`` loop can divide by the *global* batch size.

Overall generator objective (paper Eq. 6, :func:`generator_objective`; weights as trainer
flags)::

    L_G = L_rec + λ_adv,g · L_adv(global) + λ_adv,l · L_adv(local) + λ_S · L_S
          + λ_R · (L_inst + L_div)

and the critics' objective, per critic (global and local), :func:`critic_wasserstein_loss` plus
:func:`gradient_penalty`.

Pixel differences are measured on the normalised scale ``x / 127.5`` (i.e. [-1, 1] images), so the
reconstruction loss has the usual magnitude independent of the [0, 255] input convention.

``reduction`` (reconstruction, structure and instance losses) says how the terms are reduced over
the non-batch axes (pixels, feature elements): ``"mean"`` (default; magnitudes independent of
image/feature size) or ``"sum"`` (per-image sums). The paper's weights (adversarial 300 each,
λ_S = 0.05, λ_R = 2e-4, inherited from Generative Face Completion, Li et al. 2017) only balance
with per-image sums — a mean L1 of ~0.1 next to 300·(WGAN score) would vanish — so the ID-GAN
trainer uses ``"sum"`` with the paper's weights.

The terms live in one module each (all importable from here):

* :mod:`occface.inpainting.reconstruction` — :func:`discounted_reconstruction_loss` (with
  :func:`spatial_discount_weights`, :func:`hole_distance`) and :func:`structure_loss`;
* :mod:`occface.inpainting.adversarial` — the WGAN-GP terms :func:`critic_wasserstein_loss`,
  :func:`generator_adversarial_loss`, :func:`gradient_penalty`;
* :mod:`occface.inpainting.identity_losses` — :func:`instance_loss` (Eq. 4) and
  :func:`identity_diversity_loss` (Eq. 5);
* :mod:`occface.inpainting.reduction` — the ``reduction`` / ``reduce`` rules they share.
"""

from keras import ops

from occface.inpainting.adversarial import (critic_wasserstein_loss, generator_adversarial_loss,
                                            gradient_penalty)
from occface.inpainting.identity_losses import identity_diversity_loss, instance_loss
from occface.inpainting.reconstruction import (discounted_reconstruction_loss, hole_distance,
                                               spatial_discount_weights, structure_loss)
from occface.inpainting.reduction import reduce_batch

__all__ = ["critic_wasserstein_loss", "discounted_reconstruction_loss",
           "generator_adversarial_loss", "generator_objective", "gradient_penalty",
           "hole_distance", "identity_diversity_loss", "instance_loss",
           "spatial_discount_weights", "structure_loss"]


def generator_objective(reconstruction, adv_global, adv_local, structure, instance, diversity,
                        *, adv_global_weight=300.0, adv_local_weight=300.0,
                        structure_weight=0.05, identity_weight=2e-4, reduce=True):
    """Total generator objective of ID-GAN (paper Eq. 6): the weighted sum of all the terms.

    ``L_G = L_rec + λ_adv,g · L_adv,g + λ_adv,l · L_adv,l + λ_S · L_S + λ_R · (L_inst + L_div)``

    The reconstruction term has weight 1 (its hole / valid weights are inside
    :func:`discounted_reconstruction_loss`); one weight λ_R covers both identity terms. The paper's
    weights (the defaults) balance per-image *sums* over pixels / feature elements
    (``reduction="sum"`` of the terms). A term that is off (warm-up, no parser, no recognizer)
    is passed as zeros.

    Parameters
    ----------
    reconstruction : (N,) tensor
        L_rec, :func:`discounted_reconstruction_loss` with ``reduce=False``.
    adv_global, adv_local : (N,) tensors
        L_adv of the global and the local critic, :func:`generator_adversarial_loss`.
    structure : (N,) tensor
        L_S, :func:`structure_loss`.
    instance : (N,) tensor
        L_inst, :func:`instance_loss` (Eq. 4).
    diversity : (N,) tensor
        L_div, :func:`identity_diversity_loss` (Eq. 5).
    adv_global_weight, adv_local_weight : float
        λ_adv,g and λ_adv,l (paper: 300 each).
    structure_weight : float
        λ_S (paper: 0.05).
    identity_weight : float
        λ_R (paper: 2e-4).
    reduce : bool
        Mean over the batch (default) or per-sample values (N,).

    Returns
    -------
    Scalar, or (N,) with ``reduce=False``. (Scalar terms, e.g. batch means, give the scalar
    objective of those means either way: the objective is linear.)
    """
    rec, adv_g, adv_l, struct, inst, div = (
        ops.cast(t, "float32") for t in (reconstruction, adv_global, adv_local, structure,
                                         instance, diversity))
    per_sample = (rec + adv_global_weight * adv_g + adv_local_weight * adv_l
                  + structure_weight * struct + identity_weight * (inst + div))
    return reduce_batch(per_sample, reduce)

