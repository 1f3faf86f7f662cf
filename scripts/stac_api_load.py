"""Load STAC Collections and items into a pgstac database (scripts/stac-api.sh load).

    stac_api_load.py DSN FILE...

FILE: a Collection, an item, an ItemCollection, or NDJSON of items. Collections are loaded
first; a collection that items name but no file gives is made minimal (whole-world
extent), as a catalogue's owner would have created it. Loading is an upsert, so loading
the same files twice (or an item twice) leaves one copy. Prints how many collections and items it loaded.
"""

import json
import sys

from pypgstac.db import PgstacDB
from pypgstac.load import Loader, Methods


def documents(path):
    with open(path) as f:
        text = f.read()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if doc.get("type") == "FeatureCollection":
        return doc.get("features", [])
    return [doc]


def minimal_collection(cid):
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": cid,
        "description": f"{cid} (made by the test loader)",
        "license": "proprietary",
        "links": [],
        "extent": {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [[None, None]]},
        },
    }


def main():
    dsn, paths = sys.argv[1], sys.argv[2:]
    collections, items = {}, {}
    for p in paths:
        for d in documents(p):
            if d.get("type") == "Collection":
                collections[d["id"]] = d
            elif d.get("type") == "Feature":
                # An eo3 item without a collection (DEA's) is served in its product's
                # collection, as DEA's own STAC API (Explorer) does.
                if not d.get("collection") and d.get("properties", {}).get("odc:product"):
                    d["collection"] = d["properties"]["odc:product"]
                if not d.get("collection"):
                    sys.exit(f"stac_api_load: item {d.get('id')} in {p} names no collection")
                # An item given twice is loaded once (a catalogue holds one copy).
                items[(d["collection"], d["id"])] = d
            else:
                sys.exit(f"stac_api_load: {p}: not a Collection or item: type {d.get('type')!r}")
    items = list(items.values())
    for i in items:
        collections.setdefault(i["collection"], minimal_collection(i["collection"]))
    with PgstacDB(dsn=dsn) as db:
        loader = Loader(db=db)
        loader.load_collections(iter(collections.values()), insert_mode=Methods.upsert)
        loader.load_items(iter(items), insert_mode=Methods.upsert)
    print(f"loaded {len(collections)} collection(s), {len(items)} item(s)")


if __name__ == "__main__":
    main()
