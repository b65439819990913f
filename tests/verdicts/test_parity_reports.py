"""The whole-report verdict (judge_outputs), its JSON, exact-limit cases and the printed lines.

All numbers are dyadic (exact in binary), so "exactly at the limit" is exact; expected values are
hand arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from converter.core.variants import get_variant
from converter.verdicts.parity import Limit, PoseBudget, judge_output, judge_outputs, pose_change
from converter.verdicts.tolerances import check_atol, check_precision

XS = get_variant("XS")  # 62.5 mm per coords unit on each axis
RULE = Limit(factor=4.0, margin=0.5)


def _three(shape: tuple[int, ...], floor: float = 0.0, error: float = 0.0):
    ref = np.zeros(shape)
    candidate = ref.copy()
    torch32 = ref + floor  # off by `floor` everywhere: the floor's rms and max are both `floor`
    candidate.flat[-1] += error
    return ref, torch32, candidate


def test_every_output_is_judged_with_its_own_limit() -> None:
    c_ref, c_t, c_c = _three((2, 18, 3), floor=0.125, error=1.0)  # limit 4 x 0.125 + 0.5 = 1
    h_ref, h_t, h_c = _three((2, 4, 3, 3), error=0.75)  # over 0.5 (floor 0), under atol 1
    limits = {"coords": RULE, "heatmaps": Limit(4.0, 0.5, atol=1.0)}
    report = judge_outputs({"coords": c_ref, "heatmaps": h_ref}, {"coords": c_t, "heatmaps": h_t},
                           {"coords": c_c, "heatmaps": h_c}, limits, spec=XS, batch=2)  # fmt: skip
    coords, heatmaps = report.output("coords"), report.output("heatmaps")
    assert (coords.limit, coords.error, coords.passed) == (1.0, 1.0, True)  # exactly at the limit
    assert (heatmaps.limit, heatmaps.error, heatmaps.passed) == (1.0, 0.75, True)
    assert coords.joint_error_mm[17] == 62.5 and heatmaps.joint_error_mm is None
    assert report.passed and (report.batch, report.samples) == (2, 2)
    with pytest.raises(KeyError, match="depth"):
        report.output("depth")
    payload = report.to_dict()
    assert list(payload) == ["batch", "samples", "passed", "outputs"]
    assert (payload["batch"], payload["samples"], payload["passed"]) == (2, 2, True)
    assert [o["name"] for o in payload["outputs"]] == ["coords", "heatmaps"]
    assert payload["outputs"][0] == coords.to_dict()


def test_an_output_missing_on_either_side_fails_and_the_rest_is_still_judged() -> None:
    ref = {"heatmaps": np.zeros((3, 2)), "coords": np.zeros((3, 18, 3))}
    limits = {"heatmaps": RULE, "coords": RULE}
    for torch32, candidate in (
        ({"coords": ref["coords"]}, ref),  # PyTorch fp32 lacks heatmaps
        (ref, {"coords": ref["coords"]}),  # the candidate lacks heatmaps
    ):
        report = judge_outputs(ref, torch32, candidate, limits)
        heatmaps, coords = report.outputs
        assert heatmaps.name == "heatmaps" and heatmaps.shape == (3, 2) and not heatmaps.passed
        assert heatmaps.note == "missing in candidate"
        assert coords.name == "coords" and coords.passed  # judged after the missing one
        assert not report.passed and report.samples == 3 and report.batch is None
    both = judge_outputs(ref, ref, ref, limits)
    assert both.passed and [o.name for o in both.outputs] == ["heatmaps", "coords"]


def test_an_output_without_a_limit_is_refused() -> None:
    ref = {"coords": np.zeros((1, 18, 3)), "heatmaps": np.zeros((1, 2))}
    with pytest.raises(ValueError, match="heatmaps"):
        judge_outputs(ref, ref, ref, {"coords": RULE})


def test_no_outputs_is_no_pass() -> None:
    report = judge_outputs({}, {}, {}, {})
    assert report.outputs == () and report.samples is None and not report.passed


def test_just_outside_the_limit_fails() -> None:
    # 4 x 0.125 + 0.5 = 1.0; one ulp above fails
    entry = judge_output("coords", *_three((1, 18, 3), 0.125, np.nextafter(1.0, 2.0)), RULE, XS)
    assert not entry.passed and entry.limit == 1.0


def test_no_millimetres_for_outputs_that_are_not_pose_coords() -> None:
    # a last axis of 3 is not enough: only "coords" of shape (N, J, 3) is a pose
    heatmaps = judge_output("heatmaps", *_three((1, 4, 3), error=0.25), RULE, XS)
    assert heatmaps.passed and heatmaps.joint_error_mm is None and heatmaps.joint_names is None
    assert heatmaps.worst_joint is None and heatmaps.to_dict()["joint_error_mm"] is None
    flat = judge_output("coords", *_three((1, 54), error=0.25), RULE, XS)
    assert flat.passed and flat.joint_error_mm is None and flat.worst_index == (0, 53)


@pytest.mark.parametrize("side", [0, 1, 2])
def test_non_finite_values_are_named_by_side(side: int) -> None:
    arrays = list(_three((1, 18, 3)))
    arrays[side][0, 3, 1] = np.nan
    arrays[side][0, 4, 1] = np.inf
    entry = judge_output("coords", *arrays, Limit(4.0, 1.0, atol=1e9), XS)
    name = ("reference", "PyTorch fp32", "candidate")[side]
    assert entry.note == f"2 non-finite value(s) in {name}"
    assert entry.name == "coords" and entry.shape == (1, 18, 3) and not entry.passed


def test_a_failed_output_reports_nan_not_numbers() -> None:
    entry = judge_output("coords", np.zeros((0, 18, 3)), np.zeros((0, 18, 3)),
                         np.zeros((0, 18, 3)), RULE, XS)  # fmt: skip
    assert entry.name == "coords" and entry.note == "empty output"
    payload = entry.to_dict()
    for key in ("error", "floor", "limit", "mean_error", "reference_at_worst",
                "candidate_at_worst"):  # fmt: skip
        assert math.isnan(payload[key]), key
    assert payload["worst_index"] == [] and payload["passed"] is False


def test_printed_verdict_lines_by_hand() -> None:
    ok = judge_output("heatmaps", *_three((1, 2), 0.125, 1.0), RULE)
    assert ok.line() == (
        "heatmaps: max abs 1 vs float64 (PyTorch fp32 floor rms 0.125, max 0.125; limit 1 = "
        "4 x floor + 0.5) "
        "within limit, mean 0.5, worst at [0, 1] (1 vs 0)"
    )
    change = pose_change(np.zeros((1, 18, 3)), np.full((1, 18, 3), 0.5), tuple(range(17)),
                         XS.joint_names, precision="fp16", source="crops",
                         budget=PoseBudget(1.0, 1.0, 1.0))  # fmt: skip
    # every scored joint moved by |(0.5, 0.5, 0.5)| = 0.866 mm
    assert change.line() == (
        "fp16 pose change on 1 crops (crops): mean 0.87 mm, p95 0.87 mm, worst 0.87 mm "
        "(Pelvis); budget mean 1 / p95 1 / worst 1 mm: within budget"
    )
    over = pose_change(np.zeros((1, 18, 3)), np.full((1, 18, 3), 0.5), tuple(range(17)),
                       XS.joint_names, precision="fp16", source="crops",
                       budget=PoseBudget(1.0, 1.0, 0.5))  # fmt: skip
    assert over.line().endswith("budget mean 1 / p95 1 / worst 0.5 mm: OVER BUDGET")


def test_user_values_are_named_by_their_option() -> None:
    with pytest.raises(Exception) as info:
        check_atol(-1.0)
    assert str(info.value) == "atol must be a positive finite number, not -1.0"
    with pytest.raises(Exception) as info:
        check_atol(0.0, "max_delta_mm")
    assert str(info.value).startswith("max_delta_mm must be a positive finite number")
    assert check_precision(" FP16 ") == "fp16" and check_precision("int8") == "int8"
    with pytest.raises(Exception) as info:
        check_precision("fp64")
    assert info.value.exit_code == 2
    assert str(info.value) == "precision must be one of fp32, fp16, int8, not 'fp64'"


def test_millimetres_per_unit_along_y() -> None:
    # one heatmap pixel along y: 2000 mm / 32 rows (XS) or / 64 rows (L)
    ref = np.zeros((1, 18, 3))
    candidate = ref.copy()
    candidate[0, 9, 1] = 1.0  # Nose, y only
    assert judge_output("coords", ref, ref, candidate, RULE, XS).joint_error_mm[9] == 62.5
    wide = judge_output("coords", ref, ref, candidate, RULE, get_variant("L"))
    assert wide.joint_error_mm[9] == 31.25 and wide.worst_joint == ("Nose", 31.25, 0.0)


# PyTorch fp32 off by 1 in one element of 16: rms sqrt(1/16) = 0.25, max 1. With factor 4 and
# max_factor 2 the max term wins: limit max(4 x 0.25, 2 x 1) + 0.5 = 2.5, by hand.
MAX_RULE = Limit(factor=4.0, margin=0.5, max_factor=2.0)


def _sixteen(error: float):
    ref = np.zeros((1, 16))
    torch32 = ref.copy()
    torch32[0, 0] = 1.0
    candidate = ref.copy()
    candidate[0, 3] = error
    return ref, torch32, candidate


def test_the_floor_max_term_just_inside_and_just_outside() -> None:
    inside = judge_output("heatmaps", *_sixteen(2.5), MAX_RULE)
    outside = judge_output("heatmaps", *_sixteen(np.nextafter(2.5, 3.0)), MAX_RULE)
    assert (inside.floor, inside.floor_max, inside.limit) == (0.25, 1.0, 2.5) and inside.passed
    assert outside.limit == 2.5 and not outside.passed


def test_the_floor_max_term_with_the_sum_bound() -> None:
    # coords (1, 16, 3): PyTorch off by 1 in one of 48 elements (rms sqrt(1/48), max 1); each
    # joint's terms give mass 2**-4 and no cell above u: allowance 2 x 2**-4 x |8| = 1 at
    # reference 8, so the limit there is max(4 x 0.144, 2 x 1) + 0.5 + 1 = 3.5.
    ref = np.full((1, 16, 3), 8.0)
    torch32 = ref.copy()
    torch32[0, 0, 0] += 1.0
    terms = np.zeros((1, 16, 2))
    terms[..., 0] = 2.0**-4
    rule = Limit(4.0, 0.5, None, 3.0, 2.0)
    for error, passed in ((3.5, True), (3.5 + 2.0**-40, False)):  # exact beside 8
        candidate = ref.copy()
        candidate[0, 7, 2] += error
        entry = judge_output("coords", ref, torch32, candidate, rule, XS, terms)
        assert (entry.limit, entry.allowance, entry.passed) == (3.5, 1.0, passed)
        assert entry.worst_index == (0, 7, 2)


def test_limit_value_by_hand() -> None:
    assert MAX_RULE.value(0.125) == 1.0  # no floor max given: the rms term alone, 4 x 0.125 + 0.5
    assert MAX_RULE.value(0.125, 1.0) == 2.5
    assert MAX_RULE.value(0.125, 0.0, 0.25) == 1.25  # the allowance adds
    assert Limit(4.0, 0.5, atol=0.75).value(10.0, 10.0, 10.0) == 0.75


def test_only_coords_get_the_sum_bound_in_a_whole_report() -> None:
    # coords at 8 with mass 2**-4 per joint: allowance 1 (see above), limit 0 + 0.5 + 1 = 1.5;
    # heatmaps under the same rule (normalizer lambda 3), but the coords' terms are never
    # theirs: their limit stays 0.5, and an error of 0.75 fails.
    rule = Limit(4.0, 0.5, None, 3.0)
    c_ref = np.full((1, 16, 3), 8.0)
    c_cand = c_ref.copy()
    c_cand[0, 2, 1] += 1.5
    h_ref = np.full((1, 16, 3), 8.0)
    h_cand = h_ref.copy()
    h_cand[0, 2, 1] += 0.75
    terms = np.zeros((1, 16, 2))
    terms[..., 0] = 2.0**-4
    refs = {"coords": c_ref, "heatmaps": h_ref}
    cands = {"coords": c_cand, "heatmaps": h_cand}
    limits = {"coords": rule, "heatmaps": rule}
    report = judge_outputs(refs, refs, cands, limits, spec=XS, sum_terms=terms)
    coords, heatmaps = report.outputs
    assert (coords.limit, coords.allowance, coords.passed) == (1.5, 1.0, True)
    assert (heatmaps.limit, heatmaps.allowance, heatmaps.passed) == (0.5, 0.0, False)
    assert coords.to_dict()["max_error"] == 1.5 and heatmaps.to_dict()["max_error"] == 0.75


def test_the_report_json_keeps_the_largest_error_apart_from_the_judged_one() -> None:
    # two errors: 1 at reference 8 with allowance 1 (limit 1.5), 0.75 at reference 0 (limit
    # 0.5): the judged element is the second, the largest error the first.
    ref = np.zeros((1, 2, 3))
    ref[0, 0, 0] = 8.0
    candidate = ref.copy()
    candidate[0, 0, 0] += 1.0
    candidate[0, 1, 0] += 0.75
    terms = np.zeros((1, 2, 2))
    terms[0, 0, 0] = 2.0**-4
    entry = judge_output("coords", ref, ref, candidate, Limit(4.0, 0.5, None, 3.0), XS, terms)
    payload = entry.to_dict()
    assert (payload["error"], payload["max_error"], payload["limit"]) == (0.75, 1.0, 0.5)
    assert not entry.passed and entry.worst_index == (0, 1, 0)


def test_sum_terms_that_do_not_fit_are_named() -> None:
    with pytest.raises(ValueError) as info:
        judge_output("coords", *_three((2, 18, 3)), Limit(4.0, 0.5, None, 3.0), XS,
                     np.zeros((2, 17, 2)))  # fmt: skip
    assert str(info.value) == "sum terms (2, 17, 2) do not fit coords [2, 18, 3]"


@pytest.mark.skipif(
    np.finfo(np.longdouble).eps >= 2.0**-60, reason="longdouble is float64 on this platform"
)
def test_every_side_is_compared_in_float64() -> None:
    # A longdouble array's bits beyond float64 are dropped on each side, not compared.
    finer = np.full((1, 18, 3), np.longdouble(1) + np.longdouble(2.0**-60))
    assert (finer != 1).all()  # the extra bits are there to be dropped
    plain = np.ones((1, 18, 3))
    for arrays in ((finer, plain, plain), (plain, finer, plain), (plain, plain, finer)):
        entry = judge_output("coords", *arrays, Limit(4.0, 0.0, atol=2.0**-70), XS)
        assert (entry.error, entry.floor, entry.passed) == (0.0, 0.0, True)
    budget = PoseBudget(0.0, 0.0, 0.0)
    for ref, cand in ((finer, plain), (plain, finer)):
        change = pose_change(ref * 1000, cand * 1000, tuple(range(17)), XS.joint_names,
                             precision="fp16", source="s", budget=budget)  # fmt: skip
        assert change.worst_mm == 0.0 and change.passed


def test_pose_budgets_for_photos_and_drawn_figures() -> None:
    from converter.verdicts.tolerances import pose_budget

    assert pose_budget("int8") == PoseBudget(10.0, 25.0, 100.0)  # photos by default
    assert pose_budget("int8", drawn=False) == PoseBudget(10.0, 25.0, 100.0)
    assert pose_budget("int8", drawn=True) == PoseBudget(50.0, 140.0, 450.0)
    assert pose_budget("bf16", drawn=True) == PoseBudget(15.0, 45.0, 150.0)


def test_sum_terms_are_summed_in_float64() -> None:
    from converter.verdicts.parity import softmax_sum_allowance, softmax_sum_terms

    # both cells are below u = 2**-24; in float32 the second would vanish beside the first
    terms = softmax_sum_terms(np.array([[2.0**-25, 2.0**-55]], np.float32))
    assert terms[0, 0] == 2.0**-25 + 2.0**-55 and terms[0, 1] == 0
    # float32 terms: the relative error is formed in float64 (mass + 3u sqrt(2), exactly as here)
    coarse = np.array([[[2.0**-30, 2.0]]], np.float32)
    allowance = softmax_sum_allowance(np.ones((1, 1, 3)), coarse, 3.0)
    relative = 2.0**-30 + 3.0 * 2.0**-24 * math.sqrt(2.0)
    assert allowance == pytest.approx(np.full((1, 1, 3), 2.0 * relative), rel=1e-13, abs=0)
