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
