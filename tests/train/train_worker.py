"""Subprocess entry point for the training tests (kill -9 / resume, multi-worker).

Trains a tiny recognizer with ``train_recognizer`` on a small face-image tree (``--data_dir``,
read by the real ``occface.data.training_dataset``: shuffled, augmented, checkpointable), or on a
synthetic in-memory dataset without ``--data_dir``, and writes the final state (every variable of
the newest checkpoint but the iterator; under multi-worker each worker's in-memory weights) to
``final_state[_worker<i>].npz``. Prints ``step N loss L`` (flushed) after every step so a parent
can time a kill.

Options (``--name=value``): model_dir, steps, checkpoint_interval, strategy, seed, sleep (s per
step), die_in_save (SIGKILL itself inside the save of checkpoint ``die_at_save``: ``index`` =
after the data files are written but before the checkpoint index lists it, ``merge`` = before the
shards are merged into the final files), die_at_save, data_dir, variant, batch_size,
max_nonfinite, classes.
"""
import os
import signal
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse(argv):
    opts = dict(model_dir=None, steps="8", checkpoint_interval="2", strategy="default", seed="0",
                sleep="0", die_in_save="", die_at_save="0", data_dir="",
                variant="baseline", batch_size="8", max_nonfinite="3", classes="6")
    for arg in argv:
        key, _, value = arg.lstrip("-").partition("=")
        if key not in opts:
            raise SystemExit(f"unknown option {arg}")
        opts[key] = value
    return opts


def synthetic_dataset(batch_size, num_classes, seed, size=16, n=48):
    import numpy as np
    import tensorflow as tf
    rng = np.random.default_rng(1234)
    labels = np.arange(n) % num_classes
    base = rng.uniform(0, 255, (num_classes, size, size, 3))
    images = np.clip(base[labels] + rng.normal(0, 30, (n, size, size, 3)), 0, 255)
    ds = tf.data.Dataset.from_tensor_slices((images.astype(np.float32), labels.astype(np.int32)))
    ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=True)

    def augment(i, batch):
        x, y = batch
        # Stateless, position-dependent flip: checkpointable and reproducible.
        flip = tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), i])) < 0.5
        return tf.cond(flip, lambda: tf.reverse(x, axis=[2]), lambda: x), y

    return ds.enumerate().map(augment)


def face_tree(root, identities=6, per_identity=8, size=24, seed=0):
    """A small identity-per-folder tree of PNG "faces" (for tests that need real files)."""
    import pathlib

    import cv2
    import numpy as np
    root = pathlib.Path(root)
    rng = np.random.default_rng(seed)
    for i in range(identities):
        d = root / f"person_{i}"
        d.mkdir(parents=True, exist_ok=True)
        base = rng.uniform(0, 255, (size, size, 3))
        for j in range(per_identity):
            img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(d / f"person_{i}_{j + 1:04d}.png"), img)
    return root


def main(argv):
    opts = parse(argv)
    import numpy as np
    import tensorflow as tf

    from occface.train import RecognizerConfig, train_recognizer

    die_at = int(opts["die_at_save"])
    if opts["die_in_save"] and die_at:
        if opts["die_in_save"] == "index":
            from tensorflow.python.checkpoint import checkpoint_management as cm
            original = cm.update_checkpoint_state_internal

            def patched(save_dir, model_checkpoint_path, *a, **k):
                if model_checkpoint_path.endswith(f"ckpt-{die_at}"):
                    os.kill(os.getpid(), signal.SIGKILL)
                return original(save_dir, model_checkpoint_path, *a, **k)
            cm.update_checkpoint_state_internal = patched
        elif opts["die_in_save"] == "merge":
            from tensorflow.python.checkpoint import functional_saver as fs
            original_merge = fs.gen_io_ops.merge_v2_checkpoints

            class _Ops:
                def __getattr__(self, name):
                    return getattr(original_module, name)

                @staticmethod
                def merge_v2_checkpoints(checkpoint_prefixes, destination_prefix, *a, **k):
                    dest = destination_prefix.numpy().decode() if hasattr(
                        destination_prefix, "numpy") else str(destination_prefix)
                    if dest.endswith(f"ckpt-{die_at}"):
                        os.kill(os.getpid(), signal.SIGKILL)
                    return original_merge(checkpoint_prefixes, destination_prefix, *a, **k)
            original_module = fs.gen_io_ops
            fs.gen_io_ops = _Ops()
        else:
            raise SystemExit("die_in_save must be 'index' or 'merge'")

    cfg = RecognizerConfig(
        model_dir=opts["model_dir"], data_dir=opts["data_dir"], variant=opts["variant"], depth=18,
        width=4, input_size=16, embedding_size=8, batch_size=int(opts["batch_size"]),
        steps=int(opts["steps"]), checkpoint_interval=int(opts["checkpoint_interval"]),
        summary_interval=2, learning_rate=0.05, warmup_steps=2, lr_schedule="cosine",
        strategy=opts["strategy"], seed=int(opts["seed"]), deterministic=True, lcd_min_rate=0.1,
        lcd_max_rate=0.5, max_nonfinite_steps=int(opts["max_nonfinite"]), keep_checkpoints=2)
    from occface.train import make_strategy, worker_info
    from occface.train.distribute import worker_index
    strategy = make_strategy(cfg.strategy)
    _, _, _, num_workers = worker_info(strategy)
    worker = worker_index(strategy)
    if cfg.data_dir:  # the library builds the real input pipeline itself
        ds = num_classes = None
    else:
        num_classes = int(opts["classes"])
        ds = synthetic_dataset(cfg.batch_size // num_workers, num_classes,
                               seed=cfg.seed + 1000 * worker)
    sleep = float(opts["sleep"])

    def progress(step, total, values):
        print(f"step {step} loss {values.get('loss', float('nan')):.6f}", flush=True)
        if sleep:
            time.sleep(sleep)

    result = train_recognizer(cfg, dataset=ds, num_classes=num_classes, progress=progress,
                              strategy=strategy)
    print(f"restored_from {result['restored_from']}", flush=True)

    if num_workers > 1:
        # Every worker dumps its own in-memory weights: replicas must agree exactly.
        state = {f"w{i}": v.numpy() for i, v in
                 enumerate(result["model"].weights + result["head"].weights)}
        state["step"] = np.asarray(result["step"])
    else:
        # Dump every saved variable of the newest checkpoint (all but the iterator's internals),
        # so runs can be compared exactly.
        latest = tf.train.latest_checkpoint(os.path.join(cfg.model_dir, "checkpoints"))
        reader = tf.train.load_checkpoint(latest)
        state = {}
        for name in reader.get_variable_to_shape_map():
            if name.startswith("iterator") or name == "_CHECKPOINTABLE_OBJECT_GRAPH":
                continue
            state[name.replace("/", "|")] = reader.get_tensor(name)
        state["__checkpoint__"] = np.asarray(os.path.basename(latest))
    suffix = f"_worker{worker}" if num_workers > 1 else ""
    np.savez(os.path.join(cfg.model_dir if worker == 0 else os.environ.get("WORKER_OUT", "."),
                          f"final_state{suffix}.npz"), **state)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
