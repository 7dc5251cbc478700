"""fit_scaling.py's results.json -> findings in plain words, figures and report.md beside it; it
reads nothing else and imports nothing of the project, so a results.json alone redraws a report:

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

KIM_ORDER = ["de", "es", "zh"]   # Kim (2021)'s finding: German > Spanish > Chinese
PLOTS = {"pretrain_N": "fig2_pretrain_loss_vs_N.png",
         "pretrain_C": "fig3_pretrain_loss_vs_compute.png",
         "data": "fig4_5_loss_vs_data.png", "frac": "fig6_Df_over_De.png",
         "N": "loss_vs_N_at_fixed_Df.png", "compute": "fig7_loss_vs_compute.png"}

def fail(msg):  # util.fail's one line and exit status 1, without importing the project
    sys.exit(f"error: {msg}")

def num(x, spec=".3g"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

def with_ci(x, ci, spec=".3g"):
    if x is None:
        return "n/a"
    return f"{x:{spec}} [{num(ci[0], spec)}, {num(ci[1], spec)}]" if ci else f"{x:{spec}}"

def ratio(summary):   # a language's D_e/D_f: the geometric mean over its measured cells
    return with_ci(summary["De_over_Df"], summary["ci"], ".2f")

def kim(holds):
    return "holds" if holds else "does not hold"

def xy(items, x, y):
    return [i[x] for i in items], [i[y] for i in items]

def every(targets, key):
    return [x for t in targets.values() for x in t[key]]

# ----------------------------------------------------------------------------- findings
def finding_order(targets):
    ranked = sorted((t for t in targets.values() if t["summary"]),
                    key=lambda t: t["summary"]["De_over_Df"], reverse=True)
    order = [t["language"] for t in ranked if t["language"] in KIM_ORDER]
    if len(order) < 2:
        return None, "Fewer than two of German, Spanish and Chinese have a measured D_e."
    holds, cis = order == [x for x in KIM_ORDER if x in order], [t["summary"]["ci"] for t in ranked]
    apart = all(a and b and a[0] > b[1] for a, b in zip(cis, cis[1:]))
    names = [t.get("name") or t["label"] for t in ranked]
    return holds, (f"Observed {' > '.join(names)} (D_e/D_f " + ", ".join(
        f"{who} {ratio(t['summary'])}" for who, t in zip(names, ranked)) + "). Kim (2021)'s German "
        f"> Spanish > Chinese {kim(holds)} at this scale; neighbouring intervals "
        f"{'never overlap' if apart else 'overlap'}.")

def trend(law, key):
    """alpha < 1 or beta > 0 by a rerun's 95% interval (sqrt 2 wider than the estimate's)."""
    if not law["identified"][key]:
        return f"unidentified: one {'D_f' if key == 'alpha' else 'N'} measured"
    ci = law["ci"][key] or (-math.inf, math.inf)   # no bootstrap: unresolved
    wrong = [v >= 1 if key == "alpha" else v <= 0 for v in ci]
    return "does not hold" if all(wrong) else "unresolved" if any(wrong) else "holds"

def finding_fraction(targets):
    verdicts = {trend(t["law"], k) for t in targets.values() if t["law"] for k in ("alpha", "beta")}
    if not verdicts:
        return None, "No language has a fitted transfer law: the trends are not measured."
    holds = False if "does not hold" in verdicts else True if verdicts == {"holds"} else None
    return holds, ("Kim (2021): D_f/D_e = 1/(1 + k D_f^(alpha-1) N^beta) falls with N (beta > 0) "
                   "and rises with D_f (alpha < 1); the Transfer table judges each by a "
                   "rerun's 95% interval" + (", not resolved for every language." if holds is None
                                             else "."))

def finding_bounds(targets):
    keys = ("scratch_converged", "scratch_unconverged", "finetune", "finetune_measured")
    converged, unconverged, finetuned, measured = (sum(t["counts"][k] for t in targets.values())
                                                   for k in keys)
    negative = sum("negative" in p["flags"] and p["where"] == "measured"
                   for p in every(targets, "points"))
    return None, (f"{unconverged} of {converged + unconverged} scratch cells did not converge: "
                  f"upper bounds, not points of the curve. {measured} of {finetuned} fine-tuned "
                  f"cells have a measured D_e, {negative} of them with negative transfer; the rest "
                  f"are bounds or guesses, flagged and kept out of the law and the summary.")

def finding_law(target):   # a language without a law: did pre-training help or hurt?
    if not target["summary"]:
        return None, f"No transfer law: {target['note']}."
    low, high = target["summary"]["ci"] or (1, 1)
    return None, (f"No transfer law (see its note above); pre-training "
                  f"{'hurt' if target['summary']['De_over_Df'] < 1 else 'helped'}, " +
                  ("outside the uncertainty." if high < 1 or low > 1 else
                   "within the uncertainty of no effect."))

def finding_compute(targets):
    cells = every(targets, "compute")
    if not cells:
        return None, "No fine-tuned run has a from-scratch twin: compute is not compared."
    ratios = [c["ratio"] for c in cells if c["ratio"] is not None]
    with_pre = [c["ratio_with_pretrain"] for c in cells if c["ratio_with_pretrain"] is not None]
    fast = sum(x < 1 for x in ratios)
    return fast > len(cells) / 2, (
        f"Kim (2021): pre-trained models are more compute-efficient. The fine-tune reached its "
        f"scratch twin's best loss on less compute in {fast} of {len(cells)} cells" +
        (f" (median ratio {np.median(ratios):.2f})" if ratios else "") + f", never in "
        f"{len(cells) - len(ratios)}; counting pre-training, in {sum(x < 1 for x in with_pre)} "
        f"of {len(with_pre)}.")

def finding_limited(targets):
    pairs = []   # (fine-tuned, scratch) d log L / d log N at one D_f
    for t in targets.values():
        for D_f in sorted({p["D_f"] for p in t["points"]}):
            series = ([p for p in t["points"] if p["D_f"] == D_f],
                      [s for s in t["scratch"] if s["D"] == D_f and s["converged"]])
            if all(len({r["N"] for r in runs}) > 1 for runs in series):
                pairs.append([np.polyfit(*np.log(xy(runs, "N", "loss")), 1)[0] for runs in series])
    if not pairs:
        return None, "No D_f has fine-tuned and converged scratch runs at two or more sizes."
    steeper, (finetuned, scratch) = int(sum(a < b for a, b in pairs)), zip(*pairs)
    return steeper > len(pairs) / 2, (
        f"Kim (2021): fine-tuned models are parameter-limited, scratch models data-limited. At "
        f"fixed D_f, d log L / d log N averaged {np.mean(finetuned):.3f} fine-tuned and "
        f"{np.mean(scratch):.3f} from scratch, steeper fine-tuned in {steeper} of {len(pairs)} "
        f"series.")

def finding_pretrain(pretrain):
    if not pretrain:
        return None, "No finished English pre-training runs: L(N) and L(C) are not fitted."
    of_N, of_C, sizes = pretrain["L_of_N"], pretrain["L_of_C"], len(pretrain["points"])
    return None, ((f"L(N) = (N_c/N)^alpha_N over {sizes} sizes: alpha_N = {num(of_N['alpha_N'])} "
                   f"(R^2 = {num(of_N['r2'])})" if of_N else f"Only {sizes} size: no L(N) fit") +
                  (f"; the loss-vs-compute frontier: alpha_C = {num(of_C['alpha_C'])} (R^2 = "
                   f"{num(of_C['r2'])})" if of_C else "") + ". Kaplan et al. (2020) report "
                  "alpha_N = 0.076 and alpha_C = 0.050 at far larger N and C.")

def finding_forgetting(targets):
    runs = every(targets, "forgetting")
    at_best = [x["rise_at_best"] for x in runs if x["rise_at_best"] is not None]
    last = [x["rise_last"] for x in runs if x["rise_last"] is not None]
    if not at_best:
        return None, "No fine-tune logged an English val loss at its best checkpoint."
    return None, (f"Over {len(runs)} fine-tunes the English val loss rose by {np.mean(at_best):.3f}"
                  f" nats/token on average by the best checkpoint ({min(at_best):.3f} to "
                  f"{max(at_best):.3f})" + (f", {np.mean(last):.3f} by the last." if last else "."))

def findings(res):
    """Each finding in plain words; holds: whether Kim (2021)'s holds (None: nothing to judge)."""
    targets = res["targets"]
    items = [("Transfer across languages", finding_order(targets)),
             ("D_f/D_e against N and D_f", finding_fraction(targets)),
             ("Bounds, censoring, negative transfer", finding_bounds(targets)),
             *((f"Transfer law for {t['label']}", finding_law(t)) for t in targets.values()
               if not t["law"]),
             ("Compute efficiency", finding_compute(targets)),
             ("Parameter- vs data-limited", finding_limited(targets)),
             ("English pre-training", finding_pretrain(res["pretrain"])),
             ("Forgetting", finding_forgetting(targets))]
    return [{"title": title, "holds": holds, "text": text} for title, (holds, text) in items]

def heading(f):
    return f["title"] + ("" if f["holds"] is None else f" (Kim (2021)'s finding {kim(f['holds'])})")

# ----------------------------------------------------------------------------- report.md
def table(head, rows):
    """A markdown table; head is its column titles joined by '|'."""
    return "\n".join(["| " + head.replace("|", " | ") + " |", "|" + "---|" * len(head.split("|"))]
                     + ["| " + " | ".join(map(str, r)) + " |" for r in rows]) + "\n"

def cell(p):
    """One fine-tuned cell in the D_t grid: D_t (D_e/D_f), or the bound it is."""
    bounds = {"no_scratch_curve": "no curve", "above": f"D_e > {num(p['D_e_lower'])}",
              "budget": f"D_e > {num(p['D_e_lower'])} (budget)",
              "below": f"D_e < {num(p['D_e_upper'])}"}
    measured = f"{num(p['D_t'])} ({num(p['De_over_Df'], '.2f')})" + "*" * (p["where"] == "gap")
    return bounds.get(p["where"], measured)

def mean_pm(x):
    return f"{x['loss']:.4f}" + (f" ± {x['std']:.4f} (n={x['n']})" if x["n"] > 1 else "")

def target_md(target):
    md, points = [f"## {target['label']}\n"], target["points"]
    if points:
        sizes, data = sorted({p["N"] for p in points}), sorted({p["D_f"] for p in points})
        grid = {(p["N"], p["D_f"]): cell(p) for p in points}
        md += ["D_t in tokens (D_e/D_f); *: D_e between scratch points more than 2x apart, a guess;"
               " D_e > or <: beyond the scratch points, or (budget) from a fine-tune its budget"
               " stopped.\n",
               table("|".join(["D_f \\ N"] + [num(n) for n in sizes]),
                     [[num(d)] + [grid.get((n, d), "") for n in sizes] for d in data]),
               table("runs|N|D_f|D_f bytes|loss|D_e [95%]|D_t|D_t bytes|D_e/D_f [95%]|where",
                     [[", ".join(p["runs"]), num(p["N"]), num(p["D_f"]), num(p["D_f_bytes"]),
                       mean_pm(p), with_ci(p["D_e"], p["D_e_ci"]), num(p["D_t"]),
                       num(p["D_t_bytes"]), with_ci(p["De_over_Df"], p["De_over_Df_ci"], ".2f"),
                       " ".join([p["where"]] + [f for f in p["flags"] if f != p["where"]])]
                      for p in points])]
    md.append(table("scratch runs|N|D|D bytes|loss|converged", [
        [", ".join(s["runs"]), num(s["N"]), num(s["D"]), num(s["D_bytes"]), mean_pm(s),
         "yes" if s["converged"] else "no (upper bound)"] for s in target["scratch"]]))
    if target["compute"]:
        md.append(table("N|D_f|C scratch|C fine-tune best|C fine-tune to reach the scratch best|"
                        "ratio|C pre-train|ratio with pre-train", [
            [num(c[k]) for k in ("N", "D_f", "C_scratch", "C_finetune_best", "C_finetune_reach",
                                 "ratio", "C_pretrain", "ratio_with_pretrain")]
            for c in target["compute"]]))
    if target["forgetting"]:
        md.append(table("run|English set|baseline (from)|at best|last|rise at best|rise last", [
            [f["run"], f["key"], f"{num(f['baseline'], '.4f')} ({f['baseline_from']})"] +
            [num(f[k], ".4f") for k in ("at_best", "last", "rise_at_best", "rise_last")]
            for f in target["forgetting"]]))
    return md

def law_row(target):
    summary, law = target["summary"], target["law"]
    row = [target["label"], ratio(summary) if summary else "n/a",
           f"{summary['n_cells']} ({summary['n_negative']})" if summary else "0"]
    if not law:
        return row + ["n/a"] * 5 + [target["note"] or ""]
    failed = law["boot"]["failed"]
    return row + [with_ci(law[k], law["ci"][k]) for k in ("k", "k_bytes")] + [
        f"{with_ci(law[k], law['ci'][k])} ({trend(law, k)})" for k in ("alpha", "beta")] + [
        law["n_cells"], f"{failed} draws with too few positive cells" if failed else ""]

def at_each_D(spread):
    by_D = sorted((float(d), s["sigma_log"]) for d, s in (spread.get("by_D") or {}).items())
    return "; at D = " + ", ".join(f"{d:g}: {100 * s:.2f}%" for d, s in by_D if s) if by_D else ""

def checks_md(checks):
    """Each check beside its grid twin; a budget check passes when the best loss moved by less than
    twice the run-to-run spread (the budget did not set the loss)."""
    sigma, spread = checks["sigma_run"], "; ".join(
        f"{role} {100 * s['sigma_log']:.2f}% of the loss ({s['cells']} cells, {s['dof']} degrees "
        f"of freedom{at_each_D(s)})" for role, s in (("scratch", checks["scratch"]),
                                       ("fine-tuned", checks["finetune"])) if s["sigma_log"])
    return ["## Checks (runs beside the grid, not fitted)\n",
            table("tag|run|converged|loss|grid twin|twin loss|difference|relative",
                  [[c["tag"], c["run"], "yes" if c["converged"] else "no", num(c["loss"], ".4f"),
                    c["grid_run"] or "none", num(c["grid_loss"], ".4f"), num(c["diff"], "+.4f"),
                    num(c["rel_diff"], "+.2%")] for c in checks["runs"]])] + [
        f"Run-to-run spread of cells run more than once: {spread}.\n"] * bool(spread) + [
        f"{c['tag']} ({c['run']}): the best loss moved by {c['rel_diff']:+.2%} against its twin"
        + ("" if not sigma else ", within twice the run-to-run spread: the budget did not set the "
           "loss" if abs(c["rel_diff"]) < 2 * sigma else ", more than twice the run-to-run "
           "spread: the budget set the loss") + ".\n"
        for c in checks["runs"] if c["tag"].startswith("budget") and c["rel_diff"] is not None]

def calibration_md(rows):
    rates = [f"{r:g}" for r in sorted({float(r) for row in rows for r in row["losses"]})]
    return ["## Learning rates (calibration before the grid)\n",
            "Each arm takes its own best rate among those whose runs converged (loss: the mean "
            "over the calibration D_f; (b): stopped by its budget, a bound); * marks a rate at "
            "the edge of those tried.\n",
            table("|".join(["target", "N", "arm", "chosen"] + rates),
                  [[row["target"], num(row["N"]), row["role"],
                    num(row["chosen"]) + "*" * row["at_edge"]]
                   + [num(row["losses"].get(r), ".4f")
                      + ("" if row.get("converged", {}).get(r, True) else " (b)") for r in rates]
                   for row in rows])]

def reinit_md(rows):
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
        f"over the draws){verdict}.\n",
        table(f"page draw|log D_e/D_f {a} - {b}",
              [[draw, f"{d:+.3f}"] for draw, d in sorted(paired["per_draw"].items())])]

def report_md(res, found):
    targets, pretrain, checks = res["targets"], res["pretrain"], res["checks"]
    counts = ("scratch_converged scratch_unconverged finetune_measured finetune_censored "
              "finetune_below finetune_gap finetune_no_curve finetune_negative "
              "finetune_budget").split()
    noise = checks.get("noise_used") or (math.nan, math.nan)
    md = [f"# nanotransfer scaling report\n\nSource: `{res['source']}`; {res['n_runs_used']} runs "
          f"used, {len(res['skipped'])} left out (see Messages). Losses are best val loss in "
          f"nats/token; D in tokens unless said; N non-embedding parameters; C training FLOPs, "
          f"Kaplan convention.\n", "## Counts\n",
          table("language|scratch converged|scratch unconverged (bounds)|fine-tuned measured|"
                "D_e > D_max|D_e < D_min|between far points|no scratch curve|negative (measured)",
                [[t["label"]] + [t["counts"][k] for k in counts] for t in targets.values()]),
          "## Transfer: D_e/D_f measured, and the law D_t = k D_f^alpha N^beta where transfer is "
          "positive (95% intervals of a rerun)\n",
          f"Intervals: where a rerun's estimate lands, from {res['bootstrap']} bootstrap draws "
          f"(their spread times sqrt 2). A draw moves each cell's loss by the spread measured at "
          f"its D (pooled {100 * noise[0]:.2f}%), {checks.get('draw_share', 0):.0%} of its "
          f"variance shared by every size and both twins of a draw of D_f documents, and a "
          f"fine-tuned cell's also by its pre-trained model's, {100 * noise[1]:.2f}%, shared by "
          f"that model's fine-tunes; and each arm by the rate its calibration, run again, would "
          f"choose. Kim (2021) finds alpha < 1 and beta > 0.\n",
          table("language|D_e/D_f (geo. mean)|cells (negative)|k (tokens)|k (bytes)|alpha (< 1?)|"
                "beta (> 0?)|law cells|note", [law_row(t) for t in targets.values()]),
          "## Findings\n", *(f"**{heading(f)}.** {f['text']}\n" for f in found)]
    for target in targets.values():
        md += target_md(target)
    if pretrain:
        md += ["## English pre-training\n", table("runs|N|best loss|FLOPs", [
            [", ".join(p["runs"]), num(p["N"]), num(p["loss"], ".4f"), num(p["flops"])]
            for p in pretrain["points"]])]
    for key, section in (("calibration", calibration_md), ("reinit", reinit_md),
                         ("paired", paired_md), ("runs", checks_md)):
        if checks.get(key):
            md += section(checks if key == "runs" else checks[key])
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
def colors(values):
    values = sorted(set(values))
    return {v: plt.cm.viridis(i / max(1, len(values) - 1)) for i, v in enumerate(values)}

def finish(ax, target, **settings):   # a language's panel
    ax.set(**settings)
    ax.set_title(target["label"])
    ax.legend(fontsize=5)
    ax.xaxis.set_minor_formatter(plt.NullFormatter())   # minor labels crowd a short log axis

def draw_data_panel(ax, panel):
    """Figs 4-5 at one size; D_t dotted from D_f to D_e (red > 0, blue < 0, faint: not measured)."""
    target, n = panel
    scratch = [s for s in target["scratch"] if s["N"] == n]
    finetuned = [p for p in target["points"] if p["N"] == n]
    ax.scatter(*xy([s for s in scratch if s["converged"]], "D", "loss"), c="k", marker="o",
               label="scratch (converged)")
    ax.scatter(*xy([s for s in scratch if not s["converged"]], "D", "loss"), facecolors="none",
               edgecolors="k", marker="v", label="scratch unconverged (upper bound)")
    ax.scatter(*xy(finetuned, "D_f", "loss"), c="C3", marker="s", label="fine-tuned")
    lines = target["curves"].get(f"{n:.6g}") or {}
    for key, style, label in (("scratch", "k-", "scratch, monotone"), ("law", "C3--", "law")):
        if lines.get(key):
            ax.plot(*np.array(lines[key]).T, style, lw=0.8, label=label)
    for p in finetuned:
        if p["D_e"] and math.isfinite(p["D_e"]):
            ax.plot([p["D_f"], p["D_e"]], [p["loss"]] * 2, ":", c="C3" if p["D_t"] > 0 else "C0",
                    lw=0.8, alpha=1.0 if p["where"] == "measured" else 0.4)
    ax.set(xscale="log", title=f"{target['label']}  N={n:.3g}", xlabel="D (tokens)",
           ylabel="loss (nats/token)")
    if ax.get_subplotspec().is_first_col():
        ax.legend(fontsize=5)

def draw_fraction(ax, target):
    """Fig 6: per-cell D_f/D_e with its 95% interval, one colour per size, and the law's line."""
    color, law = colors(p["N"] for p in target["points"]), target["law"]
    for n in color:
        for measured in (True, False):
            cells = [p for p in target["points"] if p["N"] == n and p["De_over_Df"]
                     and (p["where"] == "measured") == measured]
            if cells:
                ratio = np.array([p["De_over_Df"] for p in cells])
                low, high = np.array([p["De_over_Df_ci"] or [p["De_over_Df"]] * 2 for p in cells]).T
                ax.errorbar([p["D_f"] for p in cells], 1 / ratio, fmt="o", c=color[n], ms=4, lw=0.8,
                            yerr=np.maximum(0, [1 / ratio - 1 / high, 1 / low - 1 / ratio]),
                            mfc=None if measured else "none", label=f"N={n:.3g}" * measured or None)
        if law:
            D_f = np.geomspace(*law["D_f_range"], 50)
            ax.plot(D_f, 1 / (1 + law["k"] * D_f ** (law["alpha"] - 1) * n ** law["beta"]), "-",
                    c=color[n], lw=0.8)
    ax.axhline(1, c="gray", lw=0.8)
    finish(ax, target, xscale="log", yscale="log", xlabel="D_f (tokens)",
           ylabel="D_f / D_e  (hollow: not measured)")

def draw_loss_vs_N(ax, target):
    """Loss against N at fixed D_f: flat = data-limited, sloped = parameter-limited."""
    scratch_data = [s["D"] for s in target["scratch"]]
    color = colors([p["D_f"] for p in target["points"]] + scratch_data)
    for d in color:
        for runs, key, style in ((target["scratch"], "D", "o-"), (target["points"], "D_f", "s--")):
            runs = sorted((r for r in runs if r[key] == d), key=lambda r: r["N"])
            if runs:   # one label a D
                ax.plot(*xy(runs, "N", "loss"), style, c=color[d],
                        label=None if key == "D_f" and d in scratch_data else f"D={d:.3g}")
    finish(ax, target, xscale="log", xlabel="N (non-embedding params)",
           ylabel="val loss (nats/token)")

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
                ax.plot(flops, loss, style, c=color[c["D_f"]], lw=1,
                        label=f"{label} D={c['D_f']:.3g}")
                if label == "fine-tuned" and c["C_pretrain"]:
                    ax.plot(flops + c["C_pretrain"], loss, ":", c=color[c["D_f"]], lw=1)
    finish(ax, target, xscale="log", xlabel="training FLOPs (Kaplan)",
           ylabel="val loss (nats/token)")

def draw_pretrain_N(ax, pretrain):
    (sizes, losses), law = xy(pretrain["points"], "N", "loss"), pretrain["L_of_N"]
    ax.scatter(sizes, losses, c="k")
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
    """Each figure a row of panels per list of items, draw(ax, item) filling a panel."""
    targets, pretrain = list(res["targets"].values()), [res["pretrain"]] * bool(res["pretrain"])
    sizes = [sorted({p["N"] for p in t["scratch"] + t["points"]}) for t in targets]
    for key, title, rows, draw in (
            ("pretrain_N", "English pre-training: loss vs N (Fig 2)", [pretrain], draw_pretrain_N),
            ("pretrain_C", "English pre-training: loss vs compute (Fig 3)", [pretrain],
             draw_pretrain_C),
            ("data", "Loss vs data: scratch o (v = unconverged bound), fine-tuned s, arrows = "
             "censored (D_e > D_max)", [[(t, n) for n in row] for t, row in zip(targets, sizes)],
             draw_data_panel),
            ("frac", "D_f/D_e vs D_f (Fig 6): cells with 95% intervals, lines from the law; above "
             "1 = negative", [[t for t in targets if any(p["De_over_Df"] for p in t["points"])]],
             draw_fraction),
            ("N", "Loss vs N at fixed D (o- scratch, s-- fine-tuned)",
             [[t for t in targets if t["points"] or t["scratch"]]], draw_loss_vs_N),
            ("compute", "Loss vs compute (Fig 7): - scratch, -- fine-tuned, : plus pre-training",
             [[t for t in targets if t["compute"]]], draw_compute)):
        rows = [row for row in rows if row]
        cols, height = max(map(len, rows), default=1), max(len(rows), 1)
        fig, axes = plt.subplots(height, cols, figsize=(3.6 * cols, 3 * height), squeeze=False)
        fig.suptitle(title)
        for ax_row, row in zip(axes, rows):
            for ax, item in zip(ax_row, row):
                draw(ax, item)
        if not rows:
            axes[0, 0].text(0.5, 0.5, "no data for this figure", ha="center", va="center")
            axes[0, 0].set_axis_off()
        fig.tight_layout()
        fig.savefig(os.path.join(out, PLOTS[key]), format="png", dpi=100)  # for reading only
        plt.close(fig)

# ----------------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description="Write report.md and figures from a results.json.")
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
    print("\n".join(f"- {heading(f)}: {f['text']}" for f in found))
    print(f"wrote {out}/report.md and {len(PLOTS)} figures")
    return 0

if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # redirected (a job's log), each line at once
    sys.exit(main())
