"""The recognizer's training data: identities, the image stream, the validation pairs.

:func:`training_identities` is the identity filter of a config with LFW ``train_folds`` (the
recognizer's and ID-GAN's: both train on identities disjoint from the held-out folds);
:func:`training_data` the training batches of :func:`occface.data.training_dataset`,
:func:`steps_for_epochs` the steps of a number of passes over them, :func:`validation_sets` the
:class:`~occface.train.validation.PairSet` s validated on.
"""

import math
import pathlib


def training_identities(config):
    """The training identities: those of ``config.train_folds``, disjoint from the other folds.

    Parameters
    ----------
    config : RecognizerConfig or IDGANConfig
        Uses ``train_folds`` (none: every identity), ``lfw_pairs``, ``data_dir``,
        ``min_images_per_identity`` and ``include_unpaired``.

    Returns
    -------
    list of str or None
        Identity folder names (hidden folders such as ``.occface_prepare`` are never identities,
        see :func:`occface.data.lfw_training_identities`), or None for all identities.

    Raises
    ------
    FileNotFoundError
        The pairs file is missing.
    ValueError
        No identity qualifies.
    """
    import occface.data as occdata
    if not config.train_folds:
        return None
    pairs = pathlib.Path(config.lfw_pairs)
    if not pairs.is_file():
        raise FileNotFoundError(f"LFW pairs file not found: {pairs}")
    identities = occdata.lfw_training_identities(
        config.data_dir, folds=config.train_folds, min_images=config.min_images_per_identity,
        pairs_file=pairs.resolve(), include_unpaired=config.include_unpaired)
    if not identities:
        raise ValueError(f"no identity of folds {list(config.train_folds)} has at least "
                         f"{config.min_images_per_identity} images in {config.data_dir}")
    return identities


def steps_for_epochs(config, epochs):
    """Steps that make ``epochs`` passes over ``config``'s training images (global batch)."""
    import occface.data as occdata
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    if not config.data_dir or not pathlib.Path(config.data_dir).exists():
        raise FileNotFoundError(f"training data not found: {config.data_dir}")
    n = occdata.open_source(config.data_dir, training_identities(config)).num_images
    if not n:
        raise ValueError(f"empty training set: no images in {config.data_dir}")
    return max(1, math.ceil(epochs * n / config.batch_size))


def training_data(config, per_worker_batch, seed):
    """``(dataset, num_classes)`` for ``config`` from :func:`occface.data.training_dataset`.

    Images that do not decode are skipped by the pipeline and counted (third element of each
    batch; logged as ``skipped_images_count``).
    """
    import occface.data as occdata
    if not config.data_dir:
        raise ValueError("no training data: set data_dir")
    if not pathlib.Path(config.data_dir).exists():
        raise FileNotFoundError(f"training data not found: {config.data_dir}")
    identities = training_identities(config)
    try:
        training_dataset = occdata.training_dataset
    except AttributeError:
        raise ValueError("occface.data.training_dataset is not available in this version of "
                         "occface.data") from None
    kwargs = dict(augment=config.augment, seed=seed, identities=identities, with_skip_count=True,
                  in_memory=config.in_memory)
    if config.train_occlusion:  # "mask,sunglasses,block": one kind drawn per image
        kinds = [k.strip() for k in config.train_occlusion.split(",") if k.strip()]
        kwargs["occlusion"] = kinds[0] if len(kinds) == 1 else kinds
    dataset, num_classes = training_dataset(config.data_dir, per_worker_batch, config.input_size,
                                            **kwargs)
    if not num_classes:
        raise ValueError(f"empty training set: no identities found in {config.data_dir}")
    return dataset, int(num_classes)


def validation_sets(config):
    """The :class:`~occface.train.validation.PairSet` s of ``config`` (empty dict if none)."""
    from occface.train.validation import lfw_validation_sets
    if not config.val_folds:
        return {}
    pairs = config.val_pairs or config.lfw_pairs
    root = config.val_data_dir or config.data_dir
    return lfw_validation_sets(pairs, root, config.val_folds, config.input_size,
                               occlusions=config.val_occlusions, seed=config.seed)
