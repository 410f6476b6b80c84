"""The readers of files users bring, fuzzed: checkpoints (.pt, .pth, .safetensors) and .tflite metadata.

Mutated copies of the real fixtures (bytes flipped, truncated, pickle opcodes changed)
and crafted files asking for huge allocations: each gives a state dict of numpy
arrays or a one-line CheckpointError naming the file (``read_metadata``: facts, None
or a MetadataError). Any other exception fails, a MemoryError above all. Seeded.
"""

import collections
import functools
import glob
import io
import json
import os
import pickletools
import struct
import zipfile
import zlib

import numpy as np
import pytest

from keras_mobilevitv2.weights import CheckpointError, read_checkpoint

from conftest import FIXTURES

CHECKPOINTS = sorted(glob.glob(os.path.join(FIXTURES, "cvnets", "*.pt"))
                     + glob.glob(os.path.join(FIXTURES, "timm", "*.pth"))
                     + glob.glob(os.path.join(FIXTURES, "timm", "*.safetensors")))
OPCODES = [op.code.encode("latin-1") for op in pickletools.opcodes]


def _outcome(path, tally):
    """``"valid"`` or ``"error"``; anything but a state dict or a CheckpointError naming the file fails."""
    try:
        state = read_checkpoint(str(path))
    except CheckpointError as error:
        message = str(error)
        assert str(path) in message and "\n" not in message, message
        tally["error"] += 1
        return "error"
    assert isinstance(state, dict)
    assert all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items())
    tally["valid"] += 1
    return "valid"


def _regions(data, suffix):
    """Byte ranges worth flipping: the headers, where a flip changes what the file claims; and anywhere."""
    if suffix == ".safetensors":
        (header_size,) = struct.unpack("<Q", data[:8])
        return [(0, 8), (8, 8 + header_size), (0, len(data))]
    end = data.rfind(b"PK\x05\x06")
    (directory,) = struct.unpack("<I", data[end + 16:end + 20])
    first = zipfile.ZipFile(io.BytesIO(data)).infolist()[0]
    return [(directory, len(data)), (0, min(len(data), 120 + first.file_size)), (0, len(data))]


@pytest.mark.parametrize("checkpoint", CHECKPOINTS, ids=os.path.basename)
def test_flipped_and_truncated_checkpoints_are_read_or_refused(checkpoint, tmp_path):
    name = os.path.basename(checkpoint)
    suffix = os.path.splitext(name)[1]
    data = open(checkpoint, "rb").read()
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    flips, cuts = (40, 15) if len(data) < 1 << 20 else (4, 3)  # a read of a real model takes 50 ms, not 1
    tally = collections.Counter()
    regions = _regions(data, suffix)
    for case in range(flips):
        mutated = bytearray(data)
        start, end = regions[case % len(regions)]
        for position in rng.integers(start, end, rng.integers(1, 5)):
            mutated[position] ^= int(rng.integers(1, 256))
        path = tmp_path / f"flip{case}{suffix}"
        path.write_bytes(mutated)
        _outcome(path, tally)
    for case in range(cuts):
        length = int(rng.integers(0, len(data) if case % 2 else min(len(data), 4096)))
        path = tmp_path / f"cut{case}{suffix}"
        path.write_bytes(data[:length])
        assert _outcome(path, tally) == "error"
    print(f"{name}: {flips} flips, {cuts} truncations: {dict(tally)}")
    assert tally["error"] >= cuts


@functools.lru_cache(maxsize=None)
def _members(checkpoint):
    with zipfile.ZipFile(checkpoint) as archive:
        return tuple((info.filename, archive.read(info)) for info in archive.infolist())


def _mutate_pickle(data, rng):
    """``data`` (a pickle) with one opcode replaced, re-argued, dropped, doubled, inserted or cut."""
    ops = [position for _, _, position in pickletools.genops(data)] + [len(data)]
    i = int(rng.integers(len(ops) - 1))
    start, end = ops[i], ops[i + 1]
    kind = int(rng.integers(6))
    if kind == 0:  # another opcode, with this one's arguments
        return data[:start] + OPCODES[rng.integers(len(OPCODES))] + data[start + 1:]
    if kind == 1:  # other argument bytes: random, or all 0xff (lengths of 2**32 - 1, 2**64 - 1)
        argument = bytes(rng.integers(0, 256, end - start - 1, dtype=np.uint8)) if rng.integers(2) else (
            b"\xff" * (end - start - 1))
        return data[:start + 1] + argument + data[end:]
    if kind == 2:
        return data[:start] + data[end:]
    if kind == 3:
        return data[:end] + data[start:]
    if kind == 4:  # a random opcode with random bytes after it
        return data[:start] + OPCODES[rng.integers(len(OPCODES))] + bytes(
            rng.integers(0, 256, 8, dtype=np.uint8)) + data[start:]
    return data[:start]


@pytest.mark.parametrize("checkpoint, cases", [
    ("timm/formats.pth", 150), ("cvnets/cvnets_mobilevitv2_050.pt", 6), ("timm/mobilevit_xxs.pth", 4)])
def test_mutated_pickles_are_read_or_refused(checkpoint, cases, tmp_path):
    """Pickle opcodes changed inside a valid zip (so the CRC holds and the pickle is run)."""
    members = _members(os.path.join(FIXTURES, checkpoint))
    rng = np.random.default_rng(zlib.crc32(checkpoint.encode()))
    tally = collections.Counter()
    for case in range(cases):
        path = tmp_path / f"mutated{case}.pt"
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members:
                archive.writestr(name, _mutate_pickle(data, rng) if name.endswith("/data.pkl") else data)
        _outcome(path, tally)
    print(f"{checkpoint}: {cases} pickle mutations: {dict(tally)}")
    assert tally["error"] > 0


# A hand-written pickle assembler: what torch.save writes, and what it never would.
def _str(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value):
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if -2**31 <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    size = (value.bit_length() + 8) // 8
    return b"\x8a" + bytes([size]) + value.to_bytes(size, "little", signed=True)  # LONG1


def _tuple(values):
    return b"(" + b"".join(_int(v) for v in values) + b"t"


def _global(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def _storage(key="0", numel=4, storage="FloatStorage"):
    """A persistent id, as torch.save writes it (BINPERSID)."""
    return b"(" + _str("storage") + _global("torch", storage) + _str(key) + _str("cpu") + _int(numel) + b"tQ"


def _tensor(size=(4,), stride=(1,), offset=0, storage=None):
    size = size if isinstance(size, bytes) else _tuple(size)
    return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + (storage or _storage()) + _int(offset)
            + size + _tuple(stride) + b"\x89" + _global("collections", "OrderedDict") + b")RtR")


def _dict(**items):
    return b"\x80\x02}(" + b"".join(_str(k) + v for k, v in items.items()) + b"u."


FOUR_FLOATS = {"0": np.arange(4, dtype="<f4").tobytes()}
_DEEP_LIST = b"]q\x00" + b"]q\x01a0h\x01" * 20000 + b"0"  # a list nested 20000 deep, in memo 0

CRAFTED_PICKLES = {
    # Lengths the pickle claims: Python's Unpickler allocates them (MemoryError) before reading.
    "binbytes8 of 2**62 bytes": (b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"x.", "corrupt checkpoint"),
    "bytearray8 of 2**62 bytes": (b"\x80\x05\x96" + struct.pack("<Q", 2**62) + b"x.", "corrupt checkpoint"),
    "binunicode8 of 2**62 bytes": (b"\x80\x04\x8d" + struct.pack("<Q", 2**62) + b"x.", "corrupt checkpoint"),
    "long binunicode of 2**32-1 bytes": (b"\x80\x02X\xff\xff\xff\xffx.", "corrupt checkpoint"),
    "binstring of 2**31-1 bytes": (b"\x80\x02T\xff\xff\xff\x7fx.", "corrupt checkpoint"),
    "binbytes of 2**32-1 bytes": (b"\x80\x03B\xff\xff\xff\xffx.", "corrupt checkpoint"),
    "frame of 2**62 bytes": (b"\x80\x04\x95" + struct.pack("<Q", 2**62) + b"}.", "no state dict"),
    "long4 of 2**31-1 bytes": (b"\x80\x02\x8b\xff\xff\xff\x7fx.", "corrupt checkpoint"),
    "memo index 2**32-1": (b"\x80\x02}r\xff\xff\xff\xff.", "no state dict"),  # the C Unpickler sizes its memo by it
    # Sizes of tensors and storages.
    "tensor of shape (2**40,)": (_dict(w=_tensor(size=(2**40,))), "more than the file may unpack to"),
    "tensor (2**16,) reading past its storage": (_dict(w=_tensor(size=(2**16,))), "reads past the end"),
    "tensor (2**40,) expanded from one value": (_dict(w=_tensor(size=(2**40,), stride=(0,))),
                                                "more than the file may unpack to"),
    "tensor (0, 2**62, 2**62)": (_dict(w=_tensor(size=(0, 2**62, 2**62), stride=(1, 1, 1))),
                                 "more than the file may unpack to"),
    "negative size": (_dict(w=_tensor(size=(-4,))), "not a list of non-negative"),
    "negative stride": (_dict(w=_tensor(size=(4,), stride=(-1,), offset=3)), "not a list of non-negative"),
    "negative offset": (_dict(w=_tensor(offset=-1)), "not a list of non-negative"),
    "offset past the storage": (_dict(w=_tensor(size=(), stride=(), offset=4)), "reads past the end"),
    "size and stride of other lengths": (_dict(w=_tensor(size=(2, 2), stride=(1,))), "not a list of non-negative"),
    "65 dimensions": (_dict(w=_tensor(size=(1,) * 65, stride=(1,) * 65)), "not a list of non-negative"),
    "float size": (_dict(w=_tensor(size=b"(G" + struct.pack(">d", 4.0) + b"t")), "not a list of non-negative"),
    "storage numel 10**15": (_dict(w=_tensor(storage=_storage(numel=10**15))), "claims 1000000000000000 values"),
    "storage numel -1": (_dict(w=_tensor(storage=_storage(numel=-1))), "claims -1 values"),
    "storage missing": (_dict(w=_tensor(storage=_storage(key="9"))), "storage is missing"),
    "storage read twice as two types": (
        _dict(a=_tensor(), b=_tensor(storage=_storage(storage="IntStorage"))), "two different storages"),
    # Persistent ids and rebuild arguments of the wrong types.
    "persistent id a list": (_dict(w=b"]" + _str("storage") + b"aQ"), "unknown storage reference (a list)"),
    "persistent id a string (PERSID)": (_dict(w=b"P0\n"), "unknown storage reference ('0')"),
    "storage key an int": (_dict(w=_tensor(storage=_storage().replace(_str("0"), _int(0)))),
                           "unknown storage reference"),
    "storage type a string": (_dict(w=_tensor(storage=_storage().replace(_global("torch", "FloatStorage"),
                                                                          _str("FloatStorage")))),
                              "unknown storage reference"),
    "tensor of an int, not a storage": (_dict(w=_tensor(storage=_int(7))), "not of a storage"),
    "tensor of a nested list": (_dict(w=_tensor(storage=b"]]a")), "not of a storage"),
    "rebuild without arguments": (_dict(w=_global("torch._utils", "_rebuild_tensor_v2") + b")R"),
                                  "corrupt checkpoint (TypeError"),
    "a storage type called": (_dict(w=_global("torch", "FloatStorage") + b")R"), "calls a _StorageType"),
    "OrderedDict of bad arguments": (_dict(w=_global("collections", "OrderedDict") + b"(K\x01tR"),
                                     "corrupt checkpoint (TypeError"),
    "BUILD on a tensor": (_dict(w=_tensor() + b"}b"), "BUILD on a ndarray"),
    # Results that are no state dict.
    "a list": (b"\x80\x02](K\x01K\x02e.", "holds a list"),
    "an int": (b"\x80\x02K\x01.", "holds a int"),
    "an empty pickle": (b"", "corrupt checkpoint"),
    "no STOP": (b"\x80\x02}", "corrupt checkpoint"),
    "stack underflow": (b"\x80\x02s.", "stack underflow"),
    "odd SETITEMS": (b"\x80\x02}(K\x01u.", "odd number"),
    "memo entry never put": (b"\x80\x02h\x05.", "never put"),
    "unknown opcode": (b"\x80\x02\xff.", "corrupt checkpoint"),
    "a tensor under an int key": (b"\x80\x02}(K\x01" + _tensor() + b"u.", "filed under a int"),
    "a tensor under a tuple key": (b"\x80\x02}(K\x01\x85" + _tensor() + b"u.", "filed under a tuple"),
    "a key of 2 MB": (b"\x80\x02}(" + _str("k" * 2**21) + b"K\x01u.", "no state dict found (top-level keys: 'kkk"),
    # Nesting: hashing a tuple nested 10**6 deep overflows the C stack (a segfault, not a RecursionError).
    "a tuple key nested 10**6 deep": (b"\x80\x02})" + b"\x85" * 10**6 + b"Ns.", "nested more than 100 deep"),
    "a list nested 20000 deep beside a tensor": (
        b"\x80\x02" + _DEEP_LIST + b"}(" + _str("w") + _tensor() + _str("junk") + b"h\x00u.", "valid"),
    # Code: refused, never run.
    "os.system by GLOBAL": (b"\x80\x02cos\nsystem\n(X\x04\x00\x00\x00trueR.", "refused to load os.system"),
    "builtins.eval by STACK_GLOBAL": (b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.", "refused to load builtins.eval"),
    "os.system by INST": (b"\x80\x02(X\x04\x00\x00\x00trueios\nsystem\n.", "opcode INST"),
    "an extension code (EXT1)": (b"\x80\x02\x82\x01.", "opcode EXT1"),
    "NEWOBJ of a storage type": (_global("torch", "FloatStorage") + b")\x81.", "NEWOBJ of a _StorageType"),
    "a valid tensor": (_dict(w=_tensor(size=(2, 2), stride=(1, 2))), "valid"),
}


def _torch_zip(path, pickled, storages=FOUR_FLOATS, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)


@pytest.mark.parametrize("case", list(CRAFTED_PICKLES))
def test_crafted_pickles_are_refused_before_anything_is_allocated(case, tmp_path):
    pickled, expected = CRAFTED_PICKLES[case]
    path = tmp_path / "crafted.pt"
    _torch_zip(path, pickled)
    if expected == "valid":
        state = read_checkpoint(str(path))
        assert list(state) == ["w"] and state["w"].dtype == np.float32
        return
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(str(path))
    assert str(path) in str(error.value) and expected in str(error.value) and "\n" not in str(error.value)


def test_a_transposed_tensor_reads_as_torch_would(tmp_path):
    path = tmp_path / "t.pt"
    _torch_zip(path, _dict(w=_tensor(size=(2, 2), stride=(1, 2))))
    np.testing.assert_array_equal(read_checkpoint(str(path))["w"], [[0, 2], [1, 3]])


def test_a_pickle_calling_os_system_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    command = _str(f"touch {marker}")
    for pickled in (b"\x80\x02cposix\nsystem\n(" + command + b"tR.",
                    b"\x80\x04\x8c\x02os\x8c\x06system\x93(" + command + b"tR.",
                    _dict(w=b"cos\nsystem\n(" + command + b"tR")):
        path = tmp_path / "evil.pt"
        _torch_zip(path, pickled)
        with pytest.raises(CheckpointError, match=r"refused to load (posix|os)\.system"):
            read_checkpoint(str(path))
        assert not marker.exists()


def _patch_sizes(data, name, size):
    """A zip whose last member (``name``) claims ``size`` bytes in its local and central headers."""
    data = bytearray(data)
    local = data.rfind(b"PK\x03\x04")
    central = data.rfind(b"PK\x01\x02")
    assert data[local + 30:local + 30 + len(name)] == name.encode()
    data[local + 22:local + 26] = struct.pack("<I", size)
    data[central + 24:central + 28] = struct.pack("<I", size)
    return bytes(data)


def test_zip_bombs_and_members_claiming_more_than_the_file_are_refused(tmp_path):
    zeros = bytes(32 << 20)  # 32 MB of zeros deflate to 32 kB
    bomb = tmp_path / "bomb.pt"
    _torch_zip(bomb, _dict(w=_tensor(size=(8 << 20,), storage=_storage(numel=8 << 20))), {"0": zeros},
               zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match="a zip bomb"):
        read_checkpoint(str(bomb))
    # A member that claims 16 bytes, and inflates to 32 MB: only 16 bytes are inflated, and the CRC says no.
    liar = tmp_path / "liar.pt"
    liar.write_bytes(_patch_sizes(bomb.read_bytes(), "archive/data/0", 16))
    with pytest.raises(CheckpointError, match=r"liar\.pt.*(claims 8388608 values|Bad CRC)"):
        read_checkpoint(str(liar))
    stored = tmp_path / "stored.pt"
    _torch_zip(stored, _dict(w=_tensor()))
    stored.write_bytes(_patch_sizes(stored.read_bytes(), "archive/data/0", 2**32 - 1))
    with pytest.raises(CheckpointError, match=r"claims 4294967295 bytes in a file of"):
        read_checkpoint(str(stored))
    bz2 = tmp_path / "bz2.pt"
    _torch_zip(bz2, _dict(w=_tensor()), compression=zipfile.ZIP_BZIP2)
    with pytest.raises(CheckpointError, match="compressed with zip method 12"):
        read_checkpoint(str(bz2))


def _safetensors(header, body=b""):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


_F32 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
CRAFTED_SAFETENSORS = {
    "header of 2**63 bytes": (struct.pack("<Q", 2**63) + b"{}", "header of 9223372036854775808 bytes"),
    "header of 2**64-1 bytes": (b"\xff" * 8 + b"{}", "truncated"),
    "empty header": (_safetensors(b""), "bad header"),
    "header not UTF-8": (_safetensors(b"{\xff}"), "bad header"),
    "header a list": (_safetensors([]), "the header is a list"),
    "header null": (_safetensors(None), "the header is a NoneType"),
    "header nested 10**5 deep": (_safetensors(b"[" * 10**5 + b"]" * 10**5), "RecursionError"),
    "a number of 5000 digits": (_safetensors(b'{"w": {"shape": [' + b"1" * 5000 + b"]}}"), "bad header"),
    "entry an int": (_safetensors({"w": 5}), "described by a int"),
    "dtype a list": (_safetensors({"w": {**_F32, "dtype": []}}, bytes(16)), "unsupported dtype a list"),
    "dtype unknown": (_safetensors({"w": {**_F32, "dtype": "F128"}}, bytes(16)), "unsupported dtype 'F128'"),
    "shape negative": (_safetensors({"w": {**_F32, "shape": [-4]}}, bytes(16)), "not a list of non-negative"),
    "shape of floats": (_safetensors({"w": {**_F32, "shape": [4.0]}}, bytes(16)), "not a list of non-negative"),
    "shape of booleans": (_safetensors({"w": {**_F32, "shape": [True]}}, bytes(16)), "not a list of non-negative"),
    "shape a string": (_safetensors({"w": {**_F32, "shape": "4"}}, bytes(16)), "not a list of non-negative"),
    "shape overflowing int64": (_safetensors({"w": {**_F32, "shape": [2**32, 2**32, 2**32]}}, bytes(16)),
                                "not those of its shape"),
    "shape of 2**64 (wraps to 0 in int64)": (
        _safetensors({"w": {**_F32, "shape": [2**32, 2**32], "data_offsets": [0, 0]}}), "not those of its shape"),
    "empty tensor too large for numpy": (
        _safetensors({"w": {**_F32, "shape": [0, 2**62, 2**62], "data_offsets": [0, 0]}}), "too large for numpy"),
    "shape not matching its bytes": (_safetensors({"w": {**_F32, "shape": [3]}}, bytes(16)), "not those of its shape"),
    "odd bfloat16 bytes": (_safetensors({"w": {**_F32, "dtype": "BF16", "shape": [3], "data_offsets": [0, 5]}},
                                        bytes(16)), "not those of its shape"),
    "offsets negative": (_safetensors({"w": {**_F32, "data_offsets": [-16, 0]}}, bytes(16)), "reads outside"),
    "offsets reversed": (_safetensors({"w": {**_F32, "data_offsets": [16, 0]}}, bytes(16)), "reads outside"),
    "offsets past the end": (_safetensors({"w": {**_F32, "data_offsets": [0, 2**62]}}, bytes(16)), "reads outside"),
    "offsets of floats": (_safetensors({"w": {**_F32, "data_offsets": [0.0, 16.0]}}, bytes(16)), "reads outside"),
    "one offset": (_safetensors({"w": {**_F32, "data_offsets": [16]}}, bytes(16)), "reads outside"),
    "offsets missing": (_safetensors({"w": {"dtype": "F32", "shape": [4]}}, bytes(16)), "reads outside"),
    "overlapping tensors": (_safetensors({"a": _F32, "b": {**_F32, "data_offsets": [8, 24]}}, bytes(24)),
                            "tensors 'a' and 'b' overlap"),
    "metadata a list, an empty tensor": (
        _safetensors({"__metadata__": [], "w": _F32, "e": {**_F32, "shape": [0, 3], "data_offsets": [16, 16]}},
                     np.arange(4, dtype="<f4").tobytes()), "valid"),
}


@pytest.mark.parametrize("case", list(CRAFTED_SAFETENSORS))
def test_crafted_safetensors_headers_are_refused(case, tmp_path):
    data, expected = CRAFTED_SAFETENSORS[case]
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(data)
    if expected == "valid":
        state = read_checkpoint(str(path))
        np.testing.assert_array_equal(state["w"], np.arange(4))
        assert state["e"].shape == (0, 3)
        return
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(str(path))
    assert str(path) in str(error.value) and expected in str(error.value) and "\n" not in str(error.value)


@pytest.fixture(scope="module")
def tflite_model():
    """A small .tflite file with this kit's metadata."""
    import keras
    import tensorflow as tf

    from mobilevitv2_tflite.metadata import add_metadata

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    content = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    return add_metadata(content, {"architecture": "tiny", "class_names": ["a", "b"], "input_size": [4]})


def _metadata_outcome(path, tally):
    from mobilevitv2_tflite.metadata import MetadataError, read_metadata

    try:
        facts = read_metadata(str(path))
    except MetadataError as error:
        message = str(error)
        assert str(path) in message and "\n" not in message, message
        tally["error"] += 1
        return "error"
    assert facts is None or isinstance(facts, dict)
    tally["none" if facts is None else "facts"] += 1
    return "facts"


def test_mutated_tflite_files_give_facts_none_or_a_metadata_error(tflite_model, tmp_path):
    from mobilevitv2_tflite.metadata import read_metadata

    assert read_metadata(tflite_model)["class_names"] == ["a", "b"]
    rng = np.random.default_rng(17)
    json_start = tflite_model.find(b'{"architecture"')
    regions = [(0, 64), (json_start, json_start + 80), (len(tflite_model) - 256, len(tflite_model)),
               (0, len(tflite_model))]
    tally = collections.Counter()
    for case in range(120):
        mutated = bytearray(tflite_model)
        start, end = regions[case % len(regions)]
        for position in rng.integers(start, end, rng.integers(1, 4)):
            mutated[position] ^= int(rng.integers(1, 256))
        path = tmp_path / f"flip{case}.tflite"
        path.write_bytes(mutated)
        _metadata_outcome(path, tally)
    for case in range(40):
        path = tmp_path / f"cut{case}.tflite"
        path.write_bytes(tflite_model[:int(rng.integers(0, len(tflite_model)))])
        _metadata_outcome(path, tally)
    print(f"tflite: 120 flips, 40 truncations: {dict(tally)}")
    assert tally["error"] > 0 and tally["facts"] > 0


def test_crafted_tflite_metadata_is_refused_with_one_line(tflite_model, tmp_path):
    from tensorflow.lite.tools import flatbuffer_utils

    from mobilevitv2_tflite.metadata import METADATA_NAME, MetadataError, read_metadata

    def with_buffer(data=None, index=None):
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_model))
        entry = next(m for m in model.metadata if m.name in (METADATA_NAME, METADATA_NAME.encode()))
        if data is not None:
            model.buffers[entry.buffer].data = list(data)
        if index is not None:
            entry.buffer = index
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))

    cases = {
        "no identifier": (b"\x00" * 4 + b"TFL2" + tflite_model[8:], "no TFL3 file identifier"),
        "buffer index out of range": (with_buffer(index=10**6), "names buffer 1000000 of"),
        "metadata not UTF-8": (with_buffer(b"\xff\xfe{}"), "not JSON (UnicodeDecodeError"),
        "metadata not JSON": (with_buffer(b"{architecture"), "not JSON (JSONDecodeError"),
        "metadata a list": (with_buffer(b"[1, 2]"), "is a list, not an object"),
        "metadata nested 10**5 deep": (with_buffer(b"[" * 10**5 + b"]" * 10**5), "not JSON (RecursionError"),
        "metadata empty": (with_buffer(b""), "not JSON"),
    }
    for case, (data, expected) in cases.items():
        path = tmp_path / "crafted.tflite"
        path.write_bytes(data)
        with pytest.raises(MetadataError) as error:
            read_metadata(str(path))
        assert str(path) in str(error.value) and expected in str(error.value), (case, str(error.value))
        with pytest.raises(ValueError, match="^the model bytes: "):
            read_metadata(data)
