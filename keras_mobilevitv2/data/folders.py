"""Image folders: ``DIR/<class>/<image>``, or ``DIR/train`` and ``DIR/val`` holding such folders.

Every file is opened once before training (in parallel, with progress), so that
unreadable ones are skipped and named in one report instead of stopping a run
hours in. Files TensorFlow decodes natively (RGB and grayscale JPEG, PNG of any
depth) are marked so; the rest (CMYK JPEG, BMP, GIF, WebP, ...) are decoded with
Pillow and converted to RGB.
"""

import concurrent.futures
import dataclasses
import os

import numpy as np

from ..progress import ProgressLine

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


FEW_IMAGES = 5  # a class with fewer images is named in the data report


class DataError(ValueError):
    """A data folder that cannot be trained on, with the folder and the reason."""


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """The readable images of a folder, their labels, and what was skipped."""

    root: str
    class_names: tuple
    paths: tuple
    labels: tuple  # index into class_names, one per path
    native: tuple  # True where TensorFlow decodes the file itself
    skipped: tuple = ()  # (path, reason) of files that could not be read
    left_out: tuple = ()  # class folders without a readable image, which are not classes of the model

    def __len__(self):
        return len(self.paths)

    def subset(self, indices):
        indices = list(indices)
        return dataclasses.replace(
            self, paths=tuple(self.paths[i] for i in indices), labels=tuple(self.labels[i] for i in indices),
            native=tuple(self.native[i] for i in indices), skipped=())

    def class_counts(self):
        return np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=len(self.class_names))

    def report(self):
        """What was left out and which classes are nearly empty, as lines for a person to read; empty when
        there is nothing to say."""
        lines = []
        if self.left_out:
            lines.append(f"{len(self.left_out)} class folder(s) of {self.root} without a readable image left out "
                         f"(the model gets {len(self.class_names)} classes): {', '.join(self.left_out)}")
        few = [f"{name} ({count})" for name, count in zip(self.class_names, self.class_counts())
               if count < FEW_IMAGES]
        if few:
            lines.append(f"class(es) with fewer than {FEW_IMAGES} images, which the model will hardly learn: "
                         f"{', '.join(few)}")
        if self.skipped:
            lines.append(f"{len(self.skipped)} unreadable file(s) in {self.root} skipped:")
            lines += [f"  {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


def inspect_image(path):
    """``(native, pixels)`` of an image file, or raises with the reason it cannot be read.

    ``native``: TensorFlow decodes it itself; ``pixels``: width * height.
    """
    from PIL import Image

    with Image.open(path) as image:
        image_format, mode = image.format, image.mode
        width, height = image.size
        if image_format == "JPEG":
            image.draft("RGB", (max(1, width // 8), max(1, height // 8)))  # decode at 1/8: fast, still reads it all
        image.load()
    if width < 1 or height < 1:
        raise ValueError("empty image")
    native = (image_format == "JPEG" and mode in ("RGB", "L")) or image_format == "PNG"
    return native, width * height


def _inspect(path):
    try:
        return path, inspect_image(path), None
    except Exception as error:  # noqa: BLE001 - any failure to read the file is reported, not raised
        reason = str(error) or type(error).__name__
        return path, None, reason.splitlines()[0]


def _list_class_folders(root):
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such data folder")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root}: needs at least two class folders (DIR/<class>/<image>), found {len(classes)}")
    return classes


def _has_image_names(folder):
    return any(e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES) for e in os.scandir(folder))


def has_train_val_split(root):
    return all(os.path.isdir(os.path.join(root, s)) for s in ("train", "val"))


def scan_image_folder(root, class_names=None, workers=None, progress=True):
    """Lists and opens every image under ``root/<class>/``; returns an ``ImageFolder``.

    ``class_names``: the classes to expect (e.g. the training set's, for a
    validation folder); by default the sorted sub-folder names.
    """
    root = os.fspath(root)
    classes = _list_class_folders(root)
    if class_names is not None:
        unknown = sorted(name for name in set(classes) - set(class_names) if _has_image_names(os.path.join(root, name)))
        if unknown:  # (an empty folder of a class the training set left out is no matter)
            raise DataError(f"{root}: classes not in the training set: {', '.join(unknown)}")
        classes = list(class_names)
    candidates, skipped = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if not entry.is_file() or entry.name.startswith("."):
                continue
            if entry.name.lower().endswith(IMAGE_SUFFIXES):
                candidates.append((entry.path, label))
            else:
                skipped.append((entry.path, "not an image file name"))
    if not candidates:
        raise DataError(f"{root}: no images found in its class folders")

    paths, labels, native = [], [], []
    label_of = dict(candidates)
    workers = workers or min(32, (os.cpu_count() or 1) * 4)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool, \
            ProgressLine(len(candidates), progress, in_logs=False, terminal_every=500) as shown:
        results = pool.map(_inspect, [p for p, _ in candidates])
        for done, (path, info, reason) in enumerate(results, start=1):
            shown.update(done, f"checking images in {root}: {done}/{len(candidates)}")
            if info is None:
                skipped.append((path, reason))
                continue
            paths.append(path)
            labels.append(label_of[path])
            native.append(info[0])
    if not paths:
        raise DataError(f"{root}: none of its {len(candidates)} image files can be read")
    present = set(labels)
    if class_names is None and len(present) < 2:
        raise DataError(f"{root}: readable images in only {len(present)} class folder(s); at least two are needed")
    left_out = ()
    if class_names is None and len(present) < len(classes):
        # a training folder's empty class would be a class the model can never learn: not a class at all
        left_out = tuple(name for label, name in enumerate(classes) if label not in present)
        kept = [label for label in range(len(classes)) if label in present]
        renumber = {old: new for new, old in enumerate(kept)}
        classes, labels = [classes[label] for label in kept], [renumber[label] for label in labels]
    return ImageFolder(root, tuple(classes), tuple(paths), tuple(labels), tuple(native), tuple(skipped), left_out)


def split_folder(folder, fraction, seed=0):
    """``(train, val)``: a stratified split that keeps ``fraction`` of every class for validation."""
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(folder.labels)
    val_indices = []
    for label in range(len(folder.class_names)):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        count = int(round(len(members) * fraction))
        if len(members) > 1:
            count = min(max(count, 1), len(members) - 1)
        else:
            count = 0
        val_indices.extend(members[:count].tolist())
    val_set = set(val_indices)
    train_indices = [i for i in range(len(folder)) if i not in val_set]
    return folder.subset(train_indices), folder.subset(sorted(val_indices))
