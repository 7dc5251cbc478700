"""Tests for predict.py on a synthetic study whose law is known: test_fit_scaling.py's built-in
design (three sizes, scratch points 2x apart, 1% noise) for German, with English pre-training
runs, and a Chinese whose fine-tuning is 3% worse than scratch (no law). fit_scaling.py fits it
once (module fixture) and writes results.json; predict.py answers from that file alone."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import fit_scaling as fs  # noqa: E402
import predict as pr  # noqa: E402
from tests.test_fit_scaling import (B_DFS, B_SCRATCH, B_SIZES, EN_ALPHA_N,  # noqa: E402
                                    EN_NC, TRUE_ALPHA, TRUE_BETA, builtin_like,
                                    plateau_descent_floor, write_log)

K = 2.0 * 4096 / (4096 ** TRUE_ALPHA * 56e3 ** TRUE_BETA)   # builtin_like's k
curve = plateau_descent_floor


def true_De(N, Df):
    return Df + K * Df ** TRUE_ALPHA * N ** TRUE_BETA


def add_pretraining_and_chinese(root):
    """English pre-training per size (its FLOPs are the pre-training cost) and a Chinese whose
    fine-tuned runs are 3% worse than scratch at the same D_f: negative transfer, no law."""
    for N in B_SIZES:
        write_log(root, f"pt_N{N:.0e}", "pretrain", "en", N, 1e8, (EN_NC / N) ** EN_ALPHA_N,
                  tokens_best=1e7)
        for D in B_SCRATCH:
            write_log(root, f"sc_zh_N{N:.0e}_D{D}", "scratch", "zh", N, D, curve(N, D))
        for Df in B_DFS:
            write_log(root, f"ft_zh_N{N:.0e}_D{Df}", "finetune", "zh", N, Df, 1.03 * curve(N, Df),
                      init_from=f"out/pt_N{N:.0e}/best.pt")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = builtin_like(tmp_path_factory.mktemp("study"), curve, seed=1)
    add_pretraining_and_chinese(root)
    res = fs.clean(fs.analyse(root, boot=200, seed=0))
    path = os.path.join(root, "results.json")
    with open(path, "w") as f:
        json.dump(res, f)
    return res, path


def run(*args):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "predict.py"), *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def predictions(res, queries, lang="synth_de"):
    target = res["targets"][lang]
    sizes = pr.build_sizes(target, res)
    rng = np.random.default_rng(0)
    noise = res["checks"]["noise_used"][0]
    return [pr.predict(target, sizes, noise, n, d, rng) for n, d in queries]


def test_inside_the_measured_range_close_to_the_truth_and_covered(study):
    """At the measured sizes and D_f between the measured ones: the fine-tuned loss and D_e
    within 10% of the truth, each 95% interval holding it, and no extrapolation said."""
    res, _ = study
    queries = [(n, d) for n in B_SIZES for d in (1500, 3000, 6000)]
    for p in predictions(res, queries):
        De, L = true_De(p["N"], p["D_f"]), curve(p["N"], true_De(p["N"], p["D_f"]))
        where = f"N={p['N']:.3g} D_f={p['D_f']:.3g}"
        assert p["D_e"] == pytest.approx(De, rel=0.1), where
        assert p["L_ft"] == pytest.approx(L, rel=0.1), where
        assert p["D_e_ci"][0] <= De <= p["D_e_ci"][1], (where, p["D_e_ci"], De)
        assert p["L_ft_ci"][0] <= L <= p["L_ft_ci"][1], (where, p["L_ft_ci"], L)
        assert p["L_scratch"] == pytest.approx(curve(p["N"], p["D_f"]), rel=0.03), where
        assert p["note"] == "inside the measured range" and p["D_t"] == pytest.approx(
            p["D_e"] - p["D_f"]) and p["Df_over_De"] == pytest.approx(p["D_f"] / p["D_e"])


def test_between_sizes_is_interpolated_in_N_and_said(study):
    res, _ = study
    (p,) = predictions(res, [(1e5, 3000)])
    assert p["note"] == f"interpolated in N between {pr.short(56e3)} and {pr.short(222e3)}"
    assert p["L_ft"] == pytest.approx(curve(1e5, true_De(1e5, 3000)), rel=0.1)
    # the scratch arm's FLOPs: a converged run at D_e (20 epochs of 6 N FLOPs a token here)
    assert p["C_scratch"] == pytest.approx(6 * 1e5 * 20 * p["D_e"], rel=0.02)
    assert p["C_finetune_with_pretrain"] == pytest.approx(p["C_finetune"] + 6 * 1e5 * 1e7, rel=0.02)


def test_the_example_command_and_a_table(study):
    _, path = study
    rc, out, err = run(path, "--lang=de", "--N=5.5e4", "--D_f=6000")
    assert rc == 0 and not err
    assert "N read as the measured size 5.6e4" in out and "EXTRAPOLATED" not in out
    assert "D_f tokens" in out and "D_f bytes" in out and "bytes per token: 1" in out
    rc, out, _ = run(path, "--lang=de", "--N=1.4e4,2.22e5", "--D_f=2000,4000,6000")
    rows = [line for line in out.splitlines() if line.startswith(("1.4e4 ", "2.22e5 "))]
    assert rc == 0 and len(rows) == 3 * 6    # three tables, one row per combination


def test_outside_the_measured_range_is_an_extrapolation_in_its_row(study):
    res, path = study
    far_N, far_Df, below = predictions(res, [(1e6, 3000), (56e3, 5e4), (56e3, 300)])
    assert far_N["note"].startswith("EXTRAPOLATED: N outside the measured sizes 1.4e4-2.22e5")
    assert "D_f outside the law's 1.02e3-8.19e3" in far_Df["note"]
    assert "D_e beyond the scratch curve" in far_Df["note"]
    assert "D_f beyond the scratch curve: 300 outside the measured 512-3.28e4" in below["note"]
    rc, out, _ = run(path, "--lang=de", "--N=1e6", "--D_f=3000")
    rows = [line for line in out.splitlines() if line.startswith("1e6 ")]
    assert rc == 0 and len(rows) == 3 and all("EXTRAPOLATED" in r for r in rows)


def test_budget_picks_the_arm(study):
    """Fine-tuning costs what scratch on the same D_f does here, and reaches a lower loss: with
    the pre-training paid, fine-tune the largest size; counting pre-training (6 N x 1e7 tokens,
    over a budget of 2e11), train the largest size from scratch."""
    _, path = study
    rc, out, _ = run(path, "--lang=de", "--D_f=6000", "--budget_flops=2e11")
    assert rc == 0
    assert "pre-training already paid: fine-tuned N = 2.22e5" in out
    assert "counting pre-training: scratch N = 2.22e5" in out
    rc, out, _ = run(path, "--lang=de", "--D_f=6000", "--budget_flops=1e9")
    assert out.count("nothing fits") == 2


def test_a_language_without_a_law_gives_its_measured_ratio(study):
    res, path = study
    s = res["targets"]["synth_zh"]["summary"]
    assert res["targets"]["synth_zh"]["law"] is None and s["De_over_Df"] < 1
    rc, out, _ = run(path, "--lang=zh", "--N=5.5e4", "--D_f=6000")
    assert rc == 0 and "no law was fitted" in out
    assert f"measured D_e/D_f = {s['De_over_Df']:.3g} [{s['ci'][0]:.3g}, {s['ci'][1]:.3g}]" in out


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    rc, out, _ = run(flag)
    assert rc == 0 and "budget_flops" in out and "EXTRAPOLATION" in out


@pytest.mark.parametrize("args, words", [
    (["/no/such/results.json", "--lang=de", "--N=1e5", "--D_f=1e3"], "cannot read"),
    (["RESULTS", "--lang=fr", "--N=1e5", "--D_f=1e3"], "language 'fr' is not in the study"),
    (["RESULTS", "--lang=de", "--N=big", "--D_f=1e3"], "--N='big'"),
    (["RESULTS", "--lang=de", "--N=1e5"], "give --D_f="),
    (["--lang=de"], "give the results.json first"),
])
def test_errors_are_one_line(study, args, words):
    args = [study[1] if a == "RESULTS" else a for a in args]
    rc, out, err = run(*args)
    assert rc == 1 and not out and len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and words in err, err
