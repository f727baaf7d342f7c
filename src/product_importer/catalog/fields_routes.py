"""The custom fields API: every role reads the definitions, admins change them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from product_importer.auth.dependencies import Admin, AuditLog, DbSession, Viewer
from product_importer.catalog import custom_fields, field_types
from product_importer.catalog.schemas import single_line
from product_importer.history import service as history

router = APIRouter(prefix="/api/fields", tags=["fields"])

Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=field_types.LABEL_MAX_LENGTH),
    AfterValidator(single_line),
]
FieldType = Annotated[
    str,
    StringConstraints(pattern="^(" + "|".join(field_types.TYPES) + ")$"),
]
Choice = Annotated[str, StringConstraints(max_length=1000)]
Choices = Annotated[list[Choice], Field(max_length=5000)]
FieldId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The field's id.")]


class FieldCreate(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={"examples": [{"key": "price", "label": "Price", "type": "decimal"}]},
    )

    key: Annotated[str, StringConstraints(max_length=200)] = Field(
        description="Lower-case letters, digits and underscores, starting with a letter "
        "(at most 63); not a built-in name such as `sku` or `name`. Cannot be changed."
    )
    label: Label
    type: FieldType = Field(description=", ".join(field_types.TYPES) + ".")
    choices: Choices | None = Field(default=None, description="For `choice` only.")


class FieldUpdate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    label: Label | None = None
    type: FieldType | None = Field(
        default=None, description="Changed only when every stored value converts (else 409)."
    )
    choices: Choices | None = None


class FieldRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    key: str
    label: str
    type: str
    choices: list[str] | None
    created_at: datetime
    updated_at: datetime


class FieldRemoved(BaseModel):
    change_id: int = Field(description="The change set: undo it to bring the field back.")
    products: int = Field(description="Products that had a value.")


_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No field with that id."}}


def _rejected(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc))


@router.get("", summary="List the custom fields")
def list_fields(session: DbSession, _principal: Viewer) -> list[FieldRead]:
    return [FieldRead.model_validate(field) for field in custom_fields.all_fields(session)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Define a custom field",
    responses={409: {"description": "A field with this key exists."}},
)
def create_field(
    session: DbSession, _principal: Admin, body: FieldCreate, audit: AuditLog
) -> FieldRead:
    try:
        field = custom_fields.create(session, body.key, body.label, body.type, body.choices)
    except custom_fields.FieldRejected as exc:
        raise _rejected(exc) from None
    except custom_fields.FieldConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    audit("field.create", f"field:{field.id} {field.key}", {"type": field.type})
    return FieldRead.model_validate(field)


@router.get("/{field_id}", summary="Get a custom field", responses=_NOT_FOUND)
def get_field(session: DbSession, _principal: Viewer, field_id: FieldId) -> FieldRead:
    try:
        return FieldRead.model_validate(custom_fields.get(session, field_id))
    except custom_fields.FieldNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.patch(
    "/{field_id}",
    summary="Rename a field, change its choices or its type",
    responses=_NOT_FOUND
    | {409: {"description": "Some stored values do not convert to the new type or choices."}},
)
def update_field(
    session: DbSession, _principal: Admin, field_id: FieldId, body: FieldUpdate, audit: AuditLog
) -> FieldRead:
    try:
        field = custom_fields.update(session, field_id, body.label, body.type, body.choices)
    except custom_fields.FieldNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except custom_fields.FieldRejected as exc:
        raise _rejected(exc) from None
    except custom_fields.FieldConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    audit(
        "field.update",
        f"field:{field.id} {field.key}",
        {"changed": sorted(body.model_dump(exclude_unset=True))},
    )
    return FieldRead.model_validate(field)


@router.delete(
    "/{field_id}",
    summary="Remove a field and its values",
    description="One change set, which `POST /api/changes/{id}/undo` undoes (the field "
    "comes back with its values).",
    responses=_NOT_FOUND,
)
def remove_field(
    session: DbSession, principal: Admin, field_id: FieldId, audit: AuditLog
) -> FieldRemoved:
    try:
        field = custom_fields.get(session, field_id)
        key = field.key
        change, count = custom_fields.remove(
            session, field_id, history.actor_name(principal.kind, principal.name)
        )
    except custom_fields.FieldNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    audit("field.delete", f"field:{field_id} {key}", {"change_id": change.id, "products": count})
    return FieldRemoved(change_id=change.id, products=count)
