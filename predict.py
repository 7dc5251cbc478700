"""
Ask the transfer law a question: for a language, a model size N and D_f tokens of its data, how
much English pre-training is worth, what loss fine-tuning reaches, and whether it pays in compute.
Reads only the results.json that fit_scaling.py wrote (docs/contracts.md, "Analysis").

    python predict.py out/builtin/report/results.json --lang=de --N=5.5e4 --D_f=6000
    python predict.py RESULTS.json --lang=de --N=1.4e4,5.5e4 --D_f=2000,6000      # a table
    python predict.py RESULTS.json --lang=de --D_f=6000 --budget_flops=1e12       # the trade-off

Comma-separated values give one row per combination; D_f is in TOKENS. --budget_flops: for each
D_f, which arm and measured size reach the lowest loss in that compute. D_e = D_f + k D_f^alpha
N^beta; the fine-tuned loss is the scratch curve at D_e (intervals: the law's bootstrap draws and
the run-to-run spread); compute in Kaplan FLOPs. A query outside the measured sizes, the law's D_f
or the scratch curve's D is an EXTRAPOLATION, said in its row; between two measured sizes, log L
is linear in log N. A language without a law gets its measured D_e/D_f instead.
"""
import json
import math
import sys

import numpy as np

from configurator import configure
from util import fail

# -----------------------------------------------------------------------------
lang = ''  # a language code or a dataset name; '' = the only one in the study
N = ''  # model size(s), non-embedding parameters, comma-separated
D_f = ''  # fine-tuning data in tokens, comma-separated
budget_flops = 0.0  # > 0: which arm and size reach the lowest loss within this compute
level = 0.95  # coverage of the intervals
seed = 0  # the draws of the scratch curve's spread
# -----------------------------------------------------------------------------

SAME_SIZE = 0.02  # an N within 2% of a measured size is that size: labels round (56K = 55,296)

def load_results(path):
    try:
        with open(path) as f:
            res = json.load(f)
    except OSError as e:
        fail(f"cannot read {path} ({e.strerror}): give the results.json fit_scaling.py wrote, "
             f"e.g. out/builtin/report/results.json")
    except ValueError:
        fail(f"{path} is not JSON: give the results.json fit_scaling.py wrote")
    if not isinstance(res, dict) or not isinstance(res.get("targets"), dict):
        fail(f"{path} has no 'targets': rerun python fit_scaling.py on the sweep's directory")
    return res

def find_target(res, wanted):
    """The dataset asked for, by name or by language code; exits naming the choices."""
    targets = res["targets"]
    have = ", ".join(sorted({t.get("language", "?") for t in targets.values()} | set(targets)))
    hits = [d for d, t in targets.items() if wanted in (d, t.get("language"))]
    if not wanted and len(targets) == 1:
        hits = list(targets)
    if len(hits) != 1:
        why = f"language '{wanted}' is not in the study" if not hits else \
            f"'{wanted}' names several datasets" if wanted else "give a language"
        fail(f"{why}: use --lang= one of {have or '(none)'}")
    return targets[hits[0]]

def parse_values(text, key):
    """Comma-separated positive numbers, e.g. '5.5e4,2e5'."""
    try:
        values = [float(v) for v in str(text).strip("()[] ").split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        fail(f"--{key}={text!r}: give positive numbers, comma-separated, e.g. --{key}=6000,12000")
    return values

def short(x):
    """3 significant digits, exponents without padding: 55296 -> 5.53e4."""
    return f"{x:.3g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")

def as_float(x):
    return None if x is None else float(x)

def loglog(x, y, q):
    """y at q (an array too) by straight lines in log-log between the points (x rising); beyond
    the ends the end segment continues, the rule fit_scaling.py reads D_e with."""
    lx, ly, lq = np.log(x), np.log(y), np.log(q)
    if len(lx) == 1:
        return np.exp(np.full_like(np.asarray(lq, float), ly[0]))
    inside = np.interp(lq, lx, ly)
    lo = ly[0] + (lq - lx[0]) * (ly[1] - ly[0]) / (lx[1] - lx[0])
    hi = ly[-1] + (lq - lx[-1]) * (ly[-1] - ly[-2]) / (lx[-1] - lx[-2])
    return np.exp(np.where(lq < lx[0], lo, np.where(lq > lx[-1], hi, inside)))

def sorted_xy(pairs):
    pairs = sorted((a, b) for a, b in pairs if a and b and a > 0 and b > 0)
    return np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])

def flops_at(xy, D):
    return None if len(xy[0]) == 0 else loglog(*xy, D)

def near(n, m):
    return abs(m / n - 1) < 1e-4

class Size:
    """One measured size: its scratch curve (end segments beyond it) and its cells' FLOPs by D."""

    def __init__(self, n, curve, target, pretrain_flops):
        self.N, self.pretrain_flops = n, pretrain_flops
        conv = sorted((r for r in target["scratch"] if near(n, r["N"]) and r["converged"]),
                      key=lambda r: r["D"])
        keep = []
        for r in conv:   # the points beating every smaller D, as fit_scaling.scratch_points
            if not keep or r["loss"] < keep[-1][1]:
                keep.append((r["D"], r["loss"]))
        self.points, self.curve = sorted_xy(keep), sorted_xy(curve["scratch"])
        self.D_range = (self.curve[0][0], self.curve[0][-1])
        self.scratch_flops = sorted_xy((r["D"], r["flops"]) for r in conv)
        self.ft_flops = sorted_xy((p["D_f"], p["flops"]) for p in target["points"]
                                  if near(n, p["N"]))

    def loss(self, D):   # the scratch curve's loss at D tokens, an array like D
        D = np.asarray(D, float)
        inside = loglog(*self.curve, np.clip(D, *self.D_range))
        outside = loglog(*self.points, D) if len(self.points[0]) > 1 else inside
        return np.where((D < self.D_range[0]) | (D > self.D_range[1]), outside, inside)

def build_sizes(target, res):
    pts = (res.get("pretrain") or {}).get("points") or []
    pt = {p["N"]: p["flops"] for p in pts if p.get("flops")}
    sizes = []
    for key, curve in (target.get("curves") or {}).items():
        flops = [f for m, f in pt.items() if near(float(key), m)]
        sizes.append(Size(float(key), curve, target, flops[0] if flops else None))
    return sorted(sizes, key=lambda s: s.N)

def size_weights(sizes, n):
    """[(Size, weight in log N)] at N = n: that size (within SAME_SIZE) or the two nearest; and
    a note saying how, starting with '!' if an extrapolation."""
    same = [s for s in sizes if abs(s.N / n - 1) <= SAME_SIZE]
    if same or len(sizes) == 1:
        s = same[0] if same else sizes[0]
        note = "" if s.N == n else f"N read as the measured size {short(s.N)}"
        if not same:
            note = f"!N {short(n)}: the only measured size is {short(s.N)}, its curve used as is"
        return [(s, 1.0)], note
    j = int(np.clip(np.searchsorted([s.N for s in sizes], n), 1, len(sizes) - 1))
    a, b = sizes[j - 1], sizes[j]
    t = math.log(n / a.N) / math.log(b.N / a.N)
    if 0 < t < 1:
        return [(a, 1 - t), (b, t)], f"interpolated in N between {short(a.N)} and {short(b.N)}"
    return [(a, 1 - t), (b, t)], (f"!N outside the measured sizes {short(sizes[0].N)}-"
                                  f"{short(sizes[-1].N)}")

def across(weights, quantity):
    """exp(sum of w log quantity(size)): log-linear in log N; None if a size lacks it."""
    values = [quantity(s) for s, _ in weights]
    if any(v is None for v in values):
        return None
    return np.exp(sum(w * np.log(v) for (_, w), v in zip(weights, values)))

def outside(spans, value, what, tol=1e-9):
    """An extrapolation note when value lies outside a span of a size in use, else ''."""
    lo, hi = max(sp[0] for sp in spans), min(sp[1] for sp in spans)
    if lo * (1 - tol) <= value <= hi * (1 + tol):
        return ""
    return f"!{what} {short(value)} outside the measured {short(lo)}-{short(hi)}"

def interval(values):
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return None
    tail = 50 * (1 - level)
    return [float(x) for x in np.percentile(v, [tail, 100 - tail])]

def law_notes(law, n, d_f, n_said):
    """Where the query lies outside the cells the law was fitted on (N unless said already)."""
    notes = []
    for what, x, (lo, hi), tol in (("N", n, law["N_range"], SAME_SIZE),
                                   ("D_f", d_f, law["D_f_range"], 1e-9)):
        if not (what == "N" and n_said) and not lo * (1 - tol) <= x <= hi * (1 + tol):
            notes.append(f"!{what} outside the law's {short(lo)}-{short(hi)}")
    return notes

def join_notes(notes):
    """Every extrapolation ('!' notes) after one loud word, so that none reads as measured."""
    plain = [x for x in notes if x and not x.startswith("!")]
    extra = [x[1:] for x in notes if x and x.startswith("!")]
    if extra:
        plain.append("EXTRAPOLATED: " + "; ".join(extra))
    return "; ".join(plain) or "inside the measured range"

def compute_notes(weights, D_e, d_f):
    """Where the FLOPs lines are read beyond their cells, or missing."""
    notes = []
    for xy, D, what, missing in (
            ([s.scratch_flops[0] for s, _ in weights], D_e, "D_e beyond the scratch cells'",
             "no converged scratch cell with FLOPs"),
            ([s.ft_flops[0] for s, _ in weights], d_f, "D_f beyond the fine-tuned cells'",
             "no fine-tuned cell with FLOPs at this size")):
        spans = [x[[0, -1]] for x in xy if len(x)]
        notes.append(outside(spans, D, what + " FLOPs:") if len(spans) == len(xy) else missing)
    if any(s.pretrain_flops is None for s, _ in weights):
        notes.append("no pre-training run of this size in the study: its FLOPs unknown")
    return notes

def predict(target, sizes, noise, n, d_f, rng):
    """All asked of one (N, D_f), intervals from the law's draws and one run's spread, notes."""
    law = target["law"]
    draws = np.array(law.get("draws") or [], float).reshape(-1, 3)
    if not len(draws):  # the fitted values alone
        draws = np.array([[math.log(law["k"]), law["alpha"], law["beta"]]])
    D_e = d_f + math.exp(math.log(law["k"])) * d_f ** law["alpha"] * n ** law["beta"]
    D_e_draws = d_f + np.exp(draws[:, 0]) * d_f ** draws[:, 1] * n ** draws[:, 2]
    weights, size_note = size_weights(sizes, n)
    spread = np.exp(noise * rng.standard_normal(len(draws)))
    L_scratch = across(weights, lambda s: s.loss(d_f))
    C_scratch = across(weights, lambda s: flops_at(s.scratch_flops, D_e))
    C_ft = across(weights, lambda s: flops_at(s.ft_flops, d_f))
    C_pt = across(weights, lambda s: s.pretrain_flops)
    spans = [s.D_range for s, _ in weights]
    notes = [size_note] + law_notes(law, n, d_f, size_note.startswith("!")) + [
        outside(spans, D_e, "D_e beyond the scratch curve:"),
        outside(spans, d_f, "D_f beyond the scratch curve:")]
    return {"N": n, "D_f": d_f, "D_f_bytes": d_f * target["bytes_per_token"],
            "L_ft": float(across(weights, lambda s: s.loss(D_e))),
            "L_ft_ci": interval(across(weights, lambda s: s.loss(D_e_draws)) * spread),
            "L_scratch": float(L_scratch), "L_scratch_ci": interval(L_scratch * spread),
            "D_e": D_e, "D_e_ci": interval(D_e_draws), "D_t": D_e - d_f,
            "D_t_ci": interval(D_e_draws - d_f), "Df_over_De": d_f / D_e,
            "Df_over_De_ci": interval(d_f / D_e_draws), "C_scratch": as_float(C_scratch),
            "C_scratch_ci": None if C_scratch is None else interval(
                across(weights, lambda s: flops_at(s.scratch_flops, D_e_draws))),
            "C_finetune": as_float(C_ft), "C_pretrain": as_float(C_pt),
            "C_finetune_with_pretrain": None if C_ft is None or C_pt is None
            else float(C_ft + C_pt), "note": join_notes(notes),
            "compute_note": join_notes([size_note] + compute_notes(weights, D_e, d_f))}

def with_ci(x, c, fmt=short):
    if x is None:
        return "-"
    return f"{fmt(x)} [{fmt(c[0])}, {fmt(c[1])}]" if c else fmt(x)

def table(title, header, rows):
    """Columns as wide as their widest cell; the last (a note) left as it is."""
    print(title)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header) - 1)]
    for r in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])

def print_law(target):
    law, ci = target["law"], target["law"].get("ci") or {}
    k, alpha, beta = (with_ci(law[x], ci.get(x), "{:.3g}".format) for x in ("k", "alpha", "beta"))
    unid = [k for k, ok in (law.get("identified") or {}).items() if not ok]
    draws = law.get("draws") or []
    (n_lo, n_hi), (d_lo, d_hi) = law["N_range"], law["D_f_range"]
    print(f"{target.get('label', target['language'])}: D_t = k D_f^alpha N^beta with "
          f"k = {k}, alpha = {alpha}, beta = {beta}"
          + (f" ({', '.join(unid)} not identified: held at 0)" if unid else ""))
    print(f"  fitted on {law.get('n_cells', '?')} cells, N {short(n_lo)}-{short(n_hi)}, D_f "
          f"{short(d_lo)}-{short(d_hi)} tokens; " + (
              f"{level:.0%} intervals from {len(draws)} bootstrap draws of the law (one "
              f"study's noise; results.json's, a rerun's, are sqrt 2 wider)" if draws else
              "no draws, so no intervals of the law (rerun fit_scaling.py with --boot 1000)"))
    print(f"  D in tokens (bytes per token: {target['bytes_per_token']:.3g}); loss in nats per "
          f"token on held-out text; compute in FLOPs (Kaplan)")

def print_predictions(rows):
    def cells(r, keys, fmt=short):   # each value with its interval, where it has one
        return [with_ci(r[k], r.get(k + "_ci"), fmt) for k in keys]
    table("\nLoss: fine-tuned (the scratch curve at D_e) and from scratch on the same D_f",
          ["N", "D_f tokens", "D_f bytes", "fine-tuned loss", "scratch loss at D_f", "note"],
          [cells(r, ["N", "D_f", "D_f_bytes"]) + cells(r, ["L_ft", "L_scratch"], "{:.3f}".format)
           + [r["note"]] for r in rows])
    table("\nData (tokens): D_e = D_f + D_t, the scratch data that reaches the fine-tuned loss",
          ["N", "D_f", "D_e", "D_t", "D_f/D_e", "note"],
          [cells(r, ["N", "D_f", "D_e", "D_t", "Df_over_De"]) + [r["note"]] for r in rows])
    table("\nCompute (FLOPs) to reach the fine-tuned loss: scratch on D_e tokens, or fine-tune",
          ["N", "D_f", "scratch on D_e", "fine-tune", "fine-tune + pre-training", "note"],
          [cells(r, ["N", "D_f", "C_scratch", "C_finetune", "C_finetune_with_pretrain"])
           + [r["compute_note"]] for r in rows])

def print_no_law(target):
    s = target.get("summary")
    print(f"{target.get('label', target['language'])}: no law was fitted "
          f"({target.get('note') or 'transfer was not positive in enough cells'})")
    if s:
        ratio = with_ci(s["De_over_Df"], s.get("ci"), "{:.3g}".format)
        print(f"  measured D_e/D_f = {ratio} (geometric mean over {s.get('n_cells', '?')} cells, "
              f"{s.get('n_negative', '?')} negative; below 1 = pre-training hurt); no prediction "
              f"per N and D_f is made")
    else:
        print("  no fine-tuned cell has a measured D_e: nothing to predict from")

def budget_rows(target, sizes, noise, d_f, rng):
    """Per measured size, each arm's loss on D_f tokens and FLOPs (fine-tuned only with a law)."""
    rows = []
    for s in sizes:
        rows.append({"arm": "scratch", "N": s.N, "loss": float(s.loss(d_f)),
                     "ci": interval(s.loss(d_f) * np.exp(noise * rng.standard_normal(200))),
                     "C": as_float(flops_at(s.scratch_flops, d_f)), "C_pt": 0.0, "note":
                     join_notes([outside([s.D_range], d_f, "D_f beyond the scratch curve:")])})
        if target.get("law"):
            p = predict(target, [s], noise, s.N, d_f, rng)
            rows.append({"arm": "fine-tuned", "N": s.N, "loss": p["L_ft"], "ci": p["L_ft_ci"],
                         "C": p["C_finetune"], "C_pt": p["C_pretrain"], "note": p["note"]})
    return rows

def total_flops(row, with_pretrain):
    """A budget row's FLOPs, its pre-training's too if asked; None where unknown."""
    if row["C"] is None or (with_pretrain and row["C_pt"] is None):
        return None
    return row["C"] + (row["C_pt"] if with_pretrain else 0.0)

def print_budget(target, sizes, noise, d_f, rng):
    rows = budget_rows(target, sizes, noise, d_f, rng)
    table(f"\nBudget {short(budget_flops)} FLOPs, D_f = {short(d_f)} tokens "
          f"({short(d_f * target['bytes_per_token'])} bytes): each arm at each measured size",
          ["arm", "N", "loss", "FLOPs", "FLOPs + pre-training", "note"],
          [[r["arm"], short(r["N"]), with_ci(r["loss"], r["ci"], "{:.3f}".format),
            with_ci(r["C"], None), with_ci(total_flops(r, True), None), r["note"]] for r in rows])
    for paid, words in ((False, "pre-training already paid"), (True, "counting pre-training")):
        fits = [r for r in rows if total_flops(r, paid) is not None
                and total_flops(r, paid) <= budget_flops]
        best = min(fits, key=lambda r: r["loss"]) if fits else None
        print(f"Lowest loss within the budget, {words}: " + (
            f"{best['arm']} N = {short(best['N'])}, loss {best['loss']:.3f}" if best else
            "nothing fits (raise --budget_flops or lower --D_f)"))
    if not target.get("law"):
        print("  (no law: the fine-tuned arm is not predicted)")

def main(argv):
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        sys.exit(0)
    # the results.json: the first bare argument, which configurator.py would run as a config file
    bare = [i for i, a in enumerate(argv) if not a.startswith("--")]
    if not bare:
        fail("give the results.json first: python predict.py out/builtin/report/results.json "
             "--lang=de --N=5.5e4 --D_f=6000")
    configure(globals(), argv[:bare[0]] + argv[bare[0] + 1:])
    res = load_results(argv[bare[0]])
    target = find_target(res, lang)
    if not D_f:
        fail("give --D_f= the fine-tuning data in tokens, e.g. --D_f=6000")
    Dfs = parse_values(D_f, "D_f")
    if not N and not budget_flops:
        fail("give --N= the model size(s), or --budget_flops= for the trade-off")
    Ns = parse_values(N, "N") if N else []
    sizes = build_sizes(target, res)
    if not sizes:
        fail(f"{target.get('label', lang)} has no converged scratch curve: nothing to read "
             f"losses from (run the scratch cells of the sweep)")
    noise = ((res.get("checks") or {}).get("noise_used") or [0.01])[0]
    rng = np.random.default_rng(seed)
    if target.get("law"):
        print_law(target)
        if Ns:
            print_predictions([predict(target, sizes, noise, n, d, rng) for n in Ns for d in Dfs])
    else:
        print_no_law(target)
    for d in Dfs if budget_flops > 0 else []:
        print_budget(target, sizes, noise, d, rng)

if __name__ == "__main__":
    main(sys.argv[1:])
