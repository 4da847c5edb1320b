"""Settings come from QA_* variables; a bad value names its key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from qa.config import Settings
from qa.errors import ConfigError


def test_defaults_without_environment() -> None:
    s = Settings.from_env({})
    assert s.host == "127.0.0.1" and s.port == 8000 and s.corpus_dir == Path("corpus")
    assert s.models_dir == Path("index") / "models"


def test_values_are_parsed_by_type() -> None:
    s = Settings.from_env(
        {
            "QA_PORT": "9001",
            "QA_DENSE_WEIGHT": "0.25",
            "QA_CORS_ORIGINS": "http://a.internal, http://b.internal",
            "QA_MODEL_CACHE": "/tmp/models",
            "QA_QUERY_PROMPT": "",
            "QA_INDEX_DIR": "/srv/index",
        }
    )
    assert s.port == 9001 and s.dense_weight == 0.25
    assert s.cors_origins == ("http://a.internal", "http://b.internal")
    assert s.models_dir == Path("/tmp/models") and s.index_dir == Path("/srv/index")
    assert s.query_prompt == ""


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("QA_PORT", "eighty"),
        ("QA_PORT", "70000"),
        ("QA_DENSE_WEIGHT", "1.5"),
        ("QA_FUSION", "sum"),
        ("QA_CHUNK_OVERLAP", "400"),
        ("QA_WORKERS", "0"),
        ("QA_STORE", "sqlite"),
        ("QA_MILVUS_PREFIX", "qa-chunks"),
        ("QA_MILVUS_URI", "localhost:19530"),
        ("QA_MILVUS_INDEX", "DISKANN"),
        ("QA_EMBEDDING_BACKEND", "tensorrt"),
        ("QA_OPENVINO_PRECISION", "int4"),
        ("QA_THREADS", "-1"),
    ],
)
def test_bad_value_names_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        Settings.from_env({key: value})


def test_the_default_backend_is_openvino_at_full_precision() -> None:
    s = Settings.from_env({})
    assert s.embedding_backend == "openvino" and s.openvino_precision == "f32"
    assert Settings.from_env({"QA_EMBEDDING_BACKEND": "torch"}).embedding_backend == "torch"


def test_onnx_is_refused_with_the_reason_and_the_way_out() -> None:
    with pytest.raises(ConfigError, match=r"QA_EMBEDDING_BACKEND=onnx.*transformers<4\.58.*openvino.*torch"):
        Settings.from_env({"QA_EMBEDDING_BACKEND": "onnx"})


def test_a_gpu_device_needs_the_torch_backend() -> None:
    with pytest.raises(ConfigError, match="QA_EMBEDDING_BACKEND=torch"):
        Settings.from_env({"QA_DEVICE": "cuda"})
    assert Settings.from_env({"QA_DEVICE": "cuda", "QA_EMBEDDING_BACKEND": "torch"}).device == "cuda"


def test_overrides_are_validated_too() -> None:
    with pytest.raises(ConfigError, match="QA_PORT"):
        Settings.from_env({}, port=0)


def test_several_workers_on_milvus_lite_are_refused_with_the_way_out() -> None:
    with pytest.raises(ConfigError, match=r"milvus-lite server.*QA_MILVUS_URI=http"):
        Settings.from_env({"QA_STORE": "milvus", "QA_WORKERS": "2"})
    served = Settings.from_env({"QA_STORE": "milvus", "QA_WORKERS": "2", "QA_MILVUS_URI": "http://127.0.0.1:19530"})
    assert served.milvus_target == "http://127.0.0.1:19530"
    assert Settings.from_env({"QA_INDEX_DIR": "/srv/idx"}).milvus_target == "/srv/idx/milvus.db"


def test_milvus_without_pymilvus_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    fake = tmp_path / "site" / "pymilvus"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'pymilvus'\")\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "QA_STORE": "milvus", "QA_PORT": "1"}
    env["QA_INDEX_DIR"] = str(tmp_path / "index")
    run = subprocess.run(
        [sys.executable, "-m", "qa.cli", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error: QA_STORE=milvus needs pymilvus") and "[milvus]" in run.stderr
    assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1


def test_openvino_without_optimum_intel_is_one_line_naming_the_package_and_torch(tmp_path: Path) -> None:
    fake = tmp_path / "site" / "openvino"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'openvino'\", name='openvino')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "QA_PORT": "1", "QA_INDEX_DIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "qa.cli", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error: QA_EMBEDDING_BACKEND=openvino needs optimum-intel")
    assert "(openvino is missing)" in run.stderr
    assert "QA_EMBEDDING_BACKEND=torch" in run.stderr
    assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1
    assert not (tmp_path / "models").exists()  # refused before converting anything
