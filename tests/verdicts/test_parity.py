"""The verdict rules on hand-made numbers: floor rule, atol override, mm per joint, pose budgets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from converter.core.variants import get_variant
from converter.verdicts.parity import (
    UNIT_ROUNDOFF_FP32,
    Limit,
    PoseBudget,
    judge_output,
    pose_change,
    softmax_sum_allowance,
    softmax_sum_terms,
)
from converter.verdicts.tolerances import check_atol, fp32_limits

XS = get_variant("XS")  # 32x32 heatmap, 32 depth bins: 2000 / 32 = 62.5 mm per unit on each axis
L = get_variant("L")  # 64 bins: 31.25 mm per unit
FLOOR_RULE = Limit(factor=4.0, margin=2e-4)


def _outputs(floor: float, error: float, joint: int = 5, axis: int = 0):
    ref = np.full((2, 18, 3), 10.0)
    candidate = ref.copy()
    torch32 = ref + floor  # PyTorch off by `floor` everywhere: its rms and its max are `floor`
    candidate[0, joint, axis] -= error
    return ref, torch32, candidate


def test_floor_rule_just_inside_and_just_outside() -> None:
    # limit = 4 x 1e-4 + 2e-4 = 6e-4, computed by hand
    inside = judge_output("coords", *_outputs(1e-4, 5.99e-4), FLOOR_RULE, XS)
    outside = judge_output("coords", *_outputs(1e-4, 6.01e-4), FLOOR_RULE, XS)
    assert inside.limit == pytest.approx(6e-4) and inside.floor == pytest.approx(1e-4)
    assert inside.passed and "within limit" in inside.line()
    assert not outside.passed and "OVER LIMIT" in outside.line()
    assert outside.error == pytest.approx(6.01e-4) and outside.worst_index == (0, 5, 0)


def test_a_noisy_checkpoint_gets_a_wider_limit() -> None:
    # The same candidate error fails beside a quiet fp32 and passes beside a noisy one.
    assert not judge_output("coords", *_outputs(1e-4, 3e-3), FLOOR_RULE, XS).passed
    assert judge_output("coords", *_outputs(1e-3, 3e-3), FLOOR_RULE, XS).passed


def test_given_atol_replaces_the_floor_rule() -> None:
    given = Limit(4.0, 2e-4, atol=1e-3)
    assert judge_output("coords", *_outputs(1.0, 0.99e-3), given, XS).passed  # floor ignored
    entry = judge_output("coords", *_outputs(0.0, 1.01e-3), given, XS)
    assert not entry.passed and entry.limit == 1e-3 and "given" in entry.rule


def test_millimetres_per_joint_by_hand() -> None:
    ref = np.zeros((1, 18, 3))
    candidate = ref.copy()
    candidate[0, 3] = (3e-3, 0.0, 4e-3)  # 3-4-5: 5e-3 units x 62.5 mm = 0.3125 mm
    entry = judge_output("coords", ref, ref, candidate, FLOOR_RULE, XS)
    assert entry.joint_error_mm[3] == pytest.approx(0.3125)
    assert entry.worst_joint == ("R_Ankle", pytest.approx(0.3125), 0.0)
    wide = judge_output("coords", ref, ref, candidate, FLOOR_RULE, L)
    assert wide.joint_error_mm[3] == pytest.approx(0.15625)  # 64 bins: half the mm per unit


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_candidate_never_passes(bad: float) -> None:
    ref = np.zeros((1, 18, 3))
    candidate = ref.copy()
    candidate[0, 0, 0] = bad
    entry = judge_output("coords", ref, ref, candidate, Limit(4.0, 1.0, atol=1e9), XS)
    assert not entry.passed and "non-finite" in entry.note


def test_shape_mismatch_fails() -> None:
    ref = np.zeros((1, 18, 3))
    entry = judge_output("coords", ref, ref, np.zeros((1, 17, 3)), FLOOR_RULE, XS)
    assert not entry.passed and "shape" in entry.note


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_bad_atol_is_a_usage_error(value: float) -> None:
    with pytest.raises(Exception, match="positive finite") as info:
        check_atol(value)
    assert info.value.exit_code == 2
    with pytest.raises(Exception, match="positive finite"):
        fp32_limits(("coords",), value)


def test_pose_change_by_hand() -> None:
    ref = np.zeros((2, 18, 3))
    candidate = ref.copy()
    candidate[0, 3] = (3.0, 4.0, 0.0)  # 5 mm at R_Ankle
    candidate[1, 17] = (900.0, 0.0, 0.0)  # the Thorax is never scored
    joints = tuple(range(17))
    budget = PoseBudget(mean_mm=1.0, p95_mm=1.0, worst_mm=5.0)
    change = pose_change(ref, candidate, joints, XS.joint_names, precision="int8",
                         source="test", budget=budget)  # fmt: skip
    assert change.mean_mm == pytest.approx(5.0 / 34)
    assert change.worst_mm == pytest.approx(5.0) and change.worst_joint == "R_Ankle"
    assert change.p95_mm == pytest.approx(0.0)  # one of 34 distances is non-zero
    assert change.passed and "within budget" in change.line()
    tighter = PoseBudget(mean_mm=1.0, p95_mm=1.0, worst_mm=4.99)
    over = pose_change(ref, candidate, joints, XS.joint_names, precision="int8",
                       source="test", budget=tighter)  # fmt: skip
    assert not over.passed and "OVER BUDGET" in over.line()


def test_pose_change_with_nan_fails() -> None:
    ref = np.zeros((1, 18, 3))
    candidate = ref.copy()
    candidate[0, 2, 1] = np.nan
    change = pose_change(ref, candidate, tuple(range(17)), XS.joint_names, precision="fp16",
                         source="test", budget=PoseBudget(1e9, 1e9, 1e9))  # fmt: skip
    assert not change.passed


def test_the_floor_rule_constants_reach_every_output() -> None:
    limits = fp32_limits(("coords", "heatmaps"))
    assert limits["coords"] == Limit(40.0, 2e-4, None, 3.0, 2.0)  # literal soft-argmax: sum bound
    assert limits["heatmaps"] == Limit(40.0, 2e-4, None, 0.0, 2.0)  # no sum in a heatmap cell
    divided = fp32_limits(("coords", "heatmaps"), divided_by_mass=True)
    assert divided["coords"] == divided["heatmaps"] == Limit(40.0, 2e-4, None, 0.0, 2.0)
    assert divided["coords"].describe() == "max(40 x floor, 2 x its max) + 0.0002"
    given = fp32_limits(("coords", "heatmaps"), 1e-3)
    assert given["coords"].atol == 1e-3 and given["heatmaps"].atol is None
    mapped = fp32_limits(("coords", "heatmaps"), {"heatmaps": 0.5})
    assert mapped["heatmaps"].atol == 0.5 and mapped["coords"].atol is None
    assert check_atol(0.5) == 0.5 and check_atol("2e-3") == 2e-3  # small positive values are fine


def test_softmax_sum_terms_and_bound_by_hand() -> None:
    u = 2.0**-24
    assert u == UNIT_ROUNDOFF_FP32
    p = np.array([[0.5, 0.5 - 1e-8 - 5e-8, 1e-8, 5e-8, u]])  # 1e-8 and 5e-8 are below u
    terms = softmax_sum_terms(p)
    assert terms.shape == (1, 2) and terms[0, 0] == pytest.approx(6e-8) and terms[0, 1] == 3
    coords = np.array([[[10.0, -4.0, 0.0]]])
    allowance = softmax_sum_allowance(coords, terms[None], 3.0)
    relative = 6e-8 + 3.0 * u * math.sqrt(3)
    assert allowance == pytest.approx(np.array([[[20 * relative, 8 * relative, 0.0]]]))


def _terms(mass: float, joint_mass: dict[int, float] | None = None) -> np.ndarray:
    terms = np.zeros((2, 18, 2))
    terms[..., 0] = mass
    for joint, value in (joint_mass or {}).items():
        terms[:, joint, 0] = value
    return terms


def test_sum_bound_just_inside_and_just_outside() -> None:
    # mass 1e-5 below u, no cell above it: allowance 2 x 1e-5 x |10| = 2e-4 on every coord;
    # limit 4 x 1e-4 + 2e-4 + 2e-4 = 8e-4, by hand.
    rule = Limit(4.0, 2e-4, None, 3.0)
    inside = judge_output("coords", *_outputs(1e-4, 7.99e-4), rule, XS, _terms(1e-5))
    outside = judge_output("coords", *_outputs(1e-4, 8.01e-4), rule, XS, _terms(1e-5))
    assert inside.passed and not outside.passed
    assert inside.limit == pytest.approx(8e-4) and inside.allowance == pytest.approx(2e-4)
    assert "sum bound 0.0002 there" in inside.line() and rule.describe().endswith("rounding bound")
    # without terms or lambda (a graph dividing by its mass), the same error is judged at 6e-4
    assert not judge_output("coords", *_outputs(1e-4, 7.99e-4), rule, XS).passed
    assert not judge_output("coords", *_outputs(1e-4, 7.99e-4), FLOOR_RULE, XS, _terms(1e-5)).passed
    with pytest.raises(ValueError, match="sum terms"):
        judge_output("coords", *_outputs(1e-4, 1e-4), rule, XS, np.zeros((2, 17, 2)))


def test_the_report_names_the_element_nearest_its_limit() -> None:
    ref, torch32, candidate = _outputs(1e-4, 1e-3, joint=5)
    candidate[0, 7, 0] -= 5e-4  # smaller error, but on a joint with no sum allowance
    entry = judge_output("coords", ref, torch32, candidate, Limit(4.0, 2e-4, None, 3.0), XS,
                         _terms(0.0, {5: 1e-4}))  # fmt: skip
    assert entry.passed and entry.worst_index == (0, 7, 0)
    assert entry.error == pytest.approx(5e-4) and entry.max_error == pytest.approx(1e-3)
    assert entry.limit == pytest.approx(6e-4) and entry.allowance == 0.0
    candidate[0, 7, 0] -= 2e-4  # now 7e-4 against 6e-4 on joint 7: refused there
    refused = judge_output("coords", ref, torch32, candidate, Limit(4.0, 2e-4, None, 3.0), XS,
                           _terms(0.0, {5: 1e-4}))  # fmt: skip
    assert not refused.passed and refused.worst_index == (0, 7, 0)


def test_a_failed_comparison_is_complete_and_reportable() -> None:
    entry = judge_output("heatmaps", np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 4)),
                         FLOOR_RULE)  # fmt: skip
    assert entry.name == "heatmaps" and entry.shape == (2, 3) and entry.passed is False
    assert all(math.isnan(v) for v in (entry.error, entry.floor, entry.limit, entry.mean_error))
    assert entry.worst_index == () and entry.rule == "" and entry.worst_joint is None
    assert entry.line() == "heatmaps: OVER LIMIT (candidate shape [2, 4], expected [2, 3])"
    assert entry.to_dict()["passed"] is False and entry.to_dict()["worst_joint"] is None
    empty = judge_output("coords", np.zeros((0, 18, 3)), np.zeros((0, 18, 3)),
                         np.zeros((0, 18, 3)), FLOOR_RULE, XS)  # fmt: skip
    assert not empty.passed and empty.note == "empty output" and empty.shape == (0, 18, 3)
    single = judge_output("coords", np.zeros(1), np.zeros(1), np.zeros(1), FLOOR_RULE)
    assert single.passed and single.note is None  # one value is a comparison, not an empty one


def test_pose_statistics_by_hand() -> None:
    # 34 scored distances 1..34 mm (2 frames x 17 joints), on top of a non-zero reference.
    ref = np.full((2, 18, 3), 100.0)
    candidate = ref.copy()
    distances = np.arange(1.0, 35.0).reshape(2, 17)
    candidate[:, :17, 0] += distances
    budget = PoseBudget(mean_mm=17.5, p95_mm=32.35, worst_mm=34.0)
    change = pose_change(ref, candidate, tuple(range(17)), XS.joint_names, precision="int8",
                         source="hand", budget=budget, batch=4)  # fmt: skip
    assert change.mean_mm == pytest.approx(17.5)
    # numpy's linear percentile: rank 0.95 x 33 = 31.35 between the 32nd (32) and 33rd (33) values
    assert change.p95_mm == pytest.approx(32.35)
    assert change.worst_mm == pytest.approx(34.0) and change.worst_joint == "R_Wrist"
    assert (change.frames, change.precision, change.source, change.batch) == (2, "int8", "hand", 4)
    assert change.passed  # exactly at every budget
    assert change.to_dict() == {
        "precision": "int8", "frames": 2, "source": "hand", "batch": 4,
        "mean_mm": pytest.approx(17.5), "p95_mm": pytest.approx(32.35), "worst_mm": 34.0,
        "worst_joint": "R_Wrist", "budget": {"mean_mm": 17.5, "p95_mm": 32.35, "worst_mm": 34.0},
        "passed": True,
    }  # fmt: skip


def test_pose_change_of_nothing_or_nan_keeps_its_labels() -> None:
    ref = np.zeros((3, 18, 3))
    candidate = ref.copy()
    candidate[1, 4, 2] = np.nan
    change = pose_change(ref, candidate, tuple(range(17)), XS.joint_names, precision="fp16",
                         source="s", budget=PoseBudget(1, 1, 1), batch=2)  # fmt: skip
    assert (change.frames, change.precision, change.source, change.batch) == (3, "fp16", "s", 2)
    assert change.worst_joint == "-" and change.budget == PoseBudget(1, 1, 1)
    assert math.isnan(change.mean_mm) and not change.passed
    nothing = np.zeros((0, 18, 3))
    empty = pose_change(nothing, nothing, tuple(range(17)), XS.joint_names, precision="fp16",
                        source="s", budget=PoseBudget(1, 1, 1))  # fmt: skip
    assert empty.frames == 0 and not empty.passed


def test_output_report_as_json_by_hand() -> None:
    entry = judge_output("coords", *_outputs(1e-4, 5e-4), FLOOR_RULE, XS)
    payload = entry.to_dict()
    assert payload == {
        "name": "coords", "shape": [2, 18, 3], "passed": True, "error": pytest.approx(5e-4),
        "floor": pytest.approx(1e-4), "limit": pytest.approx(6e-4), "rule": "4 x floor + 0.0002",
        "mean_error": pytest.approx(5e-4 / 108), "worst_index": [0, 5, 0],
        "reference_at_worst": 10.0, "candidate_at_worst": pytest.approx(10.0 - 5e-4),
        "joint_error_mm": payload["joint_error_mm"], "joint_floor_mm": payload["joint_floor_mm"],
        "worst_joint": {"name": "L_Knee", "mm": pytest.approx(5e-4 * 62.5),
                        "floor_mm": pytest.approx(1e-4 * 62.5 * math.sqrt(3))},
        "note": None, "max_error": pytest.approx(5e-4), "normalizer_allowance": 0.0,
        "floor_max": pytest.approx(1e-4),
    }  # fmt: skip
    assert payload["joint_error_mm"][5] == pytest.approx(5e-4 * 62.5)
    assert sum(payload["joint_error_mm"]) == pytest.approx(5e-4 * 62.5)
    assert payload["joint_floor_mm"][5] == pytest.approx(1e-4 * 62.5 * math.sqrt(3))
    assert entry.line().startswith(
        "coords: max abs 0.0005 vs float64 (PyTorch fp32 floor rms 0.0001, max 0.0001; "
    )
    assert (
        "within limit" in entry.line()
        and "worst joint L_Knee 0.0313 mm (floor 0.0108 mm)" in entry.line()
    )


def test_seeds_are_checked_or_drawn() -> None:
    from converter.verdicts.judge import MAX_SEED, resolve_seed

    assert resolve_seed(0) == 0 and resolve_seed(MAX_SEED - 1) == MAX_SEED - 1
    for bad in (-1, MAX_SEED, True):
        with pytest.raises(Exception, match=r"^seed must be") as info:
            resolve_seed(bad)
        assert info.value.exit_code == 2
    drawn = {resolve_seed(None) for _ in range(5)}
    assert len(drawn) > 1 and all(0 <= s < 2**31 for s in drawn)
