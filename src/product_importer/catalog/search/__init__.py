"""Product search: the one home of writing, catching up and querying the search structure.

Search is two parts, both keyed by product id:

- **The index** (`product_search`): on SQLite an FTS5 trigram table (rowid = product id, each
  column folded by `pi_fold()`), on PostgreSQL a table of folded documents with a pg_trgm GIN
  index. Keeping a trigram index costs 30-60 us a written row, which made a 500,000-row import
  3-4 times slower when the import wrote it.
- **The fresh set** (`search_fresh`): the products written since the index last saw them, each
  with its folded document, in a plain table. Writing a row there costs a few microseconds.

Every writer (an import's merge, an edit, an undo, a bulk action) writes the fresh set in its
own transaction (`writing`); only the catch-up (`catchup`) writes the index, moving fresh rows
into it in small batches in the background and yielding to imports. A search (`matching`)
reads the index, leaving out the rows that are in the fresh set (their index entry may be
old), plus the fresh rows that match, tested one by one. So a product is findable by its
current text the moment its writer commits, and by nothing else, however far behind the index
is; searches only get slower while the fresh set is large (a scan of 500,000 documents is a few
hundred milliseconds).
"""
