#!/usr/bin/env bash
# The demo: synthetic Sentinel-2 over two africa-60 tiles for 2021, planned and run on
# the embedded store, then a short report of what was made. Re-running reuses the inputs,
# the plan and the finished tiles.
set -euo pipefail
cd "$(dirname "$0")/.."
S=target/release/stratus
OUT=${DEMO_OUT:-demo-out}
RUN=demo_s2_pq-2021--P1Y
started=$(date +%s)

echo "== 1/5 synthetic inputs (24 dates x 2 granules in UTM 34S and 35S)"
$S synth --out "$OUT/inputs" --no-truth

echo "== 2/5 plan: africa-60 tiles 204,57 and 205,57, annual 2021, clear-pixel counts (pq)"
$S save-tasks --input "$OUT/inputs" --grid africa-60 --year 2021 \
    --tile 204,57 --tile 205,57 --plugin pq --product-name demo_s2_pq --location "$OUT/products"

echo "== 3/5 run pq"
$S run "$RUN" --location "$OUT/products" --workers 2

echo "== 4/5 geomedian with MADs (gm-s2) on the same tiles"
$S save-tasks --config scripts/demo-gm-s2.yaml --input "$OUT/inputs" --location "$OUT/products"
$S run demo_s2_gm-2021--P1Y --location "$OUT/products" --workers 2

echo "== 5/5 low-resolution mosaics, previews and run reports"
$S generate-mosaic "$RUN" --location "$OUT/products" --resolution 480
$S generate-mosaic demo_s2_gm-2021--P1Y --location "$OUT/products" --resolution 480

echo
echo "== outputs"
find "$OUT/products/demo_s2_pq" "$OUT/products/demo_s2_gm" -name '*.tif' -o -name '*.stac-item.json' -o -name '*.csv' -o -name '*.geojson' | sort
one=$(find "$OUT/products/demo_s2_pq" "$OUT/products/demo_s2_gm" -name '*_clear.tif' | sort | head -n 1)
echo
echo "gdalinfo $one:"
gdalinfo "$one" | grep -E 'Size is|LAYOUT|COMPRESSION|Overviews' | sed 's/^/  /'
$S status --location "$OUT/products"
echo
echo "demo finished in $(( $(date +%s) - started )) s. Products: $(cd "$OUT/products" && pwd)/{demo_s2_pq,demo_s2_gm}"
echo "Look at: $(cd "$OUT/products" && pwd)/demo_s2_gm/0.1.0/_runs/demo_s2_gm-2021--P1Y/mosaic/demo_s2_gm_preview.png"
echo "Reports: $(cd "$OUT/products" && pwd)/demo_s2_{pq,gm}/*/_runs/*/report.html"
