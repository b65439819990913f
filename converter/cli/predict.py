"""``cnp-convert predict``: a graph on people's own pictures, joints in pixels and millimetres."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..core.errors import UsageError
from .app import (
    app,
    echo,
    emit_json,
    handle_errors,
    note,
    print_table,
    progress_display,
    table,
    warn,
)
from .choices import Device, OvPrecision, Runtime, Variant, value
from .options import (
    OUTPUT_PANEL,
    RUNTIME_PANEL,
    device_option,
    force_option,
    json_option,
    ov_precision_option,
    runtime_option,
    timeout_option,
    variant_option,
)

if TYPE_CHECKING:
    from ..prediction.run import PredictReport

PEOPLE_PANEL = "People and camera"
SHOWN_JOINTS = ("Head", "R_Wrist", "L_Wrist", "R_Ankle", "L_Ankle")


def numbers(text: str | None, count: int, flag: str) -> tuple[float, ...] | None:
    """'164,93,222,252' -> (164.0, 93.0, 222.0, 252.0), exactly count values."""
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise UsageError(f"{flag} takes {count} comma-separated numbers, not {text!r}")
    return values


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else many or one + 's'}"


def print_prediction(report: PredictReport) -> None:
    names = report.joint_names
    shown = [names.index(n) for n in SHOWN_JOINTS]
    root = names[0]
    rows = []
    for image in report.images:
        for number, person in enumerate(image.people, start=1):
            x, y, w, h = person.crop_box
            if person.camera_space:
                rx, ry, rz = person.joints_3d[0]
                where = f"{rx:.0f},{ry:.0f},{rz:.0f}"
            else:
                where = "relative"
            joints = [f"{person.joints_2d[j, 0]:.0f},{person.joints_2d[j, 1]:.0f}" for j in shown]
            rows.append(
                [image.path.name, number, f"{x:.0f},{y:.0f},{w:.0f},{h:.0f}", where, *joints]
            )
    headers = ["image", "#", "crop x,y,w,h", f"{root} X,Y,Z mm", *SHOWN_JOINTS]
    echo(
        f"ConvNeXtPose-{report.variant} ({report.weights} weights) on {report.device}: "
        f"{_count(report.people, 'person', 'people')} in {_count(len(report.images), 'image')}"
    )
    print_table(table(headers, rows, numeric=(1, *range(4, len(headers)))))
    if report.predictions_file is not None:
        pictures = sum(len(i.pictures) for i in report.images)
        echo(f"wrote {report.predictions_file} and {pictures} pictures beside it")


@app.command("predict")
@handle_errors
def predict_command(
    model: Path = typer.Argument(..., help="The ONNX graph (one cnp-convert wrote, or --variant)."),
    images: list[Path] = typer.Argument(..., help="Image files or folders of them."),
    box: list[str] = typer.Option(
        [],
        "--box",
        metavar="X,Y,W,H",
        help="A person's box in pixels, once per person (one image). None: the whole image.",
        rich_help_panel=PEOPLE_PANEL,
    ),
    boxes: Path | None = typer.Option(
        None,
        "--boxes",
        metavar="FILE.json",
        help='Boxes per image: {"name.jpg": [[x, y, w, h], {"box": [...], "root_depth_mm": Z}]}.',
        rich_help_panel=PEOPLE_PANEL,
    ),
    root_depth: list[float] = typer.Option(
        [],
        "--root-depth",
        metavar="MM",
        help="Each person's root (pelvis) depth, camera mm, in --box order; without it, 3D "
        "joints are root-relative.",
        rich_help_panel=PEOPLE_PANEL,
    ),
    focal: str | None = typer.Option(
        None,
        "--focal",
        metavar="FX,FY",
        help="Focal lengths in pixels (default 1500,1500, the official demo's).",
        rich_help_panel=PEOPLE_PANEL,
    ),
    princpt: str | None = typer.Option(
        None,
        "--princpt",
        metavar="CX,CY",
        help="Principal point in pixels (default: the image centre).",
        rich_help_panel=PEOPLE_PANEL,
    ),
    variant: Variant | None = variant_option("For a graph without cnp-convert metadata."),
    runtime: Runtime = runtime_option(),
    ov_precision: OvPrecision = ov_precision_option(),
    device: Device = device_option(),
    threads: int | None = typer.Option(
        None, "--threads", help="The runtime's threads.", rich_help_panel=RUNTIME_PANEL
    ),
    timeout: float | None = timeout_option(),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        help="Folder for the pictures (NAME_2d.png, NAME_3d.png) and predictions.json.",
        rich_help_panel=OUTPUT_PANEL,
    ),
    force: bool = force_option("Replace pictures and predictions.json already in --output."),
    as_json: bool = json_option("Print every number as JSON instead of the table."),
) -> None:
    """Find each person's 2D and 3D joints in pictures with a ConvNeXtPose graph.

    Boxes get the reference's crop (aspect fixed, 1.25x); 2D joints come back in image pixels,
    3D joints in camera mm given a root depth, else root-relative mm (docs/predict.md).
    """
    from ..prediction.run import PredictOptions, run_prediction

    options = PredictOptions(  # every value checked here, before any file is read
        model=model,
        images=tuple(images),
        box=tuple(numbers(text, 4, "--box") for text in box),  # type: ignore[misc]
        boxes=boxes,
        root_depth=tuple(root_depth),
        focal=numbers(focal, 2, "--focal"),
        princpt=numbers(princpt, 2, "--princpt"),
        variant=value(variant),
        runtime=str(runtime.value),
        device=str(device.value),
        ov_precision=str(ov_precision.value),
        threads=threads,
        output=output,
        force=force,
        timeout=timeout,
    )
    with progress_display() as bar:
        report = run_prediction(options, bar)
    if report.weights == "random":
        warn(f"{model} holds seeded RANDOM weights: these poses mean nothing")
    for message in report.notes:
        note(message)
    if as_json:
        emit_json(report.to_dict())
    else:
        print_prediction(report)
