"""Tests for fit_scaling.py and report.py on synthetic run logs whose answer is known.

The synthetic logs follow the run contract (docs/contracts.md: out/<run>/log.json, schema 1, with
`converged`, `stop_reason` and `budget`), so write_log / make_sweep double as an example of what
train.py writes and sweep.py lays out:
    from tests.test_fit_scaling import make_sweep; make_sweep("/tmp/fake_out", noise=0.01)
    python fit_scaling.py /tmp/fake_out

The law behind them: converged from-scratch loss of Kaplan's form
    L(N, D) = [(N_c/N)^(aN/aD) + D_c/D]^aD
and fine-tuned loss L(N, D_f + D_t) with D_t = k D_f^alpha N^beta per language. Scratch points lie
2x apart from D_f/2 to 4x the largest D_f; the ones at 8x, and beyond 2x the largest D_f at the
largest size, are compute-limited: they stop on their budget still improving, 6% above the
converged curve (as in the first built-in study). fit_scaling.py assumes no curve form, so the
tests at the end of this file also draw scratch curves of three other shapes.
"""
import itertools
import json
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fit_scaling as fs  # noqa: E402
import report  # noqa: E402

NC, DC, AN, AD = 1e8, 2.7e6, 0.25, 0.35
LAWS = {"de": (3.0, 0.45, 0.32), "es": (1.5, 0.50, 0.30), "zh": (0.5, 0.55, 0.28)}   # k, alpha, beta
BPT = {"de": 1.0, "es": 1.0, "zh": 3.0}        # bytes per token: zh as if a BPE on CJK text
SIZES = [3e5, 1e6, 3e6]
DFS = [1e4, 2e4, 4e4, 8e4]
SCRATCH_DS = [DFS[0] / 2] + DFS + [2 * DFS[-1], 4 * DFS[-1], 8 * DFS[-1]]   # 2x apart
EN_ALPHA_N, EN_NC = 0.3, 3e7                     # English pre-training L(N) = (N_c/N)^alpha_N
COMPUTE_LIMIT = 1.06                             # an unconverged run ends this far above its converged loss
NOISE = 0.01                                     # 1% multiplicative noise on a loss


def scratch_loss(N, D):
    return ((NC / N) ** (AN / AD) + DC / D) ** AD


def transfer(lang, N, Df):
    k, a, b = LAWS[lang]
    return k * Df ** a * N ** b


def compute_limited(N, D):
    return D == SCRATCH_DS[-1] or (N == SIZES[-1] and D > 2 * DFS[-1])


def trajectory(loss, start, tokens_best, converged, n=12, extra=None):
    """Eval points falling from `start` to `loss` at tokens_best; a converged run then overfits a
    little and stops, an unconverged one ends at its best (its budget ran out)."""
    toks = list(np.geomspace(tokens_best / 300, tokens_best, n)) + ([1.5 * tokens_best] if converged else [])
    out = []
    for i, t in enumerate(toks):
        u = min(1.0, math.log(t / toks[0]) / math.log(tokens_best / toks[0]))
        v = loss + (start - loss) * (1 - u) ** 2 + (0.02 if t > tokens_best else 0.0)
        out.append({"iter": 10 * i, "tokens": t, "train_loss": v, "val_loss": v, "lr": 1e-3, "elapsed_s": i,
                    "extra_val": extra(u) if extra else {}})
    return out


def write_log(root, name, role, lang, N, D, loss, *, status=None, schema=1, init_from=None, bpt=1.0,
              start=None, tokens_best=None, extra=None, config=None, converged=True, old=False,
              data_seed=None):
    """Write out/<name>/log.json as train.py does (run contract, schema 1). old=True leaves out the
    fields train.py added later (converged, stop_reason, budget)."""
    tokens_best, start = tokens_best or 20 * D, start or max(5.5, loss + 1.0)
    fpt = 6 * N                                  # Kaplan FLOPs per token (attention term left out)
    evals = trajectory(loss, start, tokens_best, converged, extra=extra)
    for e in evals:
        e["flops"] = fpt * e["tokens"]
    best = min(evals, key=lambda e: e["val_loss"])
    dataset = f"synth_{lang}"
    status = status or ("early_stopped" if converged else "done")
    log = {"schema": schema, "status": status, "error": "CUDA OOM" if status == "failed" else None,
           "role": role, "init_from": init_from,
           "config": dict({"dataset": dataset, "dataset_tokens": D, "out_dir": f"out/{name}"}, **(config or {})),
           "model": {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 128, "vocab_size": 256, "N": N,
                     "flops_per_token": fpt},
           "data": {"dataset": dataset, "language": lang, "tokenizer": "bytes", "dataset_tokens": D,
                    "dataset_bytes": D * bpt, "val_tokens": 10000, "val_bytes": 10000 * bpt,
                    "data_seed": data_seed},
           "evals": evals,
           "best": {"iter": best["iter"], "tokens": best["tokens"], "flops": best["flops"],
                    "val_loss": loss, "val_bpb": loss / math.log(2) / bpt},
           "tokens_seen": evals[-1]["tokens"], "flops": evals[-1]["flops"], "elapsed_s": 12}
    if not old:
        log.update(converged=converged, stop_reason="converged" if converged else "budget",
                   budget={"max_tokens": evals[-1]["tokens"], "max_iters": evals[-1]["iter"], "max_epochs": None})
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "log.json"), "w") as f:
        json.dump(log, f)
    return log


def make_sweep(root, noise=0.0, seed=0, langs=("de", "es", "zh"), pretrain=True, ft_loss=None, old=False):
    """A whole synthetic sweep: English pre-training per size, scratch and fine-tuned runs per
    language, every loss times exp(noise * normal). ft_loss(lang, N, Df, true_loss) may override a
    fine-tuned loss (negative transfer...)."""
    rng = np.random.default_rng(seed)
    def noisy(x):
        return x * math.exp(noise * rng.standard_normal())
    for N in SIZES:
        pt = f"pt_N{N:.0e}"
        if pretrain:
            write_log(root, pt, "pretrain", "en", N, 1e8, noisy((EN_NC / N) ** EN_ALPHA_N), tokens_best=1e7)
        for lang in langs:
            for D in SCRATCH_DS:
                cl = compute_limited(N, D)
                write_log(root, f"sc_{lang}_N{N:.0e}_D{D:.0e}", "scratch", lang, N, D,
                          noisy(scratch_loss(N, D) * (COMPUTE_LIMIT if cl else 1.0)), bpt=BPT[lang],
                          converged=not cl, old=old)
            for Df in DFS:
                L = scratch_loss(N, Df + transfer(lang, N, Df))
                L = ft_loss(lang, N, Df, L) if ft_loss else L
                en = (EN_NC / N) ** EN_ALPHA_N
                write_log(root, f"ft_{lang}_N{N:.0e}_D{Df:.0e}", "finetune", lang, N, Df, noisy(L), bpt=BPT[lang],
                          init_from=f"out/synth/{pt}/best.pt", start=L + 1.0, tokens_best=2 * Df, old=old,
                          extra=lambda u, en=en: {"synth_en": en + 0.5 * u})
    return root


def target(res, lang):
    return res["targets"][f"synth_{lang}"]


def points(res, lang):
    return {p["runs"][0]: p for p in target(res, lang)["points"]}


# ----------------------------------------------------------------------------- recovering the law

def test_noise_free_recovers_the_law(tmp_path):
    """Between scratch points 2x apart a monotone curve misses Kaplan's by a fraction of a percent
    in D_e: the law comes back within a few hundredths."""
    res = fs.analyse(str(make_sweep(tmp_path)), boot=0)
    for lang, (k, a, b) in LAWS.items():
        o = target(res, lang)
        law = o["law"]
        assert law["alpha"] == pytest.approx(a, abs=0.03) and law["beta"] == pytest.approx(b, abs=0.03)
        assert law["k"] == pytest.approx(k, rel=0.3) and law["n_cells"] == len(SIZES) * len(DFS)
        # in bytes D_f and D_t both scale by bytes/token c, so k becomes k c^(1-alpha)
        assert law["k_bytes"] == pytest.approx(law["k"] * BPT[lang] ** (1 - law["alpha"]), rel=1e-9)
        for p in o["points"]:   # D_e is the scratch data reaching the same loss: D_f + D_t by construction
            assert p["where"] == "measured" and "negative" not in p["flags"]
            assert p["D_e"] == pytest.approx(p["D_f"] + transfer(lang, p["N"], p["D_f"]), rel=0.01)
        assert o["summary"]["transfer"] == "positive" and o["summary"]["n_negative"] == 0


def test_a_gap_wider_than_2x_is_flagged_and_kept_out_of_the_law(tmp_path):
    """Without the scratch points at 2e4 and 4e4 the cells whose D_e falls between 1e4 and 8e4 are
    read between points 8x apart: the value is the curve's guess, flagged, not fitted."""
    root = make_sweep(tmp_path, langs=("de",))
    for N in SIZES:
        for D in (2e4, 4e4):
            os.remove(os.path.join(root, f"sc_de_N{N:.0e}_D{D:.0e}", "log.json"))
    o = target(fs.analyse(str(root), boot=0), "de")
    gap = [p for p in o["points"] if p["where"] == "gap"]
    assert gap and all(1e4 < p["D_e"] < 8e4 and "gap" in p["flags"] for p in gap)
    assert o["law"]["n_cells"] == len(o["points"]) - len(gap) == o["counts"]["finetune_measured"]
    md = report.report_md({"targets": {"synth_de": o}, **fs.analyse(str(root), boot=0)},
                          report.findings(fs.analyse(str(root), boot=0)))
    assert "more than 2x apart" in md


# ----------------------------------------------------------------------------- other curve shapes

# The built-in study's design (three sizes, D_f 1K-8K bytes, the two smallest twice, scratch
# points 2x apart from 512 to 32K), 1% noise, and scratch curves of shapes that no fitted form
# assumes: a plateau, a steep descent and a floor that falls with N (what the built-in study's
# small models show); Kaplan's with a_N > 0; one with a kink between two measured points.
B_SIZES, B_DFS = [14e3, 56e3, 222e3], [1024, 2048, 4096, 8192]
B_SCRATCH = [512, 1024, 2048, 4096, 8192, 16384, 32768]
TRUE_ALPHA, TRUE_BETA = 0.8, 0.25


def plateau_descent_floor(N, D):
    floor = 1.2 * (N / 1e4) ** -0.08
    return floor + (2.9 - floor) / (1 + (D / 6000) ** 1.6)


def kaplan_positive(N, D):
    return 0.4 * ((1e8 / N) ** (0.25 / 0.35) + 2.7e6 / D) ** 0.35


def kinked(N, D):
    """A power law in D that steepens from -0.05 to -0.18 at 10K, between the points at 8K and 16K."""
    base = 2.8 * (N / 1e4) ** -0.03
    slope = -0.05 * math.log(min(D, 1e4) / 512) - 0.18 * math.log(max(D, 1e4) / 1e4)
    return base * math.exp(slope)


def builtin_like(root, curve, seed, noise=NOISE):
    rng = np.random.default_rng(seed)
    k = 2.0 * 4096 / (4096 ** TRUE_ALPHA * 56e3 ** TRUE_BETA)   # D_e = 3 D_f at the middle cell
    def noisy(x):
        return x * math.exp(noise * rng.standard_normal())
    for N in B_SIZES:
        for D in B_SCRATCH:
            for r in range(2 if D in B_DFS[:2] else 1):
                write_log(root, f"sc_de_N{N:.0e}_D{D}_{r}", "scratch", "de", N, D, noisy(curve(N, D)))
        for r, Df in ((r, Df) for Df in B_DFS for r in range(2 if Df in B_DFS[:2] else 1)):
            L = curve(N, Df + k * Df ** TRUE_ALPHA * N ** TRUE_BETA)
            write_log(root, f"ft_de_N{N:.0e}_D{Df}_{r}", "finetune", "de", N, Df, noisy(L),
                      init_from=f"out/pt_N{N:.0e}_p{(B_DFS.index(Df) + r) % 2}/best.pt")
    return str(root)


@pytest.mark.parametrize("curve", [plateau_descent_floor, kaplan_positive, kinked])
def test_alpha_within_0_1_and_covered_whatever_the_curve_shape(tmp_path, curve):
    """Five noisy replicates of the built-in design: alpha within 0.1 of the truth in each, and the
    95% interval holds the truth in at least four (the interval is a rerun's, so it is wide
    enough for a replicate's own error)."""
    errors, covered = [], 0
    for r in range(5):
        res = fs.analyse(builtin_like(tmp_path / str(r), curve, seed=r), boot=200, seed=r)
        law = target(res, "de")["law"]
        assert target(res, "de")["counts"]["finetune_measured"] == 12
        errors.append(law["alpha"] - TRUE_ALPHA)
        covered += law["ci"]["alpha"][0] <= TRUE_ALPHA <= law["ci"]["alpha"][1]
    msg = f"{curve.__name__}: alpha errors {np.round(errors, 3)}, covered {covered}/5"
    print(msg)
    assert max(map(abs, errors)) <= 0.1 and covered >= 4, msg


# ----------------------------------------------------------------------------- bounds and negatives

def test_unconverged_scratch_runs_are_bounds_not_points(tmp_path):
    res = fs.analyse(str(make_sweep(tmp_path / "a", noise=NOISE, seed=3)), boot=0)
    n_limited = sum(compute_limited(N, D) for N in SIZES for D in SCRATCH_DS)
    o = target(res, "de")
    assert o["counts"]["scratch_unconverged"] == n_limited == 4
    assert sum("did not converge" in m and "synth_de" in m for m in res["messages"]) == n_limited
    # the same sweep without the unconverged runs gives the same numbers: they never entered them
    root = make_sweep(tmp_path / "b", noise=NOISE, seed=3)
    for N in SIZES:
        for D in SCRATCH_DS:
            if compute_limited(N, D):
                for lang in LAWS:
                    os.remove(os.path.join(root, f"sc_{lang}_N{N:.0e}_D{D:.0e}", "log.json"))
    res_b = fs.analyse(str(root), boot=0)
    assert target(res_b, "de")["law"]["alpha"] == pytest.approx(o["law"]["alpha"], abs=1e-12)
    # logs written before train.py had `converged`: derived from status and the best eval's position
    res_old = fs.analyse(str(make_sweep(tmp_path / "c", noise=NOISE, seed=3, old=True)), boot=0)
    assert target(res_old, "de")["counts"] == o["counts"]
    assert target(res_old, "de")["law"]["alpha"] == pytest.approx(o["law"]["alpha"], abs=1e-12)


def test_a_fine_tune_its_budget_stopped_gives_a_lower_bound_on_D_e(tmp_path):
    """A fine-tune still improving when its budget ran out ends above its converged loss: the D_e
    read off it is a lower bound, flagged `budget` and kept out of the law, like no run at all."""
    N, Df = SIZES[1], DFS[1]
    name = f"ft_de_N{N:.0e}_D{Df:.0e}"
    runs = {}
    for case in ("budget", "none"):
        root = make_sweep(str(tmp_path / case), langs=("de",))
        if case == "budget":
            L = scratch_loss(N, Df + transfer("de", N, Df)) * 1.03
            write_log(root, name, "finetune", "de", N, Df, L, converged=False,
                      init_from="out/synth/pt/best.pt")
        else:
            os.remove(os.path.join(root, name, "log.json"))
        runs[case] = target(fs.analyse(root, boot=0), "de")
    point = next(p for p in runs["budget"]["points"] if p["runs"] == [name])
    assert point["where"] == "budget" and point["D_e_lower"] == pytest.approx(point["D_e"])
    assert point["D_e"] < Df + transfer("de", N, Df)     # below the truth: a lower bound
    assert runs["budget"]["counts"]["finetune_budget"] == 1
    assert runs["budget"]["law"]["n_cells"] == runs["none"]["law"]["n_cells"]
    assert runs["budget"]["law"]["alpha"] == pytest.approx(runs["none"]["law"]["alpha"], abs=1e-12)
    # beside a converged run of the same cell, the bound is left out of its mean (as in scratch)
    root = str(tmp_path / "budget")
    write_log(root, name + "_s2", "finetune", "de", N, Df, L * 1.05, converged=False,
              init_from="out/synth/pt/best.pt")
    write_log(root, name, "finetune", "de", N, Df, L / 1.03, init_from="out/synth/pt/best.pt")
    point = next(p for p in target(fs.analyse(root, boot=0), "de")["points"] if name in p["runs"])
    assert point["where"] == "measured" and point["n"] == 1
    assert point["loss"] == pytest.approx(L / 1.03)


def test_beyond_the_measured_points_is_a_bound(tmp_path):
    """A fine-tuned loss below every converged scratch loss of its size only says D_e > D_max; one
    above the loss at the smallest D, D_e < D_min: flagged, shown as bounds, not fitted."""
    def extreme(lang, N, Df, L):
        if (N, Df) == (SIZES[-1], DFS[-1]):
            return 0.9 * scratch_loss(N, 2 * DFS[-1])
        return 1.1 * scratch_loss(N, DFS[0] / 2) if (N, Df) == (SIZES[0], DFS[0]) else L
    res = fs.analyse(str(make_sweep(tmp_path, langs=("de",), ft_loss=extreme)), boot=20)
    o = target(res, "de")
    pts = {(p["N"], p["D_f"]): p for p in o["points"]}
    above, below = pts[SIZES[-1], DFS[-1]], pts[SIZES[0], DFS[0]]
    assert above["where"] == "above" and above["D_e_lower"] == pytest.approx(2 * DFS[-1])
    assert below["where"] == "below" and below["D_e_upper"] == pytest.approx(DFS[0] / 2)
    assert o["counts"]["finetune_censored"] == 1 and o["counts"]["finetune_below"] == 1
    assert o["law"]["n_cells"] == o["summary"]["n_cells"] == len(SIZES) * len(DFS) - 2
    md = report.report_md(res, report.findings(res))
    assert f"D_e > {2 * DFS[-1]:.3g}" in md and f"D_e < {DFS[0] / 2:.3g}" in md


def test_negative_transfer_is_a_number_below_one(tmp_path):
    """Chinese fine-tuning 2% worse than scratch at every cell: D_e/D_f below 1 with an interval
    below 1, every cell negative, no law (it is fitted where transfer is positive)."""
    def worse(lang, N, Df, L):
        return scratch_loss(N, Df) * 1.02 if lang == "zh" else L
    res = fs.analyse(str(make_sweep(tmp_path, noise=0.002, ft_loss=worse)), boot=100)
    o = target(res, "zh")
    s = o["summary"]
    assert o["law"] is None and s["transfer"] == "negative" and s["n_negative"] == s["n_cells"] > 6
    assert s["De_over_Df"] < 1 and s["ci"][1] < 1
    assert all(p["D_t"] < 0 and p["De_over_Df"] < 1 for p in o["points"] if p["where"] == "measured")
    assert target(res, "de")["law"] is not None
    f = {x["title"]: x["text"] for x in report.findings(res)}
    assert "pre-training hurt, outside the uncertainty" in f["Transfer law for Chinese (synth_zh)"]
    assert "Chinese 0." in f["Transfer across languages"]


def test_reading_flat_or_rising_points_does_not_raise():
    x, y = fs.scratch_points([{"D": d, "loss": v, "n": 1} for d, v in
                              ((1e4, 3.0), (2e4, 2.5), (4e4, 2.6), (8e4, 2.5 * (1 - 1e-12)))])
    assert list(np.exp(x)) == pytest.approx([1e4, 2e4, 8e4])       # the rising point is dropped
    lDe, where = fs.read_De(x, y, math.log(2.0), "pchip")          # far beyond a near-flat end
    assert where == "above" and lDe > x[-1]
    assert fs.read_De(x, y, math.log(2.7), "linear")[1] == "measured"
    assert fs.read_De(x, y, math.log(2.7), "pchip")[0] == pytest.approx(
        fs.read_De(x, y, math.log(2.7), "linear")[0], abs=0.3)


def test_duplicates_are_averaged(tmp_path):
    root = make_sweep(tmp_path, langs=("de",))
    N, Df = SIZES[1], DFS[1]
    L = scratch_loss(N, Df + transfer("de", N, Df))
    for name, f in (("dup_a", 1.02), ("dup_b", 0.98)):
        write_log(root, f"ft_de_{name}", "finetune", "de", N, Df, L * f)
    write_log(root, "sc_de_dup_unconverged", "scratch", "de", N, Df, scratch_loss(N, Df) * 1.1, converged=False)
    res = fs.analyse(str(root), boot=0)
    (p,) = [p for p in target(res, "de")["points"] if (p["N"], p["D_f"]) == (N, Df)]
    assert p["n"] == 3 and p["loss"] == pytest.approx(L) and p["std"] == pytest.approx(0.02 * L)
    (s,) = [s for s in target(res, "de")["scratch"] if (s["N"], s["D"]) == (N, Df)]
    assert s["n"] == 1 and s["converged"] and s["loss"] == pytest.approx(scratch_loss(N, Df)) and len(s["runs"]) == 2
    assert any(m.startswith("3 runs of finetune synth_de") and "averaged 3" in m for m in res["messages"])


def test_held_out_test_loss_is_the_one_reported(tmp_path):
    """train.py's best.test_loss (the best model on windows that did not stop the run) is what
    the study fits; best.val_loss only in logs without it."""
    log = write_log(tmp_path, "sc_de", "scratch", "de", 1e6, 1e4, 2.0)
    log["best"]["test_loss"] = 2.1
    with open(tmp_path / "sc_de" / "log.json", "w") as f:
        json.dump(log, f)
    write_log(tmp_path, "sc_de_old", "scratch", "de", 1e6, 2e4, 1.9)
    runs, _ = fs.load_runs(str(tmp_path), [])
    assert {r["name"]: (r["loss"], r["loss_from"]) for r in runs} == {
        "sc_de": (2.1, "test"), "sc_de_old": (1.9, "val")}


# ----------------------------------------------------------------------------- the spread a rerun moves

def test_repeats_split_the_spread_into_the_draw_the_pretrained_model_and_the_run(tmp_path):
    """Repeats with their own draw of D_f documents and pre-trained model: the draw moves every size
    and both twins alike, a pre-trained model its size's fine-tunes alike at every D_f; what is
    left sums to zero over the sizes, so the method of moments gives both shares exactly."""
    root = make_sweep(str(tmp_path / "sweep"), langs=("de",))
    draw, own, model = {DFS[0]: 0.02, DFS[1]: -0.01}, [0.01, -0.01, 0.0], [0.02, -0.02, 0.01]
    for (N, e, P), Df in itertools.product(zip(SIZES, own, model), draw):
        f = math.exp(draw[Df] + e)
        write_log(root, f"sc_de_N{N:.0e}_D{Df:.0e}_s2", "scratch", "de", N, Df,
                  scratch_loss(N, Df) * f, data_seed=5)
        L = scratch_loss(N, Df + transfer("de", N, Df))
        write_log(root, f"ft_de_N{N:.0e}_D{Df:.0e}_s2", "finetune", "de", N, Df, L * f * math.exp(P),
                  data_seed=5, init_from=f"out/synth/pt_N{N:.0e}_p2/best.pt")
    res = fs.analyse(root, boot=20)
    c = res["checks"]
    assert c["scratch"]["cells"] == 6 and c["pretrain_groups"] == 3 and c["draw_groups"] == 2
    assert c["sigma_pretrain"] == pytest.approx(math.sqrt(np.mean(np.square(model)) / 2), rel=1e-6)
    scatter = np.var(own, ddof=1)
    shared = np.mean([d ** 2 - scatter / len(own) for d in draw.values()])
    assert c["draw_share"] == pytest.approx(shared / (shared + scatter), rel=1e-6)
    assert c["scratch"]["by_D"][f"{DFS[0]:g}"]["cells"] == 3
    cell = next(p for p in target(res, "de")["points"] if p["N"] == SIZES[0] and p["D_f"] == DFS[0])
    assert cell["n"] == 2 and len(cell["pretrained"]) == 2
    assert target(res, "de")["law"]["noise"]["sigma_pretrain"] == c["sigma_pretrain"]


def test_an_interval_is_where_a_rerun_lands():
    """The estimate plus the difference of two draws: a rerun's estimate and this one each carry
    the noise once (sqrt 2 times a draw's spread), and a drift of every draw is not the estimate's."""
    draws = np.random.default_rng(0).normal(1.3, 0.1, 2000)
    lo, hi = fs.ci(draws, 1.0)
    assert lo == pytest.approx(1 - 1.96 * math.sqrt(2) * 0.1, abs=0.01)
    assert hi == pytest.approx(1 + 1.96 * math.sqrt(2) * 0.1, abs=0.01)


def test_a_rate_within_the_spread_may_win_when_the_calibration_runs_again():
    """Which of two rates 0.2% apart wins is noise at a 1% spread: the arm then runs at the other
    one about half the time, 0.2% worse; a rate 18% worse never wins, nor one whose run its
    budget stopped (a bound: sweep.py chooses among the converged rates alike)."""
    noise = {"sigma_run": 0.01, "sigma_pretrain": 0.0}
    both = {"0.001": True, "0.002": True}
    rows = [{"N": 1.0, "role": "scratch", "chosen": 1e-3, "D": 4096, "converged": both,
             "losses": {"0.001": 2.0, "0.002": 2.0 * math.exp(0.002)}},
            {"N": 1.0, "role": "finetune", "chosen": 1e-3, "D": 4096, "converged": both,
             "losses": {"0.001": 2.0, "0.002": 2.4}},
            {"N": 2.0, "role": "finetune", "chosen": 1e-3, "D": 4096,
             "converged": {"0.0005": False, "0.001": True},
             "losses": {"0.0005": 1.99, "0.001": 2.0}}]
    rng = np.random.default_rng(0)
    shifts = [fs.rate_shifts(rows, noise, rng) for _ in range(400)]
    moved = np.array([s[1.0, "scratch"] for s in shifts])
    assert 0.3 < np.mean(moved > 0) < 0.6 and moved.max() == pytest.approx(0.002)
    assert all(s[1.0, "finetune"] == 0 and s[2.0, "finetune"] == 0 for s in shifts)


def test_checks_are_reported_beside_their_twin_and_give_the_noise(tmp_path):
    root = make_sweep(str(tmp_path / "sweep"), langs=("de",))
    base = fs.analyse(root, boot=0)
    N, Df = SIZES[1], DFS[1]
    for tag, f in (("seed2", 1.01), ("seed3", 0.98)):    # seed repeats move both twins together
        for role, prefix in (("finetune", "ft"), ("scratch", "sc")):
            L = scratch_loss(N, Df + (transfer("de", N, Df) if role == "finetune" else 0)) * f
            write_log(root, f"{prefix}_de_N{N:.0e}_D{Df:.0e}_{tag}", role, "de", N, Df, L,
                      config={"tag": tag, "seed": int(tag[-1])})
    write_log(root, f"ft_de_N{N:.0e}_D{Df:.0e}_p20", "finetune", "de", N, Df, 0.5, config={"tag": "patience20"})
    L2 = scratch_loss(N, Df)
    write_log(root, f"sc_de_N{N:.0e}_D{Df:.0e}_b2x", "scratch", "de", N, Df, L2, config={"tag": "budget2x"})
    res = fs.analyse(root, boot=5)
    law, law0 = target(res, "de")["law"], target(base, "de")["law"]
    assert law["alpha"] == pytest.approx(law0["alpha"]) and law["n_cells"] == law0["n_cells"]   # not fitted
    rows = {r["run"]: r for r in res["checks"]["runs"]}
    assert len(rows) == 6
    p20 = rows[f"ft_de_N{N:.0e}_D{Df:.0e}_p20"]
    assert p20["grid_run"] == f"ft_de_N{N:.0e}_D{Df:.0e}" and p20["diff"] == pytest.approx(0.5 - p20["grid_loss"])
    assert rows[f"sc_de_N{N:.0e}_D{Df:.0e}_b2x"]["rel_diff"] == pytest.approx(0.0, abs=1e-12)   # budget2x: unchanged
    sd = np.std(np.log([1.0, 1.01, 0.98]), ddof=1)
    assert res["checks"]["sigma_run"] == pytest.approx(sd, rel=1e-6) and res["checks"]["scratch"]["cells"] == 1
    assert law["noise"]["sigma_run"] == pytest.approx(sd)
    md = report.report_md(res, report.findings(res))
    assert "## Checks" in md and "Run-to-run spread" in md
    assert "budget2x (sc_de_N1e+06_D2e+04_b2x): the best loss moved by +0.00%" in md and "budget did not set the loss" in md


def test_findings_follow_the_numbers(tmp_path, monkeypatch):
    res = fs.analyse(str(make_sweep(tmp_path / "a", noise=NOISE, seed=5)), boot=20)
    f = {x["title"]: x for x in report.findings(res)}
    assert f["Transfer across languages"]["holds"] is True
    assert "German > Spanish > Chinese holds" in f["Transfer across languages"]["text"]
    assert f["D_f/D_e against N and D_f"]["holds"] is not False       # beta > 0, alpha < 1 (or unresolved)
    assert f["Compute efficiency"]["holds"] is True
    assert f["Parameter- vs data-limited"]["holds"] is True
    monkeypatch.setitem(LAWS, "de", (0.1, 0.55, 0.28))     # German now transfers least
    res = fs.analyse(str(make_sweep(tmp_path / "b")), boot=0)
    f = {x["title"]: x for x in report.findings(res)}["Transfer across languages"]
    assert f["holds"] is False and "does not hold" in f["text"] and "Spanish > Chinese > German" in f["text"]


def test_pretraining_fit_compute_and_forgetting(tmp_path):
    res = fs.analyse(str(make_sweep(tmp_path, langs=("de",))), boot=0)
    assert res["pretrain"]["L_of_N"]["alpha_N"] == pytest.approx(EN_ALPHA_N, abs=1e-6)
    assert res["pretrain"]["L_of_N"]["N_c"] == pytest.approx(EN_NC, rel=1e-4)
    assert len(res["pretrain"]["frontier"]) > 3 and res["pretrain"]["L_of_C"]["alpha_C"] > 0
    fg = target(res, "de")["forgetting"]
    # English loss rises by 0.5 u; u = 1 at the best eval, and the baseline is the first eval (u = 0)
    assert len(fg) == len(SIZES) * len(DFS) and all(x["rise_at_best"] == pytest.approx(0.5) for x in fg)
    c = target(res, "de")["compute"]
    assert len(c) == 12 and all(x["C_pretrain"] > 0 for x in c) and sum(x["ratio"] is not None and x["ratio"] < 1 for x in c) >= 11


def test_bad_runs_are_listed_and_the_rest_still_runs(tmp_path):
    root = make_sweep(tmp_path, langs=("de",))
    write_log(root, "sc_de_running", "scratch", "de", 1e6, 5e5, 2.0, status="running")
    write_log(root, "sc_de_failed", "scratch", "de", 1e6, 7e5, 2.0, status="failed")
    write_log(root, "sc_de_schema2", "scratch", "de", 1e6, 9e5, 2.0, schema=2)
    write_log(root, "sc_de_nan", "scratch", "de", 1e6, 2e6, float("nan"))
    os.makedirs(os.path.join(root, "garbage"))
    with open(os.path.join(root, "garbage", "log.json"), "w") as f:
        f.write("{not json")
    write_log(root, "sc_it", "scratch", "it", 1e6, 1e5, 2.0)            # Italian: one scratch point
    write_log(root, "ft_it", "finetune", "it", 1e6, 1e4, 2.1)
    write_log(root, "ft_de_big", "finetune", "de", 1e7, 1e4, 1.0)       # no scratch twin at its size
    res = fs.analyse(str(root), boot=0)
    reasons = {s["run"]: s["reason"] for s in res["skipped"]}
    assert reasons["sc_de_running"].startswith("status running")
    assert reasons["sc_de_failed"].startswith("status failed") and "OOM" in reasons["sc_de_failed"]
    assert "schema 2" in reasons["sc_de_schema2"] and "NaN" in reasons["sc_de_nan"] and "unreadable" in reasons["garbage"]
    msgs = "\n".join(res["messages"])
    assert all(f"left out {run}" in msgs for run in reasons)
    assert "no converged scratch curve at N = 1e+07" in msgs and "no converged scratch curve at N = 1e+06" in msgs
    assert points(res, "de")["ft_de_big"]["flags"] == ["no_scratch_curve"]
    assert points(res, "it")["ft_it"]["flags"] == ["no_scratch_curve"] and target(res, "it")["law"] is None
    assert target(res, "de")["law"]["alpha"] == pytest.approx(LAWS["de"][1], abs=0.03)   # the rest is untouched


# ----------------------------------------------------------------------------- outputs

def strict_json(path):
    with open(path) as f:
        return json.load(f, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def keys(x):
    if isinstance(x, dict):
        return set(x) | set().union(*map(keys, x.values()))
    return set().union(*map(keys, x)) if isinstance(x, list) else set()


def test_main_writes_every_output_and_report_redraws_alone(tmp_path, capsys, monkeypatch):
    root = make_sweep(tmp_path / "out", noise=NOISE, langs=("de", "zh"))
    with monkeypatch.context() as m:         # figures are slow: drawn once, by report.py alone below
        m.setattr(report, "plots", lambda res, out: None)
        assert fs.main([str(root), "--boot", "5"]) == 0
    rep = root / "report"
    res = strict_json(rep / "results.json")
    assert set(res["targets"]) == {"synth_de", "synth_zh"}
    assert not [k for k in keys(res) if k.startswith("_")]            # nothing rides along to be stripped
    md = (rep / "report.md").read_text()
    for s in ("## Counts", "scratch unconverged (bounds)", "D_e > D_max", "## Transfer: D_e/D_f", "## Findings",
              "D_f \\ N", "## English pre-training", "## Corpora", "## Messages"):
        assert s in md, s
    os.remove(rep / "report.md")
    assert report.main([str(rep / "results.json")]) == 0 and (rep / "report.md").read_text() == md
    for png in report.PLOTS.values():
        assert (rep / png).stat().st_size > 5000, png
    assert not [f for f in os.listdir(rep) if f.endswith(".tmp")]
    assert "wrote" in capsys.readouterr().out


def test_nothing_usable_exits_non_zero_with_one_line(tmp_path, capsys):
    def error(main, argv):  # util.fail: SystemExit with the one line, which Python prints
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert not capsys.readouterr().err and "\n" not in str(e.value)
        return str(e.value)
    err = error(fs.main, [str(tmp_path), "--boot", "5"])
    assert err.startswith("error: no usable log.json") and "run sweep.py" in err
    write_log(tmp_path, "broken", "scratch", "de", 1e6, 1e4, 2.0, status="running")
    assert error(fs.main, [str(tmp_path)]) and not os.path.exists(tmp_path / "report")
    assert error(fs.main, [str(tmp_path / "missing")]).startswith("error: no such directory")
    assert error(report.main, [str(tmp_path / "missing.json")]).startswith("error: cannot read")


def test_paired_difference_of_two_languages_on_the_same_pages(tmp_path):
    """Tags paired<r>: per page draw, each language's own scratch points and fine-tunes. Each
    draw's pages move both languages' losses alike (the pairing), every fine-tune has its own
    run noise; the difference of log D_e/D_f is recovered, and its interval covers it and
    excludes 0."""
    rng, N, truth = np.random.default_rng(3), 1e6, {"de": 2.0, "es": 1.4}
    for r in range(6):
        pages, tag = math.exp(rng.normal(0, 0.03)), {"tag": f"paired{r + 1}"}
        for lang, ratio in truth.items():
            for D in (2500, 5000, 10000, 20000, 40000, 80000):
                write_log(tmp_path, f"sc_{lang}_D{D}_paired{r + 1}", "scratch", lang, N, D,
                          scratch_loss(N, D) * pages, config=tag)
            for Df in (5000, 10000):
                run_noise = math.exp(rng.normal(0, 0.003))
                write_log(tmp_path, f"ft_{lang}_D{Df}_paired{r + 1}", "finetune", lang, N, Df,
                          scratch_loss(N, ratio * Df) * pages * run_noise, config=tag,
                          init_from="pt")
    paired = fs.analyse(str(tmp_path), boot=400)["checks"]["paired"]
    assert paired["languages"] == ["de", "es"] and paired["draws"] == 6
    assert paired["difference"] == pytest.approx(math.log(2.0 / 1.4), abs=0.03)
    lo, hi = paired["ci"]
    assert 0 < lo < math.log(2.0 / 1.4) < hi
    assert "de > es holds" in "\n".join(report.paired_md(paired))
