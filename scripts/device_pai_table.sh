#!/usr/bin/env bash
# The CIFAR-10 pruning-at-initialization table (suite `pai-gpu`: ResNet-20, OpenLTH's 160-epoch recipe; dense,
# random-ERK, magnitude-init, SNIP, GraSP, SynFlow at 90 and 98 %) on a machine that has torch and no Ray or
# MLflow: the trials run as plain concurrent processes on one device and each result is appended to a runs
# bundle. Bring the bundle back and load it where the store is:  sparsebench import <bundle> && make leaderboard
#
#   scripts/device_pai_table.sh                      # on the GPU machine, from the repository root
#   DEVICE=cpu PROFILE=quick WORKERS=2 METHODS="dense snip" SPARSITIES=0.9 scripts/device_pai_table.sh   # a CPU try
#
# On the device tool: copy the data into an ignored folder of the checkout first
#   mkdir -p .data && cp -r ../shared/data/cifar10-jpeg .data/ && echo /.data/ >> .git/info/exclude
# then run `scripts/device_pai_table.sh` with carry [".data"] and timeout_s 600; the bundle comes back under
# $OUT/bundle: `sparsebench import <files_at>/bundle && sparsebench export --current && make leaderboard`.
#
# SUITE=reproduce-gpu runs the reproduction rows beyond a CPU hour (SET's MLP for 1,000 epochs on MNIST: copy
# ../shared/data/MNIST into .data/ too): 550k small steps a trial, estimated at 10-20 minutes on a GPU — longer
# than the device tool's 10-minute command, so for a GPU machine of your own (BUDGET=0 disables the limit).
#
# Resumes: trials the bundle holds are skipped, so it can be run in parts (BUDGET seconds each; the trials
# running when the budget ends are not recorded and run again next time).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
SUITE=${SUITE:-pai-gpu}        # or reproduce-gpu: SET's MLP for 1,000 epochs (MNIST: carry .data/MNIST)
WORKERS=${WORKERS:-11}          # all 11 trials at once on one GPU (one CPU thread each)
BUNDLE=${BUNDLE:-${OUT:-runs-device}/bundle}
BUDGET=${BUDGET:-540}           # seconds: under the device tool's 10-minute command limit
export SPARSEBENCH_DATA_ROOT=${SPARSEBENCH_DATA_ROOT:-$PWD/.data}   # cifar10-jpeg/cifar10-jpeg.tar.gz, carried
export SPARSEBENCH_CACHE=${SPARSEBENCH_CACHE:-${TMPDIR:-/tmp}/sparsebench-cache}
export PYTHONUNBUFFERED=1
grid=(--suite "$SUITE")
[ -n "${PROFILE:-}" ] && grid+=(--profile "$PROFILE")
[ -n "${METHODS:-}" ] && grid+=(--method $METHODS)
[ -n "${SPARSITIES:-}" ] && grid+=(--sparsity $SPARSITIES)
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
status=0
timeout --signal=INT "$BUDGET" python -m sparsebench.cli run "${grid[@]}" --device "$DEVICE" \
    --bundle "$BUNDLE" --workers "$WORKERS" --threads 1 || status=$?
wc -l "$BUNDLE"/*.jsonl 2>/dev/null || true
exit $(( status == 124 || status == 130 ? 0 : status ))   # out of budget: what finished is in the bundle
