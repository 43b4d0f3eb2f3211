"""Loads through Bulk API 2.0 query jobs: when to use them, and how their CSV is read.

A full load or reload of a mapping whose window holds at least its bulk threshold of
records reads through one ``queryAll`` job instead of REST pages; smaller windows, and
anything Bulk refuses, stay on REST (:mod:`sync.bulk.choice`). The CSV pages become the
same records the REST API returns (:mod:`sync.bulk.records`), so the mapping's one
generated converter stores them (:mod:`sync.pull.engine`).
"""
