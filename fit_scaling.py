"""
Analysis stage of nanotransfer, part 1 of 2: read every <run>/log.json under a directory, fit how
much English pre-training is worth on another language (Kim 2021, after Hernandez et al. 2021),
and write <dir>/report/results.json; then report.py turns that file into report.md and figures.

    python fit_scaling.py out/builtin/                     # results.json, report.md, figures
    python fit_scaling.py out/builtin/ --out /tmp/rep --boot 2000
    python report.py out/builtin/report/results.json      # redraw the report alone

Definitions (docs/contracts.md): N = non-embedding parameters (Kaplan; log model.N); D = dataset
tokens (data.dataset_tokens; bytes = D * data.dataset_bytes / dataset_tokens, reported too, since
languages tokenise differently); C = training FLOPs, Kaplan convention (log flops); L = best
validation loss in nats/token (best.val_loss). D_e = the from-scratch data that reaches a
fine-tuned run's loss at the same N and language; D_t = D_e - D_f, negative when pre-training hurt.

Scratch curve, per language: Kaplan's L(N, D) at each measured N, L = [a_N + D_c,N/D]^alpha_D
with alpha_D shared, fitted on converged scratch runs only (a run that stopped on its budget was
still improving: its loss is an upper bound on the converged loss, reported, never fitted), across
each size's measured range [D_lo, D_hi], and continued beyond it as a power law with the end's
slope. a_N may be negative: Kaplan's a_N > 0 makes a curve that can only flatten as D grows, and
the small models of the built-in study steepen instead (they learn little from a few thousand
bytes, then much more from tens of thousands); held positive, the form missed them by 2-4%,
where runs differ by about 1%. A free a_N and D_c,N per size, because the curve is only ever
read at a measured N: 2K+1 parameters for K sizes with 4 or more scratch D values each.

Headline law, per language, fitted in loss space jointly with the scratch curve:
    L_ft(N, D_f) = L_scratch(N, D_f + D_t),   D_t = k D_f^alpha N^beta,
over every fine-tuned cell, so negative transfer enters as residuals (it pulls k towards 0) and
no per-point inversion is needed. Residuals are in log L (relative error, the run-to-run noise is
multiplicative). A fine-tuned loss below the lowest converged scratch loss at its N only says
D_e > D_max (right-censored): such a cell adds a one-sided residual, zero when the model's D_e
reaches D_max, else the gap in log L between the model and the scratch curve at D_max.
CIs: parametric bootstrap with the design fixed (same N, D cells; fitted values times
exp(sigma * normal), sigma = the larger of the measured run-to-run spread and the fit's residual rms).
Per-point D_e (inverting the fitted scratch curve) and a PCHIP interpolation of the measured
scratch points stay as a table and a cross-check.
"""
import argparse
import glob
import json
import math
import os
import sys
import tempfile

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.optimize import least_squares

SCHEMA = 1
LANG = {"en": "English", "de": "German", "es": "Spanish", "zh": "Chinese"}
REQUIRED = ["role", "model.N", "data.dataset", "data.language", "data.dataset_tokens",
            "data.dataset_bytes", "best.val_loss", "best.flops"]
NO_TRANSFER = 0.05   # fitted D_t/D_f below this at every cell: "no measurable transfer", k ~ 0
LOG_BIG = 700.0      # exp() overflows above this: D_e is reported as unbounded (inf)

# ----------------------------------------------------------------------------- reading logs

def dig(d, dotted):
    for k in dotted.split("."):
        if not isinstance(d, dict) or k not in d:
            raise KeyError(dotted)
        d = d[k]
    return d

def fnum(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")

def check_log(log):
    """Why a log cannot be used, or None."""
    if not isinstance(log, dict) or log.get("schema") != SCHEMA:
        return f"schema {log.get('schema') if isinstance(log, dict) else '?'!r}, this script reads schema {SCHEMA}"
    if log.get("status") in ("running", "failed"):
        return f"status {log['status']}" + (f" ({log.get('error')})" if log.get("error") else "")
    for f in REQUIRED:
        try:
            dig(log, f)
        except KeyError:
            return f"missing field {f}"
    if log["role"] not in ("pretrain", "scratch", "finetune"):
        return f"unknown role {log['role']!r}"
    for f in ("best.val_loss", "model.N", "data.dataset_tokens", "data.dataset_bytes"):
        v = fnum(dig(log, f))
        if not math.isfinite(v) or v <= 0:
            return f"{f} is {dig(log, f)!r} (NaN, missing or not positive)"
    return None

def converged(log):
    """The run stopped on its stopping rule, not its budget. Logs before train.py wrote the field:
    it stopped early and its best evaluation lies before its last."""
    if "converged" in log:
        return bool(log["converged"])
    ev = log.get("evals") or [{}]
    return log.get("status") == "early_stopped" and fnum(log["best"].get("iter")) < fnum(ev[-1].get("iter"))

def load_runs(root, msgs):
    runs, skipped = [], []
    for path in sorted(glob.glob(os.path.join(root, "**", "log.json"), recursive=True)):
        name = os.path.relpath(os.path.dirname(path), root)
        try:
            with open(path) as f:
                log = json.load(f)
        except (OSError, ValueError) as e:
            skipped.append({"run": name, "reason": f"unreadable log.json ({e})"})
            continue
        why = check_log(log)
        if why:
            skipped.append({"run": name, "reason": why})
            continue
        d = log["data"]
        runs.append({"name": name, "dir": os.path.dirname(path), "log": log, "role": log["role"],
                     "target": d["dataset"], "lang": d["language"] or "?", "N": float(log["model"]["N"]),
                     "D": float(d["dataset_tokens"]), "bpt": float(d["dataset_bytes"]) / float(d["dataset_tokens"]),
                     "loss": float(log["best"]["val_loss"]), "flops": fnum(log["best"]["flops"]),
                     "evals": log.get("evals") or [], "converged": converged(log),
                     "stop_reason": log.get("stop_reason"), "tag": (log.get("config") or {}).get("tag") or ""})
    for s in skipped:
        msgs.append(f"left out {s['run']}: {s['reason']}")
    return runs, skipped

def cell_key(r):
    return (r["role"], r["target"], r["N"]) + ((r["D"],) if r["role"] != "pretrain" else ())

def merge_duplicates(runs, msgs):
    """One cell per (role, dataset, N, D_f): duplicates are averaged (keeping the lowest would bias
    the loss low). A scratch cell averages its converged runs only, if it has any."""
    groups = {}
    for r in runs:
        groups.setdefault(cell_key(r), []).append(r)
    cells = []
    for key, rs in sorted(groups.items()):
        use = [r for r in rs if r["converged"]] if key[0] == "scratch" else rs
        use = use or rs
        loss = [r["loss"] for r in use]
        c = dict(use[0], loss=float(np.mean(loss)), losses=loss, n=len(use),
                 std=float(np.std(loss, ddof=1)) if len(use) > 1 else None,
                 runs=[r["name"] for r in rs], converged=all(r["converged"] for r in use))
        cells.append(c)
        if len(rs) > 1:
            msgs.append(f"{len(rs)} runs of {key[0]} {key[1]} N={key[2]:.3g}" + (f" D={key[3]:.3g}" if len(key) > 3 else "")
                        + f" ({', '.join(r['name'] for r in rs)}): averaged {len(use)}, loss {c['loss']:.4f}"
                        + (f" +- {c['std']:.4f}" if c["std"] is not None else ""))
    return cells

# ----------------------------------------------------------------------------- checks beside the grid

def analyse_checks(checks, cells):
    """Each tagged run (seed, patience, budget checks from sweep.py) beside its grid twin; the seed
    checks, and grid cells run more than once (sweep.py's repeats), give the run-to-run spread
    that the bootstrap draws its noise from."""
    twins = {cell_key(c): c for c in cells}
    rows = []
    for c in sorted(checks, key=lambda r: r["name"]):
        t = twins.get(cell_key(c))
        rows.append({"tag": c["tag"], "run": c["name"], "role": c["role"], "target": c["target"], "N": c["N"],
                     "D_f": c["D"], "loss": c["loss"], "converged": c["converged"], "grid_run": t and t["runs"][0],
                     "grid_loss": t and t["loss"], "diff": t and c["loss"] - t["loss"],
                     "rel_diff": t and c["loss"] / t["loss"] - 1})
    groups = {}
    for c in checks:
        if c["tag"].startswith("seed") and cell_key(c) in twins:
            groups.setdefault(cell_key(c), [math.log(twins[cell_key(c)]["loss"])]).append(math.log(c["loss"]))
    for c in cells:
        if c["n"] > 1:
            groups[("repeat",) + cell_key(c)] = [math.log(x) for x in c["losses"]]
    dev = [x - np.mean(g) for g in groups.values() for x in g]
    dof = sum(len(g) - 1 for g in groups.values())
    sigma = float(np.sqrt(np.sum(np.square(dev)) / dof)) if dof else None
    return {"runs": rows, "seed_sigma_log": sigma, "seed_groups": len(groups), "seed_dof": dof}

# ----------------------------------------------------------------------------- the model

# th = [log alpha_D, v_N (K sizes), log D_c,N (K), log k_ref, alpha, beta], where
# exp(v_N) = a_N + D_c,N/D_hi > 0 keeps the bracket positive over the measured range whatever a_N's sign

def curve_slope(alpha, v, lc, x_hi, x):
    """d log L / d log D of a scratch curve inside its measured range."""
    return -alpha * np.exp(lc - x) / (np.exp(v) + np.exp(lc - x) - np.exp(lc - x_hi))

def curve_logL(alpha, v, lc, x_lo, x_hi, x):
    """log L at x = log D on one size's scratch curve: alpha log(a + D_c/D) inside [x_lo, x_hi],
    the tangent (a power law) beyond either end."""
    xc = np.clip(x, x_lo, x_hi)
    inside = alpha * np.log(np.exp(v) + np.exp(lc - xc) - np.exp(lc - x_hi))
    return inside + np.where(x < x_lo, curve_slope(alpha, v, lc, x_hi, x_lo) * (x - x_lo), 0.0) + \
        np.where(x > x_hi, curve_slope(alpha, v, lc, x_hi, x_hi) * (x - x_hi), 0.0)

def scratch_logL(th, P, idx, lD):
    K = P["K"]
    return curve_logL(np.exp(th[0]), th[1:1 + K][idx], th[1 + K:1 + 2 * K][idx], P["x_lo"][idx], P["x_hi"][idx], lD)

def transfer_logDt(th, lDf, lN, ref):
    """log D_t = log k_ref + alpha (log D_f - ref_D) + beta (log N - ref_N): centred at the
    geometric-mean cell so that k_ref (D_t there) is not tied to alpha and beta in the fit."""
    return th[-3] + th[-2] * (lDf - ref[0]) + th[-1] * (lN - ref[1])

def finetune_logL(th, P, idx, lDf, lN):
    return scratch_logL(th, P, idx, np.logaddexp(lDf, transfer_logDt(th, lDf, lN, P["ref"])))

def problem(sc, ft):
    """Arrays for one language's fit: sc, ft = (N, D, L) arrays of converged scratch cells and of
    fine-tuned cells at sizes that have converged scratch cells. Censoring is decided here, from
    the losses, so that a bootstrap replicate decides it the same way."""
    sizes = sorted(set(sc[0]))
    s_idx, f_idx = np.searchsorted(sizes, sc[0]), np.searchsorted(sizes, ft[0])
    lo = np.array([np.argmin(np.where(s_idx == i, sc[2], np.inf)) for i in range(len(sizes))])
    lD = np.log(sc[1])
    P = {"sc": sc, "ft": ft, "sizes": sizes, "K": len(sizes),
         "s_idx": s_idx, "s_lD": lD, "s_lL": np.log(sc[2]),
         "x_lo": np.array([lD[s_idx == i].min() for i in range(len(sizes))]),
         "x_hi": np.array([lD[s_idx == i].max() for i in range(len(sizes))]),
         "f_idx": f_idx, "f_lDf": np.log(ft[1]), "f_lN": np.log(ft[0]), "f_lL": np.log(ft[2]),
         "lDmax": np.log(sc[1][lo]), "Lmin": sc[2][lo], "ref": (float(np.mean(np.log(ft[1]))), float(np.mean(np.log(ft[0]))))}
    P["censored"] = ft[2] < P["Lmin"][f_idx]
    # an exponent whose variable takes one value cannot be fitted: it is held at 0 and reported unidentified
    P["free"] = np.r_[np.ones(2 * P["K"] + 2, bool), len(set(ft[1])) > 1, len(set(ft[0])) > 1]
    return P

def residuals(th, P):
    f = P["f_idx"]
    rs = scratch_logL(th, P, P["s_idx"], P["s_lD"]) - P["s_lL"]
    pf = finetune_logL(th, P, f, P["f_lDf"], P["f_lN"])
    at_max = scratch_logL(th, P, f, P["lDmax"][f])
    rf = np.where(P["censored"], np.maximum(pf - at_max, 0.0), pf - P["f_lL"])   # one-sided for censored cells
    return np.r_[rs, rf]

def bounds(P):
    K, rD = P["K"], P["ref"][0]
    lo = np.r_[math.log(0.01), np.full(K, -300.0), np.zeros(K), rD - 14, 0.0, -1.0]   # k_ref >= 1e-6 D_ref: k ~ 0
    hi = np.r_[math.log(5.0), np.full(K, 300.0), np.full(K, 40.0), rD + 14, 2.0, 2.0]
    return lo, hi

def solve(P, x0):
    """One bounded least-squares run from x0, over the free parameters only."""
    free, lo, hi = P["free"], *bounds(P)
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    def full(x):
        th = x0.copy()
        th[free] = x
        return th
    sol = least_squares(lambda x: residuals(full(x), P), x0[free], bounds=(lo[free], hi[free]),
                        x_scale="jac", max_nfev=3000)
    return full(sol.x), float(sol.cost), bool(sol.success) and np.all(np.isfinite(sol.x))

def starts(P):
    """Starting points: the scratch curve alone from three alpha_D, then a grid of transfer
    parameters around it (the joint surface has flat valleys; one start can stall in one)."""
    K = P["K"]
    none = np.zeros(0, int)           # the scratch cells alone: no fine-tuned cells, transfer held
    sub = dict(P, f_idx=none, f_lDf=none, f_lN=none, f_lL=none, censored=none.astype(bool),
               free=np.r_[P["free"][:-3], False, False, False])
    best = None
    for a0 in (0.1, 0.3, 1.0):
        v = np.array([np.log(np.exp(P["s_lL"][P["s_idx"] == i]).min()) / a0 for i in range(K)])
        lc = v + np.array([np.median(P["s_lD"][P["s_idx"] == i]) for i in range(K)])
        th, cost, ok = solve(sub, np.r_[math.log(a0), v, lc, P["ref"][0], 0.5, 0.3])
        if best is None or cost < best[1]:
            best = (th, cost)
    rD = P["ref"][0]
    return [np.r_[best[0][:-3], lk, a, b] for lk in (rD - 3, rD, rD + 2) for a in (0.3, 0.8) for b in (0.0, 0.4)]

def fit_language(P, x0=None):
    """The joint fit: from the given start only (bootstrap refits), else the best of the starts."""
    best = None
    for x in ([x0] if x0 is not None else starts(P)):
        th, cost, ok = solve(P, x)
        if ok and (best is None or cost < best[1]):
            best = (th, cost)
    return best[0] if best else None

def law_numbers(th, P):
    """The fitted numbers, k in the plain form D_t = k D_f^alpha N^beta (tokens, parameters)."""
    rD, rN = P["ref"]
    lk, a, b = th[-3:]
    lDt = transfer_logDt(th, P["f_lDf"], P["f_lN"], P["ref"])
    return {"log_k": float(lk - a * rD - b * rN), "alpha": float(a), "beta": float(b), "alpha_D": float(np.exp(th[0])),
            "log_gm_De_over_Df": float(np.mean(np.logaddexp(0.0, lDt - P["f_lDf"]))),
            "max_Dt_over_Df": float(np.exp(np.max(lDt - P["f_lDf"])))}

def noise_sigma(th, P, seed_sigma):
    """The scatter in log L that the bootstrap draws: the larger of the seed checks' run-to-run
    spread and the fit's residual rms (scaled up for the parameters the fit spent). Where the law
    misses the cells by more than runs differ, the misfit is the uncertainty that matters: drawing
    only the seed spread would make the intervals too narrow."""
    r = residuals(th, P)
    dof = max(1, len(r) - int(P["free"].sum()))
    rms = float(np.sqrt(np.sum(r ** 2) / dof))
    if seed_sigma and seed_sigma >= rms:
        return seed_sigma, "run-to-run spread of the seed checks and repeated cells"
    return rms, "residual rms of the fit" + (f" (above the run-to-run spread, {seed_sigma:.2%})" if seed_sigma else "")

def bootstrap(th, P, boot, rng, sigma):
    """Parametric bootstrap with the design fixed: every replicate has the same (N, D) cells, with
    the fitted losses times exp(sigma * normal); refit from the estimate; count the failures."""
    s_fit = np.exp(scratch_logL(th, P, P["s_idx"], P["s_lD"]))
    f_fit = np.exp(finetune_logL(th, P, P["f_idx"], P["f_lDf"], P["f_lN"]))
    samples, failed = [], 0
    for _ in range(boot):
        Pb = problem(P["sc"][:2] + (s_fit * np.exp(sigma * rng.standard_normal(len(s_fit))),),
                     P["ft"][:2] + (f_fit * np.exp(sigma * rng.standard_normal(len(f_fit))),))
        tb = fit_language(Pb, th)
        if tb is None:
            failed += 1
        else:
            samples.append(law_numbers(tb, Pb))
    return samples, failed

def ci(samples, key, f=lambda x: x):
    v = [f(s[key]) for s in samples]
    return [float(x) for x in np.percentile(v, [2.5, 97.5])] if v else None

# ----------------------------------------------------------------------------- per-point D_e

def curve_args(fit, n):
    c = fit["curve"][f"{n:.6g}"]
    return (fit["alpha_D"], math.log(c["a"] + c["D_c"] / c["D_hi"]), math.log(c["D_c"]), math.log(c["D_lo"]),
            math.log(c["D_hi"]))

def invert_scratch(fit, n, L):
    """D_e: where the fitted scratch curve at size n reaches L. It falls monotonically, as a power
    law beyond its measured ends, so every loss has one D_e (inf only where exp() overflows)."""
    args = curve_args(fit, n)
    alpha, v, lc, x_lo, x_hi = args
    y, y_lo, y_hi = math.log(L), float(curve_logL(*args, x_lo)), alpha * v
    if y_lo > y > y_hi:            # inside: e^(y/alpha) = e^v + D_c (1/D - 1/D_hi)
        return 1.0 / ((math.exp(y / alpha) - math.exp(v)) / math.exp(lc) + math.exp(-x_hi))
    end, y_end = (x_lo, y_lo) if y >= y_lo else (x_hi, y_hi)
    return safe_exp(end + (y - y_end) / float(curve_slope(alpha, v, lc, x_hi, end)))

def interp_curve(D, L):
    """Cross-check: monotone (PCHIP) interpolation of log D against -log L over one size's
    converged scratch points that beat every smaller D (more data cannot make the converged loss
    worse); the end segments extend as power laws. Returns (invert, kept D range) or None."""
    o = np.argsort(D, kind="stable")
    D, L = np.asarray(D, float)[o], np.asarray(L, float)[o]
    keep = L < np.minimum.accumulate(np.r_[np.inf, L[:-1]])
    x, y = -np.log(L[keep]), np.log(D[keep])
    if len(x) < 2:
        return None
    inner = PchipInterpolator(x, y)
    def invert(Lq):
        """log D_e, in log space: a near-flat tail has a huge slope that would overflow exp()."""
        xq = -math.log(Lq)
        if x[0] <= xq <= x[-1]:
            return float(inner(xq))
        i = 0 if xq < x[0] else len(x) - 2
        return float(y[i] + (xq - x[i]) * (y[i + 1] - y[i]) / (x[i + 1] - x[i]))
    return invert, (float(D[keep].min()), float(D[keep].max()))

def safe_exp(lx):
    return math.exp(lx) if lx < LOG_BIG else float("inf")

def de_point(c, fit, law, interp, Lmin, Dmax):
    """D_e, D_t and flags for one fine-tuned cell, read off the fitted scratch curve, or off the
    interpolation where there is no fit (flag interp_only). Flags: negative, censored (only
    D_e > D_max is known), extrapolated (D_e beyond the converged scratch D used), below_floor,
    no_scratch_curve."""
    p = {"runs": c["runs"], "N": c["N"], "D_f": c["D"], "D_f_bytes": c["D"] * c["bpt"], "loss": c["loss"],
         "n": c["n"], "std": c["std"], "converged": c["converged"], "D_e": None, "D_e_interp": None,
         "D_e_law": None, "D_e_lower": None, "D_t": None, "D_t_bytes": None, "Df_over_De": None, "flags": []}
    key, ip = f"{c['N']:.6g}", interp.get(c["N"])
    has_fit = fit is not None and key in fit["curve"]
    if not has_fit and not ip:
        p["flags"].append("no_scratch_curve")
        return p
    if ip:
        p["D_e_interp"] = safe_exp(ip[0](c["loss"]))
    if has_fit:
        De, (lo, hi) = invert_scratch(fit, c["N"], c["loss"]), fit["D_range"][key]
        p["D_e_law"] = c["D"] + math.exp(law["log_k"]) * c["D"] ** law["alpha"] * c["N"] ** law["beta"]
    else:
        De, (lo, hi) = p["D_e_interp"], ip[1]
        p["flags"].append("interp_only")
    if c["loss"] < Lmin[c["N"]]:
        p["flags"].append("censored")
        p["D_e_lower"] = Dmax[c["N"]]
    p["D_e"] = De
    if math.isinf(De):
        p["flags"].append("below_floor")
        return p
    if not lo * (1 - 1e-9) <= De <= hi * (1 + 1e-9):
        p["flags"].append("extrapolated")
    if De < c["D"]:
        p["flags"].append("negative")
    p.update(D_t=De - c["D"], D_t_bytes=(De - c["D"]) * c["bpt"], Df_over_De=c["D"] / De)
    return p

# ----------------------------------------------------------------------------- one language

def cell_rows(cs, fit):
    return [{"runs": c["runs"], "N": c["N"], "D": c["D"], "D_bytes": c["D"] * c["bpt"], "loss": c["loss"], "n": c["n"],
             "std": c["std"], "converged": c["converged"],
             "fit": predict_scratch(fit, c["N"], c["D"]) if fit and f"{c['N']:.6g}" in fit["curve"] else None}
            for c in cs]

def predict_scratch(fit, N, D):
    """The fitted scratch curve at a measured size N (report.py redraws it from these numbers)."""
    return np.exp(curve_logL(*curve_args(fit, N), np.log(np.asarray(D, float))))

def predict_finetune(fit, law, N, Df):
    Df = np.asarray(Df, float)
    return predict_scratch(fit, N, Df + math.exp(law["log_k"]) * Df ** law["alpha"] * N ** law["beta"])

def analyse_target(target, cells, boot, rng, seed_sigma, msgs):
    scr = [c for c in cells if c["role"] == "scratch"]
    conv = [c for c in scr if c["converged"]]
    ft = sorted((c for c in cells if c["role"] == "finetune"), key=lambda c: (c["N"], c["D"]))
    label = f"{LANG.get(cells[0]['lang'], cells[0]['lang'])} ({target})"
    out = {"language": cells[0]["lang"], "label": label, "bytes_per_token": cells[0]["bpt"], "scratch_fit": None,
           "law": None, "note": None}
    sizes = sorted({c["N"] for c in conv})
    Lmin = {n: min(c["loss"] for c in conv if c["N"] == n) for n in sizes}
    Dmax = {n: min((c for c in conv if c["N"] == n), key=lambda c: c["loss"])["D"] for n in sizes}
    # a size's curve has two parameters of its own and a share of alpha_D: 4 D values or more
    curve_sizes = [n for n in sizes if len({c["D"] for c in conv if c["N"] == n}) >= 4]
    on_curve = [c for c in conv if c["N"] in curve_sizes]
    fitted = [c for c in ft if c["N"] in curve_sizes]
    arr = lambda cs, k: np.array([c[k] for c in cs], float)
    if len(fitted) < 4:
        out["note"] = (f"{len(conv)} converged scratch cells at {len(sizes)} sizes, {len(curve_sizes)} of them at 4 D "
                       f"values or more, and {len(fitted)} fine-tuned cells at those: too few for the joint fit "
                       f"(need a size with converged scratch cells at 4 D values and 4 fine-tuned cells)")
        msgs.append(f"{label}: {out['note']}")
    else:
        P = problem(tuple(arr(on_curve, k) for k in ("N", "D", "loss")), tuple(arr(fitted, k) for k in ("N", "D", "loss")))
        th = fit_language(P)
        if th is None:
            out["note"] = "the joint fit failed from every start"
            msgs.append(f"{label}: {out['note']}")
        else:
            out["scratch_fit"], out["law"] = fit_summary(th, P, boot, rng, seed_sigma, cells[0]["bpt"])
    fit, law = out["scratch_fit"], out["law"]
    interp = {n: interp_curve(arr([c for c in conv if c["N"] == n], "D"), arr([c for c in conv if c["N"] == n], "loss"))
              for n in sizes}
    out["points"] = [de_point(c, fit, law, interp, Lmin, Dmax) for c in ft]
    out["scratch"] = cell_rows(scr, fit)
    flags = lambda f: sum(f in p["flags"] for p in out["points"])
    out["counts"] = {"scratch_converged": len(conv), "scratch_unconverged": len(scr) - len(conv),
                     "finetune": len(ft), "finetune_censored": flags("censored"), "finetune_negative": flags("negative"),
                     "finetune_no_curve": flags("no_scratch_curve"),
                     "finetune_measured": len(ft) - flags("censored") - flags("no_scratch_curve")}
    for c in scr:
        if not c["converged"]:
            msgs.append(f"{label}: scratch {', '.join(c['runs'])} did not converge (stopped on "
                        f"{c.get('stop_reason') or 'its budget'}): an upper bound at N={c['N']:.3g} D={c['D']:.3g}, not fitted")
    return out

def fit_summary(th, P, boot, rng, seed_sigma, bpt):
    """Scratch curve and law numbers, with bootstrap CIs, as they go into results.json."""
    K = P["K"]
    nums = law_numbers(th, P)
    sigma, source = noise_sigma(th, P, seed_sigma)
    samples, failed = bootstrap(th, P, boot, rng, sigma)
    for x in [nums] + samples:        # in bytes D_f and D_t both scale by c = bytes/token: k becomes k c^(1-alpha)
        x["log_k_bytes"] = x["log_k"] + (1 - x["alpha"]) * math.log(bpt)
    fit = {"alpha_D": nums["alpha_D"], "ci": {"alpha_D": ci(samples, "alpha_D")},
           "curve": {f"{n:.6g}": {"a": float(np.exp(th[1 + i]) - np.exp(th[1 + K + i] - P["x_hi"][i])),
                                  "D_c": float(np.exp(th[1 + K + i])), "D_lo": float(np.exp(P["x_lo"][i])),
                                  "D_hi": float(np.exp(P["x_hi"][i]))} for i, n in enumerate(P["sizes"])}}
    fit["D_range"] = {k: [c["D_lo"], c["D_hi"]] for k, c in fit["curve"].items()}
    r = residuals(th, P)
    detected = nums["max_Dt_over_Df"] >= NO_TRANSFER
    law = dict(nums, k=math.exp(nums["log_k"]), k_bytes=math.exp(nums["log_k_bytes"]),
               transfer_detected=detected,
               identified={"alpha": bool(P["free"][-2]) and detected, "beta": bool(P["free"][-1]) and detected},
               n_scratch=len(P["s_lL"]), n_finetune=len(P["f_lL"]), n_censored=int(P["censored"].sum()),
               rms_log_resid=float(np.sqrt(np.mean(r ** 2))), noise_sigma=sigma, noise_from=source,
               boot={"draws": boot, "failed": failed, "failure_rate": failed / boot if boot else None},
               ci={"k": ci(samples, "log_k", math.exp), "alpha": ci(samples, "alpha"), "beta": ci(samples, "beta"),
                   "k_bytes": ci(samples, "log_k_bytes", math.exp),
                   "gm_De_over_Df": ci(samples, "log_gm_De_over_Df", math.exp)},
               gm_De_over_Df=math.exp(nums["log_gm_De_over_Df"]))
    return fit, law

# ----------------------------------------------------------------------------- pre-training, compute, forgetting

def powerlaw(x, y):
    """Least squares of log y = c + s log x; returns slope s, intercept c, R^2."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if len(lx) < 2 or np.ptp(lx) == 0:
        return float("nan"), float("nan"), float("nan")
    s, c = np.polyfit(lx, ly, 1)
    ss = np.sum((ly - ly.mean()) ** 2)
    return float(s), float(c), float(1 - np.sum((ly - (c + s * lx)) ** 2) / ss) if ss > 0 else float("nan")

def eval_curve(r):
    """(FLOPs, val loss) of a run's evaluations, for the compute figures."""
    ev = [(fnum(e.get("flops")), fnum(e.get("val_loss"))) for e in r["evals"]]
    return [[C, L] for C, L in ev if C > 0 and math.isfinite(L)]

def analyse_pretrain(pts):
    out = {"points": [{"runs": r["runs"], "N": r["N"], "loss": r["loss"], "flops": r["flops"], "curve": eval_curve(r)}
                      for r in pts]}
    s, c, r2 = powerlaw([r["N"] for r in pts], [r["loss"] for r in pts])   # log L = alpha_N log N_c - alpha_N log N
    out["L_of_N"] = {"alpha_N": -s, "N_c": math.exp(c / -s) if s < 0 else None, "r2": r2} if len(pts) > 1 else None
    front, lo = [], float("inf")
    for C, L in sorted(x for p in out["points"] for x in p["curve"]):   # lowest loss reached at or below each compute
        if L < lo:
            front.append((C, L))
            lo = L
    out["frontier"] = [{"flops": C, "loss": L} for C, L in front]
    s, c, r2 = powerlaw(*zip(*front)) if len(front) > 1 else (float("nan"),) * 3
    out["L_of_C"] = {"alpha_C": -s, "C_c": math.exp(c / -s) if s < 0 else None, "r2": r2} if len(front) > 1 else None
    return out

def find_pretrain(r, pretrain):
    """The English run a fine-tune started from: by init_from's directory name, else by N."""
    src = os.path.basename(os.path.dirname(str(r["log"].get("init_from") or "")))
    hits = [p for p in pretrain if os.path.basename(p["dir"]) == src] or [p for p in pretrain if p["N"] == r["N"]]
    return hits[0] if hits else None

def compare_compute(ft, tw, pt):
    """Compute for the fine-tuned run to first reach its scratch twin's best loss, against the
    twin's compute to its best; with and without the pre-training compute (up to its best.pt)."""
    reach = next((C for C, L in eval_curve(ft) if L <= tw["loss"]), None)
    C_pt = pt["flops"] if pt else None
    c = {"N": ft["N"], "D_f": ft["D"], "C_scratch": tw["flops"], "C_finetune_best": ft["flops"],
         "C_finetune_reach": reach, "C_pretrain": C_pt, "ratio": None, "ratio_with_pretrain": None,
         "curve_finetune": eval_curve(ft), "curve_scratch": eval_curve(tw)}
    if reach is not None and tw["flops"] > 0:
        c["ratio"] = reach / tw["flops"]
        c["ratio_with_pretrain"] = (reach + C_pt) / tw["flops"] if C_pt is not None else None
    return c

def forgetting(r, pt):
    """English val loss during fine-tuning: its rise from before fine-tuning to the best and last eval."""
    ev = [e for e in r["evals"] if isinstance(e.get("extra_val"), dict) and e["extra_val"]]
    if not ev:
        return None
    keys = sorted(ev[0]["extra_val"])  # the English set: the pre-training dataset, the only one, or *en
    key = pt["target"] if pt and pt["target"] in keys else keys[0] if len(keys) == 1 else \
        next((k for k in keys if k.endswith("en")), None)
    if key is None:
        return None
    seq = [(e.get("iter"), fnum(e["extra_val"].get(key))) for e in ev]
    if ev[0].get("iter") == 0:
        base, src = seq[0][1], "iter 0 of the fine-tune"
    elif pt and pt["target"] == key:
        base, src = pt["loss"], "pre-training best val loss"
    else:
        base, src = seq[0][1], f"first eval (iter {seq[0][0]})"
    at_best = next((v for i, v in seq if i == r["log"]["best"].get("iter")), float("nan"))
    return {"run": r["name"], "N": r["N"], "D_f": r["D"], "key": key, "baseline": base, "baseline_from": src,
            "at_best": at_best, "last": seq[-1][1], "rise_at_best": at_best - base, "rise_last": seq[-1][1] - base}

def compute_and_forgetting(out, cells, pre):
    twins = {(c["N"], c["D"]): c for c in cells if c["role"] == "scratch"}
    out["compute"], out["forgetting"] = [], []
    for r in (c for c in cells if c["role"] == "finetune"):
        pt = find_pretrain(r, pre)
        if (r["N"], r["D"]) in twins:
            out["compute"].append(compare_compute(r, twins[r["N"], r["D"]], pt))
        f = forgetting(r, pt)
        if f:
            out["forgetting"].append(f)

# ----------------------------------------------------------------------------- main

def analyse(root, boot=1000, seed=0):
    """Everything report.py needs, as plain JSON-able numbers."""
    msgs = []
    runs, skipped = load_runs(root, msgs)
    checks = [r for r in runs if r["tag"]]
    cells = merge_duplicates([r for r in runs if not r["tag"]], msgs)
    pre = [c for c in cells if c["role"] == "pretrain"]
    chk = analyse_checks(checks, cells)
    rng = np.random.default_rng(seed)
    res = {"schema": 1, "source": root, "bootstrap": boot, "seed": seed, "n_runs_used": len(runs) - len(checks),
           "skipped": skipped, "messages": msgs, "checks": chk, "targets": {},
           "pretrain": analyse_pretrain(pre) if pre else None}
    if not pre:
        msgs.append("no finished pre-training runs: no L(N), no compute frontier, no pre-training cost")
    for t in sorted({c["target"] for c in cells if c["role"] != "pretrain"}):
        tc = [c for c in cells if c["target"] == t and c["role"] != "pretrain"]
        res["targets"][t] = analyse_target(t, tc, boot, rng, chk["seed_sigma_log"], msgs)
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

def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)             # mkstemp makes 0600; a report is for reading
    os.replace(tmp, path)

def main(argv=None):
    ap = argparse.ArgumentParser(description="Fit transfer scaling laws from the run logs under a directory.")
    ap.add_argument("dir", help="directory searched recursively for <run>/log.json")
    ap.add_argument("--out", help="output directory (default: <dir>/report)")
    ap.add_argument("--boot", type=int, default=1000, help="parametric bootstrap draws for the CIs")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    a = ap.parse_args(argv)
    if not os.path.isdir(a.dir):
        print(f"error: no such directory {a.dir}: give the sweep's output directory, e.g. out/builtin/", file=sys.stderr)
        return 1
    res = analyse(a.dir, a.boot, a.seed)
    if not res["n_runs_used"]:
        print(f"error: no usable log.json under {a.dir} ({len(res['skipped'])} left out): run sweep.py or train.py "
              f"first, or point at the directory holding their runs", file=sys.stderr)
        return 1
    out = a.out or os.path.join(a.dir, "report")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "results.json")
    write_atomic(path, json.dumps(clean(res), indent=1, allow_nan=False))
    for m in res["messages"]:
        print("note:", m)
    import report                    # here, not at the top: report.py imports this module
    return report.main([path])

if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # redirected (a job's log), each line at once
    sys.exit(main())
