"""What every command shares: choices in --help, shell completion, JSON errors, --quiet,
progress only on a terminal, tables that survive redirection."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stacked import stacked_rows
from typer.testing import CliRunner

from converter import __version__
from converter.cli.app import SETTINGS, print_table, progress_display, table
from converter.cli.choices import comma_choices, parse_comma_choices
from converter.cli.main import app

runner = CliRunner()


def invoke(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def flat(text: str) -> str:
    """Typer's boxed help and errors as one line."""
    return " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize(
    ("command", "choices"),
    [
        ("onnx", ["<XS|S|M|L>", "<dynamo|torchscript>", "<fp32|fp16|int8>", "onnx2torch>"]),
        (
            "verify",
            [
                "<XS|S|M|L>",
                "<auto|cpu|cuda>",
                "<onnxruntime|openvino|opencv|tflite>",
                "<auto|f32|bf16>",
            ],
        ),
        ("eval", ["<XS|S|M|L>", "<auto|cpu|cuda>", "1<=x<=2", "torch, onnx"]),
        ("bench", ["<XS|S|M|L>", "<auto|cpu|cuda>", "fp32, fp16, int8"]),
        ("legacy", ["<XS|S|M|L>", "<safetensors|pth>"]),
        ("demo-data", ["<reference|kaggle>"]),
        ("doctor", ["<cpu|cuda>"]),
        ("demo", ["<XS|S|M|L>"]),
    ],
)
def test_help_lists_the_choices(command: str, choices: list[str]) -> None:
    result = invoke(command, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for choice in choices:
        assert choice in flat(result.stdout), (command, choice)


def test_one_device_default_for_every_command_that_places_work() -> None:
    for command in ("verify", "eval", "bench"):
        text = flat(invoke(command, "--help", env={"COLUMNS": "200"}).stdout)
        assert re.search(r"--device <auto\|cpu\|cuda> .*?\[default: auto\]", text), command


def test_shell_completion_is_offered() -> None:
    text = flat(invoke("--help", env={"COLUMNS": "200"}).stdout)
    assert "--install-completion" in text and "--show-completion" in text
    # The script for a named shell, in a fresh process: Typer takes the shell's name only when
    # it does not detect the parent shell itself (decided at import), and under `just` the
    # parent is sh, which it does not support.
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = subprocess.run(
        [str(Path(sys.executable).with_name("cnp-convert")), "--show-completion", "bash"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert script.returncode == 0, script.stderr
    assert "_CNP_CONVERT_COMPLETE=complete_bash" in script.stdout


def test_comma_lists_are_checked_and_completed_item_by_item() -> None:
    assert parse_comma_choices("onnx, TORCH,onnx", ("torch", "onnx"), "--backend") == [
        "onnx",
        "torch",
    ]
    for bad in ("", ",", "torch,tflite"):
        with pytest.raises(Exception, match="a comma list of torch, onnx"):
            parse_comma_choices(bad, ("torch", "onnx"), "--backend")
    complete = comma_choices(("fp32", "fp16", "int8"), "--precision")["autocompletion"]
    assert complete("fp") == ["fp32", "fp16"]
    assert complete("fp32,") == ["fp32,fp16", "fp32,int8"]  # a chosen one is not offered again
    assert complete("fp32,i") == ["fp32,int8"]


def test_a_bad_choice_is_typers_usage_error_with_exit_2() -> None:
    result = invoke("onnx", "--variant", "XL")
    assert result.exit_code == 2 and result.stdout == ""
    assert "Invalid value for '--variant'" in flat(result.stderr)
    assert "'XL' is not one of" in flat(result.stderr)
    # any case is accepted, as before
    assert invoke("onnx", "--variant", "xs", "--opset", "99").exit_code == 2  # the opset, not xs


def test_json_errors_are_also_a_json_object_on_stdout(tmp_path: Path) -> None:
    usage = invoke("onnx", "--variant", "XL", "--json")
    assert usage.exit_code == 2
    error = json.loads(usage.stdout)
    assert error["exit_code"] == 2 and "Invalid value for '--variant'" in error["error"]
    missing = tmp_path / "missing.tar"
    domain = invoke("inspect", missing, "--json")
    assert domain.exit_code == 2
    payload = json.loads(domain.stdout)
    assert payload == {"error": payload["error"], "exit_code": 2}
    assert str(missing) in payload["error"] and payload["error"] in domain.stderr
    plain = invoke("inspect", missing)
    assert plain.exit_code == 2 and plain.stdout == ""  # without --json, stdout stays empty


def test_quiet_keeps_results_and_errors_but_no_warnings(tmp_path: Path, release_file) -> None:
    liar = tmp_path / "ConvNeXtPose_L.tar"  # holds XS weights: inspect warns about the name
    liar.write_bytes(release_file("XS").read_bytes())
    loud = invoke("inspect", liar)
    assert loud.exit_code == 0 and "warning:" in loud.stderr
    quiet = invoke("--quiet", "inspect", liar)
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == loud.stdout
    error = invoke("-q", "inspect", tmp_path / "missing.tar")
    assert error.exit_code == 2 and error.stderr.startswith("error: ")
    both = invoke("--quiet", "--verbose", "variants")
    assert both.exit_code == 2 and "contradict" in flat(both.stderr)
    assert "warning:" in invoke("inspect", liar).stderr  # the next run is not quiet


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_only_on_a_terminal_and_never_under_json_or_quiet() -> None:
    with progress_display(io.StringIO()) as progress:
        assert progress is None  # redirected: nothing drawn, no callback to call
    terminal = _Terminal()
    with progress_display(terminal) as progress:
        assert progress is not None
        progress("export (dynamo exporter)", 0, None)
        for done in range(0, 33, 8):
            progress("int8 calibration (images)", done, 32)
    drawn = terminal.getvalue()
    assert "int8 calibration (images)" in drawn and "32/32" in drawn
    assert "ETA" in drawn and "export (dynamo exporter)" in drawn
    for flag in ("json", "quiet"):
        setattr(SETTINGS, flag, True)
        try:
            with progress_display(_Terminal()) as progress:
                assert progress is None, flag
        finally:
            setattr(SETTINGS, flag, False)


def test_eval_draws_no_progress_into_redirected_stderr(tmp_path: Path, synthetic_set) -> None:
    """CliRunner's stderr is not a terminal: the old bar wrote '\\r eval [###...' there."""
    from converter.checkpoints.released import released_release

    release = released_release(tmp_path)
    result = invoke(
        "eval", "--data", synthetic_set("reference"), "--checkpoint", release, "--backend", "torch",
        "--limit", 2, "--device", "cpu", "--no-flip",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "\r" not in result.stderr and "frames" not in result.stderr
    assert "Directions" in result.stdout


def test_tables_are_not_cut_when_redirected(capsys: pytest.CaptureFixture[str]) -> None:
    long = "9" * 40
    print_table(table(["name", "value"], [["a", long], ["b", "1,234,567.891"]], numeric={1}))
    out = capsys.readouterr().out
    assert long in out and "1,234,567.891" in out and "\x1b[" not in out  # no colour codes
    assert out.splitlines()[0].split() == ["name", "value"]  # it fits: a table
    # just inside and just outside the page: 100 columns are a table, 101 are stacked
    for width, stacked in ((100, False), (101, True)):
        print_table(table(["h"], [["x" * width]]))
        out = capsys.readouterr().out
        assert out.startswith("h  x") == stacked and ("x" * width) in out
    result = invoke("variants")  # 12 columns: wider than a log's 100, so stacked, none lost
    assert result.exit_code == 0 and max(len(line) for line in result.stdout.splitlines()) <= 100
    rows = stacked_rows(result.stdout, "name")
    assert [r["name"] for r in rows] == ["XS", "S", "M", "L"]
    assert all(len(r) == 12 for r in rows)
    # params are what docs/checkpoints.md's table says (counted by hand from the layer shapes)
    params = {r["name"]: r["params"] for r in rows}
    assert params == {"XS": "3,528,008", "S": "7,438,976", "M": "7,587,008", "L": "8,380,352"}
    assert json.loads(invoke("variants", "--json").stdout)[3]["params"] == 8380352


ROOT = Path(__file__).parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_command_reference_lists_every_option() -> None:
    import typer.main

    readme = (ROOT / "docs" / "commands.md").read_text()
    commands_section = readme
    rows = {
        line.split("`")[1].split()[1]: line
        for line in commands_section.splitlines()
        if line.startswith("| `cnp-convert ")
    }
    group = typer.main.get_command(app)
    assert set(rows) == set(group.commands)  # type: ignore[attr-defined]
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            names = [o for o in (*param.opts, *param.secondary_opts) if o.startswith("-")]
            if names and "--help" not in names:
                found = [
                    re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", rows[name]) for o in names
                ]
                assert any(found), (name, names)
    for option in ("--quiet", "--verbose", "--version", "--install-completion"):
        assert f"`{option}`" in readme or f"`cnp-convert {option}`" in readme, option


def _options_of(command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


def test_every_command_and_option_the_docs_name_exists() -> None:
    """Each `cnp-convert CMD …` the README and docs/ show, in code spans and console blocks:
    the command exists and so does every option written after it."""
    import typer.main

    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    top = _options_of(group) | {"--help"}
    seen = 0
    for document in DOCUMENTS:
        text = document.read_text()
        for usage in re.findall(r"cnp-convert((?: [^`\n|#]*)?)", text):
            words = usage.split()
            while words and words[0] in top:
                words.pop(0)
            if not words or not re.fullmatch(r"[a-z][a-z0-9-]*", words[0]):
                continue
            name = words[0]
            assert name in commands, (document.name, usage)
            known = _options_of(commands[name]) | {"--help"}
            for word in words[1:]:
                option = word.split("=")[0].strip("[]`,.;:()")
                if option.startswith("--"):
                    assert option in known, (document.name, name, option)
            seen += 1
    assert seen >= 30  # 32 today: the pattern is not silently matching nothing


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("cnp-convert onnx --precision ", ["fp32", "fp16", "int8"]),
        ("cnp-convert onnx --variant ", ["XS", "S", "M", "L"]),
        ("cnp-convert bench --precision fp32,", ["fp32,fp16", "fp32,int8"]),
        ("cnp-convert eval --backend t", ["torch"]),
    ],
)
def test_the_shell_completes_choices(words: str, expected: list[str]) -> None:
    env = {
        "_CNP_CONVERT_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    result = runner.invoke(app, [], prog_name="cnp-convert", env=env)
    assert result.stdout.split() == expected


def _entry_point(*args: str, **options: object) -> subprocess.CompletedProcess[str]:
    """The console script's main() in a fresh process, as a user runs it."""
    command = [sys.executable, "-m", "cnp_convert", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **options)


def test_the_entry_point_keeps_exit_codes_and_output(tmp_path: Path) -> None:
    """main() leaves with os._exit: exit codes, stdout and stderr must survive it."""
    done = _entry_point("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"cnp-convert {__version__}")
    # A refusal that needs no heavy import (the --opset message itself: tests/cli/test_export.py)
    bad = _entry_point("demo-data", "/proc/cnp-h36m")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: /proc/cnp-h36m") and bad.stderr.count("\n") == 1
    usage = _entry_point("onnx", "--precision", "fp8")
    assert usage.returncode == 2 and "Invalid value for '--precision'" in usage.stderr
    as_json = _entry_point("--quiet", "variants", "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)[0]["name"] == "XS"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("signum", "word"), [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")]
)
@pytest.mark.parametrize("after_s", [0.3, 2.0])  # while modules import; during the export
def test_a_signal_is_one_line_and_128_plus_its_number(
    tmp_path: Path, signum: int, word: str, after_s: float
) -> None:
    out = tmp_path / "m.onnx"
    command = [
        sys.executable,
        "-m",
        "cnp_convert",
        "onnx",
        "--variant",
        "XS",
        "-o",
        str(out),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after_s)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    if process.returncode == 0:  # a fast machine finished first: nothing to interrupt
        pytest.skip("the export ended before the signal")
    if process.returncode == -signum:  # a loaded machine: before Python ran a line of ours
        assert stdout == "" and list(tmp_path.iterdir()) == []
        pytest.skip("the signal came before the interpreter started the entry point")
    assert process.returncode == 128 + signum, stderr
    assert stderr.splitlines()[-1] == f"{word}: nothing half-written was kept"
    assert "Traceback" not in stderr and stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_the_entry_point_runs_atexit_handlers(tmp_path: Path) -> None:
    """Handlers registered by libraries (weakref finalizers of temporary folders) still run."""
    script = (
        "import atexit, sys; from pathlib import Path; "
        f"atexit.register(lambda: Path({str(tmp_path / 'ran')!r}).write_text('yes')); "
        "sys.argv = ['cnp-convert', '--version']; "
        "from converter.cli.main import main; main()"
    )
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and (tmp_path / "ran").read_text() == "yes"


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path: Path) -> None:
    missing = tmp_path / "missing.tar"
    plain = invoke("inspect", missing)
    debug = invoke("inspect", missing, env={"CNP_DEBUG": "1"})
    assert plain.exit_code == debug.exit_code == 2
    assert "Traceback" not in plain.stderr and "Traceback (most recent call last)" in debug.stderr
    assert plain.stderr.strip().splitlines()[-1] == debug.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "args", [["--version"], ["--help"], ["onnx", "--help"], ["eval", "--help"]]
)
def test_version_and_help_import_no_heavy_library(args: list[str]) -> None:
    """The start-up cost is these imports (benchmarks/cli_latency.py times it): --version and the
    help pages must not pay it."""
    script = (
        "import sys\n"
        f"sys.argv = ['cnp-convert', *{args!r}]\n"
        "import cnp_convert.cli.main as entry\n"
        "def leave(code):\n"
        "    heavy = ('torch', 'onnx', 'onnxruntime', 'cv2', 'numpy', 'openvino')\n"
        "    print('loaded:', sorted(name for name in heavy if name in sys.modules))\n"
        "    raise SystemExit(0)\n"
        "entry._leave = leave\n"
        "entry.main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "loaded: []"


@pytest.mark.parametrize(
    ("args", "code"),
    [(["variants"], 0), (["variants", "--json"], 0), (["doctor"], 0), (["inspect", "nope"], 2)],
)
def test_a_reader_that_stops_reading_does_not_change_the_exit_code(args, code) -> None:
    """`cnp-convert verify ... | head -1`: the pipe closes early; a passing run still exits 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cnp_convert", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # the reader is gone before the first line is written
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == code, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def _limited_to_one_megabyte() -> None:
    """In the child: files may not grow past 1 MB (EFBIG, as on a full or quota-bound disk)."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))


@pytest.mark.parametrize(
    "args",
    [
        ["legacy", str(ROOT / "converter/checkpoints/released_xs.safetensors"), "-o", "{out}"],
        ["onnx", "--variant", "XS", "-o", "{out}", "--seed", "1"],
    ],
)
def test_a_write_the_disk_refuses_is_one_line_and_leaves_nothing(tmp_path: Path, args) -> None:
    out = tmp_path / "out.file"
    command = [sys.executable, "-m", "cnp_convert", *(a.format(out=out) for a in args)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, preexec_fn=_limited_to_one_megabyte
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert (
        line.startswith("error: ") and "File too large" in line and "Traceback" not in done.stderr
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", "{long}.pth"],
        ["verify", "{long}.onnx", "--variant", "XS"],
        ["onnx", "--variant", "XS", "-o", "{long}.onnx"],
        ["demo-data", "{long}"],
        ["predict", "{long}.onnx", "{long}.jpg"],
    ],
)
def test_a_name_too_long_for_the_file_system_is_one_line(tmp_path: Path, args) -> None:
    long = str(tmp_path / ("x" * 300))
    result = runner.invoke(app, [a.format(long=long) for a in args])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "File name too long" in line or "no such file" in line
