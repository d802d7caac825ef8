"""Planning benchmark: how often does a planner write the plan a careful engineer would?

Cases live in `planning_cases.yaml` (24 requests: basic, query-based, multi-entity and
multi-step, over reviews, TED talks, SMS, tweets and biomedical abstracts). A predicted plan
matches its reference when, under the best one-to-one pairing of their steps:

- the steps agree in op (label/span) and nesting (top level or for_each depth),
- paired instructions share content words (loose: wording may differ, the subject may not),
- the filters are the same boolean function (compared on every truth assignment),
- every for_each points at the paired step, and
- every reference output is produced.

Usage:
    python benchmarks/planning.py --local --per-kind 1          # embedded SmolLM2, CPU
    python benchmarks/planning.py --base-url http://localhost:8000/v1 --model qwen2.5-7b
    python benchmarks/planning.py --model gpt-4.1               # OPENAI_API_KEY from the env
    python benchmarks/planning.py --self-check                  # references against themselves
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from falconer_core.errors import FalconerError, LLMError, PlanError
from falconer_core.plan import Plan, evaluate_condition

CASES_FILE = Path(__file__).with_name("planning_cases.yaml")
KINDS = ("basic", "query-based", "multi-entity", "multi-step")
MIN_OVERLAP = 0.5
_STOPWORDS = frozenset(
    """a an the this that these those is are was were be been does do did of in on at to for from
    by with about and or not it its their them they he she his her what which who whom whose how
    extract find get list retrieve return give identify determine decide mentioned mention
    mentions each every all any text texts message tweet talk review abstract name names
    please whether there if than then only""".split()
)

# Words a paraphrase swaps freely; mapped to one form before comparing.
_CANONICAL = {"people": "person", "persons": "person", "organisation": "organization",
              "organisations": "organization", "criticise": "criticize", "criticises": "criticize"}


@dataclass(frozen=True)
class Case:
    """One request and its reference plan."""

    id: str
    kind: str
    domain: str
    instruction: str
    plan: Plan
    output_spec: tuple[str, ...] | None = None


@dataclass
class Comparison:
    """Whether a predicted plan matches the reference, and why not."""

    match: bool
    reasons: list[str] = field(default_factory=list)
    pairing: dict[str, str] = field(default_factory=dict)


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    """Read and validate the cases file (a broken reference is a bug in the benchmark)."""
    raw = yaml.safe_load(path.read_text("utf-8"))
    cases = []
    for item in raw["cases"]:
        spec = item.get("output_spec")
        cases.append(Case(item["id"], item["kind"], item["domain"], item["instruction"],
                          Plan.from_dict(item["plan"]), tuple(spec) if spec else None))
    return cases


def content_words(instruction: str) -> set[str]:
    """Lower-cased content words, placeholders removed, synonyms unified, plural 's' stripped."""
    text = re.sub(r"\{[^}]*\}", " ", instruction.lower())
    words = [_CANONICAL.get(w, w) for w in re.findall(r"[a-z0-9]+", text)]
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in _STOPWORDS}


def instruction_overlap(a: str, b: str) -> float:
    """Overlap coefficient of content words: 1.0 when one's words all appear in the other."""
    left, right = content_words(a), content_words(b)
    if not left or not right:
        return 1.0 if left == right else 0.0
    return len(left & right) / min(len(left), len(right))


def _signature(plan: Plan, name: str) -> tuple[str, int]:
    return plan.step(name).op, len(plan.chain(name))


def _pairings(pred: Plan, ref: Plan) -> list[dict[str, str]]:
    """Every bijection pred step -> ref step that keeps op and nesting depth."""
    groups: dict[tuple[str, int], tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for step in pred.steps:
        groups[_signature(pred, step.name)][0].append(step.name)
    for step in ref.steps:
        groups[_signature(ref, step.name)][1].append(step.name)
    if any(len(p) != len(r) for p, r in groups.values()):
        return []
    per_group = [[dict(zip(p, perm)) for perm in itertools.permutations(r)] for p, r in groups.values()]
    return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*per_group)]


def _filters_equal(pred: Plan, ref: Plan, pairing: Mapping[str, str]) -> bool:
    names = sorted(set(ref.filter_steps) | {pairing[n] for n in pred.filter_steps})
    for values in itertools.product((False, True), repeat=len(names)):
        truth = dict(zip(names, values))
        want = evaluate_condition(ref.filter, truth) if ref.filter is not None else True
        got = (
            evaluate_condition(pred.filter, {n: truth[pairing[n]] for n in pred.filter_steps})
            if pred.filter is not None else True
        )
        if want != got:
            return False
    return True


def _problems(pred: Plan, ref: Plan, pairing: Mapping[str, str]) -> list[str]:
    problems = []
    for name, target in pairing.items():
        overlap = instruction_overlap(pred.step(name).instruction, ref.step(target).instruction)
        if overlap < MIN_OVERLAP:
            problems.append(f"step {name!r} asks {pred.step(name).instruction!r}, expected like "
                            f"{ref.step(target).instruction!r}")
        parent = pred.step(name).for_each
        if parent is not None and pairing[parent] != ref.step(target).for_each:
            problems.append(f"step {name!r} runs for each {parent!r}, expected for each {ref.step(target).for_each!r}")
    if not _filters_equal(pred, ref, pairing):
        shown = pred.to_dict().get("filter")
        problems.append(f"filter {json.dumps(shown)} is not the logic of {json.dumps(ref.to_dict().get('filter'))}")
    produced = {pairing[o.step] for o in pred.outputs or []}
    missing = [o.step for o in ref.outputs or [] if o.step not in produced]
    if missing:
        problems.append(f"outputs do not include {missing}")
    return problems


def compare_plans(pred: Plan, ref: Plan) -> Comparison:
    """Structural equivalence under the best step pairing (fewest problems wins)."""
    pairings = _pairings(pred, ref)
    if not pairings:
        def shape(plan: Plan) -> list[str]:
            return sorted(f"{op}@{depth}" for op, depth in (_signature(plan, s.name) for s in plan.steps))

        return Comparison(False, [f"steps {shape(pred)} differ from the reference's {shape(ref)}"])
    best = min(((p, _problems(pred, ref, p)) for p in pairings), key=lambda pair: len(pair[1]))
    return Comparison(not best[1], best[1], best[0])


@dataclass
class Outcome:
    """One case's result."""

    case: str
    kind: str
    status: str  # match | mismatch | invalid | llm-error
    seconds: float
    reasons: list[str]
    plan: dict[str, Any] | None = None


def run_case(case: Case, client: Any, max_repairs: int) -> Outcome:
    """Plan one request and compare it with the reference."""
    from falconer_core.plan.planner import plan_instruction

    started = time.perf_counter()
    try:
        plan = plan_instruction(case.instruction, client, output_spec=case.output_spec, max_repairs=max_repairs)
    except PlanError as exc:
        return Outcome(case.id, case.kind, "invalid", time.perf_counter() - started,
                       list(getattr(exc, "problems", [str(exc)])))
    except LLMError as exc:
        return Outcome(case.id, case.kind, "llm-error", time.perf_counter() - started, [str(exc)])
    comparison = compare_plans(plan, case.plan)
    return Outcome(case.id, case.kind, "match" if comparison.match else "mismatch",
                   time.perf_counter() - started, comparison.reasons, plan.to_dict())


def summarize(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float]]:
    """Accuracy per kind and overall."""
    table: dict[str, dict[str, float]] = {}
    for kind in [*KINDS, "all"]:
        chosen = [o for o in outcomes if kind in ("all", o.kind)]
        if chosen:
            hits = sum(o.status == "match" for o in chosen)
            table[kind] = {"cases": len(chosen), "matches": hits, "accuracy": hits / len(chosen),
                           "valid": sum(o.status in ("match", "mismatch") for o in chosen) / len(chosen)}
    return table


def select(cases: Sequence[Case], per_kind: int | None, ids: Sequence[str] | None) -> list[Case]:
    """The cases to run: named ones, or the first `per_kind` of each kind, or all."""
    if ids:
        known = {c.id: c for c in cases}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise SystemExit(f"unknown case ids {unknown}; see {CASES_FILE.name}")
        return [known[i] for i in ids]
    if per_kind is None:
        return list(cases)
    return [c for kind in KINDS for c in [c for c in cases if c.kind == kind][:per_kind]]


def make_client(args: argparse.Namespace) -> Any:
    from falconer_core.llm import LLMSettings, LocalLLM, OpenAIClient

    overrides: dict[str, Any] = {}
    if args.cache_dir:
        overrides["cache_dir"] = Path(args.cache_dir)
    if args.local:
        return LocalLLM(LLMSettings(backend="local", json_retries=1, **overrides), max_new_tokens=args.max_new_tokens)
    if args.base_url:
        overrides["base_url"] = args.base_url
    if args.model:
        overrides["model"] = args.model
    return OpenAIClient(LLMSettings(backend="openai", **overrides))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="plan with the embedded SmolLM2 (CPU, slow, weak)")
    where.add_argument("--self-check", action="store_true", help="score the references against themselves")
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL or OpenAI)")
    parser.add_argument("--model", help="model name at the endpoint (default: FALCONER_LLM_MODEL)")
    parser.add_argument("--per-kind", type=int, help="run only the first N cases of each kind")
    parser.add_argument("--cases", help="comma-separated case ids to run")
    parser.add_argument("--max-repairs", type=int, default=2, help="repair rounds after an invalid plan")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="LocalLLM generation cap")
    parser.add_argument("--cache-dir", help="response cache folder (default .falconer/llm-cache)")
    parser.add_argument("--out", help="write per-case results as JSON here")
    args = parser.parse_args(argv)

    cases = select(load_cases(), args.per_kind, args.cases.split(",") if args.cases else None)
    outcomes: list[Outcome] = []
    client = None if args.self_check else make_client(args)
    for case in cases:
        if client is None:
            comparison = compare_plans(case.plan, case.plan)
            outcome = Outcome(case.id, case.kind, "match" if comparison.match else "mismatch", 0.0, comparison.reasons)
        else:
            try:
                outcome = run_case(case, client, args.max_repairs)
            except FalconerError as exc:  # configuration problems: stop, they affect every case
                print(f"error: {exc}", file=sys.stderr)
                return 2
        outcomes.append(outcome)
        print(f"{outcome.status:<9} {outcome.seconds:6.1f}s  {case.kind:<12} {case.id}"
              + (f"  -- {outcome.reasons[0][:140]}" if outcome.reasons else ""), flush=True)

    table = summarize(outcomes)
    print("\nkind          cases  valid  accuracy")
    for kind, row in table.items():
        print(f"{kind:<13} {row['cases']:>5}  {row['valid']:>5.2f}  {row['accuracy']:>8.2f}")
    if client is not None:
        print(f"\nmodel: {client.model}  usage: {json.dumps(client.usage.as_dict())}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({
            "model": getattr(client, "model", "reference"),
            "summary": table,
            "cases": [o.__dict__ for o in outcomes],
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
