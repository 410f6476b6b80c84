"""The image classifier: (MobileViT v1's 1x1 expansion), global pooling, dense layer."""

from ..layers import _layers_of, conv_norm_act


def classifier_head(features, architecture, include_top=True, classes=1000, pooling=None,
                    classifier_activation="softmax", logits_dtype=None):
    """The classification network's top on the backbone's ``features`` (it reads P5).

    ``include_top=False`` stops after the expansion (v1) or pools (``pooling``).
    ``logits_dtype``: "float32" under mixed precision, so that logits stay float32.
    """
    x = features["P5"]
    keras = _layers_of(x).keras
    if architecture.head_channels:
        x = conv_norm_act(x, architecture.head_channels, 1, name="head")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if architecture.classifier_dropout:
            x = keras.layers.Dropout(architecture.classifier_dropout, name="dropout")(x)
        return keras.layers.Dense(
            classes, activation=classifier_activation, name="predictions",
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), dtype=logits_dtype)(x)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x
