"""
Analysis stage of nanotransfer: read every <run>/log.json under a directory and measure how much
English pre-training is worth on another language (Kim 2021, after Hernandez et al. 2021).

    python fit_scaling.py out/builtin/                     # writes out/builtin/report/
    python fit_scaling.py out/builtin/ --out /tmp/rep --curve interp --boot 2000

Definitions (DESIGN.md): N = non-embedding parameters (log model.N); D = dataset tokens
(data.dataset_tokens, converted to bytes with data.dataset_bytes / dataset_tokens); C = training
FLOPs, Kaplan convention (log flops); L = best validation loss in nats/token (best.val_loss).
D_e = the from-scratch data that reaches a fine-tuned run's loss at the same N and language, read
off the fitted scratch curve; D_t = D_e - D_f, negative when pre-training hurt.

Scratch curve, per language: L(N, D) = [a_N + D_c/D]^alpha_D. At fixed N this is exactly Kaplan et
al.'s L(N, D); D_c and alpha_D are shared across sizes as in Kaplan, but a_N is free per size
instead of (N_c/N)^(alpha_N/alpha_D), because D_e is only ever read at a measured N and a small
sweep has 2-4 scratch points per size: a 3-parameter curve per size would be ill-posed, a joint
fit with K+2 parameters for K sizes is not. It has a floor L_inf(N) = a_N^alpha_D that a loss can
fall below (flagged). With too few points for that fit (< K+3 points or < 3 distinct D) we fall
back to monotone (PCHIP) interpolation of log D against log L per size, extrapolating the end
segments as power laws (flagged). Whichever is primary, the other gives D_e_alt as a cross-check.
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
import matplotlib
matplotlib.use("Agg")
import matplotlib.ticker
import matplotlib.pyplot as plt

SCHEMA = 1
LANG = {"en": "English", "de": "German", "es": "Spanish", "zh": "Chinese"}
SEED_ORDER = ["de", "es", "zh"]   # the seed's finding: German > Spanish > Chinese
REQUIRED = ["role", "model.N", "data.dataset", "data.language", "data.dataset_tokens",
            "data.dataset_bytes", "best.val_loss", "best.flops"]
PLOTS = {"pretrain_N": "fig2_pretrain_loss_vs_N.png", "pretrain_C": "fig3_pretrain_loss_vs_compute.png",
         "data": "fig4_5_loss_vs_data.png", "frac": "fig6_Df_over_De.png",
         "N": "loss_vs_N_at_fixed_Df.png", "compute": "fig7_loss_vs_compute.png"}

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
                     "loss": float(log["best"]["val_loss"]), "bpb": fnum(log["best"].get("val_bpb")),
                     "flops": fnum(log["best"]["flops"]), "evals": log.get("evals") or []})
    for s in skipped:
        msgs.append(f"left out {s['run']}: {s['reason']}")
    return runs, skipped

def dedupe(runs, msgs):
    """One run per (role, dataset, N, D_f). We keep the lowest loss: each point is meant to be the
    converged loss, and a higher-loss duplicate is most often a run stopped earlier (DESIGN.md)."""
    groups = {}
    for r in runs:
        key = (r["role"], r["target"], r["N"]) + ((r["D"],) if r["role"] != "pretrain" else ())
        groups.setdefault(key, []).append(r)
    kept = []
    for key, rs in groups.items():
        rs.sort(key=lambda r: r["loss"])
        kept.append(rs[0])
        if len(rs) > 1:
            cfgs = [r["log"].get("config") or {} for r in rs]
            diff = sorted(k for k in set().union(*cfgs) if k != "out_dir" and
                          len({json.dumps(c.get(k), sort_keys=True) for c in cfgs}) > 1)
            msgs.append(f"duplicate runs for {key[0]} {key[1]} N={key[2]:.3g}"
                        + (f" D_f={key[3]:.3g}" if len(key) > 3 else "") + ": "
                        + ", ".join(f"{r['name']} (L={r['loss']:.4f})" for r in rs)
                        + f"; kept the lowest loss, {rs[0]['name']}"
                        + (f"; configs differ in {', '.join(diff[:8])}" if diff else ""))
    return kept

def split_checks(runs):
    """Runs tagged as checks by sweep.py (config.tag) test the grid's choices and are not fitted."""
    tagged = lambda r: bool((r["log"].get("config") or {}).get("tag"))
    return [r for r in runs if not tagged(r)], [r for r in runs if tagged(r)]

def analyse_checks(checks, grid):
    """Each check beside its grid twin (same role, dataset, N, D_f); and per cell with seed
    repeats, the run-to-run spread of the best loss and of the fine-tuned minus scratch gap."""
    key = lambda r: (r["role"], r["target"], r["N"], r["D"])
    twins = {key(r): r for r in grid}
    rows = []
    for c in sorted(checks, key=lambda r: r["name"]):
        t = twins.get(key(c))
        rows.append({"tag": c["log"]["config"]["tag"], "run": c["name"], "role": c["role"], "target": c["target"],
                     "N": c["N"], "D_f": c["D"], "loss": c["loss"], "grid_run": t and t["name"],
                     "grid_loss": t and t["loss"], "diff": t and c["loss"] - t["loss"]})
    spread = []
    seeded = {(r["target"], r["N"], r["D_f"]) for r in rows if r["tag"].startswith("seed")}
    for target, n, d in sorted(seeded):
        loss = {}
        for role in ("finetune", "scratch"):
            g = twins.get((role, target, n, d))
            loss[role] = {"grid": g["loss"]} if g else {}
            loss[role].update({r["tag"]: r["loss"] for r in rows if r["tag"].startswith("seed")
                               and (r["role"], r["target"], r["N"], r["D_f"]) == (role, target, n, d)})
        tags = sorted(set(loss["finetune"]) & set(loss["scratch"]))
        gaps = [loss["finetune"][t] - loss["scratch"][t] for t in tags]
        spread.append({"target": target, "N": n, "D_f": d, "seeds": tags,
                       "finetune_std": float(np.std(list(loss["finetune"].values()), ddof=1)) if len(loss["finetune"]) > 1 else None,
                       "scratch_std": float(np.std(list(loss["scratch"].values()), ddof=1)) if len(loss["scratch"]) > 1 else None,
                       "gaps": gaps, "gap_mean": float(np.mean(gaps)) if gaps else None,
                       "gap_std": float(np.std(gaps, ddof=1)) if len(gaps) > 1 else None})
    return {"runs": rows, "seed_spread": spread}

# ----------------------------------------------------------------------------- fits

def powerlaw(x, y):
    """Least squares of log y = c + s log x; returns slope s, intercept c, R^2."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if len(lx) < 2 or np.ptp(lx) == 0:
        return float("nan"), float("nan"), float("nan")
    s, c = np.polyfit(lx, ly, 1)
    ss = np.sum((ly - ly.mean()) ** 2)
    return float(s), float(c), float(1 - np.sum((ly - (c + s * lx)) ** 2) / ss) if ss > 0 else float("nan")

def fit_scratch(N, D, L, x0=None):
    """Joint fit of log L = alpha * log(a_N + D_c/D) over all sizes of one language, residuals in
    log L (relative error). Parameters in logs keep them positive; logaddexp keeps it finite."""
    sizes = sorted(set(N))
    idx = np.array([sizes.index(n) for n in N])
    lD, lL = np.log(D), np.log(L)
    def resid(th):
        return np.exp(th[1]) * np.logaddexp(th[2:][idx], th[0] - lD) - lL
    starts = [x0] if x0 is not None else []
    for alpha0 in (0.1, 0.3, 1.0):   # a few starts: the surface has flat valleys at small alpha
        la = np.array([np.log(0.8 * L[idx == i].min()) / alpha0 for i in range(len(sizes))])
        starts.append(np.r_[np.median(la) + np.median(lD), np.log(alpha0), la])
    best = None
    for x in starts[:1] if x0 is not None else starts:   # a bootstrap refit starts from the estimate
        sol = least_squares(resid, x, method="trf", x_scale="jac", max_nfev=2000)
        if best is None or sol.cost < best.cost:
            best = sol
    th, res = best.x, resid(best.x)
    alpha = float(np.exp(th[1]))
    return {"alpha_D": alpha, "D_c": float(np.exp(th[0])), "converged": bool(best.success),
            "a_N": {f"{n:.6g}": float(np.exp(a)) for n, a in zip(sizes, th[2:])},
            "L_inf": {f"{n:.6g}": float(np.exp(alpha * a)) for n, a in zip(sizes, th[2:])},
            "rms_log_resid": float(np.sqrt(np.mean(res ** 2))),
            "residuals": [{"N": float(n), "D": float(d), "loss": float(l), "fit": float(l * np.exp(e)),
                           "log_resid": float(-e)} for n, d, l, e in zip(N, D, L, res)],
            "_theta": th, "_la": dict(zip(sizes, th[2:]))}

def curve_from_fit(fit, n, Ds):
    """Predict / invert the fitted scratch curve at size n; D range is the measured one at n."""
    alpha, lDc, la = fit["alpha_D"], math.log(fit["D_c"]), fit["_la"][n]
    def predict(D):
        return np.exp(alpha * np.logaddexp(la, lDc - np.log(D)))
    def invert(L):
        gap = math.exp(math.log(L) / alpha) - math.exp(la)
        return (math.exp(lDc) / gap, False) if gap > 0 else (float("inf"), True)   # True: below floor
    return {"method": "fit", "predict": predict, "invert": invert, "D_range": (min(Ds), max(Ds))}

def curve_from_interp(D, L):
    """Monotone interpolation of log D against log L at one size: a measured point is kept only if
    it beats every smaller D (a larger data set cannot make the converged loss worse); PCHIP keeps
    it monotone and follows the curvature that straight log-log segments miss (those overstate D_e
    by up to 10% where the curve flattens); the ends extend as power laws. Needs two kept points."""
    o = np.argsort(D, kind="stable")
    D, L = np.asarray(D, float)[o], np.asarray(L, float)[o]
    keep = L < np.minimum.accumulate(np.r_[np.inf, L[:-1]])
    x, y = -np.log(L[keep]), np.log(D[keep])        # x increasing as the loss falls
    if len(x) < 2:
        return None
    inner = PchipInterpolator(x, y)
    def invert(Lq):
        xq = -math.log(Lq)
        i = 0 if xq < x[0] else len(x) - 2 if xq > x[-1] else None
        if i is None:
            return math.exp(inner(xq)), False
        return math.exp(y[i] + (xq - x[i]) * (y[i + 1] - y[i]) / (x[i + 1] - x[i])), False
    xs = np.linspace(x[0], x[-1], 200)
    def predict(Dq):                 # for the plots: the same curve, measured range only
        return np.exp(-np.interp(np.log(Dq), inner(xs), xs, left=np.nan, right=np.nan))
    return {"method": "interp", "predict": predict, "invert": invert, "D_range": (D.min(), D.max())}

def build_curves(scr, method, msgs, label, x0=None):
    """Scratch curve per size for one language, with the other method as a cross-check."""
    N, D, L = (np.array([r[k] for r in scr], float) for k in ("N", "D", "loss"))
    sizes = sorted(set(N))
    fit = None
    if len(scr) >= len(sizes) + 3 and len(set(D)) >= 3 and method != "interp_only":
        fit = fit_scratch(N, D, L, x0)
    elif method == "auto" and msgs is not None:
        msgs.append(f"{label}: {len(scr)} scratch points at {len(sizes)} sizes and {len(set(D))} D values "
                    f"are too few for the joint fit (need sizes+3 points, 3 D values); using interpolation")
    use_fit = fit is not None and method == "auto"
    prim, alt = {}, {}
    for n in sizes:
        fc, ic = (curve_from_fit(fit, n, D[N == n]) if fit else None), curve_from_interp(D[N == n], L[N == n])
        prim[n], alt[n] = (fc, ic) if use_fit else (ic, fc)
        if prim[n] is None and msgs is not None:
            msgs.append(f"{label}: at N={n:.3g} only {sum(N == n)} scratch point(s), or none that improves "
                        f"with D; no scratch curve at that size without the joint fit")
    return prim, alt, fit, ("fit" if use_fit else "interp")

def de_point(r, curves, alt):
    """D_e, D_t and flags for one fine-tuned run, read off the scratch curve at its size."""
    p = {"run": r["name"], "N": r["N"], "D_f": r["D"], "D_f_bytes": r["D"] * r["bpt"], "loss": r["loss"],
         "bpb": r["bpb"], "D_e": None, "D_e_alt": None, "D_t": None, "D_t_bytes": None,
         "Df_over_De": None, "flags": [], "valid": False}
    c = curves.get(r["N"])
    if c is None:
        p["flags"].append("no_scratch_curve")
        return p
    De, below = c["invert"](r["loss"])
    p["D_e"] = De
    if alt.get(r["N"]):
        p["D_e_alt"] = alt[r["N"]]["invert"](r["loss"])[0]
    if below:
        p["flags"].append("below_floor")       # lower than the scratch curve reaches at any D
        return p
    lo, hi = c["D_range"]
    if not lo * (1 - 1e-9) <= De <= hi * (1 + 1e-9):
        p["flags"].append("extrapolated")
    if De < r["D"]:
        p["flags"].append("negative")
    p.update(D_t=De - r["D"], D_t_bytes=(De - r["D"]) * r["bpt"], Df_over_De=r["D"] / De, valid=De > r["D"])
    return p

LAW_KINDS = {"tokens": ("D_f", "D_t", False), "bytes": ("D_f_bytes", "D_t_bytes", False),
        "tokens_interpolated_only": ("D_f", "D_t", True)}

def law_xy(points, law, names=None):
    """Design matrix of log D_t = log k + alpha log D_f + beta log N on the positive points.
    An exponent whose variable does not vary in the data is left out (names fixes the columns)."""
    dk, tk, inner = LAW_KINDS[law]
    ps = [p for p in points if p["valid"] and not (inner and "extrapolated" in p["flags"])]
    Df, N = np.array([p[dk] for p in ps], float), np.array([p["N"] for p in ps], float)
    if names is None:
        names = ["k"] + [nm for v, nm in ((Df, "alpha"), (N, "beta")) if len(set(v)) > 1]
    cols = {"k": np.ones_like(Df), "alpha": np.log(Df), "beta": np.log(N)}
    return np.column_stack([cols[n] for n in names]), np.log([p[tk] for p in ps]), names

def solve(X, y):
    if len(y) < X.shape[1] + 1 or np.linalg.matrix_rank(X) < X.shape[1]:
        return None
    return np.linalg.lstsq(X, y, rcond=None)[0]

def fit_law(points, law):
    """Hernandez et al.'s D_t = k D_f^alpha N^beta, least squares in log space; CIs come later."""
    X, y, names = law_xy(points, law)
    out = {"n": int(len(y)), "k": None, "alpha": None, "beta": None, "ci": {}, "r2": None, "_names": names}
    coef = solve(X, y)
    if coef is None:
        out["note"] = f"{len(y)} positive points, need at least {X.shape[1] + 1} for {', '.join(names)}"
        return out
    ss = np.sum((y - y.mean()) ** 2)
    out["r2"] = float(1 - np.sum((y - X @ coef) ** 2) / ss) if ss > 0 else None
    out.update({nm: float(np.exp(c) if nm == "k" else c) for nm, c in zip(names, coef)})
    if len(names) < 3:
        out["note"] = "only one " + " and one ".join(
            {"alpha": "D_f", "beta": "N"}[m] for m in ("alpha", "beta") if m not in names) + ": exponent not identifiable"
    return out

def bootstrap(out, scr, ft, boot, seed):
    """95% percentile CIs by resampling runs: scratch runs within each size (so every size keeps a
    curve) and fine-tuned runs, refitting the scratch curve each time, because scratch noise moves
    every D_e of a size together and resampling fine-tuned runs alone would understate it."""
    rng, sizes = np.random.default_rng(seed), sorted({r["N"] for r in scr})
    x0 = out["scratch_fit"]["_theta"] if out["scratch_fit"] else None
    method = "auto" if out["curve_method"] == "fit" else "interp_only"
    samples = {law: [] for law in LAW_KINDS}
    for _ in range(boot if ft and scr else 0):
        s = [scr[i] for n in sizes for i in rng.choice([j for j, r in enumerate(scr) if r["N"] == n],
                                                        sum(r["N"] == n for r in scr))]
        curves, alt, _, _ = build_curves(s, method, None, "", x0)
        pts = [de_point(ft[i], curves, {}) for i in rng.integers(0, len(ft), len(ft))]
        for law, smp in samples.items():
            if out[f"law_{law}"]["r2"] is not None:
                coef = solve(*law_xy(pts, law, out[f"law_{law}"]["_names"])[:2])
                if coef is not None:
                    smp.append(coef)
    for law, smp in samples.items():
        L = out[f"law_{law}"]
        L["n_boot"] = len(smp)
        if smp:
            lo, hi = np.percentile(smp, [2.5, 97.5], axis=0)
            L["ci"] = {nm: [float(np.exp(a) if nm == "k" else a), float(np.exp(b) if nm == "k" else b)]
                       for nm, a, b in zip(L["_names"], lo, hi)}

# ----------------------------------------------------------------------------- analysis

def analyse_pretrain(pts):
    out = {"points": [{"run": r["name"], "N": r["N"], "loss": r["loss"], "flops": r["flops"]} for r in pts]}
    s, c, r2 = powerlaw([r["N"] for r in pts], [r["loss"] for r in pts])
    # log L = alpha_N log N_c - alpha_N log N
    out["L_of_N"] = {"alpha_N": -s, "N_c": math.exp(c / -s) if s < 0 else None, "r2": r2} if len(pts) > 1 else None
    ev = sorted((fnum(e.get("flops")), fnum(e.get("val_loss"))) for r in pts for e in r["evals"])
    front, lo = [], float("inf")
    for C, L in ev:                  # lowest loss reached at or below each compute
        if C > 0 and math.isfinite(L) and L < lo:
            front.append((C, L)); lo = L
    out["frontier"] = [{"flops": C, "loss": L} for C, L in front]
    s, c, r2 = powerlaw(*zip(*front)) if len(front) > 1 else (float("nan"),) * 3
    out["L_of_C"] = {"alpha_C": -s, "C_c": math.exp(c / -s) if s < 0 else None, "r2": r2} if len(front) > 1 else None
    return out

def analyse_target(target, runs, pretrain, method, boot, seed, msgs):
    scr = [r for r in runs if r["role"] == "scratch"]
    ft = sorted((r for r in runs if r["role"] == "finetune"), key=lambda r: (r["N"], r["D"]))
    lang = runs[0]["lang"]
    label = f"{LANG.get(lang, lang)} ({target})"
    out = {"language": lang, "label": label, "n_scratch": len(scr), "n_finetune": len(ft),
           "scratch": [{"run": r["name"], "N": r["N"], "D": r["D"], "loss": r["loss"], "bpb": r["bpb"]} for r in scr],
           "compute": [], "forgetting": [], "curve_method": None, "scratch_fit": None}
    curves, alt = {}, {}
    if len(scr) < 2:
        msgs.append(f"{label}: {len(scr)} from-scratch run(s) ({', '.join(r['name'] for r in scr) or 'none'}); "
                    f"need at least 2 for a scratch curve, so its {len(ft)} fine-tuned run(s) get no D_e")
    else:
        curves, alt, out["scratch_fit"], out["curve_method"] = build_curves(scr, method, msgs, label)
    out["_curves"], out["_runs"] = curves, runs        # for the plots; not written to JSON
    for n in sorted({r["N"] for r in ft if r["N"] not in curves and len(scr) >= 2}):
        msgs.append(f"{label}: fine-tuned runs at N={n:.3g} ({', '.join(r['name'] for r in ft if r['N'] == n)}) "
                    + ("have no usable scratch curve" if any(r["N"] == n for r in scr)
                       else "have no from-scratch twin at that size") + "; no D_e for them")
    out["points"] = [de_point(r, curves, alt) for r in ft]
    twins = {(r["N"], r["D"]): r for r in scr}
    for r in ft:
        pt = find_pretrain(r, pretrain)
        if (r["N"], r["D"]) in twins:
            out["compute"].append(compare_compute(r, twins[r["N"], r["D"]], pt))
        f = forgetting(r, pt)
        if f:
            out["forgetting"].append(f)
    good = [p for p in out["points"] if p["valid"]]
    out["n_negative"] = sum("negative" in p["flags"] for p in out["points"])
    out["n_no_De"] = sum(p["D_t"] is None for p in out["points"])
    out["n_extrapolated_in_fit"] = sum("extrapolated" in p["flags"] for p in good)
    for law in LAW_KINDS:
        out[f"law_{law}"] = fit_law(out["points"], law)
    bootstrap(out, [r for r in scr if r["N"] in curves], [r for r in ft if r["N"] in curves], boot, seed)
    if out["n_negative"]:
        msgs.append(f"{label}: {out['n_negative']} fine-tuned point(s) with negative transfer (D_e < D_f), "
                    f"left out of the power-law fit: " + ", ".join(p["run"] for p in out["points"] if "negative" in p["flags"]))
    return out

def find_pretrain(r, pretrain):
    """The English run a fine-tune started from: by init_from's directory name, else by N."""
    src = os.path.basename(os.path.dirname(str(r["log"].get("init_from") or "")))
    hits = [p for p in pretrain if os.path.basename(p["dir"]) == src] or [p for p in pretrain if p["N"] == r["N"]]
    return hits[0] if hits else None

def compare_compute(ft, tw, pt):
    """Compute for the fine-tuned run to first reach its scratch twin's best loss, against the
    twin's compute to its best; with and without the pre-training compute (up to its best.pt)."""
    reach = next((fnum(e.get("flops")) for e in ft["evals"] if fnum(e.get("val_loss")) <= tw["loss"]), None)
    C_pt = pt["flops"] if pt else None
    c = {"N": ft["N"], "D_f": ft["D"], "C_scratch": tw["flops"], "C_finetune_best": ft["flops"],
         "C_finetune_reach": reach, "C_pretrain": C_pt, "ratio": None, "ratio_with_pretrain": None}
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
    if pt and pt["target"] in keys:
        key = pt["target"]
    else:
        key = keys[0] if len(keys) == 1 else next((k for k in keys if k.endswith("en")), None)
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

# ----------------------------------------------------------------------------- findings

def gmean(v):
    v = [x for x in v if x is not None and x > 0 and math.isfinite(x)]
    return math.exp(np.mean(np.log(v))) if v else float("nan")

def name(T, t):
    return LANG.get(T[t]["language"], T[t]["label"])

def finding_order(T):
    worth = {t: {(p["N"], p["D_f"]): p["D_e"] / p["D_f"] for p in o["points"]
                 if p["D_e"] is not None and math.isfinite(p["D_e"])} for t, o in T.items()}
    worth = {t: w for t, w in worth.items() if w}
    if len(worth) < 2:
        return None, "Fewer than two languages have a finite D_e, so the order of transfer across languages cannot be tested."
    common = set.intersection(*(set(w) for w in worth.values()))
    score = {t: gmean([w[c] for c in (common or w)]) for t, w in worth.items()}
    ranked = sorted(score, key=score.get, reverse=True)
    order = list(dict.fromkeys(T[t]["language"] for t in ranked if T[t]["language"] in SEED_ORDER))
    seed = [l for l in SEED_ORDER if l in order]
    holds = order == seed if len(seed) >= 2 else None
    where = (f"over the {len(common)} (N, D_f) cells all of them share" if common else
             "over each language's own cells (they share none, so this comparison is loose)")
    text = (f"Averaged {where} (geometric mean of D_e/D_f), fine-tuning a pre-trained English model was worth "
            + ", ".join(f"{score[t]:.2f}x its data for {name(T, t)}" for t in ranked)
            + " (below 1x the pre-training hurt). Observed order: " + " > ".join(name(T, t) for t in ranked) + ". ")
    text += ("The seed's German > Spanish > Chinese " + ("holds" if holds else "does not hold") + " at this scale"
             + ("" if len(seed) == 3 else f" (only {', '.join(LANG[l] for l in seed)} measured)") + "."
             if holds is not None else "Fewer than two of German, Spanish and Chinese were measured, so the seed's order is not tested.")
    return holds, text

def trend_counts(T, along):
    """Sign of d log(D_f/D_e) / d log(along) in each series where the other variable is fixed."""
    other = "D_f" if along == "N" else "N"
    up = total = 0
    for o in T.values():
        groups = {}
        for p in o["points"]:
            if p["Df_over_De"] and p["Df_over_De"] > 0:
                groups.setdefault(p[other], []).append(p)
        for ps in groups.values():
            s = powerlaw([p[along] for p in ps], [p["Df_over_De"] for p in ps])[0]
            if math.isfinite(s):
                total += 1; up += s > 0
    return up, total

def finding_fraction(T):
    upN, nN = trend_counts(T, "N")
    upD, nD = trend_counts(T, "D_f")
    if nN + nD == 0:
        return None, "No series has two finite D_f/D_e values, so its trends with N and D_f cannot be measured."
    hN = (nN - upN) > nN / 2 if nN else None
    hD = upD > nD / 2 if nD else None
    text = (f"D_f/D_e fell with model size in {nN - upN} of {nN} series at fixed D_f (seed: it decreases with N, "
            f"pre-training helps bigger models more)" if nN else "No D_f was measured at two sizes, so the trend with N is untested")
    text += (f"; it rose with D_f in {upD} of {nD} series at fixed N (seed: it increases with D_f, pre-training "
             f"matters less as fine-tuning data grows). " if nD else "; no size has two D_f, so the trend with D_f is untested. ")
    parts = [f"{'holds' if h else 'does not hold'} for {what}" for h, what in ((hN, "N"), (hD, "D_f")) if h is not None]
    return (None if None in (hN, hD) else hN and hD), text + "The seed's finding " + " and ".join(parts) + "."

def finding_compute(T):
    cells = [c for o in T.values() for c in o["compute"]]
    if not cells:
        return None, "No fine-tuned run has a from-scratch twin (same N and D_f), so compute cannot be compared."
    r = [c["ratio"] for c in cells if c["ratio"] is not None]
    rp = [c["ratio_with_pretrain"] for c in cells if c["ratio_with_pretrain"] is not None]
    fast, fastp = sum(x < 1 for x in r), sum(x < 1 for x in rp)
    holds = fast > len(cells) / 2
    text = (f"In {fast} of {len(cells)} (language, N, D_f) cells the fine-tuned run reached its from-scratch twin's "
            f"best loss with less compute than the twin spent to get there"
            + (f" (median ratio {np.median(r):.2f})" if r else "")
            + f"; in {len(cells) - len(r)} it never reached it. Counting the pre-training compute as well, "
            f"{fastp} of {len(rp)} were cheaper. The seed's 'pre-trained models are more compute-efficient' "
            f"(pre-training cost not counted) {'holds' if holds else 'does not hold'} at this scale.")
    return holds, text

def finding_limited(T):
    steeper, total, sf, ss = 0, 0, [], []
    for o in T.values():
        for Df in sorted({p["D_f"] for p in o["points"]}):
            f = [(p["N"], p["loss"]) for p in o["points"] if p["D_f"] == Df]
            s = [(p["N"], p["loss"]) for p in o["scratch"] if p["D"] == Df]
            a, b = powerlaw(*zip(*f))[0] if len(f) > 1 else math.nan, powerlaw(*zip(*s))[0] if len(s) > 1 else math.nan
            if math.isfinite(a) and math.isfinite(b):
                total += 1; steeper += a < b; sf.append(a); ss.append(b)
    if not total:
        return None, "No D_f has both fine-tuned and from-scratch runs at two or more sizes, so parameter- vs data-limited cannot be told."
    holds = steeper > total / 2
    return holds, (f"At fixed D_f, loss fell with N at a mean slope d log L / d log N of {np.mean(sf):.3f} fine-tuned and "
                   f"{np.mean(ss):.3f} from scratch; the fine-tuned slope was steeper in {steeper} of {total} series. "
                   f"A steep slope means parameter-limited, a flat one data-limited: the seed's 'fine-tuned models are "
                   f"parameter-limited, scratch models data-limited' {'holds' if holds else 'does not hold'} here.")

def finding_negative(T):
    pts = [(o, p) for o in T.values() for p in o["points"]]
    neg = [f"{name_of(o)} N={p['N']:.3g} D_f={p['D_f']:.3g} (D_t={p['D_t']:.3g})" for o, p in pts if "negative" in p["flags"]]
    floor = sum("below_floor" in p["flags"] for _, p in pts)
    none = sum("no_scratch_curve" in p["flags"] for _, p in pts)
    text = (f"{len(neg)} of {len(pts)} fine-tuned points showed negative transfer, D_e < D_f"
            + (": " + "; ".join(neg) + ". They stay in the tables with D_t < 0 and are left out of "
               "the power-law fit, which needs D_t > 0" if neg else "") + f". {floor} point(s) were below the lowest loss the scratch curve "
            f"reaches at any D (D_e unbounded, also left out) and {none} had no scratch curve at their size.")
    return None, text

def name_of(o):
    return LANG.get(o["language"], o["label"])

def fmt_ci(law, k):
    if law.get(k) is None:
        return "n/a"
    lo, hi = law["ci"].get(k, [math.nan, math.nan])
    return f"{law[k]:.3g} [{lo:.3g}, {hi:.3g}]"

def finding_law(o):
    law, lb = o["law_tokens"], o["law_bytes"]
    used = law["n"]
    left = f"{o['n_negative']} negative and {o['n_no_De']} without a finite D_e left out"
    if law.get("alpha") is None and law.get("k") is None:
        return None, f"No transfer law ({law.get('note', 'no points')}; {left})."
    text = (f"D_t = k D_f^alpha N^beta with k = {fmt_ci(law, 'k')}, alpha = {fmt_ci(law, 'alpha')}, "
            f"beta = {fmt_ci(law, 'beta')} (95% bootstrap CIs), R^2 = {law['r2']:.3f}, over {used} positive points "
            f"({left}; {o['n_extrapolated_in_fit']} of the {used} needed extrapolation of the scratch curve). "
            f"In bytes: k = {fmt_ci(lb, 'k')}, alpha = {fmt_ci(lb, 'alpha')}, beta = {fmt_ci(lb, 'beta')}."
            + (f" Note: {law['note']}." if law.get("note") else ""))
    alt = [p["D_e"] / p["D_e_alt"] for p in o["points"] if p["valid"] and p["D_e_alt"] and math.isfinite(p["D_e_alt"])]
    if alt:
        text += (f" D_e from the {o['curve_method']} scratch curve was {np.median(alt):.2f}x (median) the D_e from the "
                 f"{'interpolation' if o['curve_method'] == 'fit' else 'joint fit'}: this is how much the answer depends on the curve form.")
    return None, text

def finding_pretrain(P):
    if not P:
        return None, "No finished English pre-training runs were found, so L(N) and the compute frontier are not fitted."
    a, c = P["L_of_N"], P["L_of_C"]
    text = (f"L(N) = (N_c/N)^alpha_N gave alpha_N = {a['alpha_N']:.3f} (R^2 = {a['r2']:.3f}) over "
            f"{len(P['points'])} sizes" if a else f"Only {len(P['points'])} size, no L(N) fit")
    text += (f"; the loss-vs-compute frontier gave alpha_C = {c['alpha_C']:.3f} (R^2 = {c['r2']:.3f}). " if c else ". ")
    return None, text + "For scale, Kaplan et al. (2020) report alpha_N = 0.076 and alpha_C = 0.050 at far larger N and C."

def finding_forgetting(T):
    f = [x for o in T.values() for x in o["forgetting"]]
    if not f:
        return None, "No fine-tuning run logged an English validation loss, so forgetting is not measured."
    rb, rl = [x["rise_at_best"] for x in f], [x["rise_last"] for x in f]
    return None, (f"Over {len(f)} fine-tuning runs that logged English val loss, it rose by {np.nanmean(rb):.3f} nats/token "
                  f"on average by the best target-language checkpoint (range {np.nanmin(rb):.3f} to {np.nanmax(rb):.3f}) "
                  f"and by {np.nanmean(rl):.3f} by the last evaluation.")

def findings(res):
    T, out = res["targets"], []
    for title, (holds, text) in (("Transfer across languages", finding_order(T)),
                                 ("D_f/D_e against N and D_f", finding_fraction(T)),
                                 ("Compute efficiency", finding_compute(T)),
                                 ("Parameter- vs data-limited", finding_limited(T)),
                                 ("Negative transfer", finding_negative(T)),
                                 *((f"Transfer law for {o['label']}", finding_law(o)) for o in T.values()),
                                 ("English pre-training", finding_pretrain(res["pretrain"])),
                                 ("Forgetting", finding_forgetting(T))):
        out.append({"title": title, "holds": holds, "text": text})
    return out

# ----------------------------------------------------------------------------- plots

def save(fig, path):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".png.tmp")
    os.close(fd)
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    os.chmod(tmp, 0o644)             # mkstemp makes 0600; a report is for reading
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

def plot_loss_vs_data(T, path):
    """Figs 4-5: scratch points and curve, fine-tuned points, D_t as a dashed arrow D_f -> D_e."""
    rows = [o for o in T.values() if o["points"] or o["scratch"]]
    if not rows:
        return blank(path, "Loss vs D_f", "no scratch or fine-tuned runs")
    sizes = [sorted({p["N"] for p in o["scratch"] + o["points"]}) for o in rows]
    fig, axs = grid(len(rows), max(map(len, sizes)), "Loss vs dataset size: scratch (o, curve) and fine-tuned (s); dashed = D_t")
    for i, (o, ns) in enumerate(zip(rows, sizes)):
        for j, n in enumerate(ns):
            ax, sc = axs[i, j], [p for p in o["scratch"] if p["N"] == n]
            ft = [p for p in o["points"] if p["N"] == n]
            ax.scatter([p["D"] for p in sc], [p["loss"] for p in sc], c="k", marker="o", label="scratch")
            ax.scatter([p["D_f"] for p in ft], [p["loss"] for p in ft], c="C3", marker="s", label="fine-tuned")
            c = o["_curves"].get(n)
            if c:
                xs = [p["D"] for p in sc] + [p["D_f"] for p in ft] + [p["D_e"] for p in ft if p["D_e"] and math.isfinite(p["D_e"])]
                d = np.geomspace(min(xs) / 2, max(xs) * 2, 200)
                ax.plot(d, c["predict"](d), "k-", lw=0.8, label=f"scratch {c['method']}")
            for p in ft:
                if p["D_e"] and math.isfinite(p["D_e"]):
                    ax.plot([p["D_f"], p["D_e"]], [p["loss"]] * 2, "--", c="C3" if p["D_t"] > 0 else "C0", lw=0.8)
            ax.set(xscale="log", title=f"{o['label']}  N={n:.3g}", xlabel="D (tokens)", ylabel="val loss (nats/token)")
        axs[i, 0].legend(fontsize=6)
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
    """Fig 6: D_f/D_e against D_f, one line per size; above 1 is negative transfer."""
    col = colors(p["N"] for p in o["points"])
    for n in col:
        ps = [p for p in o["points"] if p["N"] == n and p["Df_over_De"]]
        ax.plot([p["D_f"] for p in ps], [p["Df_over_De"] for p in ps], "o-", c=col[n], label=f"N={n:.3g}")
    ax.axhline(1, c="gray", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="D_f (tokens)", ylabel="D_f / D_e")

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
    """Fig 7 at the largest size with both roles: eval curves against compute; dotted adds pre-training."""
    n = max(p["N"] for p in o["points"] if any(s["N"] == p["N"] for s in o["scratch"]))
    runs = [r for r in o["_runs"] if r["N"] == n and r["role"] != "pretrain"]
    col = colors(r["D"] for r in runs)
    for r in sorted(runs, key=lambda r: (r["role"], r["D"])):
        ev = [(fnum(e.get("flops")), fnum(e.get("val_loss"))) for e in r["evals"] if fnum(e.get("flops")) > 0]
        if not ev:
            continue
        C, L = np.array(ev).T
        ax.plot(C, L, "-" if r["role"] == "scratch" else "--", c=col[r["D"]], lw=1,
                label=f"{r['role']} D={r['D']:.3g}")
        pt = [c["C_pretrain"] for c in o["compute"] if c["N"] == n and c["D_f"] == r["D"] and c["C_pretrain"]]
        if r["role"] == "finetune" and pt:
            ax.plot(C + pt[0], L, ":", c=col[r["D"]], lw=1)
    ax.set(xscale="log", xlabel="training FLOPs (Kaplan)", ylabel="val loss (nats/token)", title=f"N={n:.3g}")

def plot_pretrain(P, pN, pC, pre_runs):
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
    col = colors(r["N"] for r in pre_runs)
    for r in pre_runs:
        ev = [(fnum(e.get("flops")), fnum(e.get("val_loss"))) for e in r["evals"] if fnum(e.get("flops")) > 0]
        if ev:
            ax[0, 0].plot(*np.array(ev).T, c=col[r["N"]], lw=1, label=f"N={r['N']:.3g}")
    fr = P["frontier"]
    if fr:
        ax[0, 0].plot([f["flops"] for f in fr], [f["loss"] for f in fr], "k--", lw=1, label="frontier")
    ax[0, 0].set(xscale="log", yscale="log", xlabel="training FLOPs (Kaplan)", ylabel="val loss")
    ax[0, 0].legend(fontsize=6)
    save(fig, pC)

def plots(res, out, pre_runs):
    T, p = res["targets"], {k: os.path.join(out, v) for k, v in PLOTS.items()}
    plot_pretrain(res["pretrain"], p["pretrain_N"], p["pretrain_C"], pre_runs)
    plot_loss_vs_data(T, p["data"])
    per_target(T, p["frac"], "D_f/D_e vs D_f (Fig 6); above 1 = negative transfer", draw_frac,
               lambda o: any(q["Df_over_De"] for q in o["points"]))
    per_target(T, p["N"], "Loss vs N at fixed D (o- scratch, s-- fine-tuned)", draw_loss_vs_N,
               lambda o: o["points"] or o["scratch"])
    per_target(T, p["compute"], "Loss vs compute (Fig 7): - scratch, -- fine-tuned, : plus pre-training",
               draw_compute, lambda o: any(s["N"] == q["N"] for s in o["scratch"] for q in o["points"]))

# ----------------------------------------------------------------------------- report

def clean(x):
    """JSON-safe: non-finite floats become null, keys starting with _ (closures, raw logs) are dropped."""
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x.item() if isinstance(x, np.generic) else x

def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)

def g(x, f=".3g"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, f)

def table(head, rows):
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(map(str, r)) + " |" for r in rows]) + "\n"

def cell(p):
    if "no_scratch_curve" in p["flags"]:
        return "no curve"
    if "below_floor" in p["flags"]:
        return "below floor (D_e=inf)"
    return (f"{g(p['D_t'])} ({g(p['Df_over_De'], '.2f')}, {g(1 / p['Df_over_De'], '.3g')}x)"
            + ("*" if "extrapolated" in p["flags"] else ""))

def report_md(res):
    T, md = res["targets"], [f"# nanotransfer scaling report\n\nSource: `{res['source']}`; {res['n_runs_used']} runs used, "
                             f"{len(res['skipped'])} left out (see Messages). Losses are best val loss in nats/token; "
                             f"D in tokens unless said; C = training FLOPs, Kaplan convention.\n"]
    md.append("## Findings\n")
    for f in res["findings"]:
        tag = {True: " (seed finding holds)", False: " (seed finding does not hold)", None: ""}[f["holds"]]
        md.append(f"**{f['title']}{tag}.** {f['text']}\n")
    md.append("## Transfer law D_t = k D_f^alpha N^beta (positive points, 95% bootstrap CIs)\n")
    md.append(table(["language", "unit", "points", "negative", "no D_e", "extrapolated", "k", "alpha", "beta", "R^2"],
                    [[o["label"], u, o[f"law_{u}"]["n"], o["n_negative"], o["n_no_De"], o["n_extrapolated_in_fit"],
                      fmt_ci(o[f"law_{u}"], "k"), fmt_ci(o[f"law_{u}"], "alpha"), fmt_ci(o[f"law_{u}"], "beta"),
                      g(o[f"law_{u}"]["r2"])] for o in T.values() for u in ("tokens", "bytes")]))
    md.append("Without the extrapolated points (tokens): " + "; ".join(
        f"{o['label']}: alpha {fmt_ci(o['law_tokens_interpolated_only'], 'alpha')}, beta "
        f"{fmt_ci(o['law_tokens_interpolated_only'], 'beta')} ({o['law_tokens_interpolated_only']['n']} points)"
        for o in T.values()) + "\n")
    for o in T.values():
        md.append(f"## {o['label']}\n")
        Ns, Dfs = sorted({p["N"] for p in o["points"]}), sorted({p["D_f"] for p in o["points"]})
        cells = {(p["N"], p["D_f"]): p for p in o["points"]}
        if Ns:
            md.append("D_t in tokens (D_f/D_e, D_e/D_f = what the pre-trained model is worth in fine-tuning data); "
                      "* = D_e extrapolated beyond the measured scratch D; negative D_t = negative transfer.\n")
            md.append(table(["D_f \\ N"] + [g(n) for n in Ns],
                            [[g(d)] + [cell(cells[n, d]) if (n, d) in cells else "" for n in Ns] for d in Dfs]))
            md.append(table(["run", "N", "D_f", "D_f bytes", "loss", "bpb", "D_e", "D_e alt", "D_t", "D_t bytes", "flags"],
                            [[p["run"], g(p["N"]), g(p["D_f"]), g(p["D_f_bytes"]), g(p["loss"], ".4f"), g(p["bpb"], ".4f"),
                              g(p["D_e"]), g(p["D_e_alt"]), g(p["D_t"]), g(p["D_t_bytes"]), " ".join(p["flags"])]
                             for p in o["points"]]))
        fit = o["scratch_fit"]
        md.append(f"Scratch curve: {o['curve_method'] or 'none'}"
                  + (f"; joint fit L = [a_N + D_c/D]^alpha_D: alpha_D = {fit['alpha_D']:.3g}, D_c = {fit['D_c']:.3g}, "
                     f"L_inf(N) = {', '.join(f'{v:.3g} at {k}' for k, v in fit['L_inf'].items())}, "
                     f"rms log residual {fit['rms_log_resid']:.4f}" if fit else "") + "\n")
        if fit:
            md.append(table(["N", "D", "loss", "fit", "residual %"],
                            [[g(r["N"]), g(r["D"]), g(r["loss"], ".4f"), g(r["fit"], ".4f"), g(100 * r["log_resid"], ".2f")]
                             for r in fit["residuals"]]))
        if o["compute"]:
            md.append("Compute: the fine-tuned run's FLOPs to first reach its scratch twin's best loss, over the twin's FLOPs to its best.\n")
            md.append(table(["N", "D_f", "C scratch", "C fine-tune best", "C to reach", "ratio", "C pre-train", "ratio with pre-train"],
                            [[g(c["N"]), g(c["D_f"]), g(c["C_scratch"]), g(c["C_finetune_best"]), g(c["C_finetune_reach"]),
                              g(c["ratio"]), g(c["C_pretrain"]), g(c["ratio_with_pretrain"])] for c in o["compute"]]))
        if o["forgetting"]:
            md.append(table(["run", "English set", "baseline (from)", "at best", "last", "rise at best", "rise last"],
                            [[f["run"], f["key"], f"{g(f['baseline'], '.4f')} ({f['baseline_from']})", g(f["at_best"], ".4f"),
                              g(f["last"], ".4f"), g(f["rise_at_best"], ".4f"), g(f["rise_last"], ".4f")] for f in o["forgetting"]]))
    P = res["pretrain"]
    if P:
        md.append("## English pre-training\n")
        md.append(table(["run", "N", "best loss", "FLOPs"], [[p["run"], g(p["N"]), g(p["loss"], ".4f"), g(p["flops"])] for p in P["points"]]))
    C = res.get("checks") or {}
    if C.get("runs"):
        md.append("## Checks (runs beside the grid, not fitted)\n")
        md.append(table(["tag", "run", "loss", "grid twin", "twin loss", "difference"],
                        [[c["tag"], c["run"], g(c["loss"], ".4f"), c["grid_run"] or "none", g(c["grid_loss"], ".4f"),
                          g(c["diff"], "+.4f")] for c in C["runs"]]))
        for sp in C["seed_spread"]:
            md.append(f"Run-to-run spread at {sp['target']} N={g(sp['N'])} D_f={g(sp['D_f'])} over seeds "
                      f"{', '.join(sp['seeds'])}: std of the best loss {g(sp['finetune_std'], '.4f')} (fine-tuned), "
                      f"{g(sp['scratch_std'], '.4f')} (scratch); fine-tuned minus scratch "
                      f"{', '.join(g(x, '+.4f') for x in sp['gaps'])} (mean {g(sp['gap_mean'], '+.4f')}, "
                      f"std {g(sp['gap_std'], '.4f')}).\n")
    md.append("## Figures\n\n" + "\n".join(f"- ![{k}]({v})" for k, v in PLOTS.items()) + "\n")
    md.append("## Messages\n\n" + ("\n".join(f"- {m}" for m in res["messages"]) or "none") + "\n")
    return "\n".join(md)

# ----------------------------------------------------------------------------- main

def analyse(root, curve="auto", boot=1000, seed=0):
    msgs = []
    runs, skipped = load_runs(root, msgs)
    runs, checks = split_checks(runs)
    runs = dedupe(runs, msgs)
    pre = [r for r in runs if r["role"] == "pretrain"]
    res = {"schema": 1, "source": root, "curve": curve, "bootstrap": boot, "seed": seed, "n_runs_used": len(runs),
           "runs_used": sorted(r["name"] for r in runs), "skipped": skipped, "messages": msgs,
           "pretrain": analyse_pretrain(pre) if pre else None, "targets": {}, "_pre_runs": pre}
    if not pre:
        msgs.append("no finished pre-training runs: no L(N), no compute frontier, no pre-training cost")
    for t in sorted({r["target"] for r in runs if r["role"] != "pretrain"}):
        res["targets"][t] = analyse_target(t, [r for r in runs if r["target"] == t and r["role"] != "pretrain"],
                                           pre, curve, boot, seed, msgs)
    res["checks"] = analyse_checks(checks, runs)
    res["findings"] = findings(res)
    return res

def write(res, out):
    os.makedirs(out, exist_ok=True)
    plots(res, out, res["_pre_runs"])
    write_atomic(os.path.join(out, "results.json"), json.dumps(clean(res), indent=1, allow_nan=False))
    write_atomic(os.path.join(out, "report.md"), report_md(res))

def main(argv=None):
    ap = argparse.ArgumentParser(description="Fit transfer scaling laws from the run logs under a directory.")
    ap.add_argument("dir", help="directory searched recursively for <run>/log.json")
    ap.add_argument("--out", help="output directory (default: <dir>/report)")
    ap.add_argument("--curve", choices=["auto", "interp"], default="auto",
                    help="scratch curve: the joint fit when there are enough points (auto), or interpolation")
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    a = ap.parse_args(argv)
    if not os.path.isdir(a.dir):
        print(f"fit_scaling: no such directory {a.dir}", file=sys.stderr)
        return 1
    out = a.out or os.path.join(a.dir, "report")
    res = analyse(a.dir, a.curve, a.boot, a.seed)
    write(res, out)
    for m in res["messages"]:
        print("note:", m)
    for f in res["findings"]:
        print(f"- {f['title']}: {f['text']}")
    print(f"wrote {out}/results.json, report.md and {len(PLOTS)} figures")
    return 0

if __name__ == "__main__":
    sys.exit(main())
