"""The producer's OpenAPI document, built from the same models that validate requests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from poollab import jobs
from poollab.producer.publish import JobRequest
from poollab.settings import Settings

_REF = "#/components/schemas/{model}"


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=_REF)
    schema.pop("$defs", None)
    return schema


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
    }


def document(settings: Settings) -> dict[str, Any]:
    request_schema = _schema(JobRequest)
    request_schema["properties"]["count"]["maximum"] = settings.max_count
    request_schema["properties"]["params"]["description"] = (
        "Keyword arguments of the job kind: "
        + "; ".join(
            f"{name}: {', '.join(kind.params.model_fields) or '-'}"
            for name, kind in jobs.CATALOGUE.items()
        )
        + "; user: the registered callable's keyword arguments (a JSON object)"
    )
    request_schema["properties"]["task"]["description"] = (
        "kind user only: MODULE:FUNCTION of a job registered from POOLLAB_JOBS "
        "(anything else is refused with 422, never imported)"
    )
    schemas: dict[str, Any] = {
        "JobRequest": request_schema,
        "Accepted": {
            "type": "object",
            "required": ["ids"],
            "properties": {"ids": {"type": "array", "items": {"type": "string"}}},
        },
        "Job": {
            "type": "object",
            "required": ["id", "state", "result", "timings"],
            "properties": {
                "id": {"type": "string"},
                "state": {"type": "string"},
                "result": {},
                "timings": {"type": ["object", "null"]},
                "worker": {"type": "object"},
                "error": {"type": "object"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                # the first bad field (kept for clients written before `errors`)
                "field": {"type": ["string", "null"]},
                # every bad field of the request, in order
                "errors": {"type": "array", "items": {"$ref": _REF.format(model="FieldError")}},
                # GET /jobs/{id}: the id that is unknown
                "id": {"type": "string"},
            },
        },
        "FieldError": {
            "type": "object",
            "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
        },
    }
    for name, kind in jobs.CATALOGUE.items():
        schemas[f"{name.capitalize()}Params"] = _schema(kind.params)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Pool Lab producer", "version": "1"},
        "paths": {
            "/jobs": {
                "post": {
                    "summary": "Publish count jobs of one kind to one pool's queue",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": _REF.format(model="JobRequest")}
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Published",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": _REF.format(model="Accepted")}
                                }
                            },
                        },
                        "400": _error("Body is not JSON"),
                        "413": _error("Body too large"),
                        "422": _error(
                            "Invalid request: `errors` lists every bad field with its message, "
                            "`field` names the first. Numbers are strict JSON numbers: `true`, "
                            '`"3"` and (for an integer) `3.0` are refused'
                        ),
                        "503": _error("Broker unavailable; retry after Retry-After seconds"),
                    },
                }
            },
            "/jobs/{id}": {
                "get": {
                    "summary": "A job's state, value and timings",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The job (PENDING: issued, not finished yet)",
                            "content": {
                                "application/json": {"schema": {"$ref": _REF.format(model="Job")}}
                            },
                        },
                        "400": _error("Not a job id"),
                        "404": _error(
                            "No job of this id was issued, or it was issued longer ago than "
                            "results are kept (result_expires) and has no result"
                        ),
                        "503": _error("Broker unavailable"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Ready when the broker answers",
                    "responses": {
                        "200": {"description": "OK"},
                        "503": _error("Broker unavailable"),
                    },
                }
            },
        },
        "components": {"schemas": schemas},
    }
