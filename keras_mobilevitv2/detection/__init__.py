"""SSDLite detection parts that do not depend on the network: anchors, box coding, post-processing,
matching, the multibox loss and COCO evaluation.

Boxes are normalised (x1, y1, x2, y2) unless a name says otherwise; labels are
1..C-1 with 0 the background, as cvnets numbers them.
"""

from .anchors import anchors_per_location, feature_map_sizes, ssd_anchors
from .box_coder import center_to_corner, corner_to_center, decode, decode_to_corners, encode, xyxy_to_yxyx
from .coco_eval import STAT_NAMES, coco_evaluate, pixel_predictions
from .loss import MultiboxLoss, multibox_terms
from .matching import box_iou, match_anchors
from .postprocess import SSDPostprocess, postprocess, postprocess_numpy, to_pixels

__all__ = [
    "STAT_NAMES", "MultiboxLoss", "SSDPostprocess", "anchors_per_location", "box_iou", "center_to_corner",
    "coco_evaluate", "corner_to_center", "decode", "decode_to_corners", "encode", "feature_map_sizes",
    "match_anchors", "multibox_terms", "pixel_predictions", "postprocess", "postprocess_numpy", "ssd_anchors",
    "to_pixels", "xyxy_to_yxyx",
]
