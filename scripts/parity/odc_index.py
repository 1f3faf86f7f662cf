"""Index a product's outputs into an Open Data Cube and load them back.

Usage: odc_index.py DB_URL PRODUCT_DEFINITION DATASET_DOC...

With datacube's own commands (`datacube product add`, `datacube dataset add
--ignore-lineage`: the inputs are not in this index), then for every dataset and band,
`datacube.Datacube.load` on the dataset's own grid, compared with the COG read directly
with rasterio: pixel-identical (NaN equal to NaN). Prints one JSON line (datasets, bands,
pixels compared) and exits 1, naming each difference, if any. Runs in .venv-odc-stats
against an index `scripts/odc-index.sh start` made.
"""

import json
import os
import subprocess
import sys

import numpy as np
import rasterio
import yaml
from odc.geo.geobox import GeoBox


def main():
    url, definition, docs = sys.argv[1], sys.argv[2], sys.argv[3:]
    env = {**os.environ, "ODC_DEFAULT_DB_URL": url, "ODC_DEFAULT_INDEX_DRIVER": "postgres"}
    os.environ.update(env)
    datacube_cli = os.path.join(os.path.dirname(sys.executable), "datacube")
    for args in (["product", "add", definition], ["dataset", "add", "--ignore-lineage", *docs]):
        done = subprocess.run([datacube_cli, *args], env=env, capture_output=True, text=True)
        if done.returncode != 0 or "ERROR" in done.stderr:
            sys.exit(f"datacube {' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")

    import datacube

    dc = datacube.Datacube(app="stratus-odc-index-test")
    failures, counts = [], {"datasets": 0, "bands": 0, "pixels": 0}
    for doc in docs:
        with open(doc) as f:
            meta = yaml.safe_load(f)
        ds = dc.index.datasets.get(meta["id"])
        if ds is None:
            failures.append(f"{doc}: dataset {meta['id']} is not in the index after `datacube dataset add`")
            continue
        counts["datasets"] += 1
        bands = list(meta["measurements"])
        # The load's grid: the tile's own, as its first band's COG gives it.
        first = os.path.join(os.path.dirname(doc), meta["measurements"][bands[0]]["path"])
        with rasterio.open(first) as src:
            grid = GeoBox((src.height, src.width), src.transform, src.crs.to_wkt())
        loaded = dc.load(datasets=[ds], measurements=bands, like=grid)
        for band in bands:
            path = os.path.join(os.path.dirname(doc), meta["measurements"][band]["path"])
            with rasterio.open(path) as src:
                want = src.read(1)
            got = loaded[band].values[0]
            counts["bands"] += 1
            counts["pixels"] += want.size
            if got.shape != want.shape or got.dtype != want.dtype:
                failures.append(f"{path}: datacube.load gives {got.dtype}{got.shape}, the COG {want.dtype}{want.shape}")
            elif not np.array_equal(got, want, equal_nan=np.issubdtype(want.dtype, np.floating)):
                differ = int(np.sum(got != want))
                failures.append(f"{path}: {differ} pixels differ between datacube.load and the COG")
    print(json.dumps({**counts, "failures": len(failures)}))
    for f in failures:
        print(f, file=sys.stderr)
    sys.exit(1 if failures or not counts["datasets"] else 0)


if __name__ == "__main__":
    main()
