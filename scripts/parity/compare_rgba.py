"""Compare a tile's RGBA preview band with odc-algo's own (`to_rgba_np`, what odc-stats
writes as `_rgba.tif`) made from the same three band COGs.

Usage: compare_rgba.py RGBA.tif RED.tif GREEN.tif BLUE.tif CLAMP_JSON
CLAMP_JSON: the clamp as odc-stats takes it, e.g. `3000` or `[1.0, 3000.0]`.

Prints one JSON line: pixels, pixels identical in all four bands, the bands' colour
interpretations and whether `rio cogeo validate` accepts the file. Runs in
.venv-odc-stats (scripts/odc-stats-venv.sh install).
"""

import json
import sys

import numpy as np
import rasterio
from odc.algo._rgba import to_rgba_np
from rio_cogeo.cogeo import cog_validate

rgba_path, red, green, blue, clamp = sys.argv[1:6]
clamp = json.loads(clamp)
clamp = tuple(clamp) if isinstance(clamp, list) else (0, clamp)
planes = []
for path in (red, green, blue):
    with rasterio.open(path) as src:
        planes.append(src.read(1))
        if path == red:
            nodata = src.nodata
with rasterio.open(rgba_path) as src:
    ours = np.moveaxis(src.read(), 0, -1)
    colours = [c.name for c in src.colorinterp]
theirs = to_rgba_np(*planes, nodata, clamp)
same = int((ours == theirs).all(axis=-1).sum())
valid, errors, _ = cog_validate(rgba_path, quiet=True)
print(json.dumps({"pixels": int(np.prod(ours.shape[:2])), "identical": same, "colours": colours,
                  "cog_valid": bool(valid), "cog_errors": errors,
                  "opaque": int((ours[..., 3] == 255).sum())}))
