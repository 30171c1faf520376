"""The constrained search on measured decode speed, SmolLM2-135M: which Linears run in int8.

Weights: GPTQ int8 on the block Linears, round-to-nearest int8 on the tied embedding
(the ``gptq-int8`` row of ``benchmarks/llm.py``), except the fewest block Linears that must
be stored in int4 (group 128, GPTQ) for the file to be ``--ratio`` times smaller than fp32:
int8 alone cannot reach 4x (:mod:`condensa.low_bits`; the least sensitive to int4 rounding
on calibration inputs first). That file is what ships. Deployment:
the per-token int8 kernel (:mod:`condensa.kernels`), after smoothing
(:mod:`condensa.smoothing`), on the fraction of Linears the search picks (:func:`condensa.int8_layers.search_int8_layers`), the rest in float. The
search sees a validation text (KJV verses 8,000-12,000) and maximizes decode tokens/s
measured against fp32 side by side, under validation perplexity at most +5 %; the
table reports held-out WEB perplexity and last-word accuracy, and the speed of the
answer, of every Linear in int8 and of none, each against fp32 in one interleaved run.
Needs the same installs as ``benchmarks/llm.py``.

    .venv/bin/python benchmarks/llm_int8_search.py            # ~25 min on 2 cores
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from llm import CONFIGS, model_and_text, scheme_of, speed, trainers  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=10)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--max-relative-drop", type=float, default=0.05)
    parser.add_argument("--eval-tokens", type=int, default=4096)
    parser.add_argument("--ratio", type=float, default=4.0, help="file size target vs fp32")
    args = parser.parse_args()

    from _report import markdown_table, update_docs, write_results

    import condensa
    from condensa.int8_layers import search_int8_layers
    from condensa.kernels import token_int8
    from condensa.low_bits import fewest_to_save, weight_errors
    from condensa.masking import bake
    from condensa.objectives import Decode
    from condensa.optim.oneshot import GPTQ
    from condensa.schemes import Compose, Quantize

    torch.set_num_threads(2)
    model, tokenizer, kjv, web = model_and_text()
    held_out, validation = trainers(tokenizer, kjv, web, args.eval_tokens)
    int8 = scheme_of(CONFIGS["gptq-int8"][1])
    with tempfile.TemporaryDirectory() as folder:  # int8 files have one size, GPTQ or not
        dense_bytes = condensa.save(model, Path(folder) / "d.condensa").stat().st_size
        int8_bytes = condensa.save(condensa.compress(model, int8), Path(folder) / "i.condensa")
        need = int8_bytes.stat().st_size - int(dense_bytes / args.ratio) + 4096  # + metadata
    start = time.perf_counter()
    batches = held_out.calibration_inputs(args.samples)
    linears = [n for n, m in model.named_modules() if n.startswith("model.layers.")
               and isinstance(m, torch.nn.Linear)]  # fmt: skip
    int4 = fewest_to_save(model, weight_errors(model, batches[:4], names=linears), need)
    exact = [f"^{re.escape(n)}$" for n in int4]
    scheme = int8 if not int4 else Compose([
        Quantize("int8", types=["Linear"], exclude=[r"^lm_head$", *exact]),
        Quantize("int4", group_size=128, types=["Linear"], include=exact),
        Quantize("int8", types=["Embedding"]),
    ])  # fmt: skip
    compressed = GPTQ(samples=args.samples).compress(model, scheme, batches).model
    gptq_s = time.perf_counter() - start
    print(f"int4-stored Linears ({len(int4)}): {int4}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        file_bytes = condensa.save(compressed, Path(folder) / "m.condensa").stat().st_size
    prompt = validation.evaluation_tokens[:128].unsqueeze(0)
    start = time.perf_counter()

    def report(trial):
        extra = trial.extra
        print(
            f"trial {trial.index}: fraction {trial.sparsity:.3f} ({extra.get('int8_layers')} "
            f"layers) ppl {trial.accuracy:.2f} decode {trial.objective:.2f}x",
            flush=True,
        )

    found = search_int8_layers(
        compressed,
        validation,
        prompt,
        reference=model,
        objective=Decode(prompt=128, new_tokens=16, repeats=3),
        max_relative_drop=args.max_relative_drop,
        budget=args.budget,
        seed=0,
        callback=report,
    )
    search_s = time.perf_counter() - start
    print(found.search.summary(), flush=True)
    # found.runnable: the smoothed float model the trials converted (same float outputs)
    forms = {"none in int8 (stored weights, float kernel)": bake(compressed).eval()}
    if found.fraction is not None:
        forms["searched"] = found.model()
    forms["every Linear in int8"] = token_int8(found.runnable)
    fp32 = held_out.evaluate(model)
    rows, records = [], []
    for label, deployed in forms.items():
        metrics = held_out.evaluate(deployed)
        timing = speed(deployed, model)
        fraction = {"searched": found.fraction, "every Linear in int8": 1.0}.get(label, 0.0)
        count = round(fraction * len(found.order))
        records.append(
            {"form": label, "fraction": fraction, "int8_layers": count, **metrics, **timing}
        )
        rows.append(
            [
                label,
                f"{count}/{len(found.order)}",
                f"{metrics['perplexity']:.2f} ({metrics['perplexity'] / fp32['perplexity'] - 1:+.1%})",
                f"{metrics['last_word']:.2f}",
                f"{timing['decode_speedup']:.2f}x",
                f"{timing['prefill_speedup']:.2f}x",
            ]
        )
        print(rows[-1], flush=True)
    answer = next((r for r in records if r["form"] == "searched"), None)
    ratio = dense_bytes / file_bytes
    targets = []
    if answer:
        rise = answer["perplexity"] / fp32["perplexity"] - 1
        targets.append(
            f"searched answer: held-out perplexity {rise:+.1%} (target within +5%): "
            f"{'met' if rise <= 0.05 else 'MISSED'}; decode {answer['decode_speedup']:.2f}x "
            f"fp32 (target at least 1.5x): {'met' if answer['decode_speedup'] >= 1.5 else 'MISSED'}; "
            f"file {ratio:.2f}x smaller (target at least 4x): {'met' if ratio >= 4 else 'MISSED'}"
        )
    else:
        targets.append(f"no fraction met the constraint: {found.search.reason}")
    path = write_results(
        "llm_int8_search",
        {
            "budget": args.budget,
            "samples": args.samples,
            "max_relative_drop": args.max_relative_drop,
            "gptq_s": gptq_s,
            "search_s": search_s,
            "file_bytes": file_bytes,
            "dense_file_bytes": dense_bytes,
            "int4_layers": int4,
            "fp32": fp32,
            "reference_validation_ppl": found.reference_metric,
            "trials": [
                {
                    "fraction": t.sparsity,
                    "int8_layers": t.extra.get("int8_layers"),
                    "validation_ppl": t.accuracy,
                    "decode_speedup": t.objective,
                }
                for t in found.search.trials
            ],
            "float_layers": list(found.order[round((found.fraction or 0) * len(found.order)) :]),
            "results": records,
            "targets": targets,
        },
    )
    body = (
        f"SmolLM2-135M with GPTQ int8 weights, {len(int4)} block Linears in int4 group 128 "
        "(the least sensitive to int4 rounding, fewest for the file to be 4x smaller) (file "
        f"{file_bytes / 1e6:.1f} MB, {ratio:.2f}x smaller than fp32's {dense_bytes / 1e6:.1f} MB). "
        f"The search ran {args.budget} trials in {search_s / 60:.0f} min (GPTQ: {gptq_s:.0f} s), "
        "each converting a fraction of the 211 Linears (output head included) of the "
        "smoothed model (SmoothQuant, alpha 0.5) to the per-token int8 kernel, smallest "
        "kernel error first, scoring perplexity on KJV verses "
        "8,000-12,000 (limit: +5 % over fp32) and decode tokens/s against fp32 side by side "
        "(prompt 128, 16 tokens, 2 threads). Below, held-out WEB perplexity (fp32 "
        f"{fp32['perplexity']:.2f}) and each form's speed against fp32, interleaved, median of 5 "
        "rounds (prompt 256, 32 decoded tokens). Command: "
        f"`.venv/bin/python benchmarks/llm_int8_search.py`. Results: `{path.name}`.\n\n"
        + markdown_table(
            ["deployed form", "int8 Linears", "WEB ppl", "last word", "decode", "prefill"], rows
        )
        + "\n\n"
        + "\n".join(f"- {t}" for t in targets)
    )
    update_docs(
        "llm_int8_search", "Decoder LLM: searched int8 layers by decode speed (SmolLM2-135M)", body
    )
    print(body)


if __name__ == "__main__":
    main()
