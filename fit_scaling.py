"""
Analysis stage, part 1 of 2: read every <run>/log.json under a directory, fit how much English
pre-training is worth on another language (Kim 2021, after Hernandez et al. 2021), and write
<dir>/report/results.json; then report.py turns that file into report.md and figures.

    python fit_scaling.py out/builtin/ [--out /tmp/rep] [--boot 2000]

N, D, C and L as docs/contracts.md defines them. D_e: the scratch data that reaches a fine-tuned
run's loss at the same N, read off a monotone curve through the converged scratch points (an
unconverged run is a bound, never a point); measured only between points at most MAX_GAP apart.
Per language: D_e/D_f's geometric mean and, where transfer is positive (in at least 3 cells and
half of them), log D_t = log k + alpha log D_f + beta log N by least squares. Intervals: where a
rerun's estimate lands (a bootstrap's spread times sqrt 2), each draw moving every cell by the
spread measured at its D, split into what the draw of D_f documents, the pre-trained model and the
run itself move, and each arm by the learning rate its calibration, run again, would choose.
"""
import argparse
import glob
import json
import math
import os
import sys

import numpy as np
from scipy.interpolate import PchipInterpolator

import report  # one way: report.py reads results.json and imports nothing of ours
from util import atomic_write_text, fail

SCHEMA = 1
LANG = {"en": "English", "de": "German", "es": "Spanish", "zh": "Chinese"}
REQUIRED = ["role", "model.N", "data.dataset", "data.language", "data.dataset_tokens",
            "data.dataset_bytes", "best.val_loss", "best.flops"]
POSITIVE = ["best.val_loss", "model.N", "data.dataset_tokens", "data.dataset_bytes"]
MAX_GAP = 2.0        # D_e is measured only between converged scratch points at most 2x apart
FORMS = ("pchip", "linear")   # monotone curves between scratch points; the bootstrap draws both
ASSUMED_SIGMA = 0.01  # run-to-run spread in log L where no cell was run twice
MIN_DOF = 4          # degrees of freedom at a D (over sizes and languages) for a spread of its own
LOG_BIG = 700.0      # exp() overflows above this
MAX_PAIRED = 2000    # draws whose every pair gives an interval (4M differences at most)

# ------------------------------------------------------------ reading logs
def fnum(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")

def check_log(log):
    """Why a log cannot be used, or None."""
    if not isinstance(log, dict) or log.get("schema") != SCHEMA:
        schema = log.get("schema") if isinstance(log, dict) else "?"
        return f"schema {schema!r}, this script reads schema {SCHEMA}"
    if log.get("status") in ("running", "failed"):
        return f"status {log['status']}" + (f" ({log.get('error')})" if log.get("error") else "")
    values = {}
    for field in REQUIRED:
        v = log
        for k in field.split("."):
            if not isinstance(v, dict) or k not in v:
                return f"missing field {field}"
            v = values[field] = v[k]
    if log["role"] not in ("pretrain", "scratch", "finetune"):
        return f"unknown role {log['role']!r}"
    bad = [f for f in POSITIVE if not 0 < fnum(values[f]) < math.inf]
    return f"{bad[0]} is {values[bad[0]]!r} (NaN, missing or not positive)" if bad else None

def converged(log):
    """Stopped on its stopping rule, not its budget (older logs: early, best before last)."""
    if "converged" in log:
        return bool(log["converged"])
    last = (log.get("evals") or [{}])[-1].get("iter")
    return log.get("status") == "early_stopped" and fnum(log["best"].get("iter")) < fnum(last)

def load_runs(root, msgs):
    runs, skipped = [], []
    for path in sorted(glob.glob(os.path.join(root, "**", "log.json"), recursive=True)):
        name = os.path.relpath(os.path.dirname(path), root)
        try:
            with open(path) as f:
                log = json.load(f)
            why = check_log(log)
        except (OSError, ValueError) as e:
            why = f"unreadable log.json ({e})"
        if why:
            skipped.append({"run": name, "reason": why})
            continue
        d, best, test = log["data"], log["best"], fnum(log["best"].get("test_loss"))
        test = test if 0 < test < math.inf else None  # held out; the val loss stopped the run
        runs.append({"name": name, "dir": os.path.dirname(path), "log": log, "role": log["role"],
                     "target": d["dataset"], "lang": d["language"] or "?",
                     "tag": (log.get("config") or {}).get("tag") or "",
                     "N": float(log["model"]["N"]), "D": float(d["dataset_tokens"]),
                     "bpt": float(d["dataset_bytes"]) / float(d["dataset_tokens"]),
                     "loss": test or float(best["val_loss"]), "flops": fnum(best["flops"]),
                     "loss_from": "test" if test else "val", "converged": converged(log),
                     "pretrained": log.get("init_from") or None, "evals": log.get("evals") or [],
                     "data_seed": d.get("data_seed"), "stop_reason": log.get("stop_reason")})
    msgs.extend(f"left out {s['run']}: {s['reason']}" for s in skipped)
    return runs, skipped

def cell_key(r):
    return (r["role"], r["target"], r["N"]) + ((r["D"],) if r["role"] != "pretrain" else ())

def merge_duplicates(runs, msgs):
    """One cell per (role, dataset, N, D_f), its runs averaged (the lowest is biased low): its
    converged runs if it has any (a run its budget stopped is a bound), in both arms alike."""
    groups = {}
    for r in runs:
        groups.setdefault(cell_key(r), []).append(r)
    cells = []
    for key, rs in sorted(groups.items()):
        use = [r for r in rs if r["converged"]] or rs
        loss = [r["loss"] for r in use]
        c = dict(use[0], loss=float(np.mean(loss)), n=len(use),
                 log_losses=[math.log(x) for x in loss],
                 pretrained=sorted({r["pretrained"] for r in use if r["pretrained"]}),
                 by_run=sorted((r["data_seed"] or 0, r["pretrained"] or "", math.log(r["loss"]))
                               for r in use),
                 std=float(np.std(loss, ddof=1)) if len(use) > 1 else None,
                 runs=[r["name"] for r in rs], converged=all(r["converged"] for r in use))
        cells.append(c)
        if len(rs) > 1:
            at = f"N={key[2]:.3g}" + (f" D={key[3]:.3g}" if len(key) > 3 else "")
            msgs.append(f"{len(rs)} runs of {key[0]} {key[1]} {at} ({', '.join(c['runs'])}): "
                        f"averaged {len(use)}, loss {c['loss']:.4f}"
                        + (f" +- {c['std']:.4f}" if c["std"] is not None else ""))
    return cells

def spread(groups):
    """The pooled standard deviation of log L within groups of runs of one cell."""
    dev = [x - np.mean(v) for v in groups for x in v]
    dof = sum(len(v) - 1 for v in groups)
    return {"sigma_log": float(np.sqrt(np.sum(np.square(dev)) / dof)) if dof else None,
            "cells": len(groups), "dof": dof}

def analyse_checks(checks, cells):
    """Tagged runs beside their grid twins; each arm's run-to-run spread, pooled and at each D."""
    twins = {cell_key(c): c for c in cells}
    rows = []
    for c in sorted(checks, key=lambda r: r["name"]):
        if calibration_rate(c["tag"]) is not None or c["tag"].startswith("paired"):
            continue  # reported in their own sections
        t = twins.get(cell_key(c))
        rows.append({"tag": c["tag"], "run": c["name"], "role": c["role"], "target": c["target"],
                     "N": c["N"], "D_f": c["D"], "loss": c["loss"], "converged": c["converged"],
                     "grid_run": t and t["runs"][0], "grid_loss": t and t["loss"],
                     "diff": t and c["loss"] - t["loss"],
                     "rel_diff": t and c["loss"] / t["loss"] - 1})
    groups = {"scratch": {}, "finetune": {}}
    for c in cells:
        if c["n"] > 1 and c["role"] in groups:
            groups[c["role"]].setdefault(cell_key(c), list(c["log_losses"]))
    # a seed check moves the run seed alone, not the documents nor the pre-trained model: a
    # rerun's spread only where no cell was repeated
    for c in checks if not any(groups.values()) else ():
        if c["tag"].startswith("seed") and cell_key(c) in twins and c["role"] in groups:
            twin = twins[cell_key(c)]
            groups[c["role"]].setdefault(cell_key(c), list(twin["log_losses"])).append(
                math.log(c["loss"]))
    out = {"runs": rows}
    for role, g in groups.items():
        out[role] = dict(spread(g.values()), by_D={
            f"{D:g}": spread([v for k, v in g.items() if k[3] == D]) for D in {k[3] for k in g}})
    out["sigma_run"] = out["scratch"]["sigma_log"] or out["finetune"]["sigma_log"]
    out.update(shared_spreads(cells))
    return out

def shared_spreads(cells):
    """What a rerun moves together, by the method of moments on cells run several times: the
    share of the scratch spread that a draw of D_f documents moves alike at every size (sizes x
    draws, two-way), and the spread of the pre-trained model (fine-tunes from one model against
    those from the other, each beside its scratch twin)."""
    runs = {cell_key(c): {seed: (model, x) for seed, model, x in c["by_run"]} for c in cells
            if c["role"] != "pretrain" and c["n"] > 1
            and len({seed for seed, _, _ in c["by_run"]}) == c["n"]}
    draw, own, by_model = [], [], {}
    for t, D in sorted({(k[1], k[3]) for k in runs if k[0] == "scratch"}):
        by_size = [r for k, r in sorted(runs.items()) if k[:2] == ("scratch", t) and k[3] == D]
        seeds = sorted(set.intersection(*(set(r) for r in by_size)))
        if len(by_size) > 1 and len(seeds) > 1:
            table = np.array([[r[s][1] for s in seeds] for r in by_size])
            resid = table - table.mean(1, keepdims=True) - table.mean(0) + table.mean()
            own.append(float(np.sum(resid ** 2)) / ((len(by_size) - 1) * (len(seeds) - 1)))
            draw.append(float(np.var(table.mean(0), ddof=1)) - own[-1] / len(by_size))
    for (role, t, N, D), ft in sorted(runs.items()):
        if role != "finetune":
            continue
        sc = runs.get(("scratch", t, N, D), {})
        y = {}  # fine-tuned minus scratch twin, by pre-trained model
        for seed in set(ft) & set(sc):
            y.setdefault(ft[seed][0], []).append(ft[seed][1] - sc[seed][1])
        if len(y) == 2:
            (_, first), (_, second) = sorted(y.items())
            by_model.setdefault((t, N), []).append(np.mean(second) - np.mean(first))
    # the difference of two models, averaged over D beyond its scatter: twice a model's variance
    model = [np.mean(v) ** 2 - np.var(v, ddof=1) / len(v) for v in by_model.values() if len(v) > 1]
    draw_var, own_var = max(0.0, float(np.mean(draw))) if draw else 0.0, np.mean(own or [0.0])
    return {"draw_share": draw_var / (draw_var + own_var) if draw_var + own_var else 0.0,
            "sigma_pretrain": math.sqrt(max(0.0, float(np.mean(model))) / 2) if model else 0.0,
            "draw_groups": len(draw), "pretrain_groups": len(model)}

# ------------------------------------------------------------ reading D_e
def scratch_points(cs):
    """One size's converged scratch cells as sorted (log D, log L), only the points that beat
    every smaller D (more data cannot make the converged loss worse)."""
    keep = []
    for c in sorted(cs, key=lambda c: c["D"]):
        if not keep or c["loss"] < keep[-1]["loss"]:
            keep.append(c)
    return np.log([c["D"] for c in keep]), np.log([c["loss"] for c in keep])

def size_curves(conv, sizes):
    """{N: scratch_points} of the sizes with at least two points."""
    curves = {n: scratch_points([c for c in conv if c["N"] == n]) for n in sizes}
    return {n: cur for n, cur in curves.items() if len(cur[0]) >= 2}

def read_De(x, y, lL, form):
    """(log D_e where the scratch points x = log D, y = log L reach lL, PCHIP or linear between
    them and the end segment beyond; where: 'measured', 'gap' (points over MAX_GAP apart),
    'above' (D_e > D_max) or 'below')."""
    u, q = -y, -lL
    if q > u[-1] or q < u[0]:
        i, end, where = (len(u) - 2, -1, "above") if q > u[-1] else (0, 0, "below")
        slope = (x[i + 1] - x[i]) / (u[i + 1] - u[i])
        return float(x[end] + (q - u[end]) * slope), where
    j = min(max(1, int(np.searchsorted(u, q))), len(u) - 1)
    where = "measured" if x[j] - x[j - 1] <= math.log(MAX_GAP) + 1e-9 else "gap"
    if form == "pchip" and len(u) > 2:
        return float(PchipInterpolator(u, x)(q)), where
    return float(np.interp(q, u, x)), where

def read_on(curve, lL, form="pchip"):
    """read_De on scratch_points' curve; (None, 'no_scratch_curve') without one."""
    return (None, "no_scratch_curve") if curve is None else read_De(*curve, lL, form)

def forward_logL(x, y, lD):
    """log L of a size's scratch curve at log D, inside its measured range (PCHIP)."""
    return PchipInterpolator(x, y)(lD) if len(x) > 2 else np.interp(lD, x, y)

def fit_law(lDf, lN, lDt, w):
    """(log k, alpha, beta) by least squares weighted by w; an exponent whose variable takes one
    value is held at 0 (unidentified)."""
    cols = [np.ones_like(lDf)] + [v for v in (lDf, lN) if np.ptp(v) > 0]
    sw = np.sqrt(w)
    coef = np.linalg.lstsq(np.stack(cols, 1) * sw[:, None], lDt * sw, rcond=None)[0]
    a = coef[1] if np.ptp(lDf) > 0 else 0.0
    b = coef[-1] if np.ptp(lN) > 0 else 0.0
    return float(coef[0]), float(a), float(b)

# ------------------------------------------------------------ one language
def ci(values, at):
    """The 95% interval of where a rerun's estimate lands: at plus the difference of each pair of
    draws (a rerun and this study each carry the noise; a drift of every draw cancels)."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)])[:MAX_PAIRED]
    if len(v) < 2:
        return None
    pairs = np.subtract.outer(v, v)[~np.eye(len(v), dtype=bool)]
    return [float(at + q) for q in np.percentile(pairs, [2.5, 97.5])]

def total_sigma(noise, role, D):
    """A run's spread in log L at D (a few documents decide a small D_f): its role's (else
    scratch's) at the nearest D that had repeats, else the pooled one."""
    for table in (noise.get(role), noise.get("scratch")):
        by_D = {float(d): s["sigma_log"] for d, s in (table or {}).items()
                if s["sigma_log"] and s["dof"] >= MIN_DOF}
        if by_D:
            return by_D[min(by_D, key=lambda d: abs(math.log(d / D)))]
    return noise["sigma_run"]

def own_sigma(noise, role, D, share, runs=1):
    """A run's own spread at D: its total less the draw's share and, fine-tuned, the pre-trained
    model's within a cell of runs from two models (all of it for one run)."""
    own = total_sigma(noise, role, D) ** 2 - share * total_sigma(noise, "scratch", D) ** 2
    if role == "finetune":
        own -= noise["sigma_pretrain"] ** 2 * (runs / (runs - 1) / 2 if runs > 1 else 1.0)
    return math.sqrt(max(own, 0.0))

def cell_spread(noise, c):
    """(the draw's, the run's own) spread of a cell's mean log L, as replicate draws them."""
    share = noise.get("draw_share", 0.0)
    return (math.sqrt(share) * total_sigma(noise, "scratch", c["D"]),
            own_sigma(noise, c["role"], c["D"], share, c["n"]) / math.sqrt(c["n"]))

def exp_ci(logs, at):
    """ci of a quantity drawn in logs, back to the quantity."""
    interval = ci(logs, at)
    return [math.exp(min(x, LOG_BIG)) for x in interval] if interval else None

def rate_shifts(calibration, noise, rng):
    """{(N, role): log L moved} by a calibration run again: each rate's loss moved by a run's own
    spread, the arm by how much worse the winner was measured than the grid's rate (the winner
    among rates whose runs converged, as sweep.py chooses, and the grid's)."""
    shifts = {}
    for row in calibration:
        chosen = None if row["chosen"] is None else f"{row['chosen']:g}"
        if chosen in row["losses"]:
            lL = {r: math.log(L) for r, L in row["losses"].items()
                  if row["converged"][r] or r == chosen or not any(row["converged"].values())}
            sigma = own_sigma(noise, row["role"], row["D"], noise.get("draw_share", 0.0))
            again = min(lL, key=lambda r: lL[r] + sigma * rng.standard_normal())
            shifts[row["N"], row["role"]] = lL[again] - lL[chosen]
    return shifts

def replicate(conv, ft, sizes, noise, rng, form, calibration=()):
    """One bootstrap draw of the fine-tuned cells' log D_e: every cell moved by its documents'
    draw (per D and data seed), its pre-trained model's (per model) and its own, each averaged
    over its runs, and each arm by the rate a calibration run again would choose."""
    sp = noise["sigma_pretrain"]
    rate = rate_shifts(calibration, noise, rng)
    z = {}
    def shared(keys):
        return np.mean([z.setdefault(k, rng.standard_normal()) for k in keys] or [0.0])
    def moved(c, role):
        draw, own = c["spread"]
        return (rate.get((c["N"], role), 0.0)
                + draw * shared([(c["D"], seed) for seed, _, _ in c["by_run"]])
                + (sp * shared([m for _, m, _ in c["by_run"]]) if role == "finetune" else 0.0)
                + own * rng.standard_normal())
    curves = size_curves([dict(c, loss=c["loss"] * math.exp(moved(c, "scratch"))) for c in conv],
                         sizes)
    lL = [math.log(c["loss"]) + moved(c, "finetune") for c in ft]
    return [read_on(curves.get(c["N"]), x, form)[0] for c, x in zip(ft, lL)]

def law_and_summary(ft, lDe, law_idx, sum_idx, weights=None):
    """(the law over law_idx, a cell read off a flat curve weighted less; log geometric mean of
    D_e/D_f over sum_idx)."""
    lDf, lN = np.log([c["D"] for c in ft]), np.log([c["N"] for c in ft])
    ratio = [lDe[i] - lDf[i] for i in sum_idx if lDe[i] is not None]
    summary = float(np.mean(ratio)) if ratio else None
    idx = [i for i in law_idx if lDe[i] is not None and lDe[i] > lDf[i]]
    if len(idx) < 3:
        return None, summary
    lDt = np.log(np.exp([lDe[i] for i in idx]) - np.exp(lDf[idx]))
    w = np.array([weights[i] if weights else 1.0 for i in idx])
    return fit_law(lDf[idx], lN[idx], lDt, w), summary

def law_weights(ft, draws, idx):
    """1/variance of each law cell's log D_t over the draws (None under 10 draws), floored at a
    tenth of the median so that no cell decides alone."""
    if len(draws) < 10:
        return None
    var = {}
    for i in idx:
        lDt = [math.log(math.exp(d[i]) - ft[i]["D"]) for d in draws
               if d[i] is not None and d[i] > math.log(ft[i]["D"])]
        var[i] = float(np.var(lDt)) if len(lDt) > 2 else float("inf")
    finite = [v for v in var.values() if math.isfinite(v)]
    floor = 0.1 * float(np.median(finite)) if finite else 1.0
    return {i: 1.0 / max(v, floor, 1e-12) for i, v in var.items()}

def point_row(c, lDe, where, draws, curve):
    """A fine-tuned cell as results.json gives it: D_e, its interval and bounds, D_t, flags."""
    De = math.exp(min(lDe, LOG_BIG)) if lDe is not None else None
    flags = [] if where == "measured" else [where]
    p = {"runs": c["runs"], "N": c["N"], "D_f": c["D"], "D_f_bytes": c["D"] * c["bpt"],
         "loss": c["loss"], "n": c["n"], "std": c["std"], "converged": c["converged"],
         "flops": c["flops"], "pretrained": c["pretrained"], "where": where, "D_e": De,
         "D_e_ci": None, "D_t": None, "D_t_bytes": None, "De_over_Df": None,
         "De_over_Df_ci": None, "flags": flags}
    if De is not None:
        if De < c["D"]:
            flags.append("negative")
        if draws:
            p["D_e_ci"] = exp_ci(draws, lDe)
            p["De_over_Df_ci"] = [v / c["D"] for v in p["D_e_ci"]]
        p.update(D_t=De - c["D"], D_t_bytes=(De - c["D"]) * c["bpt"], De_over_Df=De / c["D"],
                 Df_over_De=c["D"] / De)
    p["D_e_lower"] = math.exp(curve[0][-1]) if where == "above" else (
        De if where == "budget" else None)
    p["D_e_upper"] = math.exp(curve[0][0]) if where == "below" else None
    return p

def analyse_target(target, cells, boot, rng, noise, msgs, calibration=()):
    scr = [c for c in cells if c["role"] == "scratch"]
    conv = [c for c in scr if c["converged"]]
    ft = sorted((c for c in cells if c["role"] == "finetune"), key=lambda c: (c["N"], c["D"]))
    lang, bpt = cells[0]["lang"], cells[0]["bpt"]
    label = f"{LANG.get(lang, lang)} ({target})"
    sizes = sorted({c["N"] for c in conv})
    curves = size_curves(conv, sizes)
    read = [read_on(curves.get(c["N"]), math.log(c["loss"])) for c in ft]
    # fine-tunes their budget stopped were still improving: their D_e is a lower bound
    read = [(x, "budget" if w == "measured" and not c["converged"] else w)
            for c, (x, w) in zip(ft, read)]
    measured = [i for i, (_, w) in enumerate(read) if w == "measured"]
    positive = [i for i in measured if read[i][0] > math.log(ft[i]["D"])]
    law_idx = positive if len(positive) >= max(3, len(measured) / 2) else []
    conv_spread = [dict(c, spread=cell_spread(noise, c)) for c in conv]  # once, not per draw
    ft_spread = [dict(c, spread=cell_spread(noise, c)) for c in ft]
    draws = [replicate(conv_spread, ft_spread, sizes, noise, rng, FORMS[b % len(FORMS)],
                       calibration) for b in range(boot)]
    weights = law_weights(ft, draws, law_idx)
    est, summary = law_and_summary(ft, [x for x, _ in read], law_idx, measured, weights)
    reps = [law_and_summary(ft, d, law_idx, measured, weights) for d in draws]
    out = {"language": lang, "name": LANG.get(lang, lang), "label": label, "bytes_per_token": bpt,
           "note": None, "law": None}
    out["points"] = [point_row(c, lDe, w, [d[i] for d in draws if d[i] is not None],
                               curves.get(c["N"])) for i, (c, (lDe, w)) in enumerate(zip(ft, read))]
    out["summary"] = None if summary is None else {
        "De_over_Df": math.exp(summary), "ci": exp_ci([s for _, s in reps], summary),
        "n_cells": len(measured), "n_negative": len(measured) - len(positive),
        "transfer": "positive" if len(positive) > len(measured) / 2 else "negative"}
    if est is None:
        out["note"] = (f"{len(positive)} of {len(measured)} fine-tuned cells with a measured D_e "
                       f"show positive transfer: the law D_t = k D_f^alpha N^beta is fitted where "
                       f"transfer is positive in at least 3 cells and half of them")
        msgs.append(f"{label}: {out['note']}")
    else:
        out["law"] = law_row(est, [r for r, _ in reps], boot, bpt, ft, law_idx, noise)
    out["scratch"] = [{"runs": c["runs"], "N": c["N"], "D": c["D"], "D_bytes": c["D"] * c["bpt"],
                       "loss": c["loss"], "n": c["n"], "std": c["std"], "flops": c["flops"],
                       "converged": c["converged"]} for c in scr]
    out["curves"] = {f"{n:.6g}": curve_lines(curves[n], out["law"], n, ft) for n in curves}
    flags = {"censored": "above", "below": "below", "gap": "gap", "negative": "negative",
             "no_curve": "no_scratch_curve", "budget": "budget"}
    out["counts"] = {"scratch_converged": len(conv), "scratch_unconverged": len(scr) - len(conv),
                     "finetune": len(ft), "finetune_measured": len(measured), **{
                         f"finetune_{k}": sum(f in p["flags"] for p in out["points"])
                         for k, f in flags.items()}, "law_cells": len(law_idx)}
    msgs.extend(f"{label}: scratch {', '.join(c['runs'])} did not converge (stopped on "
                f"{c.get('stop_reason') or 'its budget'}): an upper bound at N={c['N']:.3g} "
                f"D={c['D']:.3g}, not a point of the curve" for c in scr if not c["converged"])
    left = [n for n in {c["N"] for c in ft} if n not in curves]
    if left:
        msgs.append(f"{label}: no converged scratch curve at N = "
                    f"{', '.join(f'{n:.3g}' for n in left)}: its fine-tuned cells have no D_e")
    return out

def law_row(est, reps, boot, bpt, ft, idx, noise):
    """The law with its intervals; k in bytes is k c^(1-alpha), c = bytes/token (D_f, D_t scale)."""
    ok = [r for r in reps if r is not None]
    lk, a, b = est
    lk_bytes = [r[0] + (1 - r[1]) * math.log(bpt) for r in [est] + ok]
    Ns, Ds = {ft[i]["N"] for i in idx}, {ft[i]["D"] for i in idx}
    return {"k": math.exp(lk), "alpha": a, "beta": b, "k_bytes": math.exp(lk_bytes[0]),
            "n_cells": len(idx), "identified": {"alpha": len(Ds) > 1, "beta": len(Ns) > 1},
            "D_f_range": [min(Ds), max(Ds)], "N_range": [min(Ns), max(Ns)],
            "ci": {"k": exp_ci([r[0] for r in ok], lk), "alpha": ci([r[1] for r in ok], a),
                   "beta": ci([r[2] for r in ok], b), "k_bytes": exp_ci(lk_bytes[1:], lk_bytes[0])},
            "draws": [[float(x) for x in r] for r in ok],
            "boot": {"draws": boot, "failed": boot - len(ok)},
            "noise": {k: noise.get(k) for k in ("sigma_run", "sigma_pretrain", "draw_share")}}

def curve_lines(cur, law, n, ft):
    """What the report draws at one size: the scratch curve and the law's fine-tuned loss on it."""
    x, y = cur
    lx = np.linspace(x[0], x[-1], 60)
    lines = {"scratch": [[float(math.exp(a)), float(math.exp(b))]
                         for a, b in zip(lx, forward_logL(x, y, lx))], "law": []}
    Dfs = [c["D"] for c in ft if c["N"] == n]
    if law and Dfs:
        df = np.geomspace(min(Dfs), max(Dfs), 40)
        le = np.log(df + law["k"] * df ** law["alpha"] * n ** law["beta"])
        inside = le <= x[-1]
        lines["law"] = [[float(d), float(math.exp(v))]
                        for d, v in zip(df[inside], forward_logL(x, y, le[inside]))]
    return lines

# ------------------------------------------------------------ pre-training, compute, forgetting
def power_law(x, y, name):
    """{alpha, name_c, r2} of log y = alpha (log name_c - log x); None under two points."""
    if len(x) < 2:
        return None
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    s = c = r2 = float("nan")
    if np.ptp(lx) > 0:
        s, c = np.polyfit(lx, ly, 1)
        ss = np.sum((ly - ly.mean()) ** 2)
        r2 = float(1 - np.sum((ly - (c + s * lx)) ** 2) / ss) if ss > 0 else float("nan")
        s, c = float(s), float(c)
    return {f"alpha_{name}": -s, f"{name}_c": math.exp(c / -s) if s < 0 else None, "r2": r2}

def eval_curve(r):
    """(FLOPs, val loss) of a run's evaluations, for the compute figures."""
    ev = [(fnum(e.get("flops")), fnum(e.get("val_loss"))) for e in r["evals"]]
    return [[C, L] for C, L in ev if C > 0 and math.isfinite(L)]

def analyse_pretrain(pts):
    out = {"points": [{"runs": r["runs"], "N": r["N"], "loss": r["loss"], "flops": r["flops"],
                       "curve": eval_curve(r)} for r in pts]}
    out["L_of_N"] = power_law([r["N"] for r in pts], [r["loss"] for r in pts], "N")
    front = []   # the lowest loss reached at or below each compute
    for C, L in sorted(x for p in out["points"] for x in p["curve"]):
        if not front or L < front[-1][1]:
            front.append((C, L))
    out["frontier"] = [{"flops": C, "loss": L} for C, L in front]
    out["L_of_C"] = power_law([C for C, _ in front], [L for _, L in front], "C")
    return out

def find_pretrain(r, pretrain):
    """The English run a fine-tune started from: by init_from's directory name, else by N."""
    src = os.path.basename(os.path.dirname(str(r["log"].get("init_from") or "")))
    hits = [p for p in pretrain if os.path.basename(p["dir"]) == src] or [
        p for p in pretrain if p["N"] == r["N"]]
    return hits[0] if hits else None

def compare_compute(ft, tw, pt):
    """FLOPs for a fine-tune to first reach its scratch twin's best loss, against the twin's to
    its best; with and without the pre-training's (up to its best.pt)."""
    reach = next((C for C, L in eval_curve(ft) if L <= tw["loss"]), None)
    C_pt, ok = pt["flops"] if pt else None, reach is not None and tw["flops"] > 0
    ok_pt = ok and C_pt is not None
    return {"N": ft["N"], "D_f": ft["D"], "C_scratch": tw["flops"],
            "C_finetune_best": ft["flops"], "C_finetune_reach": reach, "C_pretrain": C_pt,
            "ratio": reach / tw["flops"] if ok else None,
            "ratio_with_pretrain": (reach + C_pt) / tw["flops"] if ok_pt else None,
            "curve_finetune": eval_curve(ft), "curve_scratch": eval_curve(tw)}

def forgetting(r, pt):
    """English val loss during fine-tuning: its rise from before it to the best and last eval."""
    ev = [e for e in r["evals"] if isinstance(e.get("extra_val"), dict) and e["extra_val"]]
    keys = sorted(ev[0]["extra_val"]) if ev else []
    # the English set: the pre-training dataset, the only one, or the one named *en
    key = pt["target"] if pt and pt["target"] in keys else keys[0] if len(keys) == 1 else \
        next((k for k in keys if k.endswith("en")), None)
    if key is None:
        return None
    seq = [(e.get("iter"), fnum(e["extra_val"].get(key))) for e in ev]
    base, src = seq[0][1], f"first eval (iter {seq[0][0]})"
    if ev[0].get("iter") == 0:
        src = "iter 0 of the fine-tune"
    elif pt and pt["target"] == key:
        base, src = pt["loss"], "pre-training best val loss"
    best = r["log"]["best"]
    at_best = fnum((best.get("extra_val") or {}).get(key))   # train.py: the best model's
    if not math.isfinite(at_best):
        at_best = next((v for i, v in seq if i == best.get("iter")), float("nan"))
    return {"run": r["name"], "N": r["N"], "D_f": r["D"], "key": key, "baseline": base,
            "baseline_from": src, "at_best": at_best, "last": seq[-1][1],
            "rise_at_best": at_best - base, "rise_last": seq[-1][1] - base}

def corpora(runs):
    """Each corpus as prepare/ recorded it: bin sha256s (12 hex digits), source versions."""
    out = {}
    for r in runs:
        name = r["log"]["data"]["dataset"]
        if name in out:
            continue
        data_dir = (r["log"].get("config") or {}).get("data_dir") or "data"
        try:
            with open(os.path.join(data_dir, name, "meta.json")) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            meta = None
        out[name] = None if meta is None else {
            "sha256": {k: str(v)[:12] for k, v in (meta.get("sha256") or {}).items()},
            "sources": [f"{x.get('package')} {x.get('version')}" for x in meta.get("sources") or []
                        if isinstance(x, dict) and x.get("package")],
            "command": meta.get("command")}
    return out

def compute_and_forgetting(out, cells, pre):
    twins = {(c["N"], c["D"]): c for c in cells if c["role"] == "scratch"}
    ft = [(r, find_pretrain(r, pre)) for r in cells if r["role"] == "finetune"]
    out["compute"] = [compare_compute(r, twins[r["N"], r["D"]], pt) for r, pt in ft
                      if (r["N"], r["D"]) in twins]
    out["forgetting"] = [f for f in (forgetting(r, pt) for r, pt in ft) if f]

# ------------------------------------------------------------ checks of the design
def calibration_rate(tag):
    """The learning rate of a calibration run's tag (sweep.py: lr<rate>), else None."""
    try:
        return float(tag[2:]) if tag.startswith("lr") else None
    except ValueError:
        return None

def analyse_calibration(checks, cells):
    """Each calibration rate's mean loss per language, size and arm, and whether its runs
    converged, beside the grid's rate; one at the edge of the rates tried may not be the best."""
    tried, at = {}, {}
    for c in checks:
        if calibration_rate(c["tag"]) is not None:
            key = (c["target"], c["N"], c["role"])
            tried.setdefault(key, {}).setdefault(calibration_rate(c["tag"]), []).append(
                (c["loss"], c["converged"]))
            at[key] = min(at.get(key, c["D"]), c["D"])
    rows = []
    for (target, n, role), by_rate in sorted(tried.items()):
        grid = {(c["log"].get("config") or {}).get("learning_rate") for c in cells
                if (c["target"], c["N"], c["role"]) == (target, n, role)}
        chosen, rates = grid.pop() if len(grid) == 1 else None, sorted(by_rate)
        rows.append({"target": target, "N": n, "role": role, "chosen": chosen,
                     "D": at[target, n, role],
                     "losses": {f"{r:g}": float(np.mean([L for L, _ in by_rate[r]]))
                                for r in rates},
                     "converged": {f"{r:g}": all(c for _, c in by_rate[r]) for r in rates},
                     "at_edge": chosen in (rates[0], rates[-1]) and len(rates) > 1})
    return rows

def curve_of(runs):
    """scratch_points of the converged scratch runs among runs, None under two."""
    sc = [c for c in runs if c["role"] == "scratch" and c["converged"]]
    return scratch_points(sc) if len(sc) > 1 else None

def analyse_reinit(checks, cells):
    """Fine-tunes with fresh embedding rows for unseen tokens (tag reinit), beside the grid's."""
    twins = {cell_key(c): c for c in cells}
    rows = []
    for c in sorted(checks, key=lambda r: (r["target"], r["N"], r["D"])):
        if c["tag"] != "reinit" or c["role"] != "finetune":
            continue
        curve = curve_of(g for g in cells if (g["target"], g["N"]) == (c["target"], c["N"]))
        twin = twins.get(cell_key(c))
        row = {"run": c["name"], "target": c["target"], "N": c["N"], "D_f": c["D"],
               "loss": c["loss"], "grid_loss": twin and twin["loss"],
               "reinit": c["log"].get("reinit")}
        for key, loss in (("ratio", c["loss"]), ("grid_ratio", twin and twin["loss"])):
            lDe, where = read_on(curve, math.log(loss)) if loss else (None, "no_scratch_curve")
            row[key] = math.exp(lDe) / c["D"] if lDe is not None else None
            row[key + "_where"] = where
        rows.append(row)
    return rows

def analyse_paired(checks, boot, rng):
    """Two languages on the same pages (tags paired<r>): their difference in log D_e/D_f, each
    off its own draw's scratch points, averaged over D_f, bootstrapped over page draws."""
    runs = [c for c in checks if c["tag"].startswith("paired") and c["tag"][6:].isdigit()]
    langs = sorted({c["lang"] for c in runs})
    if len(langs) != 2:
        return None
    ratios = {}
    for draw in sorted({c["tag"] for c in runs}):
        for lang in langs:
            mine = [c for c in runs if (c["tag"], c["lang"]) == (draw, lang)]
            curve = curve_of(mine)
            for f in (c for c in mine if c["role"] == "finetune"):
                lDe, where = read_on(curve, math.log(f["loss"]))
                if where == "measured":
                    ratios.setdefault(draw, {}).setdefault(lang, {})[f["D"]] = \
                        lDe - math.log(f["D"])
    per_draw = {}
    for draw, by_lang in ratios.items():
        both = set(by_lang.get(langs[0], {})) & set(by_lang.get(langs[1], {}))
        if both:
            per_draw[draw] = float(np.mean([by_lang[langs[0]][d] - by_lang[langs[1]][d]
                                            for d in both]))
    diffs = np.array(list(per_draw.values()))
    draws = [float(np.mean(rng.choice(diffs, len(diffs)))) for _ in range(boot)] \
        if len(diffs) > 1 else []
    log_ratios = {draw: {lang: {f"{d:g}": v for d, v in r.items()} for lang, r in by.items()}
                  for draw, by in ratios.items()}
    return {"languages": langs, "per_draw": per_draw, "log_ratios": log_ratios,
            "difference": float(np.mean(diffs)) if len(diffs) else None,
            "ci": ci(draws, float(np.mean(diffs))) if draws else None, "draws": len(diffs)}

# ------------------------------------------------------------ main
def analyse(root, boot=1000, seed=0):
    """Everything report.py needs, as plain JSON-able numbers."""
    msgs = []
    runs, skipped = load_runs(root, msgs)
    checks = [r for r in runs if r["tag"]]
    cells = merge_duplicates([r for r in runs if not r["tag"]], msgs)
    pre = [c for c in cells if c["role"] == "pretrain"]
    chk = analyse_checks(checks, cells)
    noise = {"sigma_run": chk["sigma_run"], "sigma_pretrain": chk["sigma_pretrain"],
             "draw_share": chk["draw_share"], "scratch": chk["scratch"]["by_D"],
             "finetune": chk["finetune"]["by_D"]}
    if not noise["sigma_run"]:
        noise = {"sigma_run": ASSUMED_SIGMA, "sigma_pretrain": 0.0}
        msgs.append(f"no cell was run more than once: the intervals assume a run-to-run spread "
                    f"of {ASSUMED_SIGMA:.0%} and no pre-trained model's share (add repeats or "
                    f"seed checks)")
    chk["noise_used"] = [noise["sigma_run"], noise["sigma_pretrain"]]
    rng = np.random.default_rng(seed)
    res = {"schema": 1, "source": root, "bootstrap": boot, "seed": seed,
           "n_runs_used": len(runs) - len(checks), "skipped": skipped, "messages": msgs,
           "checks": chk, "targets": {}, "loss_from": sorted({r["loss_from"] for r in runs}),
           "corpora": corpora(runs), "pretrain": analyse_pretrain(pre) if pre else None}
    if not pre:
        msgs.append("no finished pre-training runs: no L(N), no compute frontier, no "
                    "pre-training cost")
    chk["calibration"] = analyse_calibration(checks, cells)
    chk["reinit"] = analyse_reinit(checks, cells)
    chk["paired"] = analyse_paired(checks, boot, rng)
    for t in sorted({c["target"] for c in cells if c["role"] != "pretrain"}):
        tc = [c for c in cells if c["target"] == t and c["role"] != "pretrain"]
        res["targets"][t] = analyse_target(t, tc, boot, rng, noise, msgs,
                                           [r for r in chk["calibration"] if r["target"] == t])
        compute_and_forgetting(res["targets"][t], tc, pre)
    return res

def clean(x):
    """JSON-safe: non-finite floats become null."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x.item() if isinstance(x, np.generic) else x

def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Fit transfer scaling laws from the run logs under a directory.")
    parser.add_argument("dir", help="directory searched recursively for <run>/log.json")
    parser.add_argument("--out", help="output directory (default: <dir>/report)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap draws for the CIs")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    if args.boot < 0:
        fail(f"--boot {args.boot} must be at least 0 (0 = no bootstrap CIs)")
    if not os.path.isdir(args.dir):
        fail(f"no such directory {args.dir}: give the sweep's output directory, e.g. out/builtin/")
    res = analyse(args.dir, args.boot, args.seed)
    if not res["n_runs_used"]:
        fail(f"no usable log.json under {args.dir} ({len(res['skipped'])} left out): run sweep.py "
             f"or train.py first, or point at the directory holding their runs")
    out = args.out or os.path.join(args.dir, "report")
    path = os.path.join(out, "results.json")
    try:  # atomically: predict.py and report.py decide from it
        os.makedirs(out, exist_ok=True)
        atomic_write_text(path, json.dumps(clean(res), indent=1, allow_nan=False))
    except OSError as e:
        fail(f"cannot write {path} ({e.strerror or e}): free space in it or choose another "
             f"--out directory")
    for m in res["messages"]:
        print("note:", m)
    return report.main([path])

if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # redirected (a job's log), each line at once
    sys.exit(main())
