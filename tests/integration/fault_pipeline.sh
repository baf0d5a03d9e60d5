#!/usr/bin/env bash
# A pipeline for fault tests: recordings named HANG* hang (with a child), EXIT3* fail at stage 5,
# every other recording runs the normal simulator.
set -u
rid=$(basename "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
case "$rid" in
  HANG*)
    echo "PIPELINE event=stage_start stage=s0_detection index=1 total=8"
    sleep 600 &
    wait
    ;;
  EXIT3*) PIPELINE_FAIL_AT=s4_classification exec "$root/simulate_pipeline.sh" "$@" ;;
  *) exec "$root/simulate_pipeline.sh" "$@" ;;
esac
