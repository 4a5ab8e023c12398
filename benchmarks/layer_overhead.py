"""Cost of the LCD additions: training step of ``baseline`` vs ``lcd``, inference with / without SAM.

One run builds the recognizers (same depth / width / input / batch), an ArcFace head each, and
times

* a full training step (``tf.GradientTape`` forward, ArcFace loss + ``sum(model.losses)``,
  gradients, SGD update) for every variant in ``--variants`` (default ``baseline, cd, cd_sr, lcd``
  so a slow ``lcd`` step can be attributed to CD, SR or SAM);
* an inference forward pass (``training=False``) of ``baseline`` (= ``cd`` = ``cd_sr`` at
  inference) and ``lcd`` (adds SAM).

Timed blocks of ``--steps`` calls are **interleaved** over ``--rounds`` rounds (the order of the
variants reverses every round), so slow drift of a shared machine hits all variants alike. The
reported ratio is the median over rounds of the per-round ratio ``t_variant / t_baseline``
(also the ratio of medians). Targets: training-step ratio lcd/baseline <= 1.05, SAM inference
overhead <= 3 %.

Clocks: both the wall clock and this process's CPU time are recorded for every block. The
headline uses ``--clock`` (default ``auto``: wall clock when a GPU is visible, otherwise CPU time
with one TensorFlow thread). On a CPU machine shared with other jobs the wall clock swings by
±30 % between blocks, while single-thread CPU time stays within ~2 %, so it measures the extra
work of the layers; on a dedicated GPU the wall clock is the meaningful one.

Usage::

    .venv/bin/python benchmarks/layer_overhead.py                   # IR-18, width 16, 64x64, batch 32
    .venv/bin/python benchmarks/layer_overhead.py --depth 50 --width 64 --size 112 --jit

Writes ``benchmarks/results/layer_overhead.json`` (settings, run metadata, all timings).
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

from occface.layers import ArcFace  # noqa: E402
from occface.losses import arcface_loss  # noqa: E402
from occface.models import build_recognizer  # noqa: E402
from occface.utils import run_metadata, write_json  # noqa: E402

TRAIN_TARGET = 1.05
SAM_TARGET = 1.03
DEFAULT_OUTPUT = pathlib.Path(__file__).resolve().parent / "results" / "layer_overhead.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depth", type=int, default=18)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--size", type=int, default=64, help="input side in pixels")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--embedding_size", type=int, default=512)
    p.add_argument("--classes", type=int, default=1000, help="ArcFace classes")
    p.add_argument("--variants", default="baseline,cd,cd_sr,lcd",
                   help="training-step variants to time (must include baseline and lcd)")
    p.add_argument("--rounds", type=int, default=6, help="interleaved timing rounds")
    p.add_argument("--steps", type=int, default=3, help="calls per timed block")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls after tracing")
    p.add_argument("--jit", action="store_true", help="jit_compile the step functions (XLA)")
    p.add_argument("--threads", type=int, default=None,
                   help="TensorFlow intra/inter-op threads (0 = TF default); default: 1 with the "
                        "cpu clock, TF default with the wall clock")
    p.add_argument("--clock", choices=("auto", "wall", "cpu"), default="auto",
                   help="clock of the headline ratios (both are recorded); auto: wall on a "
                        "GPU, else this process's CPU time (robust on a shared machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=str(DEFAULT_OUTPUT))
    args = p.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "baseline" not in args.variants or "lcd" not in args.variants:
        p.error("--variants must include baseline and lcd")
    if args.clock == "auto":
        args.clock = "wall" if tf.config.list_physical_devices("GPU") else "cpu"
    if args.threads is None:
        args.threads = 1 if args.clock == "cpu" else 0
    return args


def make_train_step(model, head, optimizer, jit):
    variables = model.trainable_variables + head.trainable_variables

    @tf.function(jit_compile=jit)
    def step(images, labels):
        with tf.GradientTape() as tape:
            embeddings = model(images, training=True)
            logits = head([embeddings, labels])
            loss = arcface_loss(labels, logits)
            if model.losses:
                loss = loss + tf.add_n(model.losses)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    return step


def make_infer(model, jit):
    @tf.function(jit_compile=jit)
    def infer(images):
        return model(images, training=False)

    return infer


def time_interleaved(fns, steps, rounds, warmup):
    """Interleaved times per call, ``{clock: {name: [seconds per call, one per round]}}``.

    Both clocks are recorded: ``"wall"`` (``time.perf_counter``) and ``"cpu"`` (this process's
    CPU time, ``time.process_time``; with ``--threads 1`` it is barely affected by other jobs on
    a shared machine, unlike the wall clock).
    """
    for fn in fns.values():
        for _ in range(warmup):
            _sync(fn())
    names = list(fns)
    times = {"wall": {n: [] for n in names}, "cpu": {n: [] for n in names}}
    for r in range(rounds):
        for n in (names if r % 2 == 0 else names[::-1]):
            fn = fns[n]
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                out = fn()
            _sync(out)
            times["wall"][n].append((time.perf_counter() - wall) / steps)
            times["cpu"][n].append((time.process_time() - cpu) / steps)
    return times


def _sync(x):
    """Block until ``x`` is computed."""
    return np.asarray(x).sum()


def summarize(times, reference):
    out = {}
    ref = times[reference]
    for name, ts in times.items():
        per_round = [t / b for t, b in zip(ts, ref)]
        out[name] = {
            "median_ms": 1e3 * statistics.median(ts),
            "min_ms": 1e3 * min(ts),
            "ratio_vs_" + reference: statistics.median(per_round),
            "ratio_of_medians": statistics.median(ts) / statistics.median(ref),
            "ratio_of_mins": min(ts) / min(ref),
            "per_round_ms": [1e3 * t for t in ts],
        }
    return out


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    shape = (args.size, args.size, 3)
    images = tf.constant(rng.uniform(0, 255, size=(args.batch,) + shape).astype("float32"))
    labels = tf.constant(rng.integers(0, args.classes, size=args.batch).astype("int32"))

    models, train_fns = {}, {}
    for variant in args.variants:
        model = build_recognizer(depth=args.depth, variant=variant, input_shape=shape,
                                 width=args.width, embedding_size=args.embedding_size,
                                 seed=args.seed)
        head = ArcFace(args.classes, name=f"arcface_{variant}")
        head.build([(None, args.embedding_size), (None,)])
        step = make_train_step(model, head, keras.optimizers.SGD(0.01, momentum=0.9), args.jit)
        models[variant] = model
        train_fns[variant] = (lambda s=step: s(images, labels))
    t0 = time.perf_counter()
    for fn in train_fns.values():
        _sync(fn())  # trace / compile
    compile_s = time.perf_counter() - t0
    train_times = time_interleaved(train_fns, args.steps, args.rounds, args.warmup)
    train_all = {c: summarize(t, "baseline") for c, t in train_times.items()}

    infer_fns = {"baseline": (lambda f=make_infer(models["baseline"], args.jit): f(images)),
                 "lcd": (lambda f=make_infer(models["lcd"], args.jit): f(images))}
    for fn in infer_fns.values():
        _sync(fn())
    infer_times = time_interleaved(infer_fns, args.steps, args.rounds, args.warmup)
    infer_all = {c: summarize(t, "baseline") for c, t in infer_times.items()}
    train, infer = train_all[args.clock], infer_all[args.clock]

    train_ratio = train["lcd"]["ratio_vs_baseline"]
    sam_ratio = infer["lcd"]["ratio_vs_baseline"]
    result = {
        **run_metadata(vars(args)),
        "params": {v: int(m.count_params()) for v, m in models.items()},
        "trace_compile_seconds": compile_s,
        "headline_clock": args.clock,
        "train_step": train_all,
        "inference": infer_all,
        "train_step_ratio_lcd_vs_baseline": train_ratio,
        "sam_inference_ratio": sam_ratio,
        "targets": {"train_step_ratio_max": TRAIN_TARGET, "sam_inference_ratio_max": SAM_TARGET},
        "meets_targets": {"train_step": train_ratio <= TRAIN_TARGET,
                          "sam_inference": sam_ratio <= SAM_TARGET},
    }
    write_json(args.output, result)

    print(f"IR-{args.depth} width {args.width}, {args.size}x{args.size}, batch {args.batch}, "
          f"{args.classes} classes, jit={args.jit}, threads={args.threads or 'default'}; "
          f"{args.rounds} rounds x {args.steps} calls; {args.clock} clock")
    print(f"{'':22s}{'median ms':>11s}{'min ms':>9s}{'ratio':>8s}")
    for v, r in train.items():
        print(f"train step {v:11s}{r['median_ms']:11.1f}{r['min_ms']:9.1f}"
              f"{r['ratio_vs_baseline']:8.3f}")
    for v, r in infer.items():
        label = "no SAM" if v == "baseline" else "SAM"
        print(f"inference {label:12s}{r['median_ms']:11.1f}{r['min_ms']:9.1f}"
              f"{r['ratio_vs_baseline']:8.3f}")
    print(f"train step lcd/baseline = {train_ratio:.3f} (target <= {TRAIN_TARGET}); "
          f"SAM inference overhead = {100 * (sam_ratio - 1):+.1f}% "
          f"(target <= {100 * (SAM_TARGET - 1):.0f}%)")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
