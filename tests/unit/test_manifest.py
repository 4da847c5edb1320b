"""The typed manifest and the dense-index choice: plain values, no model, no index (fast)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.config import Settings
from qa.dense import dense_spec, ivf_lists
from qa.manifest import (
    FLAT,
    FORMAT_VERSION,
    BuildConfig,
    ChunkerSpec,
    Counts,
    DenseSpec,
    Manifest,
    ModelIdentity,
    TokenizerSpec,
)

MODEL = ModelIdentity("intfloat/multilingual-e5-small", "91409b275a5e7810", 384, "query: ", "passage: ", 512)
KEY_ORDER = [
    "format_version",
    "model",
    "chunker",
    "tokenizer",
    "version",
    "built_at",
    "corpus",
    "counts",
    "dense_index",
    "store",
    "ranker",
    "encoder_backend",
]


def _manifest(**changes: Any) -> Manifest:
    config = BuildConfig(MODEL, ChunkerSpec(300, 100, 450, 1), TokenizerSpec("a" * 64, "b" * 64))
    manifest = Manifest(
        config=config,
        version="20260101T000000000000-0a1b2c3d",
        built_at="2026-01-01T00:00:00+00:00",
        corpus={"report-2026": "1" * 64, "日本报告": "2" * 64},
        counts=Counts(documents=2, chunks=10, embedded_this_build=4),
        dense_index=DenseSpec("hnsw", m=32, ef_construction=80, ef_search=128),
        store="milvus",
        ranker={"format": 1, "model": MODEL.fingerprint, "threshold": 0.4},
        encoder_backend="openvino",
    )
    return replace(manifest, **changes)


def _through_json(m: Manifest) -> Manifest:
    """What a store does: write the dict as JSON, read it back."""
    return Manifest.from_dict(json.loads(json.dumps(m.as_dict(), ensure_ascii=False)))


def test_manifest_survives_its_json_round_trip() -> None:
    m = _manifest()
    assert Manifest.from_dict(m.as_dict()) == m
    assert _through_json(m) == m


def test_a_default_manifest_survives_its_round_trip() -> None:
    m = _manifest(dense_index=FLAT, store="faiss", ranker=None)
    assert _through_json(m) == m
    assert m.as_dict()["ranker"] is None


def test_manifest_keys_keep_the_order_of_earlier_releases() -> None:
    assert list(_manifest().as_dict()) == KEY_ORDER


def test_manifest_properties_read_its_build_config() -> None:
    m = _manifest()
    assert m.format_version == FORMAT_VERSION
    assert m.model == MODEL and m.chunker == ChunkerSpec(300, 100, 450, 1)


def test_a_manifest_from_before_dense_index_store_and_ranker_reads_as_flat_faiss_without_ranker() -> None:
    old = {k: v for k, v in _manifest().as_dict().items() if k not in ("dense_index", "store", "ranker")}
    m = Manifest.from_dict(old)
    assert m.dense_index == FLAT and m.store == "faiss" and m.ranker is None
    assert m.version == old["version"] and m.corpus == old["corpus"] and m.model == MODEL
    assert m.extra == {}  # nothing it read was unknown


def test_a_manifest_from_before_encoder_backends_reads_as_unrecorded() -> None:
    old = {k: v for k, v in _manifest().as_dict().items() if k != "encoder_backend"}
    assert Manifest.from_dict(old).encoder_backend == ""


def test_the_encoder_backend_is_not_part_of_the_build_config() -> None:
    """Backends give the same vectors: switching one must reuse an index, not force a rebuild."""
    assert _manifest(encoder_backend="torch").config == _manifest(encoder_backend="openvino").config
    assert "encoder_backend" not in _manifest().config.as_dict()


def test_a_manifest_without_a_format_version_reads_as_version_zero() -> None:
    m = Manifest.from_dict({"version": "v1"})
    assert m.format_version == 0 != FORMAT_VERSION  # so the format check refuses it instead of misreading it
    assert m.counts == Counts() and m.corpus == {}


def test_unknown_keys_survive_a_round_trip_after_the_known_ones() -> None:
    data = {**_manifest().as_dict(), "note": "built by CI", "future": {"windows": [3, 4]}}
    m = Manifest.from_dict(data)
    assert m.extra == {"note": "built by CI", "future": {"windows": [3, 4]}}
    assert m.as_dict() == data
    assert list(m.as_dict()) == [*KEY_ORDER, "note", "future"]
    assert _through_json(m) == m


def test_unknown_keys_named_like_manifest_fields_survive_too() -> None:
    data = {**_manifest().as_dict(), "config": {"from": "a newer release"}, "extra": [1]}
    assert Manifest.from_dict(data).as_dict() == data


def test_flat_spec_is_written_without_empty_parameters() -> None:
    assert DenseSpec().as_dict() == {"type": "flat"}
    assert FLAT.as_dict() == {"type": "flat"}


@pytest.mark.parametrize("missing", [None, {}])
def test_a_snapshot_without_a_dense_spec_is_flat(missing: dict[str, Any] | None) -> None:
    assert DenseSpec.from_dict(missing) == FLAT


@pytest.mark.parametrize(
    ("spec", "written"),
    [
        (
            DenseSpec("hnsw", m=16, ef_construction=40, ef_search=64),
            {"type": "hnsw", "m": 16, "ef_construction": 40, "ef_search": 64},
        ),
        (DenseSpec("ivf", nlist=256, nprobe=32), {"type": "ivf", "nlist": 256, "nprobe": 32}),
    ],
)
def test_hnsw_and_ivf_specs_round_trip(spec: DenseSpec, written: dict[str, Any]) -> None:
    assert spec.as_dict() == written
    assert DenseSpec.from_dict(written) == spec


def test_dense_spec_ignores_parameters_it_does_not_know() -> None:
    assert DenseSpec.from_dict({"type": "ivf", "nlist": 4, "nprobe": 2, "metric": "ip"}) == DenseSpec(
        "ivf", nlist=4, nprobe=2
    )


def test_model_identity_round_trips_and_fills_what_is_missing() -> None:
    assert ModelIdentity.from_dict(MODEL.as_dict()) == MODEL
    assert ModelIdentity.from_dict({"name": "m"}) == ModelIdentity("m", "", 0, "", "", 0)


def test_vectors_stay_comparable_when_only_the_sequence_cap_differs() -> None:
    assert MODEL.same_vectors(replace(MODEL, max_seq_length=128))
    assert replace(MODEL, max_seq_length=128).same_vectors(MODEL)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "BAAI/bge-small-zh"},
        {"fingerprint": "0000000000000000"},
        {"dim": 768},
        {"query_prompt": ""},
        {"passage_prompt": "document: "},
    ],
)
def test_vectors_are_not_comparable_when_the_model_or_its_prompts_differ(change: dict[str, Any]) -> None:
    assert not MODEL.same_vectors(replace(MODEL, **change))


# qa.dense: which index a build gets


def _settings(**changes: Any) -> Settings:
    return Settings(flat_max_chunks=1000, hnsw_m=16, hnsw_ef_construction=40, hnsw_ef_search=64, **changes)


def test_auto_is_flat_up_to_flat_max_chunks() -> None:
    assert dense_spec(_settings(), 0) == FLAT
    assert dense_spec(_settings(), 1000) == FLAT


def test_auto_is_hnsw_with_the_settings_parameters_beyond_flat_max_chunks() -> None:
    assert dense_spec(_settings(), 1001) == DenseSpec("hnsw", m=16, ef_construction=40, ef_search=64)


def test_ivf_gets_ivf_lists_and_the_settings_nprobe() -> None:
    spec = dense_spec(_settings(faiss_index="ivf", ivf_nprobe=32), 100_000)
    assert spec == DenseSpec("ivf", nlist=ivf_lists(100_000), nprobe=32)
    assert spec.nlist == round(4 * math.sqrt(100_000))


def test_ivf_nprobe_is_capped_at_nlist() -> None:
    spec = dense_spec(_settings(faiss_index="ivf", ivf_nprobe=32), 200)
    assert spec.nlist == 5 and spec.nprobe == 5  # 200 // 39 lists; probing more lists than exist means nothing


def test_an_explicit_kind_wins_over_the_setting() -> None:
    s = _settings(faiss_index="hnsw")
    assert dense_spec(s, 5000, "flat") == FLAT
    assert dense_spec(s, 5000, "ivf").type == "ivf"
    assert dense_spec(s, 10, "auto") == FLAT  # Milvus asks with its own choice, "auto" included


@pytest.mark.parametrize(
    ("n", "lists"),
    [
        (0, 1),  # an empty build still gets one list
        (10, 1),
        (100, 2),  # 100 // 39: fewer lists than 4·√n so each can be trained
        (10_000, 256),
        (1_000_000, 4000),  # 4·√n
    ],
)
def test_ivf_lists_examples(n: int, lists: int) -> None:
    assert ivf_lists(n) == lists


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=39, max_value=50_000_000))
def test_every_ivf_list_has_at_least_39_points_and_at_most_4_sqrt_n_lists(n: int) -> None:
    lists = ivf_lists(n)
    assert 1 <= lists <= round(4 * math.sqrt(n))
    assert n / lists >= 39
    if n >= 39 * 39 * 16:  # from here 4·√n lists all have 39 points: the cap is √n's
        assert lists == round(4 * math.sqrt(n))


def test_a_milvus_spec_in_the_spelling_before_0_6_reads_as_todays() -> None:
    """0.5.0 wrote Milvus' own names; read as today's spec, an index built then needs no re-index."""
    assert DenseSpec.from_dict({"type": "milvus-flat"}) == DenseSpec()
    old_hnsw = {"type": "milvus-hnsw", "M": 32, "efConstruction": 80, "ef": 128}
    assert DenseSpec.from_dict(old_hnsw) == DenseSpec("hnsw", m=32, ef_construction=80, ef_search=128)
    old_ivf = {"type": "milvus-ivf_flat", "nlist": 64, "nprobe": 16}
    assert DenseSpec.from_dict(old_ivf) == DenseSpec("ivf", nlist=64, nprobe=16)
