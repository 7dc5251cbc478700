"""
Analysis stage of nanotransfer, part 2 of 2: results.json (written by fit_scaling.py) -> findings
in plain words, figures and report.md beside it. Reads nothing else, so a report can be redrawn
from a results.json alone:

    python report.py out/builtin/report/results.json          # report.md and *.png beside it
    python report.py results.json --out /tmp/rep

Definitions as in fit_scaling.py (N non-embedding parameters, D tokens, C Kaplan FLOPs,
D_e = from-scratch data reaching the fine-tuned loss at the same N, D_t = D_e - D_f).
"""
import argparse
import json
import math
import os
import sys
import tempfile

import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.ticker
import matplotlib.pyplot as plt


SEED_ORDER = ["de", "es", "zh"]   # the seed's finding: German > Spanish > Chinese
PLOTS = {"pretrain_N": "fig2_pretrain_loss_vs_N.png", "pretrain_C": "fig3_pretrain_loss_vs_compute.png",
         "data": "fig4_5_loss_vs_data.png", "frac": "fig6_Df_over_De.png",
         "N": "loss_vs_N_at_fixed_Df.png", "compute": "fig7_loss_vs_compute.png"}

def name(o):
    return o.get("name") or o["label"]

def slope(x, y):
    """d log y / d log x by least squares."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])

def g(x, f=".3g"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, f)

def with_ci(x, c, f=".3g"):
    return "n/a" if x is None else f"{x:{f}} [{g(c[0], f)}, {g(c[1], f)}]" if c else f"{x:{f}}"

def laws(T):
    """The languages with a transfer law (positive transfer in enough cells)."""
    return {t: o for t, o in T.items() if o["law"]}

def summaries(T):
    return {t: o for t, o in T.items() if o["summary"]}

# ----------------------------------------------------------------------------- findings

def finding_order(T):
    """The seed's German > Spanish > Chinese, by the measured D_e/D_f (geometric mean over each
    language's cells with a measured D_e) with its 95% interval: the order is clear when
    neighbours' intervals do not overlap."""
    S = summaries(T)
    if len(S) < 2:
        return None, "Fewer than two languages have a measured D_e, so the order across languages cannot be tested."
    ranked = sorted(S, key=lambda t: S[t]["summary"]["De_over_Df"], reverse=True)
    order = [S[t]["language"] for t in ranked if S[t]["language"] in SEED_ORDER]
    seed = [l for l in SEED_ORDER if l in order]
    holds = order == seed if len(seed) >= 2 else None
    cis = [S[t]["summary"]["ci"] for t in ranked]
    clear = all(a and b and a[0] > b[1] for a, b in zip(cis, cis[1:]))
    text = ("Measured D_e/D_f, the factor by which pre-training multiplies the fine-tuning data (geometric mean over "
            "each language's cells with a measured D_e, 95% interval; below 1 = negative transfer): "
            + ", ".join(f"{name(S[t])} {with_ci(S[t]['summary']['De_over_Df'], S[t]['summary']['ci'], '.2f')} "
                        f"({S[t]['summary']['n_cells']} cells, {S[t]['summary']['n_negative']} negative)" for t in ranked)
            + ". Observed order: " + " > ".join(name(S[t]) for t in ranked) + ". ")
    if holds is None:
        return None, text + "Fewer than two of German, Spanish and Chinese were measured, so the seed's order is not tested."
    text += (f"The seed's German > Spanish > Chinese {'holds' if holds else 'does not hold'} at this scale"
             + ("; the intervals separate every neighbour, so the order is clear." if clear else
                "; neighbouring intervals overlap, so this order is within the uncertainty."))
    return holds, text

def trend(o, key):
    """'holds', 'does not hold' or 'unresolved' for one exponent: alpha < 1 (D_f/D_e rises with
    D_f) or beta > 0 (falls with N), judged by whether the 95% CI lies on one side."""
    law = o["law"]
    if not law["identified"][key]:
        return "unidentified"
    if not law["ci"][key]:
        return "unresolved: no bootstrap"
    lo, hi = law["ci"][key]
    bad = (lambda v: v >= 1) if key == "alpha" else (lambda v: v <= 0)
    return "does not hold" if bad(lo) and bad(hi) else "unresolved" if bad(lo) or bad(hi) else "holds"

def finding_fraction(T):
    L = laws(T)
    if not L:
        return None, "No language has a fitted transfer law, so the trends of D_f/D_e with N and D_f are not measured."
    parts, verdicts = [], []
    for o in L.values():
        a, b = trend(o, "alpha"), trend(o, "beta")
        verdicts += [a, b]
        parts.append(f"{name(o)}: beta = {with_ci(o['law']['beta'], o['law']['ci']['beta'], '.2f')} ({b}), "
                     f"alpha = {with_ci(o['law']['alpha'], o['law']['ci']['alpha'], '.2f')} ({a})")
    holds = False if "does not hold" in verdicts else True if set(verdicts) == {"holds"} else None
    return holds, ("Under the law, D_f/D_e = 1/(1 + k D_f^(alpha-1) N^beta): it falls with N when beta > 0 and rises "
                   "with D_f when alpha < 1 (the seed's finding). " + "; ".join(parts) + ". The seed's finding "
                   + {True: "holds for every language, outside the uncertainty",
                      False: "does not hold for at least one language",
                      None: "is not resolved by these data for every language (an interval crosses the "
                            "boundary)"}[holds]
                   + ".")

def finding_compute(T):
    cells = [c for o in T.values() for c in o["compute"]]
    if not cells:
        return None, "No fine-tuned run has a from-scratch twin (same N and D_f), so compute cannot be compared."
    r = [c["ratio"] for c in cells if c["ratio"] is not None]
    rp = [c["ratio_with_pretrain"] for c in cells if c["ratio_with_pretrain"] is not None]
    fast, fastp = sum(x < 1 for x in r), sum(x < 1 for x in rp)
    holds = fast > len(cells) / 2
    return holds, (f"In {fast} of {len(cells)} (language, N, D_f) cells the fine-tuned run reached its from-scratch twin's "
                   f"best loss with less compute than the twin spent to get there"
                   + (f" (median ratio {np.median(r):.2f})" if r else "")
                   + f"; in {len(cells) - len(r)} it never reached it. Counting the pre-training compute as well, "
                   f"{fastp} of {len(rp)} were cheaper. The seed's 'pre-trained models are more compute-efficient' "
                   f"(pre-training cost not counted) {'holds' if holds else 'does not hold'} at this scale.")

def finding_limited(T):
    steeper, total, sf, ss = 0, 0, [], []
    for o in T.values():
        for Df in sorted({p["D_f"] for p in o["points"]}):
            f = [(p["N"], p["loss"]) for p in o["points"] if p["D_f"] == Df]
            s = [(p["N"], p["loss"]) for p in o["scratch"] if p["D"] == Df and p["converged"]]
            a = slope(*zip(*f)) if len({n for n, _ in f}) > 1 else math.nan
            b = slope(*zip(*s)) if len({n for n, _ in s}) > 1 else math.nan
            if math.isfinite(a) and math.isfinite(b):
                total += 1
                steeper += a < b
                sf.append(a)
                ss.append(b)
    if not total:
        return None, ("No D_f has both fine-tuned and converged from-scratch runs at two or more sizes, so "
                      "parameter- vs data-limited cannot be told.")
    holds = steeper > total / 2
    return holds, (f"At fixed D_f, loss fell with N at a mean slope d log L / d log N of {np.mean(sf):.3f} fine-tuned and "
                   f"{np.mean(ss):.3f} from scratch; the fine-tuned slope was steeper in {steeper} of {total} series. "
                   f"A steep slope means parameter-limited, a flat one data-limited: the seed's 'fine-tuned models are "
                   f"parameter-limited, scratch models data-limited' {'holds' if holds else 'does not hold'} here.")

def finding_bounds(T):
    """What is only a bound, said as such: unconverged scratch runs, cells outside the measured
    scratch points or between points too far apart, negative transfer."""
    c = {k: sum(o["counts"][k] for o in T.values()) for k in next(iter(T.values()))["counts"]} if T else {}
    if not c:
        return None, "No scratch or fine-tuned runs."
    neg = [f"{name(o)} N={p['N']:.3g} D_f={p['D_f']:.3g}" for o in T.values() for p in o["points"]
           if "negative" in p["flags"] and p["where"] == "measured"]
    return None, (f"{c['scratch_unconverged']} of {c['scratch_converged'] + c['scratch_unconverged']} scratch cells did not "
                  f"converge (stopped on their budget): upper bounds on the converged loss, not points of the curve. "
                  f"Of {c['finetune']} fine-tuned cells, {c['finetune_measured']} have a D_e measured between scratch "
                  f"points at most 2x apart; {c['finetune_censored']} reached a loss below every converged scratch loss "
                  f"(only D_e > D_max is known), {c['finetune_below']} one above the loss at the smallest scratch D "
                  f"(D_e < D_min), {c['finetune_gap']} fell between scratch points more than 2x apart, and "
                  f"{c['finetune_no_curve']} had no scratch curve: these are shown, flagged, and kept out of the law "
                  f"and the summary. {len(neg)} measured cells show negative transfer (D_e < D_f)"
                  + (": " + "; ".join(neg) if neg else "") + ".")

def finding_pretrain(P):
    if not P:
        return None, "No finished English pre-training runs were found, so L(N) and the compute frontier are not fitted."
    a, c = P["L_of_N"], P["L_of_C"]
    text = (f"L(N) = (N_c/N)^alpha_N gave alpha_N = {g(a['alpha_N'])} (R^2 = {g(a['r2'])}) over "
            f"{len(P['points'])} sizes" if a else f"Only {len(P['points'])} size, no L(N) fit")
    text += f"; the loss-vs-compute frontier gave alpha_C = {g(c['alpha_C'])} (R^2 = {g(c['r2'])}). " if c else ". "
    return None, text + "For scale, Kaplan et al. (2020) report alpha_N = 0.076 and alpha_C = 0.050 at far larger N and C."

def finding_forgetting(T):
    f = [x for o in T.values() for x in o["forgetting"]]
    if not f:
        return None, "No fine-tuning run logged an English validation loss, so forgetting is not measured."
    rb = [x["rise_at_best"] for x in f if x["rise_at_best"] is not None]
    rl = [x["rise_last"] for x in f if x["rise_last"] is not None]
    if not rb:
        return None, "English val loss was logged during fine-tuning, but not at the best checkpoint."
    return None, (f"Over {len(f)} fine-tuning runs that logged English val loss, it rose by {np.mean(rb):.3f} nats/token "
                  f"on average by the best target-language checkpoint (range {min(rb):.3f} to {max(rb):.3f}) "
                  + (f"and by {np.mean(rl):.3f} by the last evaluation." if rl else "."))

def finding_law(o):
    law = o["law"]
    if not law:
        s = o["summary"]
        return None, (f"No transfer law: {o['note']}." + (
            f" Measured D_e/D_f = {with_ci(s['De_over_Df'], s['ci'], '.2f')} over {s['n_cells']} cells: "
            f"{'pre-training hurt' if s['De_over_Df'] < 1 else 'pre-training helped'}"
            + (", outside the uncertainty." if s["ci"] and (s["ci"][1] < 1 or s["ci"][0] > 1) else
               ", within the uncertainty of no effect.") if s else ""))
    b, nz = law["boot"], law["noise"]
    text = (f"log D_t = log k + alpha log D_f + beta log N over the {law['n_cells']} cells with a measured, positive "
            f"D_t: k = {with_ci(law['k'], law['ci']['k'])}, alpha = {with_ci(law['alpha'], law['ci']['alpha'])}, "
            f"beta = {with_ci(law['beta'], law['ci']['beta'])} (tokens; in bytes k = "
            f"{with_ci(law['k_bytes'], law['ci']['k_bytes'])}). Intervals: {b['draws']} bootstrap draws of a rerun: "
            f"{100 * nz['sigma_run']:.2f}% run-to-run spread per cell, {100 * nz['sigma_pretrain']:.2f}% per pre-trained "
            f"model, PCHIP or straight lines between scratch points; {b['failed']} draws had too few positive cells.")
    text += "".join(f" {v} is unidentified (one value of {w} measured)." for k, v, w in
                    (("alpha", "alpha", "D_f"), ("beta", "beta", "N")) if not law["identified"][k])
    return None, text

def findings(res):
    T = res["targets"]
    items = [("Transfer across languages", finding_order(T)), ("D_f/D_e against N and D_f", finding_fraction(T)),
             ("Bounds, censoring, negative transfer", finding_bounds(T)),
             *((f"Transfer law for {o['label']}", finding_law(o)) for o in T.values()),
("Compute efficiency", finding_compute(T)),
             ("Parameter- vs data-limited", finding_limited(T)), ("English pre-training", finding_pretrain(res["pretrain"])),
             ("Forgetting", finding_forgetting(T))]
    return [{"title": t, "holds": h, "text": x} for t, (h, x) in items]

# ----------------------------------------------------------------------------- report.md

def table(head, rows):
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(map(str, r)) + " |" for r in rows]) + "\n"

def cell(p):
    """One fine-tuned cell in the D_t grid: D_t (D_e/D_f), or the bound it is."""
    if p["where"] == "no_scratch_curve":
        return "no curve"
    if p["where"] == "above":
        return f"D_e > {g(p['D_e_lower'])}"
    if p["where"] == "below":
        return f"D_e < {g(p['D_e_upper'])}"
    return f"{g(p['D_t'])} ({g(p['De_over_Df'], '.2f')})" + ("*" if p["where"] == "gap" else "")

def mean_pm(x):
    return f"{x['loss']:.4f}" + (f" ± {x['std']:.4f} (n={x['n']})" if x["n"] > 1 else "")

def target_md(o):
    md = [f"## {o['label']}\n"]
    if o["points"]:
        Ns, Dfs = sorted({p["N"] for p in o["points"]}), sorted({p["D_f"] for p in o["points"]})
        cells = {(p["N"], p["D_f"]): p for p in o["points"]}
        md.append("D_t in tokens per cell (D_e/D_f); * = D_e between scratch points more than 2x apart (the "
                  "curve's guess, not a measurement); negative D_t = negative transfer; D_e > or < = beyond the "
                  "measured scratch points.\n")
        md.append(table(["D_f \\ N"] + [g(n) for n in Ns],
                        [[g(d)] + [cell(cells[n, d]) if (n, d) in cells else "" for n in Ns] for d in Dfs]))
        md.append(table(["runs", "N", "D_f", "D_f bytes", "loss", "D_e [95%]", "D_t", "D_t bytes", "D_e/D_f [95%]",
                         "where"],
                        [[", ".join(p["runs"]), g(p["N"]), g(p["D_f"]), g(p["D_f_bytes"]), mean_pm(p),
                          with_ci(p["D_e"], p["D_e_ci"]), g(p["D_t"]), g(p["D_t_bytes"]),
                          with_ci(p["De_over_Df"], p["De_over_Df_ci"], ".2f"), " ".join([p["where"]] + [
                              f for f in p["flags"] if f != p["where"]])] for p in o["points"]]))
    md.append("Scratch cells (an unconverged cell is an upper bound on the converged loss, not fitted):\n")
    md.append(table(["runs", "N", "D", "D bytes", "loss", "converged"],
                    [[", ".join(s["runs"]), g(s["N"]), g(s["D"]), g(s["D_bytes"]), mean_pm(s),
                      "yes" if s["converged"] else "no (upper bound)"] for s in o["scratch"]]))
    if o["compute"]:
        md.append("Compute: the fine-tuned run's FLOPs to first reach its scratch twin's best loss, over the twin's "
                  "FLOPs to its best.\n")
        md.append(table(["N", "D_f", "C scratch", "C fine-tune best", "C to reach", "ratio", "C pre-train",
                         "ratio with pre-train"],
                        [[g(c["N"]), g(c["D_f"]), g(c["C_scratch"]), g(c["C_finetune_best"]), g(c["C_finetune_reach"]),
                          g(c["ratio"]), g(c["C_pretrain"]), g(c["ratio_with_pretrain"])] for c in o["compute"]]))
    if o["forgetting"]:
        md.append(table(["run", "English set", "baseline (from)", "at best", "last", "rise at best", "rise last"],
                        [[f["run"], f["key"], f"{g(f['baseline'], '.4f')} ({f['baseline_from']})", g(f["at_best"], ".4f"),
                          g(f["last"], ".4f"), g(f["rise_at_best"], ".4f"), g(f["rise_last"], ".4f")] for f in o["forgetting"]]))
    return md

def headline_md(T):
    md = ["## Counts\n", table(["language", "scratch converged", "scratch unconverged (bounds)", "fine-tuned measured",
                                "D_e > D_max", "D_e < D_min", "between far points", "negative (measured)"],
                               [[o["label"]] + [o["counts"][k] for k in ("scratch_converged", "scratch_unconverged",
                                "finetune_measured", "finetune_censored", "finetune_below", "finetune_gap",
                                "finetune_negative")] for o in T.values()])]
    md.append("## Transfer: D_e/D_f measured, and the law D_t = k D_f^alpha N^beta where transfer is positive "
              "(95% intervals of a rerun)\n")
    md.append(table(["language", "D_e/D_f (geo. mean)", "cells (negative)", "k (tokens)", "k (bytes)", "alpha", "beta",
                     "law cells", "note"], [law_row(o) for o in T.values()]))
    return md

def law_row(o):
    s, law = o["summary"], o["law"]
    head = [o["label"], with_ci(s["De_over_Df"], s["ci"], ".2f") if s else "n/a",
            f"{s['n_cells']} ({s['n_negative']})" if s else "0"]
    if not law:
        return head + ["n/a"] * 5 + [o["note"] or ""]
    ident = lambda k: "" if law["identified"][k] else " (unidentified)"
    return head + [with_ci(law["k"], law["ci"]["k"]), with_ci(law["k_bytes"], law["ci"]["k_bytes"]),
                   with_ci(law["alpha"], law["ci"]["alpha"]) + ident("alpha"),
                   with_ci(law["beta"], law["ci"]["beta"]) + ident("beta"), law["n_cells"], ""]

def checks_md(C):
    """Each check beside its grid twin; a budget check passes when the best loss moved by less than
    twice the run-to-run spread (the budget did not set the loss)."""
    md = ["## Checks (runs beside the grid, not fitted)\n",
          table(["tag", "run", "converged", "loss", "grid twin", "twin loss", "difference", "relative"],
                [[c["tag"], c["run"], "yes" if c["converged"] else "no", g(c["loss"], ".4f"), c["grid_run"] or "none",
                  g(c["grid_loss"], ".4f"), g(c["diff"], "+.4f"), g(c["rel_diff"], "+.2%")] for c in C["runs"]])]
    sigma = C["sigma_run"]
    for role in ("scratch", "finetune"):
        r = C[role]
        if r["sigma_log"]:
            md.append(f"Run-to-run spread of {role} cells run more than once: {100 * r['sigma_log']:.2f}% of the loss "
                      f"({r['cells']} cells, {r['dof']} degrees of freedom).\n")
    md.append(f"The bootstrap draws {100 * C['noise_used'][0]:.2f}% per run and {100 * C['noise_used'][1]:.2f}% per "
              f"pre-trained model (the fine-tuned spread beyond the scratch spread).\n")
    for c in C["runs"]:
        if c["tag"].startswith("budget") and c["rel_diff"] is not None:
            verdict = ("" if not sigma else ", within twice the run-to-run spread: the budget did not set the loss"
                       if abs(c["rel_diff"]) < 2 * sigma else ", more than twice the run-to-run spread: the budget set the loss")
            md.append(f"{c['tag']} ({c['run']}): the best loss moved by {c['rel_diff']:+.2%} against its twin{verdict}.\n")
    return md

def report_md(res, fnd):
    T = res["targets"]
    md = [f"# nanotransfer scaling report\n\nSource: `{res['source']}`; {res['n_runs_used']} runs used, "
          f"{len(res['skipped'])} left out (see Messages). Losses are best val loss in nats/token; D in tokens unless "
          f"said; N non-embedding parameters; C training FLOPs, Kaplan convention.\n"]
    md += headline_md(T)
    md.append("## Findings\n")
    for f in fnd:
        tag = {True: " (seed finding holds)", False: " (seed finding does not hold)", None: ""}[f["holds"]]
        md.append(f"**{f['title']}{tag}.** {f['text']}\n")
    for o in T.values():
        md += target_md(o)
    P = res["pretrain"]
    if P:
        md.append("## English pre-training\n")
        md.append(table(["runs", "N", "best loss", "FLOPs"],
                        [[", ".join(p["runs"]), g(p["N"]), g(p["loss"], ".4f"), g(p["flops"])] for p in P["points"]]))
    if res["checks"]["runs"]:
        md += checks_md(res["checks"])
    md.append("## Corpora\n\nWhat the runs trained on (prepare/'s meta.json): a different sha256 is a different "
              "corpus, and the numbers above move with it.\n")
    md.append(table(["dataset", "train.bin sha256", "val.bin sha256", "sources"],
                    [[k, (v or {}).get("sha256", {}).get("train", "?"), (v or {}).get("sha256", {}).get("val", "?"),
                      ", ".join((v or {}).get("sources") or []) or "?"] for k, v in res.get("corpora", {}).items()]))
    md.append("## Figures\n\n" + "\n".join(f"- ![{k}]({v})" for k, v in PLOTS.items()) + "\n")
    md.append("## Messages\n\n" + ("\n".join(f"- {m}" for m in res["messages"]) or "none") + "\n")
    return "\n".join(md)

# ----------------------------------------------------------------------------- figures

def save(fig, path):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".png.tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:  # a full disk: no half-written temp file is left behind
        os.remove(tmp)
        raise
    finally:
        plt.close(fig)

def grid(nr, nc, title):
    fig, axs = plt.subplots(nr, nc, figsize=(3.6 * nc, 3.0 * nr), squeeze=False)
    fig.suptitle(title)
    return fig, axs

def blank(path, title, why):
    fig, ax = grid(1, 1, title)
    ax[0, 0].text(0.5, 0.5, why, ha="center", va="center", wrap=True)
    ax[0, 0].set_axis_off()
    save(fig, path)

def colors(values):
    vs = sorted(set(values))
    return {v: plt.cm.viridis(i / max(1, len(vs) - 1)) for i, v in enumerate(vs)}

def draw_data_panel(ax, o, n):
    """One size: converged scratch (o) joined by the monotone curve D_e is read off; unconverged
    scratch as upper bounds (v); fine-tuned (s) and the law (dashed); D_t as a dotted line
    D_f -> D_e (red: positive, blue: negative; faint where D_e is not measured)."""
    sc = [s for s in o["scratch"] if s["N"] == n]
    ft = [p for p in o["points"] if p["N"] == n]
    conv, ub = [s for s in sc if s["converged"]], [s for s in sc if not s["converged"]]
    ax.scatter([s["D"] for s in conv], [s["loss"] for s in conv], c="k", marker="o", label="scratch (converged)")
    ax.scatter([s["D"] for s in ub], [s["loss"] for s in ub], facecolors="none", edgecolors="k", marker="v",
               label="scratch unconverged (upper bound)")
    ax.scatter([p["D_f"] for p in ft], [p["loss"] for p in ft], c="C3", marker="s", label="fine-tuned")
    lines = o["curves"].get(f"{n:.6g}")
    if lines:
        ax.plot(*np.array(lines["scratch"]).T, "k-", lw=0.8, label="scratch, monotone")
        if lines["law"]:
            ax.plot(*np.array(lines["law"]).T, "C3--", lw=0.8, label="law")
    for p in ft:
        if p["D_e"] and math.isfinite(p["D_e"]):
            ax.plot([p["D_f"], p["D_e"]], [p["loss"]] * 2, ":", c="C3" if p["D_t"] > 0 else "C0",
                    lw=0.8, alpha=1.0 if p["where"] == "measured" else 0.4)
    ax.set(xscale="log", title=f"{o['label']}  N={n:.3g}", xlabel="D (tokens)", ylabel="loss (nats/token)")

def plot_loss_vs_data(T, path):
    """Figs 4-5, one row per language, one panel per size."""
    rows = [o for o in T.values() if o["points"] or o["scratch"]]
    if not rows:
        return blank(path, "Loss vs D", "no scratch or fine-tuned runs")
    sizes = [sorted({p["N"] for p in o["scratch"] + o["points"]}) for o in rows]
    fig, axs = grid(len(rows), max(map(len, sizes)),
                    "Loss vs data: scratch o (v = unconverged bound), fine-tuned s, arrows = censored (D_e > D_max)")
    for i, (o, ns) in enumerate(zip(rows, sizes)):
        for j, n in enumerate(ns):
            draw_data_panel(axs[i, j], o, n)
        axs[i, 0].legend(fontsize=5)
    fig.tight_layout()
    save(fig, path)

def per_target(T, path, title, draw, ok):
    rows = [o for o in T.values() if ok(o)]
    if not rows:
        return blank(path, title, "no data for this figure")
    fig, axs = grid(1, len(rows), title)
    for ax, o in zip(axs[0], rows):
        draw(ax, o)
        ax.set_title(o["label"])
        ax.legend(fontsize=5)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())   # crowded on short log axes
    fig.tight_layout()
    save(fig, path)

def draw_frac(ax, o):
    """Fig 6: per-cell D_f/D_e against D_f with its 95% interval, one colour per size, and the
    law's line; hollow = D_e not measured (beyond or between far scratch points); above 1 = negative."""
    col = colors(p["N"] for p in o["points"])
    law = o["law"]
    for n in col:
        for measured in (True, False):
            ps = [p for p in o["points"] if p["N"] == n and p["De_over_Df"] and (p["where"] == "measured") == measured]
            if not ps:
                continue
            y = [1 / p["De_over_Df"] for p in ps]
            err = [[max(0, 1 / p["De_over_Df"] - 1 / p["De_over_Df_ci"][1]) if p["De_over_Df_ci"] else 0
                    for p in ps],
                   [max(0, 1 / p["De_over_Df_ci"][0] - 1 / p["De_over_Df"]) if p["De_over_Df_ci"] else 0
                    for p in ps]]
            ax.errorbar([p["D_f"] for p in ps], y, yerr=err, fmt="o", c=col[n], mfc=None if measured else "none",
                        ms=4, lw=0.8, label=f"N={n:.3g}" if measured else None)
        if law:
            df = np.geomspace(*law["D_f_range"], 50)
            ax.plot(df, 1 / (1 + law["k"] * df ** (law["alpha"] - 1) * n ** law["beta"]), "-", c=col[n], lw=0.8)
    ax.axhline(1, c="gray", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="D_f (tokens)", ylabel="D_f / D_e  (hollow: not measured)")

def draw_loss_vs_N(ax, o):
    """Loss against N at fixed D_f: flat = data-limited, sloped = parameter-limited."""
    col = colors([p["D_f"] for p in o["points"]] + [p["D"] for p in o["scratch"]])
    for d in col:
        for pts, key, style, lab in ((o["scratch"], "D", "o-", "scratch"), (o["points"], "D_f", "s--", "fine-tuned")):
            ps = sorted((p for p in pts if p[key] == d), key=lambda p: p["N"])
            if ps:
                ax.plot([p["N"] for p in ps], [p["loss"] for p in ps], style, c=col[d],
                        label=f"D={d:.3g}" if lab == "scratch" or d not in [q["D"] for q in o["scratch"]] else None)
    ax.set(xscale="log", xlabel="N (non-embedding params)", ylabel="val loss (nats/token)")

def draw_compute(ax, o):
    """Fig 7 at the largest size with twins: eval curves against compute; dotted adds pre-training."""
    n = max(c["N"] for c in o["compute"])
    cs = [c for c in o["compute"] if c["N"] == n]
    col = colors(c["D_f"] for c in cs)
    for c in cs:
        for curve, style, lab in ((c["curve_scratch"], "-", "scratch"), (c["curve_finetune"], "--", "fine-tuned")):
            if curve:
                C, L = np.array(curve).T
                ax.plot(C, L, style, c=col[c["D_f"]], lw=1, label=f"{lab} D={c['D_f']:.3g}")
                if lab == "fine-tuned" and c["C_pretrain"]:
                    ax.plot(C + c["C_pretrain"], L, ":", c=col[c["D_f"]], lw=1)
    ax.set(xscale="log", xlabel="training FLOPs (Kaplan)", ylabel="val loss (nats/token)", title=f"N={n:.3g}")

def plot_pretrain(P, pN, pC):
    if not P:
        blank(pN, "Pre-training loss vs N", "no finished pre-training runs")
        return blank(pC, "Pre-training loss vs compute", "no finished pre-training runs")
    fig, ax = grid(1, 1, "English pre-training: loss vs N (Fig 2)")
    N, L = [p["N"] for p in P["points"]], [p["loss"] for p in P["points"]]
    ax[0, 0].scatter(N, L, c="k")
    if P["L_of_N"] and P["L_of_N"]["N_c"]:
        n = np.geomspace(min(N), max(N), 50)
        ax[0, 0].plot(n, (P["L_of_N"]["N_c"] / n) ** P["L_of_N"]["alpha_N"], "C3-",
                      label=f"alpha_N={P['L_of_N']['alpha_N']:.3f}")
        ax[0, 0].legend()
    ax[0, 0].set(xscale="log", yscale="log", xlabel="N (non-embedding params)", ylabel="best val loss")
    save(fig, pN)
    fig, ax = grid(1, 1, "English pre-training: loss vs compute (Fig 3)")
    col = colors(p["N"] for p in P["points"])
    for p in P["points"]:
        if p["curve"]:
            ax[0, 0].plot(*np.array(p["curve"]).T, c=col[p["N"]], lw=1, label=f"N={p['N']:.3g}")
    if P["frontier"]:
        ax[0, 0].plot([f["flops"] for f in P["frontier"]], [f["loss"] for f in P["frontier"]], "k--", lw=1, label="frontier")
    ax[0, 0].set(xscale="log", yscale="log", xlabel="training FLOPs (Kaplan)", ylabel="val loss")
    ax[0, 0].legend(fontsize=6)
    save(fig, pC)

def plots(res, out):
    T, p = res["targets"], {k: os.path.join(out, v) for k, v in PLOTS.items()}
    plot_pretrain(res["pretrain"], p["pretrain_N"], p["pretrain_C"])
    plot_loss_vs_data(T, p["data"])
    per_target(T, p["frac"], "D_f/D_e vs D_f (Fig 6): cells with 95% intervals, lines from the law; above 1 = negative",
               draw_frac, lambda o: any(q["De_over_Df"] for q in o["points"]))
    per_target(T, p["N"], "Loss vs N at fixed D (o- scratch, s-- fine-tuned)", draw_loss_vs_N,
               lambda o: o["points"] or o["scratch"])
    per_target(T, p["compute"], "Loss vs compute (Fig 7): - scratch, -- fine-tuned, : plus pre-training",
               draw_compute, lambda o: o["compute"])

# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description="Write report.md and figures from fit_scaling.py's results.json.")
    ap.add_argument("results", help="a results.json written by fit_scaling.py")
    ap.add_argument("--out", help="output directory (default: the directory of results.json)")
    a = ap.parse_args(argv)
    try:
        with open(a.results) as f:
            res = json.load(f)
    except (OSError, ValueError) as e:
        print(f"error: cannot read {a.results} ({e}): run fit_scaling.py on the sweep directory first", file=sys.stderr)
        return 1
    if not isinstance(res, dict) or res.get("schema") != 1:  # another layout would mislead, not fail
        print(f"error: {a.results} has schema {res.get('schema') if isinstance(res, dict) else None!r}, "
              f"this report reads schema 1: run this version's fit_scaling.py again", file=sys.stderr)
        return 1
    out = a.out or os.path.dirname(os.path.abspath(a.results))
    md_path = os.path.join(out, "report.md")
    try:
        os.makedirs(out, exist_ok=True)
        fnd = findings(res)
        plots(res, out)
        with open(md_path, "w") as f:   # for reading: no program decides from it
            f.write(report_md(res, fnd))
    except OSError as e:
        if os.path.exists(md_path):   # half-written: gone rather than misleading
            os.remove(md_path)
        print(f"error: cannot write to {out} ({e.strerror or e}): free space in it or choose another "
              f"--out directory", file=sys.stderr)
        return 1
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        print(f"error: {a.results} is not a results.json as fit_scaling.py writes it "
              f"({type(e).__name__}: {e}): run fit_scaling.py again", file=sys.stderr)
        return 1
    for f in fnd:
        print(f"- {f['title']}: {f['text']}")
    print(f"wrote {out}/report.md and {len(PLOTS)} figures")
    return 0

if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # redirected (a job's log), each line at once
    sys.exit(main())
