"""Checkpoints, the ``model_dir`` config guard, and atomic model files.

:class:`CheckpointKeeper` wraps ``tf.train.CheckpointManager``:

* what is saved is up to the caller (model, head, optimizer, step counter, the ``tf.data``
  iterator, random-generator states, best metric...); :func:`rng_variables` lists the random
  state a Keras model keeps outside its weights (``SeedGenerator`` states of dropout-like layers);
* writes are atomic as TensorFlow does them: the shards are written under a temporary name and
  renamed, and only then is the ``checkpoint`` index file (itself written to a temporary file
  and renamed) updated, so a process killed mid-save leaves the previous checkpoint listed and
  loadable; keep-N deletes only older files after the new one is in place;
* :meth:`CheckpointKeeper.restore` falls back to older checkpoints when the newest is unreadable
  (e.g. a torn file on a filesystem without atomic rename) and logs what it skipped;
* under ``MultiWorkerMirroredStrategy`` every worker takes part in saving (variables may need
  collective reads) but only the chief writes into ``model_dir``; the others write to a temporary
  directory that is deleted right away (the pattern of the TensorFlow multi-worker guide).

:func:`check_config` stores the run's config as ``config.json`` and refuses a ``model_dir`` that
holds a different one, so two configurations are never silently mixed in one directory.
"""

import json
import logging
import os
import pathlib
import shutil
import tempfile

import tensorflow as tf

from occface.utils import write_json

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
CHECKPOINT_SUBDIR = "checkpoints"


class ConfigMismatchError(ValueError):
    """``model_dir`` already holds a run with a different configuration."""


def rng_variables(model):
    """Variables of ``model`` that are random-generator state, not weights.

    Keras keeps ``SeedGenerator`` states (used by ``Dropout``, ``LCD``, ``DropBlock``...) in
    ``model.variables`` but not in ``model.weights``, and ``tf.train.Checkpoint(model=...)`` does
    not save them; checkpoint them explicitly for exact resume.
    """
    weight_ids = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weight_ids]


def checked_run_config(config, config_class, dataset=None, num_classes=None):
    """``(config, model_dir)`` of a training run after validating its settings and arguments.

    Parameters
    ----------
    config : dataclass instance or dict
        A run config (a dict is read with ``config_class.from_dict``); ``validate()`` is called.
    config_class : type
        ``RecognizerConfig`` or ``IDGANConfig``.
    dataset, num_classes : optional
        Given together or not at all.

    Raises
    ------
    ValueError
        Invalid settings, no ``model_dir``, only one of ``dataset`` / ``num_classes``, or a
        ``model_dir`` that exists as a file.
    """
    if isinstance(config, dict):
        config = config_class.from_dict(config)
    config.validate()
    if not config.model_dir:
        raise ValueError("model_dir is required")
    if (dataset is None) != (num_classes is None):
        raise ValueError("pass dataset and num_classes together")
    model_dir = pathlib.Path(config.model_dir)
    if model_dir.exists() and not model_dir.is_dir():
        raise ValueError(f"model_dir {model_dir} exists and is not a directory")
    return config, model_dir


def start_run(config, config_class, dataset=None, num_classes=None):
    """:func:`checked_run_config`, then the run's global seeds (and op determinism if asked).

    Sets ``keras.utils.set_random_seed(config.seed)`` and, with ``config.deterministic``, enables
    TensorFlow op determinism for the rest of the process.

    Returns
    -------
    tuple
        ``(config, model_dir)`` as :func:`checked_run_config` returns them.

    Raises
    ------
    ValueError
        As :func:`checked_run_config`.
    """
    import keras
    config, model_dir = checked_run_config(config, config_class, dataset, num_classes)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    return config, model_dir


def check_config(model_dir, config, ignore=(), write=True):
    """Store ``config`` in ``model_dir/config.json`` or refuse a different stored one.

    Parameters
    ----------
    model_dir : path-like
    config : dict
        JSON-serialisable settings of the run.
    ignore : iterable of str
        Keys that may differ between a run and its resumption (e.g. logging intervals).
    write : bool
        Write the file when absent (only the chief should).

    Returns
    -------
    bool
        True when a stored, matching config was found (a resumption), False for a new run.

    Raises
    ------
    ConfigMismatchError
        The stored config differs in a key not in ``ignore``, or ``model_dir`` holds checkpoints
        but no ``config.json``.
    """
    model_dir = pathlib.Path(model_dir)
    path = model_dir / CONFIG_FILE
    config = json.loads(json.dumps(config, default=str))  # normalise tuples -> lists etc.
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except ValueError as err:
            raise ConfigMismatchError(f"{path} is not valid JSON ({err}); use a new --model_dir") \
                from None
        ignore = set(ignore)
        keys = sorted((set(stored) | set(config)) - ignore)
        diffs = [k for k in keys if stored.get(k, "<absent>") != config.get(k, "<absent>")]
        if diffs:
            shown = "; ".join(f"{k}: stored {stored.get(k, '<absent>')!r} != now "
                              f"{config.get(k, '<absent>')!r}" for k in diffs[:6])
            more = f" (+{len(diffs) - 6} more)" if len(diffs) > 6 else ""
            raise ConfigMismatchError(
                f"model_dir {model_dir} holds a run with a different config ({shown}{more}); "
                "use a new --model_dir or the original settings")
        return True
    ckpt_dir = model_dir / CHECKPOINT_SUBDIR
    if ckpt_dir.is_dir() and tf.train.latest_checkpoint(str(ckpt_dir)):
        raise ConfigMismatchError(f"model_dir {model_dir} holds checkpoints but no {CONFIG_FILE}; "
                                  "refusing to resume an unknown configuration")
    if write:
        write_json(path, config)
    return False


class CheckpointKeeper:
    """Keep-N training checkpoints in ``model_dir/checkpoints`` (chief) with safe restore.

    Parameters
    ----------
    model_dir : path-like
    is_chief : bool
        Non-chief workers save into a temporary directory that is removed after each save.
    max_to_keep : int
    **trackables
        What to save, e.g. ``model=model, optimizer=opt, step=step_var, iterator=it``.
    """

    def __init__(self, model_dir, *, is_chief=True, max_to_keep=3, **trackables):
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
        self.model_dir = pathlib.Path(model_dir)
        self.directory = self.model_dir / CHECKPOINT_SUBDIR
        self.is_chief = is_chief
        self.checkpoint = tf.train.Checkpoint(**trackables)
        self._write_dir = self.directory if is_chief else pathlib.Path(
            tempfile.mkdtemp(prefix="occface_worker_ckpt_"))
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self._write_dir),
                                                  max_to_keep=max_to_keep, checkpoint_name="ckpt")
        self.last_saved = None

    @property
    def checkpoints(self):
        """Paths (prefixes) of the checkpoints listed in ``model_dir/checkpoints``, oldest first."""
        state = tf.train.get_checkpoint_state(str(self.directory))
        if state is None:
            return []
        return list(state.all_model_checkpoint_paths)

    @property
    def latest(self):
        return tf.train.latest_checkpoint(str(self.directory))

    def restore(self):
        """Restore the newest readable checkpoint of ``model_dir/checkpoints``.

        Returns
        -------
        str or None
            The path restored, or None when there is none (a fresh run).

        Raises
        ------
        RuntimeError
            Checkpoints are listed but none can be restored.
        """
        candidates = list(reversed(self.checkpoints))
        latest = self.latest
        if latest and latest not in candidates:
            candidates.insert(0, latest)
        if not candidates:
            return None
        errors = []
        for path in candidates:
            try:
                status = self.checkpoint.read(path)
                status.assert_existing_objects_matched()
                # Every object of the run is matched; what is left is bookkeeping that read()
                # never restores (save_counter): no "unrestored values" warning about it.
                status.expect_partial()
            except Exception as err:  # noqa: BLE001 - TF raises many types for torn files
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                log.warning("checkpoint %s is unreadable (%s); trying an older one", path, first)
                errors.append(f"{os.path.basename(path)}: {first}")
                continue
            if path != candidates[0]:
                log.warning("resumed from older checkpoint %s", path)
            self.last_saved = path
            return path
        raise RuntimeError(f"no readable checkpoint in {self.directory}: " + "; ".join(errors))

    def save(self, step):
        """Write checkpoint number ``step``; returns its path (the chief's) or None elsewhere."""
        path = self.manager.save(checkpoint_number=int(step))
        if not self.is_chief:
            shutil.rmtree(self._write_dir, ignore_errors=True)
            os.makedirs(self._write_dir, exist_ok=True)
            return None
        self.last_saved = path
        return path

    def close(self):
        if not self.is_chief:
            shutil.rmtree(self._write_dir, ignore_errors=True)


def save_keras_atomic(model, path):
    """``model.save(path)`` through a temporary file renamed over ``path`` (``.keras`` format)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp, overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
