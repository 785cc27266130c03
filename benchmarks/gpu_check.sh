#!/usr/bin/env bash
# One-command GPU check for bogc-ref (issue 4). On a machine with an NVIDIA GPU and a
# preinstalled CUDA PyTorch (and CuPy), from the repository root:
#
#   bash benchmarks/gpu_check.sh [REPORT_DIR]      # default: $OUT, else ./results
#   bash benchmarks/gpu_check.sh --dry-run [DIR]   # no GPU: exercise the script on the CPU
#
# Steps (each under `timeout`, the whole run well under 8 minutes):
#   1. install the project without network (pip --no-deps --no-build-isolation -e .);
#   2. the CUDA test cases: pytest -m cuda tests/backends (plus the rest of -m cuda);
#   3. bogc-ref verify --backend all --device cuda (skipped if the sub-command is absent);
#   4. the GPU bandwidth benchmark (calibrate, M=3, D=2^26, float32: torch compiled,
#      eager, calibrate_grad, cupy) and the asv benchmarks when present;
# and writes one report: REPORT_DIR/gpu_check_report.txt (+ the benchmark's JSON).
set -u
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
REPORT_DIR="${1:-${OUT:-results}}"
mkdir -p "$REPORT_DIR"
REPORT="$REPORT_DIR/gpu_check_report.txt"
PY="${PYTHON:-python}"
DEVICE=cuda
LOG2D=26
if [ "$DRY" = 1 ]; then DEVICE=cpu; LOG2D=16; fi
: > "$REPORT"
STATUS=0

section() { printf '\n===== %s =====\n' "$1" >> "$REPORT"; }
run_step() {  # run_step NAME SECONDS CMD...: output into the report, exit code recorded
    local name="$1" limit="$2"; shift 2
    section "$name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" >> "$REPORT" 2>&1
    local rc=$?
    printf -- '--> %s: exit %d after %ds\n' "$name" "$rc" "$((SECONDS - start))" >> "$REPORT"
    if [ "$rc" -ne 0 ]; then STATUS=1; fi
    return 0
}

section "machine"
{
    date -u
    uname -a
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' 2>&1
    "$PY" -c 'import cupy; print("cupy", cupy.__version__)' 2>&1 || true
    echo "dry run: $DRY"
} >> "$REPORT"

if [ "$DRY" = 1 ]; then
    run_step "install (dry run: pip check only)" 60 "$PY" -m pip --version
else
    run_step "install without network" 120 env PIP_NO_INDEX=1 \
        "$PY" -m pip install --no-deps --no-build-isolation --no-index -e .
fi

if [ "$DRY" = 1 ]; then
    run_step "backend tests (dry run: CPU cases)" 120 "$PY" -m pytest tests/backends -q -x -m "not slow"
else
    run_step "CUDA test cases" 180 "$PY" -m pytest -m cuda -q -rs tests
fi

if "$PY" -m bogc_ref.cli verify --help > /dev/null 2>&1; then
    run_step "bogc-ref verify" 120 "$PY" -m bogc_ref.cli verify --backend all --device "$DEVICE"
else
    section "bogc-ref verify"
    echo "skipped: the verify sub-command is not available in this checkout" >> "$REPORT"
fi

run_step "GPU calibrate bandwidth" 150 "$PY" benchmarks/gpu_calibrate_bandwidth.py \
    --device "$DEVICE" --log2d "$LOG2D" --json "$REPORT_DIR/gpu_calibrate_bandwidth.json"

if [ -f benchmarks/asv.conf.json ] && command -v asv > /dev/null 2>&1 && [ "$DRY" = 0 ]; then
    run_step "asv benchmarks (quick)" 90 asv run --python=same --quick \
        --config benchmarks/asv.conf.json --bench calibrate
else
    section "asv benchmarks"
    echo "skipped: asv or benchmarks/asv.conf.json absent (or dry run)" >> "$REPORT"
fi

section "summary"
echo "overall status: $STATUS (0 = every step exited 0)" >> "$REPORT"
echo "report: $REPORT"
exit "$STATUS"
