"""Task heads on the backbone's feature maps: classifier, DeepLabv3, PSPNet (and their auxiliary head)."""

from .classifier import classifier_head
from .segmentation import aux_head, deeplabv3_head, pspnet_head, upsample_to_input

__all__ = ["aux_head", "classifier_head", "deeplabv3_head", "pspnet_head", "upsample_to_input"]
