#!/usr/bin/env bash
# Stand-in for the GPU sign-detection pipeline: same arguments, same stdout contract, same outputs.
#   usage: simulate_pipeline.sh <recording_dir> <output_dir>
# Each stage prints `PIPELINE event=stage_start ...` and `PIPELINE event=stage_end ...` lines
# (the contract in README.md), sleeps PIPELINE_STAGE_SECONDS (default 5) and writes its output
# under <output_dir>/<stage>/. The last stage writes supports.csv and signs.csv with positions
# sampled along the recording's own location/<id>_loc_cleaned.csv track.
# PIPELINE_FAIL_AT=<stage> makes that stage fail (exit 3), to exercise failure handling.
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: $0 <recording_dir> <output_dir>" >&2
  exit 2
fi
recording_dir=${1%/}
output_dir=${2%/}
recording_id=$(basename "$recording_dir")
stage_seconds=${PIPELINE_STAGE_SECONDS:-5}
stages=(s0_detection s1_small_sign_filter s2_tracking s3_small_track_filter s4_classification
        s5_frames_gps_coordinates_extraction s6_localization s7_export_csv)
total=${#stages[@]}

track=$(find "$recording_dir" -mindepth 4 -maxdepth 4 -path "*/location/${recording_id}_loc_cleaned.csv" \
        -not -path "$recording_dir/results/*" | head -n 1)
if [ -z "$track" ]; then
  echo "error: no location/${recording_id}_loc_cleaned.csv under $recording_dir" >&2
  exit 4
fi
seed=$(printf '%s' "$recording_id" | cksum | cut -d' ' -f1)

# Emit "index,lat,lon" for up to 24 points spread evenly along the track.
sample_track() {
  awk -F',' -v OFS=',' '
    NR == 1 {
      for (i = 1; i <= NF; i++) {
        h = tolower($i); gsub(/[ \r"\xef\xbb\xbf]/, "", h)
        if (h == "lat" || h == "latitude") lat = i
        if (h == "lon" || h == "lng" || h == "long" || h == "longitude") lon = i
      }
      if (!lat || !lon) { print "no latitude/longitude columns" > "/dev/stderr"; exit 5 }
      next
    }
    {
      gsub(/\r/, "")
      y = $lat + 0; x = $lon + 0
      if ($lat ~ /^[ "]*-?[0-9.]+[ "]*$/ && $lon ~ /^[ "]*-?[0-9.]+[ "]*$/ && (y != 0 || x != 0)) {
        n++; ys[n] = y; xs[n] = x
      }
    }
    END {
      if (n == 0) { print "no GPS points in track" > "/dev/stderr"; exit 6 }
      k = int(n / 10); if (k < 1) k = 1; if (k > 24) k = 24
      for (j = 0; j < k; j++) {
        idx = (k == 1) ? 1 : 1 + int(j * (n - 1) / (k - 1))
        printf "%d,%.7f,%.7f\n", j + 1, ys[idx], xs[idx]
      }
    }' "$track"
}

write_results() {
  local dir=$1 points
  points=$(sample_track)
  awk -F',' -v seed="$seed" -v sup="$dir/supports.csv" -v sig="$dir/signs.csv" '
    BEGIN {
      srand(seed)
      split("R1-1 R2-1 W3-1 R1-2 W1-1 R5-1 W11-2 D3-1", code, " ")
      split("30 24 36 36 30 30 30 24", hin, " ")
      split("30 30 36 36 30 30 30 30", win, " ")
      split("Top Middle Bottom", pos, " ")
      print "ID,Mounting Height,Longitude,Latitude" > sup
      print "ID,Foreign Key,MUTCD Code,Position on the Support,Height (in),Width (in)" > sig
      sign_id = 0
    }
    {
      support = sprintf("SUP-%04d", $1)
      printf "%s,%.2f,%s,%s\n", support, 5 + rand() * 3, $3, $2 > sup
      count = 1 + int(rand() * 2)
      for (s = 1; s <= count; s++) {
        c = 1 + int(rand() * 8); sign_id++
        printf "SGN-%05d,%s,%s,%s,%s,%s\n", sign_id, support, code[c], pos[s], hin[c], win[c] > sig
      }
    }' <<< "$points"
}

for i in "${!stages[@]}"; do
  stage=${stages[$i]}
  index=$((i + 1))
  started=$(date +%s.%N)
  echo "PIPELINE event=stage_start stage=$stage index=$index total=$total"
  echo "[$stage] processing recording $recording_id"
  mkdir -p "$output_dir/$stage"
  sleep "$stage_seconds"
  if [ "${PIPELINE_FAIL_AT:-}" = "$stage" ]; then
    echo "[$stage] error: simulated failure" >&2
    exit 3
  fi
  if [ "$stage" = "s7_export_csv" ]; then
    write_results "$output_dir/$stage"
  else
    printf 'stage=%s\nrecording=%s\nfinished=%s\n' "$stage" "$recording_id" "$(date -u +%FT%TZ)" \
      > "$output_dir/$stage/summary.txt"
  fi
  elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
  echo "PIPELINE event=stage_end stage=$stage index=$index total=$total status=ok elapsed=$elapsed"
done
echo "[done] results in $output_dir/s7_export_csv"
