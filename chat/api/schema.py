"""The OpenAPI document says every error the API can answer.

Each view declares the answers of its own rules; the errors that any route can
give (protocol.md: 400 for bad input, 401 without a valid token, 403, 404, and
429 when throttled) are added here, in the `Error` shape, to every operation
that does not declare them, so that a client generated from the document, and
schemathesis (tests/security/test_openapi.py), expect what the server sends.
Registered in SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"].
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.hooks import postprocess_schema_enums

COMMON_ERRORS = {
    "400": "Bad input: what is wrong with each field is in `fields`",
    "401": "No valid token (or wrong credentials)",
    "403": "Not allowed",
    "404": "No such object, or not one the caller may see",
    "429": "Too many requests: try again later",
}
ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
# DRF trims strings (str.strip) and refuses NUL characters, so a field that
# must not be blank must hold something other than whitespace, and no NUL.
# Python's strip also takes U+001C..U+001F and U+0085, which some regex
# engines' \s does not: named, so every engine reads the same rule.
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000\\u001c-\\u001f\\u0085][^\\u0000]*$"

# Request bodies whose serializer refuses {} ("give at least one of ...").
AT_LEAST_ONE_FIELD = {"RoomUpdate"}


def _request_components(result: dict[str, Any]) -> set[str]:
    """Components that are request bodies (the `...In` serializers)."""
    names = set()
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for body in operation.get("requestBody", {}).get("content", {}).values():
                ref = body.get("schema", {}).get("$ref", "")
                if ref.startswith("#/components/schemas/"):
                    names.add(ref.rsplit("/", 1)[1])
    return names


def add_common_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result = postprocess_schema_enums(result, generator, request=request, public=public)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            ref = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if ref.get("$ref", "").rsplit("/", 1)[-1] in AT_LEAST_ONE_FIELD:
                operation["requestBody"]["required"] = True
            responses = operation.setdefault("responses", {})
            for status, description in COMMON_ERRORS.items():
                responses.setdefault(status, {"description": description, "content": ERROR_BODY})
    components = result.get("components", {}).get("schemas", {})
    requests = _request_components(result)
    for name, component in components.items():
        if name not in requests:
            # ENFORCE_NON_BLANK_FIELDS marks every non-blank CharField, output
            # serializers' too; but an answer may carry "" (a room's topic).
            _drop_min_length(component)
            continue
        for field in component.get("properties", {}).values():
            plain = field.get("type") == "string" and not {"enum", "format", "pattern", "readOnly"} & field.keys()
            if plain and field.get("minLength") == 1:
                field["pattern"] = NOT_BLANK
        if name in AT_LEAST_ONE_FIELD:
            component["minProperties"] = 1
    return result


def _drop_min_length(schema: Any) -> None:
    if isinstance(schema, dict):
        if schema.get("minLength") == 1:
            del schema["minLength"]
        for value in schema.values():
            _drop_min_length(value)
    elif isinstance(schema, list):
        for value in schema:
            _drop_min_length(value)
