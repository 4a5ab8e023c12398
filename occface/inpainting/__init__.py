"""ID-GAN: identity-diversity inpainting of occluded faces (Ge et al., IEEE TCSVT 2020).

Pieces:

* generator G — :func:`build_generator` (inputs ``[image, mask]``, 1 = hole; output the completed
  face ``M⊙G + (1−M)⊙X`` in [0, 255]);
* WGAN-GP critics — :func:`build_global_critic`, :func:`build_local_critic`, with
  :func:`hole_boxes` / :func:`crop_hole_patch` for the local patch and :func:`gradient_penalty`;
* losses — :func:`discounted_reconstruction_loss` (with :func:`spatial_discount_weights`),
  :func:`structure_loss` (face parser S: :func:`build_face_parser`, trained on
  :func:`parsing_labels_from_landmarks` by :func:`train_face_parser`), :func:`instance_loss`,
  :func:`identity_diversity_loss` (Eq. 5) with :func:`identity_centroids`, the WGAN terms
  :func:`critic_wasserstein_loss` / :func:`generator_adversarial_loss`, and their weighted sum
  :func:`generator_objective` (Eq. 6);
* the frozen recognizer adapter :class:`RecognizerFeatures`;
* classical baselines :func:`classical_inpaint` (OpenCV Telea / Navier–Stokes);
* training: :mod:`occface.inpainting.trainer` (:class:`~occface.inpainting.trainer.IDGANConfig`,
  :func:`~occface.inpainting.trainer.train_idgan`; built from :mod:`~occface.inpainting.config`,
  :mod:`~occface.inpainting.data`, :mod:`~occface.inpainting.frozen` and
  :mod:`~occface.inpainting.step`), imported on demand;
* comparison protocol: :mod:`occface.inpainting.evaluate` (PSNR/SSIM and occluded-pair
  verification for OCC / Telea / NS / generators).

The names below are imported on first use (PEP 562), so :mod:`occface.inpainting.config` can be
imported without TensorFlow (``tools/train_idgan.py`` parses its flags before importing it).
"""

_EXPORTS = {
    "classical": ("classical_inpaint",),
    "critics": ("build_global_critic", "build_local_critic", "crop_hole_patch", "hole_boxes",
                "patch_box_origin"),
    "generator": ("HoleComposite", "HoleFill", "build_generator", "generator_with_raw_output"),
    "identity": ("RecognizerFeatures", "identity_centroids"),
    "losses": ("critic_wasserstein_loss", "discounted_reconstruction_loss",
               "generator_adversarial_loss", "generator_objective", "gradient_penalty",
               "hole_distance", "identity_diversity_loss", "instance_loss",
               "spatial_discount_weights", "structure_loss"),
    "parsing": ("PARSING_CLASSES", "augment_face_and_landmarks", "build_face_parser",
                "parsing_labels_from_landmarks", "parsing_mean_iou", "predict_parsing",
                "train_face_parser"),
}

__all__ = sorted(name for names in _EXPORTS.values() for name in names)


def __getattr__(name):
    owner = next((module for module, names in _EXPORTS.items() if name in names), None)
    if owner is None:  # also the route of `from occface.inpainting import <submodule>`
        raise AttributeError(f"module 'occface.inpainting' has no attribute {name!r}")
    from occface.inpainting import classical, critics, generator, identity, losses, parsing
    modules = {"classical": classical, "critics": critics, "generator": generator,
               "identity": identity, "losses": losses, "parsing": parsing}
    value = getattr(modules[owner], name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
