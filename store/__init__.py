"""The facts store: narrow LLM-span and annotation facts in ClickHouse, in-process or a server.

    url.py         STORE_URL: chdb://<dir>[?database=] or clickhouse(s)://user:pass@host/db
    transport.py   ChdbTransport / HttpTransport, the only difference between the two; params
    migrations.py  the schema, as numbered idempotent migrations (and why it looks as it does)
    migrate.py     migrate(store), `python -m store.migrate`
    facts.py       open_store(), FactStore: the writers, settle(), watermark()
    filters.py     Filters (what an analyst narrowed to) and the WHERE clause they make
    slices.py      closed days pre-aggregated into exact 15-minute slices, and how to read them
    analytics.py   every query: aggregates computed in the engine, small typed results

Importing this package does nothing: chdb starts only when a chdb store is opened.
"""
