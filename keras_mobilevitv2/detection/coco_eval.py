"""COCO box AP with pycocotools, following cvnets' protocol (``engine/eval_detection.py``, ``coco_map.py``).

cvnets resizes every image to the input size (aspect not kept), predicts with
``conf_threshold`` 0.01, scales the normalised boxes by the original width and
height and clips them to the image (``pixel_predictions``), maps contiguous
labels back to the annotation file's category ids (sorted ids: label k is the
k-th smallest) and runs ``COCOeval(iouType="bbox")`` over every image of the
annotation file.
"""

import contextlib
import io

import numpy as np

from .postprocess import to_pixels

STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")


def pixel_predictions(detections, info):
    """Per-image predictions in original pixels from a batch of ``postprocess`` outputs and the eval pipeline's
    ``info`` (``image_id``, ``original_size``): a list of dicts ``image_id``, ``boxes`` [n, 4] xyxy clipped to the
    image, ``labels`` [n], ``scores`` [n]."""
    detections = {key: np.asarray(value) for key, value in detections.items()}
    predictions = []
    for index, (image_id, (height, width)) in enumerate(zip(np.asarray(info["image_id"]),
                                                            np.asarray(info["original_size"]))):
        count = int(detections["num_detections"][index])
        predictions.append({"image_id": int(image_id),
                            "boxes": to_pixels(detections["boxes"][index, :count], height, width),
                            "labels": detections["labels"][index, :count].astype(np.int64),
                            "scores": detections["confidence"][index, :count].astype(np.float32)})
    return predictions


def _load_ground_truth(ground_truth):
    from pycocotools.coco import COCO

    if isinstance(ground_truth, dict):
        coco = COCO()
        coco.dataset = ground_truth
        coco.createIndex()
        return coco
    return COCO(ground_truth)


def coco_evaluate(predictions, ground_truth, category_ids=None, verbose=False):
    """``{"AP": ..., "AP50": ..., ..., "AR_large": ...}``: COCOeval's twelve numbers (-1 where COCO has no
    ground truth to count).

    ``predictions``: per image, a dict with ``image_id``, ``boxes`` [n, 4] xyxy in
    pixels of the original image, contiguous ``labels`` [n] (1..K) and
    ``scores`` [n]. ``ground_truth``: a COCO annotation file or dict
    (``DetectionSource.to_coco()``). ``category_ids``: the category id of label k
    at [k - 1]; by default the ground truth's ids in sorted order, as cvnets.
    pycocotools prints only when ``verbose``.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    output = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with output:
        coco = _load_ground_truth(ground_truth)
        category_ids = sorted(coco.getCatIds()) if category_ids is None else list(category_ids)
        results = []
        for prediction in predictions:
            boxes = np.asarray(prediction["boxes"], np.float64).reshape(-1, 4)
            for box, label, score in zip(boxes.tolist(), np.asarray(prediction["labels"]).tolist(),
                                         np.asarray(prediction["scores"], np.float64).tolist()):
                if not 1 <= label <= len(category_ids):
                    raise ValueError(f"image {prediction['image_id']}: label {label} is not in 1..{len(category_ids)}")
                results.append({"image_id": int(prediction["image_id"]), "category_id": category_ids[label - 1],
                                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": score})
        if results:
            detections = coco.loadRes(results)
        else:  # loadRes refuses an empty list; no detection at all scores 0
            detections = COCO()
            detections.dataset = {"images": coco.dataset["images"], "categories": coco.dataset["categories"],
                                  "annotations": []}
            detections.createIndex()
        evaluation = COCOeval(coco, detections, iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return dict(zip(STAT_NAMES, (float(s) for s in evaluation.stats)))
