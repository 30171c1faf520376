"""A run config runs only the code the user points at, and a run whose every trial failed fails.

- ``imports`` never picks a module up from the current directory because the command
  runs there; a ``.py`` path (relative to the config) is imported from exactly there;
- a search in which every trial raised exits 1 naming the first error and the way out.
"""

import pytest

from condensa.cli import main
from condensa.optim.methods import METHODS

from .conftest import write_config

METHOD = """
from condensa.optim import register_method
from condensa.optim.methods import METHODS


class AlwaysFails:
    def __init__(self, trainer, *, metric="accuracy"):
        self.trainer = trainer

    def compress(self, model, scheme):
        raise RuntimeError("this method always fails")


if "always_fails_test" not in METHODS:
    register_method("always_fails_test", AlwaysFails)
"""


@pytest.fixture
def registry_restored():
    before = dict(METHODS)
    yield
    METHODS.clear()
    METHODS.update(before)


def test_imports_never_come_from_the_current_directory(tmp_path, monkeypatch, capsys):
    """A sneaky.py beside the command is not imported by `imports = ["sneaky"]`."""
    marker = tmp_path / "ran"
    (tmp_path / "sneaky_ext.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend("")  # what `python -m condensa` puts first
    config = write_config(tmp_path)
    config.write_text('imports = ["sneaky_ext"]\n' + config.read_text())
    assert main(["search", str(config), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "cannot import 'sneaky_ext'" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.slow
def test_a_search_whose_every_trial_failed_exits_one(tmp_path, capsys, registry_restored):
    """The method raises on every trial: exit 1, the error named, --force named as the way out.

    The method comes from a file named by path in the config (imported from there).
    """
    (tmp_path / "exts").mkdir()
    (tmp_path / "exts" / "failing.py").write_text(METHOD)
    config = write_config(tmp_path, method="always_fails_test", options="")
    config.write_text('imports = ["exts/failing.py"]\n' + config.read_text())
    code = main(["search", str(config), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "every one of the 2 trials failed" in err and "this method always fails" in err
    assert "--force" in err
