"""Run one of odc-stats' own plugins on a small stack, as odc-stats runs it.

Usage: odc_stats_plugins.py SPEC.json OUT_DIR

SPEC.json (written by tests/odc_stats_plugins.rs):
  {"plugin": "gm-s2", "plugin_config": {...}, "times": ["2021-01-05T00:00:00", ...],
   "bands": {"B02": {"file": "B02.npy", "nodata": 0, "flags": null}, "SCL": {..., "flags": "scl"}}}
Each band file is a (time, y, x) array in the band's stored type. The mask bands carry
the `flags_definition` their ODC products declare, since odc-stats resolves class names
through it.

As odc-stats' loader does (odc.stats.io.load_with_native_transform, on inputs already on
the output grid): the plugin's native_transform over the stack, its fuser per solar day
(one dataset per day here), then reduce. Every output variable is written to
OUT_DIR/{name}.npy.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from odc.stats.plugins import import_all, resolve

warnings.filterwarnings("ignore", category=FutureWarning)

SCL_CLASSES = [
    "no data", "saturated or defective", "dark area pixels", "cloud shadows", "vegetation",
    "bare soils", "water", "unclassified", "cloud medium probability",
    "cloud high probability", "thin cirrus", "snow or ice",
]
FMASK_CLASSES = ["nodata", "valid", "cloud", "shadow", "snow", "water"]


def _enum(name, classes):
    return {name: {"bits": list(range(8)), "values": {str(i): c for i, c in enumerate(classes)}}}


def _qa_pixel():
    """USGS Collection 2 QA_PIXEL as its ODC product definitions declare it."""
    conf = {"0": "not_high_confidence", "1": "high_confidence"}
    levels = {"0": "none", "1": "low", "2": "medium", "3": "high"}
    levels_reserved = {"0": "none", "1": "low", "2": "reserved", "3": "high"}
    return {
        "nodata": {"bits": 0, "values": {"0": False, "1": True}},
        "dilated_cloud": {"bits": 1, "values": {"0": "not_dilated", "1": "dilated"}},
        "cirrus": {"bits": 2, "values": conf},
        "cloud": {"bits": 3, "values": conf},
        "cloud_shadow": {"bits": 4, "values": conf},
        "snow": {"bits": 5, "values": conf},
        "clear": {"bits": 6, "values": {"0": False, "1": True}},
        "water": {"bits": 7, "values": {"0": "land_or_cloud", "1": "water"}},
        "cloud_confidence": {"bits": [8, 9], "values": levels},
        "cloud_shadow_confidence": {"bits": [10, 11], "values": levels_reserved},
        "snow_ice_confidence": {"bits": [12, 13], "values": levels_reserved},
        "cirrus_confidence": {"bits": [14, 15], "values": levels_reserved},
    }


FLAGS = {"scl": _enum("qa", SCL_CLASSES), "fmask": _enum("fmask", FMASK_CLASSES), "qa_pixel": _qa_pixel()}


def load(spec_path: Path) -> xr.Dataset:
    spec = json.loads(spec_path.read_text())
    times = pd.to_datetime(spec["times"])
    ds = None
    for name, band in spec["bands"].items():
        data = np.load(spec_path.parent / band["file"])
        t, h, w = data.shape
        coords = {"time": times, "y": -10.0 * np.arange(h), "x": 10.0 * np.arange(w)}
        attrs = {"nodata": band["nodata"], "units": "1"}
        if band.get("flags"):
            attrs["flags_definition"] = FLAGS[band["flags"]]
        da = xr.DataArray(data, dims=("time", "y", "x"), coords=coords, attrs=attrs, name=name)
        ds = da.to_dataset() if ds is None else ds.assign({name: da})
    return ds, spec


def main():
    spec_path, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    ds, spec = load(spec_path)
    import_all()
    plugin = resolve(spec["plugin"])(**spec["plugin_config"])
    xx = plugin.native_transform(ds)
    xx = xx.groupby("time").map(plugin.fuser)
    result = plugin.reduce(xx.chunk({"time": -1})).compute()
    for name, var in result.data_vars.items():
        np.save(out / f"{name}.npy", var.values.astype("float64"))
    print(json.dumps({"plugin": spec["plugin"], "outputs": sorted(result.data_vars)}))


if __name__ == "__main__":
    main()
