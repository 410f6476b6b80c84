"""A small detection set made here: scikit-learn's handwritten digits on crops of scikit-image's photos.

Every image is a random crop (160-320 pixels a side) of one of the photos
that ship inside scikit-image (read from its package folder, so nothing is
downloaded), with one to three 8x8 digits upscaled smoothly (bicubic) to
25-50% of the image's short side, in a colour that stands out from the spot
they are painted on, at places where they do not overlap. About one image in
ten has no digit. Train and val digits come from disjoint halves of
scikit-learn's 1,797, so val measures generalisation.

The default is sized for a small detector to learn in minutes on two CPU
cores: three classes (the digits 0, 1 and 4: a ring, a bar and an open shape)
and 800 training images (a plain 0.6 M-parameter conv SSD at 192 x 192,
trained from scratch for 6 epochs, about 3.5 minutes, with the ``none``
augmentation preset, reached AP 0.15, AP50 0.37 on val; with 320 images
and 12 epochs it overfitted, AP50 0.05-0.24). Written as COCO JSON, category
id = digit + 1 (so the ids are not contiguous, as COCO's are not):
``out/train/images/*.jpg``, ``out/train/annotations.json``, ``out/val/...``.
"""

import os

import numpy as np

from ..files import atomic_output, write_json

# Photos without writing or rings that look like digits (text.png, page.png, coins.png are left out)
BACKGROUNDS = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "grass.png", "gravel.png",
               "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png", "retina.jpg", "rocket.jpg")
DEFAULT_DIGITS = (0, 1, 4)


def _backgrounds():
    """The bundled photos as RGB uint8 arrays."""
    import skimage
    from PIL import Image

    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    photos = []
    for name in BACKGROUNDS:
        with Image.open(os.path.join(folder, name)) as image:
            photos.append(np.asarray(image.convert("RGB")))
    return photos


def _crop(rng, photos):
    """A random crop of a random photo, 160-320 pixels a side, upscaled first when the photo is smaller."""
    from PIL import Image

    photo = photos[rng.integers(len(photos))]
    height, width = (int(s) for s in rng.integers(160, 321, 2))
    scale = max(1.0, height / photo.shape[0], width / photo.shape[1])
    if scale > 1:
        size = (int(np.ceil(photo.shape[1] * scale)), int(np.ceil(photo.shape[0] * scale)))
        photo = np.asarray(Image.fromarray(photo).resize(size, Image.BICUBIC))
    top = rng.integers(photo.shape[0] - height + 1)
    left = rng.integers(photo.shape[1] - width + 1)
    crop = photo[top:top + height, left:left + width].astype(np.float32)
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def _paint(rng, image, digit, side, places):
    """Paints an 8x8 digit upscaled to ``side`` at a free place; returns its tight box or None if none is free."""
    from PIL import Image

    height, width = image.shape[:2]
    for _ in range(20):
        x, y = int(rng.integers(width - side + 1)), int(rng.integers(height - side + 1))
        if not any(x < p[2] + 4 and p[0] < x + side + 4 and y < p[3] + 4 and p[1] < y + side + 4 for p in places):
            break
    else:
        return None
    strokes = Image.fromarray((digit * (255.0 / 16.0)).astype(np.uint8)).resize((side, side), Image.BICUBIC)
    alpha = np.clip(np.asarray(strokes, np.float32) / 255.0, 0.0, 1.0)[..., None]
    spot = image[y:y + side, x:x + side]
    luminance = float((spot @ [0.299, 0.587, 0.114]).mean())
    while True:  # a colour at least 100 levels of luminance from the spot's
        colour = rng.uniform(0, 255, 3)
        if abs(colour @ [0.299, 0.587, 0.114] - luminance) >= 100:
            break
    image[y:y + side, x:x + side] = spot * (1 - alpha) + colour * alpha
    rows, columns = np.nonzero(alpha[..., 0] > 0.25)
    places.append((x, y, x + side, y + side))
    return [x + columns.min(), y + rows.min(), x + columns.max() + 1, y + rows.max() + 1]


def _write_split(folder, rng, photos, digits, count, classes):
    from PIL import Image

    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    data = {"images": [], "annotations": [],
            "categories": [{"id": int(d) + 1, "name": str(d)} for d in classes]}
    for image_id in range(1, count + 1):
        image = _crop(rng, photos)
        height, width = image.shape[:2]
        objects = 0 if rng.random() < 0.1 else int(rng.integers(1, 4))
        places = []
        for _ in range(objects):
            index = rng.integers(len(digits[1]))
            side = int(rng.uniform(0.25, 0.5) * min(height, width))
            box = _paint(rng, image, digits[0][index], side, places)
            if box is None:
                continue
            data["annotations"].append({
                "id": len(data["annotations"]) + 1, "image_id": image_id, "category_id": int(digits[1][index]) + 1,
                "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                "area": float((box[2] - box[0]) * (box[3] - box[1])), "iscrowd": 0})
        file_name = f"{image_id:06d}.jpg"
        with atomic_output(os.path.join(folder, "images", file_name)) as temporary:
            Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8)).save(temporary, format="JPEG",
                                                                                     quality=92)
        data["images"].append({"id": image_id, "file_name": file_name, "width": width, "height": height})
    write_json(os.path.join(folder, "annotations.json"), data)
    return data


def make_detection_sample_data(out, overwrite=False, digits=DEFAULT_DIGITS, train_images=800, val_images=100, seed=0):
    """Writes the set under ``out`` (see the module); returns ``{"train": images, "val": images}``.

    The same arguments always write the same files. An existing non-empty
    ``out`` is refused unless ``overwrite``; every file is written atomically.
    """
    from sklearn.datasets import load_digits

    out = os.fspath(out)
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty: choose another folder or pass --overwrite")
    classes = sorted({int(d) for d in digits})
    if not classes or classes[0] < 0 or classes[-1] > 9:
        raise ValueError(f"digits must be among 0-9, got {digits}")
    samples = load_digits()
    chosen = np.flatnonzero(np.isin(samples.target, classes))
    halves = {"train": chosen[0::2], "val": chosen[1::2]}
    photos = _backgrounds()
    counts = {}
    for number, (split, count) in enumerate((("train", train_images), ("val", val_images))):
        rng = np.random.default_rng([seed, number])
        pick = halves[split]
        data = _write_split(os.path.join(out, split), rng, photos, (samples.images[pick], samples.target[pick]),
                            count, classes)
        counts[split] = len(data["images"])
    return counts
