"""The reports' plots: the claims' forest plot, a training run's loss curve, the RL step panels."""

import json
import math

import pytest

from repro.errors import ReproError
from repro.reporting.plots import (
    forest_order,
    forest_plot,
    kept_share,
    loss_points,
    plot_loss_curve,
    plot_rl_steps,
)


def write_run(folder, rows: list[dict]) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def assert_png_alone(out, folder) -> None:
    """A PNG was written and no temp file was left beside it."""
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in folder.iterdir()) == [out.name]


CLAIMS = [
    {"claim": "GRPO ≈ DAPO", "mean": 1.0, "low": -4.0, "high": 6.0, "paper": 0.5, "verdict": "inconclusive",
     "primary": False},
    {"claim": "SFT > base", "mean": 8.0, "low": 2.0, "high": 14.0, "paper": 5.7, "verdict": "reproduced",
     "primary": True},
    {"claim": "longer sets gain more | a long claim that the plot wraps over two lines", "mean": -3.0, "low": -9.0,
     "high": 2.0, "paper": None, "verdict": "not reproduced", "primary": False},
    {"claim": "RL > SFT", "mean": None, "low": None, "high": None, "paper": 3.1, "verdict": "inconclusive",
     "primary": True},
]  # fmt: skip


def test_forest_order_puts_primary_claims_first_in_their_given_order():
    assert [r["claim"][:10] for r in forest_order(CLAIMS)] == ["SFT > base", "RL > SFT", "GRPO ≈ DAP", "longer set"]


def test_forest_plot_writes_a_png_with_and_without_rows(tmp_path):
    out = forest_plot(CLAIMS, tmp_path / "forest" / "claims.png")
    assert_png_alone(out, tmp_path / "forest")
    out = forest_plot([], tmp_path / "empty" / "claims.png")  # "no data"
    assert_png_alone(out, tmp_path / "empty")
    # a row with only a claim and its verdict: no interval, no paper mark
    out = forest_plot([{"claim": "x", "verdict": "inconclusive"}], tmp_path / "bare" / "claims.png")
    assert_png_alone(out, tmp_path / "bare")


def test_loss_points_leave_gaps_at_skipped_steps():
    rows = [
        {"step": 1, "loss": 2.5},
        {"step": 2, "loss": None, "skipped": True},  # a skipped update logs loss null
        {"loss": 1.75},  # no step: its position, 3
        {"step": 4},  # no loss at all
        {"step": 5, "loss": float("nan")},
        {"step": 6, "loss": 1},
    ]
    points = loss_points(rows)
    assert [x for x, _ in points] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    ys = [y for _, y in points]
    assert ys[0] == 2.5 and ys[2] == 1.75 and ys[5] == 1.0
    assert [math.isnan(y) for y in ys] == [False, True, False, True, True, False]


def test_plot_loss_curve_with_gaps_and_empty_runs(tmp_path):
    write_run(tmp_path / "sft", [{"step": 1, "loss": 2.0}, {"step": 2, "loss": None}, {"step": 3, "loss": 1.5}])
    out = plot_loss_curve(tmp_path / "sft", tmp_path / "out" / "sft_loss.png", "SFT loss")
    assert_png_alone(out, tmp_path / "out")
    write_run(tmp_path / "empty", [])
    out = plot_loss_curve(tmp_path / "empty", tmp_path / "out2" / "loss.png", "compressor loss")
    assert_png_alone(out, tmp_path / "out2")
    write_run(tmp_path / "all_skipped", [{"step": 1, "loss": None}])
    out = plot_loss_curve(tmp_path / "all_skipped", tmp_path / "out3" / "loss.png", "compressor loss")
    assert_png_alone(out, tmp_path / "out3")
    with pytest.raises(ReproError, match="metrics.jsonl"):
        plot_loss_curve(tmp_path / "nowhere", tmp_path / "out4" / "loss.png", "x")


def test_kept_share_by_hand():
    # 8 groups generated, 6 of them all-equal rewards dropped: filtered_share 0.75, so 1 - 0.75 = 0.25 kept
    assert kept_share({"filtered_share": 0.75, "groups_generated": 8.0}) == 0.25
    assert kept_share({"filtered_share": 0.0}) == 1.0
    assert kept_share({"filtered_share": 1}) == 0.0
    assert kept_share({"loss": 0.3, "clip_frac_low": 0.1}) is None  # an update step after the round's first
    assert kept_share({"filtered_share": None}) is None


RL_ROWS = [
    {"step": 1, "phase": 0.0, "reward_mean": 0.2, "groups_used": 4, "filtered_share": 0.5, "clip_frac_low": 0.01,
     "clip_frac_high": 0.02},
    {"step": 2, "clip_frac_low": 0.0, "clip_frac_high": 0.03},  # the round's second update: no round metrics
    {"step": 3, "phase": 1.0, "reward_mean": 0.5, "groups_used": 3, "filtered_share": 0.25, "clip_frac_low": 0.02,
     "clip_frac_high": None},
]  # fmt: skip


def test_plot_rl_steps_with_missing_keys_and_empty_runs(tmp_path):
    write_run(tmp_path / "grpo", RL_ROWS)
    write_run(tmp_path / "no_clip", [{"step": 1, "reward_mean": 0.1, "filtered_share": 0.0}])
    write_run(tmp_path / "empty", [])
    runs = {"GRPO": tmp_path / "grpo", "DAPO": tmp_path / "no_clip", "empty": tmp_path / "empty"}
    out = plot_rl_steps(runs, tmp_path / "out" / "rl_steps.png")
    assert_png_alone(out, tmp_path / "out")
    # every panel "no data"
    out = plot_rl_steps({"empty": tmp_path / "empty"}, tmp_path / "out2" / "rl_steps.png")
    assert_png_alone(out, tmp_path / "out2")
    out = plot_rl_steps({}, tmp_path / "out3" / "rl_steps.png")
    assert_png_alone(out, tmp_path / "out3")


def test_png_is_replaced_whole(tmp_path):
    write_run(tmp_path / "sft", [{"step": 1, "loss": 2.0}])
    out = tmp_path / "out" / "loss.png"
    out.parent.mkdir()
    out.write_bytes(b"old")
    plot_loss_curve(tmp_path / "sft", out, "SFT loss")
    assert_png_alone(out, tmp_path / "out")
