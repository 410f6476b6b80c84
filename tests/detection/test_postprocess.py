"""Post-processing (numpy and TensorFlow) against cvnets' own detections on the reference outputs."""

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_mobilevitv2.detection.anchors import ssd_anchors
from keras_mobilevitv2.detection.postprocess import SSDPostprocess, nms, postprocess, postprocess_numpy, to_pixels
from detection_reference import ssdlite_reference, unmatched


@pytest.fixture(scope="module")
def graph_postprocess():
    reference = ssdlite_reference()
    anchors = ssd_anchors(320, 320)
    results = {}
    for name in ("conf_threshold", "conf_threshold_hi"):
        function = tf.function(lambda boxes, logits, threshold=float(reference[name]): postprocess(
            boxes, logits, anchors, conf_threshold=threshold), autograph=False)
        results[name] = {k: v.numpy() for k, v in function(reference["box_regressions"],
                                                            reference["class_logits"]).items()}
    return results


@pytest.mark.parametrize("prefix, threshold", [("det", "conf_threshold"), ("det_hi", "conf_threshold_hi")])
def test_numpy_postprocessing_reproduces_cvnets(prefix, threshold):
    reference = ssdlite_reference()
    expected = (reference[f"{prefix}_boxes"], reference[f"{prefix}_labels"], reference[f"{prefix}_scores"])
    found = postprocess_numpy(reference["box_regressions"][:1], reference["class_logits"][:1], ssd_anchors(320, 320),
                              conf_threshold=float(reference[threshold]))[0]
    assert len(found["labels"]) == len(expected[1]) == {"det": 200, "det_hi": 55}[prefix]
    assert unmatched(expected, (found["boxes"], found["labels"], found["confidence"])) == []
    np.testing.assert_array_equal(found["labels"], expected[1])  # in order too, here
    np.testing.assert_allclose(found["boxes"], expected[0], atol=1e-6)
    np.testing.assert_allclose(to_pixels(found["boxes"], 320, 320), reference["det_boxes_px"] if prefix == "det"
                               else np.clip(expected[0] * 320, 0, 320), atol=1e-4)


@pytest.mark.parametrize("prefix, threshold", [("det", "conf_threshold"), ("det_hi", "conf_threshold_hi")])
def test_graph_postprocessing_reproduces_cvnets_batched_and_padded(graph_postprocess, prefix, threshold):
    reference = ssdlite_reference()
    out = graph_postprocess[threshold]
    assert out["boxes"].shape == (2, 200, 4) and out["labels"].dtype == np.int32
    count = out["num_detections"][0]
    expected = (reference[f"{prefix}_boxes"], reference[f"{prefix}_labels"], reference[f"{prefix}_scores"])
    assert count == len(expected[1])
    assert unmatched(expected, (out["boxes"][0, :count], out["labels"][0, :count], out["confidence"][0, :count])) == []
    np.testing.assert_array_equal(out["labels"][0, count:], -1)
    np.testing.assert_array_equal(out["confidence"][0, count:], 0)
    # the second image of the batch agrees with the numpy transcription
    second = postprocess_numpy(reference["box_regressions"][1:], reference["class_logits"][1:], ssd_anchors(320, 320),
                               conf_threshold=float(reference[threshold]))[0]
    count = out["num_detections"][1]
    assert count == len(second["labels"])
    assert unmatched((second["boxes"], second["labels"], second["confidence"]),
                     (out["boxes"][1, :count], out["labels"][1, :count], out["confidence"][1, :count])) == []


def test_nms_suppresses_above_the_threshold_only_and_keeps_the_first_of_equal_scores():
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 0.5], [0, 0, 1, 0.49], [2, 2, 3, 3]], np.float32)
    scores = np.array([0.5, 0.5, 0.9, 0.3, 0.1], np.float32)
    # box 2 has IoU exactly 0.5 with boxes 0 and 1: not suppressed; box 3 has IoU 0.98 with box 2
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [2, 0, 4])
    logits = np.log(np.array([[[0.1, 0.9], [0.1, 0.9], [0.05, 0.95], [0.2, 0.8], [0.3, 0.7]]], np.float32))
    anchors = np.array([[0.5, 0.5, 1, 1]] * 5, np.float32)
    deltas = np.zeros((1, 5, 4), np.float32)
    out = postprocess(deltas, logits, anchors)  # identical boxes: only the best survives
    assert out["num_detections"].numpy().tolist() == [1]
    assert out["labels"].numpy()[0, 0] == 1 and abs(out["confidence"].numpy()[0, 0] - 0.95) < 1e-6


def test_layer_in_a_keras_model_and_its_config_round_trip():
    reference = ssdlite_reference()
    inputs = {"box_regressions": keras.Input((3232, 4), name="box_regressions"),
              "class_logits": keras.Input((3232, 81), name="class_logits")}
    layer = SSDPostprocess((320, 320), conf_threshold=0.5)
    model = keras.Model(inputs, layer(inputs))
    out = model.predict({"box_regressions": reference["box_regressions"],
                         "class_logits": reference["class_logits"]}, verbose=0)
    assert out["boxes"].shape == (2, 200, 4) and out["num_detections"][0] == 55
    clone = SSDPostprocess.from_config(layer.get_config())
    np.testing.assert_array_equal(clone.anchors, ssd_anchors(320, 320))
    assert clone.conf_threshold == 0.5 and clone.max_detections == 200


def test_graph_postprocessing_converts_to_tflite_builtins_and_gives_the_same_detections():
    """For an on-device model with NMS inside: WHILE, TOPK_V2 and gathers are all TFLite builtins."""
    from ai_edge_litert.interpreter import Interpreter

    reference = ssdlite_reference()
    anchors = ssd_anchors(320, 320)

    @tf.function(input_signature=[tf.TensorSpec([1, 3232, 4]), tf.TensorSpec([1, 3232, 81])])
    def detect(box_regressions, class_logits):
        return postprocess(box_regressions, class_logits, anchors, conf_threshold=0.5)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([detect.get_concrete_function()], detect)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(),
                             (reference["box_regressions"][:1], reference["class_logits"][:1])):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    outputs = [interpreter.get_tensor(detail["index"]) for detail in interpreter.get_output_details()]
    by_shape = {(o.shape, o.dtype.kind): o for o in outputs}
    count = int(by_shape[((1,), "i")][0])
    boxes, confidence = by_shape[((1, 200, 4), "f")], by_shape[((1, 200), "f")]
    labels = by_shape[((1, 200), "i")]
    assert count == 55
    assert unmatched((reference["det_hi_boxes"], reference["det_hi_labels"], reference["det_hi_scores"]),
                     (boxes[0, :count], labels[0, :count], confidence[0, :count])) == []
