"""A small JSON Schema (draft 2020-12) validator for the keywords recipes/schema.json uses.

Used only when the ``jsonschema`` package is not installed (a bare GB10 host running
``scripts/launch``). A keyword it does not know raises NotImplementedError, so the schema
cannot grow past what this validator checks without a test noticing.
"""

import re

ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "default", "examples"}
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
KNOWN = ANNOTATIONS | {
    "type", "properties", "required", "additionalProperties", "enum", "const", "pattern",
    "minLength", "minimum", "maximum", "exclusiveMinimum", "items", "minItems",
    "uniqueItems", "oneOf", "minProperties", "maxProperties", "propertyNames", "$ref",
    "dependentRequired",
}  # fmt: skip


def _resolve(ref, root):
    if not ref.startswith("#/"):
        raise NotImplementedError(f"$ref {ref!r}")
    node = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def iter_errors(value, schema, root=None, loc="(top)"):
    """Yield (location, message) for each violation."""
    root = root if root is not None else schema
    unknown = set(schema) - KNOWN
    if unknown:
        raise NotImplementedError(f"schema keywords {sorted(unknown)}")
    if "$ref" in schema:
        yield from iter_errors(value, _resolve(schema["$ref"], root), root, loc)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[t](value) for t in types):
            yield loc, f"{value!r} is not of type {' or '.join(types)}"
            return
    if "const" in schema and value != schema["const"]:
        yield loc, f"{schema['const']!r} was expected"
    if "enum" in schema and value not in schema["enum"]:
        yield loc, f"{value!r} is not one of {schema['enum']}"
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            yield loc, f"{value!r} does not match {schema['pattern']!r}"
        if len(value) < schema.get("minLength", 0):
            yield loc, f"{value!r} is too short"
    if TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            yield loc, f"{value} is less than the minimum of {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            yield loc, f"{value} is greater than the maximum of {schema['maximum']}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            yield loc, f"{value} is less than or equal to {schema['exclusiveMinimum']}"
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            yield loc, f"{value!r} should be non-empty"
        if schema.get("uniqueItems") and len({repr(v) for v in value}) != len(value):
            yield loc, f"{value!r} has non-unique elements"
        if "items" in schema:
            for i, item in enumerate(value):
                sub = f"{loc}/{i}" if loc != "(top)" else str(i)
                yield from iter_errors(item, schema["items"], root, sub)
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                yield loc, f"{key!r} is a required property"
        for key, needs in schema.get("dependentRequired", {}).items():
            if key in value:
                for other in needs:
                    if other not in value:
                        yield loc, f"{other!r} is a dependency of {key!r}"
        if len(value) < schema.get("minProperties", 0):
            yield loc, "should be non-empty"
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            yield loc, f"has more than {schema['maxProperties']} properties"
        props = schema.get("properties", {})
        for key, item in value.items():
            sub = f"{loc}/{key}" if loc != "(top)" else str(key)
            if "propertyNames" in schema:
                for _, msg in iter_errors(key, schema["propertyNames"], root, sub):
                    yield sub, f"property name {msg}"
            if key in props:
                yield from iter_errors(item, props[key], root, sub)
            elif "additionalProperties" in schema:
                extra = schema["additionalProperties"]
                if extra is False:
                    yield loc, f"additional property {key!r} is not allowed"
                elif isinstance(extra, dict):
                    yield from iter_errors(item, extra, root, sub)
    if "oneOf" in schema:
        matches = sum(
            1 for s in schema["oneOf"] if not any(iter_errors(value, s, root, loc))
        )
        if matches != 1:
            yield loc, f"{value!r} is not valid under exactly one of the given schemas"
