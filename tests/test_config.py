"""Recipes: extends, typed overrides, and one clear error for each kind of bad recipe."""

from __future__ import annotations

import pytest

from repro.config import load_recipe, recipe_to_yaml
from repro.errors import ConfigError


def write(path, text):
    path.write_text(text)
    return path


def test_extends_inherits_and_overrides(tmp_path):
    write(tmp_path / "base.yaml", "seed: 3\nmodel:\n  source: some/model\n  lora:\n    r: 4\n    alpha: 8\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\nmodel:\n  lora:\n    r: 16\n")
    recipe = load_recipe(child)
    assert recipe.seed == 3
    assert recipe.model.source == "some/model"
    assert recipe.model.lora.r == 16  # the child wins
    assert recipe.model.lora.alpha == 8  # untouched keys come from the parent
    assert recipe.name == "child"


def test_extends_chain_of_three(tmp_path):
    write(tmp_path / "a.yaml", "seed: 1\noutput_dir: out-a\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\nseed: 2\n")
    c = write(tmp_path / "c.yaml", "extends: b.yaml\nmodel:\n  dtype: bfloat16\n")
    recipe = load_recipe(c)
    assert (recipe.seed, recipe.output_dir, recipe.model.dtype) == (2, "out-a", "bfloat16")


def test_overrides_are_parsed_to_the_field_type(tmp_path):
    path = write(tmp_path / "r.yaml", "model:\n  source: x/y\n")
    recipe = load_recipe(
        path,
        [
            "seed=7",
            "model.lora.dropout=0.1",
            "model.lora.enabled=false",
            "model.lora.target_modules=[q_proj,v_proj]",
            "model.source=123",
            "model.revision=null",
            "model.quant.load_in_4bit=true",
        ],
    )
    assert recipe.seed == 7 and isinstance(recipe.seed, int)
    assert recipe.model.lora.dropout == 0.1
    assert recipe.model.lora.enabled is False
    assert recipe.model.lora.target_modules == ["q_proj", "v_proj"]
    assert recipe.model.source == "123"  # a str field keeps the text as written
    assert recipe.model.revision is None
    assert recipe.model.quant.load_in_4bit is True


def test_int_field_accepts_no_float_and_float_field_accepts_int(tmp_path):
    path = write(tmp_path / "r.yaml", "model:\n  lora:\n    dropout: 0\n")
    assert load_recipe(path).model.lora.dropout == 0.0
    with pytest.raises(ConfigError, match=r"key 'model.lora.r': expected int, got '1.5'"):
        load_recipe(path, ["model.lora.r=1.5"])


def test_unknown_key_in_file_names_file_and_suggests(tmp_path):
    path = write(tmp_path / "r.yaml", "model:\n  lora:\n    rank: 8\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert str(path) in msg and "'model.lora.rank'" in msg and "did you mean 'model.lora.r'" in msg


def test_unknown_key_in_parent_names_the_parent(tmp_path):
    parent = write(tmp_path / "p.yaml", "sed: 1\n")
    child = write(tmp_path / "c.yaml", "extends: p.yaml\n")
    with pytest.raises(ConfigError, match=rf"{parent}: unknown key 'sed' \(did you mean 'seed'\?\)"):
        load_recipe(child)


def test_unknown_override_key(tmp_path):
    path = write(tmp_path / "r.yaml", "seed: 1\n")
    with pytest.raises(ConfigError, match=r"override 'bogus=1': unknown key 'bogus'"):
        load_recipe(path, ["bogus=1"])
    with pytest.raises(ConfigError, match=r"did you mean 'model.source'"):
        load_recipe(path, ["model.sorce=a/b"])


def test_wrong_type_in_file_names_file_and_key(tmp_path):
    path = write(tmp_path / "r.yaml", "model:\n  lora:\n    r: many\n")
    with pytest.raises(ConfigError, match=rf"{path}: key 'model.lora.r': expected int, got 'many'"):
        load_recipe(path)
    path = write(tmp_path / "d.yaml", "model:\n  dtype: float8\n")
    with pytest.raises(ConfigError, match=r"key 'model.dtype': expected one of 'auto', 'float32'"):
        load_recipe(path)


def test_wrong_type_from_override_names_the_override(tmp_path):
    path = write(tmp_path / "r.yaml", "seed: 1\n")
    with pytest.raises(ConfigError, match=r"override 'model.lora.enabled=maybe': key 'model.lora.enabled'"):
        load_recipe(path, ["model.lora.enabled=maybe"])


def test_missing_file_and_missing_parent(tmp_path):
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    child = write(tmp_path / "c.yaml", "extends: gone.yaml\n")
    with pytest.raises(ConfigError, match=r"gone.yaml: recipe file not found"):
        load_recipe(child)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path / "bad.yaml", "seed: 1\nmodel:\n  source: [unclosed\n  dtype: auto\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:") and "YAML syntax error" in msg
    line = int(msg.split(":")[1])
    assert 3 <= line <= 5  # the parser reports where the unclosed list ends


def test_extends_cycle_is_an_error(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_recipe(tmp_path / "a.yaml")


def test_section_given_a_scalar(tmp_path):
    path = write(tmp_path / "r.yaml", "model: 3\n")
    with pytest.raises(ConfigError, match=r"key 'model' is a section"):
        load_recipe(path)


def test_show_round_trips(tmp_path):
    path = write(tmp_path / "r.yaml", "seed: 5\nmodel:\n  lora:\n    r: 4\n")
    text = recipe_to_yaml(load_recipe(path))
    again = write(tmp_path / "again.yaml", text)
    assert load_recipe(again) == load_recipe(path)  # the shown name travels with it


def test_shipped_recipes_load():
    from pathlib import Path

    recipes = sorted(p for p in Path("recipes").rglob("*.yaml") if p.parent.name != "profiles")
    assert recipes, "recipes/ holds at least one recipe"
    for path in recipes:
        load_recipe(path)


def test_float_field_reads_exponent_without_a_dot(tmp_path):
    # YAML 1.1 reads 1e-3 as a string; the float field still means 0.001 (in the file and in an override)
    path = write(tmp_path / "r.yaml", "train:\n  lr: 1e-3\n")
    assert load_recipe(path).train.lr == 0.001
    assert load_recipe(path, ["train.lr=5e-4"]).train.lr == 0.0005
    with pytest.raises(ConfigError, match="train.lr"):
        load_recipe(path, ["train.lr=fast"])
    with pytest.raises(ConfigError, match="train.lr"):
        load_recipe(path, ["train.lr=nan"])
