"""The install story: the base package and its extras never pull torch or torchvision (so no install step
replaces a CPU torch with another build), the README's CPU recipe installs only what the package needs, and
CI checks after installing that torch is the build it started with. The resolution itself, against PyPI,
is ``.ci/torch_kept.py``, which ``.ci/run`` runs (network; see its docstring)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
README = (ROOT / "README.md").read_text()
TORCH_PACKAGES = re.compile(r"^(torch|torchvision|torchaudio)\b")


def test_no_extra_pulls_torch_or_torchvision():
    for extra, requirements in PROJECT["optional-dependencies"].items():
        assert not [r for r in requirements if TORCH_PACKAGES.match(r)], extra
    assert [r for r in PROJECT["dependencies"] if TORCH_PACKAGES.match(r)] == ["torch>=2.4"]  # no torchvision


def test_the_readme_cpu_recipe_installs_torch_alone_first():
    install = README[README.index("## Install"):README.index("## The two commands")]
    blocks = re.findall(r"```bash\n(.*?)```", install, flags=re.S)
    cpu = next(block for block in blocks if "download.pytorch.org/whl/cpu" in block)
    first = cpu.strip().splitlines()[0]
    assert first.startswith("pip install torch --index-url https://download.pytorch.org/whl/cpu"), first
    assert "torchvision" not in first
    assert "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu" in install  # VLM users


def test_ci_keeps_the_torch_build_it_installed_first():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index('"torch==2.14.1" "torchvision==0.29.1"') < ci.index("PIP_CONSTRAINT") < ci.index("$test_command\"")
    assert "started_with" in ci and 'if [ "$ended_with" != "$started_with" ]' in ci
    assert "torch_kept.py --extras test" in ci


def test_torchvision_is_named_with_the_line_for_the_installed_torch():
    from llama_index_mm_st.runtime import torchvision_install_line

    assert torchvision_install_line("2.14.1+cpu") == (
        "pip install torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu")
    assert torchvision_install_line("2.5.1+cu124") == (
        "pip install torchvision==0.20.1 --index-url https://download.pytorch.org/whl/cu124")
    assert torchvision_install_line("2.8.0") == "pip install torchvision==0.23.0"


def test_the_stand_in_torch_wheel_installs(tmp_path):
    """``.ci/torch_kept.py`` resolves against a wheel it builds: pip must accept it as torch 2.14.1+cpu."""
    sys.path.insert(0, str(ROOT / ".ci"))
    try:
        import torch_kept
    finally:
        sys.path.remove(str(ROOT / ".ci"))
    wheel = torch_kept.stand_in_wheel(tmp_path)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, env={"PATH": "/usr/bin:/bin", "PIP_NO_INPUT": "1"})
    assert (target / "torch" / "__init__.py").read_text() == '__version__ = "2.14.1+cpu"\n'
    assert (target / "torch-2.14.1+cpu.dist-info" / "METADATA").exists()
