"""Reads PyTorch checkpoints without PyTorch and without running code from the file.

``torch.save`` writes a zip: ``<archive>/data.pkl`` (a pickle of the object, with
tensors referring to storages) and ``<archive>/data/<key>`` (the raw storages).
The pickle is read with an allow-list of globals: ordered dicts, PyTorch's tensor
and parameter rebuild functions and its storage types. Any other global (say,
``os.system``) stops the read with an error that names it, before anything runs.

Nothing the file claims is believed before it is checked against the file's size:
the pickle runs on a small interpreter of its data opcodes (``pickletools.genops``
decodes them from memory, so a length field cannot make it allocate; Python's
``pickle.Unpickler`` allocates what a BINBYTES8 asks for, and hashes a tuple nested
a million deep until the C stack overflows), storages must fit their zip members,
members may unpack to at most ``_MAX_EXPANSION`` times the file (zip bombs), and
every tensor must lie inside its storage before it is copied out.
"""

import collections
import io
import math
import os
import pickletools
import struct
import zipfile
import zlib

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

# A file unpacks (zip members, and tensors made of them) to at most this many times its size, plus _SLACK:
# torch.save stores members uncompressed, and a state dict's tensors are its storages, or views of them.
_MAX_EXPANSION = 16
_SLACK = 1 << 20
# Tuples and frozensets nested deeper are refused: hashing one (as a dict key) recurses in C with no limit.
_MAX_NESTING = 100
_MAX_DIMS = 64  # numpy's limit
_MAX_INDEX = 1 << 62  # sizes, strides and offsets past this are no tensor's
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError,
               NotImplementedError, RuntimeError, struct.error, OverflowError)


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): "_rebuild_tensor",  # methods of the unpickler
    ("torch._utils", "_rebuild_parameter"): "_rebuild_parameter",
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}

# Opcodes that push their argument, and the containers made from the items above a MARK.
_VALUES = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING", "BINSTRING",
    "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "UNICODE", "SHORT_BINUNICODE",
    "BINUNICODE", "BINUNICODE8",
}
_CONSTANTS = {"NONE": lambda: None, "NEWTRUE": lambda: True, "NEWFALSE": lambda: False, "EMPTY_TUPLE": tuple,
              "EMPTY_LIST": list, "EMPTY_DICT": dict, "EMPTY_SET": set}
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GETS = {"GET", "BINGET", "LONG_BINGET"}


def _is_int(value):
    return type(value) is int


def _shown(value, limit=60):
    """A short description of something from the file, for a one-line message."""
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[:limit] + "...")
    return f"a {type(value).__name__}"


def _clean(name, limit=200):
    """A name from the file as it is when short and printable, else quoted: messages stay one line."""
    return name if len(name) <= limit and name.isprintable() else _shown(name, limit)


def _reason(error):
    """An exception as a short one-line reason."""
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


class _Unpickler:
    """Runs a pickle's data opcodes; calls only the allow-listed globals and refuses every other opcode."""

    def __init__(self, data, path, read_storage, tensor_budget):
        self._data = data
        self._path = path
        self._read_storage = read_storage
        self._tensor_budget = tensor_budget  # bytes the tensors copied out of storages may still take
        self._storages = {}
        self._nesting = {}  # id -> (tuple or frozenset, its depth); kept alive, so that no other object takes the id

    def _error(self, reason):
        return CheckpointError(f"{self._path}: {reason}")

    def find_class(self, module, name):
        if not isinstance(module, str) or not isinstance(name, str):
            raise self._error("a pickle global whose name is not a string")
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise self._error(
                f"refused to load {_clean(module, 80)}.{_clean(name, 80)}: a checkpoint may hold only tensors "
                "and dictionaries, and this file asks to call other code")
        return getattr(self, found) if isinstance(found, str) else found

    def persistent_load(self, pid):
        if not (type(pid) is tuple and len(pid) == 5 and isinstance(pid[0], str) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and _is_int(pid[4])):
            raise self._error(f"unknown storage reference ({_shown(pid)})")
        _, storage_type, key, _location, numel = pid
        if not 0 <= numel <= _MAX_INDEX:
            raise self._error(f"storage {_shown(key)} claims {numel} values")
        if key in self._storages:
            storage, dtype = self._storages[key]
            if dtype != storage_type.dtype or storage.size != numel:
                raise self._error(f"storage {_shown(key)} is referred to as two different storages")
            return storage
        storage = self._read_storage(key, storage_type.dtype, numel)
        self._storages[key] = storage, storage_type.dtype
        return storage

    def _rebuild_tensor(self, storage, storage_offset, size, stride, *unused):
        """``torch._utils._rebuild_tensor_v2``: a strided view of a storage, copied out."""
        if not isinstance(storage, np.ndarray) or storage.ndim != 1:
            raise self._error(f"a tensor made of {_shown(storage)}, not of a storage")
        if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list)) and len(size) == len(stride)
                and len(size) <= _MAX_DIMS and all(_is_int(v) and 0 <= v <= _MAX_INDEX for v in (*size, *stride))
                and _is_int(storage_offset) and 0 <= storage_offset <= _MAX_INDEX):
            raise self._error("a tensor whose size, stride or offset is not a list of non-negative integers")
        size = tuple(size)
        # The elements of its shape once empty dimensions are not: what numpy must be able to make.
        span = math.prod(max(s, 1) for s in size)
        if span * storage.itemsize > self._tensor_budget:
            raise self._error(f"a tensor of shape {size} takes {span * storage.itemsize} bytes, more than the file "
                              "may unpack to")
        if any(s == 0 for s in size):
            return np.zeros(size, storage.dtype)
        last = storage_offset + sum((s - 1) * st for s, st in zip(size, stride))
        if last >= storage.size:
            raise self._error(f"a tensor of shape {size} reads past the end of its storage")
        self._tensor_budget -= span * storage.itemsize
        strides = [st * storage.itemsize if s > 1 else 0 for s, st in zip(size, stride)]
        view = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=size, strides=strides)
        return np.array(view)

    def _rebuild_parameter(self, data, *unused):
        return data

    def _nested(self, container):
        """``container`` (a new tuple or frozenset), refused when nested too deep to hash."""
        depth = 1 + max((self._nesting[id(x)][1] for x in container if id(x) in self._nesting
                         and self._nesting[id(x)][0] is x), default=0)
        if depth > _MAX_NESTING:
            raise self._error(f"tuples nested more than {_MAX_NESTING} deep")
        if container:
            self._nesting[id(container)] = container, depth
        return container

    def load(self):
        """The object the pickle makes."""
        try:
            return self._run()
        except CheckpointError:
            raise
        except (ValueError, TypeError) as error:  # genops' reading errors; unhashable keys; bad OrderedDict args
            raise self._error(f"corrupt checkpoint ({_reason(error)})") from None

    def _run(self):
        stack, marks, memo = [], [], {}

        def fence():
            return marks[-1] if marks else 0

        def pop():
            if len(stack) <= fence():
                raise self._error(f"pickle stack underflow at {name} (byte {position})")
            return stack.pop()

        def top():
            if len(stack) <= fence():
                raise self._error(f"pickle stack underflow at {name} (byte {position})")
            return stack[-1]

        def pop_mark():
            if not marks:
                raise self._error(f"pickle {name} without a MARK (byte {position})")
            start = marks.pop()
            items = stack[start:]
            del stack[start:]
            return items

        def target(kind):
            value = top()
            if not isinstance(value, kind):
                raise self._error(f"pickle {name} on {_shown(value)} (byte {position})")
            return value

        for opcode, arg, position in pickletools.genops(io.BytesIO(self._data)):
            name = opcode.name
            if name in _VALUES:
                stack.append(arg)
            elif name in _CONSTANTS:
                stack.append(_CONSTANTS[name]())
            elif name in ("PROTO", "FRAME"):
                pass
            elif name == "STOP":
                return pop()
            elif name == "MARK":
                marks.append(len(stack))
            elif name == "POP":
                if len(stack) > fence():
                    stack.pop()
                else:
                    pop_mark()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(top())
            elif name == "TUPLE":
                stack.append(self._nested(tuple(pop_mark())))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                items = [pop() for _ in range(int(name[-1]))]
                stack.append(self._nested(tuple(reversed(items))))
            elif name == "FROZENSET":
                stack.append(self._nested(frozenset(pop_mark())))
            elif name == "LIST":
                stack.append(pop_mark())
            elif name == "DICT":
                items = pop_mark()
                if len(items) % 2:
                    raise self._error(f"pickle DICT of an odd number of items (byte {position})")
                stack.append(dict(zip(items[::2], items[1::2])))
            elif name == "APPEND":
                value = pop()
                target(list).append(value)
            elif name == "APPENDS":
                items = pop_mark()
                target(list).extend(items)
            elif name == "SETITEM":
                value, key = pop(), pop()
                target(dict)[key] = value
            elif name == "SETITEMS":
                items = pop_mark()
                if len(items) % 2:
                    raise self._error(f"pickle SETITEMS of an odd number of items (byte {position})")
                target(dict).update(zip(items[::2], items[1::2]))
            elif name == "ADDITEMS":
                items = pop_mark()
                target(set).update(items)
            elif name in _MEMO_PUTS or name == "MEMOIZE":
                memo[len(memo) if name == "MEMOIZE" else arg] = top()
            elif name in _MEMO_GETS:
                if arg not in memo:
                    raise self._error(f"pickle {name} of a memo entry never put (byte {position})")
                stack.append(memo[arg])
            elif name == "GLOBAL":
                module, _, global_name = arg.partition(" ")
                stack.append(self.find_class(module, global_name))
            elif name == "STACK_GLOBAL":
                global_name, module = pop(), pop()
                stack.append(self.find_class(module, global_name))
            elif name == "REDUCE":
                args, function = pop(), pop()
                if not (function is collections.OrderedDict or getattr(function, "__self__", None) is self):
                    raise self._error(f"pickle REDUCE calls {_shown(function)}, not a function (byte {position})")
                if type(args) is not tuple:
                    raise self._error(f"pickle REDUCE with {_shown(args)} for arguments (byte {position})")
                stack.append(function(*args))
            elif name == "NEWOBJ":
                args, cls = pop(), pop()
                if cls is not collections.OrderedDict or type(args) is not tuple or args:
                    raise self._error(f"pickle NEWOBJ of {_shown(cls)} (byte {position})")
                stack.append(collections.OrderedDict())
            elif name == "BUILD":
                pop()  # an OrderedDict's attributes (a state dict's _metadata): not needed here
                target(collections.OrderedDict)
            elif name == "BINPERSID":
                stack.append(self.persistent_load(pop()))
            elif name == "PERSID":
                stack.append(self.persistent_load(arg))
            else:  # INST, OBJ, NEWOBJ_EX, EXT1/2/4, NEXT_BUFFER, READONLY_BUFFER: never in a checkpoint
                raise self._error(f"pickle opcode {name} (byte {position}) has no place in a checkpoint")
        raise self._error("pickle without STOP (truncated?)")  # genops raises first; here for safety


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


def _itemsize(dtype):
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def read_torch_zip(path):
    """The object a ``torch.save`` zip holds, with tensors as numpy arrays."""
    try:
        file = open(path, "rb")
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read: {error.strerror}") from None
    with file:
        file_size = os.fstat(file.fileno()).st_size
        try:
            archive = zipfile.ZipFile(file)
        except _ZIP_ERRORS as error:
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (not a zip archive: {_reason(error)})") from None
        with archive:
            return _read_archive(archive, path, file_size)


def _read_archive(archive, path, file_size):
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pickles:
        raise CheckpointError(f"{path}: a zip archive, but not a PyTorch checkpoint (no data.pkl)")
    prefix = pickles[0][: -len("data.pkl")]
    budget = [_MAX_EXPANSION * file_size + _SLACK]  # bytes the members read may still unpack to

    def read_member(name):
        info = archive.getinfo(name)
        name = _clean(name)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(f"{path}: {name} is compressed with zip method {info.compress_type}; "
                                  "PyTorch stores members uncompressed")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size > file_size:
            raise CheckpointError(f"{path}: {name} claims {info.file_size} bytes in a file of {file_size}")
        if info.file_size > budget[0]:
            raise CheckpointError(f"{path}: {name} claims {info.file_size} bytes, more than a file of {file_size} "
                                  f"bytes may unpack to (a zip bomb?)")
        budget[0] -= info.file_size
        try:
            with archive.open(info) as member:
                return member.read(info.file_size)  # reads and inflates at most the size checked above
        except _ZIP_ERRORS as error:
            raise CheckpointError(f"{path}: cannot read {name} ({_reason(error)})") from None

    big_endian = False
    if f"{prefix}byteorder" in names:
        byteorder = read_member(f"{prefix}byteorder").strip()
        if byteorder not in (b"little", b"big"):
            raise CheckpointError(f"{path}: {_clean(prefix)}byteorder says {byteorder[:20]!r}, not little or big")
        big_endian = byteorder == b"big"

    def read_storage(key, dtype, numel):
        member = f"{prefix}data/{key}"
        where = f"{path}:{_clean(member)}"
        try:
            declared = archive.getinfo(member).file_size
        except KeyError:
            raise CheckpointError(f"{where}: storage is missing (truncated file?)") from None
        if numel * _itemsize(dtype) > declared:
            raise CheckpointError(f"{where}: storage claims {numel} values, its member holds {declared} bytes")
        return _decode_storage(read_member(member), dtype, numel, big_endian, where)

    data = read_member(pickles[0])
    tensor_budget = _MAX_EXPANSION * file_size + _SLACK
    return _Unpickler(data, path, read_storage, tensor_budget).load()
