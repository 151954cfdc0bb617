"""The CPRS benchmark's pieces: the seeded bench text and the growth ratio on hand-made rows."""

from repro.cprs.bench import bench_text, cprs_case, growth


def test_growth_is_long_time_over_short_time_at_one_window_batch():
    rows = [
        {"tokens": 8192, "window_batch": 4, "seconds": 2.5},
        {"tokens": 32768, "window_batch": 4, "seconds": 10.5},
        {"tokens": 8192, "window_batch": 1, "seconds": 6.0},
    ]
    assert growth(rows, 8192, 32768, 4) == 4.2  # 10.5 / 2.5
    assert growth(rows, 8192, 32768, 1) is None  # no 32K row at batch 1


def test_bench_text_is_seeded_and_long_enough():
    text = bench_text(300)
    assert text == bench_text(300) and text != bench_text(300, seed=1)
    assert len(text.split()) >= 300  # every word is at least one token


def test_a_case_scores_the_windows_the_split_predicts(tiny_model_dir):
    # tiny/cprs.yaml: 1024-token windows; 1,500 context tokens need two windows whatever the prompt prefix
    row = cprs_case(tiny_model_dir, 1500, window_batch=2, repeats=1)
    assert row["input_tokens"] == 1500  # the cut text re-encodes to the same tokens
    assert row["windows"] == 2


def test_bench_commands_refuse_a_missing_model_in_one_line(tmp_path, capsys):
    from repro.bench import main
    from repro.benchkit import model_folder

    assert main(["cprs", "--model", str(tmp_path / "none")]) == 2
    assert main(["solopo", "--model", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.splitlines()
    hint = "; run `repro init-model recipes/tiny/base.yaml`"
    assert err == [f"bench cprs: model folder '{tmp_path / 'none'}' missing{hint}"] + [
        f"bench solopo: model folder '{tmp_path / 'none'}' missing{hint}"
    ]
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    assert model_folder(str(tmp_path / "m"), "bench") == str(tmp_path / "m")
