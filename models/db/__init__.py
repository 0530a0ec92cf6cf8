"""All database code: engine, tables, schema and migrations, and one module of SQL per
concept. Everything outside `models/db/` in `models/` is pure."""
