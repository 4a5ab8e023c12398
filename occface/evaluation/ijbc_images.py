"""IJB-C crops as faces and features: each loose crop aligned with its five given landmarks.

Each crop of an :class:`~occface.evaluation.ijbc.IJBCMeta` is aligned on the 112x112 ArcFace
template with its landmarks (no detection), optionally occluded, and embedded (optionally with
flip-test); nothing is kept in memory but the features.
"""

import numpy as np

__all__ = ["IJBCImages", "ijbc_image_features"]


class IJBCImages:
    """Lazy sequence of aligned (and optionally occluded) IJB crops, for :func:`embed_images`.

    ``images[a:b]`` reads, aligns (five given landmarks -> 112x112 ArcFace template) and returns
    ``uint8 (b-a, size, size, 3)`` RGB; nothing is kept in memory.

    Parameters
    ----------
    meta : IJBCMeta
    size : int
        Aligned side (112 for the recognizer; the embedding model resizes if it differs).
    occlusion : str, optional
        An ``occface.data.occlude`` kind applied to every aligned crop (``None``/``"none"``: clean).
    seed : int
        Occlusion seed (per image: derived from the seed and the image name).
    """

    def __init__(self, meta, size=112, occlusion=None, seed=0):
        self.meta = meta
        self.size = int(size)
        self.occlusion = None if occlusion in (None, "none") else occlusion
        self.seed = seed

    def __len__(self):
        return len(self.meta)

    def load(self, k):
        from occface.data import align_face, read_image
        import cv2
        bgr = read_image(self.meta.image_dir / self.meta.names[k])
        aligned, matrix = align_face(bgr, self.meta.landmarks[k], self.size, return_matrix=True)
        rgb = cv2.cvtColor(aligned, cv2.COLOR_BGR2RGB)
        if self.occlusion is not None:
            from occface.data import template_landmarks
            from occface.evaluation.occlusion import occlude_face
            rgb, _ = occlude_face(rgb, template_landmarks(self.size), self.occlusion, self.seed,
                                  key=self.meta.names[k])
        return rgb

    def __getitem__(self, index):
        if isinstance(index, slice):
            ks = range(*index.indices(len(self)))
            if not ks:
                return np.zeros((0, self.size, self.size, 3), np.uint8)
            return np.stack([self.load(k) for k in ks])
        return self.load(int(index))


def ijbc_image_features(model, meta, batch_size=64, flip=True, occlusion=None, seed=0,
                        progress=None, size=112):
    """Embed every crop of ``meta`` (aligned with its landmarks), shape (N, D) float32."""
    from occface.evaluation.embedding import embed_images
    images = IJBCImages(meta, size=size, occlusion=occlusion, seed=seed)
    return embed_images(model, images, batch_size=batch_size, flip=flip, progress=progress)
