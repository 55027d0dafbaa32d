"""table.md: a grid's results as Markdown tables (mean ± sd over seeds), with the command, the
machine and the budget, and a reading of the paper's key question."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from vidcap.apps.ablation.results import ATTRIBUTES, COCO
from vidcap.evaluation.shapes import AXES


def _ms(stat: Mapping[str, Any] | None, digits: int = 1) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    if stat.get("sd") is not None:
        text += f" ± {stat['sd']:.{digits}f}"
    return text


def _steps(stat: Mapping[str, Any] | None) -> str:
    if not stat:
        return "–"
    if not stat.get("reached"):
        return f"not reached (0/{stat.get('seeds', 0)})"
    return f"{stat['mean']:.0f} ({stat['reached']}/{stat['seeds']})"


def _difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[str, str]:
    """(Δ text, reading) of a − b, with the standard error of the difference of two means."""
    if a.get("mean") is None or b.get("mean") is None:
        return "–", "–"
    delta = a["mean"] - b["mean"]
    if a.get("sd") is None or b.get("sd") is None:
        return f"{delta:+.1f}", "one seed: no spread to judge by"
    se = math.sqrt(a["sd"] ** 2 / a["n"] + b["sd"] ** 2 / b["n"])
    if se == 0:
        reading = "equal" if delta == 0 else ("helps" if delta > 0 else "hurts")
    elif abs(delta) > 2 * se:
        reading = "helps" if delta > 0 else "hurts"
    else:
        reading = "no clear difference (|Δ| ≤ 2 se)"
    return f"{delta:+.1f} ± {se:.1f}", reading


def _header(results: Mapping[str, Any]) -> list[str]:
    """Title, command, machine, budget, seeds, date and manifest."""
    m, b = results["machine"], results["budget"]
    lines = [f"# Ablations: {results['config']}", ""]
    if results.get("command"):
        lines += ["Command:", "", "```", results["command"], "```", ""]
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    lines += [
        f"- Machine: {m['cores']} cores ({m['cpu']}){gpu}; {m['jobs']} cell(s) at a time, "
        f"{m['torch_threads']} torch thread(s) each; torch {m['torch']}, device {m['device']}.",
        f"- Budget per cell and seed: align stage {b['align_steps']} steps (batch "
        f"{b['align_batch']}), caption stage {b['caption_steps']} steps (batch "
        f"{b['caption_batch']}); cells without the align stage train the caption stage for "
        f"{b['no_align_caption_steps']} steps ("
        + ("the align steps added: the same optimiser steps in all"
           if b["no_align_budget"] == "total" else "align steps not added") + "). "
        f"Precision {b['precision']}. Validation every {b['eval_every'] or 'end of'} "
        f"step(s) on {b['eval_max_videos'] or 'all'} videos; the best-on-validation weights are "
        "scored on the test split with greedy decoding.",
        f"- Seeds 0..{b['seeds'] - 1} (`train.seed`: weights, data order, caption draws); every "
        "figure is mean ± sample sd over seeds, in % (coco scores x100); \"train s\": wall "
        "seconds of training (of its last part, for a resumed run).",
        f"- Written {results['written']}. Manifest: `{results['manifest']}`.",
    ]
    if results.get("missing"):
        lines.append(f"- Not finished (left out of the means): {', '.join(results['missing'])}.")
    return lines + [""]


def _key_question(cells: Mapping[str, Any], all_taus: Sequence[int]) -> list[str]:
    """Does the contrastive stage help on held-out pairs (and on test CIDEr), per tau?"""
    taus = [t for t in all_taus if f"align-tau{t}" in cells and f"noalign-tau{t}" in cells]
    if not taus:
        return []
    lines = ["## Does the contrastive stage help on held-out pairs?", "",
             "Held-out pairs are (colour, shape) compositions never seen in training. "
             "Δ = on − off ± its standard error; \"helps\"/\"hurts\" when |Δ| > 2 se.", "",
             "| τ | held-out all-3, align on | align off | Δ | reading | test CIDEr, on | off "
             "| Δ | reading |", "|---|---|---|---|---|---|---|---|---|"]
    for tau in taus:
        on = cells[f"align-tau{tau}"]["summary"]
        off = cells[f"noalign-tau{tau}"]["summary"]
        ho_on, ho_off = on.get("held_out.all", {}), off.get("held_out.all", {})
        c_on, c_off = on.get("CIDEr", {}), off.get("CIDEr", {})
        d1, r1 = _difference(ho_on, ho_off)
        d2, r2 = _difference(c_on, c_off)
        lines.append(f"| {tau} | {_ms(ho_on)} | {_ms(ho_off)} | {d1} | {r1} | {_ms(c_on)} "
                     f"| {_ms(c_off)} | {d2} | {r2} |")
    return lines + [""]


def _comparisons(results: Mapping[str, Any], target: float | None) -> list[str]:
    """Table IV, Table V and the cells beyond the paper, where there is something to compare."""
    cells, base = results["cells"], f"align-tau{results['base_tau']}"
    groups = [
        ("Table IV: contrastive stage × τ",
         [f"{p}-tau{t}" for p in ("align", "noalign") for t in results["taus"]]),
        ("Table V: mapper", [base, "mlp"]),
        ("Beyond the paper", [base, "space-only", "tokens", "shuffled"]),
    ]
    lines: list[str] = []
    for title, names in groups:
        names = [n for n in names if n in cells]
        if len(names) < 2:  # nothing to compare; the last table has every cell
            continue
        lines += [f"## {title}", ""] + _score_table(cells, names, target) + [""]
    return lines


def _directions(cells: Mapping[str, Any], base_tau: int) -> list[str]:
    """Motion direction per axis: is the order of frames used?"""
    order = [n for n in (f"align-tau{base_tau}", "shuffled", "space-only") if n in cells]
    order += [n for n in cells if n not in order]
    if not any(cells[n]["summary"].get("direction.all.left/right", {}).get("n") for n in order):
        return []
    lines = ["## Motion direction: is frame order used?", "",
             "Of the objects whose motion lies on an axis and whose caption names a motion "
             "on that axis, the % named in the right direction (chance: 50). Motion (seen) "
             "is the plain attribute accuracy.", "",
             "| cell | motion, seen | left vs right | up vs down | grows vs shrinks |",
             "|---|---|---|---|---|"]
    for name in order:
        s = cells[name]["summary"]
        lines.append(f"| {name} | {_ms(s.get('seen.motion'))} | "
                     + " | ".join(_ms(s.get(f"direction.all.{axis}")) for axis in AXES) + " |")
    return lines + [""]


def format_markdown(results: Mapping[str, Any]) -> str:
    """The whole table.md: header (command, machine, budget), the key question, Tables IV and V,
    the controls, motion directions, and every cell in full."""
    cells: Mapping[str, Any] = results["cells"]
    target = results.get("target_cider")
    lines = (_header(results) + _key_question(cells, results["taus"])
             + _comparisons(results, target) + _directions(cells, results["base_tau"])
             + ["## Every cell", ""] + _score_table(cells, list(cells), target, with_label=True))
    return "\n".join(lines) + "\n"


def _score_table(cells: Mapping[str, Any], names: Sequence[str], target: float | None, *,
                 with_label: bool = False) -> list[str]:
    has_attributes = any("seen.all" in cells[n]["summary"] for n in names)
    head = ["cell"] + (["what"] if with_label else []) + ["BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
    if has_attributes:
        head += [f"{g} {k}" for g in ("seen", "held-out") for k in ATTRIBUTES]
    if target is not None:
        head.append(f"steps to val CIDEr ≥ {target:g}")
    head += ["seeds", "train s"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        s = cells[name]["summary"]
        row = [name] + ([cells[name]["label"]] if with_label else [])
        row += [_ms(s.get(k)) for k in COCO]
        if has_attributes:
            row += [_ms(s.get(f"{g}.{k}")) for g in ("seen", "held_out") for k in ATTRIBUTES]
        if target is not None:
            row.append(_steps(s.get("steps_to_target")))
        row += [str(len(cells[name]["seeds"])), _ms(s.get("train_seconds"), 0)]
        rows.append("| " + " | ".join(row) + " |")
    return rows
