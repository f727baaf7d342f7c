"""The products API: list and search, create, edit, delete, delete all, export."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    Header,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, StringConstraints

from product_importer.auth.dependencies import (
    Admin,
    AppSettings,
    AuditLog,
    DbSession,
    Editor,
    Viewer,
    get_database,
)
from product_importer.catalog import custom_fields, export, field_filters
from product_importer.catalog import service as catalog_service
from product_importer.catalog.models import CustomField
from product_importer.catalog.schemas import (
    FILTER_MAX_LENGTH,
    DeleteAllJobRead,
    ProductCreate,
    ProductFilters,
    ProductPage,
    ProductRead,
    ProductSort,
    ProductUpdate,
    SortOrder,
    single_line,
)
from product_importer.db import Database
from product_importer.history import service as history

router = APIRouter(prefix="/api/products", tags=["products"])

MAX_ID = 2**63 - 1
MAX_PAGE = 1_000_000


def _filter_text(value: str | None) -> str | None:
    return None if value is None else single_line(value)


_TextCheck = AfterValidator(_filter_text)
ProductId = Annotated[int, Path(ge=1, le=MAX_ID, description="The product's id.")]
IfMatch = Annotated[
    str | None,
    Header(
        max_length=2000,
        description="The ETag you last read; the change is refused with 412 if it is stale.",
    ),
]


def field_definitions(request: Request, session: DbSession) -> dict[str, CustomField]:
    """The defined custom fields by key, read once per request, and only when a parameter
    names one (a field filter or a field sort)."""
    names = request.query_params.keys()
    sort = request.query_params.get("sort", "").removeprefix("-")
    if not field_filters.is_field_parameter(sort) and not any(
        field_filters.is_field_parameter(name) for name in names
    ):
        return {}
    return custom_fields.by_key(session)


Definitions = Annotated[dict[str, CustomField], Depends(field_definitions)]


def invalid_parameter(exc: field_filters.FieldFilterInvalid) -> RequestValidationError:
    """A 422 shaped like FastAPI's own for a bad query parameter, naming it."""
    return RequestValidationError(
        [{"loc": ("query", exc.parameter), "msg": str(exc), "type": "value_error"}]
    )


FIELD_FILTERS_DOC = (
    "Custom fields filter with parameters named after them (see `GET /api/fields`): "
    "`field.<key>=v` equals (text, url and choice in any letter case; a list contains the "
    "element, or every element of `a,b`), `field.<key>.contains=v` (text, url, choice: "
    "contains the text, any letter case), `field.<key>.gt|gte|lt|lte=v` (integer, decimal, "
    "date), `field.<key>.set=true|false` (has a value or not, any type). Values are read as "
    "an imported cell of the field's type is (`1,299.50`, `2026-03-01`, `yes`). At most "
    f"{field_filters.MAX_FIELD_FILTERS} field filters; an unknown key, an operator the type "
    "does not take or a value it cannot read is a 422 naming the parameter."
)


def product_filters(
    request: Request,
    definitions: Definitions,
    sku: Annotated[
        str | None,
        Query(
            max_length=FILTER_MAX_LENGTH,
            description="SKU in any letter case: exact (`ABC-123`) or, with a trailing `*`, "
            "a prefix (`ABC*`).",
            examples=["CHAIR-*"],
        ),
        _TextCheck,
    ] = None,
    name: Annotated[
        str | None,
        Query(
            max_length=FILTER_MAX_LENGTH,
            description="Name contains this text (any letter case).",
        ),
        _TextCheck,
    ] = None,
    description: Annotated[
        str | None,
        Query(
            max_length=FILTER_MAX_LENGTH,
            description="Description contains this text (any letter case).",
        ),
        _TextCheck,
    ] = None,
    active: Annotated[bool | None, Query(description="`true` or `false`.")] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=FILTER_MAX_LENGTH,
            description="Free text: every word must appear in the SKU, name or description "
            "(any letter case, anywhere in the text).",
            examples=["oak chair"],
        ),
        _TextCheck,
    ] = None,
) -> ProductFilters:
    try:
        fields = field_filters.parse_filters(definitions, request.query_params.multi_items())
    except field_filters.FieldFilterInvalid as exc:
        raise invalid_parameter(exc) from None
    return ProductFilters(
        sku=sku, name=name, description=description, active=active, q=q, fields=fields
    )


Filters = Annotated[ProductFilters, Depends(product_filters)]

# `sort` is a built-in order or a custom field's; the field is looked up in `product_sort`.
FieldSortName = Annotated[str, StringConstraints(pattern=field_filters.SORT_PATTERN, max_length=70)]


def product_sort(
    definitions: Definitions,
    sort: Annotated[
        ProductSort | FieldSortName,
        Query(
            description="Sort order: one of the built-in orders, or `field.<key>` to sort by "
            "a custom field's value (products without one last, in either direction); a "
            "leading `-` for descending. Ties are broken by id.",
            examples=["-updated_at", "field.price", "-field.stock"],
        ),
    ] = ProductSort.SKU,
) -> SortOrder:
    try:
        return field_filters.parse_sort(definitions, sort)
    except field_filters.FieldFilterInvalid as exc:
        raise invalid_parameter(exc) from None


Sort = Annotated[SortOrder, Depends(product_sort)]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No product with that id."}}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Another product has this SKU (in any letter case)."}
}
_STALE: dict[int | str, dict[str, Any]] = {
    412: {"description": "`If-Match` does not match the product's current ETag."}
}


def _actor(principal: Any) -> str:
    return history.actor_name(principal.kind, principal.name)


def _change_header(session: Any, response: Response) -> None:
    """Name the edit's change set, so whoever made it can undo it (none when nothing changed)."""
    change_id = catalog_service.edit_change_id(session)
    if change_id is not None:
        response.headers["X-Change-Id"] = str(change_id)


def _with_etag(response: Response, product: Any) -> ProductRead:
    response.headers["ETag"] = catalog_service.etag(product)
    return ProductRead.model_validate(product)


@router.get(
    "",
    summary="List and search products",
    description=(
        "Filters combine with AND. `name`, `description` and `q` match substrings in any "
        "letter case using trigram indexes (terms of one or two characters scan instead, "
        "which is slower on a large catalogue). `sort` is one of the listed fields, `-` for "
        "descending; `created_at` sorts by creation order. `total` is exact up to the "
        "exact-count limit (1,000 matches by default), and up to five times that unless a "
        "sample of the catalogue shows clearly more; otherwise it is an estimate, flagged by "
        "`total_is_estimate: true`. Imports, edits and undos are searchable the moment they "
        "complete, except an undo that restores more than 10,000 products' text: the search "
        "index catches up with it in the background, and meanwhile `search_pending` is true "
        "and text filters may miss the restored products.\n\n" + FIELD_FILTERS_DOC
    ),
)
def list_products(
    session: DbSession,
    _principal: Viewer,
    settings: AppSettings,
    filters: Filters,
    sort: Sort,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, from 1.")] = 1,
    page_size: Annotated[int, Query(ge=1, le=500, description="Products per page.")] = 50,
) -> ProductPage:
    return catalog_service.list_page(
        session, filters, sort, page, page_size, settings.products_exact_count_limit
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a product",
    description="The SKU and name are trimmed. Answers with the product, its `ETag` and "
    "`Location`.",
    responses=_CONFLICT,
)
def create_product(
    session: DbSession,
    principal: Editor,
    body: ProductCreate,
    response: Response,
    audit: AuditLog,
) -> ProductRead:
    try:
        product = catalog_service.create(session, body, _actor(principal))
    except catalog_service.SkuConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except custom_fields.FieldValuesInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None
    audit("product.create", f"product:{product.id} {product.sku}")
    response.headers["Location"] = f"/api/products/{product.id}"
    _change_header(session, response)
    return _with_etag(response, product)


@router.delete(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Delete all products",
    description=(
        "Deletes every product in the background and answers at once with the job; poll "
        "`GET /api/products/delete-jobs/{job_id}` for progress. Requires `confirm=true` "
        "(otherwise 400). While a job is queued or running, the same job is returned. Emits one "
        "`products.deleted_all` event when done."
    ),
    responses={400: {"description": "`confirm=true` is missing."}},
)
def delete_all_products(
    session: DbSession,
    principal: Admin,
    response: Response,
    settings: AppSettings,
    audit: AuditLog,
    confirm: Annotated[
        bool, Query(description="Must be `true`: it deletes every product.")
    ] = False,
) -> DeleteAllJobRead:
    if not confirm:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "This deletes every product (it can be undone for "
            f"{settings.history_retention_days:g} days); repeat the request with "
            "?confirm=true to confirm.",
        )
    job, created = catalog_service.start_delete_all(session, _actor(principal))
    if created:
        audit("products.delete_all", f"delete-job:{job.id}")
    response.headers["Location"] = f"/api/products/delete-jobs/{job.id}"
    return DeleteAllJobRead.model_validate(job)


@router.get(
    "/export",
    summary="Export products as CSV",
    description=(
        "Streams `name,sku,description,active` (UTF-8, RFC 4180) for the whole catalogue or "
        "the same filters as the list, in creation order. Cells that a spreadsheet would run "
        "as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return, also after "
        "leading spaces, no-break spaces or line breaks) get a leading apostrophe (one more "
        "if it already starts with apostrophes), a reversible escape: "
        "`catalog.export.restore_cell` gives back the stored value. After the built-in "
        "columns comes one column per custom field, headed by its key, in the order the "
        "fields were created: decimals as stored (`19.9`), lists joined with `, `, booleans "
        "`true`/`false`, an empty cell where a product has no value; the file imports back "
        "unchanged.\n\n" + FIELD_FILTERS_DOC
    ),
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The CSV file."}},
)
def export_products(
    _principal: Viewer,
    database: Annotated[Database, Depends(get_database)],
    filters: Filters,
) -> StreamingResponse:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        export.stream_csv(database, filters),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="products-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/delete-jobs/latest",
    summary="The most recent delete-all job",
    responses={404: {"description": "No delete-all has been requested yet."}},
)
def latest_delete_job(session: DbSession, _principal: Viewer) -> DeleteAllJobRead:
    try:
        return DeleteAllJobRead.model_validate(catalog_service.latest_delete_job(session))
    except catalog_service.DeleteJobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.get(
    "/delete-jobs/{job_id}",
    summary="Progress of a delete-all job",
    responses={404: {"description": "No such job."}},
)
def get_delete_job(
    session: DbSession,
    _principal: Viewer,
    job_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> DeleteAllJobRead:
    try:
        return DeleteAllJobRead.model_validate(catalog_service.get_delete_job(session, job_id))
    except catalog_service.DeleteJobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.get(
    "/{product_id}",
    summary="Get a product",
    description="Answers with the product and its `ETag`.",
    responses=_NOT_FOUND,
)
def get_product(
    session: DbSession, _principal: Viewer, product_id: ProductId, response: Response
) -> ProductRead:
    try:
        return _with_etag(response, catalog_service.get(session, product_id))
    except catalog_service.ProductNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.patch(
    "/{product_id}",
    summary="Edit a product",
    description=(
        "Changes only the fields sent. Send the `ETag` you read as `If-Match` so a change "
        "made meanwhile by someone else is not overwritten (412)."
    ),
    responses=_NOT_FOUND | _CONFLICT | _STALE,
)
def update_product(
    session: DbSession,
    principal: Editor,
    product_id: ProductId,
    body: ProductUpdate,
    response: Response,
    audit: AuditLog,
    if_match: IfMatch = None,
) -> ProductRead:
    try:
        product = catalog_service.update(session, product_id, body, if_match, _actor(principal))
    except catalog_service.ProductNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except catalog_service.SkuConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except catalog_service.PreconditionFailed as exc:
        raise HTTPException(status.HTTP_412_PRECONDITION_FAILED, str(exc)) from None
    except custom_fields.FieldValuesInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None
    audit(
        "product.update",
        f"product:{product.id} {product.sku}",
        {"fields": sorted(body.model_dump(exclude_unset=True))},
    )
    _change_header(session, response)
    return _with_etag(response, product)


@router.delete(
    "/{product_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a product",
    description="With `If-Match`, only if the product is unchanged since it was read.",
    responses=_NOT_FOUND | _STALE,
)
def delete_product(
    session: DbSession,
    principal: Editor,
    product_id: ProductId,
    audit: AuditLog,
    if_match: IfMatch = None,
) -> Response:
    try:
        catalog_service.delete(session, product_id, if_match, _actor(principal))
    except catalog_service.ProductNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except catalog_service.PreconditionFailed as exc:
        raise HTTPException(status.HTTP_412_PRECONDITION_FAILED, str(exc)) from None
    audit("product.delete", f"product:{product_id}")
    answer = Response(status_code=status.HTTP_204_NO_CONTENT)
    _change_header(session, answer)
    return answer
