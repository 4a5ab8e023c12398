"""Training throughput of the recognizer and how close a step comes to the machine's matmul rate.

One run

1. measures the machine's dense float32 matmul rate with TensorFlow (``--matmul_n`` square
   matrices, best of several timed blocks; NumPy's rate is recorded too);
2. counts the recognizer's FLOPs analytically (every Conv2D / DepthwiseConv2D / Dense / ArcFace
   multiply-add, 2 FLOPs each) for one forward pass, and takes a training step as 3× the forward
   pass (backward = 2× forward: gradients w.r.t. inputs and weights), the usual convention;
   the TensorFlow profiler's forward count is recorded as a cross-check when it is available;
3. times the real training step of :func:`occface.train.make_train_step` (ArcFace + SR + weight
   decay, the NaN guard, SGD update) on an in-memory batch, so the input pipeline is excluded
   (``--data_dir`` additionally times it with the real ``occface.data.training_dataset``, both
   streaming and with ``in_memory=True``, and reports each as a fraction of the step-only rate).

It reports images/s and ``step_time / (train_FLOPs / matmul_rate)``: how many times longer a step
takes than the pure matmul arithmetic of the model would at the measured rate (1 = perfect; the
inverse is the fraction of the matmul rate the training step achieves).

Clocks: wall clock and this process's CPU time are both recorded. On a machine shared with other
jobs the wall clock includes time stolen by them; CPU time (divided by the number of threads
TensorFlow actually keeps busy) is steadier. The matmul rate is measured under the same clock,
so each ratio compares like with like.

Usage::

    .venv/bin/python benchmarks/train_throughput.py                      # IR-18 w16 64x64 b64
    .venv/bin/python benchmarks/train_throughput.py --depth 50 --width 64 --input_size 112 \\
        --batch_size 128 --xla
    .venv/bin/python benchmarks/train_throughput.py --data_dir runs/lfw112

Writes ``benchmarks/results/train_throughput[_<tag>].json``.
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

from occface.utils import run_metadata, write_json  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def _clocks():
    return time.perf_counter(), time.process_time()


def matmul_rate(n=2048, blocks=5, reps=4):
    """Best dense float32 matmul rate (FLOP/s) of TensorFlow and NumPy, wall and CPU clocks."""
    a = tf.random.stateless_uniform((n, n), seed=(1, 2))
    b = tf.random.stateless_uniform((n, n), seed=(3, 4))

    @tf.function
    def mm(x, y):
        out = x
        for _ in range(reps):
            out = tf.matmul(out, y) * (1.0 / n)
        return out

    mm(a, b).numpy()  # trace + warm up
    flops = 2.0 * n ** 3 * reps
    wall, cpu = [], []
    for _ in range(blocks):
        w0, c0 = _clocks()
        mm(a, b).numpy()
        w1, c1 = _clocks()
        wall.append(flops / (w1 - w0))
        cpu.append(flops / max(c1 - c0, 1e-9))
    an, bn = a.numpy(), b.numpy()
    np_rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        an @ bn
        np_rates.append(2.0 * n ** 3 / (time.perf_counter() - t0))
    return {"n": n, "tf_wall_flops": max(wall), "tf_cpu_flops": max(cpu),
            "tf_wall_flops_median": statistics.median(wall), "numpy_wall_flops": max(np_rates)}


def analytic_forward_flops(model, num_classes=None):
    """Multiply-add FLOPs (×2) of one forward pass for a batch of one image.

    Counts Conv2D (incl. strides, groups), DepthwiseConv2D and Dense layers, plus the ArcFace
    head's ``D × num_classes`` cosine matrix when ``num_classes`` is given. Normalisation,
    activations, element-wise ops and the SR / LCD / SAM bookkeeping are ignored (they are small
    next to the convolutions and are not matmul-like).
    """
    total = 0
    by_type = {}
    for layer in _flat_layers(model):
        flops = 0
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            out = layer.output.shape
            kh, kw = layer.kernel_size
            flops = 2 * out[1] * out[2] * out[3] * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            out = layer.output.shape
            kh, kw = layer.kernel_size
            cin = layer.kernel.shape[2]  # per group
            flops = 2 * out[1] * out[2] * out[3] * kh * kw * cin
        elif isinstance(layer, keras.layers.Dense):
            flops = 2 * int(np.prod(layer.kernel.shape))
        if flops:
            total += int(flops)
            name = type(layer).__name__
            by_type[name] = by_type.get(name, 0) + int(flops)
    if num_classes:
        head = 2 * int(model.output.shape[-1]) * int(num_classes)
        total += head
        by_type["ArcFace"] = head
    return total, by_type


def _flat_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _flat_layers(layer)
        else:
            yield layer


def profiler_forward_flops(model, input_size):
    """The TF profiler's float-op count of an inference forward pass for one image, or None."""
    try:
        from tensorflow.python.profiler import model_analyzer, option_builder
        fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(
            tf.TensorSpec([1, input_size, input_size, 3], tf.float32))
        opts = option_builder.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        info = model_analyzer.profile(graph=fn.graph, options=opts)
        return int(info.total_float_ops)
    except Exception:  # noqa: BLE001 - optional cross-check only
        return None


def time_steps(step, steps, warmup):
    """Median wall / CPU seconds per step over ``steps`` calls after ``warmup`` calls."""
    w0, c0 = _clocks()
    step()  # trace
    first = time.perf_counter() - w0
    for _ in range(max(warmup - 1, 0)):
        step()
    walls, cpus = [], []
    for _ in range(steps):
        w0, c0 = _clocks()
        out = step()
        float(out["loss"])
        w1, c1 = _clocks()
        walls.append(w1 - w0)
        cpus.append(c1 - c0)
    return {"first_step_s": first, "wall_s": statistics.median(walls),
            "wall_s_mean": statistics.fmean(walls), "cpu_s": statistics.median(cpus),
            "steps": steps}


def build_step(args, num_classes, dataset):
    from occface.train import RecognizerConfig, ShardedInput, make_train_step
    from occface.train.optim import make_optimizer
    from occface.train.recognizer import build_model_and_head
    strategy = tf.distribute.get_strategy()
    cfg = RecognizerConfig(variant=args.variant, depth=args.depth, width=args.width,
                           input_size=args.input_size, embedding_size=args.embedding_size)
    model, head = build_model_and_head(cfg, num_classes)
    opt = make_optimizer("sgd", 0.01, momentum=0.9)
    opt.build(model.trainable_variables + head.trainable_variables)
    step = make_train_step(strategy, model, head, opt, ShardedInput(strategy, dataset),
                           global_batch_size=args.batch_size, l2_weight_decay=5e-4,
                           jit_compile=args.xla)
    return model, step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", default="lcd")
    p.add_argument("--depth", type=int, default=18)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--input_size", type=int, default=64)
    p.add_argument("--embedding_size", type=int, default=512)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--num_classes", type=int, default=621,
                   help="ArcFace classes (621 = the CPU LFW run's training identities)")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--xla", action="store_true", help="jit_compile the step (single device)")
    p.add_argument("--threads", type=int, default=0,
                   help="TF intra/inter-op threads (0 = TensorFlow's default)")
    p.add_argument("--matmul_n", type=int, default=2048)
    p.add_argument("--data_dir", default=None,
                   help="also time steps fed by occface.data.training_dataset on this source")
    p.add_argument("--tag", default="")
    p.add_argument("--output", default=None)
    args = p.parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(0)

    rate = matmul_rate(args.matmul_n)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.batch_size, args.input_size, args.input_size, 3))
    labels = rng.integers(0, args.num_classes, args.batch_size)
    ds = tf.data.Dataset.from_tensors((tf.constant(images, tf.float32),
                                       tf.constant(labels, tf.int32))).repeat()
    model, step = build_step(args, args.num_classes, ds)
    fwd, by_type = analytic_forward_flops(model, args.num_classes)
    prof = profiler_forward_flops(model, args.input_size)
    train_flops_per_image = 3 * fwd
    timing = time_steps(step, args.steps, args.warmup)

    def summary(seconds, clock_rate):
        flops = train_flops_per_image * args.batch_size
        ideal = flops / clock_rate
        return {"step_s": seconds, "images_per_sec": args.batch_size / seconds,
                "achieved_gflops": flops / seconds / 1e9,
                "matmul_gflops": clock_rate / 1e9, "ideal_step_s": ideal,
                "step_time_over_matmul_time": seconds / ideal}

    result = {
        "model": {"variant": args.variant, "depth": args.depth, "width": args.width,
                  "input_size": args.input_size, "embedding_size": args.embedding_size,
                  "num_classes": args.num_classes, "params": int(model.count_params()),
                  "forward_gflops_per_image": fwd / 1e9,
                  "forward_gflops_by_layer_type": {k: v / 1e9 for k, v in by_type.items()},
                  "profiler_forward_gflops_per_image": prof / 1e9 if prof else None,
                  "train_gflops_per_image": train_flops_per_image / 1e9},
        "matmul": rate,
        "timing": timing,
        "wall": summary(timing["wall_s"], rate["tf_wall_flops"]),
        "cpu_time": summary(timing["cpu_s"], rate["tf_cpu_flops"]),
    }
    if args.data_dir:
        from occface.data import training_dataset
        for key, in_memory in (("with_input_pipeline", False), ("with_in_memory_source", True)):
            t0 = time.perf_counter()
            real_ds, ncls = training_dataset(args.data_dir, args.batch_size, args.input_size,
                                             augment=True, seed=0, in_memory=in_memory)
            setup_s = time.perf_counter() - t0
            _, real_step = build_step(args, ncls, real_ds)
            t = time_steps(real_step, args.steps, args.warmup)
            result[key] = {"data_dir": args.data_dir, "num_classes": ncls, **t,
                           "setup_s": setup_s, "images_per_sec": args.batch_size / t["wall_s"],
                           "fraction_of_step_only": timing["wall_s"] / t["wall_s"]}
    meta = run_metadata({**vars(args), "threads_effective": (
        tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count())})
    meta["result"] = result
    out = pathlib.Path(args.output) if args.output else RESULTS / (
        "train_throughput" + (f"_{args.tag}" if args.tag else "") + ".json")
    write_json(out, meta)

    w, c = result["wall"], result["cpu_time"]
    print(f"{args.variant} IR-{args.depth} w{args.width} {args.input_size}px batch "
          f"{args.batch_size}{' XLA' if args.xla else ''}: "
          f"{result['model']['train_gflops_per_image']:.3f} train GFLOP/image "
          f"(forward {fwd / 1e9:.3f}; profiler {prof / 1e9 if prof else float('nan'):.3f})")
    print(f"matmul: TF {rate['tf_wall_flops'] / 1e9:.1f} GFLOP/s wall, "
          f"{rate['tf_cpu_flops'] / 1e9:.1f} GFLOP/s per CPU-second; NumPy "
          f"{rate['numpy_wall_flops'] / 1e9:.1f} GFLOP/s")
    print(f"step (wall): {w['step_s'] * 1e3:.1f} ms = {w['images_per_sec']:.1f} images/s, "
          f"{w['achieved_gflops']:.1f} GFLOP/s, {w['step_time_over_matmul_time']:.2f}x the "
          f"matmul-rate time")
    print(f"step (CPU time): {c['step_s'] * 1e3:.1f} ms, {c['achieved_gflops']:.1f} GFLOP/s "
          f"per CPU-second, {c['step_time_over_matmul_time']:.2f}x the matmul-rate time")
    for key, name in (("with_input_pipeline", "streaming input pipeline"),
                      ("with_in_memory_source", "in-memory source")):
        if key in result:
            r = result[key]
            print(f"with the {name}: {r['images_per_sec']:.1f} images/s (wall), "
                  f"{r['fraction_of_step_only']:.2f}x the step-only rate")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
