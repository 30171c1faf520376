"""Every bad input a user can give the CLI ends in one `condensa: error:` line, never a traceback.

Each case is (argv built from fixture files, expected exit code, a phrase the message must
hold). Exit 2: usage, configuration or input the user must fix; exit 1: runtime failures
(a file that is not ours, a directory in use). No case may reach the "internal error"
fallback: each gets a message written for it.
"""

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.numpy import save_file

import condensa
from condensa import zoo
from condensa.cli import main
from condensa.io import read

from ..test_io_hostile import forge_structure
from .conftest import write_config


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Files the cases point at: a good config, models good and bad, a finished-looking run."""
    root = tmp_path_factory.mktemp("bad")
    files = {"root": root, "config": write_config(root)}
    lenet = zoo.get("lenet300100", width=0.25)
    neurons = condensa.compress(lenet, condensa.schemes.NeuronPrune(0.5))
    files["model"] = condensa.save(
        neurons, root / "neurons.condensa", zoo="lenet300100", kwargs={"width": 0.25}
    )
    unstructured = condensa.compress(lenet, condensa.schemes.Prune(0.5))
    files["unstructured"] = condensa.save(
        unstructured, root / "unstructured.condensa", zoo="lenet300100", kwargs={"width": 0.25}
    )
    metadata, arrays = read(files["model"])
    hostile = dict(metadata, architecture=json.dumps({"factory": "os:system", "kwargs": {}}))
    save_file(arrays, str(root / "hostile.condensa"), metadata=hostile)
    save_file(arrays, str(root / "newer.condensa"), metadata=dict(metadata, version="99"))
    save_file(arrays, str(root / "foreign.condensa"), metadata={"format": "other"})
    save_file(arrays, str(root / "noversion.condensa"), metadata=dict(metadata, version="x1"))
    digits = condensa.save(zoo.get("digits_cnn", width=0.5), root / "digits.condensa")
    forge_structure(digits, root / "claims-8gb.condensa", module="classifier.3")
    torch.save({"a": 1}, root / "pickle.condensa")
    (root / "garbage.condensa").write_bytes(os.urandom(300))
    (root / "empty.condensa").write_bytes(b"")
    data = files["model"].read_bytes()
    (root / "truncated.condensa").write_bytes(data[: len(data) // 2])
    (root / "adir").mkdir()
    (root / "adir.pt2").mkdir()
    (root / "afile").write_text("x")
    (root / "notutf8.toml").write_bytes(b"seed = 0\n# \xff\xfe\n")
    torch.save(zoo.get("digits_cnn").state_dict(), root / "wide.pt")
    (root / "garbage.pt").write_bytes(os.urandom(200))
    (root / "garbage.safetensors").write_bytes(os.urandom(200))
    (root / "code.pt").write_bytes(_pickle_with_code())
    for name, text in {
        "summary-notjson": "{not json",
        "summary-list": "[1, 2]",
        "summary-partial": json.dumps({"baseline": {}, "config": {}}),
        "summary-types": json.dumps({"baseline": {"validation": "x"}, "metric": 3}),
    }.items():
        (root / name).mkdir()
        (root / name / "summary.json").write_text(text)
    return files


def _pickle_with_code() -> bytes:
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch /tmp/condensa-pwned-by-checkpoint",))

    return pickle.dumps({"state_dict": Evil()})


def search(*extra):
    return lambda f: ["search", str(f["config"]), "-o", str(f["root"] / "out"), *extra]


def sets(*assignments):
    extra = []
    for a in assignments:
        extra += ["--set", a]
    return search(*extra)


def config_text(text):
    """A search on a config file holding ``text`` after the good config's lines."""

    def build(f):
        path = f["root"] / f"c{abs(hash(text))}.toml"
        path.write_text(f["config"].read_text() + "\n" + text)
        return ["search", str(path), "-o", str(f["root"] / "out")]

    return build


def model_cmd(command, file="model", *extra):
    return lambda f: [command, str(f[file] if file in f else f["root"] / file), *extra]


SHAPE = ("--input-size", "2,784")
# fmt: off
CASES = {
    # usage
    "unknown command": (lambda f: ["frobnicate"], 2, "invalid choice"),
    "search without config": (lambda f: ["search"], 2, "required"),
    "seed not an int": (search("--seed", "abc"), 2, "invalid int value"),
    "budget not an int": (search("--budget", "x"), 2, "invalid int value"),
    "max-drop not a number": (search("--max-drop", "lots"), 2, "invalid float value"),
    "sparsity not a number": (
        lambda f: ["compress", str(f["config"]), "--sparsity", "x"],
        2,
        "invalid float",
    ),
    "unknown flag": (search("--frobnicate"), 2, "unrecognized arguments"),
    "stats without model": (lambda f: ["stats"], 2, "required"),
    "thin without shape": (model_cmd("thin"), 2, "--input-size"),
    "export without output": (model_cmd("export", "model", *SHAPE), 2, "--output"),
    "bad input dtype": (
        model_cmd("stats", "model", "--input-dtype", "complex"),
        2,
        "invalid choice",
    ),
    "demo budget 0": (
        lambda f: ["demo", "--budget", "0", "-o", str(f["root"] / "d")],
        2,
        "--budget",
    ),
    "demo threads 0": (
        lambda f: ["demo", "--threads", "0", "-o", str(f["root"] / "d")],
        2,
        "--threads",
    ),
    "demo threads huge": (
        lambda f: ["demo", "--threads", "100000", "-o", str(f["root"] / "d")],
        2,
        "4 per CPU",
    ),
    # config files
    "missing config": (lambda f: ["search", str(f["root"] / "nope.toml")], 2, "not found"),
    "config is a directory": (lambda f: ["search", str(f["root"] / "adir")], 2, "not found"),
    "config not utf-8": (lambda f: ["search", str(f["root"] / "notutf8.toml")], 2, "not UTF-8"),
    "config malformed": (config_text("[train\n"), 2, "malformed TOML"),
    "config table twice": (config_text("[train]\nlr = 0.1\n"), 2, "malformed TOML"),
    "unknown top key": (sets("colour=1"), 2, "unknown key 'colour'"),
    "unknown section key": (sets("train.epoch=3"), 2, "train.epoch"),
    "unknown section": (sets("optimizer.lr=3"), 2, "unknown key 'optimizer'"),
    "section not a table": (sets("train=3"), 2, "must be a table"),
    "seed wrong type": (sets("seed='a'"), 2, "seed must be a int"),
    "seed bool": (sets("seed=true"), 2, "seed must be a int"),
    "threads zero": (sets("threads=0"), 2, "threads must be"),
    "threads 1000": (sets("threads=1000"), 2, "4 per CPU"),
    "threads 100000": (sets("threads=100000"), 2, "4 per CPU"),
    "threads negative": (sets("threads=-1"), 2, "threads must be"),
    "epochs inf": (sets("train.epochs=inf"), 2, "finite"),
    "epochs nan": (sets("train.epochs=nan"), 2, "finite"),
    "epochs negative": (sets("train.epochs=-1"), 2, ">= 0"),
    "lr negative": (sets("train.lr=-0.1"), 2, ">= 0"),
    "lr nan": (sets("train.lr=nan"), 2, "finite"),
    "lr string": (sets("train.lr='fast'"), 2, "train.lr must be"),
    "grad clip inf": (sets("train.grad_clip=inf"), 2, "finite"),
    "optimizer unknown": (sets("train.optimizer='adamw'"), 2, "valid: adam, sgd"),
    "schedule unknown": (sets("train.schedule='step'"), 2, "valid: constant"),
    "dataset unknown": (sets("data.name='imagenet'"), 2, "valid: digits"),
    "batch size zero": (sets("data.batch_size=0"), 2, "data.batch_size must be >= 1"),
    "validation above one": (sets("data.validation=1.5"), 2, "data.validation"),
    "validation negative": (sets("data.validation=-0.1"), 2, "data.validation"),
    "subset negative": (sets("data.subset=-5"), 2, "data.subset must be >= 0"),
    "empty training split": (sets("data.subset=1", "data.validation=0.9"), 2, "empty split"),
    "fashion without files": (
        sets("data.name='fashion-mnist'", "data.root='/nonexistent'"),
        1,
        "/nonexistent",
    ),
    "cifar without root": (sets("data.name='cifar10'"), 2, "data.root"),
    "cifar missing root": (
        sets("data.name='cifar10'", "data.root='/nonexistent'"),
        1,
        "/nonexistent",
    ),
    "scheme empty type": (sets("scheme.type=''"), 2, "scheme"),
    "scheme unknown type": (sets("scheme.type='ChannelShuffle'"), 2, "FilterPrune"),
    "scheme not a table": (sets("scheme=3"), 2, "[scheme] must be a table"),
    "scheme include typo": (sets("scheme.include=['^nope$']"), 2, "matched no"),
    "scheme exclude typo": (sets("scheme.exclude=['^nope$']"), 2, "matched no"),
    "scheme bad regex": (sets("scheme.include=['(']"), 2, "invalid regex"),
    "scheme unknown module type": (sets("scheme.types=['GRU']"), 2, "GRU"),
    "scheme align zero": (sets("scheme.align=0"), 2, "align"),
    "scheme align too large": (sets("scheme.align=100000"), 2, "align=100000"),
    "scheme unknown option": (sets("scheme.colour='red'"), 2, "colour"),
    "scheme bad criteria": (sets("scheme.criteria='vibes'"), 2, "vibes"),
    "block prune bad block": (sets("scheme.type='BlockPrune'", "scheme.block=[0, 4]"), 2, "block"),
    "quantize takes no sparsity": (
        sets("scheme.type='Quantize'", "scheme.dtype='int8'"),
        2,
        "'sparsity'",
    ),
    "compose of nothing": (sets("scheme={type='Compose', schemes=[]}"), 2, "Compose"),
    "method unknown": (sets("method.name='admm'"), 2, "valid: gmp, lc, finetune, dc"),
    "method option typo": (sets("method.options={iteratons=2}"), 2, "iteratons"),
    "method steps negative": (sets("method.options={steps=-5}"), 2, "steps"),
    "method options not a table": (sets("method.options=3"), 2, "method.options must be"),
    "objective unknown": (sets("objective.name='energy'"), 2, "valid: file-size, macs"),
    "objective batch zero": (sets("objective.batch_size=0"), 2, "objective.batch_size"),
    "objective repeats zero": (sets("objective.repeats=0"), 2, "objective.repeats"),
    "objective threads huge": (sets("objective.threads=100000"), 2, "4 per CPU"),
    "objective warmup negative": (sets("objective.warmup=-1"), 2, "objective.warmup"),
    "objective mode unknown": (
        sets("objective.name='macs'", "objective.mode='fast'"),
        2,
        "valid: effective",
    ),
    "objective option of another objective": (
        sets("objective.name='file-size'", "objective.mode='sparse'"),
        2,
        "unknown key objective.mode for objective 'file-size'",
    ),
    "metric unknown": (sets("constraint.metric='f1'"), 2, "constraint.metric = 'f1'"),
    "metric of another task": (sets("constraint.metric='perplexity'"), 2, "valid: loss, accuracy"),
    "max drop negative": (sets("constraint.max_drop=-0.1"), 2, "constraint.max_drop"),
    "max drop inf": (sets("constraint.max_drop=inf"), 2, "finite"),
    "former name of threshold": (
        sets("constraint.min_accuracy=0.5"), 2, "unknown key constraint.min_accuracy"
    ),
    "two constraints": (
        sets("constraint.max_relative_drop=0.1", "constraint.threshold=0.5"),
        2,
        "give one of max_drop, max_relative_drop, threshold; got max_relative_drop, threshold",
    ),
    "budget zero": (sets("search.budget=0"), 2, "search.budget must be >= 1"),
    "bounds reversed": (sets("search.bounds=[0.5, 0.2]"), 2, "search.bounds"),
    "bounds reach one": (sets("search.bounds=[0.0, 1.0]"), 2, "search.bounds"),
    "bounds one value": (sets("search.bounds=[0.1]"), 2, "search.bounds"),
    "bounds strings": (sets("search.bounds=['a', 'b']"), 2, "search.bounds"),
    "bounds nan": (sets("search.bounds=[nan, 0.5]"), 2, "search.bounds"),
    "compress sparsity one": (
        lambda f: ["compress", str(f["config"]), "--sparsity", "1.0"],
        2,
        "search.sparsity",
    ),
    "compress sparsity negative": (
        lambda f: ["compress", str(f["config"]), "--sparsity", "-0.5"],
        2,
        "search.sparsity",
    ),
    "model unknown": (sets("model.name='resnet1000'"), 2, "valid: digits_cnn"),
    "model factory missing": (sets("model.name='no_pkg.mod:fn'"), 2, "cannot import factory"),
    "model factory builtin": (sets("model.name='os:system'"), 2, "not a Python class or function"),
    "model factory malformed": (sets("model.name='a:b:c'"), 2, "package.module:function"),
    "model kwargs unknown": (sets("model.kwargs={nonsense=1}"), 2, "nonsense"),
    "model kwargs bad value": (sets("model.kwargs={width=-1}"), 2, "width"),
    "checkpoint missing": (sets("model.checkpoint='/nonexistent.pt'"), 2, "not found"),
    "checkpoint garbage pt": (
        lambda f: sets(f"model.checkpoint='{f['root'] / 'garbage.pt'}'")(f),
        2,
        "cannot read checkpoint",
    ),
    "checkpoint garbage safetensors": (
        lambda f: sets(f"model.checkpoint='{f['root'] / 'garbage.safetensors'}'")(f),
        2,
        "cannot read checkpoint",
    ),
    "checkpoint wrong shapes": (
        lambda f: sets(f"model.checkpoint='{f['root'] / 'wide.pt'}'", "model.kwargs={width=0.5}")(
            f
        ),
        2,
        "does not match",
    ),
    "checkpoint with code": (
        lambda f: sets(f"model.checkpoint='{f['root'] / 'code.pt'}'")(f),
        2,
        "cannot read checkpoint",
    ),
    "checkpoint condensa garbage": (
        lambda f: sets(f"model.checkpoint='{f['root'] / 'garbage.condensa'}'")(f),
        1,
        "not a readable Condensa file",
    ),
    "checkpoint claims 8 GB": (
        lambda f: sets(f"model.checkpoint='{f['root'] / 'claims-8gb.condensa'}'")(f),
        1,
        "describes a model of 8,000",
    ),
    "workers a billion": (search("--workers", "1000000000"), 2, "at most 1024 trials"),
    "workers beyond this machine": (search("--workers", "1000"), 2, "at most 4 per CPU"),
    "ray address malformed": (sets("search.ray_address='http://x'"), 2, "is not valid"),
    "ray client address without port": (sets("search.ray_address='ray://host'"), 2, "is not valid"),
    "ray address nothing answers": (
        sets("search.ray_address='127.0.0.1:9'"),
        1,
        "nothing answers at the Ray address",
    ),
    "device garbage": (search("--device", "garbage"), 2, "not a device"),
    "device tpu": (search("--device", "xla"), 2, "not supported"),
    "device cuda missing": (search("--device", "cuda"), 2, "no CUDA"),
    "set without equals": (search("--set", "seed"), 2, "section.key=value"),
    "set empty key": (search("--set", ".x=1"), 2, "section.key=value"),
    # output locations
    "output under a file": (
        lambda f: ["search", str(f["config"]), "-o", str(f["root"] / "afile" / "o")],
        2,
        "which is a file",
    ),
    "output is a file": (
        lambda f: ["search", str(f["config"]), "-o", str(f["root"] / "afile")],
        2,
        "not a directory",
    ),
    "output foreign directory": (
        lambda f: ["search", str(f["config"]), "-o", str(f["root"])],
        2,
        "holds no Condensa run",
    ),
    "output not utf-8": (
        lambda f: ["search", str(f["config"]), "-o", str(f["root"]) + "/o\udcff"],
        2,
        "not valid UTF-8",
    ),
    "output under proc": (
        lambda f: ["search", str(f["config"]), "-o", "/proc/condensa-run"],
        2,
        "cannot create output directory",
    ),
    "config path with markup": (
        lambda f: ["search", str(f["root"] / "[red]x[/red].toml")],
        2,
        "[red]x[/red].toml",
    ),
    # model files
    "model file missing": (model_cmd("stats", "missing.condensa"), 2, "not found"),
    "model file markup": (model_cmd("stats", "[/x].condensa"), 2, "[/x].condensa"),
    "model file is a directory": (model_cmd("stats", "adir"), 2, "not found"),
    "model file pickle": (model_cmd("stats", "pickle.condensa"), 1, "never loaded"),
    "model file garbage": (
        model_cmd("stats", "garbage.condensa"),
        1,
        "not a readable Condensa file",
    ),
    "model file empty": (model_cmd("stats", "empty.condensa"), 1, "not a readable Condensa file"),
    "model file truncated": (
        model_cmd("stats", "truncated.condensa"),
        1,
        "not a readable Condensa file",
    ),
    "model file foreign safetensors": (
        model_cmd("stats", "foreign.condensa"),
        1,
        "not a Condensa one",
    ),
    "model file newer": (model_cmd("stats", "newer.condensa"), 2, "upgrade condensa"),
    "model file bad version": (model_cmd("stats", "noversion.condensa"), 1, "format version"),
    "model file names a factory": (model_cmd("stats", "hostile.condensa"), 2, "--factory"),
    "thin hostile file": (model_cmd("thin", "hostile.condensa", *SHAPE), 2, "never imports"),
    "export hostile file": (
        lambda f: [
            "export",
            str(f["root"] / "hostile.condensa"),
            *SHAPE,
            "-o",
            str(f["root"] / "h.onnx"),
        ],
        2,
        "never imports",
    ),
    "factory flag builtin": (
        model_cmd("stats", "hostile.condensa", "--factory", "os:system"),
        2,
        "not a Python class",
    ),
    "factory flag missing": (
        model_cmd("stats", "model", "--factory", "nope.mod:fn"),
        2,
        "cannot import factory",
    ),
    "factory flag wrong architecture": (
        model_cmd("stats", "model", "--factory", "condensa.zoo.lenet:LeNet5"),
        2,
        "does not match",
    ),
    "shape not numbers": (model_cmd("stats", "model", "--input-size", "1,x"), 2, "--input-size"),
    "shape zero": (model_cmd("stats", "model", "--input-size", "0,784"), 2, "--input-size"),
    "shape empty": (model_cmd("stats", "model", "--input-size", ""), 2, "--input-size"),
    "shape negative": (model_cmd("stats", "model", "--input-size", "1,-784"), 2, "--input-size"),
    "shape too many dims": (
        model_cmd("stats", "model", "--input-size", "1,1,1,1,1,1,1,1,784"),
        2,
        "--input-size",
    ),
    "shape huge": (
        model_cmd("stats", "model", "--input-size", "100000,100000,100"),
        2,
        "elements",
    ),
    "shape wrong for model": (
        model_cmd("thin", "model", "--input-size", "1,8"),
        2,
        "does not accept",
    ),
    "int64 input to an image model": (
        model_cmd("stats", "model", "--input-size", "2,784", "--input-dtype", "int64"),
        2,
        "does not accept",
    ),
    "thin unstructured": (model_cmd("thin", "unstructured", *SHAPE), 2, "nothing can be thinned"),
    "thin output suffix": (
        lambda f: ["thin", str(f["model"]), *SHAPE, "-o", str(f["root"] / "m.txt")],
        2,
        ".onnx or .pt2",
    ),
    "thin output missing folder": (
        lambda f: ["thin", str(f["model"]), *SHAPE, "-o", str(f["root"] / "no" / "m.pt2")],
        2,
        "does not exist",
    ),
    "thin output is a directory": (
        lambda f: ["thin", str(f["model"]), *SHAPE, "-o", str(f["root"] / "adir.pt2")],
        2,
        "is a directory",
    ),
    "thin output under a file": (
        lambda f: ["thin", str(f["model"]), *SHAPE, "-o", str(f["root"] / "afile" / "m.pt2")],
        2,
        "which is a file",
    ),
    "export output suffix": (
        lambda f: ["export", str(f["model"]), *SHAPE, "-o", str(f["root"] / "m.pt2")],
        2,
        ".onnx",
    ),
    "export output missing folder": (
        lambda f: ["export", str(f["model"]), *SHAPE, "-o", str(f["root"] / "no" / "m.onnx")],
        2,
        "does not exist",
    ),
    "export output not utf-8": (
        lambda f: ["export", str(f["model"]), *SHAPE, "-o", str(f["root"]) + "/m\udcff.onnx"],
        2,
        "not valid UTF-8",
    ),
    # reports
    "report missing directory": (
        lambda f: ["report", str(f["root"] / "nope")],
        2,
        "no finished run",
    ),
    "report empty directory": (lambda f: ["report", str(f["root"] / "adir")], 2, "no finished run"),
    "report summary not json": (
        lambda f: ["report", str(f["root"] / "summary-notjson")],
        2,
        "corrupt",
    ),
    "report summary a list": (
        lambda f: ["report", str(f["root"] / "summary-list")],
        2,
        "not a Condensa run summary",
    ),
    "report summary partial": (
        lambda f: ["report", str(f["root"] / "summary-partial")],
        2,
        "not a complete run summary",
    ),
    "report summary wrong types": (
        lambda f: ["report", str(f["root"] / "summary-types")],
        2,
        "not a complete run summary",
    ),
}
# fmt: on


def test_there_are_at_least_a_hundred_cases():
    assert len(CASES) >= 100


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clean_line(name, env, capsys):
    """Exit code as documented, one `condensa: error:` line naming the problem, nothing else."""
    build, code, phrase = CASES[name]
    argv = build(env)
    assert main(argv) == code, capsys.readouterr().err
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.startswith("condensa: error:") and err.count("\n") == 1, err
    assert phrase in err, err
    assert not Path("/tmp/condensa-pwned-by-checkpoint").exists()
    assert not (env["root"] / "out").exists(), "a refused run must leave nothing behind"


def test_stats_in_a_pipe_prints_whole_numbers_even_when_quiet(env, capsys):
    """Output that is not a terminal is never cut short, and -q keeps the result."""
    assert main(["stats", str(env["model"]), "-q", "--input-size", "1,784"]) == 0
    out = capsys.readouterr().out
    total = condensa.stats(condensa.load(env["model"])).numel
    assert f"{total:,}" in out and "…" not in out
