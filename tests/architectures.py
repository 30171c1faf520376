"""Small-width models written from the public definitions users bring (no downloads).

Each builder returns ``(model, example_inputs)`` with random weights and BatchNorm
statistics that look trained (so a pruned channel outputs a non-zero constant unless
its whole group is removed). Widths are small so the thinning tests stay fast; the
structure (residuals, groups, SE, concat, permute + LayerNorm, attention) follows
the papers and torchvision/timm definitions. ``timm`` itself is not used: its model
files import torchvision, whose wheel does not load with the CPU torch build here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act=nn.ReLU):
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride), conv_bn(cout, cout, 3, act=None))
        self.short = (
            conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()
        )

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(cin, mid, 1),
            conv_bn(mid, mid, 3, stride, groups=groups),
            conv_bn(mid, cout, 1, act=None),
        )
        self.short = (
            conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()
        )

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x))


class ResNet(nn.Module):
    """ResNet (He et al. 2016): basic or bottleneck blocks; ResNeXt with ``groups``."""

    def __init__(
        self,
        bottleneck: bool = False,
        groups: int = 1,
        classes: int = 10,
        widths=(16, 32, 64),
        depths=(2, 2, 2),
        stem: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.stem = stem or conv_bn(3, 16, 3)
        blocks: list[nn.Module] = []
        cin = 16 if stem is None else 64
        for i, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            stride = 1 if i == 0 else 2
            for j in range(depth):
                if bottleneck:
                    mid = width if groups == 1 else width * 2
                    blocks.append(Bottleneck(cin, mid, width * 4, stride if j == 0 else 1, groups))
                    cin = width * 4
                else:
                    blocks.append(Basic(cin, width, stride if j == 0 else 1))
                    cin = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeeze: int, gate=nn.Sigmoid, act=nn.ReLU) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = act()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate()

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 and EfficientNet's MBConv: expand, depthwise, (SE), project."""

    def __init__(self, cin, expand, cout, k=3, stride=1, se=False, act=nn.ReLU6, gate=nn.Sigmoid):
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn(cin, mid, 1, act=act))
        layers.append(conv_bn(mid, mid, k, stride, groups=mid, act=act))
        if se:
            layers.append(SqueezeExcite(mid, max(8, mid // 4), gate=gate))
        layers.append(conv_bn(mid, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.body(x)
        return x + out if self.residual else out


class MobileNet(nn.Module):
    """MobileNetV2 (``version=2``), MobileNetV3 (3: SE, hard-swish) or EfficientNet ("eff")."""

    def __init__(self, version: int | str = 2, classes: int = 10) -> None:
        super().__init__()
        act = {2: nn.ReLU6, 3: nn.Hardswish, "eff": nn.SiLU}[version]
        gate = nn.Hardsigmoid if version == 3 else nn.Sigmoid
        se = version != 2
        self.stem = conv_bn(3, 16, 3, 2, act=act)
        cfg = [(1, 16, 3, 1), (4, 24, 3, 2), (4, 24, 3, 1), (6, 40, 5, 2), (6, 40, 5, 1)]
        blocks, cin = [], 16
        for expand, cout, k, stride in cfg:
            blocks.append(InvertedResidual(cin, expand, cout, k, stride, se, act, gate))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = conv_bn(cin, 96, 1, act=act)
        self.classifier = nn.Sequential(
            nn.Linear(96, 64), act(), nn.Dropout(0.2), nn.Linear(64, 10)
        )

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


class RegNetBlock(nn.Module):
    """RegNetY's X block with SE: 1x1, grouped 3x3 (group width 8), SE, 1x1, residual."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.a = conv_bn(cin, cout, 1)
        self.b = conv_bn(cout, cout, 3, stride, groups=cout // 8)
        self.se = SqueezeExcite(cout, max(4, cin // 4))
        self.c = conv_bn(cout, cout, 1, act=None)
        self.short = (
            conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()
        )

    def forward(self, x):
        return F.relu(self.c(self.se(self.b(self.a(x)))) + self.short(x))


class RegNet(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2)
        widths = [(16, 24, 1), (24, 24, 1), (24, 56, 2), (56, 56, 1)]
        self.blocks = nn.Sequential(*(RegNetBlock(a, b, s) for a, b, s in widths))
        self.fc = nn.Linear(56, classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        return torch.cat([x, out], 1)


class DenseNet(nn.Module):
    """DenseNet-BC (Huang et al. 2017): concatenating layers, transitions, BN-ReLU-conv."""

    def __init__(self, growth: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        layers: list[nn.Module] = []
        c = 16
        for stage in range(2):
            for _ in range(3):
                layers.append(DenseLayer(c, growth))
                c += growth
            if stage == 0:
                layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1), nn.AvgPool2d(2)]
                c //= 2
        self.features = nn.Sequential(*layers)
        self.norm = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = F.relu(self.norm(self.features(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class GhostModule(nn.Module):
    """GhostNet's module: a primary 1x1 conv, a cheap depthwise op, concat, slice."""

    def __init__(self, cin: int, cout: int, relu: bool = True) -> None:
        super().__init__()
        self.cout = cout
        init = (cout + 1) // 2
        act = nn.ReLU if relu else None
        self.primary = conv_bn(cin, init, 1, act=act)
        self.cheap = conv_bn(init, init, 3, groups=init, act=act)

    def forward(self, x):
        a = self.primary(x)
        return torch.cat([a, self.cheap(a)], dim=1)[:, : self.cout]


class GhostBottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.ghost1 = GhostModule(cin, mid)
        self.dw = conv_bn(mid, mid, 3, stride, groups=mid, act=None) if stride > 1 else None
        self.ghost2 = GhostModule(mid, cout, relu=False)
        self.short = (
            nn.Sequential(conv_bn(cin, cin, 3, stride, cin, None), conv_bn(cin, cout, 1, act=None))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        y = self.ghost1(x)
        if self.dw is not None:
            y = self.dw(y)
        return self.ghost2(y) + self.short(x)


class GhostNet(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2)
        cfg = [(16, 16, 16, 1), (16, 48, 24, 2), (24, 72, 24, 1), (24, 72, 40, 2)]
        self.blocks = nn.Sequential(*(GhostBottleneck(a, m, b, s) for a, m, b, s in cfg))
        self.head = conv_bn(40, 96, 1)
        self.fc = nn.Linear(96, classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.head(self.blocks(self.stem(x))), 1).flatten(1))


class RepVGGBlock(nn.Module):
    """RepVGG's training-time block: 3x3+BN, 1x1+BN and identity BN branches, summed."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.dense = conv_bn(cin, cout, 3, stride, act=None)
        self.one = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.identity = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None

    def forward(self, x):
        out = self.dense(x) + self.one(x)
        if self.identity is not None:
            out = out + self.identity(x)
        return F.relu(out)


class RepVGG(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        cfg = [(3, 16, 2), (16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 64, 2)]
        self.blocks = nn.Sequential(*(RepVGGBlock(a, b, s) for a, b, s in cfg))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(x), 1).flatten(1))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt (Liu et al. 2022): dw 7x7, permute, LayerNorm, Linear MLP, layer scale."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """ConvNeXt: patchify stem, stages of blocks, LayerNorm + strided conv between stages."""

    def __init__(self, dims=(16, 32), depths=(2, 2), classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))
        layers: list[nn.Module] = []
        for i, (dim, depth) in enumerate(zip(dims, depths, strict=True)):
            if i:
                layers += [LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, 2)]
            layers += [ConvNeXtBlock(dim) for _ in range(depth)]
        self.stages = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], classes)

    def forward(self, x):
        return self.head(self.norm(self.stages(self.stem(x)).mean((-2, -1))))


class Attention(nn.Module):
    """ViT's attention with a fused qkv projection (as in timm)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim))


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """ViT (Dosovitskiy et al. 2021): patch embedding, class token, position embedding."""

    def __init__(self, dim: int = 32, heads: int = 4, depth: int = 2, classes: int = 10) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 8, 8)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        self.blocks = nn.Sequential(*(ViTBlock(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


SMALL_TRANSFORMER = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "attn_implementation": "eager",
}
"""Hugging Face config fields shared by the small BERT and ViT test models."""


def _tokens() -> dict[str, torch.Tensor]:
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def bert() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A Hugging Face ``BertModel`` from a small ``BertConfig`` (separate q/k/v, heads, FFN)."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=100, max_position_embeddings=32, **SMALL_TRANSFORMER)
    torch.manual_seed(0)
    return BertModel(config, add_pooling_layer=False).eval(), _tokens()


def distilbert() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A Hugging Face ``DistilBertModel`` (``q_lin``/``k_lin``/``v_lin``, ``n_heads``)."""
    from transformers import DistilBertConfig, DistilBertModel

    config = DistilBertConfig(
        vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=32
    )
    torch.manual_seed(0)
    return DistilBertModel(config).eval(), _tokens()


def hf_vit() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A Hugging Face ``ViTModel`` (``q_proj``/``k_proj``/``v_proj``/``o_proj``)."""
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(image_size=32, patch_size=8, **SMALL_TRANSFORMER)
    torch.manual_seed(0)
    model = ViTModel(config, add_pooling_layer=False).eval()
    return model, {"pixel_values": torch.randn(2, 3, 32, 32)}


def lstm() -> tuple[nn.Module, torch.Tensor]:
    from condensa.zoo.lstm import LSTMLanguageModel

    torch.manual_seed(0)
    model = LSTMLanguageModel(30, embedding_dim=16, hidden_dim=24, num_layers=2).eval()
    return model, torch.randint(0, 30, (4, 10), generator=torch.Generator().manual_seed(1))


def trained_look(model: nn.Module) -> nn.Module:
    """BatchNorm statistics and affine parameters like a trained model's."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model.eval()


IMAGE: dict[str, Callable[[], nn.Module]] = {
    "resnet_basic": lambda: ResNet(),
    "resnet_bottleneck": lambda: ResNet(bottleneck=True),
    "resnext": lambda: ResNet(bottleneck=True, groups=4),
    "mobilenet_v2": lambda: MobileNet(2),
    "mobilenet_v3": lambda: MobileNet(3),
    "efficientnet": lambda: MobileNet("eff"),
    "regnet": RegNet,
    "densenet": DenseNet,
    "ghostnet": GhostNet,
    "repvgg": RepVGG,
    "convnext": ConvNeXt,
    "vit": ViT,
}


HUGGING_FACE = {"bert": bert, "distilbert": distilbert, "hf_vit": hf_vit}
"""Hugging Face models (need ``transformers``)."""


def build(name: str) -> tuple[nn.Module, Any]:
    """``(model, example_inputs)`` for one name of IMAGE, HUGGING_FACE or "lstm"."""
    if name in HUGGING_FACE:
        return HUGGING_FACE[name]()
    if name == "lstm":
        return lstm()
    torch.manual_seed(0)
    model = trained_look(IMAGE[name]())
    return model, torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


ALL = (*IMAGE, *HUGGING_FACE, "lstm")


def build_full(name: str) -> tuple[nn.Module, Any]:
    """Full-size ResNet-50, ConvNeXt-T or BERT-base (random weights) and a batch for timing."""
    torch.manual_seed(0)
    if name == "bert_base":
        from transformers import BertConfig, BertModel

        config = BertConfig(attn_implementation="eager")  # 12 layers, 768 hidden, 12 heads
        ids = torch.randint(0, config.vocab_size, (8, 128))
        model = BertModel(config, add_pooling_layer=False).eval()
        return model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if name == "resnet50":
        stem = nn.Sequential(conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        model: nn.Module = ResNet(True, 1, 1000, (64, 128, 256, 512), (3, 4, 6, 3), stem)
    elif name == "convnext_tiny":
        model = ConvNeXt((96, 192, 384, 768), (3, 3, 9, 3), classes=1000)
    else:
        raise KeyError(name)
    return trained_look(model), torch.randn(32, 3, 224, 224)
