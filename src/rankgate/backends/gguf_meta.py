"""Read one string from a GGUF file's metadata without loading the model.

The backend must know whether a local model can call tools *before* it is loaded (``auto``
routes on capabilities, and loading the 1.5B model takes seconds and 2 GB): that is written in
the file's chat template (``tokenizer.chat_template``), which sits in the metadata header. This
walks the header through a memory map — tens of milliseconds even past a 150k-token vocabulary —
and stops at the wanted key.
"""

from __future__ import annotations

import mmap
import struct
from functools import lru_cache
from pathlib import Path

# GGUF metadata value types -> struct format of the scalar ones
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def _skip(buf: mmap.mmap, kind: int, pos: int) -> int:
    """The offset just past one value of ``kind`` at ``pos``."""
    if kind in _SCALAR:
        return pos + struct.calcsize(_SCALAR[kind])
    if kind == _STRING:
        (n,) = struct.unpack_from("<Q", buf, pos)
        return pos + 8 + n
    if kind == _ARRAY:
        elem, n = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        if elem in _SCALAR:
            return pos + n * struct.calcsize(_SCALAR[elem])
        for _ in range(n):
            pos = _skip(buf, elem, pos)
        return pos
    raise ValueError(f"unknown GGUF metadata type {kind}")


def read_string(path: Path, key: str) -> str | None:
    """The string value of metadata ``key``, or None (no such key, not a string, not GGUF)."""
    wanted = key.encode()
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != b"GGUF":
            return None
        (n_kv,) = struct.unpack_from("<Q", buf, 16)
        pos = 24
        for _ in range(n_kv):
            (n,) = struct.unpack_from("<Q", buf, pos)
            name = buf[pos + 8:pos + 8 + n]
            pos += 8 + n
            (kind,) = struct.unpack_from("<I", buf, pos)
            pos += 4
            if name == wanted:
                if kind != _STRING:
                    return None
                (m,) = struct.unpack_from("<Q", buf, pos)
                return buf[pos + 8:pos + 8 + m].decode("utf-8", "replace")
            pos = _skip(buf, kind, pos)
    return None


@lru_cache(maxsize=64)
def _chat_template(path: str, mtime_ns: int) -> str | None:
    try:
        return read_string(Path(path), "tokenizer.chat_template")
    except (OSError, ValueError, struct.error):
        return None


def chat_template(path: Path) -> str | None:
    """The file's chat template (cached per file version); None if it has none or is absent."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    return _chat_template(str(path), mtime)
