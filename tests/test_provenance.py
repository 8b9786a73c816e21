"""core.provenance: the recorded command names no folder of the machine it ran on."""

import os
import sys

from core.provenance import command_line, machine


def test_command_line_of_python_m_core(monkeypatch, tmp_path):
    main = os.path.join(os.path.dirname(os.path.abspath(__import__("core").__file__)), "__main__.py")
    inside = os.path.join(os.getcwd(), "out", "model.pt")
    outside = str(tmp_path / "data" / "labels.csv")
    monkeypatch.setattr(sys, "argv", [main, "train", "--out", inside, "--data", outside, "--seed", "3"])
    assert command_line() == "python -m core train --out out/model.pt --data labels.csv --seed 3"
    assert str(tmp_path) not in command_line()


def test_called_from_python_gives_the_default(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest", "-q"])
    assert command_line() == "" and command_line(default="python -m core quality") == "python -m core quality"
    assert machine().endswith("CPUs")
