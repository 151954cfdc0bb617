"""The run record: the checkout's commit and dirtiness, input hashes, and environment.json in run folders."""

from __future__ import annotations

import json
import subprocess

from repro import runrecord
from repro.runrecord import environment, git_state, sha256_file


def test_sha256_of_known_bytes(tmp_path):
    (tmp_path / "abc.txt").write_bytes(b"abc")
    # FIPS 180-2's example: sha256("abc")
    assert sha256_file(tmp_path / "abc.txt") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_file(tmp_path / "missing") is None


def test_git_state_names_the_commit_and_sees_a_changed_tracked_file(tmp_path):
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    (tmp_path / "f.txt").write_text("one\n")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD").strip()
    assert git_state(tmp_path) == (head, False)
    (tmp_path / "untracked.txt").write_text("new\n")  # untracked files do not make a checkout dirty
    assert git_state(tmp_path) == (head, False)
    (tmp_path / "f.txt").write_text("two\n")
    assert git_state(tmp_path) == (head, True)
    assert git_state(tmp_path.parent / "nowhere") == ("unknown", False)


def test_environment_records_versions_seed_and_hashes(tmp_path, monkeypatch):
    monkeypatch.setattr(runrecord, "git_state", lambda: ("abc123", True))
    data = tmp_path / "d.jsonl"
    data.write_bytes(b"abc")
    record = environment(seed=[0, 1], data_files=[str(data)], recipe_text="abc")
    assert (record["git_commit"], record["git_dirty"], record["seed"]) == ("abc123", True, [0, 1])
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert record["data_sha256"] == {str(data): digest} and record["recipe_sha256"] == digest
    for key in ("python", "torch", "transformers", "peft", "bitsandbytes", "flash_attn", "device"):
        assert key in record
    json.dumps(record)  # plain JSON
