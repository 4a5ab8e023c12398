"""Input pipeline throughput vs the recognizer's training-step consumption.

Measures, on the same machine and data:

1. ``pipeline``: images/s of :func:`occface.data.training_dataset` (read + decode + resize +
   synthetic occlusion + flip/rotation/shift augmentation + batching), iterated alone;
2. ``step``: images/s consumed by a training step of ``build_recognizer`` (IR-``depth``,
   ``width``, ``size``x``size``, ArcFace head + loss, SGD) on a fixed in-memory batch;
3. ``end_to_end``: images/s of training steps fed by the pipeline (both share the CPU).

Target: pipeline >= 2x step. Default: IR-18 width 16 at 64x64, batch 64, occlusion
``block``/``mask``/``sunglasses`` with probability 0.5, source ``runs/lfw112`` (aligned LFW from
``tools/prepare_dataset.py``; falls back to raw LFW deep-funneled, decoded at 250x250 and
resized, if missing).

Usage::

    .venv/bin/python benchmarks/input_pipeline.py
    .venv/bin/python benchmarks/input_pipeline.py --source ../shared/data/lfw/lfw-deepfunneled

Writes ``benchmarks/results/input_pipeline.json`` (settings, run metadata, all timings).
"""
import argparse
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from occface.data import training_dataset  # noqa: E402
from occface.paths import REPO_ROOT, data_root  # noqa: E402
from occface.utils import run_metadata, write_json  # noqa: E402

TARGET = 2.0
DEFAULT_OUTPUT = pathlib.Path(__file__).resolve().parent / "results" / "input_pipeline.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", default=None,
                   help="training source (default runs/lfw112, else raw LFW)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--depth", type=int, default=18)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--variant", default="lcd")
    p.add_argument("--embedding_size", type=int, default=512)
    p.add_argument("--occlusion", default="block,mask,sunglasses",
                   help="comma-separated kinds ('' for none)")
    p.add_argument("--occlusion_prob", type=float, default=0.5)
    p.add_argument("--no_augment", action="store_true")
    p.add_argument("--pipeline_batches", type=int, default=60)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=str(DEFAULT_OUTPUT))
    return p.parse_args(argv)


def default_source():
    prepared = REPO_ROOT / "runs" / "lfw112"
    if (prepared / "manifest.json").is_file():
        return prepared
    return data_root() / "lfw" / "lfw-deepfunneled"


def make_dataset(args, source):
    kinds = [k for k in args.occlusion.split(",") if k]
    occlusion = {"kinds": kinds, "prob": args.occlusion_prob} if kinds else None
    return training_dataset(source, args.batch, args.size, augment=not args.no_augment,
                            occlusion=occlusion, seed=args.seed)


def time_pipeline(ds, batches, rounds):
    it = iter(ds)
    for _ in range(5):  # warm-up: tracing, thread pools, autotune
        next(it)
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        n = 0
        for _ in range(batches):
            n += int(next(it)[1].shape[0])
        rates.append(n / (time.perf_counter() - start))
    return rates


def make_step(args, num_classes):
    from occface.layers import ArcFace
    from occface.losses import arcface_loss
    from occface.models import build_recognizer
    model = build_recognizer(depth=args.depth, variant=args.variant,
                             input_shape=(args.size, args.size, 3), width=args.width,
                             embedding_size=args.embedding_size, seed=args.seed)
    head = ArcFace(num_classes)
    head.build([(None, args.embedding_size), (None,)])
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    variables = model.trainable_variables + head.trainable_variables

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = head([model(images, training=True), labels])
            loss = arcface_loss(labels, logits)
            if model.losses:
                loss = loss + tf.add_n(model.losses)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss
    return step, int(model.count_params())


def time_steps(step, images, labels, steps, rounds):
    for _ in range(3):
        float(step(images, labels))
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            loss = step(images, labels)
        float(loss)
        rates.append(steps * int(labels.shape[0]) / (time.perf_counter() - start))
    return rates


def time_end_to_end(step, ds, steps, rounds):
    it = iter(ds)
    for _ in range(3):
        images, labels = next(it)
        float(step(images, labels))
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        n = 0
        for _ in range(steps):
            images, labels = next(it)
            loss = step(images, labels)
            n += int(labels.shape[0])
        float(loss)
        rates.append(n / (time.perf_counter() - start))
    return rates


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    source = pathlib.Path(args.source) if args.source else default_source()
    ds, num_classes = make_dataset(args, source)
    pipe = time_pipeline(ds, args.pipeline_batches, args.rounds)

    step, params = make_step(args, num_classes)
    images, labels = next(iter(ds))
    step_rates = time_steps(step, images, labels, args.steps, args.rounds)
    e2e = time_end_to_end(step, ds, args.steps, args.rounds)

    pipe_rate = statistics.median(pipe)
    step_rate = statistics.median(step_rates)
    ratio = pipe_rate / step_rate
    result = {
        **run_metadata(dict(vars(args), source=str(source))),
        "num_classes": num_classes,
        "model_params": params,
        "pipeline_images_per_s": pipe,
        "step_images_per_s": step_rates,
        "end_to_end_images_per_s": e2e,
        "median": {"pipeline": pipe_rate, "step": step_rate,
                   "end_to_end": statistics.median(e2e)},
        "ratio_pipeline_vs_step": ratio,
        "target_ratio": TARGET,
        "meets_target": ratio >= TARGET,
    }
    write_json(args.output, result)
    print(f"source {source} ({num_classes} identities); {args.size}x{args.size}, batch "
          f"{args.batch}; occlusion {args.occlusion or 'none'} p={args.occlusion_prob}; "
          f"augment {not args.no_augment}")
    print(f"{'':44s}{'images/s (median of ' + str(args.rounds) + ')':>26s}")
    print(f"{'pipeline: decode+occlude+augment+batch':44s}{pipe_rate:26.1f}")
    print(f"{f'train step: IR-{args.depth} w{args.width} {args.variant} + ArcFace':44s}"
          f"{step_rate:26.1f}")
    print(f"{'end to end: steps fed by the pipeline':44s}{statistics.median(e2e):26.1f}")
    print(f"pipeline / step = {ratio:.2f} (target >= {TARGET}) -> "
          f"{'met' if ratio >= TARGET else 'NOT met'}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
