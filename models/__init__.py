"""The bottom layer: settings, database, tables, the org chart and shared query/write helpers."""
