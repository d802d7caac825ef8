"""Cascades against an LLM that answers from human labels: the quality target met, and how much
of the corpus the LLM had to see to meet it.

An OpenAI-compatible server on 127.0.0.1 answers the annotator's label and span prompts from the
gold labels of the data set (optionally flipping a stable 10% of the label answers: a noisy
LLM). The proxy is fine-tuned on a random 5% annotated by that server, runs once over the whole
corpus, and the LLM answers every text once (the reference the guarantee is relative to, and
the LLM-only baseline). Then, per target and seed, a fresh calibration sample sets the filter
step's thresholds and the band goes to the LLM through the real client; the table shows the
agreement achieved on every text, the share the LLM saw and its tokens and cost (priced as
gpt-4.1-mini), beside proxy-only and LLM-only.

    python benchmarks/cascade.py --dataset btc     # all 9,340 BTC tweets, the demo plan
    python benchmarks/cascade.py --dataset sms     # all 5,574 SMS messages, "is this spam?"
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import zlib
from pathlib import Path

import common  # noqa: F401  (offline environment)
from common import save

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from falconer_core.annotators import LLMAnnotator, annotate_sample  # noqa: E402
from falconer_core.cascade import (  # noqa: E402
    CascadeSettings,
    ScoredProxy,
    ShardCascade,
    calibrate,
    calibration_positions,
    text_f1,
)
from falconer_core.execution import execute_plan  # noqa: E402
from falconer_core.llm import LLMSettings, OpenAIClient  # noqa: E402
from falconer_core.metamodel import Metamodel  # noqa: E402
from falconer_core.plan import Plan  # noqa: E402
from falconer_core.readers import load_sms, read_tagged, resolve_data_dir, tagged_spans  # noqa: E402
from falconer_core.training.examples import flatten, step_examples  # noqa: E402
from tests.llm_server import Annotator, Scripted, ScriptedLLMServer  # noqa: E402

PLANS = {
    "btc": Plan.from_dict({
        "steps": [
            {"name": "mentions_place", "op": "label", "instruction": "Does this tweet mention a place?"},
            {"name": "people", "op": "span", "instruction": "Extract the names of people."},
        ],
        "filter": "mentions_place", "outputs": ["people"],
    }),
    "sms": Plan.from_dict({
        "steps": [{"name": "is_spam", "op": "label", "instruction": "Is this message spam?"}], "filter": "is_spam",
    }),
}


def load(dataset: str) -> tuple[list[str], dict[str, bool], dict[str, list[str]]]:
    """Texts, the filter's gold label by text, and gold person spans by text (BTC only)."""
    texts, label, spans = [], {}, {}
    if dataset == "sms":
        for example in load_sms():
            texts.append(example.text)
            label.setdefault(example.text, example.label)
        return texts, label, spans
    for split in ("train", "dev", "test"):
        for sentence in read_tagged(resolve_data_dir() / "btc" / f"{split}.conll"):
            text, found = tagged_spans(sentence.tokens, sentence.tags)
            if not text.strip():
                continue
            texts.append(text)
            label.setdefault(text, any(kind == "LOC" for kind, _ in found))
            spans.setdefault(text, [s.text for kind, s in found if kind == "PER"])
    return texts, label, spans


class GoldLLM(Annotator):
    """Answers from gold labels; `noise` of the label answers flipped (stable per text), and
    token counts of a real model (about 4 characters a token) so costs read like one."""

    def __init__(self, label: dict[str, bool], spans: dict[str, list[str]], noise: float = 0.0) -> None:
        def label_of(text: str, _: str) -> bool:
            flip = zlib.crc32(f"noise|{text}".encode()) % 1000 < noise * 1000
            return label[text] != flip

        super().__init__(label_of, lambda text, _: spans.get(text, []))

    def __call__(self, body: dict) -> Scripted:
        reply = super().__call__(body)
        prompt = sum(len(m["content"]) for m in body["messages"])
        content = reply.body["choices"][0]["message"]["content"]
        reply.body["usage"] = {"prompt_tokens": prompt // 4, "completion_tokens": len(content) // 4 + 1,
                               "total_tokens": prompt // 4 + len(content) // 4 + 1}
        reply.body["model"] = "gpt-4.1-mini"
        return reply


def client_for(server: ScriptedLLMServer) -> OpenAIClient:
    """A client with no response cache: every text the LLM sees is a call, counted and priced."""
    return OpenAIClient(LLMSettings(backend="openai", base_url=server.url, api_key="local-gold", model="gpt-4.1-mini",
                                    max_concurrency=8, cache_dir=None))


def filter_agreement(plan: Plan, records, reference) -> float:
    step = plan.filter_steps[0]
    return sum(a.steps[step].result.value == b.steps[step].result.value for a, b in zip(records, reference)) / len(records)


def span_agreement(plan: Plan, texts, records, reference) -> float | None:
    """Mean word F1 per text of the span outputs, on texts both pass."""
    spans = [s for s in plan.steps if s.op == "span"]
    if not spans:
        return None
    values = [
        text_f1(a.steps[spans[0].name].result, b.steps[spans[0].name].result, t)
        for a, b, t in zip(records, reference, texts) if a.passed and b.passed
    ]
    return sum(values) / len(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(PLANS), default="btc")
    parser.add_argument("--targets", default="0.90,0.95,0.98")
    parser.add_argument("--noise", default="0.0,0.1", help="Shares of label answers the server flips.")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--calibration", type=int, default=1000)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--fraction", type=float, default=0.05, help="Share of the corpus annotated to train the proxy.")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--proxy", type=Path, default=None, help="Save the fine-tuned proxy here, or load it if it is there.")
    args = parser.parse_args()

    plan = PLANS[args.dataset]
    texts, label, spans = load(args.dataset)
    ids = [f"{args.dataset}-{i:05d}" for i in range(len(texts))]
    n = len(texts)
    print(f"{args.dataset}: {n:,} texts, {sum(label[t] for t in texts):,} positive for {plan.filter_steps[0]}", flush=True)
    results: dict = {"dataset": args.dataset, "n_texts": n, "delta": args.delta, "calibration": args.calibration, "runs": []}

    with ScriptedLLMServer(handler=GoldLLM(label, spans)) as clean:
        train = sorted(random.Random("proxy-sample").sample(range(n), round(args.fraction * n)))
        annotator = LLMAnnotator(client_for(clean))
        annotations = annotate_sample(plan, [ids[i] for i in train], [texts[i] for i in train], annotator, annotator="gold")
        started = time.perf_counter()
        if args.proxy and args.proxy.is_dir() and any(args.proxy.iterdir()):
            model = Metamodel.load(args.proxy)  # the same sample and seed trained it: skip the fine-tune
        else:
            model = Metamodel.from_base(None, seed=0)
            model.fine_tune(flatten(step_examples(annotations)), progress=False,
                            **({"epochs": args.epochs} if args.epochs else {}))
            if args.proxy:
                model.save(args.proxy)
        results["fine_tune_seconds"] = round(time.perf_counter() - started, 1)
        results["proxy_annotations"] = len(train)
        print(f"proxy fine-tuned on {len(train)} texts in {results['fine_tune_seconds']} s", flush=True)

        proxy = ScoredProxy(model)
        started = time.perf_counter()
        mine = execute_plan(plan, texts, proxy, ids, include_failed=True)
        results["proxy_seconds"] = round(time.perf_counter() - started, 1)
        print(f"proxy over the corpus in {results['proxy_seconds']} s", flush=True)

    for noise in [float(x) for x in args.noise.split(",")]:
        with ScriptedLLMServer(handler=GoldLLM(label, spans, noise=noise)) as server:
            everything = client_for(server)
            started = time.perf_counter()
            reference = execute_plan(plan, texts, LLMAnnotator(everything), ids, include_failed=True)
            llm_only = {"seconds": round(time.perf_counter() - started, 1), **everything.usage.as_dict()}
            proxy_only = filter_agreement(plan, mine, reference)
            row = {"noise": noise, "proxy_only_agreement": round(proxy_only, 4), "llm_only": llm_only,
                   "proxy_only_span_f1": span_agreement(plan, texts, mine, reference)}
            print(f"\nnoise {noise:.0%}: proxy alone agrees with the LLM on {proxy_only:.4f} of texts; LLM alone "
                  f"{llm_only['total_tokens']:,} tokens, ${llm_only['cost_usd']:.4f}", flush=True)
            print(f"{'target':>7} {'seed':>4} {'achieved':>9} {'certified':>9} {'LLM share':>9} {'band':>6} "
                  f"{'tokens':>9} {'cost $':>8} {'span F1':>7}")
            for target in [float(x) for x in args.targets.split(",")]:
                for seed in range(args.seeds):
                    run = cascade_run(plan, texts, ids, mine, proxy, reference, server, target, seed, args)
                    row.setdefault("cascades", []).append(run)
                    print(f"{target:>7.2f} {seed:>4} {run['achieved']:>9.4f} {run['certified']:>9.4f} "
                          f"{run['llm_share']:>9.3f} {run['band_share']:>6.3f} {run['tokens']:>9,} "
                          f"{run['cost_usd']:>8.4f} {run['span_f1'] if run['span_f1'] is None else round(run['span_f1'], 3)!s:>7}"
                          f"{'' if run['met'] else '  MISSED'}", flush=True)
            results["runs"].append(row)
    path = save(f"cascade-{args.dataset}", results)
    print(f"\nsaved {path}")


def cascade_run(plan, texts, ids, mine, proxy, reference, server, target, seed, args) -> dict:
    """One cascade at one target: calibrate on a fresh sample, route the band, score it all."""
    client = client_for(server)
    llm = LLMAnnotator(client)
    settings = CascadeSettings(target={"accuracy": target}, delta=args.delta, calibration_size=args.calibration,
                               seed=seed, llm={"name": "openai", "base_url": server.url})
    positions = calibration_positions(len(texts), args.calibration, seed)
    calibration = calibrate(plan, settings, [ids[p] for p in positions], [texts[p] for p in positions], proxy, llm,
                            positions=positions, usage=client.usage, proxy_records=[mine[p] for p in positions],
                            n_corpus=len(texts))
    route = ShardCascade(thresholds=calibration.thresholds, llm=settings.llm, known=calibration.llm_records)
    routed = route.route(plan, ids, texts, list(mine), proxy, llm=llm)
    achieved = filter_agreement(plan, routed.records, reference)
    (threshold,) = [t for t in calibration.thresholds if t.op == "label"]
    usage = client.usage.as_dict()
    return {
        "target": target, "seed": seed, "achieved": round(achieved, 4), "met": achieved >= target,
        "certified": threshold.certified, "calibration_texts": calibration.n_texts, "lower": threshold.lower, "upper": threshold.upper,
        "llm_share": round(routed.sources.count("llm") / len(texts), 4),
        "band_share": round(sum(routed.in_band) / len(texts), 4),
        "tokens": usage["total_tokens"], "cost_usd": usage["cost_usd"], "calls": usage["calls"],
        "span_f1": span_agreement(plan, texts, routed.records, reference),
    }


if __name__ == "__main__":
    main()
