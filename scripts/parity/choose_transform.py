"""odc-stats' own choice of coordinate operation (`odc.stats.io.choose_transform_path`),
for comparing with Stratus' (shared/raster/src/crs_operation.rs).

Usage: choose_transform.py SRC_CRS DST_CRS [--code AUTHORITY:CODE] [--aoi W S E N]

Prints one JSON line: `operation` (the PROJ string odc-stats hands GDAL, or null for
GDAL's default, or the error odc-stats raises as `error`) and `codes`, the
transformation steps' AUTHORITY:CODE of every candidate pyproj's TransformerGroup finds
(what a transform_code can name). Runs in .venv-odc-stats.
"""

import argparse
import json

from odc.stats.io import choose_transform_path
from pyproj import transformer
from pyproj.aoi import AreaOfInterest

ap = argparse.ArgumentParser()
ap.add_argument("src")
ap.add_argument("dst")
ap.add_argument("--code")
ap.add_argument("--aoi", nargs=4, type=float)
a = ap.parse_args()
out = {}
try:
    chosen = choose_transform_path(a.src, a.dst, a.code, a.aoi)
    out["operation"] = chosen.get("COORDINATE_OPERATION")
except ValueError as e:
    out["error"] = str(e)
group = transformer.TransformerGroup(a.src, a.dst, area_of_interest=AreaOfInterest(*a.aoi) if a.aoi else None)
codes = []
for t in group.transformers:
    for step in json.loads(t.to_json()).get("steps", []):
        if step.get("type", "") == "Transformation" and "id" in step:
            codes.append(f"{step['id']['authority']}:{step['id']['code']}")
out["codes"] = codes
print(json.dumps(out))
