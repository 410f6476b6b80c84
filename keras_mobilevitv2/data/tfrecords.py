"""TFRecord shards of an image folder, for fast native decoding at scale."""

import io
import json
import os

import tensorflow as tf

from ..files import atomic_output
from ..progress import ProgressLine
from .folders import has_train_val_split, scan_image_folder
from .pipeline import TFRecordSource

INDEX_FILE = "dataset.json"


def _encoded(path, native):
    """The file's bytes where TensorFlow decodes them (JPEG, PNG); else a lossless PNG of its RGB."""
    if native:
        with open(path, "rb") as file:
            return file.read()
    from PIL import Image

    with Image.open(path) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
        return buffer.getvalue()


def _example(encoded, label):
    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    })).SerializeToString()


def make_tfrecords(data, out, shards=8, overwrite=False):
    """Writes ``out/<split>-NNNNN-of-MMMMM.tfrecord`` and ``out/dataset.json`` for an image folder.

    Unreadable images are skipped (and listed in the index). Returns the index.
    """
    data, out = os.fspath(data), os.fspath(out)
    if os.path.exists(os.path.join(out, INDEX_FILE)) and not overwrite:
        raise FileExistsError(f"{out} already holds TFRecords: choose another folder or pass --overwrite")
    os.makedirs(out, exist_ok=True)
    splits = {"train": os.path.join(data, "train"), "val": os.path.join(data, "val")} \
        if has_train_val_split(data) else {"train": data}
    index = {"class_names": None, "splits": {}, "skipped": []}
    for split, root in splits.items():
        folder = scan_image_folder(root, class_names=index["class_names"])
        index["class_names"] = list(folder.class_names)
        index["skipped"] += [{"path": p, "reason": r} for p, r in folder.skipped]
        count = max(1, min(shards, len(folder)))
        files = []
        with ProgressLine(count) as shown:
            for shard in range(count):
                name = f"{split}-{shard:05d}-of-{count:05d}.tfrecord"
                with atomic_output(os.path.join(out, name)) as temporary:
                    with tf.io.TFRecordWriter(temporary) as writer:
                        for i in range(shard, len(folder), count):
                            writer.write(_example(_encoded(folder.paths[i], folder.native[i]), folder.labels[i]))
                files.append(name)
                shown.update(shard + 1, f"{split}: wrote shard {shard + 1}/{count}")
        index["splits"][split] = {"files": files, "count": len(folder)}
    with atomic_output(os.path.join(out, INDEX_FILE)) as temporary:
        with open(temporary, "w") as file:
            json.dump(index, file, indent=1)
    return index


def is_tfrecord_dir(path):
    return os.path.isfile(os.path.join(path, INDEX_FILE))


def load_tfrecords(path, split="train"):
    """The ``TFRecordSource`` of one split of a folder written by ``make_tfrecords``; None if absent."""
    with open(os.path.join(path, INDEX_FILE)) as file:
        index = json.load(file)
    if split not in index["splits"]:
        return None
    entry = index["splits"][split]
    files = tuple(os.path.join(path, f) for f in entry["files"])
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise FileNotFoundError(f"{path}: shards listed in {INDEX_FILE} are missing: {', '.join(missing[:3])}")
    return TFRecordSource(files, int(entry["count"]), tuple(index["class_names"]))
