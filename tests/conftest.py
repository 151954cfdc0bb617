"""Shared fixtures: the tiny random Qwen2 model folder, built once per test session."""

from __future__ import annotations

import pytest

from repro.tiny import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2")))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Tests never reach a hub: the offline flags make any such attempt fail fast."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
