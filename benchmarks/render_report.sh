#!/usr/bin/env bash
# Render a training report.html in headless Chromium (Debian package `chromium`) and save a screenshot,
# to check by eye that the page opens offline and every figure shows.
#   usage: benchmarks/render_report.sh [REPORT_HTML] [OUT_PNG]
#   default: the report of `uv run eoseg demo` (eoseg-demo/runs/demo/report.html) -> report.png
set -euo pipefail
report=$(realpath "${1:-eoseg-demo/runs/demo/report.html}")
out=$(realpath -m "${2:-report.png}")
browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z "$browser" ]]; then
  echo "chromium not found; install it (apt-get install chromium) to render the report" >&2
  exit 2
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# no network: the page must not need any (it is self-contained)
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1280,2400 --screenshot="$out" "file://$report" 2>/dev/null
echo "screenshot of $report -> $out"
