"""fit_scaling.py's results.json -> findings in plain words, figures and report.md beside it; it
reads nothing else, so a report can be redrawn from a results.json alone:

    python report.py out/builtin/report/results.json [--out /tmp/rep]
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from util import fail  # noqa: E402

KIM_ORDER = ["de", "es", "zh"]   # Kim (2021)'s finding: German > Spanish > Chinese
PLOTS = {"pretrain_N": "fig2_pretrain_loss_vs_N.png",
         "pretrain_C": "fig3_pretrain_loss_vs_compute.png",
         "data": "fig4_5_loss_vs_data.png", "frac": "fig6_Df_over_De.png",
         "N": "loss_vs_N_at_fixed_Df.png", "compute": "fig7_loss_vs_compute.png"}

def name(target):
    return target.get("name") or target["label"]

def num(x, spec=".3g"):
    """x formatted, '-' where it is missing."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

def with_ci(x, ci, spec=".3g"):
    if x is None:
        return "n/a"
    return f"{x:{spec}} [{num(ci[0], spec)}, {num(ci[1], spec)}]" if ci else f"{x:{spec}}"

def law_ci(law, key, spec=".3g"):
    return with_ci(law[key], law["ci"][key], spec)

def kim(holds):
    return "holds" if holds else "does not hold"

def xy(items, x, y):
    """The x and the y values of items, for a plot."""
    return [i[x] for i in items], [i[y] for i in items]

def slope(x, y):
    """d log y / d log x by least squares."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])

# ----------------------------------------------------------------------------- findings
def finding_order(targets):
    """Kim (2021)'s German > Spanish > Chinese by each language's measured D_e/D_f (geometric
    mean over its cells): the order is clear when neighbours' 95% intervals do not overlap."""
    ranked = sorted(({**t["summary"], "name": name(t), "language": t["language"]}
                     for t in targets.values() if t["summary"]),
                    key=lambda s: s["De_over_Df"], reverse=True)
    if len(ranked) < 2:
        return None, ("Fewer than two languages have a measured D_e, so the order across "
                      "languages cannot be tested.")
    order = [s["language"] for s in ranked if s["language"] in KIM_ORDER]
    seed, cis = [lang for lang in KIM_ORDER if lang in order], [s["ci"] for s in ranked]
    clear = all(a and b and a[0] > b[1] for a, b in zip(cis, cis[1:]))
    text = ("Measured D_e/D_f (geometric mean over cells, 95% interval; below 1 = negative "
            "transfer): " + ", ".join(f"{s['name']} {with_ci(s['De_over_Df'], s['ci'], '.2f')} "
                                      f"({s['n_cells']} cells, {s['n_negative']} negative)"
                                      for s in ranked)
            + ". Observed order: " + " > ".join(s["name"] for s in ranked) + ". ")
    if len(seed) < 2:
        return None, text + "Fewer than two of German, Spanish and Chinese were measured."
    return order == seed, text + (
        f"Kim (2021)'s German > Spanish > Chinese {kim(order == seed)} at this scale; " +
        ("the intervals separate every neighbour." if clear else
         "neighbouring intervals overlap (within the uncertainty)."))

def trend(target, key):
    """alpha < 1 (D_f/D_e rises with D_f) or beta > 0 (falls with N), judged by its 95% CI."""
    law = target["law"]
    if not law["identified"][key]:
        return "unidentified"
    if not law["ci"][key]:
        return "unresolved: no bootstrap"
    wrong = [v >= 1 if key == "alpha" else v <= 0 for v in law["ci"][key]]
    return "does not hold" if all(wrong) else "unresolved" if any(wrong) else "holds"

def finding_fraction(targets):
    fitted = [(t, trend(t, "alpha"), trend(t, "beta")) for t in targets.values() if t["law"]]
    if not fitted:
        return None, "No language has a fitted transfer law: the trends are not measured."
    verdicts = {v for _, alpha, beta in fitted for v in (alpha, beta)}
    holds = False if "does not hold" in verdicts else True if verdicts == {"holds"} else None
    parts = [f"{name(t)}: beta = {law_ci(t['law'], 'beta', '.2f')} ({beta}), alpha = "
             f"{law_ci(t['law'], 'alpha', '.2f')} ({alpha})" for t, alpha, beta in fitted]
    verdict = {True: "holds for every language", False: "does not hold for at least one language",
               None: "is not resolved for every language"}[holds]
    return holds, ("D_f/D_e = 1/(1 + k D_f^(alpha-1) N^beta) falls with N when beta > 0 and rises "
                   "with D_f when alpha < 1 (Kim (2021)'s finding). " + "; ".join(parts)
                   + f". Kim (2021)'s finding {verdict}.")

def finding_compute(targets):
    cells = [c for target in targets.values() for c in target["compute"]]
    if not cells:
        return None, "No fine-tuned run has a from-scratch twin: compute is not compared."
    ratios = [c["ratio"] for c in cells if c["ratio"] is not None]
    with_pre = [c["ratio_with_pretrain"] for c in cells if c["ratio_with_pretrain"] is not None]
    fast = sum(x < 1 for x in ratios)
    holds = fast > len(cells) / 2
    return holds, (f"In {fast} of {len(cells)} cells the fine-tuned run reached its scratch twin's "
                   f"best loss with less compute than the twin" +
                   (f" (median ratio {np.median(ratios):.2f})" if ratios else "") +
                   f"; in {len(cells) - len(ratios)} it never did; {sum(x < 1 for x in with_pre)} "
                   f"of {len(with_pre)} with pre-training counted. Kim (2021)'s 'pre-trained "
                   f"models are more compute-efficient' {kim(holds)} here.")

def finding_limited(targets):
    pairs = []   # (fine-tuned, scratch) slope of log loss against log N at one D_f
    for t in targets.values():
        for D_f in sorted({p["D_f"] for p in t["points"]}):
            pair = [slope(*xy(runs, "N", "loss")) if len({r["N"] for r in runs}) > 1 else math.nan
                    for runs in ([p for p in t["points"] if p["D_f"] == D_f],
                                 [s for s in t["scratch"] if s["D"] == D_f and s["converged"]])]
            if all(map(math.isfinite, pair)):
                pairs.append(pair)
    if not pairs:
        return None, "No D_f has fine-tuned and converged scratch runs at two or more sizes."
    steeper = sum(a < b for a, b in pairs)
    holds, (finetuned, scratch) = steeper > len(pairs) / 2, zip(*pairs)
    return holds, (f"At fixed D_f, d log L / d log N was {np.mean(finetuned):.3f} fine-tuned and "
                   f"{np.mean(scratch):.3f} from scratch (mean), steeper fine-tuned in {steeper} "
                   f"of {len(pairs)} series (steep: parameter-limited). Kim (2021)'s 'fine-tuned "
                   f"models are parameter-limited, scratch models data-limited' {kim(holds)} here.")

def finding_bounds(targets):
    """What is only a bound, said as such; negative transfer named cell by cell."""
    c = {k: sum(t["counts"][k] for t in targets.values())
         for k in next(iter(targets.values()))["counts"]} if targets else {}
    if not c:
        return None, "No scratch or fine-tuned runs."
    negative = [f"{name(t)} N={p['N']:.3g} D_f={p['D_f']:.3g}" for t in targets.values()
                for p in t["points"] if "negative" in p["flags"] and p["where"] == "measured"]
    return None, (f"{c['scratch_unconverged']} of "
                  f"{c['scratch_converged'] + c['scratch_unconverged']} scratch cells did not "
                  f"converge: upper bounds, not points of the curve. Of {c['finetune']} fine-tuned "
                  f"cells, {c['finetune_measured']} have a measured D_e; {c['finetune_censored']} "
                  f"have D_e > D_max, {c['finetune_below']} D_e < D_min, {c['finetune_gap']} fell "
                  f"between scratch points more than 2x apart and {c['finetune_no_curve']} had no "
                  f"scratch curve (flagged, kept out of the law and the summary). {len(negative)} "
                  f"measured cells show negative transfer" +
                  (": " + "; ".join(negative) if negative else "") + ".")

def finding_pretrain(pretrain):
    if not pretrain:
        return None, "No finished English pre-training runs: L(N) and L(C) are not fitted."
    of_N, of_C, sizes = pretrain["L_of_N"], pretrain["L_of_C"], len(pretrain["points"])
    return None, ((f"L(N) = (N_c/N)^alpha_N gave alpha_N = {num(of_N['alpha_N'])} (R^2 = "
                   f"{num(of_N['r2'])}) over {sizes} sizes" if of_N else
                   f"Only {sizes} size, no L(N) fit") +
                  (f"; the loss-vs-compute frontier gave alpha_C = {num(of_C['alpha_C'])} (R^2 = "
                   f"{num(of_C['r2'])}). " if of_C else ". ") + "For scale, Kaplan et al. (2020) "
                  "report alpha_N = 0.076 and alpha_C = 0.050 at far larger N and C.")

def finding_forgetting(targets):
    runs = [x for target in targets.values() for x in target["forgetting"]]
    at_best = [x["rise_at_best"] for x in runs if x["rise_at_best"] is not None]
    last = [x["rise_last"] for x in runs if x["rise_last"] is not None]
    if not at_best:
        return None, ("English val loss was logged, but not at the best checkpoint." if runs else
                      "No fine-tuning run logged an English val loss: forgetting is not measured.")
    return None, (f"Over {len(runs)} fine-tunes, English val loss rose by {np.mean(at_best):.3f} "
                  f"nats/token on average by the best checkpoint (range {min(at_best):.3f} to "
                  f"{max(at_best):.3f})" +
                  (f", by {np.mean(last):.3f} by the last evaluation." if last else "."))

def finding_law(target):
    law, summary = target["law"], target["summary"]
    if not law and not summary:
        return None, f"No transfer law: {target['note']}."
    if not law:
        ci, ratio = summary["ci"], summary["De_over_Df"]
        return None, (f"No transfer law: {target['note']}. Measured D_e/D_f = "
                      f"{with_ci(ratio, ci, '.2f')} over {summary['n_cells']} cells: "
                      f"{'pre-training hurt' if ratio < 1 else 'pre-training helped'}"
                      + (", outside the uncertainty." if ci and (ci[1] < 1 or ci[0] > 1) else
                         ", within the uncertainty of no effect."))
    boot, noise = law["boot"], law["noise"]
    return None, (f"log D_t = log k + alpha log D_f + beta log N over {law['n_cells']} cells: k = "
                  f"{law_ci(law, 'k')}, alpha = {law_ci(law, 'alpha')}, beta = "
                  f"{law_ci(law, 'beta')} (in bytes k = {law_ci(law, 'k_bytes')}); "
                  f"{boot['draws']} bootstrap draws ({100 * noise['sigma_run']:.2f}% per run, "
                  f"{100 * noise['sigma_pretrain']:.2f}% per pre-trained model), {boot['failed']} "
                  f"with too few positive cells." + "".join(
                      f" {key} is unidentified (one value of {measured} measured)."
                      for key, measured in (("alpha", "D_f"), ("beta", "N"))
                      if not law["identified"][key]))

def findings(res):
    targets = res["targets"]
    items = [("Transfer across languages", finding_order(targets)),
             ("D_f/D_e against N and D_f", finding_fraction(targets)),
             ("Bounds, censoring, negative transfer", finding_bounds(targets)),
             *((f"Transfer law for {t['label']}", finding_law(t)) for t in targets.values()),
             ("Compute efficiency", finding_compute(targets)),
             ("Parameter- vs data-limited", finding_limited(targets)),
             ("English pre-training", finding_pretrain(res["pretrain"])),
             ("Forgetting", finding_forgetting(targets))]
    return [{"title": title, "holds": holds, "text": text} for title, (holds, text) in items]

# ----------------------------------------------------------------------------- report.md
def table(head, rows):
    """A markdown table; head is its column titles joined by '|'."""
    return "\n".join(["| " + head.replace("|", " | ") + " |", "|" + "---|" * len(head.split("|"))]
                     + ["| " + " | ".join(map(str, r)) + " |" for r in rows]) + "\n"

def cell(p):
    """One fine-tuned cell in the D_t grid: D_t (D_e/D_f), or the bound it is."""
    bounds = {"no_scratch_curve": "no curve", "above": f"D_e > {num(p['D_e_lower'])}",
              "below": f"D_e < {num(p['D_e_upper'])}"}
    measured = f"{num(p['D_t'])} ({num(p['De_over_Df'], '.2f')})" + "*" * (p["where"] == "gap")
    return bounds.get(p["where"], measured)

def mean_pm(x):
    return f"{x['loss']:.4f}" + (f" ± {x['std']:.4f} (n={x['n']})" if x["n"] > 1 else "")

def target_md(target):
    md, points = [f"## {target['label']}\n"], target["points"]
    if points:
        sizes, data = sorted({p["N"] for p in points}), sorted({p["D_f"] for p in points})
        cells = {(p["N"], p["D_f"]): p for p in points}
        md += ["D_t in tokens (D_e/D_f); * = D_e between scratch points more than 2x apart (a "
               "guess); D_e > or < = beyond the measured scratch points.\n",
               table("|".join(["D_f \\ N"] + [num(n) for n in sizes]),
                     [[num(d)] + [cell(cells[n, d]) if (n, d) in cells else "" for n in sizes]
                      for d in data]),
               table("runs|N|D_f|D_f bytes|loss|D_e [95%]|D_t|D_t bytes|D_e/D_f [95%]|where",
                     [[", ".join(p["runs"]), num(p["N"]), num(p["D_f"]), num(p["D_f_bytes"]),
                       mean_pm(p), with_ci(p["D_e"], p["D_e_ci"]), num(p["D_t"]),
                       num(p["D_t_bytes"]), with_ci(p["De_over_Df"], p["De_over_Df_ci"], ".2f"),
                       " ".join([p["where"]] + [f for f in p["flags"] if f != p["where"]])]
                      for p in points])]
    md += ["Scratch cells (an unconverged one is an upper bound, not fitted):\n",
           table("runs|N|D|D bytes|loss|converged",
                 [[", ".join(s["runs"]), num(s["N"]), num(s["D"]), num(s["D_bytes"]), mean_pm(s),
                   "yes" if s["converged"] else "no (upper bound)"] for s in target["scratch"]])]
    if target["compute"]:
        keys = ("N D_f C_scratch C_finetune_best C_finetune_reach ratio C_pretrain "
                "ratio_with_pretrain").split()
        md += ["Compute: FLOPs for the fine-tune to reach its scratch twin's best loss, over the "
               "twin's.\n",
               table("N|D_f|C scratch|C fine-tune best|C to reach|ratio|C pre-train|ratio with "
                     "pre-train", [[num(c[k]) for k in keys] for c in target["compute"]])]
    if target["forgetting"]:
        keys = "at_best last rise_at_best rise_last".split()
        md.append(table("run|English set|baseline (from)|at best|last|rise at best|rise last",
                        [[f["run"], f["key"], f"{num(f['baseline'], '.4f')} ({f['baseline_from']})"]
                         + [num(f[k], ".4f") for k in keys] for f in target["forgetting"]]))
    return md

def law_row(target):
    summary, law = target["summary"], target["law"]
    head = [target["label"],
            with_ci(summary["De_over_Df"], summary["ci"], ".2f") if summary else "n/a",
            f"{summary['n_cells']} ({summary['n_negative']})" if summary else "0"]
    if not law:
        return head + ["n/a"] * 5 + [target["note"] or ""]
    return head + [law_ci(law, "k"), law_ci(law, "k_bytes")] + [
        law_ci(law, k) + " (unidentified)" * (not law["identified"][k]) for k in ("alpha", "beta")
    ] + [law["n_cells"], ""]

def checks_md(checks):
    """Each check beside its grid twin; a budget check passes when the best loss moved by less than
    twice the run-to-run spread (the budget did not set the loss)."""
    md = ["## Checks (runs beside the grid, not fitted)\n",
          table("tag|run|converged|loss|grid twin|twin loss|difference|relative",
                [[c["tag"], c["run"], "yes" if c["converged"] else "no", num(c["loss"], ".4f"),
                  c["grid_run"] or "none", num(c["grid_loss"], ".4f"), num(c["diff"], "+.4f"),
                  num(c["rel_diff"], "+.2%")] for c in checks["runs"]])]
    md += [f"Run-to-run spread of {role} cells run more than once: {100 * s['sigma_log']:.2f}% of "
           f"the loss ({s['cells']} cells, {s['dof']} degrees of freedom).\n"
           for role, s in (("scratch", checks["scratch"]), ("finetune", checks["finetune"]))
           if s["sigma_log"]]
    per_run, per_model = checks["noise_used"]
    md.append(f"The bootstrap draws {100 * per_run:.2f}% per run and {100 * per_model:.2f}% per "
              f"pre-trained model (the fine-tuned spread beyond the scratch spread).\n")
    sigma = checks["sigma_run"]
    for c in checks["runs"]:
        if c["tag"].startswith("budget") and c["rel_diff"] is not None:
            verdict = ("" if not sigma else
                       ", within twice the run-to-run spread: the budget did not set the loss"
                       if abs(c["rel_diff"]) < 2 * sigma else
                       ", more than twice the run-to-run spread: the budget set the loss")
            md.append(f"{c['tag']} ({c['run']}): the best loss moved by {c['rel_diff']:+.2%} "
                      f"against its twin{verdict}.\n")
    return md

def calibration_md(rows):
    """The calibrated learning rate of each language, size and arm, and every rate's loss."""
    rates = [f"{r:g}" for r in sorted({float(r) for row in rows for r in row["losses"]})]
    return ["## Learning rates (calibration before the grid)\n",
            "Each arm's rate is its own best of those tried (loss: the mean over the calibration "
            "D_f); a chosen rate at the edge of those tried is marked *.\n",
            table("|".join(["target", "N", "arm", "chosen"] + rates),
                  [[row["target"], num(row["N"]), row["role"],
                    num(row["chosen"]) + ("*" if row["at_edge"] else "")]
                   + [num(row["losses"].get(r), ".4f") for r in rates] for row in rows])]

def reinit_md(rows):
    """The Chinese check: fresh embedding rows for the tokens pre-training did not see."""
    first = rows[0]["reinit"] or {}
    return ["## The embedding check: fine-tuning with fresh rows for unseen tokens\n",
            f"reinit_rare re-initialised the rows of {first.get('tokens', '?')} tokens whose share "
            f"of the English pre-training split is below {first.get('below', '?')} (together "
            f"{100 * first.get('share', 0):.4f}% of it): better fine-tunes than the grid's put the "
            f"negative transfer on the byte embedding, not on the language.\n",
            table("run|N|D_f|loss|grid fine-tune loss|D_e/D_f|grid D_e/D_f",
                  [[r["run"], num(r["N"]), num(r["D_f"]), num(r["loss"], ".4f"),
                    num(r["grid_loss"], ".4f"), num(r["ratio"]) + f" ({r['ratio_where']})",
                    num(r["grid_ratio"]) + f" ({r['grid_ratio_where']})"] for r in rows])]

def paired_md(paired):
    """Two languages on the same pages: the difference of log D_e/D_f and its interval."""
    (a, b), diff = paired["languages"], paired["difference"]
    md = [f"## {a} against {b} on the same pages (parallel corpora)\n"]
    if diff is None:
        return md + ["No page draw had a D_e measured in both languages.\n"]
    lo, hi = paired["ci"] or (None, None)
    verdict = ("" if lo is None else f"; {a} > {b} holds" if lo > 0 else
               f"; {b} > {a} holds" if hi < 0 else "; the order is not resolved")
    return md + [
        f"Over {paired['draws']} page draws, {a}'s D_e/D_f is {math.exp(diff):.3g} times {b}'s "
        f"(log difference {diff:+.3f}, 95% interval [{num(lo, '+.3f')}, {num(hi, '+.3f')}] "
        f"bootstrapped over the draws){verdict}.\n",
        table(f"page draw|log D_e/D_f {a} - {b}",
              [[draw, f"{d:+.3f}"] for draw, d in sorted(paired["per_draw"].items())])]

def report_md(res, found):
    targets, pretrain, checks = res["targets"], res["pretrain"], res["checks"]
    counts = ("scratch_converged scratch_unconverged finetune_measured finetune_censored "
              "finetune_below finetune_gap finetune_negative").split()
    md = [f"# nanotransfer scaling report\n\nSource: `{res['source']}`; {res['n_runs_used']} runs "
          f"used, {len(res['skipped'])} left out (see Messages). Losses are best val loss in "
          f"nats/token; D in tokens unless said; N non-embedding parameters; C training FLOPs, "
          f"Kaplan convention.\n", "## Counts\n",
          table("language|scratch converged|scratch unconverged (bounds)|fine-tuned measured|"
                "D_e > D_max|D_e < D_min|between far points|negative (measured)",
                [[t["label"]] + [t["counts"][k] for k in counts] for t in targets.values()]),
          "## Transfer: D_e/D_f measured, and the law D_t = k D_f^alpha N^beta where transfer is "
          "positive (95% intervals of a rerun)\n",
          table("language|D_e/D_f (geo. mean)|cells (negative)|k (tokens)|k (bytes)|alpha|beta|"
                "law cells|note", [law_row(t) for t in targets.values()]), "## Findings\n"]
    md += [f"**{f['title']}" + ("" if f["holds"] is None else
                                f" (Kim (2021)'s finding {kim(f['holds'])})") + f".** {f['text']}\n"
           for f in found]
    for target in targets.values():
        md += target_md(target)
    if pretrain:
        md += ["## English pre-training\n", table("runs|N|best loss|FLOPs", [
            [", ".join(p["runs"]), num(p["N"]), num(p["loss"], ".4f"), num(p["flops"])]
            for p in pretrain["points"]])]
    for key, section in (("calibration", calibration_md), ("reinit", reinit_md),
                         ("paired", paired_md)):
        if checks.get(key):
            md += section(checks[key])
    if checks["runs"]:
        md += checks_md(checks)
    corpora = {k: m or {} for k, m in res.get("corpora", {}).items()}
    md += ["## Corpora\n\nWhat the runs trained on (prepare/'s meta.json; another sha256 is "
           "another corpus).\n",
           table("dataset|train.bin sha256|val.bin sha256|sources",
                 [[k, m.get("sha256", {}).get("train", "?"), m.get("sha256", {}).get("val", "?"),
                   ", ".join(m.get("sources") or []) or "?"] for k, m in corpora.items()]),
           "## Figures\n\n" + "\n".join(f"- ![{k}]({v})" for k, v in PLOTS.items()) + "\n",
           "## Messages\n\n" + ("\n".join(f"- {m}" for m in res["messages"]) or "none") + "\n"]
    return "\n".join(md)

# ----------------------------------------------------------------------------- figures
def figure(path, title, rows, draw, tight=True):
    """A PNG of panels, a row of them per list in rows, draw(ax, item) filling each."""
    cols = max(map(len, rows))
    fig, axes = plt.subplots(len(rows), cols, figsize=(3.6 * cols, 3.0 * len(rows)), squeeze=False)
    fig.suptitle(title)
    try:   # plainly: figures are for reading, no program decides from them
        for ax_row, row in zip(axes, rows):
            for ax, item in zip(ax_row, row):
                draw(ax, item)
        if tight:
            fig.tight_layout()
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)

def say(ax, why):
    """The one panel of a figure with nothing to draw: why."""
    ax.text(0.5, 0.5, why, ha="center", va="center", wrap=True)
    ax.set_axis_off()

def colors(values):
    values = sorted(set(values))
    return {v: plt.cm.viridis(i / max(1, len(values) - 1)) for i, v in enumerate(values)}

def draw_data_panel(ax, panel):
    """Figs 4-5 at one size: converged scratch (o) joined by the monotone curve D_e is read off;
    unconverged scratch as upper bounds (v); fine-tuned (s) and the law (dashed); D_t as a dotted
    line D_f -> D_e (red: positive, blue: negative; faint where D_e is not measured)."""
    target, n, first = panel
    scratch = [s for s in target["scratch"] if s["N"] == n]
    finetuned = [p for p in target["points"] if p["N"] == n]
    for converged, style in ((True, dict(c="k", marker="o", label="scratch (converged)")),
                             (False, dict(facecolors="none", edgecolors="k", marker="v",
                                          label="scratch unconverged (upper bound)"))):
        ax.scatter(*xy([s for s in scratch if s["converged"] == converged], "D", "loss"), **style)
    ax.scatter(*xy(finetuned, "D_f", "loss"), c="C3", marker="s", label="fine-tuned")
    lines = target["curves"].get(f"{n:.6g}")
    if lines:
        ax.plot(*np.array(lines["scratch"]).T, "k-", lw=0.8, label="scratch, monotone")
        if lines["law"]:
            ax.plot(*np.array(lines["law"]).T, "C3--", lw=0.8, label="law")
    for p in finetuned:
        if p["D_e"] and math.isfinite(p["D_e"]):
            ax.plot([p["D_f"], p["D_e"]], [p["loss"]] * 2, ":", c="C3" if p["D_t"] > 0 else "C0",
                    lw=0.8, alpha=1.0 if p["where"] == "measured" else 0.4)
    ax.set(xscale="log", title=f"{target['label']}  N={n:.3g}", xlabel="D (tokens)",
           ylabel="loss (nats/token)")
    if first:
        ax.legend(fontsize=5)

def finish(ax, target):
    """A language's panel in a figure of one panel per language."""
    ax.set_title(target["label"])
    ax.legend(fontsize=5)
    ax.xaxis.set_minor_formatter(plt.NullFormatter())   # minor labels crowd a short log axis

def draw_fraction(ax, target):
    """Fig 6: per-cell D_f/D_e against D_f with its 95% interval, one colour per size, and the
    law's line; hollow = D_e not measured (beyond or between far scratch points)."""
    color, law = colors(p["N"] for p in target["points"]), target["law"]
    for n in color:
        for measured in (True, False):
            cells = [p for p in target["points"] if p["N"] == n and p["De_over_Df"]
                     and (p["where"] == "measured") == measured]
            fraction = [1 / p["De_over_Df"] for p in cells]
            ci = [p["De_over_Df_ci"] or (p["De_over_Df"],) * 2 for p in cells]
            yerr = [[max(0, f - 1 / hi) for f, (_, hi) in zip(fraction, ci)],
                    [max(0, 1 / lo - f) for f, (lo, _) in zip(fraction, ci)]]
            if cells:
                ax.errorbar([p["D_f"] for p in cells], fraction, yerr=yerr, fmt="o", c=color[n],
                            mfc=None if measured else "none", ms=4, lw=0.8,
                            label=f"N={n:.3g}" if measured else None)
        if law:
            D_f = np.geomspace(*law["D_f_range"], 50)
            ax.plot(D_f, 1 / (1 + law["k"] * D_f ** (law["alpha"] - 1) * n ** law["beta"]), "-",
                    c=color[n], lw=0.8)
    ax.axhline(1, c="gray", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="D_f (tokens)",
           ylabel="D_f / D_e  (hollow: not measured)")
    finish(ax, target)

def draw_loss_vs_N(ax, target):
    """Loss against N at fixed D_f: flat = data-limited, sloped = parameter-limited."""
    scratch_data = [s["D"] for s in target["scratch"]]
    color = colors([p["D_f"] for p in target["points"]] + scratch_data)
    for d in color:
        for runs, key, style, label in ((target["scratch"], "D", "o-", "scratch"),
                                        (target["points"], "D_f", "s--", "fine-tuned")):
            runs = sorted((r for r in runs if r[key] == d), key=lambda r: r["N"])
            shown = label == "scratch" or d not in scratch_data  # one label a D
            if runs:
                ax.plot(*xy(runs, "N", "loss"), style, c=color[d],
                        label=f"D={d:.3g}" if shown else None)
    ax.set(xscale="log", xlabel="N (non-embedding params)", ylabel="val loss (nats/token)")
    finish(ax, target)

def draw_compute(ax, target):
    """Fig 7 at the largest size with twins: loss against compute; dotted adds pre-training."""
    n = max(c["N"] for c in target["compute"])
    twins = [c for c in target["compute"] if c["N"] == n]
    color = colors(c["D_f"] for c in twins)
    for c in twins:
        for curve, style, label in ((c["curve_scratch"], "-", "scratch"),
                                    (c["curve_finetune"], "--", "fine-tuned")):
            if curve:
                flops, loss = np.array(curve).T
                line = dict(c=color[c["D_f"]], lw=1)
                ax.plot(flops, loss, style, label=f"{label} D={c['D_f']:.3g}", **line)
                if label == "fine-tuned" and c["C_pretrain"]:
                    ax.plot(flops + c["C_pretrain"], loss, ":", **line)
    ax.set(xscale="log", xlabel="training FLOPs (Kaplan)", ylabel="val loss (nats/token)",
           title=f"N={n:.3g}")
    finish(ax, target)

def draw_pretrain_N(ax, pretrain):
    sizes, losses = xy(pretrain["points"], "N", "loss")
    ax.scatter(sizes, losses, c="k")
    law = pretrain["L_of_N"]
    if law and law["N_c"]:
        n = np.geomspace(min(sizes), max(sizes), 50)
        ax.plot(n, (law["N_c"] / n) ** law["alpha_N"], "C3-", label=f"alpha_N={law['alpha_N']:.3f}")
        ax.legend()
    ax.set(xscale="log", yscale="log", xlabel="N (non-embedding params)", ylabel="best val loss")

def draw_pretrain_C(ax, pretrain):
    color = colors(p["N"] for p in pretrain["points"])
    for p in pretrain["points"]:
        if p["curve"]:
            ax.plot(*np.array(p["curve"]).T, c=color[p["N"]], lw=1, label=f"N={p['N']:.3g}")
    if pretrain["frontier"]:
        ax.plot(*xy(pretrain["frontier"], "flops", "loss"), "k--", lw=1, label="frontier")
    ax.set(xscale="log", yscale="log", xlabel="training FLOPs (Kaplan)", ylabel="val loss")
    ax.legend(fontsize=6)

def plots(res, out):
    targets, pretrain = res["targets"], res["pretrain"]
    path = {k: os.path.join(out, v) for k, v in PLOTS.items()}
    for key, what, fig_no, draw in (("pretrain_N", "loss vs N", 2, draw_pretrain_N),
                                    ("pretrain_C", "loss vs compute", 3, draw_pretrain_C)):
        if pretrain:
            figure(path[key], f"English pre-training: {what} (Fig {fig_no})", [[pretrain]], draw,
                   tight=False)
        else:
            figure(path[key], f"Pre-training {what}", [["no finished pre-training runs"]], say,
                   tight=False)
    sizes = [sorted({p["N"] for p in t["scratch"] + t["points"]}) for t in targets.values()]
    rows = [[(t, n, n == row[0]) for n in row] for t, row in zip(targets.values(), sizes) if row]
    if rows:
        figure(path["data"], "Loss vs data: scratch o (v = unconverged bound), fine-tuned s, "
               "arrows = censored (D_e > D_max)", rows, draw_data_panel)
    else:
        figure(path["data"], "Loss vs D", [["no scratch or fine-tuned runs"]], say, tight=False)
    for key, title, draw, has_data in (
            ("frac", "D_f/D_e vs D_f (Fig 6): cells with 95% intervals, lines from the law; above "
             "1 = negative", draw_fraction, lambda t: any(p["De_over_Df"] for p in t["points"])),
            ("N", "Loss vs N at fixed D (o- scratch, s-- fine-tuned)", draw_loss_vs_N,
             lambda t: t["points"] or t["scratch"]),
            ("compute", "Loss vs compute (Fig 7): - scratch, -- fine-tuned, : plus pre-training",
             draw_compute, lambda t: t["compute"])):
        row = [t for t in targets.values() if has_data(t)]
        if row:
            figure(path[key], title, [row], draw)
        else:
            figure(path[key], title, [["no data for this figure"]], say, tight=False)

# ----------------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Write report.md and figures from fit_scaling.py's results.json.")
    parser.add_argument("results", help="a results.json written by fit_scaling.py")
    parser.add_argument("--out", help="output directory (default: the directory of results.json)")
    args = parser.parse_args(argv)
    try:
        with open(args.results) as f:
            res = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read {args.results} ({e}): run fit_scaling.py on the sweep directory first")
    if not isinstance(res, dict) or res.get("schema") != 1:  # another layout would mislead
        fail(f"{args.results} has schema {res.get('schema') if isinstance(res, dict) else None!r}"
             f", this report reads schema 1: run this version's fit_scaling.py again")
    out = args.out or os.path.dirname(os.path.abspath(args.results))
    md_path = os.path.join(out, "report.md")
    try:
        os.makedirs(out, exist_ok=True)
        found = findings(res)
        plots(res, out)
        with open(md_path, "w") as f:   # for reading: no program decides from it
            f.write(report_md(res, found))
    except OSError as e:
        if os.path.exists(md_path):   # half-written: gone rather than misleading
            os.remove(md_path)
        fail(f"cannot write to {out} ({e.strerror or e}): free space in it or choose another "
             f"--out directory")
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        fail(f"{args.results} is not a results.json as fit_scaling.py writes it "
             f"({type(e).__name__}: {e}): run fit_scaling.py again")
    for f in found:
        print(f"- {f['title']}: {f['text']}")
    print(f"wrote {out}/report.md and {len(PLOTS)} figures")
    return 0

if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # redirected (a job's log), each line at once
    sys.exit(main())
