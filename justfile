# cnp-convert tasks. `just setup` once, then `just test`.
venv := ".venv"
py := venv / "bin/python"

# Create .venv and install the project with its dev tools (same as .ci/setup).
setup:
    bash .ci/setup

# The whole pipeline on a fabricated ConvNeXtPose_L.tar and a synthetic Human3.6M set.
demo *ARGS:
    {{venv}}/bin/cnp-convert demo {{ARGS}}

# The test suite (the README's test command runs this). worksteal hands each worker a contiguous
# share of the suite and rebalances only at the end; tests/conftest.py lays the shares out so that
# what a steal takes first needs no module fixture that another worker builds.
test *ARGS:
    {{py}} -m pytest -q -n auto --maxprocesses=4 --dist worksteal {{ARGS}}

lint:
    {{venv}}/bin/ruff check converter tests golden benchmarks training
    {{venv}}/bin/ruff format --check converter tests golden benchmarks training

# Regenerate the golden reference files (review the diff before committing).
golden:
    {{py}} golden/make_manifests.py
    {{py}} golden/make_golden.py

# Speed and accuracy figures on this machine.
bench *ARGS:
    {{py}} benchmarks/bench.py {{ARGS}}

# Mutation testing of the core modules ([tool.mutmut] in pyproject.toml); not part of CI.
mutate:
    rm -rf mutants
    {{venv}}/bin/mutmut run --max-children 2
    {{venv}}/bin/mutmut results

# Property-based fuzzing of the checkpoint readers, a long run (CI runs a fixed small budget).
fuzz EXAMPLES="20000":
    CNP_FUZZ_EXAMPLES={{EXAMPLES}} {{py}} -m pytest -q tests/checkpoints/test_fuzz.py
