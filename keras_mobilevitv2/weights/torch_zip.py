"""Reads PyTorch checkpoints without PyTorch and without running code from the file.

``torch.save`` writes a zip: ``<archive>/data.pkl`` (a pickle of the object, with
tensors referring to storages) and ``<archive>/data/<key>`` (the raw storages).
The pickle is read with an allow-list of globals: ordered dicts, PyTorch's tensor
and parameter rebuild functions and its storage types. Any other global (say,
``os.system``) stops the read with an error that names it, before anything runs.
"""

import collections
import pickle
import zipfile

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, with the file and the reason."""


# PyTorch storage types -> numpy dtypes (bfloat16 is widened to float32 below).
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """``torch._utils._rebuild_tensor_v2``: a strided view of a storage, copied out."""
    size, stride = tuple(size), tuple(stride)
    if not size:
        return np.array(storage[storage_offset])
    needed = storage_offset + 1 + sum((s - 1) * st for s, st in zip(size, stride) if s > 0)
    if any(s == 0 for s in size):
        return np.zeros(size, storage.dtype)
    if needed > storage.size:
        raise CheckpointError(f"a tensor of shape {size} reads past the end of its storage")
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=size, strides=[s * storage.itemsize for s in stride])
    return np.array(view)


def _rebuild_parameter(data, *unused):
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path, read_storage):
        super().__init__(file)
        self._path = path
        self._read_storage = read_storage
        self._storages = {}

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self._path}: refused to load {module}.{name}: a checkpoint may hold only tensors "
                "and dictionaries, and this file asks to call other code") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise CheckpointError(f"{self._path}: unknown storage reference {pid!r:.80}")
        _, storage_type, key, _location, numel = pid
        if key not in self._storages:
            self._storages[key] = self._read_storage(str(key), storage_type.dtype, int(numel))
        return self._storages[key]


def _decode_storage(raw, dtype, numel, big_endian, where):
    if dtype == "bfloat16":
        itemsize, array_dtype = 2, np.dtype(">u2" if big_endian else "<u2")
    else:
        array_dtype = np.dtype(dtype).newbyteorder(">" if big_endian else "<")
        itemsize = array_dtype.itemsize
    if len(raw) < numel * itemsize:
        raise CheckpointError(f"{where}: storage holds {len(raw)} bytes, {numel * itemsize} expected")
    array = np.frombuffer(raw, dtype=array_dtype, count=numel)
    if dtype == "bfloat16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(array_dtype.newbyteorder("="))


def read_torch_zip(path):
    """The object a ``torch.save`` zip holds, with tensors as numpy arrays."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (not a zip archive: {error})") from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pickles:
            raise CheckpointError(f"{path}: a zip archive, but not a PyTorch checkpoint (no data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if f"{prefix}byteorder" in names:
            byteorder = archive.read(f"{prefix}byteorder").decode().strip()
        big_endian = byteorder == "big"

        def read_storage(key, dtype, numel):
            member = f"{prefix}data/{key}"
            try:
                raw = archive.read(member)
            except KeyError:
                raise CheckpointError(f"{path}: storage {member} is missing (truncated file?)") from None
            except (zipfile.BadZipFile, OSError, EOFError) as error:
                raise CheckpointError(f"{path}: cannot read {member}: {error}") from None
            return _decode_storage(raw, dtype, numel, big_endian, f"{path}:{member}")

        try:
            with archive.open(pickles[0]) as file:
                return _RestrictedUnpickler(file, path, read_storage).load()
        except CheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError) as error:
            raise CheckpointError(f"{path}: corrupt checkpoint ({type(error).__name__}: {error})") from None

