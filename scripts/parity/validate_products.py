"""Validate a product's outputs with independent tools, offline.

Usage: validate_products.py DIR [--schemas DIR]

DIR: a product's folder, or a catalogue of inputs (`stratus synth`'s).

- STAC: every item, Collection and Catalog (JSON) under OUTPUT_DIR against the STAC
  core JSON schemas pystac bundles, with pystac's validator, and against the extension
  schemas found in --schemas (files named as their URL's host and path, e.g.
  `stac-extensions.github.io/projection/v1.1.0/schema.json`, and so are the schemas
  those refer to, e.g. `proj.org/schemas/v0.5/projjson.schema.json`). Nothing is fetched
  from the network: an extension without a schema here is listed in the report as not
  validated, and a schema referring to one missing here fails. Each item's `collection` link must lead to a Collection file
  whose id is the item's `collection`.
- COGs: every GeoTIFF asset with `rio cogeo validate` (rio-cogeo's `cog_validate`).

Prints one JSON line (what was checked) and exits 1, naming each failure, if any fails.
Runs in .venv-odc-stats (scripts/odc-stats-venv.sh install).
"""

import argparse
import json
import os
import sys
from urllib.parse import urlparse

import pystac
from pystac.validation import JsonSchemaSTACValidator
from pystac.validation.stac_validator import GetSchemaError
from rio_cogeo.cogeo import cog_validate



class OfflineValidator(JsonSchemaSTACValidator):
    """pystac's validator with its bundled core schemas and vendored extension schemas
    only: a schema it does not have is an error, not a download."""

    def __init__(self, schemas_dir):
        super().__init__()
        self.schemas_dir = schemas_dir

    def has_schema(self, schema_uri):
        try:
            self._get_schema(schema_uri)
            return True
        except GetSchemaError:
            return False

    def _get_schema(self, schema_uri):
        u = urlparse(schema_uri)
        if schema_uri not in self.schema_cache and u.scheme in ("http", "https") and self.schemas_dir:
            path = os.path.join(self.schemas_dir, u.netloc, u.path.lstrip("/"))
            if os.path.isfile(path):
                with open(path) as f:
                    self.schema_cache[schema_uri] = json.load(f)
        if schema_uri not in self.schema_cache:
            raise GetSchemaError(schema_uri, "not bundled with pystac nor vendored (validation runs offline)")
        return self.schema_cache[schema_uri]


def local_path(href, base):
    u = urlparse(href)
    if u.scheme in ("", "file"):
        p = u.path if u.scheme == "file" else href
        return os.path.normpath(p if os.path.isabs(p) else os.path.join(os.path.dirname(base), p))
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--schemas", default=None)
    a = ap.parse_args()
    validator = OfflineValidator(a.schemas)
    failures, counts = [], {"items": 0, "collections": 0, "catalogs": 0, "cogs": 0}
    unvalidated = set()
    docs = []
    for root, _, files in os.walk(a.out):
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            path = os.path.join(root, name)
            try:
                with open(path) as f:
                    d = json.load(f)
            except ValueError:
                continue
            if isinstance(d, dict) and "stac_version" in d and d.get("type") in ("Feature", "Collection", "Catalog"):
                docs.append(path)
    collections = {}
    for path in docs:
        with open(path) as f:
            d = json.load(f)
        kind = {
            "Collection": pystac.STACObjectType.COLLECTION,
            "Catalog": pystac.STACObjectType.CATALOG,
        }.get(d["type"], pystac.STACObjectType.ITEM)
        try:
            validator.validate_core(d, kind, d["stac_version"], href=path)
            for ext in d.get("stac_extensions", []):
                if validator.has_schema(ext):
                    validator.validate_extension(d, kind, d["stac_version"], ext, href=path)
                else:
                    unvalidated.add(ext)
        except Exception as e:  # the validator's own error names the schema and field
            failures.append(f"{path}: {e}")
            continue
        if d["type"] == "Collection":
            counts["collections"] += 1
            collections[os.path.normpath(path)] = d["id"]
        elif d["type"] == "Catalog":
            counts["catalogs"] += 1
    for path in docs:
        with open(path) as f:
            d = json.load(f)
        if d.get("type") != "Feature":
            continue
        counts["items"] += 1
        links = [l for l in d.get("links", []) if l.get("rel") == "collection"]
        target = local_path(links[0]["href"], path) if links else None
        if d.get("collection") and (target is None or collections.get(target) != d["collection"]):
            failures.append(f"{path}: its collection link {links and links[0]['href']} does not lead to Collection '{d['collection']}'")
        for key, asset in d.get("assets", {}).items():
            if "geotiff" not in asset.get("type", ""):
                continue
            tif = local_path(asset["href"], path)
            if tif is None:
                continue
            valid, errors, _ = cog_validate(tif, quiet=True)
            counts["cogs"] += 1
            if not valid:
                failures.append(f"{tif}: not a valid COG: {errors}")
    print(json.dumps({**counts, "failures": len(failures), "extensions_without_schema": sorted(unvalidated)}))
    for f in failures:
        print(f, file=sys.stderr)
    sys.exit(1 if failures or not counts["items"] else 0)


if __name__ == "__main__":
    main()
