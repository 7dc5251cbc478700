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

from fit_scaling import LANG, powerlaw, predict_finetune, predict_scratch, write_atomic

SEED_ORDER = ["de", "es", "zh"]   # the seed's finding: German > Spanish > Chinese
PLOTS = {"pretrain_N": "fig2_pretrain_loss_vs_N.png", "pretrain_C": "fig3_pretrain_loss_vs_compute.png",
         "data": "fig4_5_loss_vs_data.png", "frac": "fig6_Df_over_De.png",
         "N": "loss_vs_N_at_fixed_Df.png", "compute": "fig7_loss_vs_compute.png"}

def name(o):
    return LANG.get(o["language"], o["label"])

def g(x, f=".3g"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, f)

def with_ci(x, c, f=".3g"):
    return "n/a" if x is None else f"{x:{f}} [{g(c[0], f)}, {g(c[1], f)}]" if c else f"{x:{f}}"

def laws(T):
    """The languages whose joint fit ran, with a law."""
    return {t: o for t, o in T.items() if o["law"]}

# ----------------------------------------------------------------------------- findings

def finding_order(T):
    """The seed's German > Spanish > Chinese, by the fitted D_e/D_f (geometric mean over each
    language's fine-tuned cells) with its 95% CI: the order is clear when neighbours' CIs do not overlap."""
    L = laws(T)
    if len(L) < 2:
        return None, "Fewer than two languages have a fitted transfer law, so the order across languages cannot be tested."
    ranked = sorted(L, key=lambda t: L[t]["law"]["gm_De_over_Df"], reverse=True)
    order = [L[t]["language"] for t in ranked if L[t]["language"] in SEED_ORDER]
    seed = [l for l in SEED_ORDER if l in order]
    holds = order == seed if len(seed) >= 2 else None
    cis = [L[t]["law"]["ci"]["gm_De_over_Df"] for t in ranked]
    clear = all(a and b and a[0] > b[1] for a, b in zip(cis, cis[1:]))
    cells = {tuple(sorted((p["N"], p["D_f"]) for p in o["points"])) for o in L.values()}
    text = ("Fitted D_e/D_f, the factor by which pre-training multiplies the fine-tuning data (geometric mean over "
            + ("the same" if len(cells) == 1 else "each language's own, differing,") + " fine-tuned cells, 95% CI): "
            + ", ".join(f"{name(L[t])} {with_ci(L[t]['law']['gm_De_over_Df'], L[t]['law']['ci']['gm_De_over_Df'], '.2f')}"
                        + ("" if L[t]["law"]["transfer_detected"] else " (no measurable transfer)") for t in ranked)
            + ". Observed order: " + " > ".join(name(L[t]) for t in ranked) + ". ")
    if holds is None:
        return None, text + "Fewer than two of German, Spanish and Chinese were measured, so the seed's order is not tested."
    text += (f"The seed's German > Spanish > Chinese {'holds' if holds else 'does not hold'} at this scale"
             + ("" if len(seed) == 3 else f" (only {', '.join(LANG[l] for l in seed)} measured)")
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
                            "boundary, or transfer was not measurable)"}[holds]
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
            a = powerlaw(*zip(*f))[0] if len(f) > 1 else math.nan
            b = powerlaw(*zip(*s))[0] if len(s) > 1 else math.nan
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
    """What is only a bound, said as such: unconverged scratch runs, censored and negative cells."""
    c = {k: sum(o["counts"][k] for o in T.values()) for k in next(iter(T.values()))["counts"]} if T else {}
    if not c:
        return None, "No scratch or fine-tuned runs."
    neg = [f"{name(o)} N={p['N']:.3g} D_f={p['D_f']:.3g}" for o in T.values() for p in o["points"] if "negative" in p["flags"]]
    return None, (f"{c['scratch_unconverged']} of {c['scratch_converged'] + c['scratch_unconverged']} scratch cells did not "
                  f"converge (stopped on their budget): they are upper bounds on the converged loss, shown as such and not "
                  f"fitted. {c['finetune_censored']} of {c['finetune']} fine-tuned cells reached a loss below every converged "
                  f"scratch loss at their size, so only D_e > D_max is known (right-censored; a one-sided term in the fit). "
                  f"{c['finetune_negative']} showed negative transfer per point (D_e < D_f)"
                  + (": " + "; ".join(neg) if neg else "") + "; they enter the fit as residuals. "
                  f"{c['finetune_no_curve']} had no converged scratch curve at their size.")

def finding_crosscheck(T):
    r = [p["D_e_interp"] / p["D_e"] for o in T.values() for p in o["points"]
         if p["D_e"] and p["D_e_interp"] and math.isfinite(p["D_e"]) and math.isfinite(p["D_e_interp"])
         and not {"censored", "extrapolated"} & set(p["flags"])]
    q = [p["D_e"] / p["D_e_law"] for o in T.values() for p in o["points"]
         if p["D_e"] and p["D_e_law"] and math.isfinite(p["D_e"]) and "censored" not in p["flags"]]
    if not r and not q:
        return None, "No fine-tuned cell has a D_e inside the measured scratch range, so there is no cross-check."
    return None, ((f"Per point, D_e from monotone interpolation of the measured scratch points was {np.median(r):.2f}x "
                   f"(median; range {min(r):.2f}-{max(r):.2f}) the D_e from the fitted curve over {len(r)} "
                   f"interpolated cells. " if r else "")
                  + (f"The per-point D_e was {np.median(q):.2f}x (median) the law's D_f + k D_f^alpha N^beta over {len(q)} "
                     f"uncensored cells." if q else ""))

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
    rb, rl = [x["rise_at_best"] for x in f if x["rise_at_best"] is not None], [x["rise_last"] for x in f]
    if not rb:
        return None, "English val loss was logged during fine-tuning, but not at the best checkpoint."
    return None, (f"Over {len(f)} fine-tuning runs that logged English val loss, it rose by {np.mean(rb):.3f} nats/token "
                  f"on average by the best target-language checkpoint (range {min(rb):.3f} to {max(rb):.3f}) "
                  f"and by {np.mean(rl):.3f} by the last evaluation.")

def finding_law(o):
    law = o["law"]
    if not law:
        return None, f"No transfer law: {o['note']}."
    b = law["boot"]
    text = (f"L_ft = L_scratch(N, D_f + k D_f^alpha N^beta) fitted jointly with the scratch curve over {law['n_finetune']} "
            f"fine-tuned cells ({law['n_censored']} censored) and {law['n_scratch']} converged scratch cells: "
            f"k = {with_ci(law['k'], law['ci']['k'])}, alpha = {with_ci(law['alpha'], law['ci']['alpha'])}, "
            f"beta = {with_ci(law['beta'], law['ci']['beta'])} (tokens; in bytes k = "
            f"{with_ci(law['k_bytes'], law['ci']['k_bytes'])}), rms residual {100 * law['rms_log_resid']:.2f}% of the "
            f"loss. CIs: {b['draws']} parametric bootstrap draws at {100 * law['noise_sigma']:.2f}% noise "
            f"({law['noise_from']}); {b['failed']} refits failed ({100 * (b['failure_rate'] or 0):.1f}%).")
    if not law["transfer_detected"]:
        text += (f" Pre-training did not measurably help {name(o)}: the fit puts D_t below {law['max_Dt_over_Df']:.2g} D_f at "
                 f"every cell (k ~ 0), so alpha and beta are unidentified and not to be read.")
    else:
        text += "".join(f" {v} is unidentified (one value of {w} measured)." for k, v, w in
                        (("alpha", "alpha", "D_f"), ("beta", "beta", "N")) if not law["identified"][k])
    return None, text

def findings(res):
    T = res["targets"]
    items = [("Transfer across languages", finding_order(T)), ("D_f/D_e against N and D_f", finding_fraction(T)),
             ("Bounds, censoring, negative transfer", finding_bounds(T)),
             *((f"Transfer law for {o['label']}", finding_law(o)) for o in T.values()),
             ("Cross-check", finding_crosscheck(T)), ("Compute efficiency", finding_compute(T)),
             ("Parameter- vs data-limited", finding_limited(T)), ("English pre-training", finding_pretrain(res["pretrain"])),
             ("Forgetting", finding_forgetting(T))]
    return [{"title": t, "holds": h, "text": x} for t, (h, x) in items]

# ----------------------------------------------------------------------------- report.md

def table(head, rows):
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(map(str, r)) + " |" for r in rows]) + "\n"

def cell(p):
    """One fine-tuned cell in the D_t grid: D_t (D_f/D_e), or the bound it is."""
    if "no_scratch_curve" in p["flags"]:
        return "no curve"
    if "censored" in p["flags"]:
        return f"D_e > {g(p['D_e_lower'])} (censored)"
    if "below_floor" in p["flags"]:
        return "below floor (D_e = inf)"
    return f"{g(p['D_t'])} ({g(p['Df_over_De'], '.2f')})" + ("*" if "extrapolated" in p["flags"] else "")

def mean_pm(x):
    return f"{x['loss']:.4f}" + (f" ± {x['std']:.4f} (n={x['n']})" if x["n"] > 1 else "")

def target_md(o):
    md = [f"## {o['label']}\n"]
    if o["points"]:
        Ns, Dfs = sorted({p["N"] for p in o["points"]}), sorted({p["D_f"] for p in o["points"]})
        cells = {(p["N"], p["D_f"]): p for p in o["points"]}
        md.append("D_t in tokens per cell (D_f/D_e); * = D_e extrapolated beyond the converged scratch D; "
                  "negative D_t = negative transfer; censored = only the bound D_e > D_max is known.\n")
        md.append(table(["D_f \\ N"] + [g(n) for n in Ns],
                        [[g(d)] + [cell(cells[n, d]) if (n, d) in cells else "" for n in Ns] for d in Dfs]))
        md.append(table(["runs", "N", "D_f", "D_f bytes", "loss", "D_e", "D_e (interp)", "D_e (law)", "D_t",
                         "D_t bytes", "D_f/D_e", "flags"],
                        [[", ".join(p["runs"]), g(p["N"]), g(p["D_f"]), g(p["D_f_bytes"]), mean_pm(p),
                          ("> " + g(p["D_e_lower"])) if "censored" in p["flags"] else g(p["D_e"]), g(p["D_e_interp"]),
                          g(p["D_e_law"]), g(p["D_t"]), g(p["D_t_bytes"]), g(p["Df_over_De"], ".3f"), " ".join(p["flags"])]
                         for p in o["points"]]))
    fit = o["scratch_fit"]
    if fit:
        md.append(f"Scratch curve L = [a_N + D_c,N/D]^alpha_D per size on converged cells (a_N < 0: a curve that "
                  f"steepens with D), continued beyond the measured D as a power law: alpha_D = "
                  f"{with_ci(fit['alpha_D'], fit['ci']['alpha_D'])}; "
                  + "; ".join(f"N={k}: a_N = {c['a']:.3g}, D_c,N = {c['D_c']:.3g}" for k, c in fit["curve"].items())
                  + ".\n")
    md.append("Scratch cells (an unconverged cell is an upper bound on the converged loss, not fitted):\n")
    md.append(table(["runs", "N", "D", "D bytes", "loss", "converged", "fit"],
                    [[", ".join(s["runs"]), g(s["N"]), g(s["D"]), g(s["D_bytes"]), mean_pm(s),
                      "yes" if s["converged"] else "no (upper bound)", g(s["fit"], ".4f")] for s in o["scratch"]]))
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
                                "fine-tuned censored", "fine-tuned negative", "fine-tuned without curve"],
                               [[o["label"]] + [o["counts"][k] for k in ("scratch_converged", "scratch_unconverged",
                                "finetune_measured", "finetune_censored", "finetune_negative", "finetune_no_curve")]
                                for o in T.values()])]
    md.append("## Transfer law L_ft = L_scratch(N, D_f + k D_f^alpha N^beta), fitted jointly (95% CIs)\n")
    md.append(table(["language", "k (tokens)", "k (bytes)", "alpha", "beta", "D_e/D_f (geo. mean)",
                     "scratch / fine-tuned / censored", "failed refits", "note"], [law_row(o) for o in T.values()]))
    return md

def law_row(o):
    law = o["law"]
    if not law:
        return [o["label"]] + ["n/a"] * 7 + [o["note"]]
    ident = lambda k: "" if law["identified"][k] else " (unidentified)"
    return [o["label"], with_ci(law["k"], law["ci"]["k"]), with_ci(law["k_bytes"], law["ci"]["k_bytes"]),
            with_ci(law["alpha"], law["ci"]["alpha"]) + ident("alpha"), with_ci(law["beta"], law["ci"]["beta"]) + ident("beta"),
            with_ci(law["gm_De_over_Df"], law["ci"]["gm_De_over_Df"], ".2f"),
            f"{law['n_scratch']} / {law['n_finetune']} / {law['n_censored']}",
            f"{law['boot']['failed']} of {law['boot']['draws']}",
            "" if law["transfer_detected"] else "no measurable transfer: k ~ 0"]

def checks_md(C):
    """Each check beside its grid twin; a budget check passes when the best loss moved by less than
    twice the run-to-run spread (the budget did not set the loss)."""
    md = ["## Checks (runs beside the grid, not fitted)\n",
          table(["tag", "run", "converged", "loss", "grid twin", "twin loss", "difference", "relative"],
                [[c["tag"], c["run"], "yes" if c["converged"] else "no", g(c["loss"], ".4f"), c["grid_run"] or "none",
                  g(c["grid_loss"], ".4f"), g(c["diff"], "+.4f"), g(c["rel_diff"], "+.2%")] for c in C["runs"]])]
    sigma = C["seed_sigma_log"]
    if sigma:
        md.append(f"Run-to-run spread from the seed checks and repeated cells: {100 * sigma:.2f}% of the loss ({C['seed_groups']} cells, "
                  f"{C['seed_dof']} degrees of freedom); the bootstrap draws its noise from it.\n")
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
    md.append("## Figures\n\n" + "\n".join(f"- ![{k}]({v})" for k, v in PLOTS.items()) + "\n")
    md.append("## Messages\n\n" + ("\n".join(f"- {m}" for m in res["messages"]) or "none") + "\n")
    return "\n".join(md)

# ----------------------------------------------------------------------------- figures

def save(fig, path):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".png.tmp")
    os.close(fd)
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)

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
    """One size: converged scratch (o) and its fitted curve; unconverged scratch as upper bounds (v);
    fine-tuned (s) and the fitted law (dashed); D_t as a dotted line D_f -> D_e; censored cells as an
    arrow from D_f to past D_max."""
    sc = [s for s in o["scratch"] if s["N"] == n]
    ft = [p for p in o["points"] if p["N"] == n]
    conv, ub = [s for s in sc if s["converged"]], [s for s in sc if not s["converged"]]
    ax.scatter([s["D"] for s in conv], [s["loss"] for s in conv], c="k", marker="o", label="scratch (converged)")
    ax.scatter([s["D"] for s in ub], [s["loss"] for s in ub], facecolors="none", edgecolors="k", marker="v",
               label="scratch unconverged (upper bound)")
    ax.scatter([p["D_f"] for p in ft], [p["loss"] for p in ft], c="C3", marker="s", label="fine-tuned")
    fit, law, key = o["scratch_fit"], o["law"], f"{n:.6g}"
    if fit and key in fit["curve"]:   # drawn where it was measured: beyond, the curve is only a continuation
        d = np.geomspace(*fit["D_range"][key], 200)
        ax.plot(d, predict_scratch(fit, n, d), "k-", lw=0.8, label="scratch fit")
        if ft:
            df = np.geomspace(min(p["D_f"] for p in ft), max(p["D_f"] for p in ft), 100)
            ax.plot(df, predict_finetune(fit, law, n, df), "C3--", lw=0.8, label="law fit")
    for p in ft:
        if "censored" in p["flags"]:
            ax.annotate("", xy=(p["D_e_lower"] * 2, p["loss"]), xytext=(p["D_f"], p["loss"]),
                        arrowprops={"arrowstyle": "->", "color": "C1"})
        elif p["D_e"] and math.isfinite(p["D_e"]):
            ax.plot([p["D_f"], p["D_e"]], [p["loss"]] * 2, ":", c="C3" if p["D_t"] > 0 else "C0", lw=0.8)
    ax.set(xscale="log", title=f"{o['label']}  N={n:.3g}", xlabel="D (tokens)", ylabel="val loss (nats/token)")

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
    """Fig 6: per-point D_f/D_e against D_f, one colour per size, with the law's line; above 1 = negative."""
    col = colors(p["N"] for p in o["points"])
    for n in col:
        ps = [p for p in o["points"] if p["N"] == n and p["Df_over_De"] and "censored" not in p["flags"]]
        ax.plot([p["D_f"] for p in ps], [p["Df_over_De"] for p in ps], "o", c=col[n], label=f"N={n:.3g}")
        cs = [p for p in o["points"] if p["N"] == n and "censored" in p["flags"]]
        ax.plot([p["D_f"] for p in cs], [p["D_f"] / p["D_e_lower"] for p in cs], "v", c=col[n], mfc="none")
        law = o["law"]
        if law:
            df = np.geomspace(min(p["D_f"] for p in o["points"]), max(p["D_f"] for p in o["points"]), 50)
            ax.plot(df, 1 / (1 + law["k"] * df ** (law["alpha"] - 1) * n ** law["beta"]), "-", c=col[n], lw=0.8)
    ax.axhline(1, c="gray", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="D_f (tokens)", ylabel="D_f / D_e  (v = censored bound)")

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
    per_target(T, p["frac"], "D_f/D_e vs D_f (Fig 6): points per cell, lines from the law; above 1 = negative transfer",
               draw_frac, lambda o: any(q["Df_over_De"] or q["D_e_lower"] for q in o["points"]))
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
    out = a.out or os.path.dirname(os.path.abspath(a.results))
    os.makedirs(out, exist_ok=True)
    fnd = findings(res)
    plots(res, out)
    write_atomic(os.path.join(out, "report.md"), report_md(res, fnd))
    for f in fnd:
        print(f"- {f['title']}: {f['text']}")
    print(f"wrote {out}/report.md and {len(PLOTS)} figures")
    return 0

if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # redirected (a job's log), each line at once
    sys.exit(main())
