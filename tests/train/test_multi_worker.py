"""Two worker processes training together under MultiWorkerMirroredStrategy on localhost.

Each worker reads its own stream of a small image tree through the real input pipeline
(``occface.data.training_dataset``, per-worker seed) with half the global batch.
"""
import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

WORKER = pathlib.Path(__file__).with_name("train_worker.py")


def _free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("localhost", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_multi_worker_mirrored(tmp_path):
    sys.path.insert(0, str(WORKER.parent))
    try:
        import train_worker
    finally:
        sys.path.pop(0)
    data = train_worker.face_tree(tmp_path / "faces")
    model_dir = tmp_path / "run"
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                    "index": index}})
        env["WORKER_OUT"] = str(tmp_path)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        cmd = [sys.executable, str(WORKER), f"--model_dir={model_dir}", "--steps=4",
               "--checkpoint_interval=2", "--strategy=multi_worker", "--variant=cd",
               "--batch_size=8", f"--data_dir={data}"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env))
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=420))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-4000:]
        assert "done" in out

    # Both workers ran all steps with identical losses (they are all-reduced) ...
    losses = [[l for l in out.splitlines() if l.startswith("step ")] for out, _ in outs]
    assert len(losses[0]) == 4 and losses[0] == losses[1]
    assert all(np.isfinite(float(l.split()[3])) for l in losses[0])
    # ... and end with the same weights: the replicas stayed in sync.
    a = np.load(model_dir / "final_state_worker0.npz")
    b = np.load(tmp_path / "final_state_worker1.npz")
    assert int(a["step"]) == int(b["step"]) == 4
    for k in a.files:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-6, err_msg=k)
    # Only the chief wrote into model_dir: checkpoints, config and the final model.
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith("ckpt-4")
    assert (model_dir / "model.keras").is_file() and (model_dir / "config.json").is_file()
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["strategy"] == "multi_worker" and cfg["batch_size"] == 8
