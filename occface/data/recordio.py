"""insightface / MXNet RecordIO training sets (``train.rec`` + ``train.idx``) without mxnet.

File layout (dmlc-core ``recordio``): each record is ``uint32 magic 0xced7230a``, ``uint32 lrec``
(lower 29 bits: length, upper 3 bits: continuation flag), the payload, and zero padding to a
multiple of 4 bytes. A payload containing the magic number at a 4-byte-aligned offset is split
there into parts (flag 1 = first, 2 = middle, 3 = last; the magic itself is dropped and re-inserted
on reading). ``train.idx`` holds ``key\\toffset`` lines.

insightface payloads start with an ``IRHeader`` struct ``<IfQQ`` (flag, label, id, id2); when
``flag > 0`` the label is instead ``flag`` float32 values following the header. The image bytes
(JPEG) follow. In insightface training sets record 0 is a header whose label is
``(first identity record, end)``: image records are keys ``1 .. label[0]-1`` and identity records
``label[0] .. label[1]-1`` hold each identity's ``[start, end)`` image-key range.
"""

import collections
import logging
import os
import pathlib
import struct
import threading

import numpy as np

log = logging.getLogger(__name__)

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LEN_MASK = (1 << 29) - 1
_IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(_IR_FORMAT)  # 24

IRHeader = collections.namedtuple("IRHeader", ["flag", "label", "id", "id2"])


def pack_irheader(label, payload, id=0, id2=0):
    """Build an insightface record payload: ``IRHeader`` (+ label array) + ``payload`` bytes.

    ``label`` is a number (stored in the header, ``flag = 0``) or a sequence (stored after the
    header as float32, ``flag = len(label)``).
    """
    if np.isscalar(label):
        return struct.pack(_IR_FORMAT, 0, float(label), id, id2) + bytes(payload)
    label = np.asarray(label, dtype=np.float32).ravel()
    return (struct.pack(_IR_FORMAT, len(label), 0.0, id, id2) + label.tobytes()
            + bytes(payload))


def unpack_irheader(record):
    """Split an insightface record payload into ``(IRHeader, payload bytes)``.

    ``IRHeader.label`` is a float when ``flag == 0`` and a float32 array of length ``flag``
    otherwise.
    """
    if len(record) < IR_SIZE:
        raise ValueError(f"record of {len(record)} bytes is shorter than an IRHeader ({IR_SIZE})")
    flag, label, id_, id2 = struct.unpack(_IR_FORMAT, record[:IR_SIZE])
    body = record[IR_SIZE:]
    if flag > 0:
        if len(body) < 4 * flag:
            raise ValueError(f"record too short for its {flag} labels")
        label = np.frombuffer(body[:4 * flag], dtype=np.float32).copy()
        body = body[4 * flag:]
    return IRHeader(flag, label, id_, id2), body


class RecordIOWriter:
    """Write a dmlc RecordIO file and (optionally) its ``.idx`` index.

    Use as a context manager; :meth:`write` appends one record, :meth:`write_idx` a keyed one.
    """

    def __init__(self, rec_path, idx_path=None):
        self.rec_path = pathlib.Path(rec_path)
        self.idx_path = pathlib.Path(idx_path) if idx_path else None
        self._f = open(self.rec_path, "wb")
        self._idx = open(self.idx_path, "w") if self.idx_path else None

    def write(self, data):
        """Append one record (``bytes``); returns its byte offset."""
        data = bytes(data)
        if len(data) >= 1 << 29:
            raise ValueError("RecordIO records must be smaller than 2**29 bytes")
        offset = self._f.tell()
        start = 0
        for i in range(0, len(data) - len(data) % 4, 4):
            if data[i:i + 4] == _MAGIC_BYTES:  # split around an aligned magic number
                flag = 1 if start == 0 else 2
                self._f.write(_MAGIC_BYTES + struct.pack("<I", (flag << 29) | (i - start)))
                self._f.write(data[start:i])
                start = i + 4
        flag = 3 if start else 0
        self._f.write(_MAGIC_BYTES + struct.pack("<I", (flag << 29) | (len(data) - start)))
        self._f.write(data[start:])
        self._f.write(b"\0" * (-(len(data) - start) % 4))
        return offset

    def write_idx(self, key, data):
        """Append a record and index it under integer ``key``."""
        if self._idx is None:
            raise ValueError("this writer has no .idx file")
        offset = self.write(data)
        self._idx.write(f"{int(key)}\t{offset}\n")
        return offset

    def close(self):
        self._f.close()
        if self._idx:
            self._idx.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def read_index(idx_path):
    """Read a ``.idx`` file into a dict ``{key: byte offset}`` (file order kept)."""
    out = {}
    with open(idx_path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(f"{idx_path}:{lineno}: expected 'key<TAB>offset', got {line!r}")
            out[int(fields[0])] = int(fields[1])
    return out


class RecordIOReader:
    """Random-access reader of a RecordIO file (thread-safe; uses ``os.pread``).

    Parameters
    ----------
    rec_path : str or path
    idx_path : str or path, optional
        Defaults to ``rec_path`` with suffix ``.idx`` if that exists; without an index only
        :meth:`__iter__` (sequential reading) works.
    """

    def __init__(self, rec_path, idx_path=None):
        self.rec_path = pathlib.Path(rec_path)
        if not self.rec_path.is_file():
            raise FileNotFoundError(f"RecordIO file not found: {self.rec_path}")
        if idx_path is None and self.rec_path.with_suffix(".idx").is_file():
            idx_path = self.rec_path.with_suffix(".idx")
        self.idx_path = pathlib.Path(idx_path) if idx_path else None
        self.index = read_index(self.idx_path) if self.idx_path else {}
        self._fd = None
        self._lock = threading.Lock()
        self.size = self.rec_path.stat().st_size

    @property
    def keys(self):
        return list(self.index)

    def _fileno(self):
        if self._fd is None:
            with self._lock:
                if self._fd is None:
                    self._fd = os.open(self.rec_path, os.O_RDONLY)
        return self._fd

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fd"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def read_at(self, offset):
        """Read the record starting at byte ``offset``; returns ``(payload, next_offset)``."""
        fd = self._fileno()
        parts = []
        while True:
            head = os.pread(fd, 8, offset)
            if len(head) < 8:
                raise ValueError(f"{self.rec_path}: truncated record header at byte {offset}")
            magic, lrec = struct.unpack("<II", head)
            if magic != MAGIC:
                raise ValueError(f"{self.rec_path}: bad RecordIO magic 0x{magic:08x} at byte "
                                 f"{offset} (expected 0x{MAGIC:08x})")
            flag, length = lrec >> 29, lrec & _LEN_MASK
            data = os.pread(fd, length, offset + 8)
            if len(data) < length:
                raise ValueError(f"{self.rec_path}: truncated record at byte {offset}")
            parts.append(data)
            offset += 8 + length + (-length % 4)
            if flag in (0, 3):
                break
            if flag not in (1, 2):
                raise ValueError(f"{self.rec_path}: bad continuation flag {flag}")
            parts.append(_MAGIC_BYTES)
        return b"".join(parts), offset

    def read_idx(self, key):
        """The record stored under ``key`` (needs the ``.idx`` file)."""
        try:
            offset = self.index[int(key)]
        except KeyError:
            raise KeyError(f"key {key} not in {self.idx_path}") from None
        return self.read_at(offset)[0]

    def __iter__(self):
        offset = 0
        while offset < self.size:
            record, offset = self.read_at(offset)
            yield record

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class InsightFaceRecord:
    """An insightface training set ``train.rec``/``train.idx`` (+ optional ``property``).

    Attributes
    ----------
    reader : RecordIOReader
    image_keys : np.ndarray of int64
        Keys of the image records.
    num_classes : int
        From the ``property`` file (``num_classes,h,w``), else the header record's identity
        range, else one pass over all headers (slow for large sets).
    identity_ranges : dict or None
        ``{label: (start_key, end_key)}`` when the set has identity records.
    """

    def __init__(self, rec_path, idx_path=None):
        rec_path = pathlib.Path(rec_path)
        if rec_path.is_dir():
            rec_path = rec_path / "train.rec"
        self.reader = RecordIOReader(rec_path, idx_path)
        if not self.reader.index:
            raise FileNotFoundError(f"no .idx index beside {rec_path} (needed for random access)")
        header, _ = unpack_irheader(self.reader.read_idx(self.reader.keys[0]))
        self.identity_ranges = None
        if header.flag > 0 and self.reader.keys[0] == 0:
            first_id, end = int(header.label[0]), int(header.label[1])
            self.image_keys = np.arange(1, first_id, dtype=np.int64)
            self.header0 = (first_id, end)
            self.identity_ranges = {}
            for label, key in enumerate(range(first_id, end)):
                if key in self.reader.index:
                    h, _ = unpack_irheader(self.reader.read_idx(key))
                    self.identity_ranges[label] = (int(h.label[0]), int(h.label[1]))
        else:
            self.header0 = None
            self.image_keys = np.asarray(self.reader.keys, dtype=np.int64)
        self.image_shape = None
        prop = rec_path.parent / "property"
        self.num_classes = None
        if prop.is_file():
            fields = [f for f in prop.read_text().replace(",", " ").split()]
            self.num_classes = int(fields[0])
            if len(fields) >= 3:
                self.image_shape = (int(fields[1]), int(fields[2]))
        if self.num_classes is None and self.identity_ranges is not None:
            self.num_classes = len(self.identity_ranges)
        if self.num_classes is None:
            log.info("%s: no property file or identity records; scanning labels", rec_path)
            self.num_classes = int(max(self.label(k) for k in self.image_keys)) + 1

    def __len__(self):
        return len(self.image_keys)

    def offsets(self):
        """Byte offsets of the image records, aligned with :attr:`image_keys`."""
        return np.asarray([self.reader.index[int(k)] for k in self.image_keys], dtype=np.int64)

    def label(self, key):
        header, _ = unpack_irheader(self.reader.read_idx(key))
        return int(header.label if header.flag == 0 else header.label[0])

    def read(self, key):
        """``(encoded image bytes, label)`` of image record ``key``."""
        header, body = unpack_irheader(self.reader.read_idx(key))
        return body, int(header.label if header.flag == 0 else header.label[0])


def write_insightface_recordio(directory, encoded_images, labels, image_shape=(112, 112)):
    """Write an insightface-layout ``train.rec`` / ``train.idx`` / ``property`` (for tests and
    conversion).

    Parameters
    ----------
    directory : str or path
    encoded_images : sequence of bytes
        JPEG/PNG bytes, grouped by identity or not.
    labels : sequence of int
        Identity label of each image, ``0 .. C-1``.

    Returns
    -------
    pathlib.Path
        Path of ``train.rec``.
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(encoded_images):
        raise ValueError("need one label per image")
    order = np.argsort(labels, kind="stable")
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    n = len(labels)
    first_id = n + 1
    with RecordIOWriter(directory / "train.rec", directory / "train.idx") as w:
        w.write_idx(0, pack_irheader([first_id, first_id + num_classes], b""))
        for key, i in enumerate(order, start=1):
            w.write_idx(key, pack_irheader(float(labels[i]), encoded_images[i], id=key))
        sorted_labels = labels[order]
        for c in range(num_classes):
            start = int(np.searchsorted(sorted_labels, c, "left")) + 1
            end = int(np.searchsorted(sorted_labels, c, "right")) + 1
            w.write_idx(first_id + c, pack_irheader([start, end], b""))
    (directory / "property").write_text(f"{num_classes},{image_shape[0]},{image_shape[1]}\n")
    return directory / "train.rec"
