"""Catalogue rules below HTTP: counts and estimates, both search plans, races, delete-all jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from product_importer.catalog import repository, service, tasks, walk
from product_importer.catalog.models import DeleteAllJob
from product_importer.catalog.schemas import ProductFilters, ProductSort, ProductUpdate
from product_importer.db import Database, utcnow
from product_importer.settings import Settings
from product_importer.tasks.registry import TaskContext
from tests.catalog.helpers import add_products, events, numbered
from tests.conftest import make_settings
from tests.factories import make_product


def page(database: Database, limit: int, sort: ProductSort = ProductSort.SKU, number: int = 1,
         **filters: object) -> service.ProductPage:  # fmt: skip
    with database.session() as session:
        return service.list_page(session, ProductFilters(**filters), sort, number, 20, limit)  # type: ignore[arg-type]


@pytest.fixture
def mixed(database: Database) -> None:
    # 400 products: every other one mentions "walnut" (in the name or the description), one in
    # four is inactive.
    add_products(
        database,
        [
            {
                "sku": f"MX-{i:04d}",
                "name": f"Walnut shelf {i}" if i % 4 == 0 else f"Pine shelf {i}",
                "description": "Oiled walnut" if i % 4 == 2 else "Plain",
                "active": i % 4 != 1,
            }
            for i in range(400)
        ],
    )


@pytest.mark.usefixtures("mixed")
@pytest.mark.parametrize(
    ("filters", "matches"),
    [({"q": "walnut"}, 200), ({"active": False}, 100), ({"name": "SHELF"}, 400)],
)
def test_totals_are_exact_up_to_the_limit_then_estimated(
    database: Database, filters: dict[str, object], matches: int
) -> None:
    exact = page(database, 1_000, **filters)
    assert (exact.total, exact.total_is_estimate) == (matches, False)
    estimated = page(database, 50, **filters)
    # Beyond the limit: estimated, or counted exactly where the matches are few enough to be
    # gathered and sorted rather than found by walking the sort order.
    if estimated.total_is_estimate:
        assert matches * 0.7 <= estimated.total <= matches * 1.3, estimated.total
    else:
        assert estimated.total == matches
    # Both ways give the same page of products.
    assert [p.sku for p in estimated.items] == [p.sku for p in exact.items]


@pytest.mark.usefixtures("mixed")
@pytest.mark.parametrize("sort", list(ProductSort))
def test_the_row_scan_plan_and_the_index_plan_agree(
    database: Database, sort: ProductSort, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in (1, 3, 7):
        by_index = page(database, 1_000, sort, number, q="walnut", active=True)
        with monkeypatch.context() as patched:
            patched.setattr(repository, "walk_is_cheaper", lambda *_: True)
            by_scan = page(database, 50, sort, number, q="walnut", active=True)
        with monkeypatch.context() as patched:
            patched.setattr(repository, "walk_is_cheaper", lambda *_: False)
            sorted_matches = page(database, 50, sort, number, q="walnut", active=True)
        expected = [p.sku for p in by_index.items]
        assert [p.sku for p in by_scan.items] == expected, (sort, number)
        assert [p.sku for p in sorted_matches.items] == expected, (sort, number)


@pytest.mark.usefixtures("mixed")
def test_sparse_matches_beyond_the_limit_are_gathered_and_counted(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repository, "walk_is_cheaper", lambda *_: False)
    gathered = page(database, 100, q="walnut")  # 200 matches, up to 500 gathered
    assert (gathered.total, gathered.total_is_estimate) == (200, False)
    monkeypatch.setattr(service, "GATHER_MATCHES", 1)  # too many to gather: estimated
    estimated = page(database, 100, q="walnut")
    assert estimated.total_is_estimate is True
    assert [p.sku for p in estimated.items] == [p.sku for p in gathered.items]


def test_a_page_walks_the_sort_order_only_where_matches_are_dense() -> None:
    # A word in 2.6% of a million products: the first page is about 1,900 rows into the walk.
    assert repository.walk_is_cheaper(26_000, 1_000_000, 50)
    # Two words in 0.16%: about 31,000 rows to walk, against 1,600 matches to sort.
    assert not repository.walk_is_cheaper(1_600, 1_000_000, 50)
    # Page 100 of the dense word: 190,000 rows to walk, 26,000 to sort.
    assert not repository.walk_is_cheaper(26_000, 1_000_000, 5_000)
    assert not repository.walk_is_cheaper(0, 1_000_000, 50)


def test_the_exact_count_is_skipped_only_for_many_matches_seen_across_the_sample() -> None:
    spread = repository.Sample(matches=26_000, products=1_000_000, windows=10, windows_hit=10)
    assert repository.clearly_more_than(spread, 1_000)
    # Three times the limit is not enough evidence: the exact count runs.
    assert not repository.clearly_more_than(spread._replace(matches=3_000), 1_000)
    # Matches in two windows of ten: a cluster of ids can look like many.
    assert not repository.clearly_more_than(spread._replace(windows_hit=2), 1_000)
    assert not repository.clearly_more_than(repository.Sample(0, 0, 0, 0), 1_000)


def _catalogue_with(database: Database, matching: Callable[[int], bool]) -> None:
    # 6,000 products, more than the sample's ten windows of 500 ids cover.
    add_products(
        database,
        [
            {"sku": f"CL-{i:05d}", "name": f"Oak stool {i}" if matching(i) else f"Pine {i}"}
            for i in range(6_000)
        ],
    )


def test_matches_clustered_in_one_sampled_window_are_counted_exactly(database: Database) -> None:
    # The first 100 ids match: the first sampling window holds them all, so the sample alone
    # suggests 120 matches, six times the limit.
    _catalogue_with(database, lambda i: i < 100)
    result = page(database, 20, q="oak")
    assert (result.total, result.total_is_estimate) == (100, False)
    assert [p.sku for p in result.items] == [f"CL-{i:05d}" for i in range(20)]


def test_many_matches_across_the_catalogue_are_estimated_without_counting(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _catalogue_with(database, lambda i: i % 10 == 0)  # 600 matches
    exact = page(database, 10_000, ProductSort.NAME, q="oak")
    assert (exact.total, exact.total_is_estimate) == (600, False)

    def never(*_: object) -> None:
        raise AssertionError("the matches were counted")

    monkeypatch.setattr(repository, "ids_up_to", never)
    monkeypatch.setattr(repository, "page_of_matches", never)
    estimated = page(database, 20, ProductSort.NAME, q="oak")
    assert estimated.total_is_estimate is True
    assert 600 * 0.7 <= estimated.total <= 600 * 1.3, estimated.total
    assert [p.sku for p in estimated.items] == [p.sku for p in exact.items]


@pytest.mark.usefixtures("mixed")
def test_a_page_past_the_end_of_gathered_matches_still_counts_them(database: Database) -> None:
    result = page(database, 1_000, ProductSort.SKU, 99, q="walnut")  # 200 matches, 20 a page
    assert (result.items, result.total, result.total_is_estimate) == ([], 200, False)


def test_unfiltered_totals(database: Database) -> None:
    add_products(database, numbered(310))
    result = page(database, 100)
    if database.dialect == "sqlite":
        assert (result.total, result.total_is_estimate) == (310, False)
    else:  # estimated from a sample: counting a big table exactly is slow on PostgreSQL
        assert result.total_is_estimate and 260 <= result.total <= 360
    last = page(database, 100, number=16)
    assert (last.total, last.total_is_estimate) == (310, False)  # a short last page is exact


def test_a_racing_edit_is_refused_even_without_if_match(database: Database) -> None:
    product_id = make_product(database, "RACE-1")
    with database.session() as first, database.session() as second:
        service.update(first, product_id, ProductUpdate(name="First"))
        mine = service.get(second, product_id)  # loaded before the first commits
        first.commit()
        assert mine.name == "A product"
        with pytest.raises(service.PreconditionFailed):
            service.update(second, product_id, ProductUpdate(name="Second"))
        second.rollback()
    with database.session() as session:
        assert service.get(session, product_id).name == "First"


def test_etag_changes_with_every_write(database: Database) -> None:
    product_id = make_product(database, "TAG-1")
    tags = set()
    for name in ("a", "b", "c"):
        with database.session() as session:
            tags.add(service.etag(service.update(session, product_id, ProductUpdate(name=name))))
    assert len(tags) == 3


# --- delete all ---------------------------------------------------------------------------


def context(settings: Settings, database: Database) -> TaskContext:
    return TaskContext(database=database, settings=settings)


def start(database: Database) -> int:
    with database.session() as session:
        job, created = service.start_delete_all(session, "tester")
        assert created
        return job.id


def job(database: Database, job_id: int) -> DeleteAllJob:
    with database.session() as session:
        return service.get_delete_job(session, job_id)


def test_a_second_request_gets_the_running_job(database: Database) -> None:
    job_id = start(database)
    with database.session() as session:
        again, created = service.start_delete_all(session, "someone else")
    assert (again.id, created) == (job_id, False)


def test_delete_all_task_and_a_duplicate_of_it(settings: Settings, database: Database) -> None:
    add_products(database, numbered(500, description="findable text"))
    job_id = start(database)
    tasks.delete_all(context(settings, database), job_id=job_id)
    tasks.delete_all(context(settings, database), job_id=job_id)  # a duplicate: no-op
    finished = job(database, job_id)
    assert (finished.status, finished.total, finished.deleted, finished.attempts) == (
        "completed", 500, 500, 1
    )  # fmt: skip
    assert len(events(database, "products.deleted_all")) == 1
    assert page(database, 1_000).total == 0
    make_product(database, "AFTER-1", description="findable again")
    assert [p.sku for p in page(database, 1_000, q="findable").items] == ["AFTER-1"]
    with database.session() as session:
        rows = [
            session.scalar(text(f"SELECT count(*) FROM {table}"))
            for table in ("product_search", "search_fresh")
        ]
    assert rows == [0, 1]  # the old search rows went with the catalogue; the new one is fresh


def test_a_job_whose_worker_died_is_resumed(settings: Settings, database: Database) -> None:
    add_products(database, numbered(50))
    job_id = start(database)
    with database.session() as session:
        stuck = session.get(DeleteAllJob, job_id)
        assert stuck is not None
        stuck.status, stuck.attempts = "running", 1
        stuck.heartbeat_at = utcnow() - timedelta(minutes=10)
    tasks.recover_delete_all(context(settings, database))
    assert job(database, job_id).status == "queued"
    tasks.delete_all(context(settings, database), job_id=job_id)
    finished = job(database, job_id)
    assert (finished.status, finished.deleted, finished.attempts) == ("completed", 50, 2)


def test_a_job_that_keeps_dying_is_failed_with_a_reason(
    settings: Settings, database: Database
) -> None:
    make_product(database, "SURVIVOR")
    job_id = start(database)
    with database.session() as session:
        stuck = session.get(DeleteAllJob, job_id)
        assert stuck is not None
        stuck.status, stuck.attempts = "running", tasks.MAX_ATTEMPTS
        stuck.heartbeat_at = utcnow() - timedelta(minutes=10)
    tasks.recover_delete_all(context(settings, database))
    failed = job(database, job_id)
    assert failed.status == "failed" and "interrupted" in (failed.error or "")
    assert page(database, 1_000).total == 1
    assert not events(database, "products.deleted_all")


def test_a_fresh_running_job_is_left_alone(settings: Settings, database: Database) -> None:
    job_id = start(database)
    with database.session() as session:
        running = session.get(DeleteAllJob, job_id)
        assert running is not None
        running.status, running.attempts, running.heartbeat_at = "running", 1, utcnow()
    tasks.recover_delete_all(context(settings, database))
    tasks.delete_all(context(settings, database), job_id=job_id)
    assert job(database, job_id).status == "running"


def test_postgresql_falls_back_to_batches_when_truncate_cannot_lock(
    tmp_path: object, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database.dialect != "postgresql":
        pytest.skip("TRUNCATE is the PostgreSQL path")
    settings = make_settings(
        tmp_path,  # type: ignore[arg-type]
        database.engine.url.render_as_string(hide_password=False),
        products_delete_batch_rows=100,
    )
    monkeypatch.setattr(tasks, "TRUNCATE_ATTEMPTS", 2)
    monkeypatch.setattr(tasks, "TRUNCATE_LOCK_TIMEOUT_MS", 50)
    add_products(database, numbered(350))
    job_id = start(database)
    with database.engine.connect() as reader:
        # A long read (an export, say) holds a lock TRUNCATE would wait for.
        reader.execute(select(text("count(*)")).select_from(text("products"))).scalar()
        tasks.delete_all(context(settings, database), job_id=job_id)
        reader.rollback()
    finished = job(database, job_id)
    assert (finished.status, finished.total, finished.deleted) == ("completed", 350, 350)
    assert len(events(database, "products.deleted_all")) == 1


def test_a_walk_that_meets_its_matches_late_stops_and_gathers_them(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One product in eleven is a "Classic ..." chair: dense enough to walk the name order,
    # but sorted by name descending every "Zebra ..." comes first. The walk gives up after its
    # budget and the page is found by gathering the matches, with the same answer.
    add_products(
        database,
        [
            {"sku": f"CL-{i:05d}", "name": f"Classic chair {i}" if i % 11 == 0 else f"Zebra {i}"}
            for i in range(3_300)
        ],
    )
    monkeypatch.setattr(walk, "MARGIN_ROWS", 100)
    monkeypatch.setattr(repository, "walk_is_cheaper", lambda *_: True)
    bounds: list[object] = []
    page_of_products = repository.page_of_products

    def recording(*args: object, **kwargs: object) -> object:
        bounds.append(kwargs.get("within"))
        return page_of_products(*args, **kwargs)  # type: ignore[arg-type]

    for number in (1, 2):
        expected = page(database, 10_000, ProductSort.NAME_DESC, number, q="classic")
        monkeypatch.setattr(repository, "page_of_products", recording)
        walked = page(database, 10, ProductSort.NAME_DESC, number, q="classic")
        monkeypatch.setattr(repository, "page_of_products", page_of_products)
        assert [p.sku for p in walked.items] == [p.sku for p in expected.items]
        assert len(walked.items) == 20
        assert (walked.total, walked.total_is_estimate) == (300, False)
    assert len(bounds) == 2 and all(bound is not None for bound in bounds)


def test_the_walk_budget_grows_with_the_rows_it_expects_to_test() -> None:
    # 50 rows wanted among 26,000 matches of a million: about 1,900 rows expected.
    assert walk.budget(26_000, 1_000_000, 50) == walk.SLACK * 1_923 + walk.MARGIN_ROWS
    assert walk.budget(0, 1_000, 50) > 1_000  # no estimate: effectively unbounded
