"""cvnets' SSD multibox loss (``loss_fn/detection/ssd_multibox_loss.py``) as a Keras loss.

Smooth L1 (beta 1) on the box deltas of positive anchors, plus cross-entropy on
the positive anchors and the ``neg_pos_ratio`` x (positives of the image)
background anchors with the highest background loss (hard negative mining,
ratio 3 in the COCO config), both summed over the batch and divided by the
batch's number of positive anchors (at least 1). An image without positive
anchors therefore contributes nothing, as in cvnets. cvnets' optional
re-weighting of the box term is off in its configs and not reproduced.

``y_true`` mirrors the model's output dict: ``y_true["box_regressions"]``
[B, A, 4] float32, each anchor's encoded target (only positives count);
``y_true["class_logits"]`` [B, A] int32, each anchor's class id, 0 for
background. ``y_pred``: ``{"box_regressions": [B, A, 4], "class_logits": [B, A, C]}``.
"""

import tensorflow as tf

import keras

NEG_POS_RATIO = 3


def multibox_terms(y_true, y_pred, neg_pos_ratio=NEG_POS_RATIO):
    """``(box_loss, class_loss)``, each already divided by the number of positives; their sum is cvnets' loss."""
    labels = tf.cast(y_true["class_logits"], tf.int32)
    targets = tf.cast(y_true["box_regressions"], tf.float32)
    regressions = tf.cast(y_pred["box_regressions"], tf.float32)
    logits = tf.cast(y_pred["class_logits"], tf.float32)
    positive = labels > 0
    positives_per_image = tf.reduce_sum(tf.cast(positive, tf.int32), axis=1)
    num_positive = tf.cast(tf.maximum(tf.reduce_sum(positives_per_image), 1), tf.float32)

    error = tf.abs(regressions - targets)
    smooth_l1 = tf.where(error < 1.0, 0.5 * error * error, error - 0.5)
    box_loss = tf.reduce_sum(tf.where(positive[..., None], smooth_l1, 0.0))

    log_probabilities = tf.nn.log_softmax(logits, axis=-1)
    background_loss = tf.stop_gradient(-log_probabilities[..., 0])
    # rank of every anchor by background loss, positives last; the first ratio x positives are the negatives kept
    order = tf.argsort(tf.where(positive, -float("inf"), background_loss), axis=1, direction="DESCENDING", stable=True)
    rank = tf.argsort(order, axis=1, stable=True)
    negative = rank < (positives_per_image * neg_pos_ratio)[:, None]
    cross_entropy = -tf.gather(log_probabilities, labels, axis=2, batch_dims=2)
    class_loss = tf.reduce_sum(tf.where(positive | negative, cross_entropy, 0.0))
    return box_loss / num_positive, class_loss / num_positive


@keras.saving.register_keras_serializable(package="keras_mobilevitv2")
class MultiboxLoss(keras.losses.Loss):
    """The multibox loss of a batch, from the ``y_true`` and ``y_pred`` dicts (see the module).

    Keras gives a loss one output at a time when the model's output is a dict,
    so call this from the model's ``compute_loss`` rather than passing it to
    ``compile(loss=...)``. The value is per batch; sample weights are not used.
    """

    def __init__(self, neg_pos_ratio=NEG_POS_RATIO, name="multibox_loss", **kwargs):
        super().__init__(name=name, reduction="sum", **kwargs)
        self.neg_pos_ratio = int(neg_pos_ratio)

    def call(self, y_true, y_pred):
        box_loss, class_loss = multibox_terms(y_true, y_pred, self.neg_pos_ratio)
        return box_loss + class_loss

    def get_config(self):
        return {**super().get_config(), "neg_pos_ratio": self.neg_pos_ratio}
