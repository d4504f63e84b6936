"""Validates alerts against OCSF Detection Finding (class 2004) with an independent reader.

The models are pydantic-ocsf's, generated from the OCSF schema of each version it bundles. They
allow unknown attributes, so this also walks every validated object and refuses any attribute
the schema does not define (outside `unmapped`, where OCSF puts what it has no attribute for).

Usage: validate_ocsf.py FILE.jsonl [VERSION …] → prints {"valid": n, "errors": [...]} as JSON.
"""

import importlib
import json
import sys

from pydantic import BaseModel


def extras(obj, path):
    """Attribute paths of `obj` that its OCSF object does not define."""
    found = []
    if isinstance(obj, BaseModel):
        for key in (obj.model_extra or {}):
            found.append(f"{path}.{key}")
        for name in type(obj).model_fields:
            if name == "unmapped":
                continue
            found += extras(getattr(obj, name), f"{path}.{name}")
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            found += extras(item, f"{path}[{i}]")
    return found


def main():
    path, versions = sys.argv[1], sys.argv[2:] or ["1.1.0"]
    records = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    errors, valid = [], 0
    for version in versions:
        events = importlib.import_module(f"ocsf.v{version.replace('.', '_')}.events")
        for i, record in enumerate(records):
            try:
                finding = events.DetectionFinding.model_validate(record)
            except Exception as e:  # pydantic's ValidationError, with every failed field
                errors.append(f"{version} record {i}: {e}")
                continue
            unknown = extras(finding, "$")
            fixed = {k: record.get(k) for k in ("class_uid", "category_uid", "activity_id", "type_uid")}
            if fixed != {"class_uid": 2004, "category_uid": 2, "activity_id": 1, "type_uid": 200401}:
                errors.append(f"{version} record {i}: not a Detection Finding: Create: {fixed}")
            elif unknown:
                errors.append(f"{version} record {i}: attributes OCSF {version} does not define: {unknown}")
            else:
                valid += 1
    print(json.dumps({"records": len(records), "valid": valid, "errors": errors[:20]}))


if __name__ == "__main__":
    main()
