"""Without the molgen[dock] extra, `molgen dock` and `molgen export` say in one line how to install it."""

from __future__ import annotations

import pytest

import molgen.docking.command as command
from molgen.cli import main


@pytest.mark.parametrize("name", ["dock", "export"])
def test_without_the_extra_the_commands_say_how_to_install_it(tmp_path, monkeypatch, capsys, name):
    monkeypatch.setattr(command, "missing_docking_packages", lambda: ["vina", "meeko"])
    options = ["--receptor", "r.pdb", "--center", "0", "0", "0", "--size", "20", "20", "20"]
    assert main([name, "samples.sdf", *options, "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"molgen {name}: error: needs the docking extra (vina, meeko missing): pip install 'molgen[dock]'"
    )
