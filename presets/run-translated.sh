#!/usr/bin/env bash
# The larger run on translated digits (presets/translated.yaml), resumable: run it again after an interruption
# and `dvc exp run` skips the finished stages while an interrupted training resumes from its last epoch.
# Each segment's start, machine (CPU model, instruction set, torch build) and end go to
# results/translated-segments.log (untracked by DVC) for RUN.md's wall time and machines.
set -uo pipefail
cd "$(dirname "$0")/.."
log=results/translated-segments.log
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD)" >> "$log"
# what the floats depend on beyond the inputs (the same inputs on another CPU model train to other bytes)
.venv/bin/python -c 'import json; from pcn.tracking.runs import host_tags; print("machine", json.dumps(host_tags()))' \
    >> "$log"
start=$(date +%s)
nice -n "${PCN_NICE:-0}" .venv/bin/pcn preset presets/translated.yaml -- -n translated
status=$?
echo "end $(date -u +%FT%TZ) status $status seconds $(( $(date +%s) - start ))" >> "$log"
exit $status
