"""Attachment of the response-decorrelation term (paper Eq. 2) to a feature tensor."""
import keras

from occface.losses import check_reduction, response_decorrelation


@keras.saving.register_keras_serializable(package="occface")
class ResponseDecorrelation(keras.layers.Layer):
    """Pass-through layer that adds ``weight · response_decorrelation(x)`` to the model losses.

    In training (``training=True``) the layer calls ``self.add_loss`` with the weighted Eq. 2
    term of its input (see :func:`occface.losses.response_decorrelation`), so the term appears
    in ``model.losses`` after the forward pass (``model.fit`` adds it to the loss; a custom
    ``tf.GradientTape`` loop adds ``sum(model.losses)``). It always returns its input
    unchanged; at inference it adds nothing.

    Parameters
    ----------
    weight : float
        Multiplier (the paper's λ for Eq. 2 is 1).
    reduction : {"sum", "mean"}
        ``"mean"`` by default (divide by ``C (C − 1)``).

    Input shape
    -----------
    ``(N, H, W, C)``.

    Output shape
    ------------
    Same as the input (the very same tensor).

    Examples
    --------
    >>> import keras
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3)(inputs)
    >>> x = ResponseDecorrelation(weight=1.0)(x)
    >>> model = keras.Model(inputs, x)
    """

    def __init__(self, weight=1.0, reduction="mean", **kwargs):
        super().__init__(**kwargs)
        check_reduction(reduction)
        self.weight = float(weight)
        self.reduction = reduction

    def call(self, inputs, training=None):
        if training and self.weight != 0.0:
            self.add_loss(self.weight * response_decorrelation(inputs, self.reduction))
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(weight=self.weight, reduction=self.reduction)
        return config
