"""From a resolved run config to live objects: data, model, trainers, objective, method."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from condensa.architecture import build_model
from condensa.cli.config import objective_spec
from condensa.distributed import World, shard_loader
from condensa.errors import ConfigError
from condensa.objectives import build_objective
from condensa.optim import (
    LanguageModelTrainer,
    SupervisedTrainer,
    Trainer,
    adam,
    sgd,
)
from condensa.optim.language import sgd_plain
from condensa.optim.methods import build_method


@dataclass
class Setup:
    """What a run works with.

    Attributes:
        trainer: trains and evaluates on the validation data (the constraint's data).
        tester: evaluates on the test data (reported, never used to choose).
        example_inputs: one batch, for tracing, thinning and measuring.
        steps_per_epoch: training steps in one pass over the training data.
        make_model: builds a fresh, untrained instance of the architecture.
        architecture: ``{"zoo"|"factory": name, "kwargs": ...}`` recorded in saved files.
        validation_source: ``"held-out training data"`` or ``"test set"``.
        metrics: the names ``trainer.evaluate`` returns (``constraint.metric`` must be one).

    """

    trainer: Trainer
    tester: Trainer
    example_inputs: torch.Tensor
    steps_per_epoch: int
    make_model: Callable[[], nn.Module]
    architecture: dict[str, Any]
    validation_source: str
    metrics: tuple[str, ...]


def _split(dataset: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    n = len(dataset)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    held = round(n * fraction)
    return Subset(dataset, order[held:]), Subset(dataset, order[:held])


def _image_data(config: Mapping[str, Any]) -> tuple[Any, Any]:
    data = config["data"]
    name, root = data["name"], data["root"] or None
    if name == "digits":
        from condensa.data import load_digits

        return load_digits(seed=config["seed"])
    if name in ("fashion-mnist", "mnist"):
        from condensa.data import load_mnist

        kind = "fashion" if name == "fashion-mnist" else "mnist"
        return load_mnist(root, kind=kind, pad_to=data["pad_to"] or None)
    if name == "cifar10":
        from condensa.data import load_cifar10

        if root is None:
            raise ConfigError("data.root must name the cifar-10-batches-py directory")
        return load_cifar10(root)
    raise ConfigError(f"data.name {name!r} is not an image dataset")


def _optimizer(name: str) -> Any:
    return {"adam": adam, "sgd": sgd}[name]


def _language_setup(config: Mapping[str, Any], progress: bool) -> Setup:
    from condensa.data import batchify, kjv_text, load_corpus

    data, train = config["data"], config["train"]
    path = Path(data["root"]) if data["root"] else kjv_text()
    corpus = load_corpus(path, min_count=3)
    train_tokens = batchify(corpus.train, data["batch_size"])
    if data["subset"]:
        train_tokens = train_tokens[: data["subset"]]
    valid, test = (batchify(t, data["eval_batch_size"]) for t in (corpus.valid, corpus.test))
    common = {"bptt": data["bptt"], "schedule": train["schedule"]}
    optimizer = sgd_plain if train["optimizer"] == "sgd" else adam
    clip = train["grad_clip"] or None
    trainer = LanguageModelTrainer(
        train_tokens,
        valid,
        lr=train["lr"],
        optimizer=optimizer,
        grad_clip=clip,
        progress=progress,
        **common,
    )
    tester = LanguageModelTrainer(train_tokens, test, **common)
    kwargs = {"vocab_size": len(corpus.vocab), **config["model"]["kwargs"]}
    name = config["model"]["name"]
    return Setup(
        trainer,
        tester,
        valid[: data["bptt"]],
        max(1, (train_tokens.shape[0] - 1) // data["bptt"]),
        lambda: build_model(name, kwargs),
        _architecture(name, kwargs),
        "validation split of the corpus",
        ("loss", "perplexity"),
    )


def _architecture(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    key = "factory" if ":" in name else "zoo"
    return {key: name, "kwargs": dict(kwargs)}


def setup(config: Mapping[str, Any], *, progress: bool = False) -> Setup:
    """Load the data and build the trainers for ``config`` (nothing is trained)."""
    data, train = config["data"], config["train"]
    if data["name"] in ("text", "kjv"):
        return _language_setup(config, progress)
    if data["name"] == "causal-lm":
        from condensa.cli.causal_lm import causal_lm_setup

        return cast(Setup, causal_lm_setup(config, Setup))
    train_set, test_set = _image_data(config)
    if data["subset"]:
        train_set = Subset(train_set, range(min(data["subset"], len(train_set))))
    if data["validation"]:
        train_set, val_set = _split(train_set, data["validation"], config["seed"])
        source = f"{len(val_set)} held-out training samples"
    else:
        val_set, source = test_set, "test set"
    sizes = {"training": len(train_set), "validation": len(val_set), "test": len(test_set)}
    if min(sizes.values()) == 0:
        counts = ", ".join(f"{v} {k}" for k, v in sizes.items())
        raise ConfigError(
            f"data {data['name']!r}: an empty split ({counts} samples after "
            f"data.subset = {data['subset']}, data.validation = "
            f"{data['validation']}); every split needs at least one sample"
        )
    generator = torch.Generator().manual_seed(config["seed"])
    loader = DataLoader(train_set, batch_size=data["batch_size"], shuffle=True, generator=generator)
    if World.current().distributed:  # under torchrun: this rank's share of each global batch
        loader = shard_loader(loader, seed=config["seed"])
    trainer = SupervisedTrainer(
        loader,
        DataLoader(val_set, batch_size=512),
        lr=train["lr"],
        optimizer=_optimizer(train["optimizer"]),
        schedule=train["schedule"],
        grad_clip=train["grad_clip"] or None,
        progress=progress,
    )
    tester = SupervisedTrainer(loader, DataLoader(test_set, batch_size=512))
    example = torch.stack([test_set[i][0] for i in range(min(8, len(test_set)))])
    name, kwargs = config["model"]["name"], dict(config["model"]["kwargs"])
    return Setup(
        trainer,
        tester,
        example,
        len(loader),
        lambda: build_model(name, kwargs),
        _architecture(name, kwargs),
        source,
        ("loss", "accuracy", "top5"),
    )


def objective(config: Mapping[str, Any]) -> Callable[..., Any]:
    """The measured objective named by ``[objective]`` (see :func:`objective_spec`)."""
    return build_objective(*objective_spec(config))


def method(config: Mapping[str, Any], trainer: Trainer, metric: str) -> Any:
    """The compression method named by ``[method]`` (see :data:`condensa.optim.METHODS`)."""
    try:
        return build_method(
            config["method"]["name"], trainer, config["method"]["options"], metric=metric
        )
    except ConfigError as exc:
        raise ConfigError(f"method.options: {exc}") from None


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights into ``model``: a Condensa file, a safetensors file or a state_dict ``.pt``.

    Raises:
        ConfigError: missing file, or keys/shapes that do not match (the first differences shown).

    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model.checkpoint {str(path)!r} not found")
    if path.suffix == ".condensa":
        from condensa.io import load

        return load(path, model)
    state: Any
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notes are not the user's
            warnings.simplefilter("ignore")
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:  # weights_only: tensors and plain containers, never code
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot read checkpoint {str(path)!r} (a state_dict saved by torch.save, a "
            f"safetensors file or a .condensa file is expected; pickled code is never "
            f"loaded): {first[:200]}"
        ) from None
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ConfigError(f"checkpoint {str(path)!r} holds no state_dict")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: {tuple(getattr(state[k], 'shape', ())) or type(state[k]).__name__} vs "
        f"{tuple(v.shape)}"
        for k, v in expected.items()
        if k in state
        and (not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != tuple(v.shape))
    ]
    if missing or unexpected or shapes:
        raise ConfigError(
            f"checkpoint {str(path)!r} does not match {type(model).__name__}: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}, shape mismatches {shapes[:3]}"
        )
    model.load_state_dict(state)
    return model


def strategy(config: Mapping[str, Any]) -> Any:
    """The search strategy: a registered name, or a ``package.module:Class`` the config names.

    Raises:
        ConfigError: an unknown name (the registered ones listed) or a path that does
            not import a class or function.

    """
    from condensa.architecture import resolve_factory
    from condensa.search.proposer import make_strategy

    name = config["search"]["strategy"]
    factory = resolve_factory(name) if ":" in name else None
    try:  # built once on a probe problem: an unknown name or a missing extra fails now
        make_strategy(factory or name, _probe_problem())
    except ConfigError as exc:
        raise ConfigError(f"search.strategy = {name!r}: {exc}") from None
    return factory or name


def _probe_problem() -> Any:
    from condensa.search import Constraint, SearchProblem

    return SearchProblem(((0.0, 0.99),), Constraint.make(accuracy_threshold=0.0), 0)
