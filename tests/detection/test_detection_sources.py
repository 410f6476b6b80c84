"""COCO and VOC sources: every kind of bad input named and skipped, boxes clipped and normalised."""

import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from keras_mobilevitv2.data.detection import VOC_CLASSES, DataError, scan_coco, scan_voc


def write_image(path, width, height, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path)


def make_coco(root):
    """A COCO tree with one of every problem; returns (images_dir, annotation_file)."""
    images = root / "images"
    write_image(str(images / "a.jpg"), 40, 30)
    write_image(str(images / "b.png"), 50, 20)
    write_image(str(images / "empty.png"), 16, 16)
    write_image(str(images / "wrong_size.png"), 16, 16)
    (images / "truncated.jpg").write_bytes((images / "a.jpg").read_bytes()[:100])
    data = {
        "categories": [{"id": 7, "name": "seven"}, {"id": 3, "name": "three"}, {"id": 90, "name": "ninety"},
                       {"id": 3, "name": "again"}, {"name": "no id"}],
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
            {"id": 2, "file_name": "b.png", "width": 50, "height": 20},
            {"id": 3, "file_name": "empty.png", "width": 16, "height": 16},
            {"id": 4, "file_name": "truncated.jpg", "width": 40, "height": 30},
            {"id": 5, "file_name": "missing.jpg", "width": 40, "height": 30},
            {"id": 6, "file_name": "wrong_size.png", "width": 20, "height": 16},
            {"id": 7, "width": 20, "height": 16},
            {"id": 1, "file_name": "b.png", "width": 50, "height": 20},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 7, "bbox": [4, 3, 20, 15], "area": 123.0, "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 3, "bbox": [30, 20, 20, 20], "iscrowd": 0},  # crosses the border
            {"id": 12, "image_id": 1, "category_id": 90, "bbox": [0, 0, 40, 30], "iscrowd": 1},  # crowd
            {"id": 13, "image_id": 2, "category_id": 3, "bbox": [10, 5, 0, 8]},  # no width: dropped
            {"id": 14, "image_id": 2, "category_id": 3, "bbox": [60, 5, 4, 8]},  # outside the image: dropped
            {"id": 15, "image_id": 2, "category_id": 90, "bbox": [1, 2, 3, 4]},
            {"id": 16, "image_id": 2, "category_id": 3, "bbox": [1, float("nan"), 3, 4]},
            {"id": 17, "image_id": 2, "category_id": 3, "bbox": "1 2 3 4"},
            {"id": 18, "image_id": 2, "category_id": 5, "bbox": [1, 2, 3, 4]},  # unknown category
            {"id": 19, "image_id": 99, "category_id": 3, "bbox": [1, 2, 3, 4]},  # unknown image
            {"id": 20, "image_id": 2, "category_id": 3},  # no bbox
            {"id": 21, "image_id": 4, "category_id": 3, "bbox": [1, 2, 3, 4]},  # goes with its unreadable image
            {"id": 22, "image_id": [2], "category_id": 3, "bbox": [1, 2, 3, 4]},  # not an id
        ],
    }
    annotation_file = root / "instances.json"
    annotation_file.write_text(json.dumps(data))
    return images, annotation_file


def test_coco_source_maps_categories_keeps_what_is_usable_and_names_the_rest(tmp_path):
    images, annotation_file = make_coco(tmp_path)
    source = scan_coco(images, annotation_file)
    assert source.class_names == ("background", "three", "seven", "ninety") and source.num_classes == 4
    assert source.category_ids == (3, 7, 90)  # sorted ids -> labels 1, 2, 3, as cvnets
    assert [os.path.basename(p) for p in source.paths] == ["a.jpg", "b.png", "empty.png"]
    assert source.image_ids == (1, 2, 3) and source.sizes == ((30, 40), (20, 50), (16, 16))
    np.testing.assert_allclose(source.boxes[0], [[4 / 40, 3 / 30, 24 / 40, 18 / 30], [30 / 40, 20 / 30, 1, 1],
                                                 [0, 0, 1, 1]], rtol=1e-6)
    assert source.labels[0].tolist() == [2, 1, 3] and source.ignored[0].tolist() == [False, False, True]
    np.testing.assert_allclose(source.areas[0], [123, 10 * 10, 1200])  # the file's area, else the clipped box's
    boxes, labels = source.training_boxes(0)
    assert labels.tolist() == [2, 1] and boxes.shape == (2, 4)
    assert source.labels[1].tolist() == [3] and len(source.boxes[2]) == 0  # an image without objects stays
    assert source.clipped == 1 and source.dropped == 2
    reasons = dict(source.skipped)
    named = {what.rsplit(" ", 1)[-1] if "annotation" in what or "image #" in what or "category" in what
             else os.path.basename(what) for what in reasons}
    assert named == {"#3", "#4", "#6", "#7", "16", "17", "18", "19", "20", "22", "truncated.jpg", "missing.jpg",
                     "wrong_size.png"}
    assert "unknown category id 5" in reasons[f"{annotation_file} annotation 18"]
    assert "the annotation says 20x16, the image is 16x16" in reasons[str(images / "wrong_size.png")]
    report = source.report()
    assert "13 unusable image(s) or annotation(s)" in report and "1 box(es) crossing" in report
    assert "2 box(es) without area dropped" in report
    picked = source.subset([2, 0])
    assert picked.image_ids == (3, 1) and picked.labels[1].tolist() == [2, 1, 3] and picked.report() == ""


@pytest.mark.parametrize("contents, message", [
    ("{not json", "not valid JSON"), ("[]", "not a COCO annotation file"),
    ('{"images": [], "annotations": []}', "no 'categories' list"),
    ('{"images": [], "categories": [{"id": 1, "name": "a"}]}', "no usable images")])
def test_coco_files_that_cannot_be_used_at_all_raise_one_line_errors(tmp_path, contents, message):
    (tmp_path / "bad.json").write_text(contents)
    with pytest.raises(DataError, match=message) as error:
        scan_coco(tmp_path, tmp_path / "bad.json")
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match="no such annotation file"):
        scan_coco(tmp_path, tmp_path / "missing.json")


def voc_xml(objects, width=40, height=30):
    parts = [f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
    for name, box, difficult in objects:
        corners = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
        parts.append(f"<object><name>{name}</name><difficult>{difficult}</difficult>"
                     f"<bndbox>{corners}</bndbox></object>")
    return "".join(parts) + "</annotation>"


def make_voc(root):
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        os.makedirs(root / folder)
    files = {
        "good": voc_xml([("dog", (1, 1, 20, 30), 0), ("person", (10, 5, 45, 25), 1)]),  # 2nd: difficult, crosses
        "unknown": voc_xml([("unicorn", (1, 1, 5, 5), 0), ("cat", (2, 2, 8, 8), 0)]),
        "nan": voc_xml([("cat", (1, "nan", 5, 5), 0), ("cat", (3, 3, "", 5), 0), ("cat", (5, 5, 4, 9), 0)]),
        "zero_size": voc_xml([("car", (1, 1, 8, 8), 0)], width=0, height=0),
        "wrong_size": voc_xml([("car", (1, 1, 8, 8), 0)], width=41),
        "broken": "<annotation><size>",
        "no_image": voc_xml([]),
    }
    for name, text in files.items():
        (root / "Annotations" / f"{name}.xml").write_text(text)
        if name != "no_image":
            write_image(str(root / "JPEGImages" / f"{name}.jpg"), 40, 30)
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join([*files, "no_xml", "good"]) + "\n")


def test_voc_source_reads_one_based_boxes_marks_difficult_and_names_the_rest(tmp_path):
    make_voc(tmp_path)
    source = scan_voc(tmp_path, "train")
    assert source.class_names == ("background", *VOC_CLASSES) and source.num_classes == 21
    assert source.category_ids == tuple(range(1, 21))
    names = [os.path.basename(p) for p in source.paths]
    assert names == ["good.jpg", "unknown.jpg", "nan.jpg", "zero_size.jpg"]
    np.testing.assert_allclose(source.boxes[0], [[0, 0, 20 / 40, 1], [9 / 40, 4 / 30, 1, 25 / 30]], rtol=1e-6)
    assert source.labels[0].tolist() == [VOC_CLASSES.index("dog") + 1, VOC_CLASSES.index("person") + 1]
    assert source.ignored[0].tolist() == [False, True]
    assert source.training_boxes(0)[1].tolist() == [VOC_CLASSES.index("dog") + 1]
    assert source.labels[1].tolist() == [VOC_CLASSES.index("cat") + 1]
    assert len(source.labels[2]) == 0  # one box unreadable, one NaN, one without width
    assert source.sizes[3] == (30, 40)  # the XML's size is 0: the image's is used
    assert source.clipped == 1 and source.dropped == 1
    skipped = {os.path.basename(what): reason for what, reason in source.skipped}
    assert set(skipped) == {"unknown.xml object #0", "nan.xml object #0", "nan.xml object #1", "broken.xml",
                            "no_xml.xml", "wrong_size.jpg", "no_image.jpg"}
    assert skipped["unknown.xml object #0"] == "unknown class 'unicorn'"
    with pytest.raises(DataError, match="no such image list"):
        scan_voc(tmp_path, "val")


def test_voc_to_coco_marks_difficult_as_crowd_and_round_trips_boxes(tmp_path):
    make_voc(tmp_path)
    source = scan_voc(tmp_path, "train")
    coco = source.to_coco()
    assert [c["name"] for c in coco["categories"]] == list(VOC_CLASSES)
    first = [a for a in coco["annotations"] if a["image_id"] == source.image_ids[0]]
    assert [a["iscrowd"] for a in first] == [0, 1]
    np.testing.assert_allclose(first[0]["bbox"], [0, 0, 20, 30], atol=1e-4)
    assert math.isclose(first[0]["area"], 600, rel_tol=1e-5)
