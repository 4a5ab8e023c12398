"""tf.distribute plumbing shared by the training loops (recognizer, ID-GAN).

* :func:`make_strategy` builds ``default`` / ``mirrored`` / ``multi_worker`` strategies;
* :func:`worker_info` says which worker this process is and whether it is the chief;
  :func:`per_worker_batch_size` is its share of the global batch;
* :class:`ShardedInput` feeds a step function per-replica slices of a *host* ``tf.data`` iterator.
  Unlike ``strategy.experimental_distribute_dataset`` (whose iterators cannot be checkpointed),
  this iterator is an ordinary trackable ``tf.data`` iterator, so the data position goes into the
  training checkpoint and a resumed run sees exactly the batches an uninterrupted one would;
* :func:`all_reduce_sum` and :func:`apply_if_finite` are replica-context helpers for a custom step
  that skips non-finite updates consistently on every replica.
"""

import json
import logging
import os

import tensorflow as tf

from occface.choices import STRATEGIES

log = logging.getLogger(__name__)


_MIRRORED = {}


def make_strategy(name="default", devices=None):
    """Build a ``tf.distribute`` strategy by name.

    Parameters
    ----------
    name : {"default", "mirrored", "multi_worker"}
        ``default``: no distribution (one device). ``mirrored``: synchronous data parallelism over
        the local devices (all GPUs, else the logical CPU devices). ``multi_worker``:
        ``MultiWorkerMirroredStrategy`` configured from the ``TF_CONFIG`` environment variable.
    devices : list of str, optional
        Devices for ``mirrored`` (e.g. ``["/cpu:0", "/cpu:1"]``).

    Notes
    -----
    ``mirrored`` returns one cached strategy per device set and process. Two
    ``MirroredStrategy`` objects over the same devices number their collective ops (e.g. the
    all-reduce of synchronised BatchNorm) from the same keys, and TensorFlow's process-wide
    collective executor then fails with "Shape mismatch in the collective instance"; reusing one
    strategy avoids that (measured: a second strategy in the same process broke every later
    Mirrored step).

    Raises
    ------
    ValueError
        Unknown name, or ``multi_worker`` without a valid ``TF_CONFIG``.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = ([d.name for d in gpus] if gpus
                       else [d.name for d in tf.config.list_logical_devices("CPU")])
        key = tuple(tf.DeviceSpec.from_string(d).to_string() for d in devices)
        if key not in _MIRRORED:
            _MIRRORED[key] = tf.distribute.MirroredStrategy(devices=list(devices))
        return _MIRRORED[key]
    if name == "multi_worker":
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            raise ValueError("strategy 'multi_worker' needs the TF_CONFIG environment variable "
                             "(cluster spec and this process's task)")
        try:
            cfg = json.loads(raw)
            workers = cfg["cluster"]["worker"]
            task = cfg["task"]
            task["type"], int(task["index"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"TF_CONFIG is not a valid cluster spec ({err!r}): {raw}") from None
        if not workers:
            raise ValueError("TF_CONFIG lists no workers")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")


def worker_info(strategy):
    """``(is_chief, task_type, task_id, num_workers)`` of this process under ``strategy``.

    Without a cluster resolver (default / mirrored) the process is the single chief worker.
    Under ``MultiWorkerMirroredStrategy`` the chief is the ``chief`` task, or worker 0 when the
    cluster has no ``chief`` entry.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True, None, None, 1
    task_type, task_id = resolver.task_type, resolver.task_id
    spec = resolver.cluster_spec().as_dict()
    num_workers = len(spec.get("worker", [])) + len(spec.get("chief", []))
    is_chief = (task_type == "chief") or (task_type == "worker" and task_id == 0
                                          and "chief" not in spec)
    return is_chief, task_type, task_id, max(num_workers, 1)


def worker_index(strategy):
    """0-based index of this worker among all workers (chief first); 0 without a cluster."""
    _, task_type, task_id, _ = worker_info(strategy)
    if task_type is None:
        return 0
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    has_chief = "chief" in spec
    if task_type == "chief":
        return 0
    return int(task_id) + (1 if has_chief else 0)


def per_worker_batch_size(strategy, global_batch_size):
    """This worker's share of the global batch (what its ``tf.data`` pipeline batches).

    Parameters
    ----------
    strategy : tf.distribute.Strategy
    global_batch_size : int
        The batch over all replicas and workers (a run's ``batch_size``).

    Returns
    -------
    int
        ``global_batch_size // num_workers``.

    Raises
    ------
    ValueError
        ``global_batch_size`` is not divisible by the number of replicas.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(f"batch_size {global_batch_size} is not divisible by the {replicas} "
                         f"replicas")
    _, _, _, num_workers = worker_info(strategy)
    return global_batch_size // num_workers


def num_local_replicas(strategy):
    """Replicas (devices) driven by this process."""
    _, _, _, num_workers = worker_info(strategy)
    return max(strategy.num_replicas_in_sync // num_workers, 1)


class ShardedInput:
    """Per-replica batches from a checkpointable host ``tf.data`` iterator.

    The dataset yields this *worker's* batch (the global batch divided by the number of workers);
    :meth:`next` (call it inside the ``tf.function`` step) takes one element and splits every
    tensor along axis 0 into equal contiguous slices, one per local replica, in replica order
    (scalars, e.g. a skipped-images counter, go whole to every replica).
    With one worker and global batch ``B`` over ``R`` replicas, replica ``r`` thus gets rows
    ``[r·B/R, (r+1)·B/R)`` of exactly the batch a single-device run would see.

    Parameters
    ----------
    strategy : tf.distribute.Strategy
    dataset : tf.data.Dataset
        Elements are (nested) tensors with a static leading batch dimension divisible by the
        number of local replicas (batch with ``drop_remainder=True``).

    Attributes
    ----------
    iterator : tf.data.Iterator
        Put it in the training checkpoint (``tf.train.Checkpoint(iterator=...)``) to save the
        data position. The dataset must be checkpointable (no stateful random ops in ``map``).
    """

    def __init__(self, strategy, dataset):
        self.strategy = strategy
        self.num_local = num_local_replicas(strategy)
        self.distributed = is_distributed(strategy)
        specs = [s for s in tf.nest.flatten(dataset.element_spec) if s.shape.rank]
        if not specs:
            raise ValueError("ShardedInput needs batched tensors (rank >= 1)")
        for spec in specs:
            batch = spec.shape[0]
            if batch is None:
                raise ValueError("ShardedInput needs a static batch dimension: batch the dataset "
                                 "with drop_remainder=True")
            if batch % self.num_local:
                raise ValueError(f"per-worker batch {batch} is not divisible by the "
                                 f"{self.num_local} local replicas")
        self.batch_size = int(specs[0].shape[0])
        with tf.device("/cpu:0"):
            self.iterator = iter(dataset)

    @property
    def per_replica_batch(self):
        return self.batch_size // self.num_local

    def next(self):
        """The next element: a plain structure (one replica) or per-replica values."""
        element = next(self.iterator)
        if not self.distributed:
            return element
        n, b = self.num_local, self.per_replica_batch

        def value_fn(ctx):
            i = ctx.replica_id_in_sync_group % n
            return tf.nest.map_structure(
                lambda t: t[i * b:(i + 1) * b] if t.shape.rank else t, element)

        return self.strategy.experimental_distribute_values_from_function(value_fn)


def is_distributed(strategy):
    """Whether ``strategy`` is a real distribution strategy (not the default no-op one)."""
    return type(strategy).__name__ != "_DefaultDistributionStrategy"


def all_reduce_sum(values):
    """Sum a list of scalar tensors over all replicas (replica context; identity without one)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1 or not tf.distribute.has_strategy():
        return list(values)
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, list(values))


def apply_if_finite(finite, apply_fn, apply_args=(), skip_fn=None, skip_args=()):
    """Run ``apply_fn(*apply_args)`` on every replica when ``finite`` is true, else ``skip_fn``.

    Must be called in replica context (inside ``strategy.run``) with a ``finite`` flag that is the
    same on every replica (derive it from :func:`all_reduce_sum`). ``apply_fn`` typically calls
    ``optimizer.apply(grads, variables)``, which under Mirrored / MultiWorkerMirrored strategies
    uses ``merge_call``; a ``tf.cond`` whose branch calls ``merge_call`` is not allowed in replica
    context, so the decision is taken in cross-replica context (the pattern Keras'
    ``LossScaleOptimizer`` uses) and the chosen branch runs back on every replica.

    Per-replica tensors (gradients, snapshots) must be passed through ``apply_args`` /
    ``skip_args``, never captured by the functions' closures: ``merge_call`` runs the merge
    function once, with the first replica's closures, and only the *arguments* are gathered
    from every replica.

    Parameters
    ----------
    finite : bool scalar tensor
    apply_fn, skip_fn : callables run in replica context with the (per-replica) arguments.
    apply_args, skip_args : tuples of (nested) tensors.
    """
    if skip_fn is None:
        skip_fn, skip_args = (lambda *a: None), ()
    if not tf.distribute.has_strategy():
        tf.cond(finite, lambda: _done(apply_fn, apply_args), lambda: _done(skip_fn, skip_args))
        return None

    def merge_fn(distribution, finite_value, a_args, s_args):
        first = distribution.experimental_local_results(finite_value)[0]

        def branch(fn, args):
            def run():
                distribution.extended.call_for_each_replica(
                    lambda *x: _done(fn, x), args=tuple(args))
                return tf.constant(True)
            return run

        tf.cond(first, branch(apply_fn, a_args), branch(skip_fn, s_args))

    tf.distribute.get_replica_context().merge_call(
        merge_fn, args=(finite, tuple(apply_args), tuple(skip_args)))
    return None


def _done(fn, args):
    fn(*args)
    return tf.constant(True)
