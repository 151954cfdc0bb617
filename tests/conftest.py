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


@pytest.fixture
def run_killed_after_step(monkeypatch):
    """`run_killed_after_step(step, train, *args)`: run a training call that dies (KeyboardInterrupt) right
    after logging `step` — that step's metrics row is written, a checkpoint it would have made never is."""
    import repro.train.loop as loop

    def run(step: int, train, *args, **kwargs) -> None:
        real_append = loop.append_jsonl

        def append_then_die(path, row):
            real_append(path, row)
            if row["step"] == step:
                raise KeyboardInterrupt

        monkeypatch.setattr(loop, "append_jsonl", append_then_die)
        try:
            with pytest.raises(KeyboardInterrupt):
                train(*args, **kwargs)
        finally:
            monkeypatch.setattr(loop, "append_jsonl", real_append)

    return run
