"""Hostile files: loading runs no code and allocates only what the file's bytes justify."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

import condensa
from condensa import CondensaError, ConfigError, schemes, zoo
from condensa.cli import main
from condensa.io import read


def _model_file(tmp_path, name="m.condensa"):
    model = zoo.get("lenet300100", width=0.25)
    compressed = condensa.compress(model, schemes.Prune(0.9))
    return condensa.save(compressed, tmp_path / name, zoo="lenet300100", kwargs={"width": 0.25})


def forge(source, target, *, architecture=None, edit=None, arrays=None):
    """Rewrite a saved file with a hostile architecture record or tensor table."""
    metadata, stored = read(source)
    table = json.loads(metadata["tensors"])
    if edit is not None:
        edit(table)
    if architecture is not None:
        metadata["architecture"] = json.dumps(architecture)
    metadata["tensors"] = json.dumps(table)
    save_file({**stored, **(arrays or {})}, str(target), metadata=metadata)
    return target


SYSTEM = {"factory": "os:system", "kwargs": {"command": "touch {marker}"}}


def _hostile(tmp_path):
    marker = tmp_path / "PWNED"
    architecture = json.loads(json.dumps(SYSTEM).replace("{marker}", str(marker)))
    path = forge(_model_file(tmp_path), tmp_path / "evil.condensa", architecture=architecture)
    return path, marker


def test_load_never_calls_a_factory_named_by_the_file(tmp_path):
    """A file naming os:system is refused with advice; the command never runs."""
    path, marker = _hostile(tmp_path)
    with pytest.raises(ConfigError, match="never imports or calls what a file names"):
        condensa.load(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["stats"],
        ["stats", "--input-size", "1,784"],
        ["thin", "--input-size", "1,784"],
        ["export", "--input-size", "1,784", "-o", "OUT.onnx"],
    ],
)
def test_no_cli_command_runs_a_factory_named_by_the_file(tmp_path, capsys, argv):
    """Every model command refuses the hostile file in one line; the marker never appears."""
    path, marker = _hostile(tmp_path)
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    assert main([argv[0], str(path), *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("condensa: error:") and "--factory" in err and "Traceback" not in err
    assert not marker.exists()


def test_save_refuses_a_factory_that_is_not_a_python_class_or_function(tmp_path):
    """save(factory="os:system") writes nothing; a builtin cannot build a model."""
    with pytest.raises(ConfigError, match="not a Python class or function"):
        condensa.save(zoo.get("lenet5"), tmp_path / "m.condensa", factory="os:system")
    assert not (tmp_path / "m.condensa").exists()


def test_caller_named_builtin_factory_is_refused_too(tmp_path):
    path, marker = _hostile(tmp_path)
    with pytest.raises(ConfigError, match="not a Python class or function"):
        condensa.load(path, factory="os:system")
    assert not marker.exists()


def test_caller_named_factory_loads_a_factory_file(tmp_path):
    """The documented way to load a file saved with factory=: name the factory again."""
    model = condensa.compress(zoo.LeNet5(width=0.5), schemes.Prune(0.5))
    path = condensa.save(
        model, tmp_path / "f.condensa", factory="condensa.zoo.lenet:LeNet5", kwargs={"width": 0.5}
    )
    with pytest.raises(ConfigError, match="factory='package.module:function'"):
        condensa.load(path)
    loaded = condensa.load(path, factory="condensa.zoo.lenet:LeNet5")
    assert condensa.stats(loaded).sparsity == pytest.approx(condensa.stats(model).sparsity)


def _first_masked(table):
    return next(k for k, v in table.items() if v["positions"] != "dense")


@pytest.mark.parametrize(
    "attack",
    [
        "numel_1e9",
        "kept_2e8",
        "kept_2_pow_40",
        "shape_huge",
        "rice_k_huge",
        "bitmask_short",
        "values_short",
        "negative_shape",
        "unknown_positions",
        "unknown_parametrization",
        "bad_dtype",
        "tensors_not_json",
        "table_not_object",
        "int8_bad_axis",
    ],
)
def test_malformed_sizes_are_refused_before_allocation(tmp_path, attack):
    """Each forged claim is a CondensaError naming the tensor, never a raw exception."""
    source = _model_file(tmp_path)

    def edit(table):
        fqn = _first_masked(table)
        entry = table[fqn]
        if attack == "numel_1e9":
            entry["numel"] = 10**9
        elif attack == "kept_2e8":
            entry["kept"] = 2 * 10**8
        elif attack == "kept_2_pow_40":
            entry["kept"] = 2**40
            entry["numel"] = 2**40
            entry["shape"] = [2**40]
        elif attack == "shape_huge":
            entry["shape"] = [2**20, 2**20]
            entry["numel"] = 2**40
        elif attack == "rice_k_huge":
            entry["positions"], entry["k"] = "rice", 10**6
        elif attack == "bitmask_short":
            entry["positions"], entry["numel"], entry["shape"] = "bitmask", 10**9, [10**9]
        elif attack == "values_short":
            entry["kept"] = entry["kept"] - 1
        elif attack == "negative_shape":
            entry["shape"] = [-1, 5]
        elif attack == "unknown_positions":
            entry["positions"] = "zip"
        elif attack == "unknown_parametrization":
            entry["parametrizations"] = [{"type": "pickle"}]
        elif attack == "bad_dtype":
            entry["dtype"] = "object"
        elif attack == "int8_bad_axis":
            entry["storage"], entry["axis"] = "int8", 99
        elif attack == "table_not_object":
            table.clear()
            table["x"] = [1, 2]

    path = forge(source, tmp_path / "bad.condensa", edit=edit)
    if attack == "tensors_not_json":
        metadata, stored = read(source)
        metadata["tensors"] = "{not json"
        save_file(stored, str(path), metadata=metadata)
    with pytest.raises(CondensaError, match="malformed|does not match"):
        condensa.load(path)
    with pytest.raises(CondensaError, match="malformed|does not match"):
        condensa.load(path, zoo.get("lenet300100", width=0.25))


@pytest.mark.slow
def test_hostile_files_fail_with_bounded_memory(tmp_path):
    """Under a 1 GiB address-space allowance beyond start-up, every attack fails cleanly.

    The attacks once asked for 5-1000 GiB; a clean CondensaError (not a MemoryError or
    a kill) proves nothing of that size was allocated.
    """
    source = _model_file(tmp_path)
    attacks = {
        "numel": {"numel": 10**9, "shape": [10**9]},
        "kept": {"kept": 2 * 10**8},
        "bits": {"positions": "bitmask", "numel": 2**40, "shape": [2**40]},
        "rice": {"positions": "rice", "k": 3, "kept": 2**40, "numel": 2**40, "shape": [2**40]},
    }
    paths = []
    for name, change in attacks.items():
        paths.append(
            str(
                forge(
                    source,
                    tmp_path / f"{name}.condensa",
                    edit=lambda t, c=change: t[_first_masked(t)].update(c),
                )
            )
        )
    # a zoo model whose recorded kwargs make it far larger than the file: refused by size
    paths.append(
        str(
            forge(
                source,
                tmp_path / "wide.condensa",
                architecture={"zoo": "lenet300100", "kwargs": {"width": 400.0}},
            )
        )
    )
    paths.append(str(forge_structure(source, tmp_path / "grow.condensa")))
    paths.append(str(_deep_lstm_file(tmp_path, 200_000)))
    script = textwrap.dedent(
        f"""
        import resource, sys
        import condensa
        from condensa import CondensaError
        soft = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (soft + (1 << 30), resource.RLIM_INFINITY))
        for path in {paths!r}:
            try:
                condensa.load(path)
            except CondensaError as exc:
                print('refused', str(exc)[:60])
            else:
                print('LOADED', path)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(paths) and all(line.startswith("refused") for line in lines), lines


def test_file_model_larger_than_the_limit_is_refused(tmp_path):
    """A zoo model rebuilt from a tiny file may not exceed max_bytes."""
    path = _model_file(tmp_path)
    with pytest.raises(CondensaError, match="describes a model of"):
        condensa.load(path, max_bytes=1000)
    assert condensa.load(path) is not None


def test_rice_streams_reaching_past_the_tensor_are_refused(tmp_path):
    """Gap codes whose positions run past numel are malformed, not an IndexError."""
    source = _model_file(tmp_path)
    metadata, stored = read(source)
    table = json.loads(metadata["tensors"])
    fqn = next(k for k, v in table.items() if v["positions"] == "rice")
    stored[f"{fqn}::unary"] = np.full_like(stored[f"{fqn}::unary"], 0xFE)  # long gaps
    save_file(stored, str(tmp_path / "bad.condensa"), metadata=metadata)
    with pytest.raises(CondensaError, match="malformed"):
        condensa.load(tmp_path / "bad.condensa")


def forge_structure(source, target, *, module="fc1", out_features=100_000, in_features=20_000):
    """A Linear claims a huge shape (kept 0, Rice positions: a few bytes) and that structure."""
    metadata, stored = read(source)
    table, layout = json.loads(metadata["tensors"]), json.loads(metadata["structure"])
    numel = out_features * in_features
    fqn = f"{module}.weight"
    table[fqn] = {
        "shape": [out_features, in_features],
        "dtype": "float32",
        "positions": "rice",
        "numel": numel,
        "kept": 0,
        "k": 0,
        "storage": "float32",
    }
    stored = {k: v for k, v in stored.items() if not k.startswith(f"{fqn}::")}
    stored[f"{fqn}::unary"] = np.zeros(0, np.uint8)
    stored[f"{fqn}::rest"] = np.zeros(0, np.uint8)
    stored[f"{fqn}::values"] = np.zeros(0, np.float32)
    layout[module] = {"in_features": in_features, "out_features": out_features}
    metadata = dict(metadata, tensors=json.dumps(table), structure=json.dumps(layout))
    save_file(stored, str(target), metadata=metadata)
    return target


def test_a_structure_record_cannot_grow_the_callers_model(tmp_path):
    """load(path, model=...) checks the file's sizes before resizing anything (8 GB claimed)."""
    lenet = zoo.get("lenet300100", width=0.25)
    before = {k: v.clone() for k, v in lenet.state_dict().items()}
    path = forge_structure(_model_file(tmp_path), tmp_path / "grow.condensa")
    assert path.stat().st_size < 100_000
    with pytest.raises(CondensaError, match="describes a model of 8,000"):
        condensa.load(path, model=lenet)
    with pytest.raises(CondensaError, match="describes a model of 8,000"):
        condensa.load(path)
    assert lenet.fc1.out_features == 75, "the caller's model is untouched"
    assert all(torch.equal(v, before[k]) for k, v in lenet.state_dict().items())


def test_model_given_raises_the_default_limit_to_its_own_size(tmp_path, monkeypatch):
    """With model= and no max_bytes, a file may describe a model as large as the given one."""
    path = _model_file(tmp_path)  # 90 % sparse: the file is far smaller than the model
    monkeypatch.setattr(condensa.filecheck, "MIN_BUILD_LIMIT", 1)
    monkeypatch.setattr(condensa.filecheck, "BUILD_EXPANSION", 1)
    with pytest.raises(CondensaError, match="describes a model of"):
        condensa.load(path)
    assert condensa.load(path, model=zoo.get("lenet300100", width=0.25)) is not None
    with pytest.raises(CondensaError, match="describes a model of"):
        condensa.load(path, model=zoo.get("lenet300100", width=0.25), max_bytes=1000)


def _deep_lstm_file(tmp_path, layers):
    kwargs = {"vocab_size": 50, "embedding_dim": 8, "hidden_dim": 8, "num_layers": 1}
    model = zoo.get("lstm_lm", **kwargs)
    path = condensa.save(model, tmp_path / "lstm.condensa", zoo="lstm_lm", kwargs=kwargs)
    return forge(
        path,
        tmp_path / "deep.condensa",
        architecture={"zoo": "lstm_lm", "kwargs": {**kwargs, "num_layers": layers}},
    )


def test_a_zoo_record_with_huge_depth_is_stopped_before_building(tmp_path):
    """200,000 LSTM layers from a 3 KB file: the meta build stops after a few hundred tensors."""
    path = _deep_lstm_file(tmp_path, 200_000)
    assert path.stat().st_size < 10_000
    with pytest.raises(CondensaError, match="stopped before building it") as caught:
        condensa.load(path)
    assert "stored tensors" in str(caught.value)


def test_the_build_limit_never_refuses_a_real_zoo_file(tmp_path):
    """Every zoo model saved and loaded back passes the tensor-count bound."""
    for name in zoo.MODELS:
        kwargs = {"vocab_size": 50} if name == "lstm_lm" else {}
        model = zoo.get(name, width=0.25, **kwargs)
        path = condensa.save(
            model, tmp_path / f"{name}.condensa", zoo=name, kwargs={"width": 0.25, **kwargs}
        )
        loaded = condensa.load(path)
        assert loaded.state_dict().keys() == model.state_dict().keys()
