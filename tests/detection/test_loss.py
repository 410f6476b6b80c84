"""The multibox loss against a numpy transcription of cvnets' ``SSDLoss.forward`` and ``hard_negative_mining``."""

import numpy as np
import tensorflow as tf

import keras
from keras_mobilevitv2.detection.loss import MultiboxLoss, multibox_terms


def cvnets_loss(confidence, predicted_locations, gt_labels, gt_locations, neg_pos_ratio=3):
    """``(reg_loss, cls_loss)`` as cvnets computes them, float64."""
    confidence, predicted_locations = confidence.astype(np.float64), predicted_locations.astype(np.float64)
    pos_mask = gt_labels > 0
    num_pos = max(1, int(pos_mask.sum()))
    difference = np.abs(predicted_locations[pos_mask] - gt_locations[pos_mask])
    smooth_l1_loss = np.where(difference < 1, 0.5 * difference ** 2, difference - 0.5).sum()

    shifted = confidence - confidence.max(-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    loss = -log_softmax[:, :, 0]
    num_neg = pos_mask.sum(axis=1, keepdims=True) * neg_pos_ratio
    loss[pos_mask] = -np.inf
    indexes = np.argsort(-loss, axis=1, kind="stable")
    orders = np.argsort(indexes, axis=1, kind="stable")
    mask = pos_mask | (orders < num_neg)
    classification_loss = -np.take_along_axis(log_softmax, gt_labels[..., None], -1)[..., 0][mask].sum()
    return smooth_l1_loss / num_pos, classification_loss / num_pos


def random_batch(rng, batch=3, anchors=500, classes=6):
    labels = np.where(rng.random((batch, anchors)) < 0.03, rng.integers(1, classes, (batch, anchors)), 0)
    labels[1] = 0  # an image without objects
    y_true = {"box_regressions": rng.normal(0, 1.5, (batch, anchors, 4)).astype(np.float32),
              "class_logits": labels.astype(np.int32)}
    y_pred = {"box_regressions": rng.normal(0, 1.5, (batch, anchors, 4)).astype(np.float32),
              "class_logits": rng.normal(0, 2, (batch, anchors, classes)).astype(np.float32)}
    return y_true, y_pred


def test_loss_equals_cvnets_on_random_inputs(rng):
    for _ in range(3):
        y_true, y_pred = random_batch(rng)
        expected = cvnets_loss(y_pred["class_logits"], y_pred["box_regressions"], y_true["class_logits"],
                               y_true["box_regressions"])
        box_loss, class_loss = multibox_terms(y_true, y_pred)
        np.testing.assert_allclose([box_loss.numpy(), class_loss.numpy()], expected, rtol=1e-5)
        total = MultiboxLoss()(y_true, y_pred)
        np.testing.assert_allclose(total.numpy(), sum(expected), rtol=1e-5)


def test_no_positives_gives_zero_loss_and_gradients_flow_to_both_outputs(rng):
    y_true, y_pred = random_batch(rng)
    y_true["class_logits"][:] = 0
    assert float(MultiboxLoss()(y_true, y_pred)) == 0.0
    y_true, y_pred = random_batch(rng)
    variables = {k: tf.Variable(v) for k, v in y_pred.items()}
    with tf.GradientTape() as tape:
        loss = MultiboxLoss()(y_true, variables)
    gradients = tape.gradient(loss, variables)
    positive = y_true["class_logits"] > 0
    box_gradient = gradients["box_regressions"].numpy()
    assert np.abs(box_gradient[positive]).sum() > 0 and np.abs(box_gradient[~positive]).sum() == 0
    assert np.isfinite(gradients["class_logits"].numpy()).all()


def test_trains_through_a_models_compute_loss(rng):
    """The way to use it with fit: Keras hands a dict-output model's losses one output at a time."""

    class Detector(keras.Model):
        def __init__(self):
            super().__init__()
            self.boxes = keras.layers.Dense(4)
            self.classes = keras.layers.Dense(6)
            self.multibox = MultiboxLoss()

        def call(self, inputs):
            return {"box_regressions": self.boxes(inputs), "class_logits": self.classes(inputs)}

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return self.multibox(y, y_pred)

    y_true, _ = random_batch(rng, batch=8)
    features = rng.normal(0, 1, (8, 500, 5)).astype(np.float32)
    model = Detector()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = model.fit(features, y_true, batch_size=4, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
