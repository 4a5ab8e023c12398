"""ID-GAN inpainting generator G (Ge et al., IEEE TCSVT 2020, Sec. III-A).

The generator is a GLCIC-style encoder–decoder (Iizuka et al. 2017) with a stack of dilated
convolutions in the middle, reduced in width for CPU work:

====================  =========  =========================  ==========================
stage                 stride     channels                   spatial size (S = 128)
====================  =========  =========================  ==========================
input                 –          3 (white-filled) + 1 mask  128
conv 5×5              1          w                          128
conv 3×3, conv 3×3    2, 1       2w, 2w                     64
conv 3×3 ×3           2, 1, 1    4w                         32
dilated 3×3           1          4w, rates 2, 4, 8, 16      32
conv 3×3 ×2           1          4w                         32
up ×2, conv 3×3 ×2    ½          2w                         64
up ×2, conv 3×3 ×2    ½          w, w/2                     128
conv 3×3, tanh        1          3                          128
====================  =========  =========================  ==========================

Activations are ELU without normalisation (as in DeepFill; batch statistics are unreliable
with the small batches used here), upsampling is nearest-neighbour + conv (no checkerboard
artefacts). Any ``image_size`` divisible by 4 works (128 as in the paper, 112 for the recognizer
template, 32–64 for tests).
"""

import keras
from keras import layers

# the hole layers live with the other layers (a saved generator loads wherever they are
# registered); re-exported here and by occface.inpainting
from occface.layers.hole import WHITE_NORMALISED, HoleComposite, HoleFill


def _conv(x, filters, kernel_size=3, strides=1, dilation_rate=1, activation="elu", name=None):
    return layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                         dilation_rate=dilation_rate, activation=activation, name=name)(x)


def build_generator(image_size=128, width=32, dilation_rates=(2, 4, 8, 16),
                    activation="elu", name="idgan_generator"):
    """Build the inpainting generator G.

    Parameters
    ----------
    image_size : int
        Side S of the square input faces; must be divisible by 4 (128 paper, 112 recognizer).
    width : int
        Base channel count ``w`` (GLCIC uses 64; 32 is the CPU default; 4–8 for tests).
    dilation_rates : sequence of int
        Rates of the dilated 3×3 convolutions at S/4 resolution.
    activation : str
        Hidden activation (``"elu"`` default).
    name : str
        Model name.

    Returns
    -------
    keras.Model
        Inputs ``[image, mask]``: ``image`` (N, S, S, 3) float in [0, 255] (the package's image
        convention — normalised internally), ``mask`` (N, S, S, 1) float, 1 = hole.
        Output (N, S, S, 3) float in [0, 255]: the completed image ``M⊙G + (1−M)⊙X``; known pixels
        equal the input exactly. The raw generator output (before compositing) is the layer
        named ``"raw_output"``; :func:`generator_with_raw_output` exposes it for training.
    """
    image_size = int(image_size)
    if image_size <= 0 or image_size % 4:
        raise ValueError(f"image_size must be a positive multiple of 4, got {image_size}")
    width = int(width)
    if width < 2:
        raise ValueError(f"width must be >= 2, got {width}")
    dilation_rates = tuple(int(r) for r in dilation_rates)

    image = keras.Input((image_size, image_size, 3), name="image")
    mask = keras.Input((image_size, image_size, 1), name="mask")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(image)
    x = HoleFill(WHITE_NORMALISED, name="hole_fill")([x, mask])

    act = activation
    x = _conv(x, width, 5, activation=act, name="enc1")
    x = _conv(x, 2 * width, 3, strides=2, activation=act, name="enc2_down")
    x = _conv(x, 2 * width, 3, activation=act, name="enc2")
    x = _conv(x, 4 * width, 3, strides=2, activation=act, name="enc3_down")
    x = _conv(x, 4 * width, 3, activation=act, name="enc3a")
    x = _conv(x, 4 * width, 3, activation=act, name="enc3b")
    for rate in dilation_rates:
        x = _conv(x, 4 * width, 3, dilation_rate=rate, activation=act, name=f"dilated{rate}")
    x = _conv(x, 4 * width, 3, activation=act, name="mid_a")
    x = _conv(x, 4 * width, 3, activation=act, name="mid_b")
    x = layers.UpSampling2D(2, interpolation="nearest", name="up1")(x)
    x = _conv(x, 2 * width, 3, activation=act, name="dec1a")
    x = _conv(x, 2 * width, 3, activation=act, name="dec1b")
    x = layers.UpSampling2D(2, interpolation="nearest", name="up2")(x)
    x = _conv(x, width, 3, activation=act, name="dec2a")
    x = _conv(x, max(width // 2, 1), 3, activation=act, name="dec2b")
    x = _conv(x, 3, 3, activation="tanh", name="to_rgb")
    raw = layers.Rescaling(127.5, offset=127.5, name="raw_output")(x)
    completed = HoleComposite(name="completed")([raw, image, mask])
    return keras.Model([image, mask], completed, name=name)


def generator_with_raw_output(generator):
    """A model sharing ``generator``'s weights that returns ``[completed, raw]``.

    The reconstruction loss needs the raw output G(X, M) everywhere (the L1 term outside the hole
    is zero on the composite by construction).

    Parameters
    ----------
    generator : keras.Model
        A model from :func:`build_generator` (it must contain the layer ``"raw_output"``).

    Returns
    -------
    keras.Model
        Inputs ``[image, mask]``; outputs ``completed`` and ``raw``, both (N, S, S, 3) in [0, 255].
    """
    try:
        raw = generator.get_layer("raw_output").output
    except ValueError as err:
        raise ValueError("generator has no 'raw_output' layer; build it with "
                         "occface.inpainting.build_generator") from err
    return keras.Model(generator.inputs, [generator.output, raw],
                       name=f"{generator.name}_with_raw")


def generator_input_size(generator):
    """``(S_h, S_w)`` of a generator with inputs ``[(N, S, S, 3), (N, S, S, 1)]``.

    Raises
    ------
    ValueError
        When the first input is not an RGB image batch.
    """
    shape = generator.input_shape
    shape = shape[0] if isinstance(shape, list) else shape
    if len(shape) != 4 or shape[3] != 3:
        raise ValueError(f"expected a generator with inputs [(N, S, S, 3), (N, S, S, 1)], got "
                         f"{generator.input_shape}")
    return int(shape[1]), int(shape[2])


def make_inpaint_fn(generator, size=None):
    """Graph function: uint8 images ``(N, s, s, 3)`` + float masks ``(N, s, s, 1)`` (1 = hole)
    → completed uint8 images ``(N, s, s, 3)``; known pixels are copied through exactly.

    ``s`` is ``size`` (default: the generator's own input side ``S``). When ``s != S`` the face
    and the mask are resized to ``S`` inside the graph (area-averaged; a generator pixel counts as
    hole when any part of it is), the generator fills the hole, and its output is resized back
    (bilinear) and composited at ``s`` with the original mask, so a 64-px CPU generator serves
    112-px aligned faces. This is the graph the SavedModel ``inpaint`` signature serves
    (:mod:`occface.serving.signatures`) and the one evaluations measure.
    """
    import tensorflow as tf

    gen_h, gen_w = generator_input_size(generator)

    def inpaint(images, masks):
        x = tf.cast(images, tf.float32)
        m = tf.cast(masks > 0.5, tf.float32)
        if size is None or (int(size), int(size)) == (gen_h, gen_w):
            out = generator([x, m], training=False)
        else:
            xs = tf.image.resize(x, (gen_h, gen_w), method="area")
            ms = tf.cast(tf.image.resize(m, (gen_h, gen_w), method="area") > 1e-3, tf.float32)
            out = generator([xs, ms], training=False)
            out = tf.image.resize(tf.cast(out, tf.float32), (int(size), int(size)),
                                  method="bilinear")
        out = m * tf.cast(out, tf.float32) + (1.0 - m) * x
        return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)

    return inpaint
