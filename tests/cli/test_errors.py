"""Bad input: one line on stderr naming the problem, exit code 2 (1 for runtime failures)."""

import json

import pytest
import torch

from condensa.cli import main
from condensa.io import read
from condensa.zoo import DigitsCNN

from .conftest import write_config


def _fails(capsys, argv, code=2):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("condensa: error:")
    return err


def test_missing_config_file(capsys, tmp_path):
    err = _fails(capsys, ["search", str(tmp_path / "nope.toml")])
    assert "nope.toml" in err and "not found" in err


def test_malformed_toml_names_the_line(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('seed = 0\n[model]\nname = "digits_cnn\n')
    err = _fails(capsys, ["search", str(path)])
    assert "malformed TOML" in err and "line 3" in err


def test_unknown_key_is_named_with_the_valid_ones(capsys, tmp_path):
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("[train]\n", "[train]\nepoch = 3\n"))
    err = _fails(capsys, ["search", str(path)])
    assert "train.epoch" in err and "epochs" in err


def test_wrong_type_is_named(capsys, tmp_path):
    path = write_config(tmp_path)
    err = _fails(capsys, ["search", str(path), "--set", "search.budget='ten'"])
    assert "search.budget" in err and "'ten'" in err


def test_unknown_zoo_model_lists_valid_names(capsys, tmp_path):
    path = write_config(tmp_path)
    err = _fails(
        capsys, ["search", str(path), "--set", "model.name='resnet1000'", "-o", str(tmp_path / "o")]
    )
    assert "resnet1000" in err and "lenet5" in err and "vgg19" in err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_unknown_scheme_type_lists_valid_ones(capsys, tmp_path):
    path = write_config(tmp_path)
    err = _fails(capsys, ["search", str(path), "--set", "scheme.type='ChannelShuffle'"])
    assert "ChannelShuffle" in err and "FilterPrune" in err


def test_factory_path_that_does_not_import(capsys, tmp_path):
    path = write_config(tmp_path)
    err = _fails(capsys, ["search", str(path), "--set", "model.name='no_such_pkg.models:net'"])
    assert "no_such_pkg.models:net" in err and "ModuleNotFoundError" in err


@pytest.mark.slow
def test_user_factory_path_is_used(capsys, tmp_path):
    path = write_config(tmp_path, budget=1)
    code = main(
        [
            "search",
            str(path),
            "-o",
            str(tmp_path / "o"),
            "-q",
            "--set",
            "model.name='condensa.zoo.digits:DigitsCNN'",
            "--set",
            "model.kwargs={width=0.5}",
        ]
    )
    assert code == 0, capsys.readouterr().err
    metadata, _ = read(tmp_path / "o" / "best" / "model.condensa")
    assert json.loads(metadata["architecture"])["factory"] == "condensa.zoo.digits:DigitsCNN"


def test_checkpoint_that_does_not_match_shows_differences(capsys, tmp_path):
    torch.save(DigitsCNN(width=1.0).state_dict(), tmp_path / "wide.pt")
    path = write_config(tmp_path, checkpoint=f'checkpoint = "{tmp_path / "wide.pt"}"')
    err = _fails(capsys, ["search", str(path), "-o", str(tmp_path / "o")])
    assert "does not match DigitsCNN" in err and "features.0.weight" in err


def test_unknown_method_option_lists_valid_ones(capsys, tmp_path):
    path = write_config(tmp_path, method="lc", options="options = { iteratons = 2 }")
    err = _fails(capsys, ["search", str(path)])
    assert "iteratons" in err and "iterations" in err


@pytest.mark.slow
def test_output_holding_a_different_run_is_refused_unless_forced(capsys, tmp_path):
    path = write_config(tmp_path, budget=1)
    out = str(tmp_path / "o")
    assert main(["search", str(path), "-o", out, "-q"]) == 0
    capsys.readouterr()
    err = _fails(capsys, ["search", str(path), "-o", out, "--set", "seed=1"])
    assert "holds a different run" in err and "seed: 0 != 1" in err and "--force" in err
    assert "seed = 0" in (tmp_path / "o" / "config.toml").read_text()  # untouched
    assert main(["search", str(path), "-o", out, "--set", "seed=1", "--force", "-q"]) == 0
    assert "seed = 1" in (tmp_path / "o" / "config.toml").read_text()


def test_non_empty_foreign_directory_is_refused(capsys, tmp_path):
    path = write_config(tmp_path)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "thesis.tex").write_text("precious")
    err = _fails(capsys, ["search", str(path), "-o", str(tmp_path / "o")])
    assert "not empty" in err
    assert (tmp_path / "o" / "thesis.tex").read_text() == "precious"


@pytest.mark.slow
def test_constraint_no_trial_meets_still_reports(capsys, tmp_path):
    path = write_config(tmp_path, constraint="threshold = 0.9999", budget=2)
    out = tmp_path / "o"
    assert main(["search", str(path), "-o", str(out)]) == 0
    assert "no feasible compression found" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert "No feasible compression was found" in md and "Closest" in md
    assert not (out / "best").exists()


def test_report_of_a_directory_without_a_run(capsys, tmp_path):
    err = _fails(capsys, ["report", str(tmp_path)])
    assert "no finished run" in err


def test_model_commands_refuse_bad_input(capsys, tmp_path):
    err = _fails(capsys, ["stats", str(tmp_path / "missing.condensa")])
    assert "not found" in err
    pickle = tmp_path / "evil.condensa"
    torch.save({"a": 1}, pickle)
    err = _fails(capsys, ["stats", str(pickle)], code=1)  # a file that is not ours: refused
    assert "evil.condensa" in err


def test_bad_input_shape_and_output_suffix(capsys, finished_run, tmp_path):
    model = str(finished_run / "best" / "model.condensa")
    err = _fails(capsys, ["thin", model, "--input-size", "1,x,8"])
    assert "--input-size" in err
    err = _fails(
        capsys, ["export", model, "--input-size", "1,1,8,8", "-o", str(tmp_path / "m.txt")]
    )
    assert ".onnx" in err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="not found"):
        main(["--debug", "search", str(tmp_path / "nope.toml")])


def test_input_the_model_cannot_take(capsys, finished_run):
    model = str(finished_run / "best" / "model.condensa")
    err = _fails(capsys, ["thin", model, "--input-size", "1,8"])
    assert "does not accept an input of shape (1, 8)" in err


def test_bad_distill_table_is_named(capsys, tmp_path):
    path = write_config(tmp_path, method="gmp", options="options = { distill = { temp = 2 } }")
    err = _fails(capsys, ["search", str(path)])
    assert "unknown distill key(s) ['temp']" in err and "temperature" in err


def test_unknown_method_lists_the_registered_ones(capsys, tmp_path):
    path = write_config(tmp_path, method="admm", options="")
    err = _fails(capsys, ["search", str(path)])
    assert "'admm'" in err and "gmp, lc, finetune, dc" in err
