"""Run configs: layering, validation, identity; every shipped example config is valid."""

from pathlib import Path

import pytest

from condensa.api import scheme_factory
from condensa.cli import build
from condensa.cli.config import (
    constraint_kwargs,
    differences,
    identity,
    parse_assignment,
    read_config,
    resolve,
)
from condensa.errors import ConfigError
from condensa.optim import SupervisedTrainer

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "examples" / "configs").glob("*.toml"))
SCHEME = {"scheme": {"type": "Prune", "sparsity": 0.5}}


def test_there_are_example_configs():
    names = {p.stem for p in CONFIGS}
    assert {
        "fashion_lenet5_memory",
        "fashion_vgg11_throughput",
        "cifar10_vgg19_throughput",
        "cifar10_resnet56_throughput",
        "cifar10_alexnet_memory",
        "kjv_lstm_memory",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_example_config_is_valid(path):
    config = resolve([(str(path), read_config(path))])
    scheme_factory(config["scheme"])(0.3)  # a valid scheme spec
    trainer = SupervisedTrainer([], [])
    build.method(config, trainer, config["constraint"]["metric"])  # valid method options
    build.objective(config)


def test_later_layers_override_earlier_ones():
    config = resolve(
        [
            ("file", {**SCHEME, "seed": 1, "search": {"budget": 4}}),
            ("flags", {"search": {"budget": 7}}),
        ]
    )
    assert config["seed"] == 1 and config["search"]["budget"] == 7
    assert config["search"]["bounds"] == [0.0, 0.99]  # default kept


def test_set_assignments_parse_toml_values():
    assert parse_assignment("search.budget=5") == {"search": {"budget": 5}}
    assert parse_assignment("model.kwargs={width=0.5}") == {"model": {"kwargs": {"width": 0.5}}}
    assert parse_assignment("data.root=/tmp/x") == {"data": {"root": "/tmp/x"}}  # bare string
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_assignment("budget")


def test_set_merges_into_the_scheme():
    config = resolve(
        [("file", SCHEME), ("--set scheme.criteria='l1'", {"scheme": {"criteria": "l1"}})]
    )
    assert config["scheme"] == {"type": "Prune", "sparsity": 0.5, "criteria": "l1"}


@pytest.mark.parametrize(
    "layer, message",
    [
        ({"search": {"bounds": [0.5, 0.2]}}, "search.bounds"),
        ({"search": {"budget": 0}}, "search.budget must be >= 1"),
        ({"constraint": {"threshold": 0.9, "max_relative_drop": 0.1}}, "give one of"),
        ({"data": {"validation": 1.5}}, "data.validation"),
        ({"objective": {"name": "speed"}}, "valid: file-size, macs, throughput, latency"),
        ({"model": "lenet5"}, r"\[model\] must be a table"),
        ({"seed": True}, "seed must be a int"),
        ({"colour": "red"}, "unknown key 'colour'"),
    ],
)
def test_invalid_values_are_named(layer, message):
    with pytest.raises(ConfigError, match=message):
        resolve([("file", {**SCHEME, **layer})])


def test_a_scheme_is_required():
    with pytest.raises(ConfigError, match=r"no \[scheme\]"):
        resolve([("file", {})])


def test_constraint_forms():
    assert constraint_kwargs(resolve([("f", SCHEME)])) == {"max_drop": 0.01}
    relative = resolve([("f", {**SCHEME, "constraint": {"max_relative_drop": 0.02}})])
    assert constraint_kwargs(relative) == {"max_relative_drop": 0.02}
    absolute = resolve([("f", {**SCHEME, "constraint": {"threshold": 0.9}})])
    assert constraint_kwargs(absolute) == {"accuracy_threshold": 0.9}


def test_identity_ignores_where_and_how_fast():
    a = resolve([("f", SCHEME)])
    b = resolve([("f", {**SCHEME, "threads": 1, "output": "elsewhere", "search": {"budget": 3}})])
    assert differences(identity(a), identity(b)) == []
    c = resolve([("f", {**SCHEME, "seed": 3})])
    assert differences(identity(a), identity(c)) == ["seed: 0 != 3"]
