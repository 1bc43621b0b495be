-- A search's stored run is written on every search and read back whole for a page or a
-- re-run diff: keep it out of line without compression. pglz compressing each run cost
-- about a third of the PostgreSQL server's CPU under search load; the text is a few tens
-- of kilobytes per search.
ALTER TABLE searches ALTER COLUMN last_result SET STORAGE EXTERNAL;
