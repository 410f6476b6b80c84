"""Segmentation data: image and mask pairs from PASCAL VOC, ADE20k or plain folders.

Every pair is opened once before training (in parallel, with progress), as
``folders.py`` does for classification: pairs with an unreadable image, a
missing image or mask, a mask whose size is not its image's or values that are
not classes are skipped and named in one report. A mask's file values become
class ids through a 256-entry table (ADE20k's 0 is ignored and the rest shift
down by one, as in cvnets); ignored pixels are ``IGNORE_LABEL`` in every
layout, so a loss and a metric need one rule.
"""

import concurrent.futures
import dataclasses
import os

import numpy as np

from ..progress import ProgressLine
from .folders import IMAGE_SUFFIXES, DataError, inspect_image

IGNORE_LABEL = 255

VOC_CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")

# cvnets' data/datasets/segmentation/ade20k.py class_names() without its first entry ("background", file value 0,
# which is ignored): class k is file value k + 1.
ADE20K_CLASS_NAMES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag")

ADE20K_SPLITS = {"train": "training", "val": "validation", "training": "training", "validation": "validation"}
NOT_A_LAYOUT = ("not a segmentation data folder: expected PASCAL VOC (VOC2012/ with JPEGImages/, "
                "SegmentationClass/, ImageSets/Segmentation/), ADE20k (images/training/, annotations/training/) "
                "or images/ + masks/ (also as train/ and val/)")


@dataclasses.dataclass(frozen=True)
class SegmentationSet:
    """The usable image / mask pairs of one split, how mask values become classes, and what was skipped."""

    root: str
    layout: str  # "voc", "ade20k" or "folders"
    split: str
    class_names: tuple
    image_paths: tuple
    mask_paths: tuple
    native: tuple  # True where TensorFlow decodes the image itself
    native_masks: tuple  # True for 8-bit grayscale PNG masks; palette PNGs decode to RGB in TensorFlow
    label_map: tuple  # 256 entries: a mask file's value -> class id, or IGNORE_LABEL
    skipped: tuple = ()  # (path, reason) of pairs that cannot be used

    def __len__(self):
        return len(self.image_paths)

    @property
    def num_classes(self):
        return len(self.class_names)

    def subset(self, indices):
        indices = list(indices)

        def pick(values):
            return tuple(values[i] for i in indices)

        return dataclasses.replace(self, image_paths=pick(self.image_paths), mask_paths=pick(self.mask_paths),
                                   native=pick(self.native), native_masks=pick(self.native_masks), skipped=())

    def report(self):
        """What was skipped, as lines for a person to read; empty when nothing was."""
        if not self.skipped:
            return ""
        lines = [f"{len(self.skipped)} unusable file(s) in {self.root} ({self.split}) skipped:"]
        lines += [f"  {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


def voc_palette():
    """PASCAL VOC's colour map (class 1 dark red, 2 green, ...), 255 cream: masks that read in any viewer."""
    palette = np.zeros((256, 3), np.uint8)
    for index in range(256):
        value, colour = index, np.zeros(3, np.int64)
        for bit in range(8):
            colour |= np.array([(value >> 0) & 1, (value >> 1) & 1, (value >> 2) & 1]) << (7 - bit)
            value >>= 3
        palette[index] = colour
    palette[255] = (224, 224, 192)
    return palette.ravel().tolist()


def _mask_values(mask):
    """A Pillow mask -> its values as uint8 [H, W]; palette PNGs give their indices, not colours."""
    if mask.mode in ("L", "P", "1"):
        return np.asarray(mask, dtype=np.uint8)
    if mask.mode.startswith("I"):
        values = np.asarray(mask)
        if values.size and (values.min() < 0 or values.max() > 255):
            raise ValueError(f"mask values from {values.min()} to {values.max()}: class ids must be 0..255")
        return values.astype(np.uint8)
    raise ValueError(f"mask has mode {mask.mode}: expected one channel of class ids or a palette PNG")


def read_mask_values(path):
    """A mask file's values (uint8 [H, W]) before the label mapping; raises with the reason it cannot be used."""
    from PIL import Image

    path = path.item() if isinstance(path, np.ndarray) else path  # tf.numpy_function passes a 0-d array
    with Image.open(path.decode() if isinstance(path, bytes) else path) as mask:
        return _mask_values(mask)


def read_mask(path, label_map=None):
    """A mask file as int32 class ids [H, W], ``IGNORE_LABEL`` where ignored, through ``label_map`` (256 ids)."""
    values = read_mask_values(path)
    if label_map is None:
        return values.astype(np.int32)
    return np.asarray(label_map, dtype=np.int32)[values]


def load_segmentation_pair(data, index):
    """Pair ``index`` of a ``SegmentationSet`` at its original size: (uint8 RGB [H, W, 3], int32 mask [H, W]).

    The image is decoded as the training pipeline decodes it, so evaluation sees the same pixels.
    """
    import tensorflow as tf

    from .pipeline import decode_file

    image = decode_file(tf.constant(data.image_paths[index]), tf.constant(data.native[index])).numpy()
    return image, read_mask(data.mask_paths[index], data.label_map)


def _reason(error):
    return (str(error) or type(error).__name__).splitlines()[0]


def _check_pair(pair):
    """``(pair, (native image, native mask, file values present), None)`` or ``(pair, None, (path, reason))``."""
    from PIL import Image

    image_path, mask_path = pair
    try:
        native, _ = inspect_image(image_path)
        with Image.open(image_path) as image:
            image_size = image.size
    except Exception as error:  # noqa: BLE001 - any failure to read the file is reported, not raised
        return pair, None, (image_path, _reason(error))
    try:
        with Image.open(mask_path) as mask:
            mask_size, native_mask = mask.size, mask.format == "PNG" and mask.mode == "L"
            values = _mask_values(mask)
    except Exception as error:  # noqa: BLE001
        return pair, None, (mask_path, _reason(error))
    if mask_size != image_size:
        return pair, None, (mask_path, f"mask is {mask_size[0]}x{mask_size[1]}, its image {image_path} is "
                                       f"{image_size[0]}x{image_size[1]}")
    present = np.flatnonzero(np.bincount(values.ravel(), minlength=256))
    return pair, (native, native_mask, present), None


def _voc_folder(root):
    """The VOC2012 folder under ``root`` (``VOCdevkit/``, ``VOCdevkit/VOC2012/`` or itself), or None."""
    for folder in (root, os.path.join(root, "VOC2012"), os.path.join(root, "VOCdevkit", "VOC2012")):
        if os.path.isdir(os.path.join(folder, "JPEGImages")) and (
                os.path.isdir(os.path.join(folder, "ImageSets", "Segmentation"))
                or os.path.isdir(os.path.join(folder, "list"))):
            return folder
    return None


def _ade20k_folder(root):
    for folder in (root, os.path.join(root, "ADEChallengeData2016")):
        if os.path.isdir(os.path.join(folder, "images")) and os.path.isdir(os.path.join(folder, "annotations")):
            return folder
    return None


def _is_pair_folder(folder):
    return os.path.isdir(os.path.join(folder, "images")) and os.path.isdir(os.path.join(folder, "masks"))


def _voc_split_files(folder):
    """``{split: list file}``: ImageSets/Segmentation/<split>.txt (ids), and list/<split>.txt (cvnets' train_aug:
    image and mask paths per line)."""
    files = {}
    for sub in ("list", os.path.join("ImageSets", "Segmentation")):  # VOC's own lists win
        directory = os.path.join(folder, sub)
        if os.path.isdir(directory):
            files.update({name[:-4]: os.path.join(directory, name) for name in sorted(os.listdir(directory))
                          if name.endswith(".txt")})
    return files


def segmentation_splits(root):
    """The split names ``scan_segmentation_data`` accepts for ``root``; a plain folder without splits has "train"."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such data folder")
    voc = _voc_folder(root)
    if voc is not None:
        return tuple(sorted(_voc_split_files(voc)))
    ade = _ade20k_folder(root)
    if ade is not None:
        return tuple(split for split in ("train", "val") if os.path.isdir(
            os.path.join(ade, "images", ADE20K_SPLITS[split])))
    if _is_pair_folder(root):
        return ("train",)
    splits = tuple(sorted(e.name for e in os.scandir(root) if e.is_dir() and _is_pair_folder(e.path)))
    if not splits:
        raise DataError(f"{root}: {NOT_A_LAYOUT}")
    return splits


def _voc_pairs(folder, split):
    """VOC's listed pairs; a listed file that is missing is skipped."""
    list_file = _voc_split_files(folder).get(split)
    if list_file is None:
        raise DataError(f"{folder}: no ImageSets/Segmentation/{split}.txt (nor list/{split}.txt)")
    with open(list_file, encoding="utf-8") as file:
        lines = [line.split() for line in file if line.strip()]
    listed = os.path.basename(list_file)
    pairs, skipped = [], []
    for fields in lines:
        if len(fields) >= 2:  # cvnets' list/: "JPEGImages/x.jpg SegmentationClassAug/x.png"
            image, mask = (os.path.join(folder, f.lstrip("/")) for f in fields[:2])
        else:
            image = os.path.join(folder, "JPEGImages", fields[0] + ".jpg")
            mask = os.path.join(folder, "SegmentationClass", fields[0] + ".png")
        if not os.path.isfile(image):
            skipped.append((image, f"listed in {listed}, but there is no such image"))
        elif not os.path.isfile(mask):
            skipped.append((image, f"no mask ({mask} is missing)"))
        else:
            pairs.append((image, mask))
    return pairs, skipped


def _pairs_by_name(image_dir, mask_dir):
    """Images and masks matched by file name stem; the unmatched and the unusable are skipped."""
    for directory in (image_dir, mask_dir):
        if not os.path.isdir(directory):
            raise DataError(f"{directory}: no such folder")
    skipped = []

    def by_stem(directory, is_mask):
        files = {}
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            if not entry.is_file() or entry.name.startswith("."):
                continue
            stem, suffix = os.path.splitext(entry.name)
            if not entry.name.lower().endswith(IMAGE_SUFFIXES):
                skipped.append((entry.path, "not an image file name"))
            elif is_mask and suffix.lower() in (".jpg", ".jpeg"):
                skipped.append((entry.path, "JPEG masks are lossy (class ids blur at edges): save masks as PNG"))
            elif stem in files:
                skipped.append((entry.path, f"{os.path.basename(files[stem])} has the same name"))
            else:
                files[stem] = entry.path
        return files

    images, masks = by_stem(image_dir, False), by_stem(mask_dir, True)
    pairs = []
    for stem, image in images.items():
        if stem in masks:
            pairs.append((image, masks[stem]))
        else:
            skipped.append((image, f"no mask named {stem}.png in {mask_dir}"))
    skipped += [(mask, f"no image named {stem}.* in {image_dir}") for stem, mask in masks.items()
                if stem not in images]
    return pairs, skipped


def _read_class_names(path):
    with open(path, encoding="utf-8") as file:
        names = tuple(line.strip() for line in file if line.strip())
    if not names:
        raise DataError(f"{path}: no class names (one per line expected)")
    return names


def _describe(values):
    """Sorted ints as ranges: "0..20, 255"."""
    runs, start = [], None
    for i, value in enumerate(values):
        if start is None:
            start = value
        if i + 1 == len(values) or values[i + 1] != value + 1:
            runs.append(str(start) if start == value else f"{start}..{value}")
            start = None
    return ", ".join(runs)


def _check_in_parallel(pairs, root, workers, progress):
    workers = workers or min(32, (os.cpu_count() or 1) * 4)
    results = []
    with concurrent.futures.ThreadPoolExecutor(workers) as pool, \
            ProgressLine(len(pairs), progress, in_logs=False, terminal_every=500) as shown:
        for done, result in enumerate(pool.map(_check_pair, pairs), start=1):
            shown.update(done, f"checking images and masks in {root}: {done}/{len(pairs)}")
            results.append(result)
    return results


def scan_segmentation_data(root, split="train", class_names=None, workers=None, progress=True):
    """Finds the layout of ``root``, lists ``split``'s pairs and opens every file; returns a ``SegmentationSet``.

    Layouts: PASCAL VOC (``VOCdevkit/``, ``VOCdevkit/VOC2012/`` or ``VOC2012/``; palette indices are classes),
    ADE20k (``images/`` and ``annotations/``, ``training`` / ``validation``; 150 classes, file value 0 ignored)
    and plain folders (``images/`` + ``masks/`` matched by name, directly or under ``<split>/``; optional
    ``classes.txt``, else classes 0..the largest value found). In VOC and plain masks 255 is ignored.
    ``class_names``: the classes to expect (e.g. the training set's, for the validation split).
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such data folder")
    label_map = np.arange(256, dtype=np.int32)
    voc, ade = _voc_folder(root), _ade20k_folder(root)
    if voc is not None:
        layout, names = "voc", VOC_CLASS_NAMES
        pairs, skipped = _voc_pairs(voc, split)
    elif ade is not None:
        layout, names = "ade20k", ADE20K_CLASS_NAMES
        sub = ADE20K_SPLITS.get(split, split)
        if not os.path.isdir(os.path.join(ade, "images", sub)):
            raise DataError(f"{ade}: no images/{sub} and annotations/{sub} for the {split} split")
        pairs, skipped = _pairs_by_name(os.path.join(ade, "images", sub), os.path.join(ade, "annotations", sub))
        label_map = np.where(label_map == 0, IGNORE_LABEL, label_map - 1).astype(np.int32)
    else:
        layout = "folders"
        if _is_pair_folder(root):
            if split != "train":
                raise DataError(f"{root}: no {split} split: its images/ and masks/ are one training set")
            folder = root
        else:
            folder = os.path.join(root, split)
            if not _is_pair_folder(folder):
                splits = segmentation_splits(root)  # raises if root is no layout at all
                raise DataError(f"{root}: no {split}/images and {split}/masks (its splits: {', '.join(splits)})")
        classes_file = os.path.join(root, "classes.txt")
        names = _read_class_names(classes_file) if os.path.isfile(classes_file) else None
        pairs, skipped = _pairs_by_name(os.path.join(folder, "images"), os.path.join(folder, "masks"))
    if class_names is not None:
        if names is not None and layout != "folders" and len(class_names) != len(names):
            raise DataError(f"{root}: {layout} has {len(names)} classes, {len(class_names)} class names given")
        names = tuple(class_names)
    if names is not None and len(names) > IGNORE_LABEL:
        raise DataError(f"{root}: {len(names)} classes; at most {IGNORE_LABEL} ({IGNORE_LABEL} is the ignore label)")
    if not pairs:
        first = f" ({skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise DataError(f"{root}: no image and mask pairs found for the {split} split{first}")

    checked = []
    for pair, info, problem in _check_in_parallel(pairs, root, workers, progress):
        if problem is None:
            checked.append((pair, info))
        else:
            skipped.append(problem)
    if not checked:
        path, reason = skipped[-1]
        raise DataError(f"{root}: none of its {len(pairs)} image and mask pairs can be used ({path}: {reason})")
    if names is None:
        found = {int(c) for _, (_, _, present) in checked for c in label_map[present] if c != IGNORE_LABEL}
        if len(found) == 0 or max(found) < 1:
            raise DataError(f"{root}: the masks hold fewer than two classes (class ids 0, 1, ...; 255 is ignored)")
        names = tuple(str(c) for c in range(max(found) + 1))
    allowed = (label_map < len(names)) | (label_map == IGNORE_LABEL)
    usable = []
    for pair, info in checked:
        bad = [int(v) for v in info[2] if not allowed[v]]
        if bad:
            shown = ", ".join(map(str, bad[:8])) + (", ..." if len(bad) > 8 else "")
            skipped.append((pair[1], f"mask values {shown} are not classes (allowed: "
                                     f"{_describe(np.flatnonzero(allowed).tolist())})"))
        else:
            usable.append((pair, info))
    if not usable:
        path, reason = skipped[-1]
        raise DataError(f"{root}: none of its {len(pairs)} image and mask pairs can be used ({path}: {reason})")
    return SegmentationSet(
        root, layout, split, tuple(names), tuple(p[0] for p, _ in usable), tuple(p[1] for p, _ in usable),
        tuple(bool(i[0]) for _, i in usable), tuple(bool(i[1]) for _, i in usable), tuple(label_map.tolist()),
        tuple(skipped))


def split_segmentation_set(data, fraction, seed=0):
    """``(train, val)``: a random ``fraction`` of the pairs kept for validation (for a folder without a val split)."""
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be between 0 and 1, got {fraction}")
    if len(data) < 2:
        raise ValueError(f"{data.root}: {len(data)} pair(s) cannot be split into training and validation")
    order = np.random.default_rng(seed).permutation(len(data))
    count = min(max(int(round(len(data) * fraction)), 1), len(data) - 1)
    return data.subset(sorted(order[count:].tolist())), data.subset(sorted(order[:count].tolist()))
