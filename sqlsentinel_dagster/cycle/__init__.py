"""One evaluation of an alert or a watched check, without Dagster: evaluate the query, decide and record, deliver.
Jobs mode, checks mode, the ``watch:`` sensor and ``sqlsentinel run`` all call it."""
