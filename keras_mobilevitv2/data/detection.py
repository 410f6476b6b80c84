"""Detection data: COCO JSON and Pascal VOC XML, checked in full before training.

As for image folders, every image is opened once up front and every
annotation checked, so that what cannot be used is skipped and named in one
report instead of stopping a run hours in: unreadable or missing images,
images whose size disagrees with their annotation, malformed entries (missing
fields, NaN or infinite coordinates, unknown categories or images). Boxes that
cross the image border are clipped; boxes left without area are dropped; both
are counted in the report.

Labels are contiguous, 0 the background: COCO category ids in sorted order
become 1..K, as cvnets' COCO loader numbers them (``coco_base.py``), with the
names from the file; VOC's 20 classes in their customary order are 1..20.
Crowd annotations (COCO ``iscrowd``) and VOC's ``difficult`` objects are kept
but marked ``ignored``: they are not trained on (cvnets drops crowd boxes;
SSD's VOC loaders drop difficult ones) and evaluation ignores detections on
them (``to_coco`` writes both as ``iscrowd``, which is how COCOeval ignores).
Images without objects are kept, as background-only images.
"""

import concurrent.futures
import dataclasses
import json
import math
import os
import xml.etree.ElementTree as ElementTree

import numpy as np

from ..progress import ProgressLine
from .folders import DataError, inspect_image

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


# COCO 2017's 80 categories in the order of their ids, the order cvnets numbers them 1..80 (0 is background).
COCO_CLASS_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")


@dataclasses.dataclass(frozen=True, eq=False)
class DetectionSource:
    """The usable images of a detection set, their objects, and what was skipped.

    Per image ``i``: ``boxes[i]`` float32 [n, 4], normalised (x1, y1, x2, y2);
    ``labels[i]`` int32 [n] in 1..K; ``ignored[i]`` bool [n], crowd / difficult
    objects (not trained on); ``areas[i]`` float32 [n], the object's area in
    pixels as its annotation gives it (COCO's segment area; else the box's),
    which decides small / medium / large in COCO's evaluation.
    """

    root: str
    class_names: tuple  # class_names[label]; class_names[0] == "background"
    category_ids: tuple  # the annotation file's category id of label k at [k - 1]
    paths: tuple
    native: tuple  # True where TensorFlow decodes the file itself
    image_ids: tuple  # COCO's image ids; VOC: 1..n in list order
    sizes: tuple  # (height, width) in pixels
    boxes: tuple
    labels: tuple
    ignored: tuple
    areas: tuple
    skipped: tuple = ()  # (what, reason) of images and annotations left out
    clipped: int = 0  # boxes clipped to their image
    dropped: int = 0  # boxes without area after clipping

    @property
    def num_classes(self):
        """Classes including the background: the detector's ``n_classes`` (81 for COCO)."""
        return len(self.class_names)

    def __len__(self):
        return len(self.paths)

    def subset(self, indices):
        indices = list(indices)
        pick = {name: tuple(getattr(self, name)[i] for i in indices)
                for name in ("paths", "native", "image_ids", "sizes", "boxes", "labels", "ignored", "areas")}
        return dataclasses.replace(self, skipped=(), clipped=0, dropped=0, **pick)

    def training_boxes(self, index):
        """``(boxes, labels)`` of image ``index`` without its ignored objects: what the detector learns."""
        keep = ~self.ignored[index]
        return self.boxes[index][keep], self.labels[index][keep]

    def report(self):
        """What was skipped, clipped or dropped, as lines for a person to read; empty when nothing was."""
        lines = []
        if self.skipped:
            lines.append(f"{len(self.skipped)} unusable image(s) or annotation(s) in {self.root} skipped:")
            lines += [f"  {what}: {reason}" for what, reason in self.skipped]
        if self.clipped:
            lines.append(f"{self.clipped} box(es) crossing the image border clipped to it")
        if self.dropped:
            lines.append(f"{self.dropped} box(es) without area dropped")
        return "\n".join(lines)

    def to_coco(self):
        """The set as a COCO ground-truth dict (pixel xywh boxes, original category ids), for ``coco_eval``."""
        images, annotations = [], []
        for index, (image_id, path, (height, width)) in enumerate(zip(self.image_ids, self.paths, self.sizes)):
            images.append({"id": int(image_id), "file_name": os.path.basename(path), "height": height, "width": width})
            pixels = self.boxes[index].astype(np.float64) * [width, height, width, height]
            for box, label, ignored, area in zip(pixels, self.labels[index], self.ignored[index], self.areas[index]):
                annotations.append({
                    "id": len(annotations) + 1, "image_id": int(image_id),
                    "category_id": int(self.category_ids[label - 1]),
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                    "area": float(area), "iscrowd": int(ignored)})
        categories = [{"id": int(c), "name": n} for c, n in zip(self.category_ids, self.class_names[1:])]
        return {"images": images, "annotations": annotations, "categories": categories}


class _Boxes:
    """Clips pixel boxes to their image, drops empty ones, counts both."""

    def __init__(self):
        self.clipped = self.dropped = 0

    def normalise(self, box, width, height):
        """Pixel (x1, y1, x2, y2) -> normalised and clipped, or None when nothing of it is left."""
        clipped = (min(max(box[0], 0.0), width), min(max(box[1], 0.0), height),
                   min(max(box[2], 0.0), width), min(max(box[3], 0.0), height))
        if not (clipped[2] > clipped[0] and clipped[3] > clipped[1]):
            self.dropped += 1
            return None
        self.clipped += clipped != tuple(box)
        return clipped[0] / width, clipped[1] / height, clipped[2] / width, clipped[3] / height


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value):
    """A finite float from a JSON / XML value, else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _inspect_sized(path):
    """``(native, width, height)`` of an image file, or raises with the reason it cannot be read."""
    from PIL import Image

    native, _ = inspect_image(path)
    with Image.open(path) as image:
        width, height = image.size
    return native, width, height


def _inspect_all(paths, what, workers, progress):
    """``{path: (native, width, height) or reason}``, opening the files in parallel."""
    workers = workers or min(32, (os.cpu_count() or 1) * 4)

    def inspect(path):
        try:
            return path, _inspect_sized(path)
        except FileNotFoundError:
            return path, "no such file"
        except Exception as error:  # noqa: BLE001 - any failure to read the file is reported, not raised
            reason = str(error) or type(error).__name__
            return path, reason.splitlines()[0]

    results = {}
    with concurrent.futures.ThreadPoolExecutor(workers) as pool, \
            ProgressLine(len(paths), progress, in_logs=False, terminal_every=500) as shown:
        for done, (path, info) in enumerate(pool.map(inspect, paths), start=1):
            shown.update(done, f"checking images in {what}: {done}/{len(paths)}")
            results[path] = info
    return results


def _arrays(objects):
    """(boxes, labels, ignored, areas) arrays of one image's objects [(box, label, ignored, area)]."""
    return (np.asarray([o[0] for o in objects], np.float32).reshape(-1, 4),
            np.asarray([o[1] for o in objects], np.int32),
            np.asarray([o[2] for o in objects], bool),
            np.asarray([o[3] for o in objects], np.float32))


def _source(root, class_names, category_ids, images, skipped, boxes):
    """A DetectionSource from [(path, native, image_id, (height, width), objects)]."""
    if not images:
        raise DataError(f"{root}: no usable images")
    columns = [_arrays(objects) for *_, objects in images]
    return DetectionSource(
        root=root, class_names=tuple(class_names), category_ids=tuple(category_ids),
        paths=tuple(i[0] for i in images), native=tuple(i[1] for i in images), image_ids=tuple(i[2] for i in images),
        sizes=tuple(i[3] for i in images), boxes=tuple(c[0] for c in columns), labels=tuple(c[1] for c in columns),
        ignored=tuple(c[2] for c in columns), areas=tuple(c[3] for c in columns), skipped=tuple(skipped),
        clipped=boxes.clipped, dropped=boxes.dropped)


def scan_coco(images_dir, annotation_file, workers=None, progress=True):
    """A COCO-format set: ``annotation_file`` (``instances_*.json``) describing the images in ``images_dir``."""
    images_dir, annotation_file = os.fspath(images_dir), os.fspath(annotation_file)
    try:
        with open(annotation_file, encoding="utf-8") as file:
            data = json.load(file)
    except FileNotFoundError:
        raise DataError(f"{annotation_file}: no such annotation file") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{annotation_file}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{annotation_file}: not a COCO annotation file (no images, annotations and categories)")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{annotation_file}: no '{key}' list")
    if not isinstance(data.get("annotations", []), list):
        raise DataError(f"{annotation_file}: 'annotations' is not a list")
    skipped = []

    names = {}
    for number, category in enumerate(data["categories"]):
        category_id = category.get("id") if isinstance(category, dict) else None
        if not _is_int(category_id) or category_id in names:
            reason = f"category id {category_id} seen before" if _is_int(category_id) else "no integer id"
            skipped.append((f"{annotation_file} category #{number}", reason))
            continue
        names[category_id] = str(category.get("name", category_id))
    if not names:
        raise DataError(f"{annotation_file}: no categories")
    category_ids = sorted(names)
    label_of = {category_id: label for label, category_id in enumerate(category_ids, start=1)}

    entries = {}
    for number, image in enumerate(data["images"]):
        what = f"{annotation_file} image #{number}"
        if not isinstance(image, dict):
            skipped.append((what, "not an object"))
            continue
        image_id, file_name = image.get("id"), image.get("file_name")
        width, height = _number(image.get("width")), _number(image.get("height"))
        if not _is_int(image_id):
            skipped.append((what, "no integer id"))
        elif image_id in entries:
            skipped.append((what, f"image id {image_id} seen before"))
        elif not isinstance(file_name, str) or not file_name:
            skipped.append((what, "no file_name"))
        elif not width or not height or width < 1 or height < 1:
            skipped.append((what, "no width or height"))
        else:
            entries[image_id] = (os.path.join(images_dir, file_name), (int(height), int(width)))

    boxes, objects = _Boxes(), {image_id: [] for image_id in entries}
    for number, annotation in enumerate(data.get("annotations", [])):
        if not isinstance(annotation, dict):
            skipped.append((f"{annotation_file} annotation #{number}", "not an object"))
            continue
        what = f"{annotation_file} annotation {annotation.get('id', '#' + str(number))}"
        bbox = annotation.get("bbox")
        values = [_number(v) for v in bbox] if isinstance(bbox, list) else []
        if not _is_int(annotation.get("image_id")) or annotation["image_id"] not in objects:
            skipped.append((what, f"unknown or skipped image id {annotation.get('image_id')!r}"))
        elif not _is_int(annotation.get("category_id")) or annotation["category_id"] not in label_of:
            skipped.append((what, f"unknown category id {annotation.get('category_id')!r}"))
        elif len(values) != 4 or None in values:
            skipped.append((what, f"bbox is not four finite numbers: {bbox!r}"))
        else:
            height, width = entries[annotation["image_id"]][1]
            x, y, w, h = values
            box = boxes.normalise((x, y, x + w, y + h), width, height)
            if box is not None:
                area = _number(annotation.get("area"))
                if area is None or area < 0:
                    area = (box[2] - box[0]) * width * (box[3] - box[1]) * height
                objects[annotation["image_id"]].append(
                    (box, label_of[annotation["category_id"]], bool(annotation.get("iscrowd", 0)), area))

    images = _checked_images(entries, objects, annotation_file, workers, progress, skipped)
    return _source(images_dir, ("background", *(names[c] for c in category_ids)), category_ids, images, skipped, boxes)


def _checked_images(entries, objects, what, workers, progress, skipped):
    """[(path, native, image_id, (height, width), objects)] of the entries whose file opens and has the size
    annotated (when it is: ``size`` None takes the file's)."""
    found = _inspect_all([path for path, _ in entries.values()], what, workers, progress)
    images = []
    for image_id, (path, size) in entries.items():
        if isinstance(found[path], str):
            skipped.append((path, found[path]))
            continue
        native, width, height = found[path]
        if size is not None and size != (height, width):
            skipped.append((path, f"the annotation says {size[1]}x{size[0]}, the image is {width}x{height}"))
            continue
        images.append((path, native, image_id, (height, width), objects[image_id]))
    return images


def scan_voc(root, split="train", workers=None, progress=True):
    """A Pascal VOC set: ``root/ImageSets/Main/<split>.txt`` lists the ids of ``Annotations/<id>.xml`` and
    ``JPEGImages/<id>.jpg``.

    Box corners are VOC's 1-based pixel indices: (xmin - 1, ymin - 1, xmax, ymax)
    covers the pixels in continuous coordinates, as detectron2 reads them.
    """
    root = os.fspath(root)
    listing = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
    try:
        with open(listing, encoding="utf-8") as file:
            ids = [line.split()[0] for line in file if line.strip()]
    except FileNotFoundError:
        raise DataError(f"{listing}: no such image list (ImageSets/Main/{split}.txt)") from None
    skipped, boxes = [], _Boxes()
    label_of = {name: label for label, name in enumerate(VOC_CLASSES, start=1)}
    entries, objects = {}, {}
    for number, name in enumerate(dict.fromkeys(ids), start=1):
        annotation = os.path.join(root, "Annotations", f"{name}.xml")
        try:
            tree = ElementTree.parse(annotation).getroot()
        except FileNotFoundError:
            skipped.append((annotation, "no such file"))
            continue
        except (OSError, ElementTree.ParseError) as error:
            skipped.append((annotation, str(error).splitlines()[0] or type(error).__name__))
            continue
        width, height = _number(tree.findtext("size/width")), _number(tree.findtext("size/height"))
        if not width or not height or width < 1 or height < 1:
            width = height = None  # some VOC files say 0: the image's own size is used
        image_objects = []
        for index, element in enumerate(tree.findall("object")):
            what = f"{annotation} object #{index}"
            class_name = (element.findtext("name") or "").strip()
            corners = [_number(element.findtext(f"bndbox/{key}")) for key in ("xmin", "ymin", "xmax", "ymax")]
            if class_name not in label_of:
                skipped.append((what, f"unknown class {class_name!r}"))
            elif None in corners:
                skipped.append((what, "bndbox is not four finite numbers"))
            else:
                difficult = (element.findtext("difficult") or "0").strip() not in ("0", "")
                image_objects.append(((corners[0] - 1, corners[1] - 1, corners[2], corners[3]),
                                      label_of[class_name], difficult))
        path = os.path.join(root, "JPEGImages", f"{name}.jpg")
        entries[number] = (path, None if width is None else (int(height), int(width)))
        objects[number] = image_objects
    images = []
    for path, native, image_id, (height, width), image_objects in _checked_images(
            entries, objects, listing, workers, progress, skipped):
        normalised = []
        for corners, label, difficult in image_objects:
            box = boxes.normalise(corners, width, height)
            if box is not None:
                normalised.append((box, label, difficult, (box[2] - box[0]) * width * (box[3] - box[1]) * height))
        images.append((path, native, image_id, (height, width), normalised))
    return _source(root, ("background", *VOC_CLASSES), range(1, len(VOC_CLASSES) + 1), images, skipped, boxes)
