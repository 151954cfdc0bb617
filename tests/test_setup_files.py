"""environment.yml, pyproject.toml and the Makefile agree: no dead channel, no torch below the kit's floor."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
# torch.load's weights_only default, the fix of CVE-2025-32434, came with 2.6
SAFE_TORCH = Version("2.6")


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def torch_floor(specifier: SpecifierSet) -> Version | None:
    floors = [Version(s.version) for s in specifier if s.operator in (">=", "==", "~=", ">")]
    return max(floors) if floors else None


def env_yaml() -> dict:
    return yaml.safe_load((REPO / "environment.yml").read_text())


def env_torch_specs(env: dict) -> list[tuple[str, SpecifierSet]]:
    """Every torch requirement the environment makes: conda packages (pytorch, pytorch-gpu) and pip lines."""
    specs = []
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, _, rest = re.match(r"^([A-Za-z0-9_.-]+)(\s*)(.*)$", dep.strip()).groups()
            if name in ("pytorch", "pytorch-gpu", "pytorch-cpu"):
                rest = rest.strip()
                specs.append(
                    (f"conda {name}", SpecifierSet(rest if rest[:1] in "<>=!~" else f"=={rest}" if rest else ""))
                )
        elif isinstance(dep, dict):
            for line in dep.get("pip", []):
                if not line.startswith("-"):
                    req = Requirement(line)
                    if req.name == "torch":
                        specs.append((f"pip {line}", req.specifier))
    return specs


def test_pyproject_requires_a_torch_with_the_safe_loader():
    req = next(Requirement(d) for d in pyproject()["project"]["dependencies"] if d.startswith("torch"))
    floor = torch_floor(req.specifier)
    assert floor is not None and floor >= SAFE_TORCH, f"pyproject's torch floor {floor} is below {SAFE_TORCH}"


def test_environment_uses_no_dead_channel_and_no_old_torch():
    env = env_yaml()
    # the pytorch channel stopped publishing after 2.5 (pytorch/pytorch#138506): it can only give old builds
    assert "pytorch" not in env["channels"] and "nvidia" not in env["channels"]
    deps = [d for d in env["dependencies"] if isinstance(d, str)]
    assert not any(d.startswith("pytorch-cuda") for d in deps), "pytorch-cuda lives on the dead pytorch channel"
    kit_req = next(Requirement(d) for d in pyproject()["project"]["dependencies"] if d.startswith("torch"))
    kit_floor = torch_floor(kit_req.specifier)
    specs = env_torch_specs(env)
    assert specs, "environment.yml must name torch (conda pytorch-gpu or a pip line) rather than leave it to chance"
    for where, spec in specs:
        floor = torch_floor(spec)
        assert floor is not None and floor >= kit_floor, f"{where}: allows a torch below the kit's {kit_floor}"


def test_environment_python_satisfies_requires_python():
    python = next(d for d in env_yaml()["dependencies"] if isinstance(d, str) and d.startswith("python"))
    version = Version(python.split("=")[-1])
    assert version in SpecifierSet(pyproject()["project"]["requires-python"])


def test_flash_attention_is_never_built_in_the_same_pip_call_as_the_kit():
    """flash-attn's sdist needs torch present at build time (--no-build-isolation): in one pip call with the
    kit it fails, and the whole environment with it."""
    pip_lines = [line for d in env_yaml()["dependencies"] if isinstance(d, dict) for line in d.get("pip", [])]
    assert not any("flash-attn" in line or "flash_attn" in line for line in pip_lines)
    assert not any(re.search(r"\[[^\]]*\bgpu\b[^\]]*\]", line) for line in pip_lines), "the gpu extra is flash-attn"
    extras = pyproject()["project"]["optional-dependencies"]
    assert all("flash" not in d for d in extras["dev"])


def test_the_makefile_pins_a_torch_within_the_kit_range():
    pin = re.search(r"^TORCH \?= torch==(\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert pin, "Makefile's TORCH pin"
    req = next(Requirement(d) for d in pyproject()["project"]["dependencies"] if d.startswith("torch"))
    assert Version(pin.group(1)) in req.specifier


# import name -> the distribution that provides it, where the two differ
DISTRIBUTIONS = {"yaml": "pyyaml", "flash_attn": "flash-attn", "PIL": "pillow"}


def imported_modules() -> set[str]:
    """The top-level names the package imports (at any depth), the kit's own and the standard library left out."""
    import ast
    import sys

    names = set()
    for path in (REPO / "repro").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return {n for n in names if n != "repro" and n not in sys.stdlib_module_names and n != "__future__"}


def test_every_imported_package_is_declared():
    project = pyproject()["project"]
    declared = {Requirement(r).name.lower() for r in project["dependencies"]}
    declared |= {Requirement(r).name.lower() for reqs in project["optional-dependencies"].values() for r in reqs}
    missing = sorted(m for m in imported_modules() if DISTRIBUTIONS.get(m, m).lower().replace("_", "-") not in declared)
    assert missing == []
    # TensorBoard logging (train.tensorboard) imports through torch but needs the tensorboard package: an extra
    assert "tensorboard" in {Requirement(r).name for r in project["optional-dependencies"]["tb"]}
