"""Tests for fit_scaling.py on synthetic run logs whose answer is known.

The synthetic logs follow the run contract in DESIGN.md (out/<run>/log.json, schema 1), so
write_log / make_sweep double as an example of what train.py writes and sweep.py lays out:
    from tests.test_fit_scaling import make_sweep; make_sweep("/tmp/fake_out")
    python fit_scaling.py /tmp/fake_out

The law behind them: from-scratch loss of Kaplan's form
    L(N, D) = [(N_c/N)^(aN/aD) + D_c/D]^aD
and fine-tuned loss L(N, D_f + D_t) with D_t = k D_f^alpha N^beta per language.
"""
import json
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fit_scaling as fs  # noqa: E402

NC, DC, AN, AD = 1e8, 2.7e6, 0.25, 0.35
LAWS = {"de": (3.0, 0.45, 0.32), "es": (1.5, 0.50, 0.30), "zh": (0.5, 0.55, 0.28)}   # k, alpha, beta
BPT = {"de": 1.0, "es": 1.0, "zh": 3.0}        # bytes per token: zh as if a BPE on CJK text
SIZES = [3e5, 1e6, 3e6]
DFS = [1e4, 3e4, 1e5, 3e5]
SCRATCH_DS = DFS + [1e6, 3e6]                   # scratch grid extends past the largest D_f
EN_ALPHA_N, EN_NC = 0.3, 3e7                     # English pre-training L(N) = (N_c/N)^alpha_N


def scratch_loss(N, D):
    return ((NC / N) ** (AN / AD) + DC / D) ** AD


def transfer(lang, N, Df):
    k, a, b = LAWS[lang]
    return k * Df ** a * N ** b


def trajectory(loss, start, tokens_best, n=12, extra=None):
    """Eval points falling from `start` to `loss` at tokens_best, then overfitting a little."""
    out, toks = [], list(np.geomspace(tokens_best / 300, tokens_best, n)) + [1.5 * tokens_best]
    for i, t in enumerate(toks):
        u = min(1.0, math.log(t / toks[0]) / math.log(tokens_best / toks[0]))
        v = loss + (start - loss) * (1 - u) ** 2 + (0.02 if t > tokens_best else 0.0)
        out.append({"iter": 10 * i, "tokens": t, "train_loss": v, "val_loss": v, "lr": 1e-3, "elapsed_s": i,
                    "extra_val": extra(u) if extra else {}})
    return out


def write_log(root, name, role, lang, N, D, loss, *, status="done", schema=1, init_from=None, bpt=1.0,
              start=None, tokens_best=None, extra=None, mtime=None, config=None):
    """Write out/<name>/log.json as train.py would (DESIGN.md run contract, schema 1)."""
    tokens_best, start = tokens_best or 20 * D, start or max(5.5, loss + 1.0)
    fpt = 6 * N                                  # Kaplan FLOPs per token (attention term left out)
    evals = trajectory(loss, start, tokens_best, extra=extra)
    for e in evals:
        e["flops"] = fpt * e["tokens"]
    best = min(evals, key=lambda e: e["val_loss"])
    dataset = f"synth_{lang}"
    log = {"schema": schema, "status": status, "error": "CUDA OOM" if status == "failed" else None,
           "role": role, "init_from": init_from,
           "config": dict({"dataset": dataset, "dataset_tokens": D, "out_dir": f"out/{name}"}, **(config or {})),
           "model": {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 128, "vocab_size": 256, "N": N,
                     "flops_per_token": fpt},
           "data": {"dataset": dataset, "language": lang, "tokenizer": "bytes", "dataset_tokens": D,
                    "dataset_bytes": D * bpt, "val_tokens": 10000, "val_bytes": 10000 * bpt},
           "evals": evals,
           "best": {"iter": best["iter"], "tokens": best["tokens"], "flops": best["flops"],
                    "val_loss": loss, "val_bpb": loss / math.log(2) / bpt},
           "tokens_seen": evals[-1]["tokens"], "flops": evals[-1]["flops"], "elapsed_s": 12}
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "log.json"), "w") as f:
        json.dump(log, f)
    if mtime:
        os.utime(os.path.join(d, "log.json"), (mtime, mtime))
    return log


def make_sweep(root, noise=0.0, seed=0, langs=("de", "es", "zh"), pretrain=True, ft_loss=None):
    """A whole synthetic sweep: English pre-training per size, scratch and fine-tuned runs per language.
    ft_loss(lang, N, Df, true_loss) may override a fine-tuned loss (negative transfer, floors...)."""
    rng = np.random.default_rng(seed)
    def noisy(x):
        return x * math.exp(noise * rng.standard_normal())
    for N in SIZES:
        pt = f"pt_N{N:.0e}"
        if pretrain:
            write_log(root, pt, "pretrain", "en", N, 1e8, noisy((EN_NC / N) ** EN_ALPHA_N), tokens_best=1e7)
        for lang in langs:
            for D in SCRATCH_DS:
                write_log(root, f"sc_{lang}_N{N:.0e}_D{D:.0e}", "scratch", lang, N, D, noisy(scratch_loss(N, D)),
                          bpt=BPT[lang])
            for Df in DFS:
                L = scratch_loss(N, Df + transfer(lang, N, Df))
                L = ft_loss(lang, N, Df, L) if ft_loss else L
                en = (EN_NC / N) ** EN_ALPHA_N
                write_log(root, f"ft_{lang}_N{N:.0e}_D{Df:.0e}", "finetune", lang, N, Df, noisy(L), bpt=BPT[lang],
                          init_from=f"out/synth/{pt}/best.pt", start=L + 1.0, tokens_best=2 * Df,
                          extra=lambda u, en=en: {"synth_en": en + 0.5 * u})
    return root


def by_run(res, lang):
    return {p["run"]: p for p in res["targets"][f"synth_{lang}"]["points"]}


# ----------------------------------------------------------------------------- recovering the law

def test_noise_free_recovers_De_and_law_exactly(tmp_path):
    res = fs.analyse(str(make_sweep(tmp_path)), boot=100)
    for lang, (k, a, b) in LAWS.items():
        o = res["targets"][f"synth_{lang}"]
        assert o["curve_method"] == "fit"
        assert o["scratch_fit"]["rms_log_resid"] < 1e-6
        assert o["scratch_fit"]["alpha_D"] == pytest.approx(AD, rel=1e-3)
        for p in o["points"]:   # D_e is the scratch data reaching the same loss: D_f + D_t by construction
            assert p["D_e"] == pytest.approx(p["D_f"] + transfer(lang, p["N"], p["D_f"]), rel=1e-3)
            assert p["flags"] == [] and p["valid"]
        law = o["law_tokens"]
        assert law["n"] == len(SIZES) * len(DFS) and law["r2"] > 0.9999
        assert law["k"] == pytest.approx(k, rel=0.01)
        assert law["alpha"] == pytest.approx(a, abs=0.002) and law["beta"] == pytest.approx(b, abs=0.002)
        # in bytes D_f and D_t both scale by bytes/token c, so alpha and beta stay and k becomes k c^(1-alpha)
        lb = o["law_bytes"]
        assert lb["alpha"] == pytest.approx(a, abs=0.002) and lb["beta"] == pytest.approx(b, abs=0.002)
        assert lb["k"] == pytest.approx(k * BPT[lang] ** (1 - a), rel=0.01)


# Tolerances with 0.1% multiplicative noise on every loss (scratch and fine-tuned), 12 fine-tuned and
# 18 scratch points per language. Measured over 20 seeds: rms error of alpha and beta 0.02-0.06
# (largest for zh, whose D_t/D_f is smallest), of log k 0.2-0.4, and the 95% CIs covered the truth
# in 57-60 of 60 cases. So: alpha, beta within 0.15, k within a factor 4 (log k extrapolates to
# D_f = N = 1 and carries the exponents' errors times log N ~ 14), and the truth inside the 95% CI
# in at least 5 of the 6 (language, seed) cases for each parameter.
NOISE, TOL_EXP, TOL_LOGK = 0.001, 0.15, math.log(4)

def test_noisy_logs_recover_k_alpha_beta(tmp_path):
    inside = {"k": 0, "alpha": 0, "beta": 0}
    for seed in (1, 2):
        res = fs.analyse(str(make_sweep(tmp_path / str(seed), noise=NOISE, seed=seed)), boot=300, seed=seed)
        for lang, (k, a, b) in LAWS.items():
            law = res["targets"][f"synth_{lang}"]["law_tokens"]
            assert abs(law["alpha"] - a) < TOL_EXP, (lang, seed, law)
            assert abs(law["beta"] - b) < TOL_EXP, (lang, seed, law)
            assert abs(math.log(law["k"] / k)) < TOL_LOGK, (lang, seed, law)
            assert law["r2"] > 0.9 and law["n_boot"] > 250
            for nm, v in (("k", k), ("alpha", a), ("beta", b)):
                inside[nm] += law["ci"][nm][0] < v < law["ci"][nm][1]
    assert min(inside.values()) >= 5, inside


def test_interpolation_curve_is_close(tmp_path):
    """The fallback curve (monotone interpolation in log-log) on the same clean sweep."""
    res = fs.analyse(str(make_sweep(tmp_path)), curve="interp", boot=100)
    for lang, (k, a, b) in LAWS.items():
        o = res["targets"][f"synth_{lang}"]
        assert o["curve_method"] == "interp"
        law = o["law_tokens"]
        assert abs(law["alpha"] - a) < 0.05 and abs(law["beta"] - b) < 0.05   # measured: within 0.03
        for p in o["points"]:     # the joint fit is the cross-check and is exact here
            assert p["D_e_alt"] == pytest.approx(p["D_f"] + transfer(lang, p["N"], p["D_f"]), rel=1e-3)
            assert p["D_e"] == pytest.approx(p["D_e_alt"], rel=0.05)          # measured: within 4%


def test_findings_follow_the_numbers(tmp_path):
    res = fs.analyse(str(make_sweep(tmp_path)), boot=100)
    f = {x["title"]: x for x in res["findings"]}
    assert f["Transfer across languages"]["holds"] is True
    assert "German > Spanish > Chinese" in f["Transfer across languages"]["text"]
    assert f["D_f/D_e against N and D_f"]["holds"] is True      # beta > 0 and alpha < 1
    assert f["Compute efficiency"]["holds"] is True
    assert f["Parameter- vs data-limited"]["holds"] is True


def test_reversed_language_order_is_reported_as_not_holding(tmp_path, monkeypatch):
    monkeypatch.setitem(LAWS, "de", (0.2, 0.55, 0.28))     # German now transfers least
    res = fs.analyse(str(make_sweep(tmp_path)), boot=50)
    f = {x["title"]: x for x in res["findings"]}["Transfer across languages"]
    assert f["holds"] is False and "does not hold" in f["text"]
    assert "Spanish > Chinese > German" in f["text"]


def test_pretraining_fit_and_forgetting(tmp_path):
    res = fs.analyse(str(make_sweep(tmp_path)), boot=50)
    assert res["pretrain"]["L_of_N"]["alpha_N"] == pytest.approx(EN_ALPHA_N, abs=1e-6)
    assert res["pretrain"]["L_of_N"]["N_c"] == pytest.approx(EN_NC, rel=1e-4)
    assert len(res["pretrain"]["frontier"]) > 3 and res["pretrain"]["L_of_C"]["alpha_C"] > 0
    fg = res["targets"]["synth_de"]["forgetting"]
    assert len(fg) == len(SIZES) * len(DFS)
    # English loss rises by 0.5 u; u = 1 at the best eval, and the baseline is the first eval (u = 0)
    assert all(x["rise_at_best"] == pytest.approx(0.5) and x["key"] == "synth_en" for x in fg)
    c = res["targets"]["synth_de"]["compute"]
    assert len(c) == 12 and all(x["ratio"] < 1 and x["C_pretrain"] > 0 for x in c)


# ----------------------------------------------------------------------------- negative transfer, flags

def test_negative_transfer_is_reported_and_left_out_of_the_fit(tmp_path):
    def worse(lang, N, Df, L):          # Chinese at the smallest D_f: fine-tuning is 5% worse than scratch
        return scratch_loss(N, Df) * 1.05 if lang == "zh" and Df == DFS[0] else L
    res = fs.analyse(str(make_sweep(tmp_path, ft_loss=worse)), boot=100)
    o = res["targets"]["synth_zh"]
    neg = [p for p in o["points"] if "negative" in p["flags"]]
    assert len(neg) == len(SIZES) and o["n_negative"] == len(SIZES)
    assert all(p["D_t"] < 0 and p["Df_over_De"] > 1 and not p["valid"] for p in neg)
    assert o["law_tokens"]["n"] == len(SIZES) * (len(DFS) - 1)
    k, a, b = LAWS["zh"]                # the positive points still follow the law exactly
    assert o["law_tokens"]["alpha"] == pytest.approx(a, abs=0.002)
    assert any("negative transfer" in m and "synth_zh" in m for m in res["messages"])
    text = {x["title"]: x["text"] for x in res["findings"]}["Negative transfer"]
    assert text.startswith(f"{len(SIZES)} of ")
    assert res["targets"]["synth_de"]["n_negative"] == 0


def test_below_floor_and_extrapolation_are_flagged(tmp_path):
    def odd(lang, N, Df, L):
        if lang == "de" and Df == DFS[-1]:
            return 0.9 * ((NC / N) ** AN)            # lower than scratch reaches at any D
        return L
    root = make_sweep(tmp_path, ft_loss=odd)
    for N in SIZES:                                  # drop the large scratch runs: D_e must extrapolate
        for D in SCRATCH_DS[3:]:
            os.remove(os.path.join(root, f"sc_es_N{N:.0e}_D{D:.0e}", "log.json"))
    res = fs.analyse(str(root), boot=50)
    de = res["targets"]["synth_de"]
    fl = [p for p in de["points"] if "below_floor" in p["flags"]]
    assert len(fl) == len(SIZES) and all(p["D_t"] is None and not p["valid"] for p in fl)
    es = res["targets"]["synth_es"]
    ex = [p for p in es["points"] if "extrapolated" in p["flags"]]
    assert ex and all(p["D_e"] > 1e5 for p in ex)
    assert es["n_extrapolated_in_fit"] == len(ex)
    assert es["law_tokens_interpolated_only"]["n"] == es["law_tokens"]["n"] - len(ex)


# ----------------------------------------------------------------------------- robustness

def test_bad_runs_are_listed_and_the_rest_still_runs(tmp_path):
    root = make_sweep(tmp_path, langs=("de", "es"))
    write_log(root, "sc_de_running", "scratch", "de", 1e6, 5e5, 2.0, status="running")
    write_log(root, "sc_de_failed", "scratch", "de", 1e6, 7e5, 2.0, status="failed")
    write_log(root, "sc_de_schema2", "scratch", "de", 1e6, 9e5, 2.0, schema=2)
    write_log(root, "sc_de_nan", "scratch", "de", 1e6, 2e6, float("nan"))
    os.makedirs(os.path.join(root, "garbage"))
    with open(os.path.join(root, "garbage", "log.json"), "w") as f:
        f.write("{not json")
    # Italian: one scratch point only; its fine-tuned run cannot get a D_e
    write_log(root, "sc_it", "scratch", "it", 1e6, 1e5, 2.0)
    write_log(root, "ft_it", "finetune", "it", 1e6, 1e4, 2.1)
    # German fine-tuned at a size with no scratch twin
    write_log(root, "ft_de_big", "finetune", "de", 1e7, 1e4, 1.0)
    # duplicate: same (role, language, N, D_f) twice, the second with longer patience and lower loss
    L = scratch_loss(1e6, 1e4 + transfer("es", 1e6, 1e4))
    write_log(root, "ft_es_dup_p3", "finetune", "es", 1e6, 1e4, L + 0.2, config={"patience": 3})
    res = fs.analyse(str(root), boot=50)
    reasons = {s["run"]: s["reason"] for s in res["skipped"]}
    assert reasons["sc_de_running"].startswith("status running")
    assert reasons["sc_de_failed"].startswith("status failed") and "OOM" in reasons["sc_de_failed"]
    assert "schema 2" in reasons["sc_de_schema2"]
    assert "NaN" in reasons["sc_de_nan"]
    assert "unreadable" in reasons["garbage"]
    msgs = "\n".join(res["messages"])
    for run in reasons:
        assert f"left out {run}" in msgs
    assert "Italian" not in msgs and "(synth_it): 1 from-scratch run(s) (sc_it)" in msgs
    assert "no D_e" in msgs
    assert "N=1e+07 (ft_de_big) have no from-scratch twin" in msgs
    assert "duplicate runs for finetune synth_es N=1e+06 D_f=1e+04" in msgs and "configs differ in patience" in msgs
    kept = by_run(res, "es")
    assert "ft_es_N1e+06_D1e+04" in kept and "ft_es_dup_p3" not in kept    # the lower loss is kept
    assert by_run(res, "de")["ft_de_big"]["flags"] == ["no_scratch_curve"]
    assert by_run(res, "it")["ft_it"]["D_e"] is None
    for lang in ("de", "es"):          # the rest of the analysis is untouched
        assert res["targets"][f"synth_{lang}"]["law_tokens"]["alpha"] == pytest.approx(LAWS[lang][1], abs=0.002)


def test_few_points_fall_back_to_interpolation(tmp_path):
    """Two scratch D per size: too few for the joint fit (sizes + 3 points, 3 distinct D)."""
    root = tmp_path
    for N in SIZES[:2]:
        for D in (1e4, 1e6):
            write_log(root, f"sc_N{N:.0e}_D{D:.0e}", "scratch", "de", N, D, scratch_loss(N, D))
        write_log(root, f"ft_N{N:.0e}", "finetune", "de", N, 3e4, scratch_loss(N, 3e4 + transfer("de", N, 3e4)))
    res = fs.analyse(str(root), boot=50)
    o = res["targets"]["synth_de"]
    assert o["curve_method"] == "interp" and o["scratch_fit"] is None
    assert any("too few for the joint fit" in m for m in res["messages"])
    assert all(p["D_t"] > 0 for p in o["points"])
    assert o["law_tokens"]["k"] is None and "need at least" in o["law_tokens"]["note"]
    assert res["pretrain"] is None


# ----------------------------------------------------------------------------- outputs

def strict_json(path):
    with open(path) as f:
        return json.load(f, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_main_writes_every_output(tmp_path, capsys):
    root = make_sweep(tmp_path / "out", noise=0.002)
    assert fs.main([str(root), "--boot", "100"]) == 0
    rep = root / "report"
    for png in fs.PLOTS.values():
        assert (rep / png).stat().st_size > 5000, png
    res = strict_json(rep / "results.json")
    assert set(res["targets"]) == {"synth_de", "synth_es", "synth_zh"}
    md = (rep / "report.md").read_text()
    for s in ("## Findings", "Transfer law D_t", "D_f \\ N", "## English pre-training", "## Messages"):
        assert s in md
    assert not [f for f in os.listdir(rep) if f.endswith(".tmp")]
    assert "wrote" in capsys.readouterr().out


def test_empty_directory_still_writes_placeholders(tmp_path):
    out = tmp_path / "rep"
    assert fs.main([str(tmp_path), "--out", str(out), "--boot", "10"]) == 0
    assert all((out / png).exists() for png in fs.PLOTS.values())
    assert strict_json(out / "results.json")["n_runs_used"] == 0
    assert fs.main([str(tmp_path / "missing")]) == 1


def test_checks_are_reported_beside_their_twin_and_not_fitted(tmp_path):
    root = make_sweep(str(tmp_path / "sweep"), langs=("de",))
    clean = fs.analyse(root, boot=20)
    N, Df = SIZES[1], DFS[1]
    base = {r["run"]: r for r in fs.clean(clean)["checks"]["runs"]}
    assert base == {}
    # two seed repeats of one cell, and a long-patience run that reaches a lower loss
    for tag, dl in (("seed2", 0.01), ("seed3", -0.02)):
        for role, prefix in (("finetune", "ft"), ("scratch", "sc")):
            L = scratch_loss(N, Df + (transfer("de", N, Df) if role == "finetune" else 0)) + dl
            write_log(root, f"{prefix}_de_N{N:.0e}_D{Df:.0e}_{tag}", role, "de", N, Df, L,
                      config={"tag": tag, "seed": int(tag[-1])})
    write_log(root, f"ft_de_N{N:.0e}_D{Df:.0e}_p20", "finetune", "de", N, Df, 0.5, config={"tag": "p20"})
    res = fs.analyse(root, boot=20)
    # the fit is the same as without the checks: a check never replaces a grid point
    law, law0 = res["targets"]["synth_de"]["law_tokens"], clean["targets"]["synth_de"]["law_tokens"]
    assert law["alpha"] == pytest.approx(law0["alpha"]) and law["n"] == law0["n"]
    rows = {r["run"]: r for r in res["checks"]["runs"]}
    assert len(rows) == 5
    p20 = rows[f"ft_de_N{N:.0e}_D{Df:.0e}_p20"]
    assert p20["grid_run"] == f"ft_de_N{N:.0e}_D{Df:.0e}" and p20["diff"] == pytest.approx(0.5 - p20["grid_loss"])
    (sp,) = res["checks"]["seed_spread"]
    assert sp["seeds"] == ["grid", "seed2", "seed3"]
    assert sp["finetune_std"] == pytest.approx(np.std([0.0, 0.01, -0.02], ddof=1), rel=1e-3)
    assert sp["gap_std"] == pytest.approx(0.0, abs=1e-9)  # both twins moved together here
    md = fs.report_md(res)
    assert "## Checks" in md and "Run-to-run spread" in md
