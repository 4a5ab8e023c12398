"""Round trips: insightface RecordIO (written by hand in the test), occface TFRecords, and
insightface verification .bin files, including a refused malicious pickle."""
import io
import os
import pickle
import struct

import cv2
import numpy as np
import pytest

from occface.data import (InsightFaceRecord, RecordIOReader, RecordIOWriter, load_verification_bin,
                          pack_irheader, read_manifest, training_dataset, unpack_irheader,
                          write_insightface_recordio, write_tfrecords, write_verification_bin)
from occface.data.verification import read_verification_bin, restricted_loads

MAGIC = 0xCED7230A


def _png(img):
    return cv2.imencode(".png", np.ascontiguousarray(img[:, :, ::-1]))[1].tobytes()


def _jpeg(img):
    return cv2.imencode(".jpg", np.ascontiguousarray(img[:, :, ::-1]))[1].tobytes()


def _images(n, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def _mx_record(payload):
    """One dmlc RecordIO record (no magic inside the payload): magic, lrec, data, padding."""
    return (struct.pack("<II", MAGIC, len(payload)) + payload
            + b"\0" * (-len(payload) % 4))


def _irheader(label, body, flag_labels=None, id_=0):
    if flag_labels is not None:
        return (struct.pack("<IfQQ", len(flag_labels), 0.0, id_, 0)
                + np.asarray(flag_labels, np.float32).tobytes() + body)
    return struct.pack("<IfQQ", 0, float(label), id_, 0) + body


def _write_insightface_by_hand(directory, encoded, labels):
    """The layout of insightface's faces_emore/train.rec: record 0 = header with
    (first identity record, end); image records 1..N; identity records with [start, end)."""
    directory.mkdir(parents=True, exist_ok=True)
    n, classes = len(encoded), max(labels) + 1
    records = [_irheader(0, b"", [n + 1, n + 1 + classes])]
    records += [_irheader(labels[i], encoded[i], id_=i + 1) for i in range(n)]
    for c in range(classes):
        keys = [i + 1 for i in range(n) if labels[i] == c]
        records.append(_irheader(0, b"", [keys[0], keys[-1] + 1]))
    offset, idx = 0, []
    with open(directory / "train.rec", "wb") as f:
        for key, rec in enumerate(records):
            idx.append(f"{key}\t{offset}\n")
            data = _mx_record(rec)
            f.write(data)
            offset += len(data)
    (directory / "train.idx").write_text("".join(idx))
    return directory / "train.rec"


def test_insightface_recordio_written_by_hand(tmp_path):
    imgs = _images(7)
    labels = [0, 0, 0, 1, 1, 2, 2]  # sorted by identity as in insightface sets
    encoded = [_png(i) for i in imgs]
    rec = InsightFaceRecord(_write_insightface_by_hand(tmp_path / "emore", encoded, labels))
    assert len(rec) == 7 and rec.num_classes == 3
    assert list(rec.image_keys) == list(range(1, 8))
    assert rec.identity_ranges == {0: (1, 4), 1: (4, 6), 2: (6, 8)}
    for key, (enc, label) in enumerate(zip(encoded, labels), start=1):
        body, lab = rec.read(key)
        assert body == enc and lab == label
    # Through the training pipeline: every image once per epoch, pixel-exact (PNG), right label.
    ds, num_classes = training_dataset(tmp_path / "emore", 3, 16, augment=False, repeat=False,
                                       drop_remainder=False)
    assert num_classes == 3
    seen = []
    for images, labs in ds:
        for image, lab in zip(images.numpy(), labs.numpy()):
            i = next(i for i, ref in enumerate(imgs) if np.array_equal(image, ref))
            assert labels[i] == lab
            seen.append(i)
    assert sorted(seen) == list(range(7))
    # The identities filter uses the identity records and renumbers labels.
    ds, num_classes = training_dataset(tmp_path / "emore" / "train.rec", 8, 16, augment=False,
                                       repeat=False, drop_remainder=False, identities=[2, 0])
    images, labs = next(iter(ds))
    assert num_classes == 2 and sorted(labs.numpy().tolist()) == [0, 0, 0, 1, 1]


def test_recordio_writer_matches_layout_and_splits_magic(tmp_path):
    payloads = [b"abcd", b"xyz", struct.pack("<I", MAGIC) + b"0123" + struct.pack("<I", MAGIC)
                + b"tail!", b""]
    with RecordIOWriter(tmp_path / "a.rec", tmp_path / "a.idx") as w:
        for k, p in enumerate(payloads):
            w.write_idx(k, p)
    raw = (tmp_path / "a.rec").read_bytes()
    # First two records are plain framing.
    assert raw[:16] == _mx_record(b"abcd") + _mx_record(b"xyz")[:4]
    reader = RecordIOReader(tmp_path / "a.rec")
    assert [reader.read_idx(k) for k in range(4)] == payloads
    assert list(reader) == payloads
    # The third payload was split at the aligned magic numbers (continuation flags 1, 2, 3).
    off = reader.index[2]
    flags = []
    while True:
        magic, lrec = struct.unpack("<II", raw[off:off + 8])
        assert magic == MAGIC
        flags.append(lrec >> 29)
        length = lrec & ((1 << 29) - 1)
        off += 8 + length + (-length % 4)
        if flags[-1] in (0, 3):
            break
    assert flags == [1, 2, 3]
    (tmp_path / "bad.rec").write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="bad RecordIO magic"):
        RecordIOReader(tmp_path / "bad.rec").read_at(0)
    with pytest.raises(FileNotFoundError, match="nope.rec"):
        RecordIOReader(tmp_path / "nope.rec")


def test_irheader_round_trip():
    h, body = unpack_irheader(pack_irheader(3.0, b"jpeg", id=5))
    assert (h.flag, h.label, h.id, body) == (0, 3.0, 5, b"jpeg")
    h, body = unpack_irheader(pack_irheader([4, 9], b"x"))
    assert h.flag == 2 and list(h.label) == [4.0, 9.0] and body == b"x"
    with pytest.raises(ValueError, match="shorter than an IRHeader"):
        unpack_irheader(b"123")


def test_recordio_writer_helper_and_bad_record_skipped(tmp_path):
    imgs = _images(6, seed=1)
    path = write_insightface_recordio(tmp_path / "r", [_png(i) for i in imgs[:5]] + [b"junk"],
                                      [1, 0, 1, 0, 2, 2])
    assert (tmp_path / "r" / "property").read_text().strip() == "3,112,112"
    rec = InsightFaceRecord(path)
    assert rec.num_classes == 3 and rec.identity_ranges[2] == (5, 7)
    ds, _ = training_dataset(path, 6, 16, augment=False, repeat=False, drop_remainder=False,
                             with_skip_count=True)
    images, labels, skipped = next(iter(ds))
    assert len(labels) == 5  # the junk image is dropped, never a crash
    # With repeat, the count (dropped so far, as seen at each later element) includes it.
    ds, _ = training_dataset(path, 10, 16, augment=False, with_skip_count=True)
    images, labels, skipped = next(iter(ds))
    first_epoch = {images[i].numpy().astype(np.uint8).tobytes() for i in range(5)}
    assert first_epoch == {i.tobytes() for i in imgs[:5]}
    assert int(skipped) in (1, 2)


def test_tfrecord_round_trip(tmp_path):
    imgs = _images(9, seed=2)
    labels = [0, 1, 2, 0, 1, 2, 0, 1, 2]
    manifest = write_tfrecords(tmp_path / "tfr", [_png(i) for i in imgs], labels,
                               classes=["ann", "bob", "cy"], shard_size=4, image_size=[16, 16])
    m = read_manifest(tmp_path / "tfr")
    assert m["num_images"] == 9 and [s["count"] for s in m["shards"]] == [4, 4, 1]
    for source in (tmp_path / "tfr", manifest):
        ds, nc = training_dataset(source, 4, 16, augment=False, repeat=False,
                                  drop_remainder=False)
        assert nc == 3
        got = [(img, lab) for b in ds for img, lab in zip(b[0].numpy(), b[1].numpy())]
        assert len(got) == 9
        for img, lab in got:
            i = next(i for i, ref in enumerate(imgs) if np.array_equal(img, ref))
            assert labels[i] == lab
    ds, nc = training_dataset(tmp_path / "tfr", 9, 16, augment=False, repeat=False,
                              drop_remainder=False, identities=["cy"])
    images, labs = next(iter(ds))
    assert nc == 1 and labs.numpy().tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="identity 'dan'"):
        training_dataset(tmp_path / "tfr", 4, identities=["dan"])
    (tmp_path / "tfr" / "shard-00001.tfrecord").unlink()
    with pytest.raises(FileNotFoundError, match="shard-00001"):
        training_dataset(tmp_path / "tfr", 4)


def test_verification_bin_round_trip(tmp_path):
    imgs = _images(6, size=12, seed=3)
    issame = [True, False, True]
    path = tmp_path / "v.bin"
    write_verification_bin(path, [_png(i) for i in imgs], issame)
    images, same = load_verification_bin(path)
    assert images.shape == (6, 12, 12, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, np.stack(imgs))  # PNG: exact, RGB order kept
    assert same.dtype == bool and same.tolist() == issame
    # insightface's own files: protocol-2 pickles, bins as numpy uint8 arrays of JPEG bytes.
    bins = [np.frombuffer(_jpeg(i), np.uint8) for i in imgs]
    with open(tmp_path / "np.bin", "wb") as f:
        pickle.dump((bins, np.array(issame)), f, protocol=2)
    images, same = load_verification_bin(tmp_path / "np.bin", image_size=8)
    assert images.shape == (6, 8, 8, 3) and same.tolist() == issame
    smooth = [np.full((12, 12, 3), (10 * i, 100, 250 - 10 * i), np.uint8) for i in range(6)]
    write_verification_bin(tmp_path / "j.bin", smooth, issame)
    images, _ = load_verification_bin(tmp_path / "j.bin")
    assert np.abs(images.astype(int) - np.stack(smooth)).max() <= 3  # JPEG, RGB order kept


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_is_refused(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([b"x", _Evil(target)], [True])))
    with pytest.raises(pickle.UnpicklingError, match=r"refused to unpickle global '(posix|os)"
                                                      r"\.system'"):
        load_verification_bin(path)
    assert not target.exists()
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        restricted_loads(pickle.dumps(eval))
    with pytest.raises(pickle.UnpicklingError, match="evil.bin"):
        read_verification_bin(path)


def test_bad_bin_structure(tmp_path):
    p = tmp_path / "b.bin"
    p.write_bytes(pickle.dumps(([b"a", b"b", b"c"], [True])))
    with pytest.raises(ValueError, match="3 images for 1 pairs"):
        load_verification_bin(p)
    p.write_bytes(pickle.dumps({"bins": []}))
    with pytest.raises(ValueError, match=r"\(bins, issame_list\)"):
        load_verification_bin(p)
    p.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises((ValueError, pickle.UnpicklingError), match="b.bin"):
        load_verification_bin(p)
    p.write_bytes(pickle.dumps(([b"notjpeg", b"x"], [True])))
    with pytest.raises(ValueError, match="image 0 does not decode"):
        load_verification_bin(p)
    with pytest.raises(FileNotFoundError):
        load_verification_bin(tmp_path / "missing.bin")
